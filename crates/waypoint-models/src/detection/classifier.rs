//! Object classifier for lidar clusters: a small softmax MLP over geometric features, trained by
//! Waypoint on simulated 64- and 32-beam sweeps (`waypoint train detection`).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor as CTensor};
use candle_nn::{linear, Linear, VarBuilder, VarMap};

use super::boxfit::FittedBox;
use crate::ModelError;

/// Classes, in output order.
pub const CLASSES: [&str; 4] = ["vehicle", "pedestrian", "cyclist", "other"];
/// Number of features (classifier versions 1 and 2 take the first seven, version 3 eight,
/// version 4 all ten).
pub const N_FEATURES: usize = 10;
/// Hidden units of a newly trained classifier (versions 1 and 2 have 32).
const HIDDEN: usize = 64;

/// Features of a cluster: box size, height, point count and density (range-compensated),
/// vertical spread, range, the lidar's ring spacing (radians between adjacent beams: how
/// many points a road user of a given size shows depends on it), and the profile: the spread
/// of the top third's points along and across the box over that of the points below (version
/// 3 and older take the first eight). Geometry only: intensity is
/// left out because reflectance scales differ between sensors (and between the simulator and a
/// real lidar).
pub fn features(b: &FittedBox, points: &[[f32; 4]], ring_spacing_rad: f64) -> [f32; N_FEATURES] {
    let n = points.len().max(1) as f32;
    let range = (b.x_m.hypot(b.y_m) as f32).max(1.0);
    let mean_z = points.iter().map(|p| p[2]).sum::<f32>() / n;
    let sd_z = (points.iter().map(|p| (p[2] - mean_z).powi(2)).sum::<f32>() / n).sqrt();
    let (top_u, top_v) = profile(b, points);
    [
        b.length_m as f32,
        b.width_m as f32,
        b.height_m as f32,
        n.ln(),
        (n * range * range / (b.length_m * b.width_m).max(0.1) as f32).ln(),
        sd_z,
        range.ln(),
        (ring_spacing_rad.max(1e-4) as f32).to_degrees().ln(),
        top_u,
        top_v,
    ]
}

/// How the top third of a cluster compares with the rest: the spread of its points along the
/// box's length and across it, each as a ratio to the spread of the points below (a car's cabin
/// is shorter than its body, a pedestrian's torso wider than the legs, a wall the same all the
/// way up). 1 when either part has fewer than three points.
fn profile(b: &FittedBox, points: &[[f32; 4]]) -> (f32, f32) {
    let (s, c) = b.yaw_rad.sin_cos();
    let split = b.z_m + b.height_m * 2.0 / 3.0;
    let mut parts = [[0f64; 5]; 2]; // n, sum u, sum u², sum v, sum v²
    for p in points {
        let (dx, dy) = (f64::from(p[0]) - b.x_m, f64::from(p[1]) - b.y_m);
        let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
        let k = usize::from(f64::from(p[2]) >= split);
        for (slot, x) in parts[k].iter_mut().zip([1.0, u, u * u, v, v * v]) {
            *slot += x;
        }
    }
    if parts[0][0] < 3.0 || parts[1][0] < 3.0 {
        return (1.0, 1.0);
    }
    let sd = |q: &[f64; 5], i: usize| ((q[i + 1] / q[0] - (q[i] / q[0]).powi(2)).max(0.0)).sqrt();
    let ratio = |i: usize| ((sd(&parts[1], i) + 0.02) / (sd(&parts[0], i) + 0.02)).min(4.0) as f32;
    (ratio(1), ratio(3))
}

fn cerr(e: candle_core::Error) -> ModelError {
    ModelError::Internal(format!("candle: {e}"))
}

/// The trained classifier, evaluated in plain loops.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// Features it takes (the first ones of [`features`]), and hidden units.
    inputs: usize,
    hidden: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    /// Platt scaling of the top probability into a calibrated confidence (`a`, `b`:
    /// σ(a·logit(p) + b)); none for versions trained before it.
    platt: Option<[f32; 2]>,
}

