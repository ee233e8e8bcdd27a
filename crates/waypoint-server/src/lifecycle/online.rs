//! Online error of the served models against the scene's ground truth.
//!
//! The scene thread hands every frame's truth to [`OnlineEval::on_frame`]; the live stack
//! reports what each served version produced, and every version is scored on the same truth,
//! in a sliding window per model and version:
//!
//! - `detection`: `recall` (and `recall_vehicle`, `recall_pedestrian`, `recall_cyclist`) of the
//!   road users a sweep judges, and `precision` of the detections within 40 m — judged by the
//!   same code as `eval detection --sim` ([`waypoint_models::detection::eval_sim::score_sweep`]);
//! - `fusion`: `rmse_pos_m` and `rmse_vel_mps` of the fused tracks within 2 m of a road user,
//!   and the lidar NIS;
//! - trajectory models: `ade_m` / `fde_m` at 4.8 s of the predictions made from the *tracks*
//!   (what perception saw; a track is scored against the road user it lay on when the
//!   prediction was made), also per class (`ade_vehicle_m`, …), and beside them
//!   `ade_truth_m` / `fde_truth_m` of the same versions fed the *true* histories, so the share of
//!   the error that perception adds is visible. The same figures for constant velocity and the
//!   Kalman filter on the same subjects are those of the `baseline` "model" (versions
//!   `constant_velocity` and `kalman`, computed by the live stack, not served);
//! - `sensor_health`: per tick and sensor, `accuracy` (an alarm exactly when the sensor has a
//!   fault), `recall` and `precision` of the alarms, `fault_recall` (faults alarmed while
//!   active) and `false_alarms_per_10min`.
//!
//! The windows are published on the `evaluation` stream once a second, exported to
//! Prometheus, and read by the canary controller of the model lifecycle.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;

use waypoint_models::detection::eval_sim::SweepScore;
use waypoint_models::trajectory::{PRED_STEPS, STEP_SECS};
use waypoint_protocol::{EvaluationMsg, FusedTrack, ModelEvaluation};
use waypoint_sim::fault::Sensor;
use waypoint_sim::frame::{AgentTruth, GroundTruth};
use waypoint_sim::AgentKind;

/// A move larger than this between two samples is a new track under a reused id, metres.
pub const JUMP_M: f32 = 8.0;

/// Samples kept per metric window.
pub const WINDOW: usize = 1500;
/// Seconds of truth history kept for scoring.
const HISTORY_SECS: f64 = 8.0;
/// A fused track within this distance of a road user's centre is scored against it.
pub const MATCH_M: f64 = 2.0;

/// The online metric a model's canary is judged on by default, and whether larger is better
/// (none: the live scene does not score the model).
pub fn default_metric(model: &str) -> Option<(&'static str, bool)> {
    match model {
        "trajectory" | "trajectory_cv" | "trajectory_road" | "baseline" => Some(("ade_m", false)),
        "detection" => Some(("recall", true)),
        "fusion" => Some(("rmse_pos_m", false)),
        "sensor_health" => Some(("accuracy", true)),
        _ => None,
    }
}

/// The per-class forms of a model's own metric, which a canary guards too: a candidate better
/// overall but worse for one class of road user is rolled back.
pub fn class_metrics(model: &str) -> &'static [&'static str] {
    match model {
        "trajectory" | "trajectory_cv" | "trajectory_road" => &["ade_vehicle_m", "ade_pedestrian_m", "ade_cyclist_m"],
        "detection" => &RECALL_BY_CLASS,
        _ => &[],
    }
}

/// A sliding window of samples of named metrics. A sample may carry a key naming what it was
/// measured on (a road user at a time, a sweep's road user, a track in a sweep): two versions'
/// samples with the same key are paired, which the canary compares (0: no key).
#[derive(Debug, Default, Clone)]
pub struct Window {
    series: BTreeMap<&'static str, VecDeque<(u64, f64)>>,
    samples: u64,
    /// Sum and count of every sample ever pushed, per series (the whole run, not the window).
    totals: BTreeMap<&'static str, (f64, u64)>,
}

impl Window {
    fn push(&mut self, name: &'static str, v: f64) {
        self.push_keyed(name, 0, v);
    }

    fn push_keyed(&mut self, name: &'static str, key: u64, v: f64) {
        let t = self.totals.entry(name).or_default();
        t.0 += v;
        t.1 += 1;
        let q = self.series.entry(name).or_default();
        q.push_back((key, v));
        if q.len() > WINDOW {
            q.pop_front();
        }
    }

