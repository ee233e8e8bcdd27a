//! The learned trajectory model: a small temporal convolutional network in the agent-centric
//! frame that predicts a correction to constant velocity, with per-step uncertainty.
//!
//! Input: the 7 displacements between the 8 observed positions, in the agent frame (origin at
//! the last position, x along the recent heading), divided by [`VEL_SCALE_M`]: `[B, 2, 7]`.
//! Two 1-D convolutions (kernel 3, 32 channels, ReLU) read the sequence; their output and the
//! raw input go through a 128-unit layer to 48 numbers: 12 (dx, dy) corrections to the
//! constant-velocity extrapolation and 12 (log sigma_along, log sigma_across).
//!
//! From version 3 the network also reads its neighbours ([`neighbour_features`], pooled) and
//! predicts several futures with probabilities ([`Arch`], [`decode_modes`]).
//!
//! Training ([`Trainer`], in `trainer.rs`) and evaluation use candle; serving uses [`FastTcn`],
//! the same arithmetic in plain loops over the same weights (checked equal in a test), which
//! runs a batch-1 prediction in a few microseconds on one core.

use candle_core::{DType, Module, Tensor as CTensor};
use candle_nn::{conv1d, linear, Conv1d, Conv1dConfig, Linear, VarBuilder};

use super::data::AgentFrame;
pub use super::fast_tcn::FastTcn;
pub use super::trainer::{EpochRecord, TrainConfig, TrainReport, Trainer};
use super::{OBS_STEPS, PRED_STEPS};
use crate::ModelError;

/// Displacements are divided by this before entering the network, metres.
pub const VEL_SCALE_M: f32 = 0.5;
pub(super) const STEPS_IN: usize = OBS_STEPS - 1;
pub(super) const CH: usize = 32;
pub(super) const HIDDEN: usize = 128;
/// Inputs of the first dense layer: the convolutions' output and the features themselves.
pub(super) const IN1: usize = CH * (STEPS_IN - 4) + 2 * STEPS_IN;
pub(super) const OUT: usize = PRED_STEPS * 4;
/// Limits of the predicted log sigma (sigma between 1 cm and 20 m).
pub(super) const LOG_SIGMA_RANGE: (f32, f32) = (-4.6, 3.0);

pub(super) fn cerr(e: candle_core::Error) -> ModelError {
    ModelError::Internal(format!("candle: {e}"))
}

/// Futures of the shipped network (version 3), and the weight of its most likely mode's error
/// in the loss: chosen on the training folds' validation windows (docs/EVALUATION.md).
pub const SHIPPED_MODES: usize = 6;
pub const SHIPPED_TOP_WEIGHT: f64 = 3.0;

/// Neighbours read per agent: the nearest ones at the last observed frame.
pub const MAX_NBRS: usize = 8;
/// Neighbours farther than this at the last observed frame are not read, metres.
pub const NBR_RADIUS_M: f32 = 6.0;
/// Neighbours faster than this (metres per 0.4 s step: 3 m/s) are not read: the network learned
/// from pedestrians among pedestrians, and a passing car is nothing it has seen.
pub const NBR_MAX_STEP_M: f32 = 1.2;
/// Features per neighbour: position and last step in the agent frame, and presence.
pub const NB_FEAT: usize = 5;
/// Neighbour positions are divided by this, metres.
pub const NBR_POS_SCALE_M: f32 = 2.0;
/// Width of a neighbour's embedding (and of the pooled social vector).
pub const EMB: usize = 32;

/// The shape of a network: how many futures it predicts and whether it reads its neighbours.
/// `modes: 1, social: false` is the plain network (outputs: 12 corrections, 12 log sigmas);
/// with `modes: K > 1` the outputs are K sets of corrections, K sets of log sigmas and K logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arch {
    pub modes: usize,
    pub social: bool,
}

impl Default for Arch {
    fn default() -> Self {
        Self::PLAIN
    }
}

impl Arch {
    pub const PLAIN: Arch = Arch { modes: 1, social: false };

    /// Raw outputs per observation.
    pub fn out(&self) -> usize {
        if self.modes <= 1 {
            OUT
        } else {
            self.modes * (OUT + 1)
        }
    }

    /// Inputs of the first dense layer.
    pub fn in1(&self) -> usize {
        IN1 + if self.social { EMB } else { 0 }
    }

