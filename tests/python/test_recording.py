"""Recording and replay, read by independent readers: the PyPI `mcap` reader opens a recording
the server wrote (`serve --record`, stopped by SIGTERM), counts messages per channel against the
file's own statistics and decodes every message (protobuf through the schemas in the file, JSON
checked against the JSON Schemas in the file); a replay of that recording gives the detections
the live run gave; a file holding nothing but point clouds plays too; `seek` moves in a replay."""

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from mcap.decoder import DecoderFactory as McapDecoderFactory
from mcap.reader import make_reader
from mcap.writer import Writer
from mcap_protobuf.decoder import DecoderFactory

from conftest import ROOT, start_server, waypoint_binary

MODELS = ROOT / "models"
RECORD_SECS = 9

FOXGLOVE_TOPICS = {
    "/lidar": "foxglove.PointCloud",
    "/scene/entities": "foxglove.SceneUpdate",
    "/perception/detections": "foxglove.SceneUpdate",
    "/perception/tracks": "foxglove.SceneUpdate",
    "/prediction/paths": "foxglove.SceneUpdate",
    "/gps": "foxglove.LocationFix",
}
OWN_TOPICS = ["/waypoint/config", "/waypoint/frame", "/waypoint/tracks", "/waypoint/predictions",
              "/waypoint/health", "/waypoint/evaluation"]


def send(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "live.mcap"
    proc, addr = start_server(MODELS, "--record", str(out), "--seed", "5")
    try:
        # A routing decision goes into the recording too.
        status, _ = send("PUT", f"http://{addr}/api/v1/models/trajectory/routing",
                         {"policy": "fixed", "version": "2"})
        assert status == 200
        time.sleep(RECORD_SECS)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    return out


class JsonDecoderFactory(McapDecoderFactory):
    def decoder_for(self, message_encoding, schema):
        return json.loads if message_encoding == "json" else None


def read_all(path):
    counts, decoded = Counter(), {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory(), JsonDecoderFactory()])
        summary = reader.get_summary()
        for schema, channel, message, proto in reader.iter_decoded_messages(log_time_order=False):
            counts[channel.topic] += 1
            decoded.setdefault(channel.topic, []).append((schema, channel, message, proto))
    return summary, counts, decoded


def json_messages(path, topic):
    out = []
    with open(path, "rb") as f:
        for _, channel, message in make_reader(f).iter_messages(topics=[topic], log_time_order=False):
            out.append(json.loads(message.data))
    return out