    fn mean(&self, name: &str) -> Option<f64> {
        let q = self.series.get(name)?;
        (!q.is_empty()).then(|| q.iter().map(|x| x.1).sum::<f64>() / q.len() as f64)
    }

    /// The series of `metric`, or of its squares (`metric_sq`) with `true`.
    fn metric(&self, metric: &str) -> Option<(&VecDeque<(u64, f64)>, bool)> {
        match self.series.get(metric) {
            Some(q) => Some((q, false)),
            None => self.series.get(format!("{metric}_sq").as_str()).map(|q| (q, true)),
        }
    }

    /// Mean of each metric over the window (root mean for `*_sq` series, renamed without the
    /// suffix).
    pub fn summary(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for name in self.series.keys() {
            if let Some(m) = self.mean(name) {
                match name.strip_suffix("_sq") {
                    Some(root) => out.insert(root.to_string(), m.sqrt()),
                    None => out.insert(name.to_string(), m),
                };
            }
        }
        out
    }
}

/// Which histories a prediction was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The tracks perception produced (published, and what a canary is judged on).
    Tracks,
    /// The road users' true positions (scored only, to separate perception's share).
    Truth,
}

/// A prediction to score: the road user it is about, its class, and from which feed.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub agent: u32,
    pub kind: AgentKind,
}

#[derive(Debug)]
struct PendingPrediction {
    t0: f64,
    model: String,
    version: String,
    feed: Feed,
    subject: Subject,
    trajectory: Vec<[f32; 2]>,
}

/// Series names of a prediction's errors: (ADE, FDE) overall and for its class.
fn prediction_series(feed: Feed, kind: AgentKind) -> [(&'static str, &'static str); 2] {
    let class = match (feed, kind) {
        (Feed::Tracks, AgentKind::Vehicle) => ("ade_vehicle_m", "fde_vehicle_m"),
        (Feed::Tracks, AgentKind::Pedestrian) => ("ade_pedestrian_m", "fde_pedestrian_m"),
        (Feed::Tracks, AgentKind::Cyclist) => ("ade_cyclist_m", "fde_cyclist_m"),
        (Feed::Truth, AgentKind::Vehicle) => ("ade_truth_vehicle_m", "fde_truth_vehicle_m"),
        (Feed::Truth, AgentKind::Pedestrian) => ("ade_truth_pedestrian_m", "fde_truth_pedestrian_m"),
        (Feed::Truth, AgentKind::Cyclist) => ("ade_truth_cyclist_m", "fde_truth_cyclist_m"),
    };
    let all = match feed {
        Feed::Tracks => ("ade_m", "fde_m"),
        Feed::Truth => ("ade_truth_m", "fde_truth_m"),
    };
    [all, class]
}

/// Recall series per class (vehicle, pedestrian, cyclist).
const RECALL_BY_CLASS: [&str; 3] = ["recall_vehicle", "recall_pedestrian", "recall_cyclist"];

/// What the health scoring of one version remembers between ticks.
#[derive(Debug, Default)]
struct HealthTally {
    /// Alarm state per sensor on the previous tick.
    alarmed: [bool; 5],
    /// Faults seen (id → alarmed on its sensor while active), until they end.
    faults: BTreeMap<u32, bool>,
    /// Onsets of alarms while the sensor had no fault, and the scene seconds watched.
    false_onsets: VecDeque<f64>,
    watched_secs: f64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Truth positions per agent: (time, x, y).
    positions: BTreeMap<u32, VecDeque<(f64, f64, f64)>>,
    pending: Vec<PendingPrediction>,
    windows: BTreeMap<(String, String), Window>,
    /// Per (model, version) of a sensor health model.
    health: BTreeMap<(String, String), HealthTally>,
    now: f64,
    last_published: f64,
}

/// The online evaluator (shared by the scene thread and the model consumers).
#[derive(Debug, Default)]
pub struct OnlineEval {
    inner: Mutex<Inner>,
}

fn position_at(history: &VecDeque<(f64, f64, f64)>, t: f64) -> Option<(f64, f64)> {
    history.iter().find(|(ht, _, _)| (ht - t).abs() < 0.051).map(|(_, x, y)| (*x, *y))
}

