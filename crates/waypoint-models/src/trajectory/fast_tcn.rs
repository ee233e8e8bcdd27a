//! The trajectory network's arithmetic in plain loops, for serving: the same function as the
//! candle network of [`super::tcn`], without its per-call overhead.

use std::path::Path;

use candle_core::{DType, Device, Tensor as CTensor};
use candle_nn::VarMap;

use super::tcn::{cerr, decode, features, CH, HIDDEN, IN1, OUT, STEPS_IN};
use super::{OBS_STEPS, PRED_STEPS};
use crate::ModelError;

/// The network's arithmetic in plain loops, for serving.
#[derive(Debug, Clone)]
pub struct FastTcn {
    pub(super) c1_w: Vec<f32>, // [CH, 2, 3]
    pub(super) c1_b: Vec<f32>,
    pub(super) c2_w: Vec<f32>, // [CH, CH, 3]
    pub(super) c2_b: Vec<f32>,
    pub(super) f1_w: Vec<f32>, // [HIDDEN, IN1]
    pub(super) f1_b: Vec<f32>,
    pub(super) f2_w: Vec<f32>, // [OUT, HIDDEN]
    pub(super) f2_b: Vec<f32>,
}

fn get(map: &std::collections::HashMap<String, CTensor>, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let t = map.get(name).ok_or_else(|| ModelError::Load(format!("weights lack {name:?}")))?;
    let v = t.flatten_all().and_then(|t| t.to_dtype(DType::F32)).and_then(|t| t.to_vec1::<f32>()).map_err(cerr)?;
    if v.len() != len {
        return Err(ModelError::Load(format!("{name:?} has {} values, expected {len}", v.len())));
    }
    Ok(v)
}

impl FastTcn {
    fn from_map(map: &std::collections::HashMap<String, CTensor>) -> Result<Self, ModelError> {
        Ok(Self {
            c1_w: get(map, "c1.weight", CH * 2 * 3)?,
            c1_b: get(map, "c1.bias", CH)?,
            c2_w: get(map, "c2.weight", CH * CH * 3)?,
            c2_b: get(map, "c2.bias", CH)?,
            f1_w: get(map, "f1.weight", HIDDEN * IN1)?,
            f1_b: get(map, "f1.bias", HIDDEN)?,
            f2_w: get(map, "f2.weight", OUT * HIDDEN)?,
            f2_b: get(map, "f2.bias", OUT)?,
        })
    }

    /// Reads a safetensors weight file.
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

    /// One observation's features to the 48 raw outputs.
    pub fn forward(&self, x: &[f32; 2 * STEPS_IN]) -> [f32; OUT] {
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
        // conv2: [CH, 5] -> [CH, 3], then the flattened input appended.
        let mut z = [0f32; IN1];
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
        z[CH * (STEPS_IN - 4)..].copy_from_slice(x);
        let mut h = [0f32; HIDDEN];
        for (o, hv) in h.iter_mut().enumerate() {
            let w = &self.f1_w[o * IN1..(o + 1) * IN1];
            *hv = (self.f1_b[o] + w.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>()).max(0.0);
        }
        let mut out = [0f32; OUT];
        for (o, ov) in out.iter_mut().enumerate() {
            let w = &self.f2_w[o * HIDDEN..(o + 1) * HIDDEN];
            *ov = self.f2_b[o] + w.iter().zip(&h).map(|(a, b)| a * b).sum::<f32>();
        }
        out
    }

    /// Many observations at once: the same arithmetic as [`FastTcn::forward`], laid out as
    /// matrix products (im2col for the convolutions) so that large batches run on a blocked,
    /// vectorised GEMM.
    pub fn forward_batch(&self, xs: &[[f32; 2 * STEPS_IN]]) -> Vec<[f32; OUT]> {
        use nalgebra::DMatrix;
        let b = xs.len();
        if b == 0 {
            return Vec::new();
        }
        let (l1, l2) = (STEPS_IN - 2, STEPS_IN - 4);
        // Weights in column-major matrices [out × in].
        let w1 = DMatrix::from_row_slice(CH, 6, &self.c1_w);
        let w2 = DMatrix::from_row_slice(CH, CH * 3, &self.c2_w);
        let wf1 = DMatrix::from_row_slice(HIDDEN, IN1, &self.f1_w);
        let wf2 = DMatrix::from_row_slice(OUT, HIDDEN, &self.f2_w);
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
        let mut z = DMatrix::<f32>::zeros(IN1, b);
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
        }
        let mut h = DMatrix::<f32>::zeros(HIDDEN, b);
        h.gemm(1.0, &wf1, &z, 0.0);
        for mut col in h.column_iter_mut() {
            for (o, v) in col.iter_mut().enumerate() {
                *v = (*v + self.f1_b[o]).max(0.0);
            }
        }
        let mut out = DMatrix::<f32>::zeros(OUT, b);
        out.gemm(1.0, &wf2, &h, 0.0);
        out.column_iter().map(|col| std::array::from_fn(|o| col[o] + self.f2_b[o])).collect()
    }

    /// World-frame prediction and (along-track, cross-track) sigmas for one observation.
    pub fn predict(&self, obs: &[[f32; 2]; OBS_STEPS]) -> ([[f32; 2]; PRED_STEPS], [[f32; 2]; PRED_STEPS]) {
        let (frame, f) = features(obs);
        let out = self.forward(&f);
        let (pos, sig) = decode(&f, &out);
        (std::array::from_fn(|k| frame.to_world(pos[k])), sig)
    }
}
