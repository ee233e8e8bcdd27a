//! The learned trajectory model as served: `history` FP32 `[N, 8, 2]` (world metres) to
//! `trajectory` FP32 `[N, 12, 2]` and `sigma` FP32 `[N, 12, 2]` — one-sigma uncertainty along
//! and across the agent's heading at each predicted step, metres.

use std::path::Path;

use super::tcn::{decode, features, FastTcn};
use super::{OBS_STEPS, PRED_STEPS};
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// Batches of at least this many rows use the matrix-product path.
pub const BATCHED_FROM: usize = 16;

/// Weight file name inside a version directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Serves [`FastTcn`].
#[derive(Debug, Clone)]
pub struct TrajectoryModel {
    net: FastTcn,
}

impl TrajectoryModel {
    pub fn load(version_dir: &Path) -> Result<Self, ModelError> {
        Ok(Self { net: FastTcn::load(&version_dir.join(WEIGHTS_FILE))? })
    }

    pub fn from_net(net: FastTcn) -> Self {
        Self { net }
    }
}

impl Model for TrajectoryModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let history = Tensor::named(inputs, "history")?;
        if history.shape.len() != 3 || history.shape[1] != OBS_STEPS || history.shape[2] != 2 {
            return Err(ModelError::BadInput(format!("history must be [N, {OBS_STEPS}, 2], got {:?}", history.shape)));
        }
        let h = history.as_f32()?;
        let n = history.shape[0];
        let mut traj = Vec::with_capacity(n * PRED_STEPS * 2);
        let mut sigma = Vec::with_capacity(n * PRED_STEPS * 2);
        let mut frames = Vec::with_capacity(n);
        let mut feats = Vec::with_capacity(n);
        for r in 0..n {
            let obs: [[f32; 2]; OBS_STEPS] =
                std::array::from_fn(|k| [h[(r * OBS_STEPS + k) * 2], h[(r * OBS_STEPS + k) * 2 + 1]]);
            if obs.iter().flatten().any(|v| !v.is_finite()) {
                return Err(ModelError::BadInput(format!("history row {r} has a non-finite value")));
            }
            let (frame, f) = features(&obs);
            frames.push(frame);
            feats.push(f);
        }
        // Small batches run sample by sample; large ones as matrix products.
        let outs: Vec<_> = if n >= BATCHED_FROM {
            self.net.forward_batch(&feats)
        } else {
            feats.iter().map(|f| self.net.forward(f)).collect()
        };
        for ((frame, f), out) in frames.iter().zip(&feats).zip(&outs) {
            let (p, s) = decode(f, out);
            traj.extend(p.iter().flat_map(|q| frame.to_world(*q)));
            sigma.extend(s.iter().flatten());
        }
        Ok(vec![
            Tensor::new("trajectory", vec![n, PRED_STEPS, 2], TensorData::F32(traj))?,
            Tensor::new("sigma", vec![n, PRED_STEPS, 2], TensorData::F32(sigma))?,
        ])
    }
}
