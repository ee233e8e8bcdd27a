"""Three replicas sharing one Redis (Debian's redis-server), behind nginx
(deploy/nginx/nginx.conf, Debian's nginx), each a real `waypoint serve --redis` process on
loopback. One cluster for the whole module; the tests run in file order and the later ones kill
processes:

1. a scene reset sent to one replica reaches the others, and their scene streams agree;
2. a routing change made on one replica is in force on the others within a second, and a canary
   is decided once, in one decision log;
3. Redis stopped: every replica still answers inference, says Redis is down, and its WebSocket
   clients are told the scene paused; Redis started again: all recover within 5 s by themselves;
4. the leader killed with SIGKILL: another leads within 5 s, the scene goes on for the
   survivors' clients, and the killed replica's clients reconnect through nginx;
5. one of three replicas killed with SIGKILL while `waypoint bench` drives inference through
   nginx at concurrency 16: no failed request.

(A request answered by one replica and asked again of another is a Redis cache hit with a
byte-identical reply: `redis_cache` in crates/waypoint-server/tests/server/serving.rs.)"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

from conftest import ROOT, start_server, waypoint_binary

REPLICAS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def get_json(url, timeout=2):
    return json.loads(get(url, timeout)[1])


def send(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"{}")


def wait_until(what, pred, within):
    """Polls `pred` every 20 ms; returns the seconds it took, fails after `within`."""
    start = time.time()
    while True:
        v = pred()
        if v:
            return time.time() - start
        if time.time() - start > within:
            pytest.fail(f"{what}: not within {within} s")
        time.sleep(0.02)


def cluster_view(addr):
    try:
        return get_json(f"http://{addr}/api/v1/cluster", timeout=1)
    except OSError:
        return None


def served(addr):
    """Inference requests a replica answered (all models, all statuses)."""
    _, body = get(f"http://{addr}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("waypoint_inference_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Listener:
    """A WebSocket client on its own thread, subscribed to `scene`, keeping every message with
    the time it arrived, and when the connection closed."""

    def __init__(self, url):
        self.url = url
        self.messages = []
        self.closed_at = None
        self.lock = threading.Lock()
        self.ws = connect(url, subprotocols=["waypoint.v1.json"], open_timeout=5).__enter__()
        self.ws.send(json.dumps({"type": "subscribe", "id": 1, "streams": ["scene"]}))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for raw in self.ws:
                m = json.loads(raw)
                with self.lock:
                    self.messages.append((time.time(), m))
        except Exception:  # noqa: BLE001 - a closed connection ends the listener either way
            pass
        self.closed_at = time.time()

    def scenes(self, since=0.0):
        with self.lock:
            return [(t, m) for t, m in self.messages if m["type"] == "scene" and t >= since]

    def notices(self):
        with self.lock:
            return [m for _, m in self.messages if m["type"] == "notice"]

    def close(self):
        self.ws.close()
        self.thread.join(timeout=5)


class Redis:
    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(server):
            pytest.fail("redis-server is not installed: scripts/test-all installs Debian's redis-server")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def start_nginx(prefix, upstreams, port):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is not installed: scripts/test-all installs Debian's nginx")
    for d in ("logs", "tmp"):
        (prefix / d).mkdir()
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    servers = "\n".join(f"        server {addr} max_fails=1 fail_timeout=2s;" for addr in upstreams)
    conf, n = re.subn(r"(?m)^\s*server 127\.0\.0\.1:808\d[^\n]*;\n?", "", conf)
    assert n == 3
    conf = conf.replace("        keepalive 64;", servers + "\n        keepalive 64;")
    conf = conf.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
    (prefix / "nginx.conf").write_text(conf)
    return subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "logs" / "error.log"),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def cluster(repository, tmp_path_factory):
    # The replicas share one repository folder of their own (this module writes versions there).
    shared = tmp_path_factory.mktemp("cluster") / "models"
    shutil.copytree(repository, shared)
    repository = shared
    redis = Redis(free_port())
    redis.start()
    redis_url = f"redis://127.0.0.1:{redis.port}"
    # Fixed ports, so a replica restarted after a kill comes back at its nginx upstream.
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(REPLICAS)]
    procs = {}

    def start(addr):
        procs[addr], _ = start_server(repository, "--redis", redis_url, addr=addr)

    for addr in addrs:
        start(addr)
    port = free_port()
    prefix = tmp_path_factory.mktemp("nginx")
    nginx = start_nginx(prefix, addrs, port)
    url = f"127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            if get(f"http://{url}/v2/health/ready")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or nginx.poll() is not None:
            log = (prefix / "logs" / "error.log").read_text() if (prefix / "logs" / "error.log").exists() else ""
            raise RuntimeError("nginx did not come up:\n" + log)
        time.sleep(0.1)
    # One leader, seen by all.
    wait_until("a leader seen by every replica",
               lambda: len({(cluster_view(a) or {}).get("leader") for a in addrs} - {None}) == 1
               and all((cluster_view(a) or {}).get("leader") for a in addrs), 15)
    yield {"url": url, "addrs": addrs, "procs": procs, "redis": redis, "start": start, "repository": repository}
    nginx.terminate()
    nginx.wait(timeout=10)
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=10)
    redis.stop()


def leader_of(cluster):
    views = [cluster_view(a) for a in cluster["addrs"]]
    leaders = {v["leader"] for v in views if v}
    assert len(leaders) == 1, views
    leader = leaders.pop()
    addr = next(v["addr"] for v in views if v and v["replica"] == leader)
    return leader, addr


def test_cluster_api_names_one_leader_and_every_replica(cluster):
    views = [cluster_view(a) for a in cluster["addrs"]]
    assert {v["redis"] for v in views} == {"up"}
    assert sum(v["leading"] for v in views) == 1, views
    for v in views:
        assert sorted(r["addr"] for r in v["replicas"]) == sorted(cluster["addrs"]), v
    _, body = get(f"http://{cluster['addrs'][0]}/metrics")
    text = body.decode()
    assert re.search(r"(?m)^waypoint_cluster_replicas 3$", text)
    assert re.search(r"(?m)^waypoint_redis_up 1$", text)
    leaders = 0
    for a in cluster["addrs"]:
        m = re.search(r"(?m)^waypoint_cluster_leader (\d)$", get(f"http://{a}/metrics")[1].decode())
        leaders += int(m.group(1))
    assert leaders == 1


def test_a_reset_sent_to_one_replica_reaches_the_others_and_their_scenes_agree(cluster):
    _, leader_addr = leader_of(cluster)
    # Sent to a follower, so it travels to the leader; watched on the two others.
    to = next(a for a in cluster["addrs"] if a != leader_addr)
    listeners = [Listener(f"ws://{a}/ws") for a in cluster["addrs"] if a != to]
    try:
        sent = time.time()
        status, reply = send("POST", f"http://{to}/api/v1/scene/commands", {"op": "reset", "seed": 7})
        assert status == 200, reply
        # Every other replica's clients see the seed-7 scene within 2 s.
        for lst in listeners:
            took = wait_until("seed 7 on a follower", lambda: any(m["seed"] == 7 for _, m in lst.scenes(sent)), 2.0)
            print(f"reset seen {took:.2f} s after it was sent")
        time.sleep(1.5)
        a = {m["seq"]: m for _, m in listeners[0].scenes(sent) if m["seed"] == 7}
        b = {m["seq"]: m for _, m in listeners[1].scenes(sent) if m["seed"] == 7}
        common = sorted(set(a) & set(b))
        assert len(common) >= 10, f"{len(common)} ticks seen by both"
        for seq in common:
            assert a[seq]["agents"] == b[seq]["agents"], f"seq {seq}: the replicas' scenes differ"
            assert a[seq]["t_secs"] == b[seq]["t_secs"]
    finally:
        for lst in listeners:
            lst.close()


def test_a_routing_change_reaches_every_replica_and_a_canary_is_decided_once(cluster):
    addrs = cluster["addrs"]
    status, _ = send("PUT", f"http://{addrs[1]}/api/v1/models/cv_pair/routing", {"policy": "fixed", "version": "1"})
    assert status == 200
    for a in (addrs[0], addrs[2]):
        took = wait_until("the fixed policy on another replica",
                          lambda: get_json(f"http://{a}/api/v1/models/cv_pair/routing").get("policy") == "fixed", 1.0)
        print(f"routing change in force on {a} after {took:.3f} s")
    # Requests that name no version follow the policy on every replica.
    body = {"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": [0.0] * 16}]}
    for a in addrs:
        _, r = send("POST", f"http://{a}/v2/models/cv_pair/infer", body)
        assert r["model_version"] == "1", (a, r)
    # A canary set on a follower, judged by the leader on failures and latency (the scene does
    # not score cv_pair), with traffic through nginx.
    canary = {"policy": "canary", "incumbent": "1", "candidate": "2",
              "settings": {"steps": [0.5, 1.0], "dwell_secs": 0.5, "min_requests": 5, "max_latency_ratio": 1000.0}}
    status, _ = send("PUT", f"http://{addrs[2]}/api/v1/models/cv_pair/routing", canary)
    assert status == 200
    load = subprocess.Popen(
        [waypoint_binary(), "bench", "--url", f"http://{cluster['url']}", "--model", "cv_pair",
         "--transport", "oip-binary", "--concurrency", "4", "--batch", "1", "--duration-secs", "8", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until("the canary promoted on every replica",
                   lambda: all(get_json(f"http://{a}/api/v1/models/cv_pair/routing").get("version") == "2"
                               for a in addrs), 20)
    finally:
        load.wait(timeout=60)
    logs = []

    def one_log():
        logs[:] = [get_json(f"http://{a}/api/v1/models/cv_pair/routing")["decisions"] for a in addrs]
        return logs[0] == logs[1] == logs[2] and any(d["action"] == "promote" for d in logs[0])

    wait_until("one decision log, the same on every replica", one_log, 3)
    actions = [d["action"] for d in logs[0]]
    assert actions.count("promote") == 1, actions
    assert actions.count("advance") == 1, actions
    assert actions.count("set") == 2, actions


def test_model_loads_unloads_and_batching_changes_reach_every_replica(cluster):
    addrs, repo = cluster["addrs"], cluster["repository"]

    def ready(a, model, version=None):
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/ready"
        try:
            return get(f"http://{a}{path}")[0] == 200
        except urllib.error.HTTPError:
            return False

    assert all(ready(a, "mlp") for a in addrs)
    send("POST", f"http://{addrs[0]}/v2/repository/models/mlp/unload", {})
    for a in addrs[1:]:
        took = wait_until("mlp unloaded everywhere", lambda: not ready(a, "mlp"), 1.0)
        print(f"unload in force on {a} after {took:.3f} s")
    send("POST", f"http://{addrs[1]}/v2/repository/models/mlp/load", {})
    for a in addrs:
        wait_until("mlp loaded everywhere", lambda: ready(a, "mlp"), 2.0)
    # A version written into the shared repository and loaded on one replica is served by all.
    shutil.copytree(repo / "cv_pair" / "2", repo / "cv_pair" / "3")
    send("POST", f"http://{addrs[2]}/v2/repository/models/cv_pair/load", {})
    for a in addrs:
        took = wait_until("version 3 everywhere", lambda: ready(a, "cv_pair", 3), 2.0)
        print(f"new version served on {a} after {took:.3f} s")
    # Batching knobs changed on one replica apply on all.
    status, _ = send("PATCH", f"http://{addrs[0]}/api/v1/models/trajectory_cv/config", {"max_batch_size": 17})
    assert status == 200
    for a in addrs:
        wait_until("the batching change everywhere",
                   lambda: get_json(f"http://{a}/api/v1/models/trajectory_cv/config")["max_batch_size"] == 17, 2.0)


def test_redis_down_inference_goes_on_and_everything_recovers_by_itself(cluster):
    addrs, redis = cluster["addrs"], cluster["redis"]
    _, leader_addr = leader_of(cluster)
    follower = next(a for a in addrs if a != leader_addr)
    lst = Listener(f"ws://{follower}/ws")
    try:
        wait_until("the follower streams", lambda: len(lst.scenes()) > 3, 5)
        redis.stop()
        stopped = time.time()
        body = {"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": [0.5] * 16}]}
        for a in addrs:
            status, _ = send("POST", f"http://{a}/v2/models/trajectory_cv/infer", body)
            assert status == 200
            assert get(f"http://{a}/v2/health/ready")[0] == 200
        for a in addrs:
            wait_until("redis down in the cluster API", lambda: cluster_view(a)["redis"] == "down", 5)
        wait_until("the follower's client told the scene paused",
                   lambda: any(n["level"] == "warning" for n in lst.notices()), 5)
        quiet_from = time.time() + 0.5
        time.sleep(1.0)
        assert not lst.scenes(quiet_from), "no scene reaches a follower while Redis is down"
        assert lst.closed_at is None, "the client stays connected"
        redis.start()
        restarted = time.time()
        for a in addrs:
            wait_until("redis up again", lambda: cluster_view(a)["redis"] == "up", 5 - (time.time() - restarted))
        wait_until("one leader again",
                   lambda: len({cluster_view(a)["leader"] for a in addrs}) == 1 and cluster_view(addrs[0])["leader"],
                   5 - (time.time() - restarted))
        wait_until("the follower streams again", lambda: len(lst.scenes(restarted)) > 0, 5 - (time.time() - restarted))
        print(f"Redis down for {restarted - stopped:.1f} s; everything recovered "
              f"{time.time() - restarted:.2f} s after it came back")
        assert any(n["level"] == "info" for n in lst.notices())
        # The leader kept the scene: the same leader, no takeover.
        assert leader_of(cluster)[1] == leader_addr
    finally:
        lst.close()


def test_the_leader_killed_another_leads_and_the_scene_goes_on(cluster):
    addrs, procs = cluster["addrs"], cluster["procs"]
    leader, leader_addr = leader_of(cluster)
    survivors = [a for a in addrs if a != leader_addr]
    direct = [Listener(f"ws://{a}/ws") for a in survivors]
    via_nginx = [Listener(f"ws://{cluster['url']}/ws") for _ in range(REPLICAS)]
    try:
        wait_until("every client streams", lambda: all(len(x.scenes()) > 3 for x in direct + via_nginx), 5)
        procs[leader_addr].send_signal(signal.SIGKILL)
        procs[leader_addr].wait(timeout=10)
        killed = time.time()
        took = wait_until("a new leader",
                          lambda: all((cluster_view(a) or {}).get("leader") not in (None, leader) for a in survivors),
                          5)
        print(f"new leader {took:.2f} s after the kill")
        wait_until("the scene goes on for the survivors' clients",
                   lambda: all(len(x.scenes(killed + took)) > 3 for x in direct), 5)
        for x in direct:
            assert x.closed_at is None, "a survivor's client stays connected"
            times = [t for t, _ in x.scenes()]
            gap = max(b - a for a, b in zip(times, times[1:]))
            assert gap < 5.0, f"the scene paused {gap:.1f} s"
        # The killed replica's clients (nginx spreads new connections least-connected first)
        # were closed; they reconnect through nginx and stream again.
        dropped = [x for x in via_nginx if x.closed_at is not None]
        assert dropped, "nginx spread three clients over three replicas, one on the killed one"
        again = [Listener(f"ws://{cluster['url']}/ws") for _ in dropped]
        try:
            wait_until("reconnected clients stream", lambda: all(len(x.scenes()) > 3 for x in again), 5)
        finally:
            for x in again:
                x.close()
    finally:
        for x in direct + via_nginx:
            x.close()
    # The killed replica comes back at its address and follows.
    cluster["start"](leader_addr)
    wait_until("the restarted replica follows the new leader",
               lambda: (cluster_view(leader_addr) or {}).get("leader") not in (None, leader), 10)
    assert not cluster_view(leader_addr)["leading"]
    # nginx takes it back once its fail_timeout is over.
    body = {"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": [0.25] * 16}]}
    start = served(leader_addr)

    def back_in_rotation():
        for _ in range(6):
            send("POST", f"http://{cluster['url']}/v2/models/trajectory_cv/infer", body)
        return served(leader_addr) > start

    wait_until("nginx sends requests to the restarted replica", back_in_rotation, 15)


def test_inference_through_nginx_survives_a_killed_replica(cluster):
    url = f"http://{cluster['url']}"
    addrs, procs = cluster["addrs"], cluster["procs"]
    before = [served(a) for a in addrs]
    bench = subprocess.run(
        [waypoint_binary(), "bench", "--url", url, "--model", "trajectory_cv", "--transport", "oip-binary",
         "--concurrency", "16", "--batch", "1", "--duration-secs", "2", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    warm = json.loads(bench.stdout)["results"][0]
    assert warm["errors"] == 0
    after = [served(a) for a in addrs]
    assert all(a > b for a, b in zip(after, before)), f"every replica serves through nginx: {before} -> {after}"
    # Kill one replica without warning while the load runs.
    victim = addrs[0]
    load = subprocess.Popen(
        [waypoint_binary(), "bench", "--url", url, "--model", "trajectory_cv", "--transport", "oip-binary",
         "--concurrency", "16", "--batch", "1", "--duration-secs", "6", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    time.sleep(2.5)
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait(timeout=10)
    out, _ = load.communicate(timeout=120)
    assert load.returncode == 0
    r = json.loads(out)["results"][0]
    print(f"through nginx, a replica killed mid-run: {r}")
    assert r["errors"] == 0, r
    assert r["requests_per_sec"] > 0
    # The survivors answered after the kill.
    survivors = [served(a) for a in addrs[1:]]
    assert all(s > a for s, a in zip(survivors, after[1:]))