impl OnlineEval {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the scene's history (after a reset); the windows are kept.
    pub fn reset_scene(&self) {
        let mut g = self.lock();
        g.positions.clear();
        g.pending.clear();
        g.health.clear();
        g.last_published = 0.0;
    }

    /// Records a tick's truth and scores every prediction whose horizon has passed. Returns an
    /// `evaluation` message when a second has passed since the last one.
    pub fn on_frame(&self, truth: &GroundTruth) -> Option<EvaluationMsg> {
        let mut g = self.lock();
        let t = truth.t_secs;
        if t + 1e-9 < g.now {
            g.positions.clear();
            g.pending.clear();
            g.last_published = 0.0;
        }
        g.now = t;
        for a in &truth.agents {
            let h = g.positions.entry(a.id).or_default();
            // An id re-entering elsewhere starts a new track: predictions made on the old one
            // cannot be scored.
            if h.back().is_some_and(|(_, x, y)| (x - a.x_m).hypot(y - a.y_m) > f64::from(JUMP_M)) {
                h.clear();
            }
            h.push_back((t, a.x_m, a.y_m));
            while h.front().is_some_and(|(ht, _, _)| t - ht > HISTORY_SECS) {
                h.pop_front();
            }
        }
        let present: Vec<u32> = truth.agents.iter().map(|a| a.id).collect();
        g.positions.retain(|id, _| present.contains(id));
        // Score predictions whose last step is due.
        let horizon = PRED_STEPS as f64 * STEP_SECS;
        let (due, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut g.pending).into_iter().partition(|p| t >= p.t0 + horizon);
        g.pending = keep;
        for p in due {
            let Some(history) = g.positions.get(&p.subject.agent) else { continue };
            let errors: Option<Vec<f64>> = (1..=PRED_STEPS)
                .map(|k| {
                    let (x, y) = position_at(history, p.t0 + k as f64 * STEP_SECS)?;
                    let q = p.trajectory[k - 1];
                    Some((q[0] as f64 - x).hypot(q[1] as f64 - y))
                })
                .collect();
            if let Some(e) = errors {
                let ade = e.iter().sum::<f64>() / e.len() as f64;
                let w = g.windows.entry((p.model.clone(), p.version.clone())).or_default();
                // The same road user predicted at the same moment by two versions: a pair.
                let key = (1 << 63) | ((p.t0 * 1000.0).round() as u64) << 24 | u64::from(p.subject.agent);
                for (a, f) in prediction_series(p.feed, p.subject.kind) {
                    w.push_keyed(a, key, ade);
                    w.push_keyed(f, key, e[e.len() - 1]);
                }
                w.samples += 1;
            }
        }
        if t - g.last_published >= 1.0 {
            g.last_published = t;
            let models = g
                .windows
                .iter()
                .map(|((model, version), w)| ModelEvaluation {
                    model: model.clone(),
                    version: version.clone(),
                    metrics: w.summary(),
                    samples: w.samples,
                })
                .collect();
            return Some(EvaluationMsg { t_secs: t, models });
        }
        None
    }

    /// Records the predictions a model version made at `t0` from `feed` (12 positions per
    /// subject, in `subjects` order); each is scored once its horizon has passed.
    pub fn record_predictions(
        &self,
        model: &str,
        version: &str,
        feed: Feed,
        t0: f64,
        subjects: &[Option<Subject>],
        trajectory: &[f32],
    ) {
        let mut g = self.lock();
        for (i, subject) in subjects.iter().enumerate() {
            let Some(chunk) = trajectory.get(i * PRED_STEPS * 2..(i + 1) * PRED_STEPS * 2) else { break };
            // A track on no road user (a false track) has no truth to be scored on.
            let Some(subject) = subject else { continue };
            g.pending.push(PendingPrediction {
                t0,
                model: model.to_string(),
                version: version.to_string(),
                feed,
                subject: *subject,
                trajectory: chunk.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
            });
        }
        // Bound the backlog (a stalled scene must not grow it without limit).
        let excess = g.pending.len().saturating_sub(20_000);
        g.pending.drain(..excess);
    }