    /// The shape of saved weights: the modes from the last layer's size, social when the
    /// neighbour embedding is there.
    pub fn of_weights(map: &std::collections::HashMap<String, CTensor>) -> Result<Self, ModelError> {
        let out = map
            .get("f2.bias")
            .map(|t| t.elem_count())
            .ok_or_else(|| ModelError::Load("weights lack \"f2.bias\"".into()))?;
        let modes = if out == OUT {
            1
        } else if out % (OUT + 1) == 0 && out / (OUT + 1) > 1 {
            out / (OUT + 1)
        } else {
            return Err(ModelError::Load(format!("a last layer of {out} outputs is no trajectory network")));
        };
        Ok(Self { modes, social: map.contains_key("e1.weight") })
    }
}

/// The network built on a candle variable store.
pub struct Tcn {
    pub(super) arch: Arch,
    c1: Conv1d,
    c2: Conv1d,
    /// The neighbour embedding (two dense layers), for a social network.
    e: Option<(Linear, Linear)>,
    f1: Linear,
    f2: Linear,
}

impl std::fmt::Debug for Tcn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tcn")
    }
}

impl Tcn {
    pub fn new(vb: VarBuilder, arch: Arch) -> Result<Self, ModelError> {
        let cfg = Conv1dConfig::default();
        let e = if arch.social {
            Some((linear(NB_FEAT, EMB, vb.pp("e1")).map_err(cerr)?, linear(EMB, EMB, vb.pp("e2")).map_err(cerr)?))
        } else {
            None
        };
        Ok(Self {
            arch,
            c1: conv1d(2, CH, 3, cfg, vb.pp("c1")).map_err(cerr)?,
            c2: conv1d(CH, CH, 3, cfg, vb.pp("c2")).map_err(cerr)?,
            e,
            f1: linear(arch.in1(), HIDDEN, vb.pp("f1")).map_err(cerr)?,
            f2: linear(HIDDEN, arch.out(), vb.pp("f2")).map_err(cerr)?,
        })
    }

    /// `[B, 2, 7]` features (and, for a social network, `[B, MAX_NBRS, NB_FEAT]` neighbour
    /// features) to `[B, arch.out()]` raw outputs.
    pub fn forward(&self, x: &CTensor, nb: Option<&CTensor>) -> candle_core::Result<CTensor> {
        let b = x.dim(0)?;
        let h = self.c1.forward(x)?.relu()?;
        let h = self.c2.forward(&h)?.relu()?;
        let mut parts = vec![h.flatten_from(1)?, x.reshape((b, 2 * STEPS_IN))?];
        if let (Some((e1, e2)), Some(nb)) = (&self.e, nb) {
            // Each neighbour embedded alone, absent ones zeroed, then the maximum over them.
            let flat = nb.reshape((b * MAX_NBRS, NB_FEAT))?;
            let emb = e2.forward(&e1.forward(&flat)?.relu()?)?.relu()?.reshape((b, MAX_NBRS, EMB))?;
            let present = nb.narrow(2, NB_FEAT - 1, 1)?;
            parts.push(emb.broadcast_mul(&present)?.max(1)?);
        } else if self.e.is_some() {
            parts.push(CTensor::zeros((b, EMB), DType::F32, x.device())?);
        }
        let h = CTensor::cat(&parts, 1)?;
        let h = self.f1.forward(&h)?.relu()?;
        self.f2.forward(&h)
    }
}

/// Network input for one observation: agent frame and the scaled displacements, channel-major
/// (`[dx_1..dx_7, dy_1..dy_7]`).
pub fn features(obs: &[[f32; 2]; OBS_STEPS]) -> (AgentFrame, [f32; 2 * STEPS_IN]) {
    let frame = AgentFrame::of(obs);
    let local: [[f32; 2]; OBS_STEPS] = std::array::from_fn(|i| frame.to_local(obs[i]));
    let mut f = [0f32; 2 * STEPS_IN];
    for k in 0..STEPS_IN {
        f[k] = (local[k + 1][0] - local[k][0]) / VEL_SCALE_M;
        f[STEPS_IN + k] = (local[k + 1][1] - local[k][1]) / VEL_SCALE_M;
    }
    (frame, f)
}

