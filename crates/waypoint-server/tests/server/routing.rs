//! The model lifecycle: sticky splits, shadow traffic, canaries judged on the live scene's
//! ground truth, continuous learning.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waypoint_models::trajectory::model::WEIGHTS_FILE;
use waypoint_models::trajectory::tcn::Trainer;
use waypoint_server::lifecycle::learner::LearnerConfig;
use waypoint_server::lifecycle::online;

use super::*;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/trajectory");

/// Adds the perception the live predictions are made from: the shipped detection model (its
/// newest version) and the fusion model.
fn with_perception(repo: &Path) {
    let models = Path::new(SHIPPED).parent().unwrap();
    for (model, versions) in [("detection", &["6"][..]), ("fusion", &["4"][..])] {
        std::fs::create_dir_all(repo.join(model)).unwrap();
        std::fs::copy(models.join(model).join("config.toml"), repo.join(model).join("config.toml")).unwrap();
        for v in versions {
            std::fs::create_dir_all(repo.join(model).join(v)).unwrap();
            for f in std::fs::read_dir(models.join(model).join(v)).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, repo.join(model).join(v).join(f.file_name().unwrap())).unwrap();
            }
        }
    }
}

/// A repository with the shipped trajectory model as version 1 and, as version 2, a copy whose
/// weights are perturbed (a deliberately worse model), and the perception it predicts from.
fn trajectory_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    with_perception(dir.path());
    let m = dir.path().join("trajectory");
    std::fs::create_dir_all(m.join("1")).unwrap();
    std::fs::create_dir_all(m.join("2")).unwrap();
    std::fs::copy(Path::new(SHIPPED).join("config.toml"), m.join("config.toml")).unwrap();
    let base = Path::new(SHIPPED).join("1").join(WEIGHTS_FILE);
    std::fs::copy(&base, m.join("1").join(WEIGHTS_FILE)).unwrap();
    let mut worse = Trainer::load(&base).unwrap();
    worse.perturb(0.15, 3).unwrap();
    worse.save(&m.join("2").join(WEIGHTS_FILE)).unwrap();
    dir
}

fn live(repo: &Path) -> ServerConfig {
    ServerConfig {
        model_repository: repo.to_path_buf(),
        speed: 10.0,
        learner: LearnerConfig { min_windows: 300, ..LearnerConfig::default() },
        ..ServerConfig::default()
    }
}

async fn put_routing(server: &TestServer, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("http://{}/api/v1/models/trajectory/routing", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn get_json(server: &TestServer, path: &str) -> Value {
    reqwest::get(format!("http://{}{path}", server.addr)).await.unwrap().json().await.unwrap()
}

/// One OIP request for the trajectory model as `client`; returns (status, version).
async fn infer_as(client: &reqwest::Client, addr: SocketAddr, who: &str) -> (u16, String) {
    let data: Vec<f32> = (0..16).map(|i| (i / 2) as f32 * if i % 2 == 0 { 0.5 } else { 0.1 }).collect();
    let body = json!({"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": data}]});
    let resp = client
        .post(format!("http://{addr}/v2/models/trajectory/infer"))
        .header("x-waypoint-client", who)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (status, v["model_version"].as_str().unwrap_or("").to_string())
}

