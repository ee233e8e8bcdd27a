//! The live AV stack through the serving core: every model of the scene is a served version,
//! chosen by routing, scored online per version; predictions come from the tracks.

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use super::*;

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// The shipped fusion, trajectory (people's and road users') and sensor health models,
/// detection versions 5 and 6 both served, and a second sensor health version.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(MODELS);
    for m in ["fusion", "trajectory", "trajectory_road", "sensor_health"] {
        copy_dir(&root.join(m), &dir.path().join(m));
    }
    // A second sensor health version (the same monitor) for a canary.
    let health = dir.path().join("sensor_health");
    copy_dir(&health.join("1"), &health.join("2"));
    let config = std::fs::read_to_string(health.join("config.toml")).unwrap();
    std::fs::write(health.join("config.toml"), format!("version_policy = \"all\"\n{config}")).unwrap();
    let det = dir.path().join("detection");
    for v in ["5", "6"] {
        copy_dir(&root.join("detection").join(v), &det.join(v));
    }
    let config = std::fs::read_to_string(root.join("detection/config.toml")).unwrap();
    std::fs::write(det.join("config.toml"), format!("version_policy = \"all\"\n{config}")).unwrap();
    dir
}

async fn get_json(server: &TestServer, path: &str) -> Value {
    reqwest::get(format!("http://{}{path}", server.addr)).await.unwrap().json().await.unwrap()
}

/// The online-error gauges of `/metrics`: (model, version, metric) → value.
async fn online_errors(server: &TestServer) -> Vec<(String, String, String, f64)> {
    let body = reqwest::get(format!("http://{}/metrics", server.addr)).await.unwrap().text().await.unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix("waypoint_online_error{"))
        .filter_map(|l| {
            let (labels, v) = l.split_once("} ")?;
            let get = |k: &str| {
                labels.split(',').find_map(|kv| kv.strip_prefix(&format!("{k}=\"")).map(|x| x.trim_end_matches('"')))
            };
            Some((get("model")?.into(), get("version")?.into(), get("metric")?.into(), v.parse().ok()?))
        })
        .collect()
}