/// Neighbour features in an agent's frame: the nearest [`MAX_NBRS`] within [`NBR_RADIUS_M`]
/// at the last observed frame and no faster than [`NBR_MAX_STEP_M`] per step, nearest first, each `[x, y] / NBR_POS_SCALE_M`, its last step
/// `/ VEL_SCALE_M`, and 1 (present); the rest zeros. `neighbours` are
/// `[x_prev, y_prev, x_last, y_last]` in the world; rows with a non-finite value are skipped.
pub fn neighbour_features(frame: &AgentFrame, neighbours: &[[f32; 4]]) -> [f32; MAX_NBRS * NB_FEAT] {
    let mut near: Vec<([f32; 2], [f32; 2], f32)> = neighbours
        .iter()
        .filter(|n| n.iter().all(|v| v.is_finite()))
        .map(|n| {
            let last = frame.to_local([n[2], n[3]]);
            let prev = frame.to_local([n[0], n[1]]);
            (last, [last[0] - prev[0], last[1] - prev[1]], last[0].hypot(last[1]))
        })
        .filter(|n| n.2 <= NBR_RADIUS_M && n.1[0].hypot(n.1[1]) <= NBR_MAX_STEP_M)
        .collect();
    near.sort_by(|a, b| a.2.total_cmp(&b.2));
    let mut f = [0f32; MAX_NBRS * NB_FEAT];
    for (slot, (p, v, _)) in f.chunks_exact_mut(NB_FEAT).zip(&near) {
        slot.copy_from_slice(&[
            p[0] / NBR_POS_SCALE_M,
            p[1] / NBR_POS_SCALE_M,
            v[0] / VEL_SCALE_M,
            v[1] / VEL_SCALE_M,
            1.0,
        ]);
    }
    f
}

/// Turns raw outputs into agent-frame positions (constant velocity + correction) and sigmas.
pub fn decode(feat: &[f32; 2 * STEPS_IN], out: &[f32]) -> ([[f32; 2]; PRED_STEPS], [[f32; 2]; PRED_STEPS]) {
    let v = [feat[STEPS_IN - 1] * VEL_SCALE_M, feat[2 * STEPS_IN - 1] * VEL_SCALE_M];
    let pos = std::array::from_fn(|k| {
        let s = (k + 1) as f32;
        [s * v[0] + out[2 * k], s * v[1] + out[2 * k + 1]]
    });
    let sig = std::array::from_fn(|k| {
        let c = |x: f32| x.clamp(LOG_SIGMA_RANGE.0, LOG_SIGMA_RANGE.1).exp();
        [c(out[2 * PRED_STEPS + 2 * k]), c(out[2 * PRED_STEPS + 2 * k + 1])]
    });
    (pos, sig)
}

/// One predicted future: agent-frame positions, sigmas and its probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mode {
    pub pos: [[f32; 2]; PRED_STEPS],
    pub sigma: [[f32; 2]; PRED_STEPS],
    pub prob: f32,
}

/// Every future of a network's raw outputs, most likely first (a plain network: one, of
/// probability 1).
pub fn decode_modes(arch: Arch, feat: &[f32; 2 * STEPS_IN], out: &[f32]) -> Vec<Mode> {
    if arch.modes <= 1 {
        let (pos, sigma) = decode(feat, out);
        return vec![Mode { pos, sigma, prob: 1.0 }];
    }
    let k = arch.modes;
    let logits = &out[k * OUT..k * OUT + k];
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - top).exp()).collect();
    let sum: f32 = e.iter().sum();
    let mut modes: Vec<Mode> = (0..k)
        .map(|m| {
            // Mode m's corrections and log sigmas, laid out as a plain network's outputs.
            let mut one = [0f32; OUT];
            one[..2 * PRED_STEPS].copy_from_slice(&out[m * 2 * PRED_STEPS..(m + 1) * 2 * PRED_STEPS]);
            let ls = k * 2 * PRED_STEPS + m * 2 * PRED_STEPS;
            one[2 * PRED_STEPS..].copy_from_slice(&out[ls..ls + 2 * PRED_STEPS]);
            let (pos, sigma) = decode(feat, &one);
            Mode { pos, sigma, prob: e[m] / sum }
        })
        .collect();
    modes.sort_by(|a, b| b.prob.total_cmp(&a.prob));
    modes
}