/// Name of the Platt parameters in the weight file.
pub const PLATT_TENSOR: &str = "score.platt";

fn take(map: &std::collections::HashMap<String, CTensor>, k: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let t = map.get(k).ok_or_else(|| ModelError::Load(format!("classifier weights lack {k:?}")))?;
    let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(cerr)?;
    if v.len() != len {
        return Err(ModelError::Load(format!("{k:?}: {} values, expected {len}", v.len())));
    }
    Ok(v)
}

impl Classifier {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        let inputs = map.get("norm.mean").map_or(0, |t| t.elem_count());
        if !(7..=N_FEATURES).contains(&inputs) {
            return Err(ModelError::Load(format!("classifier takes {inputs} features, expected 7 to {N_FEATURES}")));
        }
        let hidden = map.get("l1.bias").map_or(0, |t| t.elem_count());
        if hidden == 0 {
            return Err(ModelError::Load("classifier weights lack \"l1.bias\"".into()));
        }
        Ok(Self {
            inputs,
            hidden,
            mean: take(&map, "norm.mean", inputs)?,
            std: take(&map, "norm.std", inputs)?,
            w1: take(&map, "l1.weight", hidden * inputs)?,
            b1: take(&map, "l1.bias", hidden)?,
            w2: take(&map, "l2.weight", CLASSES.len() * hidden)?,
            b2: take(&map, "l2.bias", CLASSES.len())?,
            platt: match map.get(PLATT_TENSOR) {
                None => None,
                Some(_) => {
                    let v = take(&map, PLATT_TENSOR, 2)?;
                    if !v.iter().all(|x| x.is_finite()) || v[0] <= 0.0 {
                        return Err(ModelError::Load(format!("{PLATT_TENSOR}: {v:?} is not an increasing map")));
                    }
                    Some([v[0], v[1]])
                }
            },
        })
    }

    /// The calibrated confidence of a detection whose class has probability `p` (the
    /// probability itself for a classifier without Platt parameters).
    pub fn calibrated(&self, p: f32) -> f32 {
        match self.platt {
            None => p,
            Some([a, b]) => platt(a, b, p),
        }
    }

    /// Class probabilities (softmax).
    pub fn predict(&self, f: &[f32; N_FEATURES]) -> [f32; 4] {
        let (n, hidden) = (self.inputs, self.hidden);
        let x: Vec<f32> = f[..n].iter().enumerate().map(|(i, v)| (v - self.mean[i]) / self.std[i]).collect();
        let h: Vec<f32> = (0..hidden)
            .map(|o| (self.b1[o] + (0..n).map(|i| self.w1[o * n + i] * x[i]).sum::<f32>()).max(0.0))
            .collect();
        let logits: [f32; 4] =
            std::array::from_fn(|o| self.b2[o] + (0..hidden).map(|i| self.w2[o * hidden + i] * h[i]).sum::<f32>());
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e = logits.map(|l| (l - m).exp());
        let s: f32 = e.iter().sum();
        e.map(|v| v / s)
    }
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

fn platt(a: f32, b: f32, p: f32) -> f32 {
    1.0 / (1.0 + (-(a * logit(p) + b)).exp())
}

