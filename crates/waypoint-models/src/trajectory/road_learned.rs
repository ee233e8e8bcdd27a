//! The learned part of the road model: a small network (two hidden layers of 64) that corrects
//! each route's roll-out — the arc length and the lateral offset at each of the 12 steps — from
//! what the roll-out was built on ([`super::road`]'s features: the history on the route, the
//! roll-out, the stop line, the signal, the road user ahead). Trained by `waypoint train
//! trajectory-road` on the windows of perception's tracks in simulated drives, against where
//! the road users really went, so that it learns what the speed law and the lane's centre line
//! miss about tracked road users (a queue's creep, a track's offset, a turn's speed).
//!
//! The last layer starts at zero: untrained, the correction is none and the model is the
//! fitted road model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor as CTensor};
use candle_nn::{Module, Optimizer, VarBuilder, VarMap};
use serde::Serialize;
use waypoint_sim::rng::SimRng;

use super::PRED_STEPS;
use crate::ModelError;

/// Features per route.
pub const N_FEATURES: usize = 42;
const HIDDEN: usize = 64;
/// Outputs: the arc-length corrections of the 12 steps, then the lateral ones.
pub const N_OUT: usize = 2 * PRED_STEPS;
/// Metres of arc length per unit of output (lateral: 1 m).
const S_SCALE: f32 = 5.0;
/// The weight file of a version.
pub const CORRECTION_FILE: &str = "correction.safetensors";

/// The trained network, for inference.
#[derive(Debug, Clone)]
pub struct Correction {
    layers: [(Vec<f32>, Vec<f32>); 3],
}

fn cerr(e: candle_core::Error) -> ModelError {
    ModelError::Internal(e.to_string())
}

const SHAPES: [(&str, usize, usize); 3] = [("l1", N_FEATURES, HIDDEN), ("l2", HIDDEN, HIDDEN), ("l3", HIDDEN, N_OUT)];

impl Correction {
    fn from_map(map: &HashMap<String, CTensor>) -> Result<Self, ModelError> {
        let get = |name: String, len: usize| -> Result<Vec<f32>, ModelError> {
            let t = map.get(&name).ok_or_else(|| ModelError::Load(format!("the correction has no {name}")))?;
            let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(cerr)?;
            if v.len() != len || !v.iter().all(|x| x.is_finite()) {
                return Err(ModelError::Load(format!("{name}: {} values, {len} expected, all finite", v.len())));
            }
            Ok(v)
        };
        let layer = |(name, i, o): (&str, usize, usize)| -> Result<(Vec<f32>, Vec<f32>), ModelError> {
            Ok((get(format!("{name}.weight"), i * o)?, get(format!("{name}.bias"), o)?))
        };
        Ok(Self { layers: [layer(SHAPES[0])?, layer(SHAPES[1])?, layer(SHAPES[2])?] })
    }

    /// Reads a weight file written by [`train_correction`]'s caller.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        Self::from_map(&map)
    }

    pub fn from_varmap(vm: &VarMap) -> Result<Self, ModelError> {
        let data = vm.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
        let map = data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        Self::from_map(&map)
    }

    /// The correction of one roll-out, metres: arc length at the 12 steps, then lateral offset.
    pub fn correct(&self, x: &[f32; N_FEATURES]) -> [f32; N_OUT] {
        let dense = |(w, b): &(Vec<f32>, Vec<f32>), input: &[f32], relu: bool| -> Vec<f32> {
            b.iter()
                .enumerate()
                .map(|(o, bias)| {
                    let row = &w[o * input.len()..(o + 1) * input.len()];
                    let v = bias + row.iter().zip(input).map(|(a, b)| a * b).sum::<f32>();
                    if relu {
                        v.max(0.0)
                    } else {
                        v
                    }
                })
                .collect()
        };
        let h1 = dense(&self.layers[0], x, true);
        let h2 = dense(&self.layers[1], &h1, true);
        let out = dense(&self.layers[2], &h2, false);
        std::array::from_fn(|k| if k < PRED_STEPS { out[k] * S_SCALE } else { out[k] })
    }
}

/// How the correction is trained.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CorrectionConfig {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for CorrectionConfig {
    fn default() -> Self {
        Self { epochs: 80, batch: 256, learning_rate: 1e-3, weight_decay: 1e-4, seed: 1 }
    }
}

