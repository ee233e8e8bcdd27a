//! The scene thread: runs the simulator on its tick, applies commands between ticks and
//! publishes every frame's stream items to the hub. The simulator is synchronous, so it lives on
//! its own OS thread, never on the async executor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use waypoint_protocol::convert::{stream_items, SceneStatus, StreamItem};
use waypoint_protocol::{Command, HealthMsg, ReplyBody, SceneMsg, ServerMessage, StreamName};
use waypoint_sim::fault::{FaultSpec, Sensor};
use waypoint_sim::{Frame, Scene};

use crate::config::{ServerConfig, ServerError};
use crate::lifecycle::online::OnlineEval;
use crate::live::health::Health;
use crate::live::hub::Hub;
use crate::metrics::Metrics;
use crate::record::player::{Next, Player};
use crate::record::Recorder;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Refused(String),
    #[error("the scene is busy; try again")]
    Busy,
    #[error("the scene thread has stopped")]
    Gone,
}

type Reply = oneshot::Sender<Result<ReplyBody, CommandError>>;

/// A command's answer, on its way.
pub type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<ReplyBody, CommandError>> + Send>>;

/// Where a replica that does not run the scene sends its commands (in a cluster: the leader).
pub trait Forward: Send + Sync {
    fn forward(&self, cmd: Command) -> Answer;
}

#[derive(Default)]
struct ForwardSlot(std::sync::OnceLock<Arc<dyn Forward>>);

impl std::fmt::Debug for ForwardSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "ForwardSlot(set)" } else { "ForwardSlot(none)" })
    }
}

/// What a new leader needs to go on with the scene: the seed it was reset with and every
/// setting a command changed since, the scene time and the faults on record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SceneState {
    pub seed: u64,
    pub running: bool,
    pub speed: f64,
    pub sensors_enabled: [bool; 5],
    pub threshold: f64,
    pub t_secs: f64,
    pub faults: Vec<waypoint_sim::fault::FaultRecord>,
}

/// Handle to the scene thread.
#[derive(Debug)]
pub struct SceneRunner {
    tx: SyncSender<(Command, Reply)>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shutdown: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    t_bits: Arc<AtomicU64>,
    last_scene: Arc<Mutex<Option<SceneMsg>>>,
    /// Whether this replica runs the scene (always, outside a cluster).
    leading: Arc<AtomicBool>,
    forward: ForwardSlot,
    state: Arc<Mutex<Option<SceneState>>>,
    replay_ended: Arc<AtomicBool>,
}

/// How often the scene status is re-sent while the scene is paused.
pub const PAUSED_STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Least and most scene speed (scene seconds per wall-clock second).
pub const SPEED_RANGE: (f64, f64) = (0.1, 10.0);

struct Loop {
    scene: Scene,
    running: bool,
    speed: f64,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    last: Option<Frame>,
    last_scene: Arc<Mutex<Option<SceneMsg>>>,
    predictor: Option<crate::live::predictor::Predictor>,
    perception: Option<crate::live::perception::Perception>,
    health: Health,
    online: Arc<OnlineEval>,
    /// A reset happened since the last sweep offered to perception.
    reset_pending: bool,
    state: Arc<Mutex<Option<SceneState>>>,
    /// The recording being played instead of the simulator.
    player: Option<Player>,
    /// The recording being written.
    recorder: Option<Arc<Recorder>>,
    /// Time of the last frame played (the simulator keeps its own).
    replay_t: f64,
    /// Set when the recording has been played to its end.
    replay_ended: Arc<AtomicBool>,
}

/// The answer to a command only a simulated scene takes while a recording plays.
const NOT_WHILE_REPLAYING: &str = "not while replaying a recording: the scene is the recorded one";

impl Loop {
    fn status(&self) -> SceneStatus {
        SceneStatus {
            running: self.running,
            speed: self.speed,
            seed: self.scene.config().seed,
            sensors_enabled: Sensor::ALL.map(|s| self.scene.sensor_enabled(s)),
        }
    }

    /// Scene time: the simulator's, or the last played frame's.
    fn now(&self) -> f64 {
        if self.player.is_some() {
            self.replay_t
        } else {
            self.scene.t_secs()
        }
    }

