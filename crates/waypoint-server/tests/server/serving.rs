//! The serving core: OIP errors, admission control, hot swap under load, load/unload cycles,
//! inference over the WebSocket.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waypoint_models::{Model, ModelError, Tensor};

use super::*;

const CV_CONFIG: &str = r#"
platform = "waypoint"
backend = "constant_velocity"
max_batch_size = 64
max_queue_delay_us = 200
version_policy = "latest"
[[inputs]]
name = "history"
datatype = "FP32"
dims = [-1, 8, 2]
[[outputs]]
name = "trajectory"
datatype = "FP32"
dims = [-1, 12, 2]
"#;

/// Identity over `x` FP32 [-1, 4] that takes 20 ms per batch: lets a test fill the queue.
struct Slow;
impl Model for Slow {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        std::thread::sleep(Duration::from_millis(20));
        let mut y = inputs[0].clone();
        y.name = "y".into();
        Ok(vec![y])
    }
}

fn repo_with(models: &[(&str, &str, &[u64])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, config, versions) in models {
        let m = dir.path().join(name);
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("config.toml"), config).unwrap();
        for v in *versions {
            std::fs::create_dir_all(m.join(v.to_string())).unwrap();
        }
    }
    dir
}

fn config_for(repo: &Path) -> ServerConfig {
    ServerConfig { model_repository: repo.to_path_buf(), autostart: false, ..ServerConfig::default() }
}

fn history_json(rows: usize) -> Value {
    let data: Vec<f32> = (0..rows * 16).map(|i| (i % 16) as f32 * 0.5).collect();
    json!({"id": "q", "inputs": [{"name": "history", "shape": [rows, 8, 2], "datatype": "FP32", "data": data}]})
}

async fn post(url: &str, body: impl Into<reqwest::Body>, headers: &[(&str, String)]) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, v.clone());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

mod oip {
    use super::*;

    #[tokio::test]
    async fn bad_requests_get_the_right_status_and_a_json_error() {
        let repo = repo_with(&[("cv", CV_CONFIG, &[1])]);
        let server = TestServer::start(ServerConfig { max_request_bytes: 64 << 10, ..config_for(repo.path()) }).await;
        let base = format!("http://{}/v2/models", server.addr);

        let (s, v) = post(&format!("{base}/cv/infer"), history_json(2).to_string(), &[]).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["id"], "q");
        assert_eq!(v["outputs"][0]["shape"], json!([2, 12, 2]));