    /// Scores one sweep's detections by a detection version (the sweep's judgement from the
    /// evaluation's own code).
    pub fn record_detection(&self, model: &str, version: &str, seq: u64, score: &SweepScore) {
        let mut g = self.lock();
        let w = g.windows.entry((model.to_string(), version.to_string())).or_default();
        for (k, class_series) in RECALL_BY_CLASS.iter().enumerate() {
            for hit in 0..score.judged[k] {
                let found = f64::from(u8::from(hit < score.found[k]));
                // Paired by sweep, class and rank: versions that find as many pair up as equal.
                let key = (1 << 63) | seq << 20 | (k as u64) << 16 | hit as u64;
                w.push_keyed("recall", key, found);
                w.push_keyed(class_series, key, found);
            }
        }
        for _ in 0..score.true_positives {
            w.push("precision", 1.0);
        }
        for _ in 0..score.false_positives {
            w.push("precision", 0.0);
        }
        w.samples += 1;
    }

    /// Scores one sweep's fused tracks by a fusion version: position and velocity error of the
    /// tracks within 2 m of a road user (the nearest), and their lidar NIS.
    pub fn record_fusion(&self, model: &str, version: &str, seq: u64, fused: &[FusedTrack], agents: &[AgentTruth]) {
        let mut g = self.lock();
        let w = g.windows.entry((model.to_string(), version.to_string())).or_default();
        for f in fused {
            let best =
                agents.iter().map(|a| ((a.x_m - f.x_m).hypot(a.y_m - f.y_m), a)).min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((d, a)) = best.filter(|(d, _)| *d < MATCH_M) {
                let key = (1 << 63) | seq << 32 | u64::from(f.id);
                w.push_keyed("rmse_pos_m_sq", key, d * d);
                let vel_sq = (a.vx_mps - f.vx_mps).powi(2) + (a.vy_mps - f.vy_mps).powi(2);
                w.push_keyed("rmse_vel_mps_sq", key, vel_sq);
                tracing::trace!(
                    model, version, seq, track = f.id, agent = a.id, kind = ?a.kind, pos_m = d,
                    vel_mps = vel_sq.sqrt(), speed_mps = a.vx_mps.hypot(a.vy_mps), lidar = f.lidar_updates,
                    radar = f.radar_updates, nis = ?f.nis_lidar, "fused track scored"
                );
                if let Some(n) = f.nis_lidar {
                    w.push("nis_lidar", n);
                }
            }
        }
        w.samples += 1;
    }

