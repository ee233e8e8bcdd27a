"""Models configured for a GPU on a machine without one (these CI machines): `device = "cuda"`
loads on the CPU with one warning naming what is missing and says `cpu` in metadata, stats and
metrics; `device = "cuda!"` refuses to load. And `waypoint export-onnx`: the trajectory
network as ONNX, run by ONNX Runtime (CPU), gives the native model's answers."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import ROOT, waypoint_binary

ONNX_CONFIG = """platform = "onnx"
device = "{device}"
max_batch_size = 4096
gpu_max_batch_size = 131072
gpu_max_queue_delay_us = 2000
[[inputs]]
name = "history"
datatype = "FP32"
dims = [-1, 8, 2]
[[outputs]]
name = "trajectory"
datatype = "FP32"
dims = [-1, 12, 2]
[[outputs]]
name = "sigma"
datatype = "FP32"
dims = [-1, 12, 2]
"""


def histories(n, seed):
    """Walks of several kinds: moving, barely moving (the four-step heading), standing still."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.4, size=(n, 8, 2)) + rng.normal(scale=0.6, size=(n, 1, 2))
    steps[: n // 8] *= 0.004  # moves under 2 cm a step
    steps[n // 8: n // 6] = 0.0  # stands still
    start = rng.uniform(-30, 30, size=(n, 1, 2))
    return (start + np.cumsum(steps, axis=1)).astype(np.float32)


def infer(base, model, x, version=None):
    body = json.dumps({"inputs": [{"name": "history", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()
    path = f"/v2/models/{model}/versions/{version}/infer" if version else f"/v2/models/{model}/infer"
    req = urllib.request.Request(f"{base}{path}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = {o["name"]: np.array(o["data"], dtype=np.float32).reshape(o["shape"])
               for o in json.loads(r.read())["outputs"]}
    return out["trajectory"], out["sigma"]


def get(base, path):
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as r:
        body = r.read()
    return body if path == "/metrics" else json.loads(body)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "trajectory.onnx"
    done = subprocess.run([waypoint_binary(), "export-onnx", "trajectory", "2", str(out),
                           "--model-repository", str(ROOT / "models")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def gpu_server(exported, tmp_path_factory):
    repo = tmp_path_factory.mktemp("gpu-models")
    for name, device in [("traj_onnx_cuda", "cuda"), ("traj_onnx_required", "cuda!"), ("traj_onnx_cpu", "cpu"),
                         ("traj_onnx_big", "cpu")]:
        (repo / name / "1").mkdir(parents=True)
        config = ONNX_CONFIG.format(device=device)
        if name == "traj_onnx_big":
            config = config.replace("max_batch_size = 4096", "max_batch_size = 131072\ntimeout_ms = 60000")
        (repo / name / "config.toml").write_text(config)
        shutil.copy(exported, repo / name / "1" / "model.onnx")
    # The native model, asked to run on a GPU it has no path to.
    shutil.copytree(ROOT / "models" / "trajectory", repo / "trajectory")
    config = (repo / "trajectory" / "config.toml").read_text()
    (repo / "trajectory" / "config.toml").write_text(config.replace('backend = "trajectory_tcn"\n',
                                                                    'backend = "trajectory_tcn"\ndevice = "cuda"\n'))
    log_path = repo / "serve.log"
    log = open(log_path, "w")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([waypoint_binary(), "serve", "--addr", f"127.0.0.1:{port}", "--paused",
                             "--model-repository", str(repo)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "WAYPOINT_LOG_FORMAT": "text", "NO_COLOR": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield base, log_path
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_the_exported_graph_is_valid_onnx_and_matches_the_native_model(exported, gpu_server):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["history"]
    assert [o.name for o in model.graph.output] == ["trajectory", "sigma"]
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    base, _ = gpu_server
    x = histories(600, seed=5)
    # The native model (version 2 of the shipped repository) against ONNX Runtime, on a small
    # batch (run sample by sample) and a large one (the matrix-product path).
    # Seven rows of every kind (slow, still, moving) and all 600.
    for rows in (x[[0, 80, 90, 200, 300, 400, 599]], x):
        native_traj, native_sigma = infer(base, "trajectory", rows, version="2")
        onnx_traj, onnx_sigma = session.run(["trajectory", "sigma"], {"history": rows})
        assert np.abs(native_traj - onnx_traj).max() <= 1e-4, np.abs(native_traj - onnx_traj).max()
        assert np.abs(native_sigma - onnx_sigma).max() <= 1e-4
        # Not a vacuous match: the predictions move, and differ from constant velocity.
        assert np.abs(onnx_traj - rows[:, -1:, :]).max() > 1.0
    # The same file served by Waypoint through ONNX Runtime gives the same answers.
    served_traj, served_sigma = infer(base, "traj_onnx_cuda", x)
    assert np.abs(served_traj - native_traj).max() <= 1e-4
    assert np.abs(served_sigma - native_sigma).max() <= 1e-4


def test_cuda_without_a_gpu_runs_on_the_cpu_and_says_so_once(gpu_server):
    base, log_path = gpu_server
    for model in ("traj_onnx_cuda", "traj_onnx_cpu", "trajectory"):
        assert get(base, f"/v2/models/{model}")["device"] == "cpu", model
    stats = {(v["model"], v["version"]): v for v in get(base, "/api/v1/stats")["versions"]}
    assert stats[("traj_onnx_cuda", "1")]["device"] == "cpu"
    metrics = get(base, "/metrics").decode()
    assert 'waypoint_model_device{model="traj_onnx_cuda",version="1",device="cpu"} 1' in metrics
    assert 'waypoint_model_device{model="trajectory",version="2",device="cpu"} 1' in metrics
    log = log_path.read_text()
    warnings = [line for line in log.splitlines() if "WARN" in line and "traj_onnx_cuda" in line]
    assert len(warnings) == 1, warnings
    # It names what is missing: this machine's ONNX Runtime has no CUDA provider.
    assert "no CUDA execution provider" in warnings[0] and "onnxruntime-gpu" in warnings[0], warnings[0]
    native = [line for line in log.splitlines() if "WARN" in line and 'model="trajectory"' in line]
    assert len(native) == 1 and "export-onnx" in native[0], native


def test_cuda_required_refuses_to_load_and_says_why(gpu_server):
    base, _ = gpu_server
    req = urllib.request.Request(f"{base}/v2/repository/index", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        index = {m["name"]: m for m in json.loads(r.read())}
    required = index["traj_onnx_required"]
    assert required["state"] != "READY"
    assert "cuda!" in required["reason"] and "CUDA" in required["reason"], required
    assert index["traj_onnx_cuda"]["state"] == "READY"
    with pytest.raises(urllib.error.HTTPError):
        get(base, "/v2/models/traj_onnx_required/ready")


def test_export_refuses_a_model_without_a_network(tmp_path):
    done = subprocess.run([waypoint_binary(), "export-onnx", "trajectory_cv", "1", str(tmp_path / "x.onnx"),
                           "--model-repository", str(ROOT / "models")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "trajectory_tcn" in done.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_a_batch_of_131072_rows_goes_through_oip_binary_and_one_more_is_refused(exported, gpu_server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
    base, _ = gpu_server
    client = httpclient.InferenceServerClient(base.removeprefix("http://"), network_timeout=120)
    x = histories(131072, seed=9)
    inp = httpclient.InferInput("history", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = client.infer("traj_onnx_big", [inp], outputs=[httpclient.InferRequestedOutput("trajectory", binary_data=True)])
    traj = out.as_numpy("trajectory")
    assert traj.shape == (131072, 12, 2)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    rows = np.r_[0:50, 65500:65550, 131022:131072]
    want = session.run(["trajectory"], {"history": x[rows]})[0]
    assert np.abs(traj[rows] - want).max() <= 1e-4
    more = np.concatenate([x, x[:1]])
    inp = httpclient.InferInput("history", list(more.shape), "FP32")
    inp.set_data_from_numpy(more, binary_data=True)
    with pytest.raises(InferenceServerException, match="exceeds the model's max_batch_size 131072"):
        client.infer("traj_onnx_big", [inp])