/// One epoch: the mean training loss and the validation loss (the mean displacement, metres,
/// of the corrected roll-outs in the route's frame).
#[derive(Debug, Clone, Serialize)]
pub struct CorrectionEpoch {
    pub epoch: usize,
    pub train_m: f64,
    pub val_m: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorrectionReport {
    pub config: CorrectionConfig,
    pub train_rows: usize,
    pub val_rows: usize,
    /// The validation loss before training (no correction: the fitted road model).
    pub val_uncorrected_m: f64,
    pub best_epoch: usize,
    pub best_val_m: f64,
    pub epochs: Vec<CorrectionEpoch>,
}

type Row = ([f32; N_FEATURES], [f32; N_OUT]);

fn mlp(vb: &VarBuilder) -> candle_core::Result<[candle_nn::Linear; 3]> {
    Ok([
        candle_nn::linear(N_FEATURES, HIDDEN, vb.pp("l1"))?,
        candle_nn::linear(HIDDEN, HIDDEN, vb.pp("l2"))?,
        candle_nn::linear(HIDDEN, N_OUT, vb.pp("l3"))?,
    ])
}

/// Mean displacement (route frame, metres) of the corrected roll-outs of `rows`.
fn loss(net: &[candle_nn::Linear; 3], x: &CTensor, y: &CTensor) -> candle_core::Result<CTensor> {
    let h = net[0].forward(x)?.relu()?;
    let h = net[1].forward(&h)?.relu()?;
    let out = net[2].forward(&h)?;
    let ds = (out.narrow(1, 0, PRED_STEPS)? * f64::from(S_SCALE))?;
    let dl = out.narrow(1, PRED_STEPS, PRED_STEPS)?;
    let es = (ds - y.narrow(1, 0, PRED_STEPS)?)?;
    let el = (dl - y.narrow(1, PRED_STEPS, PRED_STEPS)?)?;
    ((es.sqr()? + el.sqr()?)? + 1e-6)?.sqrt()?.mean_all()
}

fn tensors(rows: &[Row]) -> candle_core::Result<(CTensor, CTensor)> {
    let x: Vec<f32> = rows.iter().flat_map(|r| r.0).collect();
    let y: Vec<f32> = rows.iter().flat_map(|r| r.1).collect();
    Ok((
        CTensor::from_vec(x, (rows.len(), N_FEATURES), &Device::Cpu)?,
        CTensor::from_vec(y, (rows.len(), N_OUT), &Device::Cpu)?,
    ))
}

/// Trains the correction on `train` (AdamW, mini-batches in a seeded order), keeping the
/// weights of the epoch with the least loss on `val`; `progress` hears each epoch.
pub fn train_correction(
    train: &[Row],
    val: &[Row],
    cfg: &CorrectionConfig,
    mut progress: impl FnMut(&CorrectionEpoch),
) -> Result<(VarMap, CorrectionReport), ModelError> {
    if train.is_empty() || val.is_empty() {
        return Err(ModelError::Data("no training or validation windows for the correction".into()));
    }
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let net = mlp(&vb).map_err(cerr)?;
    // The last layer starts at zero: no correction.
    for (name, var) in varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?.iter() {
        if name.starts_with("l3.") {
            var.set(&var.as_tensor().zeros_like().map_err(cerr)?).map_err(cerr)?;
        }
    }
    let (vx, vy) = tensors(val).map_err(cerr)?;
    let val_loss = |net: &[candle_nn::Linear; 3]| -> Result<f64, ModelError> {
        loss(net, &vx, &vy).and_then(|l| l.to_scalar::<f32>()).map(f64::from).map_err(cerr)
    };
    let val_uncorrected_m = val_loss(&net)?;
    let params = candle_nn::ParamsAdamW { lr: cfg.learning_rate, weight_decay: cfg.weight_decay, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(varmap.all_vars(), params).map_err(cerr)?;
    let mut rng = SimRng::new(cfg.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best: Option<(usize, f64, HashMap<String, CTensor>)> = None;
    let mut epochs = Vec::new();
    for epoch in 1..=cfg.epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let (mut sum, mut n) = (0.0, 0usize);
        for chunk in order.chunks(cfg.batch.max(1)) {
            let rows: Vec<Row> = chunk.iter().map(|&i| train[i]).collect();
            let (x, y) = tensors(&rows).map_err(cerr)?;
            let l = loss(&net, &x, &y).map_err(cerr)?;
            opt.backward_step(&l).map_err(cerr)?;
            sum += f64::from(l.to_scalar::<f32>().map_err(cerr)?) * rows.len() as f64;
            n += rows.len();
        }
        let record = CorrectionEpoch { epoch, train_m: sum / n.max(1) as f64, val_m: val_loss(&net)? };
        progress(&record);
        if best.as_ref().is_none_or(|b| record.val_m < b.1) {
            let data = varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
            let copy = data
                .iter()
                .map(|(k, v)| v.as_tensor().copy().map(|t| (k.clone(), t)))
                .collect::<candle_core::Result<HashMap<_, _>>>()
                .map_err(cerr)?;
            best = Some((epoch, record.val_m, copy));
        }
        epochs.push(record);
    }
    let Some((best_epoch, best_val_m, weights)) = best else {
        return Err(ModelError::Internal("no epoch ran".into()));
    };
    for (name, var) in varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?.iter() {
        if let Some(w) = weights.get(name) {
            var.set(w).map_err(cerr)?;
        }
    }
    let report = CorrectionReport {
        config: *cfg,
        train_rows: train.len(),
        val_rows: val.len(),
        val_uncorrected_m,
        best_epoch,
        best_val_m,
        epochs,
    };
    Ok((varmap, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_correction_learns_a_consistent_lag_and_starts_as_none() {
        // Rows whose truth lies 2 m further along at every step when feature 5 (the speed) is
        // high, and where the roll-out put it otherwise.
        let mut rng = SimRng::new(3);
        let rows: Vec<Row> = (0..600)
            .map(|_| {
                let mut x = [0f32; N_FEATURES];
                x[5] = rng.range(0.0, 1.0) as f32;
                let mut y = [0f32; N_OUT];
                for v in y.iter_mut().take(PRED_STEPS) {
                    *v = 2.0 * x[5];
                }
                (x, y)
            })
            .collect();
        let (train, val) = rows.split_at(500);
        let cfg = CorrectionConfig { epochs: 30, batch: 50, ..Default::default() };
        let (vm, report) = train_correction(train, val, &cfg, |_| {}).unwrap();
        // Untrained, the loss is the truth's own offset (mean 1 m); trained, well below.
        assert!((report.val_uncorrected_m - 1.0).abs() < 0.15, "{report:?}");
        assert!(report.best_val_m < 0.3 * report.val_uncorrected_m, "{report:?}");
        let net = Correction::from_varmap(&vm).unwrap();
        let mut x = [0f32; N_FEATURES];
        x[5] = 0.9;
        let c = net.correct(&x);
        assert!((c[0] - 1.8).abs() < 0.4 && c[PRED_STEPS].abs() < 0.3, "{c:?}");
    }
}