    /// Scores one tick of a sensor health version's alarms against the faults truly active:
    /// per tick and sensor whether it alarmed exactly when faulty (paired by tick and sensor),
    /// precision and recall of the alarms, the share of faults alarmed while active, and alarms
    /// raised on a sensor without a fault per 10 minutes of scene time.
    pub fn record_health(
        &self,
        model: &str,
        version: &str,
        seq: u64,
        alarms: [bool; 5],
        truth: &GroundTruth,
        tick_secs: f64,
    ) {
        let mut g = self.lock();
        let g = &mut *g;
        let id = (model.to_string(), version.to_string());
        let tally = g.health.entry(id.clone()).or_default();
        let w = g.windows.entry(id).or_default();
        let t = truth.t_secs;
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            let active: Vec<u32> =
                truth.faults.iter().filter(|f| f.sensor == sensor && f.active_at(t)).map(|f| f.id).collect();
            let faulty = !active.is_empty();
            w.push_keyed("accuracy", (1 << 63) | seq << 3 | i as u64, f64::from(u8::from(alarms[i] == faulty)));
            if faulty {
                w.push("recall", f64::from(u8::from(alarms[i])));
            }
            if alarms[i] {
                w.push("precision", f64::from(u8::from(faulty)));
            }
            for id in active {
                *tally.faults.entry(id).or_default() |= alarms[i];
            }
            if alarms[i] && !tally.alarmed[i] && !faulty {
                tally.false_onsets.push_back(t);
            }
            tally.alarmed[i] = alarms[i];
        }
        // Faults that ended: alarmed while active or not.
        let live: Vec<u32> = truth.faults.iter().filter(|f| f.end_secs > t).map(|f| f.id).collect();
        let ended: Vec<u32> = tally.faults.keys().copied().filter(|id| !live.contains(id)).collect();
        for id in ended {
            if let Some(hit) = tally.faults.remove(&id) {
                w.push("fault_recall", f64::from(u8::from(hit)));
            }
        }
        // False alarms over the last ten minutes watched.
        tally.watched_secs = (tally.watched_secs + tick_secs).min(600.0);
        while tally.false_onsets.front().is_some_and(|x| t - x > 600.0) {
            tally.false_onsets.pop_front();
        }
        let per_10min = tally.false_onsets.len() as f64 * 600.0 / tally.watched_secs.max(tick_secs);
        w.series.insert("false_alarms_per_10min", VecDeque::from([(0, per_10min)]));
        w.samples += 1;
    }

    /// Each metric of one model version over every sample since the start (not only the
    /// window): mean (root mean for a root-mean-square metric) and sample count. Metrics that
    /// are a running figure (a rate over the window) are given as they stand now.
    pub fn whole_run(&self, model: &str, version: &str) -> Option<BTreeMap<String, (f64, u64)>> {
        let g = self.lock();
        let w = g.windows.get(&(model.to_string(), version.to_string()))?;
        let mut out = BTreeMap::new();
        for (name, q) in &w.series {
            let (sum, n) = w.totals.get(name).copied().unwrap_or_else(|| (q.iter().map(|x| x.1).sum(), q.len() as u64));
            if n == 0 {
                continue;
            }
            let mean = sum / n as f64;
            match name.strip_suffix("_sq") {
                Some(root) => out.insert(root.to_string(), (mean.sqrt(), n)),
                None => out.insert(name.to_string(), (mean, n)),
            };
        }
        Some(out)
    }

    /// The window of one model version, summarised (metric name → mean), and its sample count
    /// per metric.
    pub fn summary(&self, model: &str, version: &str) -> Option<(BTreeMap<String, f64>, usize)> {
        let g = self.lock();
        let w = g.windows.get(&(model.to_string(), version.to_string()))?;
        let n = w.series.values().map(VecDeque::len).max().unwrap_or(0);
        Some((w.summary(), n))
    }

    /// Mean, variance and count of one metric's samples in a version's window (for a
    /// root-mean-square metric such as `rmse_pos_m`, of the squares; `value` is then the root).
    pub fn stats(&self, model: &str, version: &str, metric: &str) -> Option<crate::lifecycle::judge::ErrorStats> {
        let g = self.lock();
        let (q, rooted) = g.windows.get(&(model.to_string(), version.to_string()))?.metric(metric)?;
        let n = q.len();
        if n == 0 {
            return None;
        }
        let mean = q.iter().map(|x| x.1).sum::<f64>() / n as f64;
        let var = if n > 1 { q.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Some(crate::lifecycle::judge::ErrorStats { value: if rooted { mean.sqrt() } else { mean }, mean, var, n })
    }

    /// The paired differences (candidate − incumbent) of a metric's samples measured on the same
    /// thing by two versions of a model (squares, for a root-mean-square metric).
    pub fn paired_differences(&self, model: &str, incumbent: &str, candidate: &str, metric: &str) -> Vec<f64> {
        let g = self.lock();
        let get = |v: &str| g.windows.get(&(model.to_string(), v.to_string())).and_then(|w| w.metric(metric));
        let (Some((inc, _)), Some((cand, _))) = (get(incumbent), get(candidate)) else { return Vec::new() };
        let by_key: std::collections::HashMap<u64, f64> = inc.iter().filter(|x| x.0 != 0).copied().collect();
        cand.iter().filter(|x| x.0 != 0).filter_map(|(k, c)| by_key.get(k).map(|i| c - i)).collect()
    }

    /// Adds samples of a metric to a version's window (tests inject the error difference they
    /// mean to detect).
    #[cfg(test)]
    pub fn inject(&self, model: &str, version: &str, metric: &'static str, values: impl IntoIterator<Item = f64>) {
        let mut g = self.lock();
        let w = g.windows.entry((model.to_string(), version.to_string())).or_default();
        for (k, v) in values.into_iter().enumerate() {
            w.push_keyed(metric, k as u64 + 1, v);
        }
    }

    /// Clears the window of one model version (a canary starts from fresh evidence).
    pub fn clear(&self, model: &str, version: &str) {
        self.lock().windows.remove(&(model.to_string(), version.to_string()));
    }

    /// Prometheus text for every window.
    pub fn render(&self) -> String {
        let g = self.lock();
        let mut out = String::from(
            "# HELP waypoint_online_error Online error of a served model version against the scene's ground truth (sliding window).\n# TYPE waypoint_online_error gauge\n",
        );
        for ((model, version), w) in &g.windows {
            for (metric, v) in w.summary() {
                let _ = writeln!(
                    out,
                    "waypoint_online_error{{model=\"{model}\",version=\"{version}\",metric=\"{metric}\"}} {v}"
                );
            }
        }
        out
    }
}