    /// Starts a replay over from `t_secs`: what the stack knew of the old position is
    /// forgotten, as after a reset.
    fn seek(&mut self, t_secs: f64) {
        if let Some(p) = &mut self.player {
            p.seek(t_secs);
            self.replay_ended.store(false, Ordering::Relaxed);
            self.health.restart(&self.scene.config().sensors);
            if let Some(p) = &mut self.predictor {
                p.clear();
            }
            self.online.reset_scene();
            self.reset_pending = true;
        }
    }

    fn save_state(&self) {
        let state = SceneState {
            seed: self.scene.config().seed,
            running: self.running,
            speed: self.speed,
            sensors_enabled: Sensor::ALL.map(|s| self.scene.sensor_enabled(s)),
            threshold: self.health.threshold,
            t_secs: self.now(),
            faults: self.scene.faults().to_vec(),
        };
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
    }

    /// Runs one tick; returns the scene seconds until the next one (none: the replay ended).
    fn tick(&mut self) -> Option<f64> {
        let started = Instant::now();
        let tick_secs = self.scene.config().tick_secs;
        let (frame, dt) = match &mut self.player {
            None => (self.scene.tick(), tick_secs),
            Some(player) => match player.next_frame() {
                Next::Frame(f) => {
                    let dt = f.t_secs - self.replay_t;
                    self.replay_t = f.t_secs;
                    (*f, if dt > 0.0 && dt <= 1.0 { dt } else { tick_secs })
                }
                end => {
                    let why = match end {
                        Next::Failed(e) => format!("replay stopped: {e}"),
                        _ => format!("replay ended at {:.1} s; start plays it again", self.replay_t),
                    };
                    tracing::info!("{why}");
                    // Every sweep offered is through the stack before the end is announced.
                    if let Some(p) = &self.perception {
                        p.flush();
                    }
                    self.hub.notice("info", &why);
                    self.running = false;
                    self.replay_ended.store(true, Ordering::Relaxed);
                    return None;
                }
            },
        };
        self.metrics.sim_tick_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.metrics.sim_ticks.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = &self.recorder {
            r.frame(&frame);
        }
        for item in stream_items(&frame, &self.status()) {
            self.remember(&item);
            self.hub.publish(&item);
        }
        // The scored truth first: the stack's outputs of this tick are scored against it.
        let evaluation = self.online.on_frame(&frame.truth);
        if let Some(p) = &mut self.predictor {
            let e = &frame.truth.ego;
            let ego = crate::live::predictor::Ego { x_m: e.x_m, y_m: e.y_m, vx_mps: e.vx_mps, vy_mps: e.vy_mps };
            p.on_sample(frame.seq, frame.t_secs, &crate::live::perception::truth_samples(&frame.truth), Some(ego));
        }
        if let (Some(p), Some(sweep)) = (&self.perception, frame.lidar.last()) {
            let ego = &frame.truth.ego;
            let lidar = &self.scene.config().sensors.lidar;
            let reset = std::mem::take(&mut self.reset_pending);
            p.offer(frame.seq, sweep, lidar, &frame.radar, (ego.vx_mps, ego.vy_mps), &frame.truth, reset);
        }
        self.publish_health(&frame);
        if let Some(msg) = evaluation {
            self.hub.publish(&StreamItem::Ready(StreamName::Evaluation, ServerMessage::Evaluation(msg)));
        }
        self.last = Some(frame);
        Some(dt)
    }

    /// Scores the sensors' health on this tick through the served model and publishes it.
    fn publish_health(&mut self, frame: &Frame) {
        let enabled = Sensor::ALL.map(|s| self.scene.sensor_enabled(s));
        let Some(answer) = self.health.tick(frame, enabled, self.scene.config().tick_secs) else { return };
        let combined = answer.sensors.iter().filter(|h| h.enabled).map(|h| h.score).fold(0.0, f64::max);
        for (flag, h) in self.metrics.sensor_alarms.iter().zip(&answer.sensors) {
            flag.store(h.enabled && h.alarm, Ordering::Relaxed);
        }
        let msg = HealthMsg {
            seq: frame.seq,
            t_secs: frame.t_secs,
            version: Some(answer.version),
            threshold: self.health.threshold,
            combined,
            sensors: answer.sensors,
            faults: frame.truth.faults.clone(),
        };
        self.hub.publish(&StreamItem::Ready(StreamName::Health, ServerMessage::Health(msg)));
    }

