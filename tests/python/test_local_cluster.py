"""`deploy/local-cluster`: one command starts Redis, the replicas and nginx, prints the URLs, and
stops everything it started when told to."""

import json
import signal
import socket
import time
import urllib.request

from conftest import free_port_block, start_local_cluster


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_local_cluster_starts_everything_prints_the_urls_and_stops_it_all():
    port = free_port_block(2)
    redis_port = free_port_block(0)
    proc, text = start_local_cluster(port, redis_port, "--replicas", "2")
    try:
        assert f"http://127.0.0.1:{port}/" in text, text
        assert f"http://127.0.0.1:{port + 2}/" in text, text
        deadline = time.time() + 20
        view = {}
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/cluster", timeout=2) as r:
                    view = json.loads(r.read())
                if view.get("leader") and len(view["replicas"]) == 2:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert view.get("redis") == "up" and len(view.get("replicas", [])) == 2, view
        assert view["leader"] in ("replica-1", "replica-2")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    for p in (port, port + 1, port + 2, redis_port):
        assert not listening(p), f"port {p} still open after the cluster stopped"
