//! The trajectory network's arithmetic in plain loops, for serving: the same function as the
//! candle network of [`super::tcn`], without its per-call overhead.

use std::path::Path;

use candle_core::{DType, Device, Tensor as CTensor};
use candle_nn::VarMap;

use super::tcn::{
    cerr, decode_modes, features, neighbour_features, Arch, Mode, CH, EMB, HIDDEN, IN1, MAX_NBRS, NB_FEAT, STEPS_IN,
};
use super::{OBS_STEPS, PRED_STEPS};
use crate::ModelError;

/// Named weight tensors, as a safetensors file or a training run's variables hold them.
pub(super) type WeightMap = std::collections::HashMap<String, CTensor>;

/// The tensors of a safetensors weight file.
pub(super) fn load_weights(path: &Path) -> Result<WeightMap, ModelError> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))
}

/// The current values of a training run's variables.
pub(super) fn varmap_weights(vm: &VarMap) -> Result<WeightMap, ModelError> {
    let data = vm.data().lock().map_err(|_| ModelError::Internal("poisoned varmap".into()))?;
    Ok(data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect())
}

/// The network's arithmetic in plain loops, for serving.
#[derive(Debug, Clone)]
pub struct FastTcn {
    pub(super) arch: Arch,
    pub(super) c1_w: Vec<f32>, // [CH, 2, 3]
    pub(super) c1_b: Vec<f32>,
    pub(super) c2_w: Vec<f32>, // [CH, CH, 3]
    pub(super) c2_b: Vec<f32>,
    /// The neighbour embedding, empty for a network that does not read neighbours.
    pub(super) e1_w: Vec<f32>, // [EMB, NB_FEAT]
    pub(super) e1_b: Vec<f32>,
    pub(super) e2_w: Vec<f32>, // [EMB, EMB]
    pub(super) e2_b: Vec<f32>,
    pub(super) f1_w: Vec<f32>, // [HIDDEN, arch.in1()]
    pub(super) f1_b: Vec<f32>,
    pub(super) f2_w: Vec<f32>, // [arch.out(), HIDDEN]
    pub(super) f2_b: Vec<f32>,
}

pub(super) fn get(map: &WeightMap, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let t = map.get(name).ok_or_else(|| ModelError::Load(format!("weights lack {name:?}")))?;
    let v = t.flatten_all().and_then(|t| t.to_dtype(DType::F32)).and_then(|t| t.to_vec1::<f32>()).map_err(cerr)?;
    if v.len() != len {
        return Err(ModelError::Load(format!("{name:?} has {} values, expected {len}", v.len())));
    }
    Ok(v)
}

/// Dot product in eight independent lanes (which the compiler turns into vector instructions;
/// a single running sum must be added in order and stays scalar).
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

impl FastTcn {
    fn from_map(map: &WeightMap) -> Result<Self, ModelError> {
        let arch = Arch::of_weights(map)?;
        let (in1, out) = (arch.in1(), arch.out());
        let opt = |name: &str, len: usize| if arch.social { get(map, name, len) } else { Ok(Vec::new()) };
        Ok(Self {
            arch,
            e1_w: opt("e1.weight", EMB * NB_FEAT)?,
            e1_b: opt("e1.bias", EMB)?,
            e2_w: opt("e2.weight", EMB * EMB)?,
            e2_b: opt("e2.bias", EMB)?,
            c1_w: get(map, "c1.weight", CH * 2 * 3)?,
            c1_b: get(map, "c1.bias", CH)?,
            c2_w: get(map, "c2.weight", CH * CH * 3)?,
            c2_b: get(map, "c2.bias", CH)?,
            f1_w: get(map, "f1.weight", HIDDEN * in1)?,
            f1_b: get(map, "f1.bias", HIDDEN)?,
            f2_w: get(map, "f2.weight", out * HIDDEN)?,
            f2_b: get(map, "f2.bias", out)?,
        })
    }