    fn remember(&self, item: &StreamItem) {
        if let StreamItem::Ready(_, ServerMessage::Scene(m)) = item {
            *self.last_scene.lock().unwrap_or_else(|p| p.into_inner()) = Some(m.clone());
        }
    }

    /// Re-publishes the scene status (after a command while paused, and while paused): the road
    /// users as they are now, also before the first tick (a scene started paused).
    fn publish_status(&self) {
        if self.player.is_some() {
            // A replay has no simulator behind it: the last played frame is the scene.
            if let Some(frame) = &self.last {
                self.publish_scene_of(frame);
            }
            return;
        }
        let frame = Frame {
            seq: self.last.as_ref().map_or(self.scene.seq(), |f| f.seq),
            t_secs: self.scene.t_secs(),
            lidar: Vec::new(),
            radar: Vec::new(),
            camera: Vec::new(),
            imu: Vec::new(),
            gps: Vec::new(),
            truth: self.scene.truth_now(),
        };
        self.publish_scene_of(&frame);
    }

    fn publish_scene_of(&self, frame: &Frame) {
        let status = self.status();
        if let Some(item) = stream_items(frame, &status).into_iter().find(|i| i.stream() == StreamName::Scene) {
            self.remember(&item);
            self.hub.publish(&item);
        }
    }

    fn apply(&mut self, cmd: Command) -> Result<ReplyBody, CommandError> {
        let refused = |e: waypoint_sim::SimError| CommandError::Refused(e.to_string());
        let mut reply = ReplyBody { streams: None, agent_id: None, fault: None, t_secs: Some(self.now()) };
        if self.player.is_some() {
            return self.apply_replaying(cmd, reply);
        }
        match cmd {
            Command::Seek { .. } => {
                return Err(CommandError::Refused("seek needs a recording to play (serve --replay FILE)".into()))
            }
            Command::Start => self.running = true,
            Command::Stop => self.running = false,
            Command::Reset { seed } => {
                self.scene.reset(seed).map_err(refused)?;
                if let Some(r) = &self.recorder {
                    r.config(self.scene.config());
                }
                self.health.restart(&self.scene.config().sensors);
                if let Some(p) = &mut self.predictor {
                    p.clear();
                }
                self.reset_pending = true;
            }
            Command::AddAgent { kind } => reply.agent_id = Some(self.scene.add_agent(kind).map_err(refused)?),
            Command::RemoveAgent { agent_id } => self.scene.remove_agent(agent_id).map_err(refused)?,
            Command::Clear => self.scene.clear(),
            Command::InjectFault { sensor, fault, duration_secs, magnitude, start_secs } => {
                let spec = FaultSpec { sensor, kind: fault, start_secs, duration_secs, magnitude };
                reply.fault = Some(self.scene.inject_fault(spec).map_err(refused)?);
            }
            Command::ClearFaults => self.scene.clear_faults(),
            Command::SetSensor { sensor, enabled } => self.scene.set_sensor_enabled(sensor, enabled),
            Command::SetRate { speed } => self.set_rate(speed)?,
            Command::SetThreshold { value } => self.set_threshold(value)?,
        }
        Ok(reply)
    }

