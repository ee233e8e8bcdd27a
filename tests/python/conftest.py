"""Fixtures: a model repository made for the tests and the real `waypoint` server on port 0."""

import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
MLP_SEED = 7


def mlp_weights():
    rng = np.random.default_rng(MLP_SEED)
    w1 = rng.normal(size=(16, 32)).astype(np.float32) * 0.3
    b1 = rng.normal(size=(32,)).astype(np.float32) * 0.1
    w2 = rng.normal(size=(32, 4)).astype(np.float32) * 0.3
    b2 = rng.normal(size=(4,)).astype(np.float32) * 0.1
    return w1, b1, w2, b2


def mlp_reference(x):
    """What the ONNX graph computes, in NumPy: relu(x W1 + b1) W2 + b2."""
    w1, b1, w2, b2 = mlp_weights()
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def write_mlp_onnx(path):
    w1, b1, w2, b2 = mlp_weights()
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


MLP_CONFIG = """
platform = "onnx"
max_batch_size = 256
max_queue_delay_us = 100
[[inputs]]
name = "x"
datatype = "FP32"
dims = [-1, 16]
[[outputs]]
name = "y"
datatype = "FP32"
dims = [-1, 4]
"""


def waypoint_binary():
    if os.environ.get("WAYPOINT_BIN"):
        return os.environ["WAYPOINT_BIN"]
    for p in ("target/debug/waypoint", "target/release/waypoint"):
        if (ROOT / p).exists():
            return str(ROOT / p)
    raise RuntimeError("no waypoint binary: run `cargo build` first")


@pytest.fixture(scope="session")
def repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("models")
    shutil.copytree(ROOT / "models" / "trajectory_cv", repo / "trajectory_cv")
    # Two versions of the same model, both served, for the routing tests.
    shutil.copytree(ROOT / "models" / "trajectory_cv", repo / "cv_pair")
    shutil.copytree(repo / "cv_pair" / "1", repo / "cv_pair" / "2")
    config = (repo / "cv_pair" / "config.toml").read_text().replace('version_policy = "latest"', 'version_policy = "all"')
    assert 'version_policy = "all"' in config
    (repo / "cv_pair" / "config.toml").write_text(config)
    (repo / "mlp" / "1").mkdir(parents=True)
    (repo / "mlp" / "config.toml").write_text(MLP_CONFIG)
    write_mlp_onnx(repo / "mlp" / "1" / "model.onnx")
    return repo


def free_port_block(n):
    """A loopback port p with p .. p+n all free (for deploy/local-cluster's replicas)."""
    import socket
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            for p in range(base, base + n + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports")


def start_local_cluster(port, redis_port, *args):
    """Runs deploy/local-cluster with nginx on `port`; returns the process and what it printed
    once it says the cluster is up (stop it with SIGTERM)."""
    proc = subprocess.Popen(
        [str(ROOT / "deploy" / "local-cluster"), "--port", str(port), "--redis-port", str(redis_port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "WAYPOINT_BIN": waypoint_binary()},
    )
    out = []
    deadline = time.time() + 90
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "Ctrl-C stops everything" in line:
            return proc, "".join(out)
    proc.kill()
    raise RuntimeError("deploy/local-cluster did not start:\n" + "".join(out))


def start_server(repository, *extra, addr="127.0.0.1:0"):
    """Starts `waypoint serve` on `addr` (a free loopback port by default); returns the process
    and its address once it listens (its log is read on from then on, so the pipe never fills)."""
    proc = subprocess.Popen(
        [waypoint_binary(), "serve", "--addr", addr, "--model-repository", str(repository), *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "WAYPOINT_LOG_FORMAT": "text", "NO_COLOR": "1"},
    )
    deadline = time.time() + 30
    log = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        log.append(line)
        m = re.search(r"open http://([\d.]+:\d+)/", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError("server did not start:\n" + "".join(log))


@pytest.fixture(scope="session")
def server(repository):
    proc, addr = start_server(repository)
    deadline = time.time() + 30
    # Listening is not ready: wait for the readiness endpoint, as a client would.
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://{addr}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.05)
    yield {"url": addr, "repository": repository}
    proc.terminate()
    proc.wait(timeout=10)
