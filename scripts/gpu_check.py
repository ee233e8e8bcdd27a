#!/usr/bin/env python3
"""The device check behind scripts/gpu-check (run that, not this): serves an ONNX LSTM (2 -> 64
over 8 steps, Linear 64 -> 24, the seed's trajectory-sized network) and the exported trajectory
TCN (`waypoint export-onnx`) on `cuda` and on `cpu` side by side, checks that both devices give
the same outputs within 1e-4, and prints one JSON object: the device each model landed on,
in-process throughput (`waypoint bench --in-process`) and over OIP binary on loopback
(`waypoint bench --transport oip-binary`) at batch 1, 1,024, 16,384 and 131,072, and GPU
memory (nvidia-smi). Exits 1 when a model meant for CUDA fell back to the CPU or the outputs
differ, so a machine without a GPU says so instead of passing.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BATCHES = [1, 1024, 16384, 131072]
TOLERANCE = 1e-4


def write_lstm(path, seed=3):
    """LSTM 2 -> 64 over [N, 8, 2] (batch first, via Transpose), last hidden state, Linear
    64 -> 24, reshaped to [N, 12, 2]."""
    rng = np.random.default_rng(seed)
    hidden = 64
    w = (rng.normal(size=(1, 4 * hidden, 2)) * 0.3).astype(np.float32)
    r = (rng.normal(size=(1, 4 * hidden, hidden)) * 0.1).astype(np.float32)
    b = (rng.normal(size=(1, 8 * hidden)) * 0.1).astype(np.float32)
    lw = (rng.normal(size=(hidden, 24)) * 0.2).astype(np.float32)
    lb = (rng.normal(size=(24,)) * 0.1).astype(np.float32)
    shape = np.array([-1, 12, 2], dtype=np.int64)
    nodes = [
        helper.make_node("Transpose", ["history"], ["seq"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["seq", "W", "R", "B"], ["", "h_last"], hidden_size=hidden),
        helper.make_node("Squeeze", ["h_last", "axis0"], ["h"]),
        helper.make_node("MatMul", ["h", "LW"], ["y0"]),
        helper.make_node("Add", ["y0", "LB"], ["y1"]),
        helper.make_node("Reshape", ["y1", "shape"], ["trajectory"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w, "W"), (r, "R"), (b, "B"), (lw, "LW"), (lb, "LB"), (shape, "shape"),
              (np.array([0], dtype=np.int64), "axis0")]]
    graph = helper.make_graph(
        nodes, "lstm",
        [helper.make_tensor_value_info("history", TensorProto.FLOAT, ["N", 8, 2])],
        [helper.make_tensor_value_info("trajectory", TensorProto.FLOAT, ["N", 12, 2])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def config(device, outputs):
    out = "".join(
        f'\n[[outputs]]\nname = "{o}"\ndatatype = "FP32"\ndims = [-1, 12, 2]\n' for o in outputs)
    return f"""platform = "onnx"
device = "{device}"
max_batch_size = 131072
max_queue_delay_us = 100
gpu_max_queue_delay_us = 2000
queue_capacity = 64
timeout_ms = 60000

[[inputs]]
name = "history"
datatype = "FP32"
dims = [-1, 8, 2]
{out}"""


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def infer(base, model, x):
    """OIP binary request; returns the first output as an array."""
    header = json.dumps({
        "inputs": [{"name": "history", "shape": list(x.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes}}],
        "parameters": {"binary_data_output": True},
    }).encode()
    req = urllib.request.Request(
        f"{base}/v2/models/{model}/infer", data=header + x.astype("<f4").tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header)),
                 "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=120) as r:
        n = int(r.headers["Inference-Header-Content-Length"])
        body = r.read()
    head = json.loads(body[:n])
    first = head["outputs"][0]
    size = first["parameters"]["binary_data_size"]
    return np.frombuffer(body[n:n + size], dtype="<f4").reshape(first["shape"])


def gpu_memory_mib():
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    used, total = (float(v) for v in out.stdout.splitlines()[0].split(","))
    return {"used_mib": used, "total_mib": total}


def bench(binary, args, key):
    out = subprocess.run([binary, "bench", *args, "--json"], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}
    rows = json.loads(out.stdout)["results"]
    return {str(r["batch"]): round(r[key]) for r in rows}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--trajectory-version", default="2")
    p.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="waypoint-gpu-check-"))
    repo = work / "models"
    for name, device in [("lstm_cuda", "cuda"), ("lstm_cpu", "cpu"),
                         ("tcn_cuda", "cuda"), ("tcn_cpu", "cpu")]:
        (repo / name / "1").mkdir(parents=True)
        outputs = ["trajectory"] if name.startswith("lstm") else ["trajectory", "sigma"]
        (repo / name / "config.toml").write_text(config(device, outputs))
    write_lstm(repo / "lstm_cuda" / "1" / "model.onnx")
    subprocess.run([a.binary, "export-onnx", "trajectory", a.trajectory_version,
                    str(repo / "tcn_cuda" / "1" / "model.onnx")], check=True)
    for kind in ("lstm", "tcn"):
        shutil.copy(repo / f"{kind}_cuda" / "1" / "model.onnx", repo / f"{kind}_cpu" / "1" / "model.onnx")

    memory_before = gpu_memory_mib()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "w")
    server = subprocess.Popen([a.binary, "serve", "--addr", f"127.0.0.1:{port}", "--paused",
                               "--model-repository", str(repo), "--max-request-bytes", str(256 << 20)],
                              stdout=log, stderr=subprocess.STDOUT)
    report = {"work_dir": str(work)}
    ok = True
    try:
        for _ in range(600):
            try:
                if urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        devices = {m: get_json(f"{base}/v2/models/{m}").get("device")
                   for m in ("lstm_cuda", "lstm_cpu", "tcn_cuda", "tcn_cpu")}
        report["devices"] = devices
        if not all(str(devices[m]).startswith("cuda") for m in ("lstm_cuda", "tcn_cuda")):
            ok = False
            report["fallback"] = "a model configured for cuda runs on the CPU: see serve.log"
        rng = np.random.default_rng(11)
        x = np.cumsum(rng.normal(scale=0.5, size=(4096, 8, 2)), axis=1).astype(np.float32)
        diffs = {}
        for kind in ("lstm", "tcn"):
            diffs[kind] = float(np.max(np.abs(infer(base, f"{kind}_cuda", x) - infer(base, f"{kind}_cpu", x))))
        report["max_abs_difference_cuda_vs_cpu"] = diffs
        report["outputs_match"] = all(d <= TOLERANCE for d in diffs.values())
        ok = ok and report["outputs_match"]
        batches = ",".join(str(b) for b in BATCHES)
        secs = str(a.seconds)
        report["sequences_per_sec"] = {}
        for m in ("lstm_cuda", "tcn_cuda", "lstm_cpu", "tcn_cpu"):
            report["sequences_per_sec"][m] = {
                "in_process": bench(a.binary, ["--in-process", "--model-repository", str(repo), "--model", m,
                                               "--batch", batches, "--duration-secs", secs],
                                    "predictions_per_sec"),
                "oip_binary": bench(a.binary, ["--url", base, "--model", m, "--transport", "oip-binary",
                                               "--concurrency", "1", "--batch", batches, "--duration-secs", secs],
                                    "predictions_per_sec"),
            }
        report["gpu_memory"] = {"before": memory_before, "serving": gpu_memory_mib()}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    warnings = [line.strip() for line in open(work / "serve.log") if "WARN" in line or "ERROR" in line]
    report["server_warnings"] = warnings[-10:]
    report["ok"] = ok
    print(json.dumps(report, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