        let cases: Vec<(String, String, u16, &str)> = vec![
            (format!("{base}/cv/infer"), "{not json".into(), 400, "malformed"),
            (
                format!("{base}/cv/infer"),
                json!({"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "INT32", "data": vec![1; 16]}]})
                    .to_string(),
                400,
                "datatype",
            ),
            (
                format!("{base}/cv/infer"),
                json!({"inputs": [{"name": "history", "shape": [1, 16], "datatype": "FP32", "data": vec![1.0; 16]}]})
                    .to_string(),
                400,
                "shape",
            ),
            (
                format!("{base}/cv/infer"),
                json!({"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1.0]}]}).to_string(),
                400,
                "no input",
            ),
            (format!("{base}/cv/infer"), history_json(65).to_string(), 400, "max_batch_size"),
            (format!("{base}/ghost/infer"), history_json(1).to_string(), 404, "not loaded"),
            (format!("{base}/cv/versions/9/infer"), history_json(1).to_string(), 404, "no version"),
            (format!("{base}/cv/infer"), history_json(3000).to_string(), 413, "too large"),
        ];
        for (url, body, status, needle) in cases {
            let (s, v) = post(&url, body, &[]).await;
            assert_eq!(s, status, "{url}: {v}");
            let msg = v["error"].as_str().unwrap_or_else(|| panic!("no error field: {v}"));
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
        }

        // Binary extension: a correct body, then the same body cut short.
        let header = json!({"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]});
        let mut body = serde_json::to_vec(&header).unwrap();
        let n = body.len();
        for i in 0..16 {
            body.extend_from_slice(&(i as f32).to_le_bytes());
        }
        let h = [("Inference-Header-Content-Length", n.to_string())];
        let (s, v) = post(&format!("{base}/cv/infer"), body.clone(), &h).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = post(&format!("{base}/cv/infer"), body[..body.len() - 5].to_vec(), &h).await;
        assert_eq!(s, 400);
        assert!(v["error"].as_str().unwrap().contains("remain"));
        let (s, _) =
            post(&format!("{base}/cv/infer"), body, &[("Inference-Header-Content-Length", "abc".into())]).await;
        assert_eq!(s, 400);
        // Metrics count the outcomes per model and version.
        let bad =
            server.metric("waypoint_inference_requests_total{model=\"cv\",version=\"1\",status=\"bad_request\"}").await;
        assert!(bad >= 4.0, "{bad}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_with_retry_after() {
        waypoint_models::native::register("slow_identity", Arc::new(|_: &Path| Ok(Box::new(Slow) as Box<dyn Model>)));
        let slow = r#"
platform = "waypoint"
backend = "slow_identity"
max_batch_size = 0
queue_capacity = 2
[[inputs]]
name = "x"
datatype = "FP32"
dims = [4]
[[outputs]]
name = "y"
datatype = "FP32"
dims = [4]
"#;
        let repo = repo_with(&[("slow", slow, &[1])]);
        let server = TestServer::start(config_for(repo.path())).await;
        let url = format!("http://{}/v2/models/slow/infer", server.addr);
        let body =
            json!({"inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}).to_string();
        let client = reqwest::Client::new();
        let sends = (0..12).map(|_| client.post(&url).body(body.clone()).send());
        let responses = futures_util::future::join_all(sends).await;
        let mut ok = 0;
        let mut busy = 0;
        for r in responses {
            let r = r.unwrap();
            match r.status().as_u16() {
                200 => ok += 1,
                503 => {
                    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
                    let v: Value = r.json().await.unwrap();
                    assert!(v["error"].as_str().unwrap().contains("queue is full"));
                    busy += 1;
                }
                other => panic!("unexpected status {other}"),
            }
        }
        assert!(ok >= 2 && busy >= 1, "ok {ok}, busy {busy}");
        server.stop().await;
    }
}

mod lifecycle {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_request_fails_while_versions_are_swapped_under_load() {
        let repo = repo_with(&[("cv", CV_CONFIG, &[1])]);
        let server = TestServer::start(config_for(repo.path())).await;
        let url = format!("http://{}/v2/models/cv/infer", server.addr);
        let load_url = format!("http://{}/v2/repository/models/cv/load", server.addr);
        let stop_at = Instant::now() + Duration::from_secs(3);
        let ok = Arc::new(AtomicU64::new(0));
        let versions_seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (url, ok, seen) = (url.clone(), ok.clone(), versions_seen.clone());
            workers.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let body = history_json(3).to_string();
                let mut failures = Vec::new();
                while Instant::now() < stop_at {
                    let r = client.post(&url).body(body.clone()).send().await.unwrap();
                    let status = r.status();
                    let v: Value = r.json().await.unwrap();
                    if status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                        seen.lock().unwrap().insert(v["model_version"].as_str().unwrap().to_string());
                    } else {
                        failures.push(format!("{status}: {v}"));
                    }
                }
                failures
            }));
        }
        // Swap between versions 1, 2, 3 while the load runs.
        let client = reqwest::Client::new();
        let mut swaps = 0;
        while Instant::now() < stop_at - Duration::from_millis(300) {
            let next = swaps % 3 + 2;
            std::fs::create_dir_all(repo.path().join("cv").join(next.to_string())).unwrap();
            let r = client.post(&load_url).body("{}").send().await.unwrap();
            assert_eq!(r.status(), 200);
            std::fs::remove_dir_all(repo.path().join("cv").join(next.to_string())).unwrap();
            swaps += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut failures = Vec::new();
        for w in workers {
            failures.extend(w.await.unwrap());
        }
        assert!(
            failures.is_empty(),
            "{} failed requests, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
        assert!(ok.load(Ordering::Relaxed) > 100, "only {} requests", ok.load(Ordering::Relaxed));
        assert!(swaps >= 5);
        assert!(versions_seen.lock().unwrap().len() >= 2, "requests saw {:?}", versions_seen.lock().unwrap());
        server.stop().await;
    }

    /// Worker threads of this process whose name starts with `prefix` (thread names are the
    /// engine's `wp-<model>-<version>-<instance>`, cut to 15 bytes by the kernel).
    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }

    #[tokio::test]
    async fn load_unload_cycles_free_every_version_and_its_threads() {
        let mut cfg = CV_CONFIG.replace("max_batch_size = 64", "max_batch_size = 64\ninstances = 2");
        cfg.push('\n');
        let repo = repo_with(&[("cyc", &cfg, &[1])]);
        let server = TestServer::start(config_for(repo.path())).await;
        let client = reqwest::Client::new();
        let base = format!("http://{}/v2", server.addr);
        let mut dropped_versions = Vec::new();
        for _ in 0..100 {
            dropped_versions.push(Arc::downgrade(&server.state.registry.get("cyc", None).unwrap()));
            assert_eq!(client.post(format!("{base}/repository/models/cyc/unload")).send().await.unwrap().status(), 200);
            assert_eq!(client.post(format!("{base}/repository/models/cyc/load")).send().await.unwrap().status(), 200);
            let r =
                client.post(format!("{base}/models/cyc/infer")).body(history_json(2).to_string()).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        // Worker threads exit once their version is gone, and a new thread takes its name a
        // moment after it starts; give both a moment.
        let mut threads = usize::MAX;
        for _ in 0..100 {
            threads = threads_named("wp-cyc-");
            if threads == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(threads, 2, "only the loaded version's two instances should remain");
        let alive = dropped_versions.iter().filter(|w| w.upgrade().is_some()).count();
        assert_eq!(alive, 0, "{alive} unloaded versions are still in memory");
        server.stop().await;
    }
}

mod websocket {
    use super::*;

    #[tokio::test]
    async fn infer_and_batch_over_both_subprotocols() {
        let repo = repo_with(&[("cv", CV_CONFIG, &[1])]);
        let server = TestServer::start(config_for(repo.path())).await;
        for sp in [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON] {
            let mut ws = server.connect(sp).await;
            next_msg(&mut ws).await;
            let hist: Vec<f32> = (0..8).flat_map(|i| [i as f32, 2.0 * i as f32]).collect();
            let data = if sp == SUBPROTOCOL_MSGPACK {
                let bytes: Vec<u8> = hist.iter().flat_map(|v| v.to_le_bytes()).collect();
                waypoint_protocol::Bulk::Bytes(bytes)
            } else {
                waypoint_protocol::Bulk::Numbers(hist.iter().map(|v| f64::from(*v)).collect())
            };
            let tensor = waypoint_protocol::WireTensor {
                name: "history".into(),
                datatype: "FP32".into(),
                shape: vec![1, 8, 2],
                data,
            };
            let req = waypoint_protocol::InferRequest {
                model: "cv".into(),
                version: None,
                inputs: vec![tensor.clone()],
                outputs: None,
            };
            let msg = waypoint_protocol::ClientMessage::Infer {
                id: waypoint_protocol::RequestId::Num(1),
                request: req.clone(),
            };
            let codec = if sp == SUBPROTOCOL_MSGPACK {
                waypoint_protocol::Codec::MsgPack
            } else {
                waypoint_protocol::Codec::Json
            };
            let bytes = waypoint_protocol::encode(codec, &msg).unwrap();
            let frame = if sp == SUBPROTOCOL_MSGPACK {
                Message::Binary(bytes.into())
            } else {
                Message::Text(String::from_utf8(bytes).unwrap().into())
            };
            ws.send(frame).await.unwrap();
            let result = wait_for(&mut ws, |m| match m {
                ServerMessage::InferResult { result, .. } => Some(result.clone()),
                _ => None,
            })
            .await;
            assert_eq!(result.version, "1");
            let out = &result.outputs[0];
            assert_eq!(out.shape, vec![1, 12, 2]);
            let values =
                out.data.to_f64(waypoint_protocol::BulkFormat::F32, waypoint_protocol::Compression::None).unwrap();
            // Constant velocity (1, 2) per step from (7, 14).
            assert_eq!((values[0], values[1], values[22], values[23]), (8.0, 16.0, 19.0, 38.0));

            // A batch with a bad sibling: the good requests still succeed.
            let mut bad = req.clone();
            bad.inputs[0].shape = vec![1, 4, 4];
            let mut unknown = req.clone();
            unknown.model = "ghost".into();
            let batch = waypoint_protocol::ClientMessage::Batch {
                id: waypoint_protocol::RequestId::Str("b".into()),
                requests: vec![req.clone(), bad, unknown, req.clone()],
            };
            let bytes = waypoint_protocol::encode(codec, &batch).unwrap();
            let frame = if sp == SUBPROTOCOL_MSGPACK {
                Message::Binary(bytes.into())
            } else {
                Message::Text(String::from_utf8(bytes).unwrap().into())
            };
            ws.send(frame).await.unwrap();
            let results = wait_for(&mut ws, |m| match m {
                ServerMessage::BatchResult { results, .. } => Some(results.clone()),
                _ => None,
            })
            .await;
            assert_eq!(results.len(), 4);
            assert!(results[0].result.is_some() && results[3].result.is_some());
            assert_eq!(serde_json::to_value(results[1].error.as_ref().unwrap().code).unwrap(), "bad_input");
            assert_eq!(serde_json::to_value(results[2].error.as_ref().unwrap().code).unwrap(), "not_found");
        }
        server.stop().await;
    }
}

mod control {
    use super::*;

    #[tokio::test]
    async fn control_api_drives_the_scene_and_batching_and_matches_its_openapi() {
        let repo = repo_with(&[("cv", CV_CONFIG, &[1])]);
        let server = TestServer::start(ServerConfig { autostart: true, speed: 5.0, ..config_for(repo.path()) }).await;
        let base = format!("http://{}", server.addr);
        let client = reqwest::Client::new();

        let doc: Value = client.get(format!("{base}/api/openapi.json")).send().await.unwrap().json().await.unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        // Every parameterless GET in the document answers (no 404: the document matches the router).
        for (path, ops) in doc["paths"].as_object().unwrap() {
            if ops.get("get").is_some() && !path.contains('{') {
                let s = client.get(format!("{base}{path}")).send().await.unwrap().status().as_u16();
                assert!(s == 200 || s == 503, "{path}: {s}");
            }
        }

        let (s, v) = post(
            &format!("{base}/api/v1/scene/commands"),
            json!({"op": "add_agent", "kind": "vehicle"}).to_string(),
            &[],
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let id = v["agent_id"].as_u64().unwrap();
        let mut seen = false;
        for _ in 0..50 {
            let scene: Value = client.get(format!("{base}/api/v1/scene")).send().await.unwrap().json().await.unwrap();
            if scene["agents"].as_array().is_some_and(|a| a.iter().any(|x| x["id"] == id)) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen, "added agent never appeared in /api/v1/scene");
        let (s, v) = post(
            &format!("{base}/api/v1/scene/commands"),
            json!({"op": "remove_agent", "agent_id": 4242}).to_string(),
            &[],
        )
        .await;
        assert_eq!(s, 400);
        assert!(v["error"].as_str().unwrap().contains("4242"));
        let (s, _) = post(&format!("{base}/api/v1/scene/commands"), "{\"op\": \"warp\"}", &[]).await;
        assert_eq!(s, 400);

        // Batching knobs change live and show in the model's configuration.
        let url = format!("{base}/api/v1/models/cv/config");
        let r = client
            .patch(&url)
            .body(json!({"max_batch_size": 8, "max_queue_delay_us": 0}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cfg: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!((cfg["max_batch_size"].as_u64(), cfg["max_queue_delay_us"].as_u64()), (Some(8), Some(0)));
        let (s, v) = post(&format!("{base}/v2/models/cv/infer"), history_json(9).to_string(), &[]).await;
        assert_eq!(s, 400, "{v}");
        let r = client.patch(&url).body(json!({"instances": 0}).to_string()).send().await.unwrap();
        assert_eq!(r.status(), 400, "invalid knobs are refused");
        let r = client.patch(&url).body(json!({"colour": "red"}).to_string()).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let (s, _) = post(&format!("{base}/v2/models/cv/infer"), history_json(8).to_string(), &[]).await;
        assert_eq!(s, 200, "the model still serves after a refused change");
        server.stop().await;
    }
}

mod cache {
    use super::*;

    /// Calls that reached this module's counting model.
    static CALLS: AtomicU64 = AtomicU64::new(0);

    /// Scales `x` FP32 [4] by `factor`, counting its calls in `calls` (one counter per test, as
    /// the tests run in parallel).
    struct Scaled {
        calls: &'static AtomicU64,
        factor: f32,
    }
    impl Model for Scaled {
        fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let y: Vec<f32> = Tensor::named(inputs, "x")?.as_f32()?.iter().map(|v| v * self.factor).collect();
            Tensor::new("y", vec![4], waypoint_models::TensorData::F32(y)).map(|t| vec![t])
        }
    }

    /// Registers a counting backend and returns its `config.toml` (with `response_cache = true`).
    pub(super) fn counted_backend(backend: &str, calls: &'static AtomicU64, factor: f32) -> String {
        let make = move |_: &Path| Ok(Box::new(Scaled { calls, factor }) as Box<dyn Model>);
        waypoint_models::native::register(backend, Arc::new(make));
        COUNTED.replace("counted_double", backend)
    }

    const COUNTED: &str = r#"
platform = "waypoint"
backend = "counted_double"
max_batch_size = 0
response_cache = true
[[inputs]]
name = "x"
datatype = "FP32"
dims = [4]
[[outputs]]
name = "y"
datatype = "FP32"
dims = [4]
"#;

    #[tokio::test]
    async fn the_same_request_is_answered_from_the_cache_byte_for_byte_and_changed_files_start_afresh() {
        let config = counted_backend("counted_double", &CALLS, 2.0);
        let repo = repo_with(&[("dbl", &config, &[1])]);
        let server = TestServer::start(config_for(repo.path())).await;
        let base = format!("http://{}", server.addr);
        let url = format!("{base}/v2/models/dbl/infer");
        let body =
            |x: [f32; 4]| json!({"inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": x}]}).to_string();
        let client = reqwest::Client::new();
        let send = |b: String| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let r = client.post(&url).body(b).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap()
            }
        };
        let first = send(body([1.0, 2.0, 3.0, 4.0])).await;
        let calls = CALLS.load(Ordering::Relaxed);
        let second = send(body([1.0, 2.0, 3.0, 4.0])).await;
        assert_eq!(first, second, "a hit answers byte for byte as the model did");
        assert_eq!(CALLS.load(Ordering::Relaxed), calls, "the hit reached the model");
        let v: Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(v["outputs"][0]["data"], json!([2.0, 4.0, 6.0, 8.0]));
        // Another input is a miss and reaches the model.
        send(body([1.0, 2.0, 3.0, 5.0])).await;
        assert_eq!(CALLS.load(Ordering::Relaxed), calls + 1);
        let hits = server.metric("waypoint_cache_hits_total{model=\"dbl\",version=\"1\",tier=\"local\"}").await;
        let misses = server.metric("waypoint_cache_misses_total{model=\"dbl\",version=\"1\"}").await;
        assert_eq!((hits, misses), (1.0, 2.0));
        assert_eq!(server.metric("waypoint_cache_entries").await, 2.0, "two distinct requests kept");
        assert!(server.metric("waypoint_cache_bytes").await > 0.0);
        // A reload of the same files is the same model: still a hit.
        let load = format!("{base}/v2/repository/models/dbl/load");
        assert_eq!(client.post(&load).send().await.unwrap().status(), 200);
        send(body([1.0, 2.0, 3.0, 4.0])).await;
        assert_eq!(CALLS.load(Ordering::Relaxed), calls + 1);
        // Changed files are another model: it answers from the model, not from its
        // predecessor's entries.
        std::fs::write(repo.path().join("dbl/1/weights.txt"), "new").unwrap();
        assert_eq!(client.post(&load).send().await.unwrap().status(), 200);
        send(body([1.0, 2.0, 3.0, 4.0])).await;
        assert_eq!(CALLS.load(Ordering::Relaxed), calls + 2);
        server.stop().await;
    }

    #[tokio::test]
    async fn a_stateful_model_cannot_ask_for_the_cache() {
        let config =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/sensor_health/config.toml"))
                .unwrap()
                .replace("instances = 1", "instances = 1\nresponse_cache = true");
        let repo = repo_with(&[("health", &config, &[1])]);
        let server = TestServer::start(config_for(repo.path())).await;
        let r = reqwest::Client::new()
            .post(format!("http://{}/v2/repository/models/health/load", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("response_cache cannot be used"), "{v}");
        server.stop().await;
    }
}

mod redis_cache {
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// Calls that reached this module's counting model.
    static CALLS: AtomicU64 = AtomicU64::new(0);

    /// Debian's redis-server on a free loopback port, without persistence.
    fn start_redis(port: u16) -> Child {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test-all installs Debian's redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn stop(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_share_answers_through_redis_and_serve_on_while_it_is_down() {
        let config = super::cache::counted_backend("counted_negate", &CALLS, -1.0);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let redis = start_redis(port);
        let repo = repo_with(&[("neg", &config, &[1])]);
        let replica = |cache_bytes| ServerConfig {
            redis_url: Some(format!("redis://127.0.0.1:{port}")),
            cache_bytes,
            ..config_for(repo.path())
        };
        let (a, b) = (TestServer::start(replica(1 << 20)).await, TestServer::start(replica(1 << 20)).await);
        let client = reqwest::Client::new();
        let infer = |server: &TestServer, x: [f32; 4]| {
            let url = format!("http://{}/v2/models/neg/infer", server.addr);
            let body = json!({"inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": x}]}).to_string();
            let client = client.clone();
            async move {
                let r = client.post(url).body(body).send().await.unwrap();
                (r.status().as_u16(), r.bytes().await.unwrap())
            }
        };
        let (s, first) = infer(&a, [1.0, 2.0, 3.0, 4.0]).await;
        assert_eq!(s, 200);
        let calls = CALLS.load(Ordering::Relaxed);
        let (s, second) = infer(&b, [1.0, 2.0, 3.0, 4.0]).await;
        assert_eq!(s, 200);
        assert_eq!(first, second, "the other replica's Redis hit answers byte for byte");
        assert_eq!(CALLS.load(Ordering::Relaxed), calls, "a Redis hit reached the model");
        assert_eq!(b.metric("waypoint_cache_hits_total{model=\"neg\",version=\"1\",tier=\"redis\"}").await, 1.0);
        b.wait_metric("waypoint_redis_up", 1.0, 5).await;
        // Redis stops: both replicas answer, uncached, and say Redis is down.
        stop(redis);
        for (i, server) in [&a, &b].into_iter().enumerate() {
            let (s, _) = infer(server, [9.0, 9.0, 9.0, i as f32]).await;
            assert_eq!(s, 200, "inference while Redis is down");
            server.wait_metric("waypoint_redis_up", 0.0, 3).await;
        }
        // Redis is back: within 5 s a new answer is shared again, with no manual step.
        let redis = start_redis(port);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut k = 0.0;
        loop {
            k += 1.0;
            infer(&a, [k, 0.5, 0.5, 0.5]).await;
            let calls = CALLS.load(Ordering::Relaxed);
            let (s, _) = infer(&b, [k, 0.5, 0.5, 0.5]).await;
            assert_eq!(s, 200);
            if CALLS.load(Ordering::Relaxed) == calls {
                break;
            }
            assert!(Instant::now() < deadline, "answers not shared 5 s after Redis returned");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.wait_metric("waypoint_redis_up", 1.0, 5).await;
        stop(redis);
        a.stop().await;
        b.stop().await;
    }
}
