//! Live trajectory predictions: every 0.4 s of scene time, the last 3.2 s of every agent go
//! through the inference engine of the served trajectory model (the learned `trajectory` when
//! loaded, else the `trajectory_cv` baseline) and the result is published on the
//! `predictions` stream. The histories are the agents' true positions.
//!
//! Each agent is one caller of the routing policy (key `agent-<id>`), so a split or canary
//! spreads the scene's agents across versions, stickily. A version that shadows (or, in a
//! canary, the one not serving an agent) predicts it too, unseen: every version is scored by
//! the online evaluator on the same agents, which makes their errors comparable.
//!
//! Every agent's completed 8 + 12 step windows are kept (bounded) as training data for the
//! continuous learner.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use waypoint_models::trajectory::data::Window;
use waypoint_models::trajectory::{OBS_STEPS, PRED_STEPS, STEP_SECS};
use waypoint_models::{Tensor, TensorData};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{Bulk, PredictionsMsg, ServerMessage, StreamName};
use waypoint_sim::Frame;

use crate::lifecycle::learner::{Observed, OBSERVED_WINDOWS};
use crate::lifecycle::online::{OnlineEval, JUMP_M};
use crate::lifecycle::routing::Router;
use crate::live::hub::Hub;
use crate::serving::registry::{LoadedVersion, Registry};

/// Models tried in order for the live predictions.
pub const LIVE_MODELS: [&str; 2] = ["trajectory", "trajectory_cv"];

/// Per-agent position history sampled every [`STEP_SECS`].
#[derive(Debug)]
pub struct Predictor {
    registry: Arc<Registry>,
    router: Arc<Router>,
    hub: Arc<Hub>,
    online: Arc<OnlineEval>,
    handle: tokio::runtime::Handle,
    histories: BTreeMap<u32, VecDeque<[f32; 2]>>,
    next_sample_secs: f64,
    observed: Observed,
}

/// One inference request of a prediction round: a version and the agents (indices) it predicts.
struct Job {
    loaded: Arc<LoadedVersion>,
    agents: Vec<usize>,
    /// Published (false: a shadow, only scored).
    primary: bool,
}

