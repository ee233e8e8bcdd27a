//! Online error of the served models against the scene's ground truth.
//!
//! The scene thread hands every frame's truth to [`OnlineEval::on_frame`]; the model consumers
//! report what they produced (trajectory predictions, detections and fused tracks, health
//! alarms). Each output is scored once its truth is known — a trajectory 4.8 s after it was
//! made — and the errors go into a sliding window per model and version. The windows are
//! published on the `evaluation` stream once a second, exported to Prometheus, and read by the
//! canary controller of the model lifecycle.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;

use waypoint_models::trajectory::{PRED_STEPS, STEP_SECS};
use waypoint_protocol::{DetectedObject, EvaluationMsg, FusedTrack, ModelEvaluation};
use waypoint_sim::fault::Sensor;
use waypoint_sim::frame::GroundTruth;
use waypoint_sim::AgentKind;

/// A move larger than this between two samples is a new track under a reused id, metres.
pub const JUMP_M: f32 = 8.0;

/// Samples kept per metric window.
pub const WINDOW: usize = 1500;
/// Seconds of truth history kept for scoring.
const HISTORY_SECS: f64 = 8.0;
/// Detection range scored for vehicles, and for pedestrians and cyclists.
const VEHICLE_RANGE_M: f64 = 40.0;
const VRU_RANGE_M: f64 = 25.0;
/// A detection within this distance of an object's centre matches it.
const MATCH_M: f64 = 2.0;

/// The online metric a model's canary is judged on by default, and whether larger is better
/// (none: the live scene does not score the model).
pub fn default_metric(model: &str) -> Option<(&'static str, bool)> {
    match model {
        "trajectory" | "trajectory_cv" => Some(("ade_m", false)),
        "detection" | "anomaly" => Some(("recall", true)),
        "fusion" => Some(("rmse_pos_m", false)),
        _ => None,
    }
}

/// A sliding window of samples of named metrics.
#[derive(Debug, Default, Clone)]
pub struct Window {
    series: BTreeMap<&'static str, VecDeque<f64>>,
    samples: u64,
}

impl Window {
    fn push(&mut self, name: &'static str, v: f64) {
        let q = self.series.entry(name).or_default();
        q.push_back(v);
        if q.len() > WINDOW {
            q.pop_front();
        }
    }

