//! Training of the trajectory network ([`super::tcn`]): windows to agent-frame samples,
//! augmentation (mirror, speed, observation noise), the losses of one and of several futures,
//! AdamW with cosine decay, a moving average of the weights, early stopping on the most likely
//! future's validation ADE.

use std::path::Path;

use candle_core::{DType, Device, Tensor as CTensor, D};
use candle_nn::{VarBuilder, VarMap};

use waypoint_sim::rng::SimRng;

use super::data::{SocialWindow, Window};
use super::tcn::{
    cerr, decode_modes, features, neighbour_features, Arch, FastTcn, Tcn, CH, EMB, HIDDEN, LOG_SIGMA_RANGE, MAX_NBRS,
    NBR_POS_SCALE_M, NB_FEAT, OUT, STEPS_IN, VEL_SCALE_M,
};
use super::{OBS_STEPS, PRED_STEPS};
use crate::ModelError;

/// Training settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Stop when validation ADE has not improved for this many epochs.
    pub patience: usize,
    /// Share of the training windows held out for validation.
    pub validation_share: f64,
    /// Weight of the Gaussian negative log-likelihood next to the displacement loss.
    pub nll_weight: f64,
    /// Random speed scaling of augmented samples, e.g. 0.2 for ×[0.8, 1.2].
    pub speed_jitter: f32,
    /// Validation and the saved weights use an exponential moving average of the weights over
    /// the optimiser's steps, reaching back about this many epochs (0: the weights themselves).
    #[serde(default)]
    pub ema_epochs: f64,
    /// Validate on the latest windows (the last `validation_share` of a single group, in the
    /// order given, after a purge of the windows just before them, which overlap them) instead
    /// of a random share: for windows that arrive in time order from overlapping tracks, a random
    /// share validates on near-copies of training windows.
    #[serde(default)]
    pub validate_on_latest: bool,
    /// The starting weights are a candidate too (epoch 0): when no epoch beats them on
    /// validation, training gives them back unchanged (fine-tuning never makes a model worse on
    /// its validation windows).
    #[serde(default)]
    pub keep_start_if_best: bool,
    /// The network trained from scratch (ignored when starting from saved weights).
    #[serde(default)]
    pub arch: Arch,
    /// Training inputs get Gaussian noise of up to this standard deviation on every observed
    /// position (drawn per sample, uniform in [0, this]), metres: annotation noise the model
    /// must not extrapolate.
    #[serde(default)]
    pub obs_noise_m: f32,
    /// Weight of the mode classification (cross-entropy on the closest mode) for several modes.
    #[serde(default = "default_ce_weight")]
    pub ce_weight: f64,
    /// Weight of the most likely mode's displacement error (several modes): the served
    /// prediction answers for every sample, not only those it is closest to.
    #[serde(default)]
    pub top_weight: f64,
}

fn default_ce_weight() -> f64 {
    0.1
}

/// Windows purged between the training windows and the latest ones held out, as a share of
/// those held out (a track yields a window every 0.4 s, and a window spans 8 s: 20 windows of
/// one track overlap; with a dozen tracks, about 240 windows around the boundary share data).
const PURGE_SHARE: f64 = 0.25;

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            epochs: 40,
            batch_size: 256,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            patience: 6,
            validation_share: 0.1,
            nll_weight: 0.05,
            speed_jitter: 0.2,
            ema_epochs: 1.0,
            validate_on_latest: false,
            keep_start_if_best: false,
            arch: Arch::PLAIN,
            obs_noise_m: 0.0,
            ce_weight: default_ce_weight(),
            top_weight: 0.0,
        }
    }
}

/// Per-epoch record of a training run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_ade_m: f64,
    pub val_fde_m: f64,
    /// Validation ADE/FDE of the best of the modes (several modes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_min_ade_fde_m: Option<[f64; 2]>,
}

/// The outcome of training.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainReport {
    pub config: TrainConfig,
    pub train_windows: usize,
    pub val_windows: usize,
    pub best_epoch: usize,
    pub best_val_ade_m: f64,
    pub best_val_fde_m: f64,
    /// The starting weights' validation ADE, when they were a candidate (`keep_start_if_best`);
    /// `best_epoch` 0 means no epoch beat them.
    #[serde(default)]
    pub start_val_ade_m: Option<f64>,
    pub epochs: Vec<EpochRecord>,
    pub seconds: f64,
}

