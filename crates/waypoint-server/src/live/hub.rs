//! Fan-out of stream frames to WebSocket clients, each with a bounded send queue.
//!
//! The scene thread publishes each stream item once; the hub encodes it at most once per
//! (codec, options) pair and pushes the shared bytes into every subscribed client's queue.
//! A queue holds replies (never dropped; the reader stops reading when too many wait) and
//! stream frames (bounded by count and bytes; the oldest are dropped and counted).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{encode, Codec, ServerMessage, StreamName, StreamOptions};

use crate::metrics::Metrics;

/// Encoded bytes shared between all clients that want the same encoding.
pub type Encoded = bytes::Bytes;

/// What the writer takes from a queue next.
#[derive(Debug)]
pub enum Outgoing {
    /// `count` frames dropped since the last notice, `total` since connect.
    Dropped {
        count: u64,
        total: u64,
    },
    Message(Encoded),
    Close,
}

#[derive(Debug, Default)]
struct QueueState {
    replies: VecDeque<Encoded>,
    frames: VecDeque<Encoded>,
    frame_bytes: usize,
    dropped_unreported: u64,
    dropped_total: u64,
    subscriptions: BTreeSet<StreamName>,
    options: StreamOptions,
    closed: bool,
}

/// One client's send queue.
#[derive(Debug)]
pub struct ClientQueue {
    pub codec: Codec,
    state: Mutex<QueueState>,
    /// Wakes the writer.
    ready: Notify,
    /// Wakes a reader waiting for reply space.
    space: Notify,
    max_frames: usize,
    max_frame_bytes: usize,
    max_replies: usize,
    metrics: Arc<Metrics>,
}

impl ClientQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding this lock cannot leave the queue inconsistent (every update
        // is a single push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_subscriptions(
        &self,
        subscribe: &[StreamName],
        unsubscribe: &[StreamName],
        options: Option<StreamOptions>,
    ) -> Vec<StreamName> {
        let mut s = self.lock();
        s.subscriptions.extend(subscribe.iter().copied());
        for u in unsubscribe {
            s.subscriptions.remove(u);
        }
        if let Some(o) = options {
            s.options = o;
        }
        s.subscriptions.iter().copied().collect()
    }

    fn wants(&self, stream: StreamName) -> Option<StreamOptions> {
        let s = self.lock();
        (!s.closed && s.subscriptions.contains(&stream)).then_some(s.options)
    }

    /// Queues a stream frame (dropping the oldest when the queue is full).
    pub fn push_frame(&self, bytes: Encoded) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        s.frame_bytes += bytes.len();
        s.frames.push_back(bytes);
        let mut dropped = 0;
        while s.frames.len() > self.max_frames || (s.frame_bytes > self.max_frame_bytes && s.frames.len() > 1) {
            if let Some(old) = s.frames.pop_front() {
                s.frame_bytes -= old.len();
                dropped += 1;
            }
        }
        s.dropped_unreported += dropped;
        s.dropped_total += dropped;
        drop(s);
        if dropped > 0 {
            self.metrics.ws_dropped_frames.fetch_add(dropped, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// Queues a reply, waiting while the reply queue is full (so a client that sends
    /// requests without reading replies is simply no longer read from).
    pub async fn push_reply(&self, bytes: Encoded) {
        loop {
            let waiter = self.space.notified();
            {
                let mut s = self.lock();
                if s.closed {
                    return;
                }
                if s.replies.len() < self.max_replies {
                    s.replies.push_back(bytes);
                    drop(s);
                    self.ready.notify_one();
                    return;
                }
            }
            waiter.await;
        }
    }

    /// The next thing to send; waits when there is nothing.
    pub async fn next(&self) -> Outgoing {
        loop {
            let waiter = self.ready.notified();
            {
                let mut s = self.lock();
                if s.closed {
                    return Outgoing::Close;
                }
                if let Some(r) = s.replies.pop_front() {
                    drop(s);
                    self.space.notify_one();
                    return Outgoing::Message(r);
                }
                if s.dropped_unreported > 0 {
                    let count = std::mem::take(&mut s.dropped_unreported);
                    return Outgoing::Dropped { count, total: s.dropped_total };
                }
                if let Some(f) = s.frames.pop_front() {
                    s.frame_bytes -= f.len();
                    return Outgoing::Message(f);
                }
            }
            waiter.await;
        }
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        self.space.notify_waiters();
    }

    /// Bytes of stream frames waiting to be sent.
    pub fn queued_frame_bytes(&self) -> usize {
        self.lock().frame_bytes
    }
}

/// What else gets each published item: in a cluster, the leader's relay to the other replicas;
/// with a recording or the Foxglove bridge, the recorder.
pub type Tap = Box<dyn Fn(&StreamItem) + Send + Sync>;

#[derive(Default)]
struct Taps(std::sync::RwLock<Vec<Tap>>);

impl std::fmt::Debug for Taps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Taps({})", self.0.read().map(|t| t.len()).unwrap_or(0))
    }
}

