//! Kalman baseline: a constant-velocity Kalman filter run over the observed positions, then
//! extrapolated. Smoother than raw constant velocity when the last step is noisy.

use super::{OBS_STEPS, PRED_STEPS, STEP_SECS};

/// Kalman predictor parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanCv {
    /// Position measurement noise (annotation noise), metres.
    pub meas_sigma_m: f32,
    /// White acceleration noise, m/s².
    pub accel_sigma_mps2: f32,
}

impl Default for KalmanCv {
    fn default() -> Self {
        Self { meas_sigma_m: 0.1, accel_sigma_mps2: 0.8 }
    }
}

impl KalmanCv {
    /// Filters the history and extrapolates its final state.
    pub fn predict(&self, obs: &[[f32; 2]; OBS_STEPS]) -> [[f32; 2]; PRED_STEPS] {
        let dt = STEP_SECS as f32;
        let r = self.meas_sigma_m * self.meas_sigma_m;
        let q = self.accel_sigma_mps2 * self.accel_sigma_mps2;
        let mut out = [[0f32; 2]; PRED_STEPS];
        // The two axes are independent: a 2-state filter (position, velocity) per axis.
        for axis in 0..2 {
            let mut x = [obs[0][axis], (obs[1][axis] - obs[0][axis]) / dt];
            let mut p = [[r, 0.0], [0.0, 2.0 * r / (dt * dt) + 1.0]];
            for z in obs.iter().skip(1).map(|o| o[axis]) {
                // Predict.
                x = [x[0] + dt * x[1], x[1]];
                let (q11, q12, q22) = (q * dt.powi(4) / 4.0, q * dt.powi(3) / 2.0, q * dt * dt);
                p = [
                    [p[0][0] + dt * (p[1][0] + p[0][1]) + dt * dt * p[1][1] + q11, p[0][1] + dt * p[1][1] + q12],
                    [p[1][0] + dt * p[1][1] + q12, p[1][1] + q22],
                ];
                // Update with the position.
                let s = p[0][0] + r;
                let k = [p[0][0] / s, p[1][0] / s];
                let y = z - x[0];
                x = [x[0] + k[0] * y, x[1] + k[1] * y];
                p = [
                    [(1.0 - k[0]) * p[0][0], (1.0 - k[0]) * p[0][1]],
                    [p[1][0] - k[1] * p[0][0], p[1][1] - k[1] * p[0][1]],
                ];
            }
            for (k, o) in out.iter_mut().enumerate() {
                o[axis] = x[0] + (k + 1) as f32 * dt * x[1];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_straight_constant_speed_walk_is_continued_exactly() {
        let obs: [[f32; 2]; 8] = std::array::from_fn(|i| [i as f32 * 0.5, 1.0 - i as f32 * 0.2]);
        let pred = KalmanCv::default().predict(&obs);
        for (k, p) in pred.iter().enumerate() {
            let i = (8 + k) as f32;
            assert!((p[0] - i * 0.5).abs() < 1e-3 && (p[1] - (1.0 - i * 0.2)).abs() < 1e-3, "{k}: {p:?}");
        }
    }
}
