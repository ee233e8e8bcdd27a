//! Integration tests: the real server on port 0, driven by real WebSocket and HTTP clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use waypoint_protocol::{ServerMessage, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use waypoint_server::{AppState, ServerConfig};

#[path = "server/serving.rs"]
mod serving;

#[path = "server/access.rs"]
mod access;

#[path = "server/layout.rs"]
mod layout;

#[path = "server/live.rs"]
mod live;

#[path = "server/routing.rs"]
mod routing;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct TestServer {
    addr: SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    async fn start(config: ServerConfig) -> Self {
        let state = AppState::new(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let task = tokio::spawn(async move {
            waypoint_server::run(listener, st, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self { addr, state, stop: Some(tx), task: Some(task) }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t).await.expect("server stops").unwrap();
        }
    }

    async fn connect(&self, subprotocol: &str) -> Ws {
        let mut req = format!("ws://{}/ws", self.addr).into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", subprotocol.parse().unwrap());
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), subprotocol);
        ws
    }

    async fn metric(&self, name: &str) -> f64 {
        let body = reqwest::get(format!("http://{}/metrics", self.addr)).await.unwrap().text().await.unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.parse().unwrap()))
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    /// Waits up to `secs` for a metric to read `value`.
    async fn wait_metric(&self, name: &str, value: f64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let now = self.metric(name).await;
            if now == value {
                return;
            }
            assert!(Instant::now() < deadline, "{name} is {now}, not {value}, after {secs} s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn fast() -> ServerConfig {
    ServerConfig { speed: 5.0, ..ServerConfig::default() }
}

/// A decoded server message, from either codec.
fn decode(msg: &Message) -> Option<ServerMessage> {
    match msg {
        Message::Binary(b) => Some(rmp_serde::from_slice(b).unwrap()),
        Message::Text(t) => Some(serde_json::from_str(t).unwrap()),
        _ => None,
    }
}

async fn next_msg(ws: &mut Ws) -> ServerMessage {
    loop {
        let m =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("message in time").unwrap().unwrap();
        if let Some(d) = decode(&m) {
            return d;
        }
    }
}

/// Reads until `pred` matches, skipping other messages.
async fn wait_for<T>(ws: &mut Ws, mut pred: impl FnMut(&ServerMessage) -> Option<T>) -> T {
    for _ in 0..2000 {
        let m = next_msg(ws).await;
        if let Some(t) = pred(&m) {
            return t;
        }
    }
    panic!("expected message never came");
}

async fn send_json(ws: &mut Ws, subprotocol: &str, v: serde_json::Value) {
    let msg = if subprotocol == SUBPROTOCOL_MSGPACK {
        Message::Binary(rmp_serde::to_vec_named(&v).unwrap().into())
    } else {
        Message::Text(v.to_string().into())
    };
    ws.send(msg).await.unwrap();
}

fn reply_id(m: &ServerMessage) -> Option<serde_json::Value> {
    match m {
        ServerMessage::Reply { id, .. } => Some(serde_json::to_value(id).unwrap()),
        _ => None,
    }
}

fn error_of(m: &ServerMessage) -> Option<(Option<serde_json::Value>, String)> {
    match m {
        ServerMessage::Error { id, code, .. } => Some((
            id.as_ref().map(|i| serde_json::to_value(i).unwrap()),
            serde_json::to_value(code).unwrap().as_str().unwrap().to_string(),
        )),
        _ => None,
    }
}

mod health {
    use super::*;

    #[tokio::test]
    async fn live_ready_and_status_page() {
        let server = TestServer::start(fast()).await;
        let base = format!("http://{}", server.addr);
        assert_eq!(reqwest::get(format!("{base}/v2/health/live")).await.unwrap().status(), 200);
        let mut ready = false;
        for _ in 0..50 {
            if reqwest::get(format!("{base}/v2/health/ready")).await.unwrap().status() == 200 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready);
        let page = reqwest::get(format!("{base}/status")).await.unwrap().text().await.unwrap();
        assert!(page.contains("waypoint.v1.json"), "the status page speaks the JSON subprotocol");
        // The dashboard at `/` loads its script from `/assets/`, served gzipped and cacheable.
        let index = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
        let script = index.split("src=\"/assets/").nth(1).and_then(|s| s.split('"').next()).expect("a module script");
        let client = reqwest::Client::new();
        let js = client.get(format!("{base}/assets/{script}")).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(js.status(), 200);
        assert_eq!(js.headers()["content-encoding"], "gzip");
        assert!(js.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert_eq!(reqwest::get(format!("{base}/assets/nope.js")).await.unwrap().status(), 404);
        for path in ["/api/v1/dashboard", "/api/v1/map", "/api/v1/stats"] {
            let r = reqwest::get(format!("{base}{path}")).await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let _: serde_json::Value = r.json().await.unwrap();
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn a_paused_server_is_ready_and_does_not_advance() {
        let server = TestServer::start(ServerConfig { autostart: false, ..fast() }).await;
        let base = format!("http://{}", server.addr);
        // A paused scene has not produced a frame, but it is ready to take commands.
        assert_eq!(reqwest::get(format!("{base}/v2/health/ready")).await.unwrap().status(), 200);
        assert_eq!(server.state.scene.t_secs(), 0.0);
        server.stop().await;
    }
}

mod streaming {
    use super::*;

    #[tokio::test]
    async fn subscribe_and_decode_in_both_subprotocols() {
        let server = TestServer::start(fast()).await;
        for sp in [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON] {
            let mut ws = server.connect(sp).await;
            let hello = next_msg(&mut ws).await;
            assert!(matches!(&hello, ServerMessage::Hello(h) if h.protocol == "1.0"), "{hello:?}");
            send_json(
                &mut ws,
                sp,
                serde_json::json!({"type": "subscribe", "id": "s1", "streams": ["scene", "lidar", "imu", "radar"]}),
            )
            .await;
            let id = wait_for(&mut ws, reply_id).await;
            assert_eq!(id, "s1");
            let lidar = wait_for(&mut ws, |m| match m {
                ServerMessage::Lidar(l) => Some(l.clone()),
                _ => None,
            })
            .await;
            let values = lidar.points.to_f64(lidar.format, lidar.compression).unwrap();
            assert!(lidar.count > 1000);
            assert_eq!(values.len(), lidar.count as usize * 4);
            let imu = wait_for(&mut ws, |m| match m {
                ServerMessage::Imu(i) => Some(i.clone()),
                _ => None,
            })
            .await;
            let samples = imu.samples.to_f64(Default::default(), Default::default()).unwrap();
            assert_eq!(samples.len(), imu.count as usize * 5);
            // Gravity on the z axis.
            assert!((samples[3] - 9.8).abs() < 0.5, "{}", samples[3]);
            let scene = wait_for(&mut ws, |m| match m {
                ServerMessage::Scene(s) => Some(s.clone()),
                _ => None,
            })
            .await;
            assert_eq!(scene.agents.len(), 12);
            // Unsubscribed streams never arrive.
            for _ in 0..30 {
                let m = next_msg(&mut ws).await;
                assert!(!matches!(m, ServerMessage::Gps(_) | ServerMessage::Truth(_) | ServerMessage::Camera(_)));
            }
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn compressed_and_quantised_lidar_decodes_to_the_same_points() {
        let server = TestServer::start(fast()).await;
        let mut ws = server.connect(SUBPROTOCOL_MSGPACK).await;
        next_msg(&mut ws).await;
        send_json(
            &mut ws,
            SUBPROTOCOL_MSGPACK,
            serde_json::json!({"type": "subscribe", "id": 1, "streams": ["lidar"], "options": {"compression": "deflate", "lidar_format": "i16"}}),
        )
        .await;
        let lidar = wait_for(&mut ws, |m| match m {
            ServerMessage::Lidar(l) => Some(l.clone()),
            _ => None,
        })
        .await;
        assert_eq!(serde_json::to_value(lidar.compression).unwrap(), "deflate");
        let waypoint_protocol::Bulk::Bytes(raw) = &lidar.points else { panic!("bin expected") };
        assert!(raw.len() < lidar.count as usize * 8, "compressed i16 is smaller than raw i16");
        let values = lidar.points.to_f64(lidar.format, lidar.compression).unwrap();
        assert_eq!(values.len(), lidar.count as usize * 4);
        // Centimetres: ground returns lie about 1.73 m below the sensor.
        let min_z = values.chunks(4).map(|p| p[2]).fold(f64::INFINITY, f64::min);
        assert!((-180.0..-160.0).contains(&min_z), "{min_z}");
        server.stop().await;
    }
}

mod predictions {
    use super::*;

    #[tokio::test]
    async fn confirmed_tracks_get_predictions_from_the_engine() {
        let server = TestServer::start(ServerConfig { speed: 10.0, ..ServerConfig::default() }).await;
        let mut ws = server.connect(SUBPROTOCOL_MSGPACK).await;
        next_msg(&mut ws).await;
        send_json(
            &mut ws,
            SUBPROTOCOL_MSGPACK,
            serde_json::json!({"type": "subscribe", "id": 1, "streams": ["predictions", "tracks"]}),
        )
        .await;
        // Each track's class as perception last gave it.
        let mut class_of = std::collections::BTreeMap::new();
        let pred = wait_for(&mut ws, |m| match m {
            ServerMessage::Tracks(t) => {
                class_of.extend(t.tracks.iter().map(|x| (x.id, x.class)));
                None
            }
            // A round with both people and road users.
            ServerMessage::Predictions(p) if p.models.is_some() => Some(p.clone()),
            _ => None,
        })
        .await;
        // The shipped repository serves the road model for the tracks taken for vehicles and
        // cyclists, the learned people's model for the others; what they predict are the tracks.
        assert!(pred.count > 0);
        let models = pred.models.clone().unwrap();
        assert_eq!(models.len(), pred.count as usize);
        for (id, model) in pred.agent_ids.iter().zip(&models) {
            let class = class_of.get(id).copied();
            assert!(class.is_some(), "{id} is no track ({class_of:?})");
            let road = matches!(class, Some(0 | 2));
            assert_eq!(model, if road { "trajectory_road" } else { "trajectory" }, "track {id} of class {class:?}");
        }
        assert!(pred.model == "trajectory_road" || pred.model == "trajectory");
        // The people's model gives an uncertainty, the road model none: NaN rows for its tracks.
        let sigma = pred.sigma.as_ref().unwrap().to_f64(Default::default(), Default::default()).unwrap();
        for (k, model) in models.iter().enumerate() {
            let row = &sigma[k * 24..(k + 1) * 24];
            assert_eq!(row.iter().all(|v| v.is_nan()), model == "trajectory_road", "{model}: {row:?}");
        }
        let traj = pred.trajectory.to_f64(Default::default(), Default::default()).unwrap();
        assert_eq!(traj.len(), pred.count as usize * 24);
        // Through the engine, by the newest shipped version.
        let newest =
            std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/trajectory"))
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .max()
                .unwrap();
        let served = server
            .metric(&format!(
                "waypoint_inference_requests_total{{model=\"trajectory\",version=\"{newest}\",status=\"ok\"}}"
            ))
            .await;
        assert!(served >= 1.0, "predictions go through the engine (version {newest})");
        let road = server
            .metric("waypoint_inference_requests_total{model=\"trajectory_road\",version=\"2\",status=\"ok\"}")
            .await;
        assert!(road >= 1.0, "road users' predictions go through the engine");
        server.stop().await;
    }
}

mod perception {
    use super::*;

    #[tokio::test]
    async fn lidar_sweeps_become_detections_and_tracks_near_real_agents() {
        let server = TestServer::start(ServerConfig { speed: 3.0, ..ServerConfig::default() }).await;
        let mut ws = server.connect(SUBPROTOCOL_MSGPACK).await;
        next_msg(&mut ws).await;
        send_json(
            &mut ws,
            SUBPROTOCOL_MSGPACK,
            serde_json::json!({"type": "subscribe", "id": 1, "streams": ["tracks", "truth"]}),
        )
        .await;
        let mut truth = None;
        let mut near = 0;
        let mut with_tracks = 0;
        let mut fused_near = 0;
        let mut radar_fused = false;
        for _ in 0..60 {
            let msg = wait_for(&mut ws, |m| match m {
                ServerMessage::Truth(t) => {
                    truth = Some(t.clone());
                    None
                }
                ServerMessage::Tracks(t) => Some(t.clone()),
                _ => None,
            })
            .await;
            assert_eq!(msg.model, "detection");
            let Some(t) = &truth else { continue };
            if !msg.tracks.is_empty() {
                with_tracks += 1;
            }
            for f in &msg.fused {
                assert!(f.x_m.is_finite() && f.vx_mps.is_finite() && f.pos_var_m2.is_finite());
                radar_fused |= f.radar_updates > 0 && f.nis_radar.is_some_and(f64::is_finite);
                if f.lidar_updates >= 5 && t.truth.agents.iter().any(|a| (a.x_m - f.x_m).hypot(a.y_m - f.y_m) < 2.0) {
                    fused_near += 1;
                }
            }
            // Detections lie on real agents (within a few metres of one).
            near += msg
                .detections
                .iter()
                .filter(|d| t.truth.agents.iter().any(|a| (a.x_m - d.x_m).hypot(a.y_m - d.y_m) < 3.0))
                .count();
        }
        assert!(near >= 20, "only {near} detections near agents");
        assert!(with_tracks >= 10, "confirmed tracks in only {with_tracks} sweeps");
        assert!(fused_near >= 10, "only {fused_near} fused states near agents");
        assert!(radar_fused, "no track was ever updated by radar");
        server.stop().await;
    }
}

mod commands {
    use super::*;

    #[tokio::test]
    async fn commands_change_what_is_streamed() {
        let server = TestServer::start(fast()).await;
        let sp = SUBPROTOCOL_JSON;
        let mut ws = server.connect(sp).await;
        next_msg(&mut ws).await;
        send_json(&mut ws, sp, serde_json::json!({"type": "subscribe", "id": 1, "streams": ["scene", "lidar"]})).await;
        wait_for(&mut ws, reply_id).await;
        send_json(
            &mut ws,
            sp,
            serde_json::json!({"type": "command", "id": 2, "command": {"op": "add_agent", "kind": "cyclist"}}),
        )
        .await;
        let new_id = wait_for(&mut ws, |m| match m {
            ServerMessage::Reply { result, .. } => result.agent_id,
            _ => None,
        })
        .await;
        let scene = wait_for(&mut ws, |m| match m {
            ServerMessage::Scene(s) => Some(s.clone()),
            _ => None,
        })
        .await;
        assert_eq!(scene.agents.len(), 13);
        assert!(scene.agents.iter().any(|a| a.id == new_id));

        send_json(&mut ws, sp, serde_json::json!({"type": "command", "id": 3, "command": {"op": "set_sensor", "sensor": "lidar", "enabled": false}})).await;
        wait_for(&mut ws, |m| (reply_id(m) == Some(serde_json::json!(3))).then_some(())).await;
        // Frames queued before the command may still arrive; once the scene says the lidar is
        // off, no lidar arrives for a while, and the scene keeps saying so.
        wait_for(&mut ws, |m| match m {
            ServerMessage::Scene(s) if !s.sensors[0].enabled => Some(()),
            _ => None,
        })
        .await;
        for _ in 0..15 {
            let m = next_msg(&mut ws).await;
            assert!(!matches!(m, ServerMessage::Lidar(_)), "lidar after disabling it");
            if let ServerMessage::Scene(s) = m {
                assert!(!s.sensors[0].enabled);
            }
        }
        send_json(&mut ws, sp, serde_json::json!({"type": "command", "id": 4, "command": {"op": "inject_fault", "sensor": "gps", "fault": "dropout", "duration_secs": 30}})).await;
        wait_for(&mut ws, |m| (reply_id(m) == Some(serde_json::json!(4))).then_some(())).await;
        let faults = wait_for(&mut ws, |m| match m {
            ServerMessage::Scene(s) => Some(s.active_faults.clone()),
            _ => None,
        })
        .await;
        assert_eq!(faults.len(), 1);

        send_json(&mut ws, sp, serde_json::json!({"type": "command", "id": 5, "command": {"op": "clear"}})).await;
        wait_for(&mut ws, |m| (reply_id(m) == Some(serde_json::json!(5))).then_some(())).await;
        let scene = wait_for(&mut ws, |m| match m {
            ServerMessage::Scene(s) => Some(s.clone()),
            _ => None,
        })
        .await;
        assert!(scene.agents.is_empty());

        // A refused command is an error reply that names the request.
        send_json(
            &mut ws,
            sp,
            serde_json::json!({"type": "command", "id": 6, "command": {"op": "remove_agent", "agent_id": 999}}),
        )
        .await;
        let (id, code) = wait_for(&mut ws, error_of).await;
        assert_eq!((id, code.as_str()), (Some(serde_json::json!(6)), "bad_command"));
        send_json(
            &mut ws,
            sp,
            serde_json::json!({"type": "command", "id": 7, "command": {"op": "set_rate", "speed": 1000}}),
        )
        .await;
        let (_, code) = wait_for(&mut ws, error_of).await;
        assert_eq!(code, "bad_command");

        send_json(&mut ws, sp, serde_json::json!({"type": "command", "id": 8, "command": {"op": "stop"}})).await;
        wait_for(&mut ws, |m| (reply_id(m) == Some(serde_json::json!(8))).then_some(())).await;
        let paused = wait_for(&mut ws, |m| match m {
            ServerMessage::Scene(s) => Some(s.running),
            _ => None,
        })
        .await;
        assert!(!paused);
        server.stop().await;
    }
}

mod bad_input {
    use super::*;

    async fn still_answers(ws: &mut Ws, sp: &str, id: u64) {
        send_json(ws, sp, serde_json::json!({"type": "ping", "id": id})).await;
        wait_for(ws, |m| match m {
            ServerMessage::Pong { id: i, .. } => (serde_json::to_value(i).unwrap() == id).then_some(()),
            _ => None,
        })
        .await;
    }

    #[tokio::test]
    async fn malformed_unknown_and_oversized_messages_get_errors_and_the_connection_stays_open() {
        let server = TestServer::start(fast()).await;
        let sp = SUBPROTOCOL_MSGPACK;
        let mut ws = server.connect(sp).await;
        next_msg(&mut ws).await;

        ws.send(Message::Binary(vec![0xc1, 0x93, 0xff, 0x00].into())).await.unwrap();
        let (id, code) = wait_for(&mut ws, error_of).await;
        assert_eq!((id, code.as_str()), (None, "bad_message"));
        still_answers(&mut ws, sp, 1).await;

        send_json(&mut ws, sp, serde_json::json!({"type": "teleport", "id": 9})).await;
        let (id, code) = wait_for(&mut ws, error_of).await;
        assert_eq!((id, code.as_str()), (Some(serde_json::json!(9)), "unknown_type"));
        still_answers(&mut ws, sp, 2).await;

        send_json(&mut ws, sp, serde_json::json!({"type": "subscribe", "id": 10, "streams": 5})).await;
        let (id, code) = wait_for(&mut ws, error_of).await;
        assert_eq!((id, code.as_str()), (Some(serde_json::json!(10)), "bad_message"));

        let big = vec![0x90u8; 2 << 20];
        ws.send(Message::Binary(big.into())).await.unwrap();
        let (_, code) = wait_for(&mut ws, error_of).await;
        assert_eq!(code, "too_large");
        still_answers(&mut ws, sp, 3).await;

        // JSON connections too, including text that is not JSON at all.
        let mut js = server.connect(SUBPROTOCOL_JSON).await;
        next_msg(&mut js).await;
        js.send(Message::Text("{\"type\": ".into())).await.unwrap();
        let (_, code) = wait_for(&mut js, error_of).await;
        assert_eq!(code, "bad_message");
        still_answers(&mut js, SUBPROTOCOL_JSON, 4).await;
        assert!(server.metric("waypoint_ws_error_replies_total").await >= 5.0);
        server.stop().await;
    }

    #[tokio::test]
    async fn a_client_that_never_reads_does_not_grow_server_memory() {
        let config = ServerConfig { speed: 10.0, send_queue_bytes: 4 << 20, ..ServerConfig::default() };
        let limit = config.send_queue_bytes as f64;
        let server = TestServer::start(config).await;
        let sp = SUBPROTOCOL_JSON;
        let mut ws = server.connect(sp).await;
        next_msg(&mut ws).await;
        // JSON lidar is ~2 MB a sweep at 100 sweeps per second of wall time.
        send_json(&mut ws, sp, serde_json::json!({"type": "subscribe", "id": 1, "streams": ["lidar", "scene"]})).await;
        let mut max_queued: f64 = 0.0;
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            max_queued = max_queued.max(server.metric("waypoint_ws_queued_bytes").await);
        }
        let dropped = server.metric("waypoint_ws_dropped_frames_total").await;
        assert!(dropped > 10.0, "the queue should have dropped frames, dropped {dropped}");
        // At most the byte budget plus one frame (a frame is always kept).
        assert!(max_queued <= limit + 3.0e6, "queued {max_queued} bytes");
        // When the client reads again it is told how many frames it missed.
        let total = wait_for(&mut ws, |m| match m {
            ServerMessage::Dropped { total, .. } => Some(*total),
            _ => None,
        })
        .await;
        assert!(total > 0);
        server.stop().await;
    }
}