def test_a_recording_is_indexed_compressed_and_every_message_decodes(recording):
    summary, counts, decoded = read_all(recording)
    # The file is closed properly: a summary with statistics, chunk indexes and zstd chunks.
    assert summary is not None and summary.statistics is not None
    assert summary.chunk_indexes and all(c.compression == "zstd" for c in summary.chunk_indexes)
    by_id = {c.id: c.topic for c in summary.channels.values()}
    stats = {by_id[i]: n for i, n in summary.statistics.channel_message_counts.items()}
    assert stats == dict(counts), "message counts per channel agree with the file's own statistics"
    for topic, schema_name in FOXGLOVE_TOPICS.items():
        assert counts[topic] > 0, f"no messages on {topic}: {dict(counts)}"
        schema, channel, _, proto = decoded[topic][0]
        assert schema.name == schema_name and schema.encoding == "protobuf" and channel.message_encoding == "protobuf"
        assert all(d[3] is not None for d in decoded[topic])
    # About 10 ticks a second.
    assert RECORD_SECS * 7 <= counts["/waypoint/frame"] <= (RECORD_SECS + 3) * 10
    assert counts["/lidar"] == counts["/waypoint/frame"]
    cloud = decoded["/lidar"][-1][3]
    assert cloud.point_stride == 16 and [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"]
    assert len(cloud.data) > 16 * 10000
    boxes = decoded["/scene/entities"][-1][3]
    assert len(boxes.entities) > 5 and boxes.entities[0].cubes
    fix = decoded["/gps"][-1][3]
    assert 47 < fix.latitude < 49 and 11 < fix.longitude < 12
    for topic in OWN_TOPICS + ["/waypoint/routing"]:
        assert counts[topic] > 0, f"no messages on {topic}"
        schema, channel, _, _ = decoded[topic][0]
        assert schema.encoding == "jsonschema" and channel.message_encoding == "json"
        validator = jsonschema.Draft202012Validator(json.loads(schema.data))
        for d in decoded[topic]:
            validator.validate(d[3])
    # The stack's outputs are there with the versions that answered.
    tracks = json_messages(recording, "/waypoint/tracks")
    assert any(t["detections"] for t in tracks) and any(t["fused"] for t in tracks)
    preds = json_messages(recording, "/waypoint/predictions")
    # The people's model answered at the fixed version 2 (road users go to trajectory_road).
    people = set()
    for p in preds:
        models = p.get("models") or [p["model"]] * p["count"]
        versions = p.get("versions") or [p["version"]] * p["count"]
        people |= {v for m, v in zip(models, versions) if m == "trajectory"}
    assert people == {"2"}, people
    assert json_messages(recording, "/waypoint/routing")[0]["action"] == "set"


def test_a_replay_gives_the_detections_the_live_run_gave_and_compares_versions(recording, tmp_path):
    prefix = tmp_path / "replayed"
    run = subprocess.run(
        [waypoint_binary(), "eval", "replay", str(recording), "--model", "trajectory", "--versions", "1,2",
         "--model-repository", str(MODELS), "--record-prefix", str(prefix), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    versions = {v["version"]: v for v in out["versions"]}
    assert set(versions) == {"1", "2"}
    for v in versions.values():
        assert v["frames"] >= RECORD_SECS * 7
        assert v["metrics"]["ade_truth_m"]["samples"] > 0, v
    # The two versions predict differently on the same drive.
    assert versions["1"]["metrics"]["ade_truth_m"]["value"] != versions["2"]["metrics"]["ade_truth_m"]["value"]

    live = {t["seq"]: t for t in json_messages(recording, "/waypoint/tracks")}
    replayed = {t["seq"]: t for t in json_messages(f"{prefix}-v1.mcap", "/waypoint/tracks")}
    common = set(live) & set(replayed)
    # Live, a sweep is skipped while perception is busy; the replay processed every one.
    assert len(common) >= 0.8 * len(live), (len(live), len(replayed))
    for seq in sorted(common):
        assert live[seq]["detections"] == replayed[seq]["detections"], f"sweep {seq} differs"
        assert live[seq]["version"] == replayed[seq]["version"]
    # The replay's frames are the recording's, sensors and truth alike.
    frames_live = json_messages(recording, "/waypoint/frame")
    frames_replayed = {f["seq"]: f for f in json_messages(f"{prefix}-v1.mcap", "/waypoint/frame")}
    for f in frames_live[:20]:
        assert frames_replayed[f["seq"]] == f


def test_a_file_of_point_clouds_alone_plays(recording, tmp_path):
    """Another tool's recording: only a foxglove.PointCloud topic (copied from ours, under
    another name, with no Waypoint channel)."""
    foreign = tmp_path / "clouds.mcap"
    with open(recording, "rb") as f, open(foreign, "wb") as out:
        reader = make_reader(f)
        w = Writer(out)
        w.start(profile="", library="test")
        ids = {}
        for schema, channel, message in reader.iter_messages(topics=["/lidar"]):
            if channel.id not in ids:
                sid = w.register_schema(schema.name, schema.encoding, schema.data)
                ids[channel.id] = w.register_channel("/velodyne_points", "protobuf", sid)
            w.add_message(ids[channel.id], log_time=message.log_time, data=message.data,
                          publish_time=message.publish_time)
        w.finish()
    prefix = tmp_path / "foreign"
    run = subprocess.run(
        [waypoint_binary(), "eval", "replay", str(foreign), "--model", "detection", "--versions", "6",
         "--model-repository", str(MODELS), "--record-prefix", str(prefix), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    tracks = json_messages(f"{prefix}-v6.mcap", "/waypoint/tracks")
    assert len(tracks) >= RECORD_SECS * 7 and sum(len(t["detections"]) for t in tracks) > 0


def test_a_replay_serves_seeks_and_refuses_what_only_a_simulation_takes(recording, tmp_path):
    proc, addr = start_server(MODELS, "--replay", str(recording), "--speed", "4")
    try:
        deadline = time.time() + 20
        t = 0.0
        while time.time() < deadline and t < 2.0:
            _, scene = send("GET", f"http://{addr}/api/v1/scene")
            t = (scene or {}).get("t_secs") or 0.0
            time.sleep(0.1)
        assert t >= 2.0, "the replay plays"
        status, reply = send("POST", f"http://{addr}/api/v1/scene/commands", {"op": "seek", "t_secs": 0.5})
        assert status == 200, reply
        time.sleep(0.3)
        _, scene = send("GET", f"http://{addr}/api/v1/scene")
        assert scene["t_secs"] < t, (scene["t_secs"], t)
        status, reply = send("POST", f"http://{addr}/api/v1/scene/commands", {"op": "add_agent", "kind": "vehicle"})
        assert status == 409 or status == 400, (status, reply)
        assert "replaying" in json.dumps(reply)
        status, reply = send("POST", f"http://{addr}/api/v1/scene/commands", {"op": "seek", "t_secs": -1})
        assert status in (400, 409)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_shipped_foxglove_layout_names_only_topics_a_recording_has(recording):
    import re
    layout = json.loads((ROOT / "deploy/foxglove/waypoint.json").read_text())
    panels = layout["configById"]
    with open(recording, "rb") as f:
        topics = {c.topic for c in make_reader(f).get_summary().channels.values()}
    named = set(panels["3D!waypoint"]["topics"])
    for key, cfg in panels.items():
        for p in cfg.get("paths", []):
            named.add(re.match(r"(/[\w/]+)", p["value"]).group(1).rsplit(".", 1)[0])
    assert named and named <= topics, named - topics
