//! Access control at the doors: the API token on every mutating call (REST and WebSocket scene
//! commands), the inference token when set, per-client limits on scene commands, and the
//! chart licence only for the dashboard's own pages.

use reqwest::StatusCode;
use serde_json::json;
use waypoint_server::config::Secret;

use super::*;

fn guarded(infer: bool, commands_per_sec: f64) -> ServerConfig {
    ServerConfig {
        api_token: Some(Secret::new("control-token")),
        infer_token: infer.then(|| Secret::new("infer-token")),
        scene_commands_per_sec: commands_per_sec,
        lcjs_license: Some(Secret::new("licence-key")),
        lcjs_license_information: serde_json::json!({"company": "Example Ltd", "appTitle": "Waypoint"})
            .as_object()
            .cloned(),
        ..fast()
    }
}

async fn call(method: reqwest::Method, url: String, token: Option<&str>, body: serde_json::Value) -> reqwest::Response {
    let mut req = reqwest::Client::new().request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn mutating_calls_need_the_api_token_and_reads_and_inference_do_not() {
    let server = TestServer::start(guarded(false, 0.0)).await;
    let base = format!("http://{}", server.addr);
    let routing = format!("{base}/api/v1/models/trajectory_cv/routing");
    for token in [None, Some("wrong"), Some("control-toke"), Some("infer-token")] {
        let r = call(reqwest::Method::PUT, routing.clone(), token, json!({"policy": "newest"})).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let r = call(reqwest::Method::PUT, routing.clone(), Some("control-token"), json!({"policy": "newest"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let unload = format!("{base}/v2/repository/models/trajectory_cv/unload");
    assert_eq!(call(reqwest::Method::POST, unload, None, json!({})).await.status(), StatusCode::UNAUTHORIZED);
    let cmd = format!("{base}/api/v1/scene/commands");
    assert_eq!(call(reqwest::Method::POST, cmd, None, json!({"op": "stop"})).await.status(), StatusCode::UNAUTHORIZED);
    // Reads and inference stay open.
    assert_eq!(reqwest::get(routing).await.unwrap().status(), StatusCode::OK);
    let infer = format!("{base}/v2/models/trajectory_cv/infer");
    let body = json!({"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": vec![0.0; 16]}]});
    assert_eq!(call(reqwest::Method::POST, infer, None, body).await.status(), StatusCode::OK);
    // Scene commands over the WebSocket: refused without the token, taken with it in the query.
    let mut ws = server.connect(SUBPROTOCOL_JSON).await;
    send_json(&mut ws, SUBPROTOCOL_JSON, json!({"type": "command", "id": 1, "command": {"op": "stop"}})).await;
    let (_, code) = wait_for(&mut ws, error_of).await;
    assert_eq!(code, "unauthorized");
    let url = format!("ws://{}/ws?token=control-token", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send_json(&mut ws, SUBPROTOCOL_JSON, json!({"type": "command", "id": 2, "command": {"op": "stop"}})).await;
    assert_eq!(wait_for(&mut ws, reply_id).await, json!(2));
    server.stop().await;
}

#[tokio::test]
async fn an_inference_token_guards_inference_on_both_doors() {
    let server = TestServer::start(guarded(true, 0.0)).await;
    let infer = format!("http://{}/v2/models/trajectory_cv/infer", server.addr);
    let body = json!({"inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": vec![0.0; 16]}]});
    for (token, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("nope"), StatusCode::UNAUTHORIZED),
        (Some("infer-token"), StatusCode::OK),
        (Some("control-token"), StatusCode::OK),
    ] {
        assert_eq!(call(reqwest::Method::POST, infer.clone(), token, body.clone()).await.status(), want, "{token:?}");
    }
    let mut ws = server.connect(SUBPROTOCOL_JSON).await;
    let req = json!({"type": "infer", "id": 5, "model": "trajectory_cv",
                     "inputs": [{"name": "history", "shape": [1, 8, 2], "datatype": "FP32", "data": vec![0.0; 16]}]});
    send_json(&mut ws, SUBPROTOCOL_JSON, req).await;
    let (id, code) = wait_for(&mut ws, error_of).await;
    assert_eq!((id, code.as_str()), (Some(json!(5)), "unauthorized"));
    server.stop().await;
}

#[tokio::test]
async fn scene_commands_are_limited_per_client_with_retry_after() {
    let server = TestServer::start(ServerConfig { scene_commands_per_sec: 2.0, ..fast() }).await;
    let cmd = format!("http://{}/api/v1/scene/commands", server.addr);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..10 {
        let r = call(reqwest::Method::POST, cmd.clone(), None, json!({"op": "start"})).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        }
        statuses.push(r.status().as_u16());
    }
    // A burst of twice the rate passes; the rest of a quick run is refused (one more may pass
    // if the run takes over half a second, the time one token takes to come back).
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((4..=5).contains(&passed), "{statuses:?}");
    assert!(statuses[..4].iter().all(|s| *s == 200) && statuses.contains(&429), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Another client (by name) has its own allowance.
    let r = reqwest::Client::new()
        .post(cmd)
        .header("x-waypoint-client", "another-tab")
        .json(&json!({"op": "start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Each WebSocket connection is a client of its own.
    let mut ws = server.connect(SUBPROTOCOL_JSON).await;
    for id in 0..8 {
        send_json(&mut ws, SUBPROTOCOL_JSON, json!({"type": "command", "id": id, "command": {"op": "start"}})).await;
    }
    let mut limited = 0;
    let mut replied = 0;
    while limited + replied < 8 {
        match next_msg(&mut ws).await {
            ServerMessage::Reply { .. } => replied += 1,
            ServerMessage::Error { code, message, .. } => {
                assert_eq!(serde_json::to_value(code).unwrap(), "rate_limited");
                assert!(message.contains("retry after"), "{message}");
                limited += 1;
            }
            _ => {}
        }
    }
    assert!((4..=5).contains(&replied), "{replied} replied, {limited} limited");
    server.stop().await;
}

#[tokio::test]
async fn the_chart_licence_goes_only_to_the_dashboards_own_pages() {
    let server = TestServer::start(guarded(false, 0.0)).await;
    let url = format!("http://{}/api/v1/dashboard", server.addr);
    let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(v["lcjs_license"], serde_json::Value::Null);
    assert_eq!(v["lcjs_license_information"], serde_json::Value::Null);
    let v: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["lcjs_license"], "licence-key");
    assert_eq!(v["lcjs_license_information"]["appTitle"], "Waypoint");
    // Plain HTTP beyond loopback: the browser sends no Sec-Fetch-Site, but its Referer is this
    // host; another site's is not.
    let with_referer = |referer: String| {
        let url = url.clone();
        async move {
            let v: serde_json::Value =
                reqwest::Client::new().get(&url).header("referer", referer).send().await.unwrap().json().await.unwrap();
            v["lcjs_license"].clone()
        }
    };
    assert_eq!(with_referer(format!("http://{}/", server.addr)).await, "licence-key");
    assert_eq!(with_referer("http://elsewhere.example/".into()).await, serde_json::Value::Null);
    assert!(!format!("{:?}", server.state.config).contains("licence-key"), "the configuration's Debug hides it");
    server.stop().await;
}
