//! Live trajectory predictions: every 0.4 s of scene time, the last 3.2 s of every subject go
//! through the inference engine of the served trajectory model (the learned `trajectory` when
//! loaded, else the `trajectory_cv` baseline); subjects taken for vehicles and cyclists go to
//! the map-aware `trajectory_road` instead when it is loaded (with the other road users within
//! 60 m, the class and the scene time, for the lane, the road users ahead and the signal).
//!
//! There are two predictors, one per [`Feed`]. The one fed by perception predicts each
//! confirmed track from its fused history — what the vehicle saw — and publishes on the
//! `predictions` stream (ids are track ids); its completed 8 + 12 step windows are the
//! continuous learner's training data. The one fed by the scene's truth predicts every road user
//! from its true positions and is only scored, so the online error shows how much of the error
//! perception adds.
//!
//! Each subject is one caller of the routing policy (key `track-<id>` or `agent-<id>`), so a
//! split or canary spreads them across versions, stickily. A version that shadows (or, in a
//! canary, the one not serving a subject) predicts it too, unseen: every version is scored by
//! the online evaluator on the same subjects, which makes their errors comparable.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use waypoint_models::trajectory::data::{SocialWindow, Window};
use waypoint_models::trajectory::kalman::KalmanCv;
use waypoint_models::trajectory::road::{RoadClass, RoadWindow};
use waypoint_models::trajectory::tcn::{MAX_NBRS, NBR_RADIUS_M};
use waypoint_models::trajectory::ConstantVelocity;
use waypoint_models::trajectory::{OBS_STEPS, PRED_STEPS, STEP_SECS};
use waypoint_models::{Tensor, TensorData};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{Bulk, PredictionsMsg, ServerMessage, StreamName, LIVE_MODES};
use waypoint_sim::AgentKind;

use crate::lifecycle::learner::{Observed, ObservedRoad, OBSERVED_WINDOWS};
use crate::lifecycle::online::{Feed, Subject, JUMP_M};
use crate::live::Context;
use crate::serving::registry::LoadedVersion;

/// Models tried in order for the live predictions.
pub const LIVE_MODELS: [&str; 2] = ["trajectory", "trajectory_cv"];
/// The position noise of the tracks' histories declared to a model that takes
/// `history_sigma`, metres, one sigma (the tracks' error against the truth is of this order;
/// chosen on a recording of the scene with seed 7, see docs/EVALUATION.md). The truth feed
/// declares none.
pub const TRACK_POSITION_SIGMA_M: f32 = 0.3;

/// A completed window as the continuous learner trains on it: learned from as served, so a
/// track's history is smoothed as a model that takes `history_sigma` smooths it (the tracks
/// are declared [`TRACK_POSITION_SIGMA_M`] noisy); the future stays as tracked.
fn as_learned(feed: Feed, mut w: Window) -> Window {
    if feed == Feed::Tracks {
        w.obs = waypoint_models::trajectory::model::smooth_declared(&w.obs, TRACK_POSITION_SIGMA_M);
    }
    w
}

/// The model for road users (vehicles and cyclists) when it is loaded; the others go to the
/// first of [`LIVE_MODELS`].
pub const ROAD_MODEL: &str = "trajectory_road";
/// How far, and how many, other road users the road model is sent for each subject (it follows
/// the queue ahead in the lane).
const ROAD_REACH_M: f32 = waypoint_models::trajectory::road::LEADER_REACH_M as f32;
pub(crate) const ROAD_MAX_OTHERS: usize = 32;

/// One subject's position at a sample: its id, where it is, and the road user it is (for
/// scoring; none for a track on no road user).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub id: u32,
    pub x_m: f64,
    pub y_m: f64,
    pub subject: Option<Subject>,
    /// What the subject is taken for: the track's class (perception), the road user's kind
    /// (truth); none when unknown.
    pub class: Option<AgentKind>,
}

/// The vehicle's own position and velocity at a sample (it is no subject: its future is
/// planned, not predicted), in the world frame.
#[derive(Debug, Clone, Copy)]
pub struct Ego {
    pub x_m: f64,
    pub y_m: f64,
    pub vx_mps: f64,
    pub vy_mps: f64,
}

