//! The live AV stack, on a thread of its own fed by a bounded channel (model code never runs on
//! the async executor): each lidar sweep goes through the served `detection` version routing
//! picks (key `sweep-<seq>`, so a split or canary divides the sweeps), its detections move into
//! the world frame and feed the multi-object tracker; every confirmed track is fused with its
//! radar returns through the served `fusion` model ([`super::fusion`]); the fused tracks feed
//! the trajectory predictor ([`super::predictor`], key `track-<id>`). Detections, tracks and
//! fused states go out on the `tracks` stream with the versions that answered; every version's
//! output is scored against the tick's truth by the online evaluator.
//!
//! Sweeps are processed in order; when the stack is still busy with an earlier sweep, a new one
//! is skipped (counted in `waypoint_perception_skipped_total`), never queued without bound.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use waypoint_models::detection::classifier::CLASSES;
use waypoint_models::detection::eval_sim::score_sweep;
use waypoint_models::detection::tracker::{Observation, Tracker, TrackerConfig};
use waypoint_models::{Tensor, TensorData};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{DetectedObject, ServerMessage, StreamName, TrackedObject, TracksMsg};
use waypoint_sim::frame::{AgentTruth, GroundTruth, LidarSweep, RadarScan};
use waypoint_sim::geometry::Vec2;
use waypoint_sim::sensors::lidar::LidarConfig;
use waypoint_sim::AgentKind;

use crate::lifecycle::online::{Subject, MATCH_M};
use crate::live::fusion::TrackFusion;
use crate::live::predictor::{Ego, Predictor, Sample};
use crate::live::sweep_log::{LoggedSweep, SweepLog};
use crate::live::Context;
use crate::metrics::Metrics;
use crate::serving::registry::LoadedVersion;

/// Model used for live detection.
pub const DETECTION_MODEL: &str = "detection";

