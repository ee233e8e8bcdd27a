//! Plays an MCAP file back as scene frames.
//!
//! A Waypoint recording gives back each tick's [`Frame`] exactly: `/waypoint/frame` with its
//! lidar points from the `/lidar` point clouds logged before it. Any other MCAP file plays if it
//! has a `foxglove.PointCloud` topic (protobuf): each cloud becomes a frame with one sweep (its
//! pose the sensor's) and no truth, radar or other sensors; frame times are the clouds' log
//! times from the first.
//!
//! The file is streamed (one chunk in memory at a time) on a thread of its own, a few frames
//! ahead (bounded). Seeking restarts the read and skips to the time asked for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foxglove::messages::PointCloud;
use foxglove::Decode;
use waypoint_sim::frame::{AgentTruth, GroundTruth, LidarSweep};
use waypoint_sim::map::SignalPhase;
use waypoint_sim::{AgentKind, Frame, SceneConfig};

/// Frames read ahead of the one being played.
const READ_AHEAD: usize = 4;

/// What kind of file is playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Waypoint's own recording: every sensor and the truth.
    Waypoint,
    /// A point-cloud topic of another recording: lidar only.
    PointCloud,
}

/// What [`Player::open`] learnt about a file.
#[derive(Debug, Clone)]
pub struct Summary {
    pub source: Source,
    /// The scene configuration recorded first (Waypoint recordings).
    pub config: Option<SceneConfig>,
    /// The point-cloud topic played.
    pub lidar_topic: Option<String>,
}

enum Played {
    Frame(u64, Box<Frame>),
    End(u64),
    Failed(u64, String),
}

#[derive(Default)]
struct Control {
    generation: AtomicU64,
    seek_to: Mutex<Option<f64>>,
    stop: AtomicBool,
}

/// A file being played.
pub struct Player {
    rx: Receiver<Played>,
    control: Arc<Control>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub summary: Summary,
    ended: bool,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player").field("summary", &self.summary).finish_non_exhaustive()
    }
}

/// The next frame, or why there is none.
#[derive(Debug)]
pub enum Next {
    Frame(Box<Frame>),
    /// The end of the file.
    End,
    /// The file cannot be read on (the reason).
    Failed(String),
}

fn is_cloud(ch: &mcap::Channel<'_>) -> bool {
    ch.schema.as_ref().is_some_and(|s| s.name == "foxglove.PointCloud") && ch.message_encoding == "protobuf"
}

fn messages(path: &Path) -> Result<mcap::io::MessageReader<std::io::BufReader<std::fs::File>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok(mcap::io::MessageReader::new(std::io::BufReader::with_capacity(1 << 20, file)))
}

/// Reads what kind of recording `path` holds.
fn summarize(path: &Path) -> Result<Summary, String> {
    let mut lidar_topic = None;
    for msg in messages(path)? {
        let msg = msg.map_err(|e| format!("{}: not a readable MCAP file: {e}", path.display()))?;
        match msg.channel.topic.as_str() {
            "/waypoint/config" => {
                let config: SceneConfig =
                    serde_json::from_slice(&msg.data).map_err(|e| format!("/waypoint/config: {e}"))?;
                return Ok(Summary {
                    source: Source::Waypoint,
                    config: Some(config),
                    lidar_topic: Some("/lidar".into()),
                });
            }
            "/waypoint/frame" => {
                return Ok(Summary { source: Source::Waypoint, config: None, lidar_topic: Some("/lidar".into()) });
            }
            _ if lidar_topic.is_none() && is_cloud(&msg.channel) => lidar_topic = Some(msg.channel.topic.clone()),
            _ => {}
        }
    }
    match lidar_topic {
        Some(t) => Ok(Summary { source: Source::PointCloud, config: None, lidar_topic: Some(t) }),
        None => Err("no Waypoint frames and no foxglove.PointCloud (protobuf) topic in the file".into()),
    }
}

fn empty_truth(t_secs: f64) -> GroundTruth {
    let ego = AgentTruth {
        id: 0,
        kind: AgentKind::Vehicle,
        x_m: 0.0,
        y_m: 0.0,
        length_m: 4.5,
        width_m: 1.9,
        height_m: 1.6,
        yaw_rad: 0.0,
        vx_mps: 0.0,
        vy_mps: 0.0,
        yaw_rate_rps: 0.0,
    };
    GroundTruth { t_secs, ego, agents: Vec::new(), faults: Vec::new(), signal: SignalPhase::AllRed }
}

impl Player {
    /// Opens `path` and starts reading it.
    pub fn open(path: &Path) -> Result<Self, String> {
        let summary = summarize(path)?;
        let path: PathBuf = path.to_path_buf();
        let (tx, rx) = sync_channel(READ_AHEAD);
        let control = Arc::new(Control::default());
        let thread = {
            let (control, summary) = (control.clone(), summary.clone());
            std::thread::Builder::new()
                .name("waypoint-replay".into())
                .spawn(move || read_loop(&path, &summary, &control, &tx))
                .map_err(|e| format!("cannot start the replay thread: {e}"))?
        };
        Ok(Self { rx, control, thread: Some(thread), summary, ended: false })
    }