/// Starts a canary of `versions` (incumbent, candidate) on `model`, checks what the API says it
/// is judged on, and waits up to `secs` for its decision; returns the model's routing then.
async fn canary_decided(
    server: &TestServer,
    model: &str,
    versions: (&str, &str),
    settings: &Value,
    judged_on: &str,
    secs: u64,
) -> Value {
    let url = format!("http://{}/api/v1/models/{model}/routing", server.addr);
    let resp = reqwest::Client::new()
        .put(&url)
        .json(&json!({"policy": "canary", "incumbent": versions.0, "candidate": versions.1, "settings": settings}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert!(r["judged_on"].as_str().unwrap().starts_with(judged_on), "{r:#}");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = get_json(server, &format!("/api/v1/models/{model}/routing")).await;
        if r["policy"] == "fixed" {
            return r;
        }
        assert!(Instant::now() < deadline, "the {model} canary never decided: {r:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stack_runs_on_served_versions_and_a_detection_canary_reaches_a_decision() {
    let repo = repo();
    let server =
        TestServer::start(ServerConfig { model_repository: repo.path().into(), speed: 4.0, ..ServerConfig::default() })
            .await;
    // Predictions are made for tracks: each predicted id is a confirmed track's, and the first
    // predicted step is near that track's fused position.
    let mut ws = server.connect(SUBPROTOCOL_MSGPACK).await;
    next_msg(&mut ws).await;
    send_json(
        &mut ws,
        SUBPROTOCOL_MSGPACK,
        json!({"type": "subscribe", "id": 1, "streams": ["predictions", "tracks"]}),
    )
    .await;
    let mut last_tracks: Option<waypoint_protocol::TracksMsg> = None;
    let mut checked = 0;
    while checked < 3 {
        let m = next_msg(&mut ws).await;
        match m {
            ServerMessage::Tracks(t) => {
                assert_eq!((t.model.as_str(), t.version.as_str()), ("detection", "6"), "routing's newest");
                if !t.fused.is_empty() {
                    assert_eq!(t.fusion_version.as_deref(), Some("4"));
                }
                last_tracks = Some(t);
            }
            ServerMessage::Predictions(p) => {
                let Some(t) = &last_tracks else { continue };
                let traj = p.trajectory.to_f64(Default::default(), Default::default()).unwrap();
                assert!(p.sigma.is_some(), "the learned model gives its uncertainty");
                // Its several futures: the most likely three of each track, the first being the
                // trajectory, with probabilities in order.
                let modes = p.modes.as_ref().expect("modes").to_f64(Default::default(), Default::default()).unwrap();
                let probs = p
                    .mode_probabilities
                    .as_ref()
                    .expect("mode probabilities")
                    .to_f64(Default::default(), Default::default())
                    .unwrap();
                let n = p.agent_ids.len();
                assert_eq!((modes.len(), probs.len()), (n * 3 * 24, n * 3));
                for (i, pr) in probs.chunks(3).enumerate() {
                    assert!(pr[0] >= pr[1] && pr[1] >= pr[2] && pr.iter().sum::<f64>() <= 1.0 + 1e-6, "{pr:?}");
                    // The people's model's trajectory is its most likely future; the road
                    // model's is the future of least expected error, one of its modes.
                    let model = p.models.as_ref().and_then(|m| m.get(i)).unwrap_or(&p.model);
                    let road = model == "trajectory_road";
                    let mode = |k: usize| &modes[i * 72 + k * 24..i * 72 + (k + 1) * 24];
                    let row = &traj[i * 24..(i + 1) * 24];
                    if road {
                        assert!((0..3).any(|k| pr[k] > 0.0 && mode(k) == row), "track {i}: {pr:?}");
                    } else {
                        assert_eq!(mode(0), row);
                    }
                }
                for (i, id) in p.agent_ids.iter().enumerate() {
                    let Some(f) = t.fused.iter().find(|f| f.id == *id) else { continue };
                    let d = (traj[i * 24] - f.x_m).hypot(traj[i * 24 + 1] - f.y_m);
                    assert!(
                        d < 0.4 * f.vx_mps.hypot(f.vy_mps) + 3.0,
                        "track {id}: first step {d} m from its fused state"
                    );
                    checked += 1;
                }
            }
            _ => {}
        }
    }
    drop(ws);
    // Online error per served version of every model, and the truth-fed trajectory error beside
    // the track-fed one.
    let deadline = Instant::now() + Duration::from_secs(120);
    let want = [
        ("detection", "6", "recall"),
        ("detection", "6", "precision"),
        ("fusion", "4", "rmse_pos_m"),
        ("trajectory", "3", "ade_m"),
        ("trajectory", "3", "ade_truth_m"),
        // Vehicles and cyclists go to the road model, scored live like the others.
        ("trajectory_road", "2", "ade_m"),
        ("trajectory_road", "2", "ade_vehicle_m"),
        ("baseline", "constant_velocity", "ade_m"),
        ("baseline", "kalman", "ade_truth_m"),
        ("sensor_health", "2", "false_alarms_per_10min"),
        ("sensor_health", "2", "accuracy"),
    ];
    loop {
        let errors = online_errors(&server).await;
        let missing: Vec<_> =
            want.iter().filter(|(m, v, k)| !errors.iter().any(|e| e.0 == *m && e.1 == *v && e.2 == *k)).collect();
        if missing.is_empty() {
            for e in &errors {
                assert!(e.3.is_finite(), "{e:?}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "no online error for {missing:?}; have {errors:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A canary on detection: both versions score every sweep (the one not serving it shadows),
    // and the canary is judged on recall and reaches a decision.
    let settings = json!({"steps": [0.5, 1.0], "dwell_secs": 0.5, "min_samples": 200, "min_requests": 10});
    let r = canary_decided(&server, "detection", ("5", "6"), &settings, "online recall", 180).await;
    let decisions = r["decisions"].as_array().unwrap();
    let last = decisions.last().unwrap();
    assert!(["promote", "rollback"].contains(&last["action"].as_str().unwrap()), "{last:#}");
    let ev = &last["evidence"];
    assert!(ev["incumbent"]["samples"].as_u64().unwrap() >= 200 && ev["candidate"]["samples"].as_u64().unwrap() >= 200);
    eprintln!("detection canary: {} — {}", last["detail"], ev);
    // A canary on the stateful sensor health model: both versions are fed every tick (each keeps
    // its own state), their alarms are scored on the same ticks, and the canary, judged on
    // accuracy, finds the same monitor not worse and promotes it.
    let r = canary_decided(&server, "sensor_health", ("2", "1"), &settings, "online accuracy", 120).await;
    let last = r["decisions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "promote", "{last:#}");
    assert_eq!(r["version"], "1");
    eprintln!("sensor health canary: {}", last["detail"]);
    // Continuous learning of the road model: its learner has the windows of the tracks taken for
    // vehicles and cyclists; a round fine-tunes the serving version's correction and offers it
    // as a canary judged per class of road user (or writes nothing when no epoch beat the base).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let l = get_json(&server, "/api/v1/learning?model=trajectory_road").await;
        assert_eq!(l["model"], "trajectory_road", "{l}");
        if l["observed_windows"].as_u64().unwrap() >= 500 {
            break;
        }
        assert!(Instant::now() < deadline, "{l}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let post = |model: &str, body: Value| {
        let url = format!("http://{}/api/v1/models/{model}/train", server.addr);
        async move { reqwest::Client::new().post(url).json(&body).send().await.unwrap() }
    };
    assert_eq!(post("fusion", json!({})).await.status(), 400);
    let resp = reqwest::get(format!("http://{}/api/v1/learning?model=fusion", server.addr)).await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = reqwest::get(format!("http://{}/api/v1/learning?nope=1", server.addr)).await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post("trajectory_road", json!({"epochs": 10, "canary": true, "seed": 1})).await;
    assert_eq!(resp.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let l = get_json(&server, "/api/v1/learning?model=trajectory_road").await;
        let r = l["rounds"][0].clone();
        if r["status"] != "running" {
            break r;
        }
        assert!(Instant::now() < deadline, "{l}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    eprintln!("road learning round: {done}");
    assert_eq!(done["base_version"], 2, "{done}");
    let (base, best) = (done["base_val_ade_m"].as_f64().unwrap(), done["best_val_ade_m"].as_f64().unwrap());
    if done["status"] == "done" {
        assert!(best < base, "{done}");
        let v = done["new_version"].as_u64().unwrap().to_string();
        let r = get_json(&server, "/api/v1/models/trajectory_road/routing").await;
        assert_eq!(
            (r["policy"].as_str(), r["incumbent"].as_str(), r["candidate"].as_str()),
            (Some("canary"), Some("2"), Some(v.as_str())),
            "{r:#}"
        );
        assert!(r["judged_on"].as_str().unwrap().contains("per class of road user"), "{r:#}");
    } else {
        assert_eq!(done["status"], "no_improvement", "{done}");
        assert!(best >= base - 1e-12, "{done}");
    }
    server.stop().await;
}
