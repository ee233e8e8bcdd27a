//! Kalman baseline: a constant-velocity Kalman filter run over the observed positions, then
//! extrapolated. Smoother than raw constant velocity when the last step is noisy. The same
//! filter, run forwards and then backwards, smooths a history declared noisy ([`KalmanCv::smooth`]).

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

type M = [[f64; 2]; 2];

/// Where the filter starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// At the first position with the first step's velocity (the predictor's start).
    FirstStep,
    /// At the first position with a velocity not yet known (one sigma 15 m/s): every position
    /// is used once (the smoother's start).
    UnknownVelocity,
}

/// One axis filtered forwards: the state (position, velocity) and covariance after each step's
/// update, and the prediction into each step (index 0 of those unused).
struct Pass {
    xf: [[f64; 2]; OBS_STEPS],
    pf: [M; OBS_STEPS],
    xp: [[f64; 2]; OBS_STEPS],
    pp: [M; OBS_STEPS],
}

impl KalmanCv {
    /// The filter over one axis of the history (the two axes are independent).
    fn forward(&self, obs: &[[f32; 2]; OBS_STEPS], axis: usize, start: Start) -> Pass {
        let dt = STEP_SECS;
        let r = f64::from(self.meas_sigma_m).powi(2);
        let q = f64::from(self.accel_sigma_mps2).powi(2);
        let (q11, q12, q22) = (q * dt.powi(4) / 4.0, q * dt.powi(3) / 2.0, q * dt * dt);
        let z = |k: usize| f64::from(obs[k][axis]);
        let mut pass = Pass {
            xf: [[0.0; 2]; OBS_STEPS],
            pf: [[[0.0; 2]; 2]; OBS_STEPS],
            xp: [[0.0; 2]; OBS_STEPS],
            pp: [[[0.0; 2]; 2]; OBS_STEPS],
        };
        (pass.xf[0], pass.pf[0]) = match start {
            Start::FirstStep => ([z(0), (z(1) - z(0)) / dt], [[r, 0.0], [0.0, 2.0 * r / (dt * dt) + 1.0]]),
            Start::UnknownVelocity => ([z(0), 0.0], [[r, 0.0], [0.0, 225.0]]),
        };
        for k in 1..OBS_STEPS {
            let (x, p) = (pass.xf[k - 1], pass.pf[k - 1]);
            // Predict.
            pass.xp[k] = [x[0] + dt * x[1], x[1]];
            pass.pp[k] = [
                [p[0][0] + dt * (p[1][0] + p[0][1]) + dt * dt * p[1][1] + q11, p[0][1] + dt * p[1][1] + q12],
                [p[1][0] + dt * p[1][1] + q12, p[1][1] + q22],
            ];
            // Update with the position.
            let p = pass.pp[k];
            let s = p[0][0] + r;
            let g = [p[0][0] / s, p[1][0] / s];
            let y = z(k) - pass.xp[k][0];
            pass.xf[k] = [pass.xp[k][0] + g[0] * y, pass.xp[k][1] + g[1] * y];
            pass.pf[k] = [
                [(1.0 - g[0]) * p[0][0], (1.0 - g[0]) * p[0][1]],
                [p[1][0] - g[1] * p[0][0], p[1][1] - g[1] * p[0][1]],
            ];
        }
        pass
    }

    /// Filters the history and extrapolates its final state.
    pub fn predict(&self, obs: &[[f32; 2]; OBS_STEPS]) -> [[f32; 2]; PRED_STEPS] {
        let mut out = [[0f32; 2]; PRED_STEPS];
        for axis in 0..2 {
            let x = self.forward(obs, axis, Start::FirstStep).xf[OBS_STEPS - 1];
            for (k, o) in out.iter_mut().enumerate() {
                o[axis] = (x[0] + (k + 1) as f64 * STEP_SECS * x[1]) as f32;
            }
        }
        out
    }

    /// The history's positions smoothed (Rauch–Tung–Striebel: the filter forwards, then
    /// backwards).
    pub fn smooth(&self, obs: &[[f32; 2]; OBS_STEPS]) -> [[f32; 2]; OBS_STEPS] {
        let (x, y) = (self.smooth_axis(obs, 0), self.smooth_axis(obs, 1));
        std::array::from_fn(|k| [x[k], y[k]])
    }

    fn smooth_axis(&self, obs: &[[f32; 2]; OBS_STEPS], axis: usize) -> [f32; OBS_STEPS] {
        let dt = STEP_SECS;
        let Pass { xf, pf, xp, pp } = self.forward(obs, axis, Start::UnknownVelocity);
        let mut out = [0f32; OBS_STEPS];
        // Backwards: x_s(k) = x_f(k) + C (x_s(k+1) − x_p(k+1)), C = P_f(k) Fᵀ P_p(k+1)⁻¹.
        let mut xs = xf[OBS_STEPS - 1];
        out[OBS_STEPS - 1] = xs[0] as f32;
        for k in (0..OBS_STEPS - 1).rev() {
            let p = pf[k];
            // P_f Fᵀ with F = [[1, dt], [0, 1]].
            let pft = [[p[0][0] + dt * p[0][1], p[0][1]], [p[1][0] + dt * p[1][1], p[1][1]]];
            let n = pp[k + 1];
            let det = n[0][0] * n[1][1] - n[0][1] * n[1][0];
            if det.abs() < 1e-18 {
                xs = xf[k];
            } else {
                let inv = [[n[1][1] / det, -n[0][1] / det], [-n[1][0] / det, n[0][0] / det]];
                let c = [
                    [pft[0][0] * inv[0][0] + pft[0][1] * inv[1][0], pft[0][0] * inv[0][1] + pft[0][1] * inv[1][1]],
                    [pft[1][0] * inv[0][0] + pft[1][1] * inv[1][0], pft[1][0] * inv[0][1] + pft[1][1] * inv[1][1]],
                ];
                let d = [xs[0] - xp[k + 1][0], xs[1] - xp[k + 1][1]];
                xs = [xf[k][0] + c[0][0] * d[0] + c[0][1] * d[1], xf[k][1] + c[1][0] * d[0] + c[1][1] * d[1]];
            }
            out[k] = xs[0] as f32;
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

    #[test]
    fn smoothing_a_straight_walk_changes_nothing_and_smoothing_jitter_brings_it_nearer_the_line() {
        let line: [[f32; 2]; 8] = std::array::from_fn(|i| [i as f32 * 0.5, 2.0 + i as f32 * 0.1]);
        let s = KalmanCv::default().smooth(&line);
        for (a, b) in s.iter().zip(&line) {
            assert!((a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4, "{a:?} {b:?}");
        }
        // The same walk with ±0.3 m of alternating jitter across it.
        let jittered: [[f32; 2]; 8] =
            std::array::from_fn(|i| [line[i][0], line[i][1] + if i % 2 == 0 { 0.3 } else { -0.3 }]);
        let err = |p: &[[f32; 2]; 8]| p.iter().zip(&line).map(|(a, b)| (a[1] - b[1]).abs()).sum::<f32>();
        // Declared as noisy as it is, the jitter mostly goes; declared clean, less of it does.
        let noisy = KalmanCv { meas_sigma_m: 0.3, accel_sigma_mps2: 0.3 }.smooth(&jittered);
        let clean = KalmanCv { meas_sigma_m: 0.02, accel_sigma_mps2: 0.3 }.smooth(&jittered);
        assert!(err(&noisy) < 0.3 * err(&jittered), "{} vs {}", err(&noisy), err(&jittered));
        assert!(err(&noisy) < err(&clean), "{} vs {}", err(&noisy), err(&clean));
    }
}
