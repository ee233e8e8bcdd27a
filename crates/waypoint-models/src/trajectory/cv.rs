//! Constant-velocity baseline: the last observed displacement, repeated.

use super::PRED_STEPS;
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// Predicts `p[t] = p[last] + k · (p[last] − p[last − 1])`.
#[derive(Debug, Default, Clone)]
pub struct ConstantVelocity;

impl ConstantVelocity {
    /// Predicts `PRED_STEPS` positions for one history of `OBS_STEPS` (x, y) pairs.
    pub fn predict(history: &[[f32; 2]]) -> [[f32; 2]; PRED_STEPS] {
        let n = history.len();
        let last = history.last().copied().unwrap_or([0.0, 0.0]);
        let prev = if n >= 2 { history[n - 2] } else { last };
        let v = [last[0] - prev[0], last[1] - prev[1]];
        std::array::from_fn(|k| {
            let s = (k + 1) as f32;
            [last[0] + s * v[0], last[1] + s * v[1]]
        })
    }
}

impl Model for ConstantVelocity {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let history = super::history_rows(inputs, false)?;
        let rows = history.len();
        let mut out = Vec::with_capacity(rows * PRED_STEPS * 2);
        for steps in &history {
            out.extend(Self::predict(steps).iter().flatten());
        }
        Ok(vec![Tensor::new("trajectory", vec![rows, PRED_STEPS, 2], TensorData::F32(out))?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolates_the_last_step() {
        let hist: Vec<[f32; 2]> = (0..8).map(|i| [i as f32 * 0.5, 1.0]).collect();
        let p = ConstantVelocity::predict(&hist);
        assert_eq!(p[0], [4.0, 1.0]);
        assert_eq!(p[11], [9.5, 1.0]);
        let flat: Vec<f32> = hist.iter().flatten().copied().collect();
        let t = Tensor::new("history", vec![1, 8, 2], TensorData::F32(flat)).unwrap();
        let out = ConstantVelocity.infer(&[t]).unwrap();
        assert_eq!(out[0].shape, vec![1, 12, 2]);
        assert_eq!(out[0].as_f32().unwrap()[22], 9.5);
    }
}