/// A training sample in the agent frame: the network features, the neighbour features and the
/// future.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    f: [f32; 2 * STEPS_IN],
    nb: [f32; MAX_NBRS * NB_FEAT],
    fut: [[f32; 2]; PRED_STEPS],
}

/// Candle-side model with its variables.
pub struct Trainer {
    pub varmap: VarMap,
    pub net: Tcn,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trainer")
    }
}

fn batch_tensors(samples: &[Sample]) -> candle_core::Result<(CTensor, CTensor, CTensor)> {
    let b = samples.len();
    let x: Vec<f32> = samples.iter().flat_map(|s| s.f).collect();
    let nb: Vec<f32> = samples.iter().flat_map(|s| s.nb).collect();
    let y: Vec<f32> = samples.iter().flat_map(|s| s.fut.iter().flatten().copied().collect::<Vec<_>>()).collect();
    Ok((
        CTensor::from_vec(x, (b, 2, STEPS_IN), &Device::Cpu)?,
        CTensor::from_vec(nb, (b, MAX_NBRS, NB_FEAT), &Device::Cpu)?,
        CTensor::from_vec(y, (b, PRED_STEPS, 2), &Device::Cpu)?,
    ))
}

/// A window in the agent frame: features, neighbour features and the future positions.
fn sample(w: &Window, neighbours: &[[f32; 4]]) -> Sample {
    let (frame, f) = features(&w.obs);
    let fut = std::array::from_fn(|k| frame.to_local(w.fut[k]));
    Sample { f, nb: neighbour_features(&frame, neighbours), fut }
}

/// Mirrored (y → −y), speed-scaled copy of an agent-frame sample, with `noise` (the observed
/// positions' offsets in the agent frame, oldest first) added to what the network sees; the
/// future is taken from the noisy last position, as a served prediction would be.
fn augment(s: &Sample, flip: bool, scale: f32, noise: Option<&[[f32; 2]; OBS_STEPS]>) -> Sample {
    let mut out = *s;
    for (i, v) in out.f.iter_mut().enumerate() {
        *v *= scale;
        if flip && i >= STEPS_IN {
            *v = -*v;
        }
    }
    for p in &mut out.fut {
        p[0] *= scale;
        p[1] *= if flip { -scale } else { scale };
    }
    for n in out.nb.chunks_exact_mut(NB_FEAT) {
        for v in &mut n[..4] {
            *v *= scale;
        }
        if flip {
            n[1] = -n[1];
            n[3] = -n[3];
        }
    }
    if let Some(noise) = noise {
        for k in 0..STEPS_IN {
            out.f[k] += (noise[k + 1][0] - noise[k][0]) / VEL_SCALE_M;
            out.f[STEPS_IN + k] += (noise[k + 1][1] - noise[k][1]) / VEL_SCALE_M;
        }
        let last = noise[OBS_STEPS - 1];
        for p in &mut out.fut {
            p[0] -= last[0];
            p[1] -= last[1];
        }
        for n in out.nb.chunks_exact_mut(NB_FEAT).filter(|n| n[4] > 0.0) {
            n[0] -= last[0] / NBR_POS_SCALE_M;
            n[1] -= last[1] / NBR_POS_SCALE_M;
        }
    }
    out
}

/// Every window as a sample with the number of times its group repeats in an epoch (smaller
/// groups repeat, up to ten times), in a seeded random order.
fn shuffled_samples(groups: &[Vec<SocialWindow>], rng: &mut SimRng) -> (Vec<Sample>, Vec<usize>) {
    let largest = groups.iter().map(Vec::len).max().unwrap_or(0);
    let mut all: Vec<_> = Vec::new();
    let mut reps_of: Vec<usize> = Vec::new();
    for g in groups {
        let reps = if g.is_empty() { 0 } else { (largest as f64 / g.len() as f64).round().clamp(1.0, 10.0) as usize };
        for w in g {
            all.push(sample(&w.window, &w.neighbours));
            reps_of.push(reps);
        }
    }
    let mut perm: Vec<usize> = (0..all.len()).collect();
    for i in (1..perm.len()).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    (perm.iter().map(|&i| all[i]).collect(), perm.iter().map(|&i| reps_of[i]).collect())
}