/// Waits until `check` holds on the model's routing description.
async fn wait_routing(server: &TestServer, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = get_json(server, "/api/v1/models/trajectory/routing").await;
        if check(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "routing never got there: {r:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worse_canary_is_rolled_back_and_a_better_one_promoted_without_failed_requests() {
    let repo = trajectory_repo();
    let server = TestServer::start(live(repo.path())).await;
    // Callers keep sending requests throughout; none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        let addr = server.addr;
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = infer_as(&client, addr, &format!("caller-{}", i % 50)).await;
                sent.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Judged on online error: this test runs beside the rest of the suite, where a version's
    // median latency can triple for a few windows by chance (the latency rule has unit tests of
    // its own in `lifecycle::routing`).
    let settings = json!({"steps": [0.25, 0.5, 1.0], "dwell_secs": 1.0, "min_samples": 60, "min_requests": 5,
                          "max_latency_ratio": 20.0});
    // The perturbed version 2 as a canary against version 1: rolled back.
    let (status, r) =
        put_routing(&server, json!({"policy": "canary", "incumbent": "1", "candidate": "2", "settings": settings}))
            .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "running");
    let r = wait_routing(&server, 90, |r| r["policy"] == "fixed").await;
    assert_eq!(r["version"], "1", "{r:#}");
    let decisions = r["decisions"].as_array().unwrap();
    let rollback = decisions.iter().find(|d| d["action"] == "rollback").expect("a rollback decision");
    let ev = &rollback["evidence"];
    assert!(
        ev["candidate"]["error"].as_f64().unwrap() > ev["incumbent"]["error"].as_f64().unwrap(),
        "rolled back on its evidence: {ev:#}"
    );
    assert!(ev["candidate"]["samples"].as_u64().unwrap() >= 60);
    eprintln!("rollback evidence: {ev}");
    // The other way round, version 1 is the better one: promoted through every step.
    let (status, r) =
        put_routing(&server, json!({"policy": "canary", "incumbent": "2", "candidate": "1", "settings": settings}))
            .await;
    assert_eq!(status, 200, "{r}");
    let r = wait_routing(&server, 120, |r| r["policy"] == "fixed").await;
    assert_eq!(r["version"], "1", "{r:#}");
    let actions: Vec<&str> = r["decisions"].as_array().unwrap().iter().filter_map(|d| d["action"].as_str()).collect();
    let last_set = actions.iter().rposition(|a| *a == "set").unwrap();
    assert_eq!(&actions[last_set + 1..], ["advance", "advance", "promote"], "{actions:?}");
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(sent.load(Ordering::Relaxed) > 50);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during the canaries");
    server.stop().await;
}

