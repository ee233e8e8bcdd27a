//! The one scene: the leader's stream items to every other replica on `waypoint:ch:stream`, and
//! the followers' scene commands to the leader on `waypoint:ch:cmd` with the answers on each
//! follower's own channel. One subscriber connection per replica carries all four channels;
//! when it drops, the followers' clients are told the scene paused, and a new one is tried
//! every half second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{Codec, Command, ReplyBody, ServerMessage, StreamName};
use waypoint_sim::frame::{LidarSweep, SensorPose};

use super::{now_us, Cluster, CMD_CHANNEL, CP_CHANNEL, STREAM_CHANNEL};
use crate::live::scene_runner::{Answer, CommandError, Forward};

/// Stream items the leader may hold for publishing before it drops the newest.
pub(super) const QUEUE: usize = 512;
/// How long a follower waits for the leader's answer to a command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A command's outcome as it travels: the reply, or the error's kind and message.
pub(super) type Answered = Result<ReplyBody, (String, String)>;

/// Commands sent to the leader and waiting for its answer.
#[derive(Debug, Default)]
pub(super) struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answered>>>,
}

/// A stream item on the wire. A ready message travels encoded for both codecs (it does not
/// depend on a client's options, and a follower then encodes nothing); a lidar sweep, whose
/// message depends on each client's layout and compression, travels as its points, raw
/// little-endian `f32`s.
#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    Ready { stream: StreamName, json_len: u32 },
    Lidar { seq: u64, t_secs: f64, world_from_sensor: SensorPose },
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    origin: String,
    published_us: u64,
    item: Wire,
}

/// What a follower gets.
#[derive(Debug, Clone, PartialEq)]
// A few hundred bytes per queued item either way; boxing would allocate for every one.
#[allow(clippy::large_enum_variant)]
pub(super) enum Received {
    Ready { stream: StreamName, json: bytes::Bytes, msgpack: bytes::Bytes },
    Lidar(StreamItem),
}

/// `u32` header length, the MessagePack header, then the JSON and MessagePack encodings of a
/// ready message, or a sweep's points.
fn encode(origin: &str, item: &StreamItem) -> Option<Vec<u8>> {
    let (wire, tail) = match item {
        StreamItem::Ready(stream, m) => {
            let json = waypoint_protocol::encode(Codec::Json, m).ok()?;
            let msgpack = waypoint_protocol::encode(Codec::MsgPack, m).ok()?;
            let wire = Wire::Ready { stream: *stream, json_len: u32::try_from(json.len()).ok()? };
            let mut tail = json;
            tail.extend_from_slice(&msgpack);
            (wire, tail)
        }
        StreamItem::Lidar { seq, sweep } => {
            let mut tail = Vec::with_capacity(sweep.points.len() * 16);
            for p in &sweep.points {
                for v in p {
                    tail.extend_from_slice(&v.to_le_bytes());
                }
            }
            (Wire::Lidar { seq: *seq, t_secs: sweep.t_secs, world_from_sensor: sweep.world_from_sensor }, tail)
        }
    };
    let header =
        rmp_serde::to_vec_named(&Header { origin: origin.to_string(), published_us: now_us(), item: wire }).ok()?;
    let mut out = Vec::with_capacity(4 + header.len() + tail.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&tail);
    Some(out)
}

fn decode(bytes: &[u8]) -> Option<(String, u64, Received)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let header: Header = rmp_serde::from_slice(bytes.get(4..4 + len)?).ok()?;
    let tail = bytes.get(4 + len..)?;
    let item = match header.item {
        Wire::Ready { stream, json_len } => {
            let json_len = json_len as usize;
            if json_len > tail.len() {
                return None;
            }
            Received::Ready {
                stream,
                json: bytes::Bytes::copy_from_slice(&tail[..json_len]),
                msgpack: bytes::Bytes::copy_from_slice(&tail[json_len..]),
            }
        }
        Wire::Lidar { seq, t_secs, world_from_sensor } => {
            if tail.len() % 16 != 0 {
                return None;
            }
            let points = tail
                .chunks_exact(16)
                .map(|c| {
                    let f = |i: usize| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                    [f(0), f(4), f(8), f(12)]
                })
                .collect();
            Received::Lidar(StreamItem::Lidar { seq, sweep: LidarSweep { t_secs, world_from_sensor, points } })
        }
    };
    Some((header.origin, header.published_us, item))
}

