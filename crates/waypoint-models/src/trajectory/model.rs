//! The learned trajectory model as served: `history` FP32 `[N, 8, 2]` (world metres) and,
//! optionally, `neighbours` FP32 `[N, M, 4]` (for each row, up to M other agents as
//! `[x_prev, y_prev, x_last, y_last]`: their positions one step before and at the history's last
//! step; a row with a non-finite value is no neighbour) to
//! - `trajectory` FP32 `[N, 12, 2]`: the most likely future;
//! - `sigma` FP32 `[N, 12, 2]`: its one-sigma uncertainty along and across the agent's heading
//!   at each step, metres;
//! - `modes` FP32 `[N, K, 12, 2]`, `mode_probabilities` FP32 `[N, K]` and `mode_sigma` FP32
//!   `[N, K, 12, 2]`: every future the network predicts, most likely first (K = 1 for a network
//!   of one future).
//!
//! A network that does not read neighbours ignores `neighbours`; one that does answers a
//! request without them as for an agent alone.
//!
//! Optionally, `history_sigma` FP32 `[N, 1]`: the one-sigma noise of each row's positions,
//! metres (a tracker's jitter, say). A row with a noise above 0 is smoothed before the network
//! reads it (a Kalman smoother with that measurement noise and [`SMOOTH_ACCEL_MPS2`] of
//! acceleration noise), and its prediction starts from the smoothed last position; left out or
//! 0, the positions are taken as exact (annotations, as in training).

use std::path::Path;

use super::kalman::KalmanCv;
use super::tcn::{decode_modes, features, neighbour_features, FastTcn, MAX_NBRS, NB_FEAT};
use super::{OBS_STEPS, PRED_STEPS};
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// Batches of at least this many rows use the matrix-product path.
pub const BATCHED_FROM: usize = 16;

/// Weight file name inside a version directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Most neighbours a request may list per row (the network reads the nearest [`MAX_NBRS`]).
pub const MAX_NEIGHBOURS_PER_ROW: usize = 256;

/// Acceleration noise of the smoother applied to a history declared noisy (`history_sigma`),
/// m/s²: walking pace changes slowly. Chosen with the live stack's noise on a recording of
/// the simulated scene with seed 7 (see docs/EVALUATION.md).
pub const SMOOTH_ACCEL_MPS2: f32 = 0.3;
/// A history declared `sigma_m` noisy as the network reads it: smoothed with that measurement
/// noise and [`SMOOTH_ACCEL_MPS2`].
pub fn smooth_declared(obs: &[[f32; 2]; OBS_STEPS], sigma_m: f32) -> [[f32; 2]; OBS_STEPS] {
    KalmanCv { meas_sigma_m: sigma_m, accel_sigma_mps2: SMOOTH_ACCEL_MPS2 }.smooth(obs)
}

/// Largest `history_sigma` accepted, metres.
pub const MAX_HISTORY_SIGMA_M: f32 = 5.0;

/// The `history_sigma` input, checked: `[N, 1]` FP32, each finite and in
/// [0, [`MAX_HISTORY_SIGMA_M`]].
fn history_sigma_input(inputs: &[Tensor], rows: usize) -> Result<Option<&[f32]>, ModelError> {
    let Some(t) = inputs.iter().find(|t| t.name == "history_sigma") else { return Ok(None) };
    if t.shape != [rows, 1] {
        return Err(ModelError::BadInput(format!("history_sigma must be [{rows}, 1], got {:?}", t.shape)));
    }
    let v = t.as_f32()?;
    if let Some((r, x)) =
        v.iter().enumerate().find(|(_, x)| !(x.is_finite() && (0.0..=MAX_HISTORY_SIGMA_M).contains(*x)))
    {
        return Err(ModelError::BadInput(format!(
            "history_sigma row {r} is {x}; a noise in metres from 0 to {MAX_HISTORY_SIGMA_M}"
        )));
    }
    Ok(Some(v))
}

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

