//! Live trajectory predictions: every 0.4 s of scene time, the last 3.2 s of every agent go
//! through the inference engine of the served trajectory model (the learned `trajectory` when
//! loaded, else the `trajectory_cv` baseline) and the result is published on the
//! `predictions` stream. The histories are the agents' true positions until the detection and
//! tracking model supplies tracks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use waypoint_models::trajectory::{OBS_STEPS, PRED_STEPS, STEP_SECS};
use waypoint_models::{Tensor, TensorData};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{Bulk, PredictionsMsg, ServerMessage, StreamName};
use waypoint_sim::Frame;

use crate::hub::Hub;
use crate::online::OnlineEval;
use crate::registry::Registry;

/// Models tried in order for the live predictions.
pub const LIVE_MODELS: [&str; 2] = ["trajectory", "trajectory_cv"];

/// Per-agent position history sampled every [`STEP_SECS`].
#[derive(Debug)]
pub struct Predictor {
    registry: Arc<Registry>,
    hub: Arc<Hub>,
    online: Arc<OnlineEval>,
    handle: tokio::runtime::Handle,
    histories: BTreeMap<u32, VecDeque<[f32; 2]>>,
    next_sample_secs: f64,
}

impl Predictor {
    pub fn new(
        registry: Arc<Registry>,
        hub: Arc<Hub>,
        online: Arc<OnlineEval>,
        handle: tokio::runtime::Handle,
    ) -> Self {
        Self { registry, hub, online, handle, histories: BTreeMap::new(), next_sample_secs: 0.0 }
    }

    /// Forgets every history (after a reset).
    pub fn clear(&mut self) {
        self.histories.clear();
        self.next_sample_secs = 0.0;
    }

    /// Samples the frame when a 0.4 s step has passed and, if agents have a full history,
    /// submits one batched request.
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
        for a in &frame.truth.agents {
            let h = self.histories.entry(a.id).or_default();
            h.push_back([a.x_m as f32, a.y_m as f32]);
            while h.len() > OBS_STEPS {
                h.pop_front();
            }
        }
        let ready: Vec<(u32, Vec<f32>)> = self
            .histories
            .iter()
            .filter(|(_, h)| h.len() == OBS_STEPS)
            .map(|(id, h)| (*id, h.iter().flatten().copied().collect()))
            .collect();
        if ready.is_empty() {
            return;
        }
        let ids: Vec<u32> = ready.iter().map(|r| r.0).collect();
        let data: Vec<f32> = ready.into_iter().flat_map(|r| r.1).collect();
        let (registry, hub, seq, t) = (self.registry.clone(), self.hub.clone(), frame.seq, frame.t_secs);
        let online = self.online.clone();
        self.handle.spawn(async move {
            let Some(model) = LIVE_MODELS.iter().find(|m| registry.get(m, None).is_ok()) else { return };
            let Ok(input) = Tensor::new("history", vec![ids.len(), OBS_STEPS, 2], TensorData::F32(data)) else {
                return;
            };
            match crate::inference::infer(&registry, model, None, vec![input]).await {
                Ok((loaded, out)) => {
                    let find = |name: &str| {
                        out.outputs.iter().find(|o| o.name == name).and_then(|o| o.as_f32().ok().map(<[f32]>::to_vec))
                    };
                    let Some(traj) = find("trajectory") else { return };
                    online.record_predictions(&loaded.model, &loaded.version.to_string(), t, &ids, &traj);
                    let sigma = find("sigma").unwrap_or_else(|| vec![0.0; ids.len() * PRED_STEPS * 2]);
                    let msg = PredictionsMsg {
                        seq,
                        t_secs: t,
                        model: loaded.model.clone(),
                        version: loaded.version.to_string(),
                        count: ids.len() as u32,
                        agent_ids: ids,
                        trajectory: Bulk::F32(traj),
                        sigma: Bulk::F32(sigma),
                    };
                    hub.publish(&StreamItem::Ready(StreamName::Predictions, ServerMessage::Predictions(msg)));
                }
                Err(e) => tracing::debug!(error = %e, "live prediction failed"),
            }
        });
    }
}
