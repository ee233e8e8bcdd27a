//! Recording the live run to MCAP, replaying a recording through the live stack, and the
//! Foxglove WebSocket bridge.
//!
//! The [`Recorder`] owns one Foxglove SDK context with a channel per topic; an MCAP file and the
//! bridge are sinks of that context, so a message is converted once for both. The scene thread
//! hands it each tick's [`Frame`], the hub each published output (tracks, predictions, health,
//! evaluation) and the router each decision, through a bounded queue: a recorder that falls
//! behind drops entries (counted), it never slows the scene or grows without bound. A thread of
//! its own converts and writes.
//!
//! Topics (schemas in `crates/waypoint-server/schemas/`, described in `docs/RECORDING.md`):
//! - Foxglove's well-known schemas, protobuf-encoded: `/lidar` (`foxglove.PointCloud`, world
//!   frame, the sensor's pose), `/scene/entities` (true road users), `/perception/detections`,
//!   `/perception/tracks`, `/prediction/paths` (`foxglove.SceneUpdate`), `/gps`
//!   (`foxglove.LocationFix`), `/log` (`foxglove.Log`: routing decisions and notices).
//! - Waypoint's own, JSON: `/waypoint/config` (the scene configuration, once), `/waypoint/frame`
//!   (each tick's sensors and truth, lidar points excepted: they are on `/lidar`),
//!   `/waypoint/tracks`, `/waypoint/predictions`, `/waypoint/health`, `/waypoint/evaluation`,
//!   `/waypoint/routing`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use foxglove::messages::{LocationFix, Log, PointCloud, SceneUpdate};
use foxglove::{Channel, Context, McapCompression, McapWriteOptions, McapWriter, RawChannel, Schema};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{ServerMessage, StreamName};
use waypoint_sim::{Frame, SceneConfig};

use crate::lifecycle::routing::Decision;

pub mod convert;
pub mod player;

/// Entries the recorder's queue holds; beyond that, entries are dropped and counted.
pub const QUEUE_ENTRIES: usize = 32;

/// Bytes of messages gathered into one compressed MCAP chunk.
pub const CHUNK_BYTES: u64 = 4 << 20;

/// Waypoint's own topics and their JSON schemas.
pub const OWN_TOPICS: [(&str, &str, &str); 7] = [
    ("/waypoint/config", "waypoint.SceneConfig", include_str!("../../schemas/waypoint.SceneConfig.json")),
    ("/waypoint/frame", "waypoint.Frame", include_str!("../../schemas/waypoint.Frame.json")),
    ("/waypoint/tracks", "waypoint.Tracks", include_str!("../../schemas/waypoint.Tracks.json")),
    ("/waypoint/predictions", "waypoint.Predictions", include_str!("../../schemas/waypoint.Predictions.json")),
    ("/waypoint/health", "waypoint.Health", include_str!("../../schemas/waypoint.Health.json")),
    ("/waypoint/evaluation", "waypoint.Evaluation", include_str!("../../schemas/waypoint.Evaluation.json")),
    ("/waypoint/routing", "waypoint.RoutingDecision", include_str!("../../schemas/waypoint.RoutingDecision.json")),
];

/// Where the recorder writes.
#[derive(Debug, Clone, Default)]
pub struct RecordSettings {
    /// The MCAP file to write (replaced if it exists).
    pub path: Option<PathBuf>,
    /// Compression of the file's chunks.
    pub compression: Compression,
}

/// Chunk compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    Zstd,
    Lz4,
    None,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zstd" => Ok(Self::Zstd),
            "lz4" => Ok(Self::Lz4),
            "none" => Ok(Self::None),
            _ => Err(format!("compression {s:?}: expected zstd, lz4 or none")),
        }
    }
}

/// Counts of what the recorder did.
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Entries taken from the queue and written.
    pub entries: AtomicU64,
    /// Entries dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Entries whose conversion failed (logged).
    pub failed: AtomicU64,
    /// Nanoseconds the recorder's thread spent converting and writing.
    pub busy_nanos: AtomicU64,
}

enum Entry {
    Config(Box<SceneConfig>),
    Frame(Box<Frame>),
    Item(Box<StreamItem>),
    Decision(Box<Decision>),
    Close,
}

/// The Foxglove context, its sinks and the thread that writes to them.
pub struct Recorder {
    tx: Sender<Entry>,
    worker: Mutex<Option<JoinHandle<()>>>,
    ctx: Arc<Context>,
    pub stats: Arc<RecordStats>,
    bridge: Mutex<Option<foxglove::WebSocketServerHandle>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("path", &self.path).finish_non_exhaustive()
    }
}

struct Topics {
    lidar: Channel<PointCloud>,
    truth: Channel<SceneUpdate>,
    detections: Channel<SceneUpdate>,
    tracks: Channel<SceneUpdate>,
    paths: Channel<SceneUpdate>,
    gps: Channel<LocationFix>,
    log: Channel<Log>,
    own: Vec<Arc<RawChannel>>,
}