/// Fits Platt scaling, σ(a·logit(score) + b), to (score, right) pairs: Newton's method on the
/// log-loss, each step halved until the loss falls, against Platt's smoothed targets
/// ((N₊ + 1) / (N₊ + 2) for a right pair, 1 / (N₋ + 2) for a wrong one), which keep the fit
/// finite when the scores separate right from wrong almost perfectly. None without both right
/// and wrong pairs.
pub fn fit_platt(pairs: &[(f32, bool)]) -> Option<[f32; 2]> {
    let n_right = pairs.iter().filter(|p| p.1).count() as f64;
    let n_wrong = pairs.len() as f64 - n_right;
    if n_right == 0.0 || n_wrong == 0.0 {
        return None;
    }
    let (t_right, t_wrong) = ((n_right + 1.0) / (n_right + 2.0), 1.0 / (n_wrong + 2.0));
    let data: Vec<(f64, f64)> =
        pairs.iter().map(|&(s, right)| (f64::from(logit(s)), if right { t_right } else { t_wrong })).collect();
    // Log-loss, written so that it stays finite for large |a·x + b|.
    let loss = |a: f64, b: f64| -> f64 {
        data.iter()
            .map(|&(x, t)| {
                let z = a * x + b;
                // -t·ln σ(z) - (1 - t)·ln(1 - σ(z)) = ln(1 + e^z) - t·z
                z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut g, mut h) = ([0.0f64; 2], [[0.0f64; 2]; 2]);
        for &(x, t) in &data {
            let q = 1.0 / (1.0 + (-(a * x + b)).exp());
            let r = q - t;
            let w = (q * (1.0 - q)).max(1e-12);
            g[0] += r * x;
            g[1] += r;
            h[0][0] += w * x * x;
            h[0][1] += w * x;
            h[1][1] += w;
        }
        // A little ridge keeps the step finite when the scores hardly vary.
        let (h00, h01, h11) = (h[0][0] + 1e-6, h[0][1], h[1][1] + 1e-6);
        let det = h00 * h11 - h01 * h01;
        let (da, db) = ((h11 * g[0] - h01 * g[1]) / det, (h00 * g[1] - h01 * g[0]) / det);
        let mut step = 1.0;
        let mut moved = false;
        while step > 1e-10 {
            let next = loss(a - step * da, b - step * db);
            if next < current {
                (a, b, current) = (a - step * da, b - step * db, next);
                moved = true;
                break;
            }
            step /= 2.0;
        }
        if !moved || (step * (da.abs() + db.abs())) < 1e-9 {
            break;
        }
    }
    (a.is_finite() && b.is_finite() && a > 0.0).then_some([a as f32, b as f32])
}

/// Adds Platt parameters to a weight file.
pub fn save_platt(path: &Path, ab: [f32; 2]) -> Result<(), ModelError> {
    let mut map = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
    map.insert(PLATT_TENSOR.into(), CTensor::from_vec(ab.to_vec(), 2, &Device::Cpu).map_err(cerr)?);
    candle_core::safetensors::save(&map, path)
        .map_err(|e| ModelError::Internal(format!("cannot save {}: {e}", path.display())))
}

/// Training report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassifierReport {
    pub samples: usize,
    pub per_class: [usize; 4],
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    /// Validation confusion matrix, rows = truth, columns = prediction.
    pub confusion: [[usize; 4]; 4],
}

