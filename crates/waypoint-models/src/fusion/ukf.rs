//! Unscented Kalman filter with the constant turn rate and velocity (CTRV) motion model.
//!
//! State `[px, py, v, yaw, yaw_rate]`; process noise is longitudinal acceleration and yaw
//! acceleration (white, per step), augmented into the sigma points. Lidar updates are linear;
//! radar updates go through the unscented transform.

use nalgebra::{SMatrix, SVector};

use super::{classify, normalize_angle, Estimate, Measurement, SensorNoise, Step};

type V5 = SVector<f64, 5>;
type M5 = SMatrix<f64, 5, 5>;
type V7 = SVector<f64, 7>;
type M7 = SMatrix<f64, 7, 7>;
const N_AUG: usize = 7;
const N_SIG: usize = 2 * N_AUG + 1;
const LAMBDA: f64 = 3.0 - N_AUG as f64;
/// Longest single prediction step; longer gaps are integrated in pieces.
const MAX_STEP_SECS: f64 = 0.1;

/// UKF configuration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UkfConfig {
    /// Longitudinal acceleration noise, m/s² (one sigma).
    pub std_accel_mps2: f64,
    /// Yaw acceleration noise, rad/s² (one sigma).
    pub std_yaw_accel_rps2: f64,
    pub noise: SensorNoise,
    /// Initial variances of speed, yaw and yaw rate: an urban speed prior (5 m/s sigma), an
    /// unknown heading (pi sigma) and 1 rad/s of yaw rate.
    pub init_var: [f64; 3],
}

impl Default for UkfConfig {
    /// Process noise of a road user: 1 m/s² longitudinal and 0.6 rad/s² yaw acceleration (one
    /// sigma). Checked by NIS consistency (docs/EVALUATION.md); `waypoint eval fusion
    /// --calibrate` chooses them on a given log from NIS alone.
    fn default() -> Self {
        Self {
            std_accel_mps2: 1.0,
            std_yaw_accel_rps2: 0.6,
            noise: SensorNoise::default(),
            init_var: [25.0, std::f64::consts::PI * std::f64::consts::PI, 1.0],
        }
    }
}

/// The filter.
#[derive(Debug, Clone)]
pub struct Ukf {
    pub config: UkfConfig,
    x: V5,
    p: M5,
    t_secs: Option<f64>,
    weights: [f64; N_SIG],
    /// Log-likelihood of the last update's innovation, ln N(y; 0, S) (for an IMM's mode
    /// probabilities).
    last_log_likelihood: Option<f64>,
    /// The lidar noise of the next measurements, in place of the configured one.
    lidar_std_m: Option<f64>,
}

impl Ukf {
    pub fn new(config: UkfConfig) -> Self {
        let mut weights = [0.5 / (LAMBDA + N_AUG as f64); N_SIG];
        weights[0] = LAMBDA / (LAMBDA + N_AUG as f64);
        Self {
            config,
            x: V5::zeros(),
            p: M5::identity(),
            t_secs: None,
            weights,
            last_log_likelihood: None,
            lidar_std_m: None,
        }
    }

    pub fn state(&self) -> (&V5, &M5) {
        (&self.x, &self.p)
    }

    /// Replaces the state (an IMM's mixing).
    pub(super) fn set_state(&mut self, x: V5, p: M5) {
        self.x = x;
        self.p = p;
    }

    /// The log-likelihood of the last update's innovation, if the last step updated.
    pub(super) fn last_log_likelihood(&self) -> Option<f64> {
        self.last_log_likelihood
    }

    /// Declares the lidar noise (one sigma per axis) of the measurements that follow, in place
    /// of the configured one; `None` goes back to the configured one.
    pub fn set_lidar_std(&mut self, std_m: Option<f64>) {
        self.lidar_std_m = std_m;
    }

    fn noise(&self) -> super::SensorNoise {
        self.config.noise.with_lidar_std(self.lidar_std_m)
    }

    fn init(&mut self, m: &Measurement) {
        let n = self.noise();
        let [vv, yv, yrv] = self.config.init_var;
        match *m {
            Measurement::Lidar { px_m, py_m, .. } => {
                self.x = V5::new(px_m, py_m, 0.0, 0.0, 0.0);
                self.p = M5::from_diagonal(&V5::new(n.lidar_px_m.powi(2), n.lidar_py_m.powi(2), vv, yv, yrv));
            }
            Measurement::Radar { rho_m, phi_rad, .. } => {
                let (s, c) = phi_rad.sin_cos();
                let pos_var = n.radar_rho_m.powi(2) + (rho_m * n.radar_phi_rad).powi(2);
                self.x = V5::new(rho_m * c, rho_m * s, 0.0, 0.0, 0.0);
                self.p = M5::from_diagonal(&V5::new(pos_var, pos_var, vv, yv, yrv));
            }
        }
        self.t_secs = Some(m.t_secs());
    }

