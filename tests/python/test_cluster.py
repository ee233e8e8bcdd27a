"""Replicas behind nginx (deploy/nginx/nginx.conf, Debian's nginx): inference through nginx
reaches every replica, and a replica killed with SIGKILL while `waypoint bench` drives inference
at concurrency 16 costs no request."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, start_server, waypoint_binary

REPLICAS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def served(addr):
    """Inference requests a replica answered (all models, all statuses)."""
    _, body = get(f"http://{addr}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("waypoint_inference_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def cluster(repository, tmp_path_factory):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is not installed: scripts/test-all installs Debian's nginx")
    replicas = [start_server(repository, "--paused") for _ in range(REPLICAS)]
    prefix = tmp_path_factory.mktemp("nginx")
    for d in ("logs", "tmp"):
        (prefix / d).mkdir()
    port = free_port()
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    upstreams = "\n".join(f"        server {addr} max_fails=1 fail_timeout=2s;" for _, addr in replicas)
    conf, n = re.subn(r"(?m)^\s*server 127\.0\.0\.1:808\d[^\n]*;\n?", "", conf)
    assert n == 3
    conf = conf.replace("        keepalive 64;", upstreams + "\n        keepalive 64;")
    conf = conf.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "logs" / "error.log"),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            if get(f"{url}/v2/health/ready")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            log = (prefix / "logs" / "error.log").read_text() if (prefix / "logs" / "error.log").exists() else ""
            raise RuntimeError("nginx did not come up:\n" + log)
        time.sleep(0.1)
    yield {"url": url, "replicas": replicas}
    proc.terminate()
    proc.wait(timeout=10)
    for p, _ in replicas:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=10)


def test_inference_through_nginx_survives_a_killed_replica(cluster):
    url, replicas = cluster["url"], cluster["replicas"]
    before = [served(addr) for _, addr in replicas]
    bench = subprocess.run(
        [waypoint_binary(), "bench", "--url", url, "--model", "trajectory_cv", "--transport", "oip-binary",
         "--concurrency", "16", "--batch", "1", "--duration-secs", "2", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    warm = json.loads(bench.stdout)["results"][0]
    assert warm["errors"] == 0
    after = [served(addr) for _, addr in replicas]
    assert all(a > b for a, b in zip(after, before)), f"every replica serves through nginx: {before} -> {after}"
    # Kill one replica without warning while the load runs.
    victim, _ = replicas[0]
    load = subprocess.Popen(
        [waypoint_binary(), "bench", "--url", url, "--model", "trajectory_cv", "--transport", "oip-binary",
         "--concurrency", "16", "--batch", "1", "--duration-secs", "6", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    time.sleep(2.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    out, _ = load.communicate(timeout=120)
    assert load.returncode == 0
    r = json.loads(out)["results"][0]
    print(f"through nginx, a replica killed mid-run: {r}")
    assert r["errors"] == 0, r
    assert r["requests_per_sec"] > 0
    # The survivors answered after the kill.
    survivors = [served(addr) for _, addr in replicas[1:]]
    assert all(s > a for s, a in zip(survivors, after[1:]))