/// All connected clients.
#[derive(Debug)]
pub struct Hub {
    clients: Mutex<Vec<Weak<ClientQueue>>>,
    metrics: Arc<Metrics>,
    next_client: AtomicU64,
    taps: Taps,
}

impl Hub {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { clients: Mutex::new(Vec::new()), metrics, next_client: AtomicU64::new(1), taps: Taps::default() }
    }

    /// Hands every item published from now on to `tap` as well, after the taps added before.
    pub fn add_tap(&self, tap: Tap) {
        self.taps.0.write().unwrap_or_else(|p| p.into_inner()).push(tap);
    }

    /// Sends a notice to every client, whatever it subscribed to.
    pub fn notice(&self, level: &str, message: &str) {
        let msg = ServerMessage::Notice { level: level.to_string(), message: message.to_string() };
        let mut cache: Vec<(Codec, Encoded)> = Vec::new();
        for client in self.clients() {
            let bytes = match cache.iter().find(|(c, _)| *c == client.codec) {
                Some((_, b)) => b.clone(),
                None => match encode(client.codec, &msg) {
                    Ok(b) => {
                        let b = bytes::Bytes::from(b);
                        cache.push((client.codec, b.clone()));
                        b
                    }
                    Err(_) => continue,
                },
            };
            client.push_frame(bytes);
        }
    }

    fn clients(&self) -> Vec<Arc<ClientQueue>> {
        let mut list = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }

    /// Registers a new client queue.
    pub fn connect(&self, codec: Codec, config: &crate::config::ServerConfig) -> (u64, Arc<ClientQueue>) {
        let q = Arc::new(ClientQueue {
            codec,
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            space: Notify::new(),
            max_frames: config.send_queue_frames.max(1),
            max_frame_bytes: config.send_queue_bytes,
            max_replies: config.reply_queue.max(1),
            metrics: self.metrics.clone(),
        });
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(&q));
        (self.next_client.fetch_add(1, Ordering::Relaxed), q)
    }

    /// Sends one item to every subscriber, encoding it once per distinct encoding, and hands
    /// it to the taps.
    pub fn publish(&self, item: &StreamItem) {
        // The taps first: the other replicas' clients then wait no longer than this one's.
        for tap in self.taps.0.read().unwrap_or_else(|p| p.into_inner()).iter() {
            tap(item);
        }
        self.publish_local(item);
    }

    /// Sends one item to this replica's subscribers only.
    pub fn publish_local(&self, item: &StreamItem) {
        let stream = item.stream();
        let mut cache: Vec<((Codec, StreamOptions), Encoded)> = Vec::new();
        for client in self.clients() {
            let Some(options) = client.wants(stream) else { continue };
            let key = (client.codec, options);
            let bytes = match cache.iter().find(|(k, _)| *k == key) {
                Some((_, b)) => b.clone(),
                None => match encode(client.codec, &item.message(client.codec, options)) {
                    Ok(b) => {
                        let b = bytes::Bytes::from(b);
                        self.metrics.add_stream_bytes(stream, client.codec, options, b.len());
                        cache.push((key, b.clone()));
                        b
                    }
                    Err(e) => {
                        tracing::error!(stream = stream.as_str(), error = %e, "cannot encode stream item");
                        continue;
                    }
                },
            };
            client.push_frame(bytes);
        }
    }

    /// Sends an item another replica encoded (once per codec) to this replica's subscribers.
    pub fn publish_encoded(&self, stream: StreamName, json: &Encoded, msgpack: &Encoded) {
        let mut counted = [false; 2];
        for client in self.clients() {
            let Some(options) = client.wants(stream) else { continue };
            let (bytes, i) = match client.codec {
                Codec::Json => (json, 0),
                Codec::MsgPack => (msgpack, 1),
            };
            if !counted[i] {
                counted[i] = true;
                self.metrics.add_stream_bytes(stream, client.codec, options, bytes.len());
            }
            client.push_frame(bytes.clone());
        }
    }

    /// Total bytes of stream frames queued over all clients.
    pub fn queued_frame_bytes(&self) -> usize {
        self.clients().iter().map(|c| c.queued_frame_bytes()).sum()
    }

    /// Closes every client (on shutdown).
    pub fn close_all(&self) {
        for c in self.clients() {
            c.close();
        }
    }
}
