"""Operations: Prometheus's configuration and rules (promtool, Debian's prometheus), the metrics
(promtool check metrics on a live replica), the Grafana dashboard's every query evaluated by a
real Prometheus that scraped a real local cluster under load, a fault drill (a replica killed,
Redis stopped, a sensor fault) with the alerts it fires, and the container and Kubernetes files
checked without a container engine: compose parsed and each replica's command line accepted by
`waypoint serve --check-config`, the Kubernetes manifests against the API schema."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, free_port_block, start_local_cluster, waypoint_binary

DEPLOY = ROOT / "deploy"
# Panels that may legitimately have no data after the minute under load, by title. None: the
# run sets a routing policy (a decision), drives a cached model (hits), and subscribes on a
# follower (relay delay), so every panel has something to show.
NO_DATA_OK: set[str] = set()


def promtool():
    tool = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.path.exists(tool):
        pytest.fail("promtool is not installed: scripts/test-all installs Debian's prometheus")
    return tool


def get(url, timeout=5, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def post(url, body, headers=None, method="POST"):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read() or b"{}")


def test_prometheus_configs_and_rules_pass_promtool():
    tool = promtool()
    for conf in ("prometheus.yml", "compose.yml"):
        r = subprocess.run([tool, "check", "config", str(DEPLOY / "prometheus" / conf)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([tool, "check", "rules", str(DEPLOY / "prometheus" / "rules.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([tool, "test", "rules", "rules.test.yml"], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # Debian's promtool has no Kubernetes service discovery: the k8s scrape config is parsed only.
    k8s = yaml.safe_load((DEPLOY / "k8s" / "prometheus-scrape.yml").read_text())
    assert k8s["scrape_configs"][0]["kubernetes_sd_configs"] == [{"role": "pod"}]
    # Every alert has a runbook entry in OPERATIONS.md.
    ops = (ROOT / "docs" / "OPERATIONS.md").read_text()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 9
    for a in alerts:
        assert f"**{a}**" in ops, f"{a} has no runbook line in docs/OPERATIONS.md"


def test_kubernetes_manifests_pass_the_api_schema():
    validator = Path(os.environ.get("VIRTUAL_ENV", str(ROOT / ".venv"))) / "bin" / "kubernetes-validate"
    if not validator.exists():
        validator = shutil.which("kubernetes-validate")
    files = [str(DEPLOY / "k8s" / f) for f in ("waypoint.yaml", "redis.yaml")]
    r = subprocess.run([str(validator), "--strict", *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    kinds = {d["kind"] for f in files for d in yaml.safe_load_all(Path(f).read_text())}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "PersistentVolumeClaim"} <= kinds


def check_config(args, env):
    return subprocess.run([waypoint_binary(), *args, "--check-config"], capture_output=True, text=True,
                          env={k: v for k, v in {**os.environ, **env}.items() if v is not None}, timeout=60)


def test_compose_replicas_are_accepted_by_waypoint_serve():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "replica-1", "replica-2", "replica-3", "nginx", "prometheus", "grafana"} <= set(services)
    for name in ("replica-1", "replica-2", "replica-3"):
        svc = services[name]
        env = {k: str(v) for k, v in svc["environment"].items()}
        # Compose fills ${WAYPOINT_API_TOKEN:?…} from the caller; the repository path is the
        # image's, so the check uses the same models from this checkout.
        env["WAYPOINT_API_TOKEN"] = "check-token"
        env["WAYPOINT_MODEL_REPOSITORY"] = str(ROOT / "models")
        r = check_config(svc["command"], env)
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
        assert "configuration ok" in r.stdout
    # The same without a token is refused: it listens beyond loopback.
    env["WAYPOINT_API_TOKEN"] = None
    r = check_config(services["replica-1"]["command"], env)
    assert r.returncode != 0
    assert "--api-token" in r.stderr and "--insecure-no-auth" in r.stderr
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "/v2/health/ready" in dockerfile
    assert re.search(r"(?m)^USER waypoint$", dockerfile)


def grafana_queries():
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "waypoint.json").read_text())
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t["expr"]


class Prometheus:
    def __init__(self, work, targets):
        self.port = free_port_block(0)
        conf = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        conf["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        conf["scrape_configs"][0]["static_configs"] = [{"targets": targets}]
        conf["rule_files"] = [str(DEPLOY / "prometheus" / "rules.yml")]
        (work / "prometheus.yml").write_text(yaml.safe_dump(conf))
        server = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.proc = subprocess.Popen(
            [server, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if get(f"http://127.0.0.1:{self.port}/-/ready")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not start: " + (work / "prometheus.log").read_text()[-2000:])

    def query(self, expr):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(get(url)[1])
        assert body["status"] == "success", body
        return body["data"]["result"]

    def firing(self):
        body = json.loads(get(f"http://127.0.0.1:{self.port}/api/v1/alerts")[1])
        return {a["labels"]["alertname"] for a in body["data"]["alerts"] if a["state"] == "firing"}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def observed_cluster(tmp_path_factory):
    """deploy/local-cluster (three replicas, Redis, nginx) on free ports with the shipped models
    (trajectory_cv with its response cache on), scraped every second by Prometheus."""
    work = tmp_path_factory.mktemp("ops")
    repo = work / "models"
    shutil.copytree(ROOT / "models", repo)
    cfg = repo / "trajectory_cv" / "config.toml"
    cfg.write_text(cfg.read_text().replace("instances = 1", "response_cache = true\ninstances = 1"))
    port = free_port_block(3)
    redis_port = free_port_block(0)
    proc, _ = start_local_cluster(port, redis_port, "--", "--model-repository", str(repo))
    replicas = [f"127.0.0.1:{port + i}" for i in (1, 2, 3)]
    deadline = time.time() + 30
    while leader(replicas) is None:
        assert time.time() < deadline, "no leader"
        time.sleep(0.2)
    prom = Prometheus(work, replicas)
    yield {"url": f"127.0.0.1:{port}", "replicas": replicas, "prometheus": prom, "cluster": proc,
           "redis_port": redis_port}
    prom.stop()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def pid_of(needle, program="waypoint"):
    """The process whose command line contains `needle` (and `program`)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd + " " and program in cmd:
            return int(d.name)
    pytest.fail(f"no {program} process with {needle!r}")


