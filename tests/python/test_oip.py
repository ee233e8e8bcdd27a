"""The stock `tritonclient[http]` against the real Waypoint server."""

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import mlp_reference


@pytest.fixture()
def client(server):
    return httpclient.InferenceServerClient(url=server["url"])


def history_batch(n):
    """n straight walks with different velocities: constant velocity predicts them exactly."""
    t = np.arange(8, dtype=np.float32)
    vx = np.linspace(-1.0, 1.5, n, dtype=np.float32)[:, None]
    vy = np.linspace(0.5, -0.5, n, dtype=np.float32)[:, None]
    return np.stack([vx * t + 3.0, vy * t - 2.0], axis=-1).astype(np.float32), vx, vy


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "waypoint"
    assert "binary_tensor_data" in meta["extensions"]
    m = client.get_model_metadata("trajectory_cv")
    assert m["inputs"][0] == {"name": "history", "datatype": "FP32", "shape": [-1, 8, 2]}
    assert m["outputs"][0]["shape"] == [-1, 12, 2]
    assert client.is_model_ready("trajectory_cv")
    assert client.is_model_ready("trajectory_cv", "1")
    assert not client.is_model_ready("trajectory_cv", "7")
    assert not client.is_model_ready("no_such_model")


@pytest.mark.parametrize("binary", [True, False])
def test_infer_native_model(client, binary):
    hist, vx, vy = history_batch(5)
    inp = httpclient.InferInput("history", list(hist.shape), "FP32")
    inp.set_data_from_numpy(hist, binary_data=binary)
    out = httpclient.InferRequestedOutput("trajectory", binary_data=binary)
    res = client.infer("trajectory_cv", [inp], outputs=[out], request_id="req-1")
    pred = res.as_numpy("trajectory")
    assert pred.shape == (5, 12, 2)
    k = np.arange(8, 20, dtype=np.float32)
    expected = np.stack([vx * k + 3.0, vy * k - 2.0], axis=-1)
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-4)
    assert res.get_response()["id"] == "req-1"


@pytest.mark.parametrize("binary", [True, False])
def test_infer_onnx_model_matches_numpy(client, binary):
    x = np.random.default_rng(1).normal(size=(7, 16)).astype(np.float32)
    inp = httpclient.InferInput("x", [7, 16], "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    res = client.infer("mlp", [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)])
    np.testing.assert_allclose(res.as_numpy("y"), mlp_reference(x), rtol=1e-4, atol=1e-5)


def test_default_outputs_are_binary(client):
    hist, _, _ = history_batch(2)
    inp = httpclient.InferInput("history", list(hist.shape), "FP32")
    inp.set_data_from_numpy(hist)
    res = client.infer("trajectory_cv", [inp])
    assert res.as_numpy("trajectory").shape == (2, 12, 2)


def test_compressed_request_and_response(client):
    hist, _, _ = history_batch(64)
    inp = httpclient.InferInput("history", list(hist.shape), "FP32")
    inp.set_data_from_numpy(hist)
    for algo in ["gzip", "deflate"]:
        res = client.infer("trajectory_cv", [inp], request_compression_algorithm=algo, response_compression_algorithm=algo)
        assert res.as_numpy("trajectory").shape == (64, 12, 2)


def test_bad_shape_is_refused(client):
    bad = np.zeros((1, 8, 3), dtype=np.float32)
    inp = httpclient.InferInput("history", [1, 8, 3], "FP32")
    inp.set_data_from_numpy(bad)
    with pytest.raises(InferenceServerException) as e:
        client.infer("trajectory_cv", [inp])
    assert "shape" in str(e.value)
    wrong_type = httpclient.InferInput("history", [1, 8, 2], "FP64")
    wrong_type.set_data_from_numpy(np.zeros((1, 8, 2), dtype=np.float64))
    with pytest.raises(InferenceServerException) as e:
        client.infer("trajectory_cv", [wrong_type])
    assert "datatype" in str(e.value)


def test_repository_index_load_unload(client):
    names = {(m["name"], m.get("state")) for m in client.get_model_repository_index()}
    assert ("trajectory_cv", "READY") in names and ("mlp", "READY") in names
    client.unload_model("mlp")
    assert not client.is_model_ready("mlp")
    x = np.zeros((1, 16), dtype=np.float32)
    inp = httpclient.InferInput("x", [1, 16], "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException):
        client.infer("mlp", [inp])
    index = {m["name"]: m.get("state") for m in client.get_model_repository_index()}
    assert index["mlp"] == "UNAVAILABLE"
    client.load_model("mlp")
    assert client.is_model_ready("mlp")
    res = client.infer("mlp", [inp])
    np.testing.assert_allclose(res.as_numpy("y"), mlp_reference(x), rtol=1e-4, atol=1e-5)


def test_statistics(client):
    stats = client.get_inference_statistics("trajectory_cv")
    s = stats["model_stats"][0]
    assert s["name"] == "trajectory_cv" and s["inference_stats"]["success"]["count"] >= 1


def put_routing(server, model, policy):
    import json
    import urllib.request

    req = urllib.request.Request(
        f"http://{server['url']}/api/v1/models/{model}/routing",
        data=json.dumps(policy).encode(),
        method="PUT",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_a_split_divides_the_stock_clients_requests(server, client):
    """The stock client sends no caller name: each request is a caller of its own, so a 50/50
    split divides its requests (it sent every one to one version when they shared a key)."""
    put_routing(server, "cv_pair", {"policy": "split", "weights": {"1": 1, "2": 1}})
    hist, _, _ = history_batch(1)
    counts = {}
    try:
        for _ in range(400):
            inp = httpclient.InferInput("history", list(hist.shape), "FP32")
            inp.set_data_from_numpy(hist)
            res = client.infer("cv_pair", [inp])
            v = res.get_response()["model_version"]
            counts[v] = counts.get(v, 0) + 1
    finally:
        put_routing(server, "cv_pair", {"policy": "newest"})
    assert set(counts) == {"1", "2"}, counts
    # Binomial(400, 0.5): 200 ± 10 standard deviations is far beyond chance.
    assert 140 <= counts["1"] <= 260, counts