impl Predictor {
    pub fn new(
        registry: Arc<Registry>,
        router: Arc<Router>,
        hub: Arc<Hub>,
        online: Arc<OnlineEval>,
        handle: tokio::runtime::Handle,
    ) -> Self {
        Self {
            registry,
            router,
            hub,
            online,
            handle,
            histories: BTreeMap::new(),
            next_sample_secs: 0.0,
            observed: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// The observed windows (for the continuous learner).
    pub fn observed(&self) -> Observed {
        self.observed.clone()
    }

    /// Forgets every history (after a reset).
    pub fn clear(&mut self) {
        self.histories.clear();
        self.next_sample_secs = 0.0;
    }

    /// Samples the frame when a 0.4 s step has passed and, if agents have a full history,
    /// submits the round's requests.
    pub fn on_frame(&mut self, frame: &Frame) {
        if frame.t_secs + 1e-9 < self.next_sample_secs {
            return;
        }
        if frame.t_secs < self.next_sample_secs - STEP_SECS {
            // Time went backwards (reset): start again.
            self.clear();
        }
        self.next_sample_secs = frame.t_secs + STEP_SECS - 1e-6;
        let present: Vec<u32> = frame.truth.agents.iter().map(|a| a.id).collect();
        self.histories.retain(|id, _| present.contains(id));
        let window = OBS_STEPS + PRED_STEPS;
        let mut completed = Vec::new();
        for a in &frame.truth.agents {
            let h = self.histories.entry(a.id).or_default();
            let p = [a.x_m as f32, a.y_m as f32];
            // A driver at the end of its route re-enters elsewhere under the same id: a new track.
            if h.back().is_some_and(|q| (q[0] - p[0]).hypot(q[1] - p[1]) > JUMP_M) {
                h.clear();
            }
            h.push_back(p);
            while h.len() > window {
                h.pop_front();
            }
            if h.len() == window {
                let mut w = Window { obs: [[0.0; 2]; OBS_STEPS], fut: [[0.0; 2]; PRED_STEPS] };
                for (k, p) in h.iter().enumerate() {
                    if k < OBS_STEPS {
                        w.obs[k] = *p;
                    } else {
                        w.fut[k - OBS_STEPS] = *p;
                    }
                }
                completed.push(w);
            }
        }
        if !completed.is_empty() {
            let mut o = self.observed.lock().unwrap_or_else(|p| p.into_inner());
            o.extend(completed);
            let excess = o.len().saturating_sub(OBSERVED_WINDOWS);
            o.drain(..excess);
        }
        let ready: Vec<(u32, Vec<f32>)> = self
            .histories
            .iter()
            .filter(|(_, h)| h.len() >= OBS_STEPS)
            .map(|(id, h)| (*id, h.iter().skip(h.len() - OBS_STEPS).flatten().copied().collect()))
            .collect();
        if ready.is_empty() {
            return;
        }
        let Some(model) = LIVE_MODELS.iter().find(|m| self.registry.get(m, None).is_ok()).copied() else { return };
        let jobs = self.plan(model, &ready);
        let (hub, online, seq, t) = (self.hub.clone(), self.online.clone(), frame.seq, frame.t_secs);
        self.handle.spawn(run_round(jobs, ready, hub, online, seq, t));
    }

    /// Groups the agents by the version that serves them, and by the version that shadows them.
    fn plan(&self, model: &str, ready: &[(u32, Vec<f32>)]) -> Vec<Job> {
        let mut primary: BTreeMap<u64, (Arc<LoadedVersion>, Vec<usize>)> = BTreeMap::new();
        let mut shadow: BTreeMap<u64, (Arc<LoadedVersion>, Vec<usize>)> = BTreeMap::new();
        for (i, (id, _)) in ready.iter().enumerate() {
            let Ok((loaded, sh)) =
                crate::lifecycle::routing::resolve(&self.registry, &self.router, model, None, &format!("agent-{id}"))
            else {
                continue;
            };
            primary.entry(loaded.version).or_insert_with(|| (loaded.clone(), Vec::new())).1.push(i);
            if let Some(s) = sh {
                shadow.entry(s.version).or_insert_with(|| (s.clone(), Vec::new())).1.push(i);
            }
        }
        let mut jobs: Vec<Job> =
            primary.into_values().map(|(loaded, agents)| Job { loaded, agents, primary: true }).collect();
        jobs.extend(shadow.into_values().map(|(loaded, agents)| Job { loaded, agents, primary: false }));
        jobs
    }
}

/// Runs a round's requests concurrently, scores every result, publishes the primary ones as one
/// message.
async fn run_round(
    jobs: Vec<Job>,
    ready: Vec<(u32, Vec<f32>)>,
    hub: Arc<Hub>,
    online: Arc<OnlineEval>,
    seq: u64,
    t: f64,
) {
    let results = join_all(jobs.iter().map(|job| {
        let data: Vec<f32> = job.agents.iter().flat_map(|i| ready[*i].1.iter().copied()).collect();
        let n = job.agents.len();
        async move {
            let input = Tensor::new("history", vec![n, OBS_STEPS, 2], TensorData::F32(data)).ok()?;
            match crate::serving::inference::infer_on(&job.loaded, vec![input]).await {
                Ok(out) => {
                    let find = |name: &str| {
                        out.outputs.iter().find(|o| o.name == name).and_then(|o| o.as_f32().ok().map(<[f32]>::to_vec))
                    };
                    let traj = find("trajectory")?;
                    // A model without an uncertainty output has none: absent, never zero.
                    Some((traj, find("sigma")))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "live prediction failed");
                    None
                }
            }
        }
    }))
    .await;
    let per_agent = PRED_STEPS * 2;
    let mut trajectory = vec![0f32; ready.len() * per_agent];
    let mut sigma = vec![f32::NAN; ready.len() * per_agent];
    let mut all_have_sigma = true;
    let mut version_of: Vec<Option<String>> = vec![None; ready.len()];
    let mut model = String::new();
    for (job, result) in jobs.iter().zip(results) {
        let Some((traj, sig)) = result else { continue };
        let ids: Vec<u32> = job.agents.iter().map(|i| ready[*i].0).collect();
        let version = job.loaded.version.to_string();
        online.record_predictions(&job.loaded.model, &version, t, &ids, &traj);
        if !job.primary {
            continue;
        }
        model.clone_from(&job.loaded.model);
        for (k, i) in job.agents.iter().enumerate() {
            trajectory[i * per_agent..(i + 1) * per_agent].copy_from_slice(&traj[k * per_agent..(k + 1) * per_agent]);
            match &sig {
                Some(sig) => {
                    sigma[i * per_agent..(i + 1) * per_agent].copy_from_slice(&sig[k * per_agent..(k + 1) * per_agent]);
                }
                None => all_have_sigma = false,
            }
            version_of[*i] = Some(version.clone());
        }
    }
    // Publish the agents that got a prediction, in order.
    let keep: Vec<usize> = (0..ready.len()).filter(|i| version_of[*i].is_some()).collect();
    if keep.is_empty() {
        return;
    }
    let versions: Vec<String> = keep.iter().filter_map(|i| version_of[*i].clone()).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &versions {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let main = counts.iter().max_by_key(|(_, n)| **n).map(|(v, _)| v.to_string()).unwrap_or_default();
    let mixed = counts.len() > 1;
    let pick =
        |src: &[f32]| keep.iter().flat_map(|i| src[i * per_agent..(i + 1) * per_agent].iter().copied()).collect();
    let msg = PredictionsMsg {
        seq,
        t_secs: t,
        model,
        version: main,
        count: keep.len() as u32,
        agent_ids: keep.iter().map(|i| ready[*i].0).collect(),
        trajectory: Bulk::F32(pick(&trajectory)),
        sigma: all_have_sigma.then(|| Bulk::F32(pick(&sigma))),
        versions: mixed.then_some(versions),
    };
    hub.publish(&StreamItem::Ready(StreamName::Predictions, ServerMessage::Predictions(msg)));
}