    /// The next frame (waits for the reader).
    pub fn next_frame(&mut self) -> Next {
        if self.ended {
            return Next::End;
        }
        let current = self.control.generation.load(Ordering::SeqCst);
        loop {
            match self.rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Played::Frame(g, f)) if g == current => return Next::Frame(f),
                Ok(Played::End(g)) if g == current => {
                    self.ended = true;
                    return Next::End;
                }
                Ok(Played::Failed(g, e)) if g == current => {
                    self.ended = true;
                    return Next::Failed(e);
                }
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => return Next::Failed("the replay reader is stuck".into()),
                Err(RecvTimeoutError::Disconnected) => return Next::Failed("the replay reader has stopped".into()),
            }
        }
    }

    /// Plays from the first frame at or after `t_secs` (recording time).
    pub fn seek(&mut self, t_secs: f64) {
        *self.control.seek_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(t_secs.max(0.0));
        self.control.generation.fetch_add(1, Ordering::SeqCst);
        self.ended = false;
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        self.control.generation.fetch_add(1, Ordering::SeqCst);
        // Unblock a reader waiting for room.
        while self.rx.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            // The reader notices the stop within its send timeout.
            let _ = t.join();
        }
    }
}

/// Sends unless the generation moved on or the player stopped; false: start over or stop.
fn deliver(tx: &SyncSender<Played>, control: &Control, generation: u64, item: Played) -> bool {
    let mut item = item;
    loop {
        if control.stop.load(Ordering::SeqCst) || control.generation.load(Ordering::SeqCst) != generation {
            return false;
        }
        match tx.try_send(item) {
            Ok(()) => return true,
            Err(std::sync::mpsc::TrySendError::Full(back)) => {
                item = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return false,
        }
    }
}

fn read_loop(path: &Path, summary: &Summary, control: &Control, tx: &SyncSender<Played>) {
    let mut generation = control.generation.load(Ordering::SeqCst);
    let mut from = 0.0;
    loop {
        let result = play_once(path, summary, control, tx, generation, from);
        let finished = match result {
            Ok(true) => deliver(tx, control, generation, Played::End(generation)),
            Ok(false) => false,
            Err(e) => deliver(tx, control, generation, Played::Failed(generation, e)),
        };
        let _ = finished;
        // Wait for a seek (a new generation) or the stop.
        loop {
            if control.stop.load(Ordering::SeqCst) {
                return;
            }
            let g = control.generation.load(Ordering::SeqCst);
            if g != generation {
                generation = g;
                from = control.seek_to.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or(0.0);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Plays the file from `from`; Ok(true) at its end, Ok(false) when interrupted.
fn play_once(
    path: &Path,
    summary: &Summary,
    control: &Control,
    tx: &SyncSender<Played>,
    generation: u64,
    from: f64,
) -> Result<bool, String> {
    let mut sweeps: Vec<LidarSweep> = Vec::new();
    let mut first_ns: Option<u64> = None;
    let mut seq = 0u64;
    let lidar_topic = summary.lidar_topic.as_deref().unwrap_or("/lidar");
    for msg in messages(path)? {
        if control.stop.load(Ordering::SeqCst) || control.generation.load(Ordering::SeqCst) != generation {
            return Ok(false);
        }
        let msg = match msg {
            Ok(m) => m,
            // A file cut short (the writer killed): play what is there.
            Err(e) => {
                tracing::warn!(error = %e, "replay: the file ends early; played up to there");
                return Ok(true);
            }
        };
        let topic = msg.channel.topic.as_str();
        if topic == lidar_topic && is_cloud(&msg.channel) {
            let cloud = PointCloud::decode(msg.data.as_ref()).map_err(|e| format!("{topic}: {e}"))?;
            let first = *first_ns.get_or_insert(msg.log_time);
            let t = msg.log_time.saturating_sub(first) as f64 * 1e-9;
            let sweep = super::convert::sweep_from_cloud(&cloud, t).map_err(|e| e.to_string())?;
            match summary.source {
                Source::Waypoint => sweeps.push(sweep),
                Source::PointCloud => {
                    seq += 1;
                    if t + 1e-9 < from {
                        continue;
                    }
                    let frame = Frame {
                        seq,
                        t_secs: t,
                        lidar: vec![sweep],
                        radar: Vec::new(),
                        camera: Vec::new(),
                        imu: Vec::new(),
                        gps: Vec::new(),
                        truth: empty_truth(t),
                    };
                    if !deliver(tx, control, generation, Played::Frame(generation, Box::new(frame))) {
                        return Ok(false);
                    }
                }
            }
        } else if topic == "/waypoint/frame" && summary.source == Source::Waypoint {
            let mut frame: Frame = serde_json::from_slice(&msg.data).map_err(|e| format!("/waypoint/frame: {e}"))?;
            let clouds = std::mem::take(&mut sweeps);
            if clouds.len() == frame.lidar.len() {
                // The recorded sweep's own time and pose, with the cloud's points.
                for (s, c) in frame.lidar.iter_mut().zip(clouds) {
                    s.points = c.points;
                }
            } else {
                frame.lidar.clear();
            }
            if frame.t_secs + 1e-9 < from {
                continue;
            }
            if !deliver(tx, control, generation, Played::Frame(generation, Box::new(frame))) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
