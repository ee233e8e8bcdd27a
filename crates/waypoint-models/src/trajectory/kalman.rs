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

/// Measurement noises (m) among which [`smooth_adaptive`] picks, per history, the most likely.
pub const ADAPTIVE_MEAS_SIGMAS_M: [f32; 7] = [0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.7];

impl KalmanCv {
    /// The history's positions smoothed (Rauch–Tung–Striebel: the filter forwards, then
    /// backwards), and the log-likelihood of the history under this filter's noises.
    pub fn smooth(&self, obs: &[[f32; 2]; OBS_STEPS]) -> ([[f32; 2]; OBS_STEPS], f64) {
        let dt = STEP_SECS;
        let r = f64::from(self.meas_sigma_m).powi(2);
        let q = f64::from(self.accel_sigma_mps2).powi(2);
        let (q11, q12, q22) = (q * dt.powi(4) / 4.0, q * dt.powi(3) / 2.0, q * dt * dt);
        let mut out = [[0f32; 2]; OBS_STEPS];
        let mut log_lik = 0.0;
        type M = [[f64; 2]; 2];
        for axis in 0..2 {
            let z = |k: usize| f64::from(obs[k][axis]);
            // Filtered state and covariance at each step, and the prediction into each step.
            let mut xf = [[0f64; 2]; OBS_STEPS];
            let mut pf: [M; OBS_STEPS] = [[[0.0; 2]; 2]; OBS_STEPS];
            let mut xp = [[0f64; 2]; OBS_STEPS];
            let mut pp: [M; OBS_STEPS] = [[[0.0; 2]; 2]; OBS_STEPS];
            // The first position, and a velocity not yet known (one sigma 15 m/s).
            xf[0] = [z(0), 0.0];
            pf[0] = [[r, 0.0], [0.0, 225.0]];
            for k in 1..OBS_STEPS {
                let (x, p) = (xf[k - 1], pf[k - 1]);
                xp[k] = [x[0] + dt * x[1], x[1]];
                pp[k] = [
                    [p[0][0] + dt * (p[1][0] + p[0][1]) + dt * dt * p[1][1] + q11, p[0][1] + dt * p[1][1] + q12],
                    [p[1][0] + dt * p[1][1] + q12, p[1][1] + q22],
                ];
                let p = pp[k];
                let s = p[0][0] + r;
                let y = z(k) - xp[k][0];
                // The first update's innovation is mostly the unknown velocity's.
                if k > 1 {
                    log_lik -= 0.5 * (y * y / s + s.ln() + std::f64::consts::TAU.ln());
                }
                let g = [p[0][0] / s, p[1][0] / s];
                xf[k] = [xp[k][0] + g[0] * y, xp[k][1] + g[1] * y];
                pf[k] = [
                    [(1.0 - g[0]) * p[0][0], (1.0 - g[0]) * p[0][1]],
                    [p[1][0] - g[1] * p[0][0], p[1][1] - g[1] * p[0][1]],
                ];
            }
            // Backwards: x_s(k) = x_f(k) + C (x_s(k+1) − x_p(k+1)), C = P_f(k) Fᵀ P_p(k+1)⁻¹.
            let mut xs = xf[OBS_STEPS - 1];
            out[OBS_STEPS - 1][axis] = xs[0] as f32;
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
                out[k][axis] = xs[0] as f32;
            }
        }
        (out, log_lik)
    }
}

/// The history smoothed under the measurement noise of [`ADAPTIVE_MEAS_SIGMAS_M`] and the
/// acceleration noise of `accel_sigmas_mps2` that make it most likely, and that measurement
/// noise: a clean history is left almost as it is, a jittery one (a tracker's) is smoothed hard.
pub fn smooth_adaptive(obs: &[[f32; 2]; OBS_STEPS], accel_sigmas_mps2: &[f32]) -> ([[f32; 2]; OBS_STEPS], f32) {
    let mut best: Option<([[f32; 2]; OBS_STEPS], f64, f32)> = None;
    for &accel_sigma_mps2 in accel_sigmas_mps2 {
        for meas_sigma_m in ADAPTIVE_MEAS_SIGMAS_M {
            let (s, ll) = KalmanCv { meas_sigma_m, accel_sigma_mps2 }.smooth(obs);
            if best.as_ref().is_none_or(|b| ll > b.1) {
                best = Some((s, ll, meas_sigma_m));
            }
        }
    }
    match best {
        Some((s, _, sigma)) => (s, sigma),
        None => (*obs, 0.0),
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
        let (s, _) = KalmanCv::default().smooth(&line);
        for (a, b) in s.iter().zip(&line) {
            assert!((a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4, "{a:?} {b:?}");
        }
        // The same walk with ±0.3 m of alternating jitter across it.
        let jittered: [[f32; 2]; 8] =
            std::array::from_fn(|i| [line[i][0], line[i][1] + if i % 2 == 0 { 0.3 } else { -0.3 }]);
        let err = |p: &[[f32; 2]; 8]| p.iter().zip(&line).map(|(a, b)| (a[1] - b[1]).abs()).sum::<f32>();
        let (adaptive, sigma) = smooth_adaptive(&jittered, &[0.8]);
        let (fixed, _) = KalmanCv::default().smooth(&jittered);
        assert!(sigma >= 0.2, "the jitter is taken for noise: {sigma}");
        assert!(err(&adaptive) < 0.5 * err(&jittered), "{} vs {}", err(&adaptive), err(&jittered));
        assert!(err(&adaptive) < err(&fixed), "{} vs {}", err(&adaptive), err(&fixed));
        // A clean walk is taken for what it is.
        let (same, sigma) = smooth_adaptive(&line, &[0.8]);
        assert_eq!(sigma, ADAPTIVE_MEAS_SIGMAS_M[0]);
        assert!(same.iter().zip(&line).all(|(a, b)| (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3));
    }
}