/// Hands the hub's items to the publisher while this replica leads.
pub(super) fn install(c: &Arc<Cluster>, tx: mpsc::Sender<StreamItem>) {
    let weak = Arc::downgrade(c);
    let leading = c.leading.clone();
    c.parts.hub.add_tap(Box::new(move |item| {
        if !leading.load(Ordering::Relaxed) {
            return;
        }
        if tx.try_send(item.clone()).is_err() {
            if let Some(c) = weak.upgrade() {
                c.stats.relay_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));
}

/// Publishes the leader's items in order; whatever queued up meanwhile goes in one pipeline.
pub(super) async fn publish(c: Weak<Cluster>, mut rx: mpsc::Receiver<StreamItem>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 64).await > 0 {
        let Some(c) = c.upgrade() else { return };
        let origin = c.id();
        let mut p = redis::pipe();
        let mut n = 0;
        for item in batch.drain(..) {
            if let Some(bytes) = encode(&origin, &item) {
                p.cmd("PUBLISH").arg(STREAM_CHANNEL).arg(bytes).ignore();
                n += 1;
            }
        }
        if n > 0 && c.link.pipe::<()>(&p).await.is_some() {
            c.stats.relayed.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The subscriber: stream items, commands, answers and control-plane announcements.
pub(super) async fn subscribe(c: Arc<Cluster>) {
    let mut paused = false;
    loop {
        match c.link.client().get_async_pubsub().await {
            Ok(mut pubsub) => {
                let channels = [
                    STREAM_CHANNEL.to_string(),
                    CMD_CHANNEL.into(),
                    CP_CHANNEL.into(),
                    Cluster::reply_channel(&c.id()),
                ];
                if pubsub.subscribe(&channels).await.is_ok() {
                    c.subscribed.store(true, Ordering::Relaxed);
                    if paused {
                        paused = false;
                        c.parts.hub.notice("info", "the cluster is reachable again: the scene resumes");
                    }
                    c.control.wake();
                    listen(&c, &mut pubsub).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "cluster subscriber cannot connect"),
        }
        c.subscribed.store(false, Ordering::Relaxed);
        if !paused && !c.is_leader() {
            paused = true;
            tracing::warn!("lost the cluster's Redis: the scene is paused on this replica");
            c.parts.hub.notice(
                "warning",
                "this replica lost contact with the cluster (Redis): the scene is paused here and resumes by itself",
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn listen(c: &Arc<Cluster>, pubsub: &mut redis::aio::PubSub) {
    let mut messages = pubsub.on_message();
    let mut down_checks = 0;
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(msg) => on_message(c, msg.get_channel_name(), msg.get_payload_bytes()),
                None => return,
            },
            // A Redis that stopped answering without closing the connection: the lease loop
            // sees it first.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                down_checks = if c.link.is_up() { 0 } else { down_checks + 1 };
                if down_checks >= 2 {
                    return;
                }
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CommandMsg {
    id: u64,
    origin: String,
    cmd: Command,
}

#[derive(Debug, Serialize, Deserialize)]
struct AnswerMsg {
    id: u64,
    answer: Answered,
}

fn on_message(c: &Arc<Cluster>, channel: &str, payload: &[u8]) {
    if channel == STREAM_CHANNEL {
        if c.is_leader() {
            return;
        }
        let Some((origin, published_us, item)) = decode(payload) else {
            tracing::warn!("undecodable stream item from the cluster");
            return;
        };
        if origin == c.id() {
            return;
        }
        let delay = now_us().saturating_sub(published_us);
        let s = &c.stats;
        s.received.fetch_add(1, Ordering::Relaxed);
        s.delay_us_sum.fetch_add(delay, Ordering::Relaxed);
        s.delay_count.fetch_add(1, Ordering::Relaxed);
        match &item {
            Received::Ready { stream, json, msgpack } => {
                if *stream == StreamName::Scene {
                    if let Ok(ServerMessage::Scene(m)) =
                        waypoint_protocol::codec::decode_server(Codec::MsgPack, msgpack)
                    {
                        c.parts.scene.observe(&m);
                    }
                }
                c.parts.hub.publish_encoded(*stream, json, msgpack);
            }
            Received::Lidar(item) => c.parts.hub.publish_local(item),
        }
    } else if channel == CMD_CHANNEL {
        if !c.is_leader() {
            return;
        }
        let Ok(msg) = serde_json::from_slice::<CommandMsg>(payload) else { return };
        let c = c.clone();
        tokio::spawn(async move {
            let answer = c.parts.scene.command_local(msg.cmd).await.map_err(|e| match e {
                CommandError::Refused(m) => ("refused".to_string(), m),
                CommandError::Busy => ("busy".into(), String::new()),
                CommandError::Gone => ("gone".into(), String::new()),
            });
            let Ok(body) = serde_json::to_vec(&AnswerMsg { id: msg.id, answer }) else { return };
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(Cluster::reply_channel(&msg.origin)).arg(body);
            let _: Option<i64> = c.link.run(cmd).await;
        });
    } else if channel == CP_CHANNEL {
        c.control.wake();
    } else if let Ok(msg) = serde_json::from_slice::<AnswerMsg>(payload) {
        let waiter = c.pending.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&msg.id);
        if let Some(w) = waiter {
            let _ = w.send(msg.answer);
        }
    }
}

/// A follower's commands, to the leader.
pub(super) struct Forwarder(pub Weak<Cluster>);

impl Forward for Forwarder {
    fn forward(&self, cmd: Command) -> Answer {
        let weak = self.0.clone();
        Box::pin(async move {
            let c = weak.upgrade().ok_or(CommandError::Gone)?;
            let id = c.pending.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            c.pending.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
            let forget = || c.pending.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let body = serde_json::to_vec(&CommandMsg { id, origin: c.id(), cmd })
                .map_err(|e| CommandError::Refused(e.to_string()))?;
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(CMD_CHANNEL).arg(body);
            if c.link.run::<i64>(publish).await.is_none() {
                forget();
                return Err(CommandError::Refused(
                    "the cluster's Redis is unreachable, so the replica that runs the scene cannot be asked; try again"
                        .into(),
                ));
            }
            match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
                Ok(Ok(Ok(reply))) => Ok(reply),
                Ok(Ok(Err((kind, message)))) => Err(match kind.as_str() {
                    "refused" => CommandError::Refused(message),
                    "gone" => CommandError::Gone,
                    _ => CommandError::Busy,
                }),
                _ => {
                    forget();
                    Err(CommandError::Busy)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lidar_sweep_survives_the_wire_bit_for_bit() {
        let sweep = LidarSweep {
            t_secs: 1.5,
            world_from_sensor: SensorPose::default(),
            points: vec![[1.0, -2.5, 0.25, 0.75], [f32::MIN_POSITIVE, 3e7, -0.0, 1.0]],
        };
        let item = StreamItem::Lidar { seq: 9, sweep };
        let bytes = encode("a", &item).unwrap();
        let (origin, _, back) = decode(&bytes).unwrap();
        assert_eq!(origin, "a");
        assert_eq!(back, Received::Lidar(item));
        assert!(decode(&bytes[..bytes.len() - 3]).is_none(), "a torn sweep is refused");
        assert!(decode(&[1, 2]).is_none());
    }

    /// What a client of the leader and a client of a follower receive for every item of a tick,
    /// on either codec, is the same bytes (a ready item) or the same sweep (lidar).
    #[test]
    fn every_stream_item_of_a_tick_reaches_a_followers_clients_as_the_leaders_get_it() {
        use waypoint_protocol::convert::{stream_items, SceneStatus};
        use waypoint_sim::fault::Sensor;
        let mut scene = waypoint_sim::Scene::new(waypoint_sim::SceneConfig::default()).unwrap();
        let status = SceneStatus { running: true, speed: 1.0, seed: 42, sensors_enabled: [true; Sensor::ALL.len()] };
        let mut streams = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let frame = scene.tick();
            for item in stream_items(&frame, &status) {
                let (_, _, back) = decode(&encode("b", &item).unwrap()).unwrap();
                match (&item, back) {
                    (StreamItem::Ready(s, m), Received::Ready { stream, json, msgpack }) => {
                        assert_eq!(*s, stream);
                        assert_eq!(json, waypoint_protocol::encode(Codec::Json, m).unwrap());
                        assert_eq!(msgpack, waypoint_protocol::encode(Codec::MsgPack, m).unwrap());
                    }
                    (StreamItem::Lidar { .. }, Received::Lidar(l)) => assert_eq!(l, item),
                    other => panic!("{other:?}"),
                }
                streams.insert(item.stream());
            }
        }
        assert!(streams.contains(&StreamName::Lidar) && streams.contains(&StreamName::Truth), "{streams:?}");
    }
}