    pub(super) fn estimate(&self, t: f64, nis: Option<f64>) -> Estimate {
        let (v, yaw) = (self.x[2], self.x[3]);
        Estimate {
            t_secs: t,
            px_m: self.x[0],
            py_m: self.x[1],
            vx_mps: v * yaw.cos(),
            vy_mps: v * yaw.sin(),
            yaw_rad: normalize_angle(yaw),
            yaw_rate_rps: self.x[4],
            nis,
            pos_var_m2: self.p[(0, 0)] + self.p[(1, 1)],
        }
    }

    /// Processes one measurement and returns the estimate after it.
    pub fn process(&mut self, m: &Measurement) -> Estimate {
        self.last_log_likelihood = None;
        let t = m.t_secs();
        let dt = match classify(self.t_secs, m) {
            // Non-finite or out of order: the filter does not go back in time.
            Step::Skip(at) => return self.estimate(at, None),
            Step::Init => {
                self.init(m);
                return self.estimate(t, None);
            }
            Step::Advance(dt) => dt,
        };
        let mut rest = dt;
        while rest > 1e-9 {
            let step = rest.min(MAX_STEP_SECS);
            self.predict(step);
            rest -= step;
        }
        self.t_secs = Some(t);
        let nis = match *m {
            Measurement::Lidar { px_m, py_m, .. } => Some(self.update_lidar(px_m, py_m)),
            Measurement::Radar { rho_m, phi_rad, rho_dot_mps, .. } => {
                // A zero-range return has no usable bearing or range rate.
                (rho_m > 1e-3).then(|| self.update_radar(rho_m, phi_rad, rho_dot_mps))
            }
        };
        if !(self.x.iter().all(|v| v.is_finite()) && self.p.iter().all(|v| v.is_finite())) {
            self.init(m);
            return self.estimate(t, None);
        }
        self.estimate(t, nis)
    }

    fn sigma_points(&self) -> SMatrix<f64, N_AUG, N_SIG> {
        let mut xa = V7::zeros();
        xa.fixed_rows_mut::<5>(0).copy_from(&self.x);
        let mut pa = M7::zeros();
        pa.fixed_view_mut::<5, 5>(0, 0).copy_from(&self.p);
        pa[(5, 5)] = self.config.std_accel_mps2.powi(2);
        pa[(6, 6)] = self.config.std_yaw_accel_rps2.powi(2);
        let l = match pa.cholesky() {
            Some(c) => c.l(),
            None => {
                // Not positive definite (numerically): symmetrise, add jitter.
                let sym = (pa + pa.transpose()) * 0.5 + M7::identity() * 1e-9;
                sym.cholesky()
                    .map(|c| c.l())
                    .unwrap_or_else(|| M7::from_diagonal(&pa.diagonal().map(|d| d.abs().sqrt())))
            }
        };
        let scale = (LAMBDA + N_AUG as f64).sqrt();
        let mut sig = SMatrix::<f64, N_AUG, N_SIG>::zeros();
        sig.set_column(0, &xa);
        for i in 0..N_AUG {
            let d = l.column(i) * scale;
            sig.set_column(i + 1, &(xa + d));
            sig.set_column(i + 1 + N_AUG, &(xa - d));
        }
        sig
    }

    fn predict(&mut self, dt: f64) {
        let sig = self.sigma_points();
        let mut pred = SMatrix::<f64, 5, N_SIG>::zeros();
        for i in 0..N_SIG {
            let (px, py, v, yaw, yawd, nu_a, nu_yy) =
                (sig[(0, i)], sig[(1, i)], sig[(2, i)], sig[(3, i)], sig[(4, i)], sig[(5, i)], sig[(6, i)]);
            let (s, c) = yaw.sin_cos();
            let (mut px2, mut py2) = if yawd.abs() > 1e-4 {
                let yaw2 = yaw + yawd * dt;
                (px + v / yawd * (yaw2.sin() - s), py + v / yawd * (c - yaw2.cos()))
            } else {
                (px + v * dt * c, py + v * dt * s)
            };
            let half_dt2 = 0.5 * dt * dt;
            px2 += half_dt2 * c * nu_a;
            py2 += half_dt2 * s * nu_a;
            pred[(0, i)] = px2;
            pred[(1, i)] = py2;
            pred[(2, i)] = v + dt * nu_a;
            pred[(3, i)] = yaw + yawd * dt + half_dt2 * nu_yy;
            pred[(4, i)] = yawd + dt * nu_yy;
        }
        let mut x = V5::zeros();
        for i in 0..N_SIG {
            x += pred.column(i) * self.weights[i];
        }
        let mut p = M5::zeros();
        for i in 0..N_SIG {
            let mut d: V5 = pred.column(i) - x;
            d[3] = normalize_angle(d[3]);
            p += d * d.transpose() * self.weights[i];
        }
        self.x = x;
        self.x[3] = normalize_angle(self.x[3]);
        self.p = p;
    }