    fn set_rate(&mut self, speed: f64) -> Result<(), CommandError> {
        if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
            return Err(CommandError::Refused(format!("speed must be within {}..={}", SPEED_RANGE.0, SPEED_RANGE.1)));
        }
        self.speed = speed;
        Ok(())
    }

    fn set_threshold(&mut self, value: f64) -> Result<(), CommandError> {
        if !(value > 0.0 && value <= 1.0) {
            return Err(CommandError::Refused("threshold must be within (0, 1]".into()));
        }
        self.health.threshold = value;
        Ok(())
    }

    /// Commands while a recording plays: start (from the beginning after the end), stop, rate,
    /// threshold, seek, and reset (back to the beginning); the rest change a simulated scene.
    fn apply_replaying(&mut self, cmd: Command, reply: ReplyBody) -> Result<ReplyBody, CommandError> {
        match cmd {
            Command::Start => {
                if self.replay_ended.load(Ordering::Relaxed) {
                    self.seek(0.0);
                }
                self.running = true;
            }
            Command::Stop => self.running = false,
            Command::Reset { .. } => self.seek(0.0),
            Command::Seek { t_secs } => {
                if !(t_secs.is_finite() && t_secs >= 0.0) {
                    return Err(CommandError::Refused("seek needs a time >= 0 s".into()));
                }
                self.seek(t_secs);
            }
            Command::SetRate { speed } => self.set_rate(speed)?,
            Command::SetThreshold { value } => self.set_threshold(value)?,
            _ => return Err(CommandError::Refused(NOT_WHILE_REPLAYING.into())),
        }
        Ok(reply)
    }
}