/// The `neighbours` input, checked: `[N, M, 4]` FP32 with M ≤ [`MAX_NEIGHBOURS_PER_ROW`].
pub(crate) fn neighbours_input(inputs: &[Tensor], rows: usize) -> Result<Option<(&[f32], usize)>, ModelError> {
    let Some(t) = inputs.iter().find(|t| t.name == "neighbours") else { return Ok(None) };
    if t.shape.len() != 3 || t.shape[0] != rows || t.shape[2] != 4 {
        return Err(ModelError::BadInput(format!("neighbours must be [{rows}, M, 4], got {:?}", t.shape)));
    }
    if t.shape[1] > MAX_NEIGHBOURS_PER_ROW {
        return Err(ModelError::BadInput(format!(
            "neighbours lists {} agents per row; at most {MAX_NEIGHBOURS_PER_ROW}",
            t.shape[1]
        )));
    }
    Ok(Some((t.as_f32()?, t.shape[1])))
}

impl Model for TrajectoryModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let history = super::history_rows(inputs, true)?;
        let n = history.len();
        let neighbours = neighbours_input(inputs, n)?;
        let noise = history_sigma_input(inputs, n)?;
        let arch = self.net.arch();
        let mut frames = Vec::with_capacity(n);
        let mut feats = Vec::with_capacity(n);
        let mut nbs: Vec<[f32; MAX_NBRS * NB_FEAT]> = Vec::new();
        for (r, obs) in history.iter().enumerate() {
            let smoothed;
            let obs = match noise.map(|v| v[r]).filter(|s| *s > 0.0) {
                Some(sigma) => {
                    smoothed = smooth_declared(obs, sigma);
                    &smoothed
                }
                None => obs,
            };
            let (frame, f) = features(obs);
            if arch.social {
                let rows: Vec<[f32; 4]> = match neighbours {
                    Some((v, m)) => {
                        v[r * m * 4..(r + 1) * m * 4].chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
                    }
                    None => Vec::new(),
                };
                nbs.push(neighbour_features(&frame, &rows));
            }
            frames.push(frame);
            feats.push(f);
        }
        // Small batches run sample by sample; large ones as matrix products.
        let outs: Vec<Vec<f32>> = if n >= BATCHED_FROM {
            self.net.forward_batch_full(&feats, &nbs)
        } else {
            let none = [0f32; MAX_NBRS * NB_FEAT];
            feats.iter().enumerate().map(|(r, f)| self.net.forward_full(f, nbs.get(r).unwrap_or(&none))).collect()
        };
        let k = arch.modes.max(1);
        let mut traj = Vec::with_capacity(n * PRED_STEPS * 2);
        let mut sigma = Vec::with_capacity(n * PRED_STEPS * 2);
        let mut modes = Vec::with_capacity(n * k * PRED_STEPS * 2);
        let mut probs = Vec::with_capacity(n * k);
        let mut mode_sigma = Vec::with_capacity(n * k * PRED_STEPS * 2);
        for ((frame, f), out) in frames.iter().zip(&feats).zip(&outs) {
            for (i, m) in decode_modes(arch, f, out).iter().enumerate() {
                let world = m.pos.iter().flat_map(|q| frame.to_world(*q));
                if i == 0 {
                    traj.extend(world.clone());
                    sigma.extend(m.sigma.iter().flatten());
                }
                modes.extend(world);
                probs.push(m.prob);
                mode_sigma.extend(m.sigma.iter().flatten());
            }
        }
        Ok(vec![
            Tensor::new("trajectory", vec![n, PRED_STEPS, 2], TensorData::F32(traj))?,
            Tensor::new("sigma", vec![n, PRED_STEPS, 2], TensorData::F32(sigma))?,
            Tensor::new("modes", vec![n, k, PRED_STEPS, 2], TensorData::F32(modes))?,
            Tensor::new("mode_probabilities", vec![n, k], TensorData::F32(probs))?,
            Tensor::new("mode_sigma", vec![n, k, PRED_STEPS, 2], TensorData::F32(mode_sigma))?,
        ])
    }
}