    fn update_lidar(&mut self, px: f64, py: f64) -> f64 {
        let n = self.noise();
        let y = nalgebra::Vector2::new(px - self.x[0], py - self.x[1]);
        let mut s = self.p.fixed_view::<2, 2>(0, 0).into_owned();
        s[(0, 0)] += n.lidar_px_m.powi(2);
        s[(1, 1)] += n.lidar_py_m.powi(2);
        let Some(si) = s.try_inverse() else { return f64::NAN };
        let pht = self.p.fixed_view::<5, 2>(0, 0).into_owned();
        let k = pht * si;
        self.x += k * y;
        self.x[3] = normalize_angle(self.x[3]);
        self.p -= k * pht.transpose();
        self.p = (self.p + self.p.transpose()) * 0.5;
        let nis = (y.transpose() * si * y)[(0, 0)];
        self.last_log_likelihood = Some(log_gaussian(nis, s.determinant(), 2));
        nis
    }

    fn update_radar(&mut self, rho: f64, phi: f64, rho_dot: f64) -> f64 {
        let n = self.config.noise;
        // Sigma points of the current (predicted) state; regenerated so that an update right
        // after another (same timestamp) uses the current covariance.
        let sig = self.sigma_points();
        let mut zs = SMatrix::<f64, 3, N_SIG>::zeros();
        for i in 0..N_SIG {
            let (px, py, v, yaw) = (sig[(0, i)], sig[(1, i)], sig[(2, i)], sig[(3, i)]);
            let r = px.hypot(py).max(1e-4);
            zs[(0, i)] = r;
            zs[(1, i)] = py.atan2(px);
            zs[(2, i)] = (px * yaw.cos() * v + py * yaw.sin() * v) / r;
        }
        let mut z = nalgebra::Vector3::zeros();
        for i in 0..N_SIG {
            z += zs.column(i) * self.weights[i];
        }
        let mut s = nalgebra::Matrix3::zeros();
        let mut tc = SMatrix::<f64, 5, 3>::zeros();
        for i in 0..N_SIG {
            let mut dz: nalgebra::Vector3<f64> = zs.column(i) - z;
            dz[1] = normalize_angle(dz[1]);
            let mut dx: V5 = sig.fixed_view::<5, 1>(0, i) - self.x;
            dx[3] = normalize_angle(dx[3]);
            s += dz * dz.transpose() * self.weights[i];
            tc += dx * dz.transpose() * self.weights[i];
        }
        s[(0, 0)] += n.radar_rho_m.powi(2);
        s[(1, 1)] += n.radar_phi_rad.powi(2);
        s[(2, 2)] += n.radar_rho_dot_mps.powi(2);
        let Some(si) = s.try_inverse() else { return f64::NAN };
        let k = tc * si;
        let mut y = nalgebra::Vector3::new(rho, phi, rho_dot) - z;
        y[1] = normalize_angle(y[1]);
        self.x += k * y;
        self.x[3] = normalize_angle(self.x[3]);
        self.p -= k * s * k.transpose();
        self.p = (self.p + self.p.transpose()) * 0.5;
        let nis = (y.transpose() * si * y)[(0, 0)];
        self.last_log_likelihood = Some(log_gaussian(nis, s.determinant(), 3));
        nis
    }
}

/// ln N(y; 0, S) from the NIS yᵀS⁻¹y, det S and the dimension.
pub(super) fn log_gaussian(nis: f64, det_s: f64, dim: usize) -> f64 {
    -0.5 * (nis + det_s.max(1e-300).ln() + dim as f64 * (2.0 * std::f64::consts::PI).ln())
}

impl super::Filter for Ukf {
    fn process(&mut self, m: &Measurement) -> Estimate {
        Ukf::process(self, m)
    }

    fn set_lidar_std(&mut self, std_m: Option<f64>) {
        Ukf::set_lidar_std(self, std_m);
    }

    fn shift(&mut self, dx_m: f64, dy_m: f64) {
        self.x[0] += dx_m;
        self.x[1] += dy_m;
    }
}