impl SceneRunner {
    /// Builds the scene and starts its thread.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        config: &ServerConfig,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        online: Arc<OnlineEval>,
        predictor: Option<crate::live::predictor::Predictor>,
        perception: Option<crate::live::perception::Perception>,
        ctx: Option<crate::live::Context>,
        recorder: Option<Arc<Recorder>>,
    ) -> Result<Self, ServerError> {
        let player = match &config.replay {
            Some(r) => Some(Player::open(&r.path).map_err(ServerError::Config)?),
            None => None,
        };
        // A replay's sensors are the recorded ones.
        let scene_config =
            player.as_ref().and_then(|p| p.summary.config.clone()).unwrap_or_else(|| config.scene.clone());
        let mut scene = Scene::new(scene_config).map_err(|e| ServerError::Config(e.to_string()))?;
        if let Some(tracks) = &config.replay_tracks {
            scene.replay_tracks(tracks.clone(), waypoint_sim::geometry::Vec2::default());
        }
        if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&config.speed) {
            return Err(ServerError::Config(format!("speed must be within {}..={}", SPEED_RANGE.0, SPEED_RANGE.1)));
        }
        let (tx, rx) = sync_channel(64);
        let shutdown = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(!config.autostart));
        let t_bits = Arc::new(AtomicU64::new(0));
        let last_scene = Arc::new(Mutex::new(None));
        let state = Arc::new(Mutex::new(None));
        // In a cluster the scene waits until this replica wins the lease.
        let leading = Arc::new(AtomicBool::new(config.redis_url.is_none()));
        let health = Health::new(ctx, &scene.config().sensors);
        if let Some(r) = &recorder {
            r.config(scene.config());
        }
        let replay_ended = Arc::new(AtomicBool::new(false));
        let mut lp = Loop {
            scene,
            running: config.autostart,
            speed: config.speed,
            hub,
            metrics,
            last: None,
            last_scene: last_scene.clone(),
            predictor,
            perception,
            health,
            online,
            reset_pending: false,
            state: state.clone(),
            player,
            recorder,
            replay_t: 0.0,
            replay_ended: replay_ended.clone(),
        };
        lp.save_state();
        let flags = Flags {
            shutdown: shutdown.clone(),
            ready: ready.clone(),
            t_bits: t_bits.clone(),
            leading: leading.clone(),
            unpaced: config.unpaced,
        };
        let thread = std::thread::Builder::new()
            .name("waypoint-scene".into())
            .spawn(move || run_loop(&mut lp, &rx, &flags))
            .map_err(|e| ServerError::Config(format!("cannot start the scene thread: {e}")))?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(thread)),
            shutdown,
            ready,
            t_bits,
            last_scene,
            leading,
            forward: ForwardSlot::default(),
            state,
            replay_ended,
        })
    }

    /// Whether the recording being played has reached its end (or failed).
    pub fn replay_ended(&self) -> bool {
        self.replay_ended.load(Ordering::Relaxed)
    }

    /// Whether this replica runs the scene.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Runs the scene here (`true`) or leaves it to another replica (`false`: the thread idles
    /// and commands go to the forwarder).
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    /// Where commands go while this replica does not run the scene (once).
    pub fn set_forward(&self, forward: Arc<dyn Forward>) {
        let _ = self.forward.0.set(forward);
    }

    /// The scene's settings, time and faults, as of the last command or second.
    pub fn state(&self) -> Option<SceneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes a `scene` message the leader published (on a replica that does not run the
    /// scene): it becomes this replica's latest scene and time.
    pub fn observe(&self, msg: &SceneMsg) {
        self.t_bits.store(msg.t_secs.to_bits(), Ordering::Relaxed);
        self.ready.store(true, Ordering::Relaxed);
        *self.last_scene.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
    }

    /// Whether the scene has produced its first frame.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The latest `scene` stream message, if a frame has been produced.
    pub fn last_scene(&self) -> Option<SceneMsg> {
        self.last_scene.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Current scene time.
    pub fn t_secs(&self) -> f64 {
        f64::from_bits(self.t_bits.load(Ordering::Relaxed))
    }

    /// Applies a command between two ticks and returns its result; on a replica that does not
    /// run the scene, the replica that does applies it.
    pub async fn command(&self, cmd: Command) -> Result<ReplyBody, CommandError> {
        if !self.is_leading() {
            if let Some(f) = self.forward.0.get() {
                return f.forward(cmd).await;
            }
        }
        self.command_local(cmd).await
    }

    /// Applies a command to this replica's scene.
    pub async fn command_local(&self, cmd: Command) -> Result<ReplyBody, CommandError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        match self.tx.try_send((cmd, reply_tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(CommandError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(CommandError::Gone),
        }
        match tokio::time::timeout(Duration::from_secs(5), reply_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(CommandError::Gone),
            Err(_) => Err(CommandError::Busy),
        }
    }

    /// Stops the thread and waits for it.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for SceneRunner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Flags {
    shutdown: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    t_bits: Arc<AtomicU64>,
    leading: Arc<AtomicBool>,
    /// Play as fast as the stack takes it (`eval replay`).
    unpaced: bool,
}

fn run_loop(lp: &mut Loop, rx: &Receiver<(Command, Reply)>, flags: &Flags) {
    let (shutdown, ready, t_bits) = (&flags.shutdown, &flags.ready, &flags.t_bits);
    let mut next_tick = Instant::now();
    let mut last_status = Instant::now();
    let mut last_saved = Instant::now();
    let mut was_leading = true;
    while !shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        let leading = flags.leading.load(Ordering::Relaxed);
        if leading && !was_leading {
            // Taking the scene over: no burst of the ticks not run while following.
            next_tick = now;
        }
        was_leading = leading;
        let ticking = lp.running && leading;
        let wait = if ticking { next_tick.saturating_duration_since(now) } else { Duration::from_millis(100) };
        let next = if ticking && flags.unpaced {
            rx.try_recv().map_err(|e| match e {
                std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                std::sync::mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            rx.recv_timeout(wait.min(Duration::from_millis(100)))
        };
        match next {
            Ok((cmd, reply)) => {
                let was_running = lp.running;
                let result = lp.apply(cmd);
                if lp.running && !was_running {
                    next_tick = Instant::now();
                }
                if !lp.running && flags.leading.load(Ordering::Relaxed) {
                    lp.publish_status();
                    last_status = Instant::now();
                }
                t_bits.store(lp.now().to_bits(), Ordering::Relaxed);
                lp.save_state();
                let _ = reply.send(result);
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !leading {
            continue;
        }
        if !lp.running && last_status.elapsed() >= PAUSED_STATUS_INTERVAL {
            // While paused, the scene stream keeps saying so once a second.
            lp.publish_status();
            last_status = Instant::now();
        }
        if lp.running && Instant::now() >= next_tick {
            let Some(dt) = lp.tick() else { continue };
            t_bits.store(lp.now().to_bits(), Ordering::Relaxed);
            ready.store(true, Ordering::Relaxed);
            if last_saved.elapsed() >= Duration::from_millis(250) {
                lp.save_state();
                last_saved = Instant::now();
            }
            if flags.unpaced {
                continue;
            }
            next_tick += Duration::from_secs_f64(dt / lp.speed);
            // After a stall, do not replay the missed ticks in a burst.
            let now = Instant::now();
            if next_tick + Duration::from_secs(1) < now {
                next_tick = now;
            }
        }
    }
}