    fn mean(&self, name: &str) -> Option<f64> {
        let q = self.series.get(name)?;
        (!q.is_empty()).then(|| q.iter().sum::<f64>() / q.len() as f64)
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

#[derive(Debug)]
struct PendingPrediction {
    t0: f64,
    model: String,
    version: String,
    agent: u32,
    trajectory: Vec<[f32; 2]>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Truth positions per agent: (time, x, y).
    positions: BTreeMap<u32, VecDeque<(f64, f64, f64)>>,
    /// Recent truths by sequence number (for detections of an earlier sweep).
    truths: VecDeque<(u64, GroundTruth)>,
    pending: Vec<PendingPrediction>,
    windows: BTreeMap<(String, String), Window>,
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
        g.truths.clear();
        g.pending.clear();
        g.last_published = 0.0;
    }

    /// Records a tick's truth and scores every prediction whose horizon has passed. Returns an
    /// `evaluation` message when a second has passed since the last one.
    pub fn on_frame(&self, seq: u64, truth: &GroundTruth) -> Option<EvaluationMsg> {
        let mut g = self.lock();
        let t = truth.t_secs;
        if t + 1e-9 < g.now {
            g.positions.clear();
            g.truths.clear();
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
        g.truths.push_back((seq, truth.clone()));
        while g.truths.len() > 30 {
            g.truths.pop_front();
        }
        // Score predictions whose last step is due.
        let horizon = PRED_STEPS as f64 * STEP_SECS;
        let (due, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut g.pending).into_iter().partition(|p| t >= p.t0 + horizon);
        g.pending = keep;
        for p in due {
            let Some(history) = g.positions.get(&p.agent) else { continue };
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
                w.push("ade_m", ade);
                w.push("fde_m", e[e.len() - 1]);
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

    /// Records the predictions a model version made at `t0` (12 positions per agent).
    pub fn record_predictions(&self, model: &str, version: &str, t0: f64, agents: &[u32], trajectory: &[f32]) {
        let mut g = self.lock();
        for (i, id) in agents.iter().enumerate() {
            let Some(chunk) = trajectory.get(i * PRED_STEPS * 2..(i + 1) * PRED_STEPS * 2) else { break };
            g.pending.push(PendingPrediction {
                t0,
                model: model.to_string(),
                version: version.to_string(),
                agent: *id,
                trajectory: chunk.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
            });
        }
        // Bound the backlog (a stalled scene must not grow it without limit).
        let excess = g.pending.len().saturating_sub(20_000);
        g.pending.drain(..excess);
    }

    /// Scores one sweep's detections and fused tracks against the truth of tick `seq`:
    /// recall of objects in range (vehicles within 40 m, others within 25 m), precision of
    /// detections within those ranges, and the fused position and velocity error of tracks
    /// matched to an object.
    pub fn record_perception(
        &self,
        model: &str,
        version: &str,
        seq: u64,
        detections: &[DetectedObject],
        fused: &[FusedTrack],
    ) {
        let mut g = self.lock();
        let Some(truth) = g.truths.iter().find(|(s, _)| *s == seq).map(|(_, t)| t.clone()) else { return };
        let (ex, ey) = (truth.ego.x_m, truth.ego.y_m);
        let range = |k: AgentKind| if k == AgentKind::Vehicle { VEHICLE_RANGE_M } else { VRU_RANGE_M };
        let scored: Vec<_> = truth.agents.iter().filter(|a| (a.x_m - ex).hypot(a.y_m - ey) <= range(a.kind)).collect();
        let near = |x: f64, y: f64| scored.iter().any(|a| (a.x_m - x).hypot(a.y_m - y) < MATCH_M);
        let w = g.windows.entry((model.to_string(), version.to_string())).or_default();
        for a in &scored {
            let found = detections.iter().any(|d| (d.x_m - a.x_m).hypot(d.y_m - a.y_m) < MATCH_M);
            w.push("recall", f64::from(u8::from(found)));
        }
        for d in detections {
            if (d.x_m - ex).hypot(d.y_m - ey) <= VRU_RANGE_M {
                w.push("precision", f64::from(u8::from(near(d.x_m, d.y_m))));
            }
        }
        w.samples += 1;
        let fw = g.windows.entry(("fusion".to_string(), "ukf".to_string())).or_default();
        for f in fused {
            let best = truth
                .agents
                .iter()
                .map(|a| ((a.x_m - f.x_m).hypot(a.y_m - f.y_m), a))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((d, a)) = best.filter(|(d, _)| *d < MATCH_M) {
                fw.push("rmse_pos_m_sq", d * d);
                fw.push("rmse_vel_mps_sq", (a.vx_mps - f.vx_mps).powi(2) + (a.vy_mps - f.vy_mps).powi(2));
                if let Some(n) = f.nis_lidar {
                    fw.push("nis_lidar", n);
                }
                fw.samples += 1;
            }
        }
    }

    /// Scores one tick of sensor alarms against the faults truly active: per-tick precision and
    /// recall of the alarms.
    pub fn record_health(&self, alarms: [bool; 5], truth: &GroundTruth) {
        let mut g = self.lock();
        let w = g.windows.entry(("anomaly".to_string(), "health".to_string())).or_default();
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            let faulty = truth.faults.iter().any(|f| f.sensor == sensor && f.active_at(truth.t_secs));
            if faulty {
                w.push("recall", f64::from(u8::from(alarms[i])));
            }
            if alarms[i] {
                w.push("precision", f64::from(u8::from(faulty)));
            }
        }
        w.samples += 1;
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
        let w = g.windows.get(&(model.to_string(), version.to_string()))?;
        let squared = format!("{metric}_sq");
        let (q, rooted) = match w.series.get(metric) {
            Some(q) => (q, false),
            None => (w.series.get(squared.as_str())?, true),
        };
        let n = q.len();
        if n == 0 {
            return None;
        }
        let mean = q.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { q.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Some(crate::lifecycle::judge::ErrorStats { value: if rooted { mean.sqrt() } else { mean }, mean, var, n })
    }

    /// Adds samples of a metric to a version's window (tests inject the error difference they
    /// mean to detect).
    #[cfg(test)]
    pub fn inject(&self, model: &str, version: &str, metric: &'static str, values: impl IntoIterator<Item = f64>) {
        let mut g = self.lock();
        let w = g.windows.entry((model.to_string(), version.to_string())).or_default();
        for v in values {
            w.push(metric, v);
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