impl Trainer {
    /// A freshly initialised network (seeded).
    pub fn new(seed: u64) -> Result<Self, ModelError> {
        Self::with_arch(seed, Arch::PLAIN)
    }

    /// A freshly initialised network of the given shape (seeded).
    pub fn with_arch(seed: u64, arch: Arch) -> Result<Self, ModelError> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = Tcn::new(vb, arch)?;
        // Candle's CPU initialisation is not seedable: draw every parameter again from our own
        // seeded generator, uniform in ±1/sqrt(fan_in) (PyTorch's default for these layers).
        let mut rng = waypoint_sim::rng::SimRng::new(seed);
        {
            let data = varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            for name in names {
                let var = &data[name];
                let layer = name.split('.').next().unwrap_or("");
                let fan_in = match layer {
                    "c1" => 2 * 3,
                    "c2" => CH * 3,
                    "e1" => NB_FEAT,
                    "e2" => EMB,
                    "f1" => arch.in1(),
                    _ => HIDDEN,
                } as f64;
                let bound = 1.0 / fan_in.sqrt();
                let shape = var.as_tensor().shape().clone();
                let values: Vec<f32> = (0..shape.elem_count()).map(|_| rng.range(-bound, bound) as f32).collect();
                var.set(&CTensor::from_vec(values, shape, &Device::Cpu).map_err(cerr)?).map_err(cerr)?;
            }
        }
        Ok(Self { varmap, net })
    }

    /// Loads weights saved by [`Trainer::save`], of whatever shape they are.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let err = |e: candle_core::Error| ModelError::Load(format!("{}: {e}", path.display()));
        let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(err)?;
        let mut t = Self::with_arch(0, Arch::of_weights(&map)?)?;
        t.varmap.load(path).map_err(err)?;
        Ok(t)
    }

    pub fn arch(&self) -> Arch {
        self.net.arch
    }

    /// Adds seeded uniform noise of `scale` to every weight: a deliberately degraded copy,
    /// for testing that a lifecycle policy notices a worse version.
    pub fn perturb(&mut self, scale: f64, seed: u64) -> Result<(), ModelError> {
        let cerr = |e: candle_core::Error| ModelError::Internal(e.to_string());
        let mut rng = waypoint_sim::rng::SimRng::new(seed);
        let data = self.varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let shape = var.as_tensor().shape().clone();
            let noise: Vec<f32> = (0..shape.elem_count()).map(|_| rng.range(-scale, scale) as f32).collect();
            let noise = CTensor::from_vec(noise, shape, &Device::Cpu).map_err(cerr)?;
            var.set(&(var.as_tensor() + noise).map_err(cerr)?).map_err(cerr)?;
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.varmap.save(path).map_err(|e| ModelError::Internal(format!("cannot save {}: {e}", path.display())))
    }

    /// Loss of a batch. One future: mean displacement error plus weighted Gaussian NLL (means
    /// detached). Several: the same for the mode closest to the truth (winner takes all), plus
    /// the cross-entropy of the mode probabilities against that mode.
    fn loss(&self, x: &CTensor, nb: &CTensor, y: &CTensor, cfg: &TrainConfig) -> candle_core::Result<CTensor> {
        let b = x.dim(0)?;
        let k = self.net.arch.modes.max(1);
        let out = self.net.forward(x, Some(nb))?;
        let corr = out.narrow(1, 0, k * 2 * PRED_STEPS)?.reshape((b, k, PRED_STEPS, 2))?;
        let log_sigma = out.narrow(1, k * 2 * PRED_STEPS, k * 2 * PRED_STEPS)?.reshape((b, k, PRED_STEPS, 2))?;
        let log_sigma = log_sigma.clamp(LOG_SIGMA_RANGE.0, LOG_SIGMA_RANGE.1)?;
        // Constant-velocity extrapolation of the last displacement.
        let last_dx = x.narrow(1, 0, 1)?.narrow(2, STEPS_IN - 1, 1)?.reshape((b, 1, 1, 1))?;
        let last_dy = x.narrow(1, 1, 1)?.narrow(2, STEPS_IN - 1, 1)?.reshape((b, 1, 1, 1))?;
        let v = (CTensor::cat(&[last_dx, last_dy], 3)? * f64::from(VEL_SCALE_M))?;
        let steps = CTensor::arange(1f32, (PRED_STEPS + 1) as f32, &Device::Cpu)?.reshape((1, 1, PRED_STEPS, 1))?;
        let cv = v.broadcast_mul(&steps)?;
        let pred = cv.broadcast_add(&corr)?;
        let diff = pred.broadcast_sub(&y.reshape((b, 1, PRED_STEPS, 2))?)?;
        let dist = (diff.sqr()?.sum(D::Minus1)? + 1e-6)?.sqrt()?; // [B, K, 12]
        let ade = dist.mean(D::Minus1)?; // [B, K]
        let d2 = diff.detach().sqr()?;
        let inv_var = (log_sigma.clone() * -2.0)?.exp()?;
        let nll = (((d2 * inv_var)? * 0.5)? + log_sigma)?.flatten_from(2)?.mean(D::Minus1)?; // [B, K]
        if k == 1 {
            return ade.mean_all()? + (nll.mean_all()? * cfg.nll_weight)?;
        }
        // The closest mode of each sample, as a one-hot mask.
        let best = ade.detach().argmin_keepdim(1)?; // [B, 1]
        let ids = CTensor::arange(0u32, k as u32, &Device::Cpu)?.reshape((1, k))?;
        let onehot = ids.broadcast_eq(&best.to_dtype(DType::U32)?)?.to_dtype(DType::F32)?;
        let wta = (&ade * &onehot)?.sum(1)?.mean_all()?;
        let wta_nll = (nll * &onehot)?.sum(1)?.mean_all()?;
        let logits = out.narrow(1, k * OUT, k)?;
        let log_p = candle_nn::ops::log_softmax(&logits, 1)?;
        let ce = (log_p * &onehot)?.sum(1)?.mean_all()?.neg()?;
        // The mode served as the prediction (the most likely) also answers for every sample.
        let top = logits.detach().argmax_keepdim(1)?;
        let top_hot = ids.broadcast_eq(&top.to_dtype(DType::U32)?)?.to_dtype(DType::F32)?;
        let top_ade = (ade * top_hot)?.sum(1)?.mean_all()?;
        ((wta + (wta_nll * cfg.nll_weight)?)? + (ce * cfg.ce_weight)?)? + (top_ade * cfg.top_weight)?
    }

    /// Mean ADE and FDE of the most likely future over samples, and of the best of the futures
    /// (several modes only).
    fn ade_fde(&self, samples: &[Sample]) -> Result<(f64, f64, Option<[f64; 2]>), ModelError> {
        let fast = FastTcn::from_varmap(&self.varmap)?;
        let arch = fast.arch();
        let (mut ade, mut fde, mut min_ade, mut min_fde) = (0.0, 0.0, 0.0, 0.0);
        for s in samples {
            let out = fast.forward_full(&s.f, &s.nb);
            let modes = decode_modes(arch, &s.f, &out);
            let (a, f) = super::data::ade_fde(&modes[0].pos, &s.fut);
            ade += a;
            fde += f;
            let errs: Vec<(f64, f64)> = modes.iter().map(|m| super::data::ade_fde(&m.pos, &s.fut)).collect();
            min_ade += errs.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
            min_fde += errs.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
        }
        let n = samples.len().max(1) as f64;
        let min = (arch.modes > 1).then(|| [min_ade / n, min_fde / n]);
        Ok((ade / n, fde / n, min))
    }

    /// Trains on windows (seeded split, augmentation, early stopping); keeps the best epoch's
    /// weights. `progress` is called after every epoch.
    pub fn train(
        &mut self,
        windows: &[Window],
        cfg: &TrainConfig,
        progress: impl FnMut(&EpochRecord),
    ) -> Result<TrainReport, ModelError> {
        self.train_groups(&[windows.to_vec()], cfg, progress)
    }

    /// [`Trainer::train_social_groups`] for windows without neighbours.
    pub fn train_groups(
        &mut self,
        groups: &[Vec<Window>],
        cfg: &TrainConfig,
        progress: impl FnMut(&EpochRecord),
    ) -> Result<TrainReport, ModelError> {
        let groups: Vec<Vec<SocialWindow>> = groups
            .iter()
            .map(|g| g.iter().map(|w| SocialWindow { window: *w, neighbours: Vec::new() }).collect())
            .collect();
        self.train_social_groups(&groups, cfg, progress)
    }

    /// Like [`Trainer::train`], with windows grouped by source (a file, a scene). Every epoch
    /// draws the same number of training samples from each group (smaller groups repeat, up to
    /// ten times), so that one large scene does not dominate what the model learns.
    pub fn train_social_groups(
        &mut self,
        groups: &[Vec<SocialWindow>],
        cfg: &TrainConfig,
        mut progress: impl FnMut(&EpochRecord),
    ) -> Result<TrainReport, ModelError> {
        use candle_nn::Optimizer;
        let started = std::time::Instant::now();
        let mut rng = waypoint_sim::rng::SimRng::new(cfg.seed);
        let (all, reps_of, n_val) = if cfg.validate_on_latest && groups.len() == 1 {
            // In the order given: validation is the tail, training the head before the purge.
            let g = &groups[0];
            let n_val = ((g.len() as f64 * cfg.validation_share).round() as usize).min(g.len());
            let purge = ((n_val as f64 * PURGE_SHARE).round() as usize).min(g.len() - n_val);
            let mut train_idx: Vec<usize> = (0..g.len() - n_val - purge).collect();
            for i in (1..train_idx.len()).rev() {
                train_idx.swap(i, rng.below(i + 1));
            }
            let order: Vec<usize> = (g.len() - n_val..g.len()).chain(train_idx).collect();
            (
                order.iter().map(|&i| sample(&g[i].window, &g[i].neighbours)).collect::<Vec<_>>(),
                vec![1; order.len()],
                n_val,
            )
        } else {
            let (all, reps_of) = shuffled_samples(groups, &mut rng);
            let n_val = ((all.len() as f64 * cfg.validation_share).round() as usize)
                .clamp(usize::from(!all.is_empty()), all.len());
            (all, reps_of, n_val)
        };
        let (val, train) = all.split_at(n_val);
        if train.is_empty() {
            return Err(ModelError::BadInput("no training windows".into()));
        }
        let params =
            candle_nn::ParamsAdamW { lr: cfg.learning_rate, weight_decay: cfg.weight_decay, ..Default::default() };
        let mut opt = candle_nn::AdamW::new(self.varmap.all_vars(), params).map_err(cerr)?;
        let mut best = (f64::INFINITY, f64::INFINITY, 0usize, Vec::new());
        let mut start_val_ade_m = None;
        if cfg.keep_start_if_best && !val.is_empty() {
            let (ade, fde, _) = self.ade_fde(val)?;
            start_val_ade_m = Some(ade);
            best = (ade, fde, 0, self.snapshot()?);
        }
        let mut records = Vec::new();
        let mut order: Vec<usize> = (0..train.len()).flat_map(|i| std::iter::repeat_n(i, reps_of[n_val + i])).collect();
        let mut ema: Option<Vec<(String, CTensor)>> = None;
        let steps_per_epoch = order.len().div_ceil(cfg.batch_size.max(1)).max(1) as f64;
        let ema_decay =
            if cfg.ema_epochs > 0.0 { 1.0 - 1.0 / (cfg.ema_epochs * steps_per_epoch).max(1.0) } else { 0.0 };
        for epoch in 1..=cfg.epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            // Cosine learning-rate decay over the planned epochs.
            let lr =
                cfg.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * (epoch - 1) as f64 / cfg.epochs as f64).cos());
            opt.set_learning_rate(lr.max(cfg.learning_rate * 0.02));
            let (total, batches) = self.epoch_steps(&mut opt, &order, train, &mut rng, cfg, &mut ema, ema_decay)?;
            // Validate (and keep) the averaged weights; training goes on from the raw ones.
            let raw = match &ema {
                Some(avg) => {
                    let raw = self.snapshot()?;
                    self.restore(avg)?;
                    Some(raw)
                }
                None => None,
            };
            let (val_ade, val_fde, val_min) =
                if val.is_empty() { (f64::NAN, f64::NAN, None) } else { self.ade_fde(val)? };
            let rec = EpochRecord {
                epoch,
                train_loss: total / batches.max(1) as f64,
                val_ade_m: val_ade,
                val_fde_m: val_fde,
                val_min_ade_fde_m: val_min,
            };
            progress(&rec);
            records.push(rec);
            let score = if val_ade.is_finite() { val_ade } else { total };
            if score < best.0 {
                best = (score, val_fde, epoch, self.snapshot()?);
            } else if epoch - best.2 >= cfg.patience {
                break;
            }
            if let Some(raw) = raw {
                self.restore(&raw)?;
            }
        }
        if !best.3.is_empty() {
            self.restore(&best.3)?;
        }
        Ok(TrainReport {
            config: cfg.clone(),
            train_windows: train.len(),
            val_windows: val.len(),
            best_epoch: best.2,
            best_val_ade_m: best.0,
            best_val_fde_m: best.1,
            start_val_ade_m,
            epochs: records,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// One epoch's optimiser steps over `order` (indices into `train`, each sample augmented
    /// with a random mirror and speed scale), updating the weights' moving average; returns the
    /// summed loss and the number of batches.
    #[allow(clippy::too_many_arguments)]
    fn epoch_steps(
        &self,
        opt: &mut candle_nn::AdamW,
        order: &[usize],
        train: &[Sample],
        rng: &mut SimRng,
        cfg: &TrainConfig,
        ema: &mut Option<Vec<(String, CTensor)>>,
        ema_decay: f64,
    ) -> Result<(f64, usize), ModelError> {
        use candle_nn::Optimizer;
        let mut total = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(cfg.batch_size) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let flip = rng.chance(0.5);
                    let scale = 1.0 + cfg.speed_jitter * (2.0 * rng.uniform() as f32 - 1.0);
                    let noise = (cfg.obs_noise_m > 0.0).then(|| {
                        let sd = cfg.obs_noise_m * rng.uniform() as f32;
                        std::array::from_fn(|_| [sd * rng.normal() as f32, sd * rng.normal() as f32])
                    });
                    augment(&train[i], flip, scale, noise.as_ref())
                })
                .collect();
            let (x, nb, y) = batch_tensors(&batch).map_err(cerr)?;
            let loss = self.loss(&x, &nb, &y, cfg).map_err(cerr)?;
            opt.backward_step(&loss).map_err(cerr)?;
            total += f64::from(loss.to_scalar::<f32>().map_err(cerr)?);
            batches += 1;
            if ema_decay > 0.0 {
                *ema = Some(self.average_into(ema.take(), ema_decay)?);
            }
        }
        Ok((total, batches))
    }

    /// `decay · average + (1 − decay) · weights`, or the weights when there is no average yet.
    fn average_into(
        &self,
        average: Option<Vec<(String, CTensor)>>,
        decay: f64,
    ) -> Result<Vec<(String, CTensor)>, ModelError> {
        let Some(average) = average else { return self.snapshot() };
        let data = self.varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
        average
            .into_iter()
            .map(|(k, a)| {
                let w = data.get(&k).ok_or_else(|| ModelError::Internal(format!("no variable {k}")))?;
                let mixed =
                    ((a * decay).map_err(cerr)? + (w.as_tensor() * (1.0 - decay)).map_err(cerr)?).map_err(cerr)?;
                Ok((k, mixed))
            })
            .collect()
    }

    fn snapshot(&self) -> Result<Vec<(String, CTensor)>, ModelError> {
        let data = self.varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
        data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().copy().map_err(cerr)?))).collect()
    }

    fn restore(&self, snap: &[(String, CTensor)]) -> Result<(), ModelError> {
        let data = self.varmap.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
        for (k, t) in snap {
            if let Some(v) = data.get(k) {
                v.set(t).map_err(cerr)?;
            }
        }
        Ok(())
    }

    /// Candle forward for a batch of observations and, for a social network, their neighbour
    /// features (the reference for [`FastTcn`]).
    pub fn forward_raw(
        &self,
        feats: &[[f32; 2 * STEPS_IN]],
        nbs: Option<&[[f32; MAX_NBRS * NB_FEAT]]>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let x = CTensor::from_vec(
            feats.iter().flatten().copied().collect::<Vec<_>>(),
            (feats.len(), 2, STEPS_IN),
            &Device::Cpu,
        )
        .map_err(cerr)?;
        let nb = nbs
            .map(|n| {
                CTensor::from_vec(
                    n.iter().flatten().copied().collect::<Vec<_>>(),
                    (n.len(), MAX_NBRS, NB_FEAT),
                    &Device::Cpu,
                )
            })
            .transpose()
            .map_err(cerr)?;
        let out = self.net.forward(&x, nb.as_ref()).map_err(cerr)?;
        out.to_vec2::<f32>().map_err(cerr)
    }
}