impl Ego {
    /// As a `neighbours` row: where it was one step before (by its velocity) and where it is.
    pub(crate) fn row(self) -> [f32; 4] {
        let (x, y) = (self.x_m, self.y_m);
        [(x - self.vx_mps * STEP_SECS) as f32, (y - self.vy_mps * STEP_SECS) as f32, x as f32, y as f32]
    }
}

/// Appends `items` to a learner's bounded store, dropping the oldest beyond [`OBSERVED_WINDOWS`].
fn keep_latest<T>(store: &Mutex<VecDeque<T>>, items: Vec<T>) {
    if items.is_empty() {
        return;
    }
    let mut o = store.lock().unwrap_or_else(|p| p.into_inner());
    o.extend(items);
    let excess = o.len().saturating_sub(OBSERVED_WINDOWS);
    o.drain(..excess);
}

/// Per-subject position histories sampled every [`STEP_SECS`].
#[derive(Debug)]
pub struct Predictor {
    ctx: Context,
    feed: Feed,
    histories: BTreeMap<u32, VecDeque<[f32; 2]>>,
    /// The vehicle's own `neighbours` row at each of the last 8 + 12 steps (none: unknown).
    ego_history: VecDeque<Option<[f32; 4]>>,
    next_sample_secs: f64,
    observed: Observed,
    observed_road: ObservedRoad,
}

/// One inference request of a prediction round: a version and the subjects (indices) it predicts.
struct Job {
    loaded: Arc<LoadedVersion>,
    subjects: Vec<usize>,
    /// Published (false: a shadow, only scored).
    primary: bool,
}

/// What a round predicts: each ready subject's id, last 8 positions and road user.
struct Round {
    feed: Feed,
    ids: Vec<u32>,
    histories: Vec<Vec<f32>>,
    subjects: Vec<Option<Subject>>,
    classes: Vec<Option<AgentKind>>,
    /// The vehicle's own position one step before and at the last step, `[x_prev, y_prev,
    /// x_last, y_last]` (its pose and odometry): a road user the road model drives along too.
    ego: Option<[f32; 4]>,
    seq: u64,
    t_secs: f64,
}