impl Topics {
    fn new(ctx: &Arc<Context>) -> Result<Self, String> {
        let own = OWN_TOPICS
            .iter()
            .map(|(topic, name, schema)| {
                ctx.channel_builder(*topic)
                    .message_encoding("json")
                    .schema(Schema::new(*name, "jsonschema", schema.as_bytes()))
                    .build_raw()
                    .map_err(|e| format!("channel {topic}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            lidar: ctx.channel_builder("/lidar").build(),
            truth: ctx.channel_builder("/scene/entities").build(),
            detections: ctx.channel_builder("/perception/detections").build(),
            tracks: ctx.channel_builder("/perception/tracks").build(),
            paths: ctx.channel_builder("/prediction/paths").build(),
            gps: ctx.channel_builder("/gps").build(),
            log: ctx.channel_builder("/log").build(),
            own,
        })
    }

    fn own(&self, topic: &str) -> &RawChannel {
        let i = OWN_TOPICS.iter().position(|(t, _, _)| *t == topic).expect("a topic of OWN_TOPICS");
        &self.own[i]
    }
}

/// Scene time to recording time: the wall clock when recording began plus scene seconds, moved
/// on after a reset so that time never runs backwards in the file.
struct Clock {
    base_ns: i128,
    last_frame_t: f64,
    last_ns: u64,
}

impl Clock {
    fn new() -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Self { base_ns: now as i128, last_frame_t: f64::NEG_INFINITY, last_ns: 0 }
    }

    fn at(&self, t_secs: f64) -> u64 {
        (self.base_ns + (t_secs * 1e9) as i128).max(0) as u64
    }

    /// The time of a frame; a frame earlier than the last one (a reset) starts a new stretch.
    fn frame(&mut self, t_secs: f64) -> u64 {
        if t_secs < self.last_frame_t {
            self.base_ns = self.last_ns as i128 + 100_000_000 - (t_secs * 1e9) as i128;
        }
        self.last_frame_t = t_secs;
        self.last_ns = self.at(t_secs);
        self.last_ns
    }
}

impl Recorder {
    /// Starts the recorder's thread, writing to `settings.path` if set (the bridge is started
    /// separately, [`Recorder::start_bridge`]).
    pub fn new(settings: &RecordSettings) -> Result<Arc<Self>, String> {
        let ctx = Context::new();
        let topics = Topics::new(&ctx)?;
        let mcap = match &settings.path {
            Some(path) => Some(open_mcap(&ctx, path, settings.compression)?),
            None => None,
        };
        let (tx, rx) = bounded(QUEUE_ENTRIES);
        let stats = Arc::new(RecordStats::default());
        let worker = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("waypoint-recorder".into())
                .spawn(move || write_loop(&rx, &topics, mcap, &stats))
                .map_err(|e| format!("cannot start the recorder thread: {e}"))?
        };
        Ok(Arc::new(Self {
            tx,
            worker: Mutex::new(Some(worker)),
            ctx,
            stats,
            bridge: Mutex::new(None),
            path: settings.path.clone(),
        }))
    }

    /// The file being written, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Starts the Foxglove WebSocket bridge (protocol `foxglove.websocket.v1`) on `addr`;
    /// returns the port it listens on.
    pub async fn start_bridge(&self, addr: std::net::SocketAddr) -> Result<u16, String> {
        let handle = foxglove::WebSocketServer::new()
            .name("waypoint")
            .context(&self.ctx)
            .bind(addr.ip().to_string(), addr.port())
            .start()
            .await
            .map_err(|e| format!("cannot start the Foxglove bridge on {addr}: {e}"))?;
        let port = handle.port();
        *self.bridge.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(port)
    }