def leader(replicas):
    for a in replicas:
        try:
            v = json.loads(get(f"http://{a}/api/v1/cluster", timeout=1)[1])
        except OSError:
            continue
        for r in v["replicas"]:
            if r["id"] == v.get("leader"):
                return r["addr"]
    return None


def test_live_metrics_pass_promtool(observed_cluster):
    for a in observed_cluster["replicas"]:
        deadline = time.time() + 20
        while leader(observed_cluster["replicas"]) is None and time.time() < deadline:
            time.sleep(0.2)
        _, body = get(f"http://{a}/metrics")
        r = subprocess.run([promtool(), "check", "metrics"], input=body, capture_output=True)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()
        text = body.decode()
        assert "waypoint_cluster_leader" in text and "waypoint_scene_running" in text


def test_every_dashboard_query_returns_data_after_a_minute_under_load(observed_cluster):
    c = observed_cluster
    url = f"http://{c['url']}"
    # A routing policy, and load through nginx on a cached and an uncached model.
    status, _ = post(f"http://{leader(c['replicas'])}/api/v1/models/trajectory/routing", {"policy": "newest"},
                     method="PUT")
    assert status == 200
    loads = [
        subprocess.Popen([waypoint_binary(), "bench", "--url", url, "--model", m, "--transport", "oip-binary",
                          "--concurrency", "2", "--batch", "1", "--duration-secs", "60", "--json"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for m in ("trajectory_cv", "fusion")
    ]
    # Subscribers on a follower, so the relay is measured.
    from websockets.sync.client import connect
    follower = next(a for a in c["replicas"] if a != leader(c["replicas"]))
    ws = connect(f"ws://{follower}/ws", subprotocols=["waypoint.v1.json"]).__enter__()
    ws.send(json.dumps({"type": "subscribe", "id": 1, "streams": ["scene"]}))
    for p in loads:
        p.wait(timeout=120)
    ws.close()
    empty = []
    for title, expr in grafana_queries():
        result = c["prometheus"].query(expr)
        if not result and title not in NO_DATA_OK:
            empty.append(f"{title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_a_fault_drill_fires_its_alerts(observed_cluster):
    c = observed_cluster
    prom = c["prometheus"]
    lead = leader(c["replicas"])
    follower = next(a for a in c["replicas"] if a != lead)
    assert not prom.firing() & {"WaypointReplicaDown", "WaypointRedisDown", "WaypointSensorAlarm"}
    start = time.time()
    # A lidar fault for two minutes, a follower killed, Redis stopped.
    status, _ = post(f"http://{lead}/api/v1/scene/commands",
                     {"op": "inject_fault", "sensor": "lidar", "fault": "dropout", "duration_secs": 120})
    assert status == 200
    os.kill(pid_of(f"--addr {follower} "), signal.SIGKILL)
    os.kill(pid_of(f"127.0.0.1:{c['redis_port']}", "redis-server"), signal.SIGTERM)
    want = {"WaypointReplicaDown", "WaypointRedisDown", "WaypointSensorAlarm"}
    fired = {}
    while time.time() - start < 150 and set(fired) != want:
        for a in prom.firing() & want:
            fired.setdefault(a, round(time.time() - start, 1))
        time.sleep(0.5)
    print(f"alerts fired, seconds after the drill began: {fired}")
    (Path(os.environ.get("WAYPOINT_DRILL_REPORT", "/dev/null"))).write_text(json.dumps(fired))
    assert set(fired) == want, fired