/// Trains on (features, class) samples; writes the weights (with normalisation) to `out`.
pub fn train(
    samples: &[([f32; N_FEATURES], usize)],
    seed: u64,
    epochs: usize,
    out: &Path,
) -> Result<ClassifierReport, ModelError> {
    use candle_nn::Optimizer;
    if samples.len() < 20 {
        return Err(ModelError::BadInput("too few samples".into()));
    }
    let mut rng = waypoint_sim::rng::SimRng::new(seed);
    let mut idx: Vec<usize> = (0..samples.len()).collect();
    for i in (1..idx.len()).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    let n_val = samples.len() / 5;
    let (val, tr) = idx.split_at(n_val);
    let mut mean = [0f32; N_FEATURES];
    let mut std = [0f32; N_FEATURES];
    for &i in tr {
        for (m, v) in mean.iter_mut().zip(&samples[i].0) {
            *m += v / tr.len() as f32;
        }
    }
    for &i in tr {
        for k in 0..N_FEATURES {
            std[k] += (samples[i].0[k] - mean[k]).powi(2) / tr.len() as f32;
        }
    }
    let std = std.map(|v| v.sqrt().max(1e-3));
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let l1: Linear = linear(N_FEATURES, HIDDEN, vb.pp("l1")).map_err(cerr)?;
    let l2: Linear = linear(HIDDEN, CLASSES.len(), vb.pp("l2")).map_err(cerr)?;
    {
        // Seeded initialisation (candle's CPU initialisation cannot be seeded).
        let data = varmap.data().lock().map_err(|_| ModelError::Internal("poisoned".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for n in names {
            let var = &data[n];
            let fan_in = if n.starts_with("l1") { N_FEATURES } else { HIDDEN } as f64;
            let shape = var.as_tensor().shape().clone();
            let v: Vec<f32> =
                (0..shape.elem_count()).map(|_| rng.range(-1.0, 1.0) as f32 / fan_in.sqrt() as f32).collect();
            var.set(&CTensor::from_vec(v, shape, &Device::Cpu).map_err(cerr)?).map_err(cerr)?;
        }
    }
    // Class weights: inverse frequency, so rare classes count.
    let mut counts = [0usize; 4];
    for &i in tr {
        counts[samples[i].1] += 1;
    }
    let weights: Vec<f32> = counts.iter().map(|c| tr.len() as f32 / (4.0 * (*c).max(1) as f32)).collect();
    let norm = |i: usize| -> Vec<f32> { (0..N_FEATURES).map(|k| (samples[i].0[k] - mean[k]) / std[k]).collect() };
    let x_tr: Vec<f32> = tr.iter().flat_map(|&i| norm(i)).collect();
    let x_tr = CTensor::from_vec(x_tr, (tr.len(), N_FEATURES), &Device::Cpu).map_err(cerr)?;
    let y_tr: Vec<u32> = tr.iter().map(|&i| samples[i].1 as u32).collect();
    let w_tr: Vec<f32> = tr.iter().map(|&i| weights[samples[i].1]).collect();
    let y_tr = CTensor::from_vec(y_tr, tr.len(), &Device::Cpu).map_err(cerr)?;
    let w_tr = CTensor::from_vec(w_tr, tr.len(), &Device::Cpu).map_err(cerr)?;
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW { lr: 0.01, weight_decay: 1e-4, ..Default::default() },
    )
    .map_err(cerr)?;
    for _ in 0..epochs {
        let logits = l2.forward(&l1.forward(&x_tr).map_err(cerr)?.relu().map_err(cerr)?).map_err(cerr)?;
        let logp = candle_nn::ops::log_softmax(&logits, 1).map_err(cerr)?;
        let picked = logp.gather(&y_tr.unsqueeze(1).map_err(cerr)?, 1).map_err(cerr)?.squeeze(1).map_err(cerr)?;
        let loss = (picked * &w_tr).map_err(cerr)?.mean_all().map_err(cerr)?.neg().map_err(cerr)?;
        opt.backward_step(&loss).map_err(cerr)?;
    }
    // Save weights and normalisation together.
    let mut tensors: std::collections::HashMap<String, CTensor> = std::collections::HashMap::new();
    {
        let data = varmap.data().lock().map_err(|_| ModelError::Internal("poisoned".into()))?;
        for (k, v) in data.iter() {
            tensors.insert(k.clone(), v.as_tensor().clone());
        }
    }
    tensors.insert("norm.mean".into(), CTensor::from_vec(mean.to_vec(), N_FEATURES, &Device::Cpu).map_err(cerr)?);
    tensors.insert("norm.std".into(), CTensor::from_vec(std.to_vec(), N_FEATURES, &Device::Cpu).map_err(cerr)?);
    candle_core::safetensors::save(&tensors, out)
        .map_err(|e| ModelError::Internal(format!("cannot save {}: {e}", out.display())))?;
    let clf = Classifier::load(out)?;
    let accuracy = |set: &[usize], confusion: &mut [[usize; 4]; 4]| {
        let mut ok = 0;
        for &i in set {
            let p = clf.predict(&samples[i].0);
            let c = (0..4).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(3);
            confusion[samples[i].1][c] += 1;
            ok += usize::from(c == samples[i].1);
        }
        ok as f64 / set.len().max(1) as f64
    };
    let mut scratch = [[0; 4]; 4];
    let mut confusion = [[0; 4]; 4];
    let train_accuracy = accuracy(tr, &mut scratch);
    let val_accuracy = accuracy(val, &mut confusion);
    let mut per_class = [0; 4];
    for s in samples {
        per_class[s.1] += 1;
    }
    Ok(ClassifierReport { samples: samples.len(), per_class, train_accuracy, val_accuracy, confusion })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on the flank (y = 0.9) of a box from x0 to x1, heights z0 to z1, 10 cm apart.
    fn flank(x0: f32, x1: f32, z0: f32, z1: f32) -> Vec<[f32; 4]> {
        let mut out = Vec::new();
        let (mut x, mut z) = (x0, z0);
        while x <= x1 {
            while z <= z1 {
                out.push([x, 0.9, z, 0.5]);
                z += 0.1;
            }
            z = z0;
            x += 0.1;
        }
        out
    }

    #[test]
    fn platt_scaling_recovers_a_known_map_and_keeps_the_order() {
        // Scores whose true chance of being right is σ(0.5·logit(s) - 1): over-confident.
        let mut rng = waypoint_sim::rng::SimRng::new(7);
        let pairs: Vec<(f32, bool)> = (0..20_000)
            .map(|_| {
                let s = rng.range(0.3, 0.999) as f32;
                (s, (rng.range(0.0, 1.0) as f32) < platt(0.5, -1.0, s))
            })
            .collect();
        let [a, b] = fit_platt(&pairs).expect("a fit");
        assert!((a - 0.5).abs() < 0.05 && (b + 1.0).abs() < 0.1, "a {a}, b {b}");
        assert!(platt(a, b, 0.6) < platt(a, b, 0.9) && platt(a, b, 0.9) < 0.9);
        assert_eq!(fit_platt(&[(0.9, true), (0.8, true)]), None, "no wrong answers, nothing to fit");
    }

    #[test]
    fn platt_scaling_stays_finite_when_the_scores_all_but_separate() {
        // Most scores saturate at 1 and are right; the few wrong ones there cannot be told
        // apart, the rest are spread below. Plain Newton steps run off to infinity here.
        let mut rng = waypoint_sim::rng::SimRng::new(11);
        let mut pairs: Vec<(f32, bool)> = vec![(1.0, true); 4000];
        pairs.extend(std::iter::repeat_n((1.0, false), 30));
        pairs.extend((0..970).map(|_| (rng.range(0.3, 0.9) as f32, rng.range(0.0, 1.0) < 0.3)));
        let [a, b] = fit_platt(&pairs).expect("a fit");
        assert!(a.is_finite() && b.is_finite() && a < 50.0, "a {a}, b {b}");
        let top = platt(a, b, 1.0);
        assert!(top > 0.95 && top < 1.0, "score 1 maps to {top}");
        assert!(platt(a, b, 0.6) < 0.6);
    }

    #[test]
    fn a_cars_profile_narrows_at_the_top_and_a_walls_does_not() {
        let b = FittedBox { x_m: 0.0, y_m: 0.0, z_m: 0.0, length_m: 4.5, width_m: 1.8, height_m: 1.5, yaw_rad: 0.0 };
        // A car's side: the body along its whole length up to 0.9 m, the cabin over the middle
        // 2.5 m above it.
        let mut car = flank(-2.25, 2.25, 0.0, 0.9);
        car.extend(flank(-1.35, 1.15, 1.0, 1.5));
        let (car_u, _) = profile(&b, &car);
        // A wall segment of the same size: the same length at every height.
        let (wall_u, _) = profile(&b, &flank(-2.25, 2.25, 0.0, 1.5));
        assert!(car_u < 0.7 && (wall_u - 1.0).abs() < 0.1, "car {car_u}, wall {wall_u}");
        // Too few points above or below: no evidence either way.
        assert_eq!(profile(&b, &flank(0.0, 0.1, 0.0, 0.3)), (1.0, 1.0));
        assert_eq!(features(&b, &car, 0.0075)[8], car_u);
    }
}