/// What one tick hands to perception.
#[derive(Debug)]
struct Input {
    seq: u64,
    sweep: LidarSweep,
    radar: Vec<RadarScan>,
    /// The vehicle's velocity (odometry), to remove its own motion from radar range rates.
    ego_velocity: (f64, f64),
    /// The lidar's beam angles, degrees, by the detection model's input names.
    lidar_angles: [(&'static str, f32); 2],
    /// The tick's truth, to score every version's output on.
    truth: GroundTruth,
    /// The scene was reset before this tick.
    reset: bool,
}

/// What the stack's thread takes.
#[derive(Debug)]
enum Job {
    Sweep(Box<Input>),
    /// Answered once every sweep before it is done.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Handle that accepts sweeps.
#[derive(Debug)]
pub struct Perception {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
    /// Wait for the stack instead of skipping a sweep (a replay evaluated as fast as it goes).
    blocking: bool,
    /// The stack's thread, joined when the handle is dropped (so that it never outlives the
    /// runtime its model calls use).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Perception {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the sweep it is on.
        let (closed, _) = sync_channel(0);
        drop(std::mem::replace(&mut self.tx, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Stack {
    ctx: Context,
    tracker: Tracker,
    fusion: TrackFusion,
    predictor: Predictor,
    last_t: Option<f64>,
    metrics: Arc<Metrics>,
    log: Option<Arc<SweepLog>>,
}

impl Perception {
    /// Starts the stack's thread; `predictor` is the track-fed predictor.
    /// With `blocking`, every sweep is processed (the scene waits); otherwise a sweep that
    /// arrives while the stack is busy is skipped.
    /// With `log`, every sweep's tracks and truth are kept in it.
    pub fn start(
        ctx: Context,
        predictor: Predictor,
        metrics: Arc<Metrics>,
        blocking: bool,
        log: Option<Arc<SweepLog>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(1);
        let mut stack = Stack {
            ctx,
            tracker: Tracker::new(TrackerConfig::default()),
            fusion: TrackFusion::default(),
            predictor,
            last_t: None,
            metrics: metrics.clone(),
            log,
        };
        // The thread ends when the scene drops this handle (the channel closes).
        let thread = std::thread::Builder::new().name("waypoint-perception".into()).spawn(move || stack.run(&rx))?;
        Ok(Self { tx, metrics, blocking, thread: Some(thread) })
    }

    /// Waits until every sweep offered so far is processed.
    pub fn flush(&self) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.tx.send(Job::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }

    /// Offers a tick's sweep (from `lidar`), radar scans and truth; skipped when the previous
    /// sweep is still being processed.
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &self,
        seq: u64,
        sweep: &LidarSweep,
        lidar: &LidarConfig,
        radar: &[RadarScan],
        ego_velocity: (f64, f64),
        truth: &GroundTruth,
        reset: bool,
    ) {
        let lidar_angles = [
            ("ring_spacing_deg", lidar.ring_spacing_rad().to_degrees() as f32),
            ("azimuth_step_deg", lidar.azimuth_step_rad().to_degrees() as f32),
        ];
        let input = Input {
            seq,
            sweep: sweep.clone(),
            radar: radar.to_vec(),
            ego_velocity,
            lidar_angles,
            truth: truth.clone(),
            reset,
        };
        let job = Job::Sweep(Box::new(input));
        if self.blocking {
            let _ = self.tx.send(job);
            return;
        }
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.perception_skipped.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(seq, "perception busy; sweep skipped");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The road user within [`MATCH_M`] of a position, nearest first.
fn subject_at(agents: &[AgentTruth], x: f64, y: f64) -> Option<Subject> {
    agents
        .iter()
        .map(|a| ((a.x_m - x).hypot(a.y_m - y), a))
        .filter(|(d, _)| *d < MATCH_M)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| Subject { agent: a.id, kind: a.kind })
}

impl Stack {
    fn run(&mut self, rx: &Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            let input = match job {
                Job::Sweep(input) => *input,
                Job::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            let started = Instant::now();
            // A panic in one sweep (a model, or the runtime shutting down under a request) costs
            // that sweep, not the stack.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(input)));
            if let Err(panic) = done {
                tracing::warn!(panic = %crate::serving::engine::panic_text(panic.as_ref()), "a live sweep failed");
                continue;
            }
            self.metrics.observe_sweep(started.elapsed());
        }
    }

    fn process(&mut self, input: Input) {
        if input.reset || self.last_t.is_some_and(|t| input.sweep.t_secs < t) {
            self.tracker = Tracker::new(TrackerConfig::default());
            self.fusion.clear();
            self.predictor.clear();
            self.last_t = None;
        }
        let Some((loaded, detections, classes)) = self.detect(&input) else { return };
        let obs: Vec<Observation> = detections
            .iter()
            .zip(&classes)
            .map(|(d, class)| Observation {
                x_m: d.x_m,
                y_m: d.y_m,
                class: *class,
                yaw_rad: Some(d.yaw_rad),
                score: d.score,
            })
            .collect();
        let dt = self.last_t.map_or(0.1, |t| (input.sweep.t_secs - t).max(0.0));
        self.last_t = Some(input.sweep.t_secs);
        self.tracker.step(dt, &obs);
        let confirmed = self.tracker.tracks();
        self.metrics.live_detections.store(detections.len() as u64, Ordering::Relaxed);
        self.metrics.live_tracks.store(confirmed.len() as u64, Ordering::Relaxed);
        let lidar_xy = (input.sweep.world_from_sensor.x_m, input.sweep.world_from_sensor.y_m);
        self.fusion.add(&confirmed, &obs, input.sweep.t_secs, &input.radar, input.ego_velocity, lidar_xy);
        let agents = &input.truth.agents;
        let (fusion_version, fused) = self.fusion.run(&self.ctx, input.seq, agents);
        // Predict each confirmed track from its fused position (the tracker's when fusion gave
        // none), scored against the road user it lies on now.
        let samples: Vec<Sample> = confirmed
            .iter()
            .map(|t| {
                let (x, y) = fused.iter().find(|f| f.id == t.id).map_or((t.x_m, t.y_m), |f| (f.x_m, f.y_m));
                // The class the track is taken for (what the vehicle knows, not the truth).
                let class = match t.class {
                    0 => Some(AgentKind::Vehicle),
                    1 => Some(AgentKind::Pedestrian),
                    2 => Some(AgentKind::Cyclist),
                    _ => None,
                };
                Sample { id: t.id, x_m: x, y_m: y, subject: subject_at(agents, x, y), class }
            })
            .collect();
        // The vehicle's own pose (the lidar sits above its centre) and odometry.
        let pose = &input.sweep.world_from_sensor;
        let ego = Ego { x_m: pose.x_m, y_m: pose.y_m, vx_mps: input.ego_velocity.0, vy_mps: input.ego_velocity.1 };
        self.predictor.on_sample(input.seq, input.sweep.t_secs, &samples, Some(ego));
        if let Some(log) = &self.log {
            log.push(LoggedSweep {
                t_secs: input.sweep.t_secs,
                tracks: samples.clone(),
                truth: agents.iter().map(|a| (a.id, a.kind, [a.x_m as f32, a.y_m as f32])).collect(),
                ego,
            });
        }
        let tracks = confirmed
            .into_iter()
            .map(|t| TrackedObject {
                id: t.id,
                x_m: t.x_m,
                y_m: t.y_m,
                vx_mps: t.vx_mps,
                vy_mps: t.vy_mps,
                class: t.class as u8,
                misses: t.misses,
            })
            .collect();
        let msg = TracksMsg {
            seq: input.seq,
            t_secs: input.sweep.t_secs,
            model: loaded.model.clone(),
            version: loaded.version.to_string(),
            fusion_version,
            detections,
            tracks,
            fused,
        };
        self.ctx.hub.publish(&StreamItem::Ready(StreamName::Tracks, ServerMessage::Tracks(msg)));
    }

    /// Runs the sweep through the detection version routing picks (and the one shadowing it,
    /// only scored); returns the answering version, its detections in the world frame and
    /// their classes.
    fn detect(&self, input: &Input) -> Option<(Arc<LoadedVersion>, Vec<DetectedObject>, Vec<usize>)> {
        let key = format!("sweep-{}", input.seq);
        let (loaded, shadow) =
            crate::lifecycle::routing::resolve(&self.ctx.registry, &self.ctx.router, DETECTION_MODEL, None, &key)
                .ok()?;
        if let Some(s) = shadow {
            if let Some((d, c)) = self.run_detection(&s, input) {
                self.score(&s, input, &d, &c);
            }
        }
        let (detections, classes) = self.run_detection(&loaded, input)?;
        self.score(&loaded, input, &detections, &classes);
        Some((loaded, detections, classes))
    }

    fn score(&self, loaded: &LoadedVersion, input: &Input, detections: &[DetectedObject], classes: &[usize]) {
        let world: Vec<Vec2> = detections.iter().map(|d| Vec2::new(d.x_m, d.y_m)).collect();
        let score = score_sweep(&input.truth.agents, &input.sweep, &world, classes);
        self.ctx.online.record_detection(&loaded.model, &loaded.version.to_string(), input.seq, &score);
    }

    /// One detection request, waited for on this thread.
    fn run_detection(&self, loaded: &LoadedVersion, input: &Input) -> Option<(Vec<DetectedObject>, Vec<usize>)> {
        let sweep = &input.sweep;
        let flat: Vec<f32> = sweep.points.iter().flatten().copied().collect();
        let mut inputs = vec![Tensor::new("points", vec![sweep.points.len(), 4], TensorData::F32(flat)).ok()?];
        // The lidar's beam angles, to a model configured to take them (a repository written
        // before an input existed does not declare it).
        for (name, deg) in input.lidar_angles {
            if loaded.config.inputs.iter().any(|i| i.name == name) {
                inputs.push(Tensor::new(name, vec![1], TensorData::F32(vec![deg])).ok()?);
            }
        }
        let out = match self.ctx.handle.block_on(crate::serving::inference::infer_on(loaded, inputs)) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(error = %e, "live detection failed");
                return None;
            }
        };
        let get = |name: &str| out.outputs.iter().find(|t| t.name == name);
        let (b, s) = (get("boxes")?.as_f32().ok()?, get("scores")?.as_f32().ok()?);
        let TensorData::I32(c) = &get("classes")?.data else { return None };
        let pose = sweep.world_from_sensor;
        let origin = Vec2::new(pose.x_m, pose.y_m);
        let detections = b
            .chunks_exact(7)
            .zip(c)
            .zip(s)
            .map(|((bx, class), score)| {
                let w = origin + Vec2::new(f64::from(bx[0]), f64::from(bx[1])).rotate(pose.yaw_rad);
                DetectedObject {
                    x_m: w.x,
                    y_m: w.y,
                    length_m: f64::from(bx[3]),
                    width_m: f64::from(bx[4]),
                    height_m: f64::from(bx[5]),
                    yaw_rad: f64::from(bx[6]) + pose.yaw_rad,
                    class: CLASSES.get(*class as usize).unwrap_or(&"other").to_string(),
                    score: *score,
                }
            })
            .collect();
        Some((detections, c.iter().map(|k| (*k).max(0) as usize).collect()))
    }
}

/// Feeds a predictor from the truth (on the scene thread): every road user's true position.
pub fn truth_samples(truth: &GroundTruth) -> Vec<Sample> {
    truth
        .agents
        .iter()
        .map(|a| Sample {
            id: a.id,
            x_m: a.x_m,
            y_m: a.y_m,
            subject: Some(Subject { agent: a.id, kind: a.kind }),
            class: Some(a.kind),
        })
        .collect()
}
