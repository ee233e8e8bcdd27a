//! Stream fan-out: many WebSocket subscribers spread over several replicas, each receiving the
//! same streams; how late each message reaches them compared with a reference subscriber on the
//! replica that runs the scene, and how many frames the server dropped for them.
//!
//! The delay of a message at a client is its arrival time there minus its arrival time at the
//! reference client (same stream, `seq` and order within that `seq`). The reference is itself
//! a subscriber of the leader's hub, so the figure leaves out the leader's own fan-out to its
//! first client (well under a millisecond) and includes everything after it: the relay through
//! Redis, the follower's fan-out, its socket, and this process's own scheduling (it runs on the
//! same machine as the servers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use waypoint_protocol::{encode, ClientMessage, Codec, RequestId, ServerMessage, StreamName, StreamOptions};

use crate::{internal, ws_err, BenchError};

/// What to measure.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// WebSocket base URLs of the replicas (`http://HOST:PORT`); clients are spread evenly.
    pub urls: Vec<String>,
    /// The replica that runs the scene: the reference subscriber connects there.
    pub reference: String,
    pub clients: usize,
    pub streams: Vec<StreamName>,
    pub duration_secs: f64,
}

/// (stream, seq, index within the seq).
type Key = (u8, u64, u32);

#[derive(Debug, Default)]
struct Received {
    arrivals: HashMap<Key, Instant>,
    dropped: u64,
    messages: u64,
    error: Option<String>,
}

fn key_of(msg: &ServerMessage) -> Option<(u8, u64)> {
    match msg {
        ServerMessage::Scene(m) => Some((0, m.seq)),
        ServerMessage::Tracks(m) => Some((1, m.seq)),
        ServerMessage::Predictions(m) => Some((2, m.seq)),
        ServerMessage::Health(m) => Some((3, m.seq)),
        ServerMessage::Truth(m) => Some((4, m.seq)),
        _ => None,
    }
}

async fn subscriber(url: String, streams: Vec<StreamName>, until: Instant) -> Received {
    let mut r = Received::default();
    if let Err(e) = subscribe_and_read(&url, streams, until, &mut r).await {
        r.error = Some(e.to_string());
    }
    r
}

async fn subscribe_and_read(
    url: &str,
    streams: Vec<StreamName>,
    until: Instant,
    r: &mut Received,
) -> Result<(), BenchError> {
    let ws_url = url.replacen("http", "ws", 1) + "/ws";
    let mut req = ws_url.into_client_request().map_err(ws_err)?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", waypoint_protocol::SUBPROTOCOL_MSGPACK.parse().map_err(ws_err)?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| ws_err(format!("connect: {e}")))?;
    let msg = ClientMessage::Subscribe { id: RequestId::Num(1), streams, options: StreamOptions::default() };
    ws.send(Message::Binary(encode(Codec::MsgPack, &msg).map_err(internal)?.into())).await.map_err(ws_err)?;
    let mut seen: HashMap<(u8, u64), u32> = HashMap::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(next) = tokio::time::timeout(left, ws.next()).await else { break };
        let Some(m) = next else { return Err(ws_err("closed")) };
        let Message::Binary(b) = m.map_err(ws_err)? else { continue };
        let at = Instant::now();
        let Ok(msg) = waypoint_protocol::codec::decode_server(Codec::MsgPack, &b) else { continue };
        r.messages += 1;
        if let ServerMessage::Dropped { count, .. } = msg {
            r.dropped += count;
            continue;
        }
        if let Some((s, seq)) = key_of(&msg) {
            let n = seen.entry((s, seq)).or_insert(0);
            r.arrivals.insert((s, seq, *n), at);
            *n += 1;
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Connects every client (and the reference), reads for `duration_secs`, and reports the delay
/// percentiles per replica and overall (ms), frames dropped, messages received and clients that
/// failed.
pub async fn run(config: &FanoutConfig) -> Result<Value, BenchError> {
    if config.urls.is_empty() || config.clients == 0 {
        return Err(BenchError::Unsupported("need at least one replica and one client".into()));
    }
    // Connections open over the first seconds; measure only after every client is in.
    let warmup = Duration::from_secs(3);
    let start = Instant::now();
    let until = start + warmup + Duration::from_secs_f64(config.duration_secs);
    let reference = tokio::spawn(subscriber(config.reference.clone(), config.streams.clone(), until));
    let mut handles = Vec::with_capacity(config.clients);
    for i in 0..config.clients {
        let url = config.urls[i % config.urls.len()].clone();
        handles.push((i % config.urls.len(), tokio::spawn(subscriber(url, config.streams.clone(), until))));
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let reference = Arc::new(reference.await.map_err(internal)?);
    if let Some(e) = &reference.error {
        return Err(BenchError::Unreachable(format!("reference subscriber: {e}")));
    }
    let measured_from = start + warmup;
    let mut per_replica: Vec<(Vec<f64>, u64, u64, usize)> = vec![(Vec::new(), 0, 0, 0); config.urls.len()];
    let mut missing = 0u64;
    let mut failed = 0usize;
    for (replica, h) in handles {
        let r = h.await.map_err(internal)?;
        if r.error.is_some() {
            failed += 1;
        }
        let slot = &mut per_replica[replica];
        slot.1 += r.dropped;
        slot.2 += r.messages;
        slot.3 += 1;
        for (k, t_ref) in reference.arrivals.iter().filter(|(_, t)| **t >= measured_from) {
            match r.arrivals.get(k) {
                Some(t) => slot.0.push(t.saturating_duration_since(*t_ref).as_secs_f64() * 1e3),
                None => missing += 1,
            }
        }
    }
    let mut all: Vec<f64> = Vec::new();
    let mut replicas = Vec::new();
    for (i, (mut d, dropped, messages, clients)) in per_replica.into_iter().enumerate() {
        d.sort_by(f64::total_cmp);
        replicas.push(json!({
            "url": config.urls[i], "clients": clients, "messages": messages, "dropped": dropped,
            "delay_ms": {"p50": quantile(&d, 0.5), "p99": quantile(&d, 0.99), "max": d.last()},
        }));
        all.extend(d);
    }
    all.sort_by(f64::total_cmp);
    Ok(json!({
        "clients": config.clients,
        "failed_clients": failed,
        "streams": config.streams,
        "duration_secs": config.duration_secs,
        "reference_messages": reference.messages,
        "deliveries_measured": all.len(),
        "deliveries_missing": missing,
        "delay_ms": {"p50": quantile(&all, 0.5), "p90": quantile(&all, 0.9), "p99": quantile(&all, 0.99), "max": all.last()},
        "replicas": replicas,
    }))
}