impl Predictor {
    pub fn new(ctx: Context, feed: Feed) -> Self {
        Self {
            ctx,
            feed,
            histories: BTreeMap::new(),
            ego_history: VecDeque::new(),
            next_sample_secs: 0.0,
            observed: Arc::new(Mutex::new(VecDeque::new())),
            observed_road: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// The observed windows (for the continuous learner of the people's model).
    pub fn observed(&self) -> Observed {
        self.observed.clone()
    }

    /// The observed windows of tracks taken for vehicles and cyclists (for the continuous
    /// learner of the road model).
    pub fn observed_road(&self) -> ObservedRoad {
        self.observed_road.clone()
    }

    /// Forgets every history (after a reset).
    pub fn clear(&mut self) {
        self.histories.clear();
        self.ego_history.clear();
        self.next_sample_secs = 0.0;
    }

    /// Takes the subjects' positions at `t_secs` when a 0.4 s step has passed and, if some have
    /// a full history, submits the round's requests (on the runtime; this never waits for them).
    pub fn on_sample(&mut self, seq: u64, t_secs: f64, samples: &[Sample], ego: Option<Ego>) {
        if t_secs + 1e-9 < self.next_sample_secs {
            return;
        }
        if t_secs < self.next_sample_secs - STEP_SECS {
            // Time went backwards (reset): start again.
            self.clear();
        }
        self.next_sample_secs = t_secs + STEP_SECS - 1e-6;
        self.histories.retain(|id, _| samples.iter().any(|s| s.id == *id));
        self.ego_history.push_back(ego.map(Ego::row));
        while self.ego_history.len() > OBS_STEPS + PRED_STEPS {
            self.ego_history.pop_front();
        }
        let completed = self.extend_histories(samples);
        if self.feed == Feed::Tracks && !completed.is_empty() {
            let road = self.road_windows(samples, t_secs);
            keep_latest(&self.observed, completed);
            keep_latest(&self.observed_road, road);
        }
        let mut round = Round {
            feed: self.feed,
            ids: Vec::new(),
            histories: Vec::new(),
            subjects: Vec::new(),
            classes: Vec::new(),
            ego: ego.map(Ego::row),
            seq,
            t_secs,
        };
        for s in samples {
            let Some(h) = self.histories.get(&s.id).filter(|h| h.len() >= OBS_STEPS) else { continue };
            round.ids.push(s.id);
            round.histories.push(h.iter().skip(h.len() - OBS_STEPS).flatten().copied().collect());
            round.subjects.push(s.subject);
            round.classes.push(s.class);
        }
        if round.ids.is_empty() {
            return;
        }
        let registry = &self.ctx.registry;
        let people = LIVE_MODELS.iter().find(|m| registry.get(m, None).is_ok()).copied();
        let road = registry.get(ROAD_MODEL, None).is_ok().then_some(ROAD_MODEL);
        // Vehicles and cyclists to the road model when it is served; everyone else (and everyone
        // when it is not) to the people's model.
        let models: Vec<Option<&str>> = round
            .classes
            .iter()
            .map(|c| match c {
                Some(AgentKind::Vehicle | AgentKind::Cyclist) => road.or(people),
                _ => people,
            })
            .collect();
        if models.iter().all(Option::is_none) {
            return;
        }
        let jobs = self.plan(&models, &round.ids);
        self.ctx.handle.spawn(run_round(jobs, round, self.ctx.clone()));
    }

    /// Appends each subject's position; returns the 8 + 12 step windows completed, each with
    /// the subjects within [`NBR_RADIUS_M`] at its last observed step (those whose history
    /// reaches back that far).
    fn extend_histories(&mut self, samples: &[Sample]) -> Vec<SocialWindow> {
        let window = OBS_STEPS + PRED_STEPS;
        for s in samples {
            let h = self.histories.entry(s.id).or_default();
            let p = [s.x_m as f32, s.y_m as f32];
            // A driver at the end of its route re-enters elsewhere under the same id: a new history.
            if h.back().is_some_and(|q| (q[0] - p[0]).hypot(q[1] - p[1]) > JUMP_M) {
                h.clear();
            }
            h.push_back(p);
            while h.len() > window {
                h.pop_front();
            }
        }
        // Positions `back` steps before now, when a history reaches that far.
        let at = |h: &VecDeque<[f32; 2]>, back: usize| h.len().checked_sub(back + 1).map(|i| h[i]);
        let mut completed = Vec::new();
        for (id, h) in &self.histories {
            if h.len() != window {
                continue;
            }
            let mut w = Window { obs: [[0.0; 2]; OBS_STEPS], fut: [[0.0; 2]; PRED_STEPS] };
            for (k, p) in h.iter().enumerate() {
                if k < OBS_STEPS {
                    w.obs[k] = *p;
                } else {
                    w.fut[k - OBS_STEPS] = *p;
                }
            }
            // Only those the network could read are kept (the windows are many).
            let others = self.histories.iter().filter(|(other, _)| *other != id).filter_map(|(_, o)| {
                let (prev, last) = (at(o, PRED_STEPS + 1)?, at(o, PRED_STEPS)?);
                Some([prev[0], prev[1], last[0], last[1]])
            });
            let neighbours = within_reach(w.obs[OBS_STEPS - 1], others, NBR_RADIUS_M);
            completed.push(SocialWindow { window: as_learned(self.feed, w), neighbours });
        }
        completed
    }

    /// The road model's training windows completed at this step: each full history of a track
    /// taken for a vehicle or cyclist, as served (not smoothed), with the other tracks and the
    /// vehicle itself within the road model's reach at its last observed step, and that step's
    /// scene time (for the signal).
    fn road_windows(&self, samples: &[Sample], t_secs: f64) -> Vec<RoadWindow> {
        let window = OBS_STEPS + PRED_STEPS;
        let at = |h: &VecDeque<[f32; 2]>, back: usize| h.len().checked_sub(back + 1).map(|i| h[i]);
        let ego = self.ego_history.len().checked_sub(PRED_STEPS + 1).and_then(|i| self.ego_history[i]);
        let mut out = Vec::new();
        for s in samples {
            let class = match s.class {
                Some(AgentKind::Vehicle) => RoadClass::Vehicle,
                Some(AgentKind::Cyclist) => RoadClass::Cyclist,
                _ => continue,
            };
            let Some(h) = self.histories.get(&s.id).filter(|h| h.len() == window) else { continue };
            let obs: [[f32; 2]; OBS_STEPS] = std::array::from_fn(|k| h[k]);
            let fut: [[f32; 2]; PRED_STEPS] = std::array::from_fn(|k| h[OBS_STEPS + k]);
            let others = self
                .histories
                .iter()
                .filter(|(other, _)| **other != s.id)
                .filter_map(|(_, o)| {
                    let (prev, last) = (at(o, PRED_STEPS + 1)?, at(o, PRED_STEPS)?);
                    Some([prev[0], prev[1], last[0], last[1]])
                })
                .chain(ego);
            let mut others = within_reach(obs[OBS_STEPS - 1], others, ROAD_REACH_M);
            others.truncate(ROAD_MAX_OTHERS);
            let t_last = t_secs - PRED_STEPS as f64 * STEP_SECS;
            out.push(RoadWindow { class, trip: (0, s.id, 0), t_secs: t_last, others, obs, fut });
        }
        out
    }

    /// Groups the subjects by the model version that serves them (each subject's model in
    /// `models`; none: not predicted), and by the version that shadows them.
    fn plan(&self, models: &[Option<&str>], ids: &[u32]) -> Vec<Job> {
        let prefix = match self.feed {
            Feed::Tracks => "track",
            Feed::Truth => "agent",
        };
        type Groups = BTreeMap<(String, u64), (Arc<LoadedVersion>, Vec<usize>)>;
        let mut primary: Groups = BTreeMap::new();
        let mut shadow: Groups = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let Some(model) = models[i] else { continue };
            let key = format!("{prefix}-{id}");
            let Ok((loaded, sh)) =
                crate::lifecycle::routing::resolve(&self.ctx.registry, &self.ctx.router, model, None, &key)
            else {
                continue;
            };
            primary
                .entry((model.to_string(), loaded.version))
                .or_insert_with(|| (loaded.clone(), Vec::new()))
                .1
                .push(i);
            if let Some(s) = sh {
                shadow.entry((model.to_string(), s.version)).or_insert_with(|| (s.clone(), Vec::new())).1.push(i);
            }
        }
        let mut jobs: Vec<Job> =
            primary.into_values().map(|(loaded, subjects)| Job { loaded, subjects, primary: true }).collect();
        jobs.extend(shadow.into_values().map(|(loaded, subjects)| Job { loaded, subjects, primary: false }));
        jobs
    }
}

/// The rows `[x_prev, y_prev, x_last, y_last]` whose last position is within `reach` metres of
/// `me`, nearest first.
pub(crate) fn within_reach(me: [f32; 2], others: impl Iterator<Item = [f32; 4]>, reach: f32) -> Vec<[f32; 4]> {
    let mut near: Vec<(f32, [f32; 4])> =
        others.map(|o| ((o[2] - me[0]).hypot(o[3] - me[1]), o)).filter(|(d, _)| *d <= reach).collect();
    near.sort_by(|a, b| a.0.total_cmp(&b.0));
    near.into_iter().map(|(_, o)| o).collect()
}

/// The `neighbours` input for `subjects` of a round: for each, the other subjects of the round
/// within `reach` metres at the last step (the nearest `most`), as `[x_prev, y_prev, x_last,
/// y_last]`, padded with NaN (no neighbour) to the longest list.
fn neighbours_of(subjects: &[usize], round: &Round, reach: f32, most: usize, ego: Option<[f32; 4]>) -> Tensor {
    let at = |i: usize| {
        let h = &round.histories[i];
        let n = h.len();
        [h[n - 4], h[n - 3], h[n - 2], h[n - 1]]
    };
    let lists: Vec<Vec<[f32; 4]>> = subjects
        .iter()
        .map(|&i| {
            let me = at(i);
            let others = (0..round.histories.len()).filter(|&j| j != i).map(at).chain(ego);
            let mut near = within_reach([me[2], me[3]], others, reach);
            near.truncate(most);
            near
        })
        .collect();
    let m = lists.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut data = Vec::with_capacity(subjects.len() * m * 4);
    for l in &lists {
        data.extend(l.iter().flatten());
        data.extend(std::iter::repeat_n(f32::NAN, (m - l.len()) * 4));
    }
    Tensor { name: "neighbours".into(), shape: vec![subjects.len(), m, 4], data: TensorData::F32(data) }
}

/// What one job's request gave: the trajectories, their uncertainties when the model gives
/// them, and each subject's most likely futures with their probabilities when it gives several.
struct Predicted {
    trajectory: Vec<f32>,
    sigma: Option<Vec<f32>>,
    /// (futures per subject, subjects × M × 12 × 2 positions, subjects × M probabilities).
    modes: Option<(usize, Vec<f32>, Vec<f32>)>,
}

/// The most likely `LIVE_MODES` of each row's futures, from `modes` `[N, K, 12, 2]` and
/// `mode_probabilities` `[N, K]` (most likely first); none when K is 1.
fn top_modes(modes: &Tensor, probs: &Tensor) -> Option<(usize, Vec<f32>, Vec<f32>)> {
    let (m, p) = (modes.as_f32().ok()?, probs.as_f32().ok()?);
    let (n, k) = (*probs.shape.first()?, *probs.shape.get(1)?);
    if k < 2 || m.len() != n * k * PRED_STEPS * 2 || p.len() != n * k {
        return None;
    }
    let keep = k.min(LIVE_MODES);
    let per = PRED_STEPS * 2;
    let pos = (0..n).flat_map(|r| m[r * k * per..(r * k + keep) * per].iter().copied()).collect();
    let pr = (0..n).flat_map(|r| p[r * k..r * k + keep].iter().copied()).collect();
    Some((keep, pos, pr))
}

/// One job's request. Models that take `neighbours` get each subject's neighbours in the round.
async fn predict(job: &Job, round: &Round) -> Option<Predicted> {
    let data: Vec<f32> = job.subjects.iter().flat_map(|i| round.histories[*i].iter().copied()).collect();
    let mut inputs = vec![Tensor::new("history", vec![job.subjects.len(), OBS_STEPS, 2], TensorData::F32(data)).ok()?];
    let declared = |name: &str| job.loaded.config.inputs.iter().any(|i| i.name == name);
    let road = job.loaded.model == ROAD_MODEL;
    if declared("neighbours") {
        let (reach, most) = if road { (ROAD_REACH_M, ROAD_MAX_OTHERS) } else { (NBR_RADIUS_M, MAX_NBRS) };
        // The road model drives the vehicle itself along too (cars queue behind it); the
        // people's network learned from pedestrians only.
        let ego = if road { round.ego } else { None };
        inputs.push(neighbours_of(&job.subjects, round, reach, most, ego));
    }
    let n = job.subjects.len();
    if declared("agent_class") {
        // 0 vehicle, 1 pedestrian, 2 cyclist; an unknown class is taken for a vehicle.
        let class = |i: usize| match round.classes[i] {
            Some(AgentKind::Pedestrian) => 1.0,
            Some(AgentKind::Cyclist) => 2.0,
            _ => 0.0,
        };
        let data = job.subjects.iter().map(|&i| class(i)).collect();
        inputs.push(Tensor::new("agent_class", vec![n, 1], TensorData::F32(data)).ok()?);
    }
    if declared("history_sigma") && round.feed == Feed::Tracks {
        let data = vec![TRACK_POSITION_SIGMA_M; n];
        inputs.push(Tensor::new("history_sigma", vec![n, 1], TensorData::F32(data)).ok()?);
    }
    if declared("scene_time") {
        let data = vec![round.t_secs as f32; n];
        inputs.push(Tensor::new("scene_time", vec![n, 1], TensorData::F32(data)).ok()?);
    }
    match crate::serving::inference::infer_on(&job.loaded, inputs).await {
        Ok(out) => {
            let find = |name: &str| {
                out.outputs.iter().find(|o| o.name == name).and_then(|o| o.as_f32().ok().map(<[f32]>::to_vec))
            };
            let named = |name: &str| out.outputs.iter().find(|o| o.name == name);
            let modes = match (named("modes"), named("mode_probabilities")) {
                (Some(m), Some(p)) => top_modes(m, p),
                _ => None,
            };
            // A model without an uncertainty output has none: absent, never zero.
            Some(Predicted { trajectory: find("trajectory")?, sigma: find("sigma"), modes })
        }
        Err(e) => {
            tracing::debug!(error = %e, "live prediction failed");
            None
        }
    }
}

/// Online-error "model" under which the baselines are scored on the same subjects as the served
/// versions, each a version of it: `constant_velocity` and `kalman` (computed here, not served).
pub const BASELINE_MODEL: &str = "baseline";

/// Scores constant velocity and the Kalman filter on the round's subjects, beside the versions.
fn score_baselines(round: &Round, ctx: &Context) {
    let obs = |h: &[f32]| -> [[f32; 2]; OBS_STEPS] { std::array::from_fn(|k| [h[2 * k], h[2 * k + 1]]) };
    let kalman = KalmanCv::default();
    let cv: Vec<f32> =
        round.histories.iter().flat_map(|h| ConstantVelocity::predict(&obs(h)).into_iter().flatten()).collect();
    let kf: Vec<f32> = round.histories.iter().flat_map(|h| kalman.predict(&obs(h)).into_iter().flatten()).collect();
    for (version, traj) in [("constant_velocity", cv), ("kalman", kf)] {
        ctx.online.record_predictions(BASELINE_MODEL, version, round.feed, round.t_secs, &round.subjects, &traj);
    }
}

/// Runs a round's requests concurrently, scores every result, publishes the primary ones of the
/// track feed as one message.
async fn run_round(jobs: Vec<Job>, round: Round, ctx: Context) {
    let results = join_all(jobs.iter().map(|job| predict(job, &round))).await;
    score_baselines(&round, &ctx);
    let per = PRED_STEPS * 2;
    let n = round.ids.len();
    let mut trajectory = vec![0f32; n * per];
    let mut sigma = vec![f32::NAN; n * per];
    let mut any_sigma = false;
    let mut version_of: Vec<Option<String>> = vec![None; n];
    let mut model_of: Vec<Option<&str>> = vec![None; n];
    // Each published subject's futures and their probabilities, when its version gives several.
    let mut modes_of: Vec<Option<(&[f32], &[f32])>> = vec![None; n];
    for (job, result) in jobs.iter().zip(&results) {
        let Some(Predicted { trajectory: traj, sigma: sig, modes }) = result else { continue };
        let subjects: Vec<Option<Subject>> = job.subjects.iter().map(|i| round.subjects[*i]).collect();
        let version = job.loaded.version.to_string();
        ctx.online.record_predictions(&job.loaded.model, &version, round.feed, round.t_secs, &subjects, traj);
        if !job.primary || round.feed != Feed::Tracks {
            continue;
        }
        for (k, i) in job.subjects.iter().enumerate() {
            trajectory[i * per..(i + 1) * per].copy_from_slice(&traj[k * per..(k + 1) * per]);
            // A subject whose model gives no uncertainty keeps NaN rows.
            if let Some(sig) = sig {
                sigma[i * per..(i + 1) * per].copy_from_slice(&sig[k * per..(k + 1) * per]);
                any_sigma = true;
            }
            version_of[*i] = Some(version.clone());
            model_of[*i] = Some(job.loaded.model.as_str());
            if let Some((m, pos, pr)) = modes {
                modes_of[*i] = Some((&pos[k * m * per..(k + 1) * m * per], &pr[k * m..(k + 1) * m]));
            }
        }
    }
    // Publish the tracks that got a prediction, in order.
    let keep: Vec<usize> = (0..n).filter(|i| version_of[*i].is_some()).collect();
    if keep.is_empty() {
        return;
    }
    let versions: Vec<String> = keep.iter().filter_map(|i| version_of[*i].clone()).collect();
    let models: Vec<String> = keep.iter().filter_map(|i| model_of[*i].map(str::to_string)).collect();
    let (main_model, mixed_models) = most_common(&models);
    // The version that predicted most among the main model's subjects.
    let main_versions: Vec<String> =
        versions.iter().zip(&models).filter(|(_, m)| **m == main_model).map(|(v, _)| v.clone()).collect();
    let (main, _) = most_common(&main_versions);
    let mixed = mixed_models || most_common(&versions).1;
    let pick = |src: &[f32]| keep.iter().flat_map(|i| src[i * per..(i + 1) * per].iter().copied()).collect();
    let mut msg = PredictionsMsg {
        seq: round.seq,
        t_secs: round.t_secs,
        model: main_model,
        version: main,
        count: keep.len() as u32,
        agent_ids: keep.iter().map(|i| round.ids[*i]).collect(),
        trajectory: Bulk::F32(pick(&trajectory)),
        sigma: any_sigma.then(|| Bulk::F32(pick(&sigma))),
        versions: mixed.then_some(versions),
        models: mixed_models.then_some(models),
        modes: None,
        mode_probabilities: None,
    };
    // The stream carries futures only when every published subject has as many.
    let futures: Option<Vec<(&[f32], &[f32])>> = keep.iter().map(|i| modes_of[*i]).collect();
    if let Some(f) = futures.filter(|f| f.iter().all(|(_, p)| p.len() == f[0].1.len())) {
        msg.modes = Some(Bulk::F32(f.iter().flat_map(|(pos, _)| pos.iter().copied()).collect()));
        msg.mode_probabilities = Some(Bulk::F32(f.iter().flat_map(|(_, p)| p.iter().copied()).collect()));
    }
    ctx.hub.publish(&StreamItem::Ready(StreamName::Predictions, ServerMessage::Predictions(msg)));
}

/// The most frequent of `items` (the first in order among equals) and whether there is more than one.
fn most_common(items: &[String]) -> (String, bool) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in items {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let main = counts.iter().max_by_key(|(_, n)| **n).map(|(v, _)| v.to_string()).unwrap_or_default();
    (main, counts.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round of subjects standing at the given places (the last two steps equal).
    fn round_at(places: &[[f32; 2]]) -> Round {
        Round {
            feed: Feed::Tracks,
            ids: (0..places.len() as u32).collect(),
            histories: places.iter().map(|p| (0..OBS_STEPS).flat_map(|_| *p).collect()).collect(),
            subjects: vec![None; places.len()],
            classes: vec![None; places.len()],
            ego: None,
            seq: 0,
            t_secs: 0.0,
        }
    }

    #[test]
    fn each_subject_gets_the_others_within_reach_nearest_first_padded_with_nan() {
        // Subject 0 has 1 (1 m) and 2 (3 m) in reach, not 3 (20 m); subject 3 has nobody.
        let round = round_at(&[[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [20.0, 0.0]]);
        let t = neighbours_of(&[0, 3], &round, NBR_RADIUS_M, MAX_NBRS, None);
        assert_eq!(t.shape, vec![2, 2, 4]);
        let v = t.as_f32().unwrap();
        assert_eq!(v[..8], [1.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 3.0]);
        assert!(v[8..].iter().all(|x| x.is_nan()), "subject 3's row is all padding: {v:?}");
        // A crowd: at most MAX_NBRS per subject.
        let crowd: Vec<[f32; 2]> = (0..12).map(|i| [0.3 * i as f32, 0.0]).collect();
        assert_eq!(neighbours_of(&[0], &round_at(&crowd), NBR_RADIUS_M, MAX_NBRS, None).shape, vec![1, MAX_NBRS, 4]);
        // The vehicle itself, 2 m from subject 0, is one of its neighbours when given.
        let t = neighbours_of(&[0], &round, NBR_RADIUS_M, MAX_NBRS, Some([2.0, 0.0, 2.0, 0.0]));
        assert_eq!(t.as_f32().unwrap()[..12], [1.0, 0.0, 1.0, 0.0, 2.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 3.0]);
    }

    #[test]
    fn within_reach_keeps_the_near_ones_nearest_first() {
        let rows = [[0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 7.0, 0.0]];
        assert_eq!(within_reach([0.0, 0.0], rows.into_iter(), NBR_RADIUS_M), vec![rows[1], rows[0]]);
    }

    #[test]
    fn the_learner_gets_a_tracks_history_smoothed_as_served_and_a_true_one_as_it_is() {
        // A walk with ±0.3 m of jitter across it.
        let obs: [[f32; 2]; OBS_STEPS] = std::array::from_fn(|k| [k as f32 * 0.5, if k % 2 == 0 { 0.3 } else { -0.3 }]);
        let w = Window { obs, fut: [[0.0; 2]; PRED_STEPS] };
        let off = |w: &Window| w.obs.iter().map(|p| p[1].abs()).sum::<f32>();
        let tracked = as_learned(Feed::Tracks, w);
        assert!(off(&tracked) < 0.5 * off(&w), "{} vs {}", off(&tracked), off(&w));
        assert_eq!(tracked.fut, w.fut);
        assert_eq!(as_learned(Feed::Truth, w).obs, w.obs);
    }
}