    fn send(&self, entry: Entry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The scene's configuration (written first, and again after a reset).
    pub fn config(&self, config: &SceneConfig) {
        self.send(Entry::Config(Box::new(config.clone())));
    }

    /// One tick's sensors and truth.
    pub fn frame(&self, frame: &Frame) {
        self.send(Entry::Frame(Box::new(frame.clone())));
    }

    /// A published stream item: the stack's outputs are kept (the sensor streams come whole
    /// with [`Recorder::frame`]).
    pub fn item(&self, item: &StreamItem) {
        if matches!(
            item.stream(),
            StreamName::Tracks | StreamName::Predictions | StreamName::Health | StreamName::Evaluation
        ) {
            self.send(Entry::Item(Box::new(item.clone())));
        }
    }

    /// A routing decision.
    pub fn decision(&self, d: &Decision) {
        self.send(Entry::Decision(Box::new(d.clone())));
    }

    /// Writes what is queued, closes the file (its summary and index) and stops the bridge.
    /// Later entries are ignored.
    pub fn close(&self) {
        // A full queue: wait for room rather than lose the close.
        let _ = self.tx.send_timeout(Entry::Close, std::time::Duration::from_secs(10));
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
        if let Some(b) = self.bridge.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(b.stop());
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_mcap(
    ctx: &Arc<Context>,
    path: &Path,
    compression: Compression,
) -> Result<foxglove::McapWriterHandle<BufWriter<std::fs::File>>, String> {
    let file = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let compression = match compression {
        Compression::Zstd => Some(McapCompression::Zstd),
        Compression::Lz4 => Some(McapCompression::Lz4),
        Compression::None => None,
    };
    let options = McapWriteOptions::new().compression(compression).chunk_size(Some(CHUNK_BYTES)).profile("");
    McapWriter::with_options(options)
        .context(ctx)
        .create(BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| format!("cannot write MCAP to {}: {e}", path.display()))
}

fn write_loop(
    rx: &Receiver<Entry>,
    topics: &Topics,
    mcap: Option<foxglove::McapWriterHandle<BufWriter<std::fs::File>>>,
    stats: &RecordStats,
) {
    let mut clock = Clock::new();
    while let Ok(entry) = rx.recv() {
        if matches!(entry, Entry::Close) {
            break;
        }
        let started = std::time::Instant::now();
        // A conversion that panics loses its entry, not the file.
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_entry(topics, &mut clock, entry)))
            .map_err(|_| "panicked".to_string())
            .and_then(|r| r);
        match ok {
            Ok(()) => stats.entries.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, "recorder: an entry was not written");
                stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        stats.busy_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    if let Some(m) = mcap {
        match m.close() {
            Ok(_) => tracing::info!("recording closed"),
            Err(e) => tracing::error!(error = %e, "recording: cannot close the file"),
        }
    }
}

fn log_json<T: serde::Serialize>(ch: &RawChannel, value: &T, ns: u64) -> Result<(), String> {
    if ch.has_sinks() {
        let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        ch.log_with_meta(&bytes, foxglove::PartialMetadata { log_time: Some(ns) });
    }
    Ok(())
}

fn log_line(topics: &Topics, ns: u64, level: foxglove::messages::log::Level, name: &str, message: String) {
    if topics.log.has_sinks() {
        let msg = Log {
            timestamp: Some(convert::timestamp(ns)),
            level: level as i32,
            message,
            name: name.into(),
            ..Default::default()
        };
        topics.log.log_with_time(&msg, ns);
    }
}

fn write_entry(topics: &Topics, clock: &mut Clock, entry: Entry) -> Result<(), String> {
    match entry {
        Entry::Close => {}
        Entry::Config(config) => {
            let ns = clock.at(clock.last_frame_t.max(0.0));
            log_json(topics.own("/waypoint/config"), &config, ns)?;
        }
        Entry::Frame(mut frame) => {
            let ns = clock.frame(frame.t_secs);
            // The points go on /lidar, before the frame that refers to them.
            for sweep in &mut frame.lidar {
                if topics.lidar.has_sinks() {
                    topics.lidar.log_with_time(&convert::point_cloud(sweep, clock.at(sweep.t_secs)), ns);
                }
                sweep.points = Vec::new();
            }
            log_json(topics.own("/waypoint/frame"), &frame, ns)?;
            if topics.truth.has_sinks() {
                topics.truth.log_with_time(&convert::truth_entities(&frame.truth.ego, &frame.truth.agents, ns), ns);
            }
            if topics.gps.has_sinks() {
                for fix in &frame.gps {
                    topics.gps.log_with_time(&convert::location_fix(fix, clock.at(fix.t_secs)), ns);
                }
            }
        }
        Entry::Item(item) => {
            let StreamItem::Ready(_, msg) = *item else { return Ok(()) };
            match msg {
                ServerMessage::Tracks(m) => {
                    let ns = clock.at(m.t_secs);
                    if topics.detections.has_sinks() {
                        topics.detections.log_with_time(&convert::detection_entities(&m, ns), ns);
                    }
                    if topics.tracks.has_sinks() {
                        topics.tracks.log_with_time(&convert::track_entities(&m, ns), ns);
                    }
                    log_json(topics.own("/waypoint/tracks"), &m, ns)?;
                }
                ServerMessage::Predictions(m) => {
                    let ns = clock.at(m.t_secs);
                    if topics.paths.has_sinks() {
                        topics.paths.log_with_time(&convert::prediction_entities(&m, ns), ns);
                    }
                    log_json(topics.own("/waypoint/predictions"), &m, ns)?;
                }
                ServerMessage::Health(m) => {
                    let ns = clock.at(m.t_secs);
                    log_json(topics.own("/waypoint/health"), &m, ns)?;
                }
                ServerMessage::Evaluation(m) => {
                    let ns = clock.at(m.t_secs);
                    log_json(topics.own("/waypoint/evaluation"), &m, ns)?;
                }
                _ => {}
            }
        }
        Entry::Decision(d) => {
            let ns = clock.at(clock.last_frame_t.max(0.0));
            log_line(
                topics,
                ns,
                foxglove::messages::log::Level::Info,
                "routing",
                format!("{} {}: {}", d.model, d.action, d.detail),
            );
            log_json(topics.own("/waypoint/routing"), &d, ns)?;
        }
    }
    Ok(())
}