#[tokio::test]
async fn a_split_is_sticky_per_client_across_requests_and_reconnects() {
    let repo = trajectory_repo();
    let server = TestServer::start(ServerConfig { autostart: false, ..live(repo.path()) }).await;
    let (status, r) = put_routing(&server, json!({"policy": "split", "weights": {"1": 1.0, "2": 1.0}})).await;
    assert_eq!(status, 200, "{r}");
    let client = reqwest::Client::new();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        let who = format!("client-{i}");
        let (s1, v1) = infer_as(&client, server.addr, &who).await;
        let (s2, v2) = infer_as(&client, server.addr, &who).await;
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(v1, v2, "{who} moved between versions");
        seen.insert(v1);
    }
    assert_eq!(seen.len(), 2, "a 50/50 split sends callers to both versions");
    // Over the WebSocket, `?client=` names the caller: the same version after reconnecting.
    for who in ["alice", "bob", "carol", "dave"] {
        let mut versions = Vec::new();
        for _ in 0..2 {
            let mut req = format!("ws://{}/ws?client={who}", server.addr).into_client_request().unwrap();
            req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL_JSON.parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let msg = json!({"type": "infer", "id": 1, "model": "trajectory",
                             "inputs": [{"name": "history", "datatype": "FP32", "shape": [1, 8, 2], "data": vec![0.0; 16]}]});
            ws.send(Message::Text(msg.to_string().into())).await.unwrap();
            loop {
                let m = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
                if let Some(ServerMessage::InferResult { result, .. }) = decode(&m) {
                    versions.push(result.version);
                    break;
                }
            }
            ws.close(None).await.unwrap();
        }
        assert_eq!(versions[0], versions[1], "{who} moved after reconnecting");
    }
    // A new weighting may move callers, and a bad policy is refused.
    let (status, r) = put_routing(&server, json!({"policy": "split", "weights": {"1": 1.0, "7": 1.0}})).await;
    assert_eq!(status, 400, "{r}");
    let (status, _) = put_routing(&server, json!({"policy": "warp"})).await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn shadow_traffic_never_changes_the_reply() {
    let repo = trajectory_repo();
    let server = TestServer::start(ServerConfig { autostart: false, ..live(repo.path()) }).await;
    let client = reqwest::Client::new();
    let body = |v: Option<&str>| {
        let url = match v {
            Some(v) => format!("http://{}/v2/models/trajectory/versions/{v}/infer", server.addr),
            None => format!("http://{}/v2/models/trajectory/infer", server.addr),
        };
        let data: Vec<f32> = (0..16).map(|i| i as f32 * 0.25).collect();
        (url, json!({"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": data}]}))
    };
    let (url, b) = body(Some("1"));
    let direct: Value = client.post(url).json(&b).send().await.unwrap().json().await.unwrap();
    let (status, r) = put_routing(&server, json!({"policy": "shadow", "primary": "1", "candidate": "2"})).await;
    assert_eq!(status, 200, "{r}");
    let shadow_ok = || {
        let m = server.state.metrics.version("trajectory", 2);
        m.ok.load(Ordering::Relaxed)
    };
    let before = shadow_ok();
    for _ in 0..20 {
        let (url, b) = body(None);
        let routed: Value = client.post(url).json(&b).send().await.unwrap().json().await.unwrap();
        assert_eq!(routed["model_version"], "1");
        assert_eq!(routed["outputs"], direct["outputs"], "the shadow changed the reply");
    }
    // The copies reached version 2 (in the background).
    let deadline = Instant::now() + Duration::from_secs(5);
    while shadow_ok() < before + 20 {
        assert!(Instant::now() < deadline, "shadow copies: {}", shadow_ok() - before);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learning_round_beats_its_base_on_the_latest_windows_or_writes_nothing() {
    let repo = tempfile::tempdir().unwrap();
    with_perception(repo.path());
    let m = repo.path().join("trajectory");
    std::fs::create_dir_all(m.join("1")).unwrap();
    std::fs::copy(Path::new(SHIPPED).join("config.toml"), m.join("config.toml")).unwrap();
    std::fs::copy(Path::new(SHIPPED).join("1").join(WEIGHTS_FILE), m.join("1").join(WEIGHTS_FILE)).unwrap();
    let server = TestServer::start(live(repo.path())).await;
    // Enough of the scene observed.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let l = get_json(&server, "/api/v1/learning").await;
        if l["observed_windows"].as_u64().unwrap() >= 3000 {
            break;
        }
        assert!(Instant::now() < deadline, "{l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = reqwest::Client::new()
        .post(format!("http://{}/api/v1/models/trajectory/train", server.addr))
        .json(&json!({"epochs": 30, "canary": false, "seed": 1}))
        .send()
        .await
        .unwrap();
    let (status, round): (u16, Value) = (resp.status().as_u16(), resp.json().await.unwrap());
    assert_eq!(status, 202, "{round}");
    let deadline = Instant::now() + Duration::from_secs(240);
    let done = loop {
        let l = get_json(&server, "/api/v1/learning").await;
        let r = &l["rounds"][0];
        if r["status"] != "running" {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "{l}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The base's and the best epoch's ADE on the latest windows (held out) are both reported.
    let (base_val, best_val) = (done["base_val_ade_m"].as_f64().unwrap(), done["best_val_ade_m"].as_f64().unwrap());
    if done["status"] == "no_improvement" {
        // No epoch beat the base on the latest windows: nothing written, the base serves on.
        eprintln!("round {done}");
        assert!(best_val >= base_val - 1e-12, "{done}");
        assert_eq!(done["new_version"], Value::Null);
        assert!(!repo.path().join("trajectory/2").exists());
        let r = get_json(&server, "/v2/models/trajectory").await;
        assert_eq!(r["versions"], json!(["1"]), "{r}");
        server.stop().await;
        return;
    }
    assert_eq!(done["status"], "done", "{done}");
    assert!(best_val < base_val, "{done}");
    assert_eq!(done["new_version"], 2);
    assert!(repo.path().join("trajectory/2/train.json").exists());
    // Without the automatic canary the base keeps serving; shadow the new version to score both
    // on the same agents.
    let r = get_json(&server, "/api/v1/models/trajectory/routing").await;
    assert_eq!((r["policy"].as_str(), r["version"].as_str()), (Some("fixed"), Some("1")), "{r}");
    server.state.online.clear("trajectory", "1");
    let (status, r) = put_routing(&server, json!({"policy": "shadow", "primary": "1", "candidate": "2"})).await;
    assert_eq!(status, 200, "{r}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let (base, tuned) = loop {
        let a = server.state.online.summary("trajectory", "1");
        let b = server.state.online.summary("trajectory", "2");
        if let (Some((a, na)), Some((b, nb))) = (a, b) {
            if na >= online::WINDOW && nb >= online::WINDOW {
                break (a["ade_m"], b["ade_m"]);
            }
        }
        assert!(Instant::now() < deadline, "not enough online samples");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("online ADE on the scene: base {base:.3} m, fine-tuned {tuned:.3} m; round {done}");
    // Online, on the scene that follows, a version better on the latest windows is usually but
    // not always better (docs/EVALUATION.md: worse by 7.5 % in one of four runs); serving is
    // protected by the canary, which judges it there. What must hold is that the version is a
    // trained model of the same quality, not a broken one: within a quarter of the base.
    assert!(tuned <= base * 1.25, "fine-tuned online ADE {tuned:.3} m against its base's {base:.3} m");
    server.stop().await;
}

#[tokio::test]
async fn the_anomaly_model_is_served_over_oip() {
    let server = TestServer::start(ServerConfig { autostart: false, ..ServerConfig::default() }).await;
    let mut series: Vec<f64> = (0..1500).map(|i| 5.0 + ((i * 7919) % 13) as f64 * 0.05).collect();
    series[1400] = 50.0;
    let body = json!({"inputs": [{"name": "series", "shape": [1, 1500], "datatype": "FP64", "data": series}]});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v2/models/anomaly/infer", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let score = v["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "score").unwrap();
    let alarm = v["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "alarm").unwrap();
    assert_eq!(score["shape"], json!([1, 1500]));
    assert!(score["data"][1400].as_f64().unwrap() > 0.5);
    assert_eq!(alarm["data"][1400], true);
    server.stop().await;
}

#[tokio::test]
async fn an_injected_dropout_raises_that_sensors_health_alarm() {
    let server = TestServer::start(fast()).await;
    let sp = SUBPROTOCOL_JSON;
    let mut ws = server.connect(sp).await;
    next_msg(&mut ws).await;
    send_json(&mut ws, sp, json!({"type": "subscribe", "id": 1, "streams": ["health"]})).await;
    wait_for(&mut ws, reply_id).await;
    // Let the monitor learn the sensors first.
    wait_for(&mut ws, |m| match m {
        ServerMessage::Health(h) if h.t_secs > 15.0 => Some(()),
        _ => None,
    })
    .await;
    send_json(&mut ws, sp, json!({"type": "command", "id": 2, "command": {"op": "inject_fault", "sensor": "radar", "fault": "dropout", "duration_secs": 3}})).await;
    let h = wait_for(&mut ws, |m| match m {
        ServerMessage::Health(h) if h.sensors[1].alarm => Some(h.clone()),
        _ => None,
    })
    .await;
    assert_eq!(h.sensors[1].cause, "silence");
    assert_eq!(h.version.as_deref(), Some("1"), "the served sensor_health version scored it");
    assert_eq!(h.faults.len(), 1);
    assert!(h.combined >= h.threshold);
    server.stop().await;
}