    /// Reads a safetensors weight file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_map(&load_weights(path)?)
    }

    pub fn from_varmap(vm: &VarMap) -> Result<Self, ModelError> {
        Self::from_map(&varmap_weights(vm)?)
    }

    /// The network's shape.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// One observation's features to the raw outputs, without neighbours.
    pub fn forward(&self, x: &[f32; 2 * STEPS_IN]) -> Vec<f32> {
        self.forward_full(x, &[0.0; MAX_NBRS * NB_FEAT])
    }

    /// The pooled neighbour embedding of one observation's neighbour features (the maximum over
    /// the present neighbours of each one's embedding; zeros when none).
    fn social(&self, nb: &[f32]) -> [f32; EMB] {
        let mut pooled = [0f32; EMB];
        for n in nb.chunks_exact(NB_FEAT).filter(|n| n[NB_FEAT - 1] > 0.0) {
            let mut h = [0f32; EMB];
            for (o, hv) in h.iter_mut().enumerate() {
                let w = &self.e1_w[o * NB_FEAT..(o + 1) * NB_FEAT];
                *hv = (self.e1_b[o] + dot(w, n)).max(0.0);
            }
            for (o, pv) in pooled.iter_mut().enumerate() {
                let w = &self.e2_w[o * EMB..(o + 1) * EMB];
                let e = (self.e2_b[o] + dot(w, &h)).max(0.0);
                *pv = pv.max(e * n[NB_FEAT - 1]);
            }
        }
        pooled
    }

    /// One observation's features and neighbour features to the raw outputs.
    pub fn forward_full(&self, x: &[f32; 2 * STEPS_IN], nb: &[f32]) -> Vec<f32> {
        // conv1: [2, 7] -> [CH, 5]
        let mut h1 = [0f32; CH * (STEPS_IN - 2)];
        for o in 0..CH {
            for t in 0..STEPS_IN - 2 {
                let mut acc = self.c1_b[o];
                for i in 0..2 {
                    for k in 0..3 {
                        acc += self.c1_w[(o * 2 + i) * 3 + k] * x[i * STEPS_IN + t + k];
                    }
                }
                h1[o * (STEPS_IN - 2) + t] = acc.max(0.0);
            }
        }
        // conv2: [CH, 5] -> [CH, 3], then the flattened input and the social vector appended.
        let in1 = self.arch.in1();
        let mut z = [0f32; IN1 + EMB];
        for o in 0..CH {
            for t in 0..STEPS_IN - 4 {
                let mut acc = self.c2_b[o];
                for i in 0..CH {
                    let w = &self.c2_w[(o * CH + i) * 3..(o * CH + i) * 3 + 3];
                    let h = &h1[i * (STEPS_IN - 2) + t..i * (STEPS_IN - 2) + t + 3];
                    acc += w[0] * h[0] + w[1] * h[1] + w[2] * h[2];
                }
                z[o * (STEPS_IN - 4) + t] = acc.max(0.0);
            }
        }
        z[CH * (STEPS_IN - 4)..IN1].copy_from_slice(x);
        if self.arch.social {
            z[IN1..].copy_from_slice(&self.social(nb));
        }
        let z = &z[..in1];
        let mut h = [0f32; HIDDEN];
        for (o, hv) in h.iter_mut().enumerate() {
            let w = &self.f1_w[o * in1..(o + 1) * in1];
            *hv = (self.f1_b[o] + dot(w, z)).max(0.0);
        }
        (0..self.arch.out())
            .map(|o| {
                let w = &self.f2_w[o * HIDDEN..(o + 1) * HIDDEN];
                self.f2_b[o] + dot(w, &h)
            })
            .collect()
    }

    /// Many observations at once: the same arithmetic as [`FastTcn::forward`], laid out as
    /// matrix products (im2col for the convolutions) so that large batches run on a blocked,
    /// vectorised GEMM.
    pub fn forward_batch(&self, xs: &[[f32; 2 * STEPS_IN]]) -> Vec<Vec<f32>> {
        self.forward_batch_full(xs, &[])
    }

    /// [`FastTcn::forward_batch`] with each observation's neighbour features (`nbs` empty:
    /// none).
    pub fn forward_batch_full(&self, xs: &[[f32; 2 * STEPS_IN]], nbs: &[[f32; MAX_NBRS * NB_FEAT]]) -> Vec<Vec<f32>> {
        use nalgebra::DMatrix;
        let (in1, out_n) = (self.arch.in1(), self.arch.out());
        let b = xs.len();
        if b == 0 {
            return Vec::new();
        }
        let (l1, l2) = (STEPS_IN - 2, STEPS_IN - 4);
        // Weights in column-major matrices [out × in].
        let w1 = DMatrix::from_row_slice(CH, 6, &self.c1_w);
        let w2 = DMatrix::from_row_slice(CH, CH * 3, &self.c2_w);
        let wf1 = DMatrix::from_row_slice(HIDDEN, in1, &self.f1_w);
        let wf2 = DMatrix::from_row_slice(out_n, HIDDEN, &self.f2_w);
        // conv1 patches: column (s, t) = [x[i][t + k] for i, k].
        let mut p1 = DMatrix::<f32>::zeros(6, b * l1);
        for (s, x) in xs.iter().enumerate() {
            for t in 0..l1 {
                let mut col = p1.column_mut(s * l1 + t);
                for i in 0..2 {
                    for k in 0..3 {
                        col[i * 3 + k] = x[i * STEPS_IN + t + k];
                    }
                }
            }
        }
        let mut h1 = DMatrix::<f32>::zeros(CH, b * l1);
        h1.gemm(1.0, &w1, &p1, 0.0);
        for mut col in h1.column_iter_mut() {
            for (o, v) in col.iter_mut().enumerate() {
                *v = (*v + self.c1_b[o]).max(0.0);
            }
        }
        let mut p2 = DMatrix::<f32>::zeros(CH * 3, b * l2);
        for s in 0..b {
            for t in 0..l2 {
                let mut col = p2.column_mut(s * l2 + t);
                for i in 0..CH {
                    for k in 0..3 {
                        col[i * 3 + k] = h1[(i, s * l1 + t + k)];
                    }
                }
            }
        }
        let mut h2 = DMatrix::<f32>::zeros(CH, b * l2);
        h2.gemm(1.0, &w2, &p2, 0.0);
        let mut z = DMatrix::<f32>::zeros(in1, b);
        for (s, x) in xs.iter().enumerate() {
            let mut col = z.column_mut(s);
            for o in 0..CH {
                for t in 0..l2 {
                    col[o * l2 + t] = (h2[(o, s * l2 + t)] + self.c2_b[o]).max(0.0);
                }
            }
            for (j, v) in x.iter().enumerate() {
                col[CH * l2 + j] = *v;
            }
            if self.arch.social {
                if let Some(nb) = nbs.get(s) {
                    for (j, v) in self.social(nb).iter().enumerate() {
                        col[IN1 + j] = *v;
                    }
                }
            }
        }
        let mut h = DMatrix::<f32>::zeros(HIDDEN, b);
        h.gemm(1.0, &wf1, &z, 0.0);
        for mut col in h.column_iter_mut() {
            for (o, v) in col.iter_mut().enumerate() {
                *v = (*v + self.f1_b[o]).max(0.0);
            }
        }
        let mut out = DMatrix::<f32>::zeros(out_n, b);
        out.gemm(1.0, &wf2, &h, 0.0);
        out.column_iter().map(|col| col.iter().zip(&self.f2_b).map(|(v, b)| v + b).collect()).collect()
    }

    /// World-frame prediction (the most likely future) and (along-track, cross-track) sigmas
    /// for one observation.
    pub fn predict(&self, obs: &[[f32; 2]; OBS_STEPS]) -> ([[f32; 2]; PRED_STEPS], [[f32; 2]; PRED_STEPS]) {
        let m = self.predict_modes(obs, &[]).swap_remove(0);
        (m.pos, m.sigma)
    }

    /// Every future for one observation and its neighbours (`[x_prev, y_prev, x_last, y_last]`
    /// in the world), most likely first, positions in the world frame.
    pub fn predict_modes(&self, obs: &[[f32; 2]; OBS_STEPS], neighbours: &[[f32; 4]]) -> Vec<Mode> {
        let (frame, f) = features(obs);
        let out = self.forward_full(&f, &neighbour_features(&frame, neighbours));
        let mut modes = decode_modes(self.arch, &f, &out);
        for m in &mut modes {
            m.pos = std::array::from_fn(|k| frame.to_world(m.pos[k]));
        }
        modes
    }
}
