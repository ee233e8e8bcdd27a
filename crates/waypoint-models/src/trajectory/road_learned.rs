//! The learned part of the road model: a small network (two hidden layers of 64) that corrects
//! each route's roll-out — the arc length and the lateral offset at each of the 12 steps — from
//! what the roll-out was built on ([`features`]: the history on the route, the roll-out, the
//! stop line, the signal, the road user ahead). Trained by `waypoint train
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

use super::fast_tcn::{dot, get, load_weights, varmap_weights, WeightMap};
use super::road::{
    candidates, may_go, platoon, roll_out, v2, Candidate, Leader, Profile, RoadClass, RoadParams, RoadWindow,
    MAX_LATERAL_M,
};
use super::tcn::cerr;
use super::{OBS_STEPS, PRED_STEPS};
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

const SHAPES: [(&str, usize, usize); 3] = [("l1", N_FEATURES, HIDDEN), ("l2", HIDDEN, HIDDEN), ("l3", HIDDEN, N_OUT)];

impl Correction {
    fn from_map(map: &WeightMap) -> Result<Self, ModelError> {
        let get = |name: String, len: usize| -> Result<Vec<f32>, ModelError> {
            let v = get(map, &name, len)?;
            if !v.iter().all(|x| x.is_finite()) {
                return Err(ModelError::Load(format!("{name:?} holds values that are not finite")));
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
        Self::from_map(&load_weights(path)?)
    }

    pub fn from_varmap(vm: &VarMap) -> Result<Self, ModelError> {
        Self::from_map(&varmap_weights(vm)?)
    }

    /// The correction of one roll-out, metres: arc length at the 12 steps, then lateral offset.
    pub fn correct(&self, x: &[f32; N_FEATURES]) -> [f32; N_OUT] {
        let dense = |(w, b): &(Vec<f32>, Vec<f32>), input: &[f32], relu: bool| -> Vec<f32> {
            b.iter()
                .enumerate()
                .map(|(o, bias)| {
                    let row = &w[o * input.len()..(o + 1) * input.len()];
                    let v = bias + dot(row, input);
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

/// What the learned correction reads of one route's roll-out ([`N_FEATURES`] numbers, each
/// scaled to about ±1): the class and the turn, the speed along the route, the history's arc
/// lengths and lateral offsets on the route (relative to the last step), the roll-out's arc
/// lengths, the stop line's distance, the signal (whether the arm may go now, how long until it
/// may, how long it still may; neutral values without the scene time) and the road user ahead.
pub(super) fn features(
    history: &[[f32; 2]; OBS_STEPS],
    class: RoadClass,
    c: &Candidate,
    profile: &Profile,
    leader: Option<&Leader>,
    scene_time: Option<f64>,
) -> [f32; N_FEATURES] {
    let mut x = [0f32; N_FEATURES];
    x[usize::from(class == RoadClass::Cyclist)] = 1.0;
    x[2 + c.route.turn] = 1.0;
    x[5] = (c.v / 10.0) as f32;
    for (j, q) in history.iter().enumerate() {
        let (s, lat) = c.route.path.project(v2(*q), (c.s - 60.0).max(0.0), c.s + 2.0).unwrap_or((c.s, c.lat));
        x[6 + j] = ((s - c.s) / 10.0) as f32;
        x[6 + OBS_STEPS + j] = (lat / 2.0) as f32;
    }
    let roll = 6 + 2 * OBS_STEPS;
    for k in 0..PRED_STEPS {
        x[roll + k] = ((profile.s[k] - c.s) / 20.0) as f32;
    }
    let at = roll + PRED_STEPS;
    x[at] = ((c.route.stop_s_m - c.s) / 50.0).clamp(-1.0, 2.0) as f32;
    match scene_time {
        Some(t0) => {
            let arm = c.route.from;
            let now = may_go(arm, t0);
            let until = |want: bool| (0..=120).map(|i| i as f64 * 0.5).find(|&d| may_go(arm, t0 + d) == want);
            x[at + 1] = f32::from(u8::from(now));
            x[at + 2] = if now { 0.0 } else { (until(true).unwrap_or(60.0) / 60.0) as f32 };
            x[at + 3] = if now { (until(false).unwrap_or(60.0) / 30.0) as f32 } else { 0.0 };
            x[at + 4] = 1.0;
        }
        None => {
            x[at + 1] = 0.5;
            x[at + 2] = 0.5;
            x[at + 3] = 0.5;
        }
    }
    match leader {
        Some(l) => {
            x[at + 5] = ((l.s_m - c.s) / 30.0).clamp(0.0, 2.0) as f32;
            x[at + 6] = (l.v_mps / 10.0) as f32;
            x[at + 7] = 1.0;
        }
        None => x[at + 5] = 2.0,
    }
    x
}

/// The learned correction's training rows from `windows`: for each window, the route (among
/// its candidates) the true future lies closest to, the features of its roll-out and the
/// correction that would have made the roll-out the truth (arc length and lateral offset at
/// each step, metres). Windows whose future leaves every candidate are left out.
pub fn correction_rows<'a>(
    windows: impl IntoIterator<Item = &'a RoadWindow>,
    p: &RoadParams,
) -> Vec<([f32; N_FEATURES], [f32; N_OUT])> {
    let mut out = Vec::new();
    for w in windows {
        let Some(cands) = candidates(&w.obs, w.class, p) else { continue };
        let on = |c: &Candidate| -> Option<Vec<(f64, f64)>> {
            let len = c.route.path.length_m();
            let proj: Option<Vec<(f64, f64)>> =
                w.fut.iter().map(|q| c.route.path.project(v2(*q), (c.s - 5.0).max(0.0), len)).collect();
            proj.filter(|v| v.iter().all(|(_, lat)| lat.abs() < MAX_LATERAL_M))
        };
        let best = cands
            .iter()
            .filter_map(|c| on(c).map(|v| (v.iter().map(|(_, l)| l.abs()).sum::<f64>(), c, v)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((_, c, truth)) = best else { continue };
        let ahead = platoon(c.route, w.class, c.s, &w.others);
        let profile = roll_out(c.route, w.class, (c.s, c.lat, c.v), &ahead, Some(w.t_secs), p);
        let x = features(&w.obs, w.class, c, &profile, ahead.first(), Some(w.t_secs));
        let mut y = [0f32; N_OUT];
        for (k, (s, lat)) in truth.iter().enumerate() {
            y[k] = (s - profile.s[k]) as f32;
            y[PRED_STEPS + k] = (lat - profile.lat[k]) as f32;
        }
        out.push((x, y));
    }
    out
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
    /// The validation loss before training (no correction: the fitted road model; fine-tuning:
    /// the starting version's correction).
    pub val_uncorrected_m: f64,
    pub best_epoch: usize,
    pub best_val_m: f64,
    pub epochs: Vec<CorrectionEpoch>,
    /// Fine-tuning: the validation loss per class (vehicle, cyclist) at the start and with the
    /// best epoch; a class that got worse beyond 5 % keeps the start (`best_epoch` 0).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub val_class_start_m: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub val_class_best_m: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub val_class_rows: Vec<usize>,
}

impl CorrectionReport {
    /// Whether a fine-tuning round keeps its starting correction: no epoch beat it on the latest
    /// windows, or a class with at least [`MIN_CLASS_VAL_ROWS`] validation windows is served
    /// worse than at the start by more than the canary's 5 % margin (the canary would roll such
    /// a version back).
    pub fn keeps_start(&self) -> bool {
        let hurts_a_class =
            self.val_class_start_m.iter().zip(&self.val_class_best_m).zip(&self.val_class_rows).any(
                |((b, t), rows)| *rows >= MIN_CLASS_VAL_ROWS && matches!((b, t), (Some(b), Some(t)) if *t > b * 1.05),
            );
        self.best_val_m >= self.val_uncorrected_m || hurts_a_class
    }
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
    progress: impl FnMut(&CorrectionEpoch),
) -> Result<(VarMap, CorrectionReport), ModelError> {
    train_correction_from(None, train, val, cfg, progress)
}

/// [`train_correction`] starting from the weights in `init` (a version's
/// [`CORRECTION_FILE`]) instead of no correction.
pub fn train_correction_from(
    init: Option<&Path>,
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
    zero_last_layer(&varmap)?;
    if let Some(path) = init {
        load_into(&varmap, path)?;
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
        val_class_start_m: Vec::new(),
        val_class_best_m: Vec::new(),
        val_class_rows: Vec::new(),
    };
    Ok((varmap, report))
}

/// Validation windows a class needs before a fine-tuning round may be held back for it.
const MIN_CLASS_VAL_ROWS: usize = 30;

/// Sets the variables of `varmap` (shared: a clone is the same variables) from the weight file
/// at `path`.
fn load_into(varmap: &VarMap, path: &Path) -> Result<(), ModelError> {
    varmap.clone().load(path).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))
}

/// Sets the last layer to zero (no correction).
fn zero_last_layer(varmap: &VarMap) -> Result<(), ModelError> {
    for (name, var) in varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?.iter() {
        if name.starts_with("l3.") {
            var.set(&var.as_tensor().zeros_like().map_err(cerr)?).map_err(cerr)?;
        }
    }
    Ok(())
}

/// The validation loss of each group of rows (none for an empty group).
fn class_losses(net: &[candle_nn::Linear; 3], groups: &[Vec<Row>]) -> Result<Vec<Option<f64>>, ModelError> {
    groups
        .iter()
        .map(|rows| {
            if rows.is_empty() {
                return Ok(None);
            }
            let (x, y) = tensors(rows).map_err(cerr)?;
            let l = loss(net, &x, &y).and_then(|l| l.to_scalar::<f32>()).map_err(cerr)?;
            Ok(Some(f64::from(l)))
        })
        .collect()
}

/// A trained correction's weights, to be written into a version directory.
pub struct TrainedCorrection(VarMap);

impl std::fmt::Debug for TrainedCorrection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrainedCorrection")
    }
}

impl TrainedCorrection {
    /// Writes the weights as `path` (a version's [`CORRECTION_FILE`]).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.0.save(path).map_err(|e| ModelError::Internal(format!("writing {}: {e}", path.display())))
    }
}

/// Fine-tunes the correction of the version in `base_version_dir` (none there: from no
/// correction) on `windows` in time order: the latest fifth validates, the rest trains (less
/// the windows just before the validation ones, which overlap them), for `epochs` epochs at a
/// tenth of the training step. The report's `best_epoch` is 0 when no
/// epoch beat the starting correction on the latest windows; the weights are then the start's.
pub fn fine_tune_correction(
    base_version_dir: &Path,
    windows: &[RoadWindow],
    epochs: usize,
    seed: u64,
    progress: impl FnMut(&CorrectionEpoch),
) -> Result<(TrainedCorrection, CorrectionReport), ModelError> {
    let rows = correction_rows(windows, &RoadParams::default());
    // The latest fifth validates; a track gives a window every 0.4 s and each spans 8 s, so the
    // quarter of that many windows just before it (overlapping it) is left out of training.
    let n_val = rows.len() / 5;
    let split = rows.len() - n_val;
    let (train, val) = (&rows[..split - n_val / 4], &rows[split..]);
    if train.is_empty() || val.is_empty() {
        return Err(ModelError::BadInput(format!(
            "{} of {} windows lie on a lane; too few to train and validate on",
            rows.len(),
            windows.len()
        )));
    }
    let base = base_version_dir.join(CORRECTION_FILE);
    let init = base.is_file().then_some(base.as_path());
    let cfg = CorrectionConfig { epochs: epochs.max(1), learning_rate: 1e-4, seed, ..CorrectionConfig::default() };
    // Each class's validation loss with the base correction, before training.
    let by_class: Vec<Vec<Row>> = (0..2).map(|c| val.iter().filter(|r| r.0[c] == 1.0).copied().collect()).collect();
    let base_net = VarMap::new();
    let base_class_m = {
        let net = mlp(&VarBuilder::from_varmap(&base_net, DType::F32, &Device::Cpu)).map_err(cerr)?;
        match init {
            Some(path) => load_into(&base_net, path)?,
            None => zero_last_layer(&base_net)?,
        }
        class_losses(&net, &by_class)?
    };
    let (varmap, mut report) = train_correction_from(init, train, val, &cfg, progress)?;
    let net = mlp(&VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).map_err(cerr)?;
    report.val_class_start_m = base_class_m;
    report.val_class_best_m = class_losses(&net, &by_class)?;
    report.val_class_rows = by_class.iter().map(Vec::len).collect();
    if report.keeps_start() {
        if let Some(path) = init {
            load_into(&varmap, path)?;
        }
        report.best_epoch = 0;
        report.best_val_m = report.val_uncorrected_m;
    }
    Ok((TrainedCorrection(varmap), report))
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

    #[test]
    fn correction_rows_are_bounded_features_and_the_truth_less_the_roll_out() {
        use crate::trajectory::road::{predict, predict_corrected, sim_windows};
        let p = RoadParams::default();
        let w = sim_windows(4, 60.0);
        let rows = correction_rows(&w, &p);
        // Most windows lie on a route they fit (a few leave every candidate).
        assert!(rows.len() * 10 >= w.len() * 8 && rows.len() <= w.len(), "{} rows of {}", rows.len(), w.len());
        for (x, y) in &rows {
            assert!(x.iter().chain(y).all(|v| v.is_finite()), "{x:?} {y:?}");
            assert!(x.iter().all(|v| v.abs() <= 10.0), "{x:?}");
            assert_eq!(x[0] + x[1], 1.0, "one class");
            assert_eq!(x[2] + x[3] + x[4], 1.0, "one turn");
        }
        // On true histories the fitted roll-out is close: the mean arc-length miss at 4.8 s is
        // a few metres, not tens.
        let mean_last = rows.iter().map(|(_, y)| f64::from(y[PRED_STEPS - 1].abs())).sum::<f64>() / rows.len() as f64;
        assert!(mean_last > 0.0 && mean_last < 6.0, "{mean_last}");
        // No correction: the same futures as the model alone.
        for x in w.iter().take(20) {
            let a = predict(&x.obs, x.class, &x.others, Some(x.t_secs), &p);
            let b = predict_corrected(&x.obs, x.class, &x.others, Some(x.t_secs), &p, None);
            assert_eq!(a, b);
        }
    }

    /// Fine-tuning starts from the base version's correction (its loss before training is the
    /// base's, not the uncorrected model's), keeps the epoch that beat it (these windows and
    /// seed give a deterministic outcome: epoch 1, cyclists within the margin), writes a file
    /// the served model loads, and refuses too few windows.
    #[test]
    fn fine_tuning_starts_from_the_base_correction() {
        use crate::trajectory::road::sim_windows;
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/trajectory_road");
        let w = sim_windows(5, 60.0);
        let (_, from_none) = fine_tune_correction(&shipped.join("1"), &w, 2, 1, |_| {}).unwrap();
        let mut epochs = 0;
        let (tuned, r) = fine_tune_correction(&shipped.join("2"), &w, 2, 1, |_| epochs += 1).unwrap();
        assert_eq!(epochs, 2);
        assert!((from_none.val_uncorrected_m - r.val_uncorrected_m).abs() > 1e-3, "{from_none:?} {r:?}");
        // Per class (vehicle, cyclist): the latest windows of this scene are all cyclists', and
        // the kept epoch serves them within the 5 % margin.
        assert_eq!(r.best_epoch, 1, "{r:?}");
        assert!(r.best_val_m < r.val_uncorrected_m && !r.keeps_start(), "{r:?}");
        assert_eq!(r.val_class_rows, [0, 89], "{r:?}");
        assert_eq!(r.val_class_start_m[0], None, "{r:?}");
        let (start, best) = (r.val_class_start_m[1].unwrap(), r.val_class_best_m[1].unwrap());
        assert!(best <= start * 1.05, "{r:?}");
        let dir = std::env::temp_dir().join(format!("waypoint-road-finetune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        tuned.save(&dir.join(CORRECTION_FILE)).unwrap();
        let net = Correction::load(&dir.join(CORRECTION_FILE)).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let rows = correction_rows(&w, &RoadParams::default());
        assert!(net.correct(&rows[0].0).iter().all(|v| v.is_finite()));
        // The epoch kept moved the weights away from the base's.
        let base = Correction::load(&shipped.join("2").join(CORRECTION_FILE)).unwrap();
        assert_ne!(net.correct(&rows[0].0), base.correct(&rows[0].0));
        let err = fine_tune_correction(&shipped.join("2"), &w[..3], 2, 1, |_| {}).unwrap_err();
        assert!(matches!(err, ModelError::BadInput(_)), "{err:?}");
    }

    /// A round keeps its start when no epoch beat it, or when a class with enough validation
    /// windows got worse beyond 5 %; a class with too few windows does not decide.
    #[test]
    fn a_round_keeps_its_start_when_it_is_no_better_or_hurts_a_class() {
        let r = |best: f64, class_best: f64, rows: usize| CorrectionReport {
            config: CorrectionConfig::default(),
            train_rows: 100,
            val_rows: 100,
            val_uncorrected_m: 0.50,
            best_epoch: 3,
            best_val_m: best,
            epochs: Vec::new(),
            val_class_start_m: vec![Some(0.60), Some(0.20)],
            val_class_best_m: vec![Some(0.40), Some(class_best)],
            val_class_rows: vec![100, rows],
        };
        assert!(!r(0.40, 0.20, 100).keeps_start(), "better overall and per class");
        assert!(r(0.50, 0.20, 100).keeps_start(), "no better than the start");
        assert!(r(0.40, 0.22, MIN_CLASS_VAL_ROWS).keeps_start(), "cyclists 10 % worse");
        assert!(!r(0.40, 0.209, MIN_CLASS_VAL_ROWS).keeps_start(), "4.5 % worse is within the margin");
        assert!(!r(0.40, 0.22, MIN_CLASS_VAL_ROWS - 1).keeps_start(), "too few cyclist windows to judge");
    }
}
