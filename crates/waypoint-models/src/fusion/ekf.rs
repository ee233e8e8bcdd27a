//! Extended Kalman filter with a constant-velocity model, the baseline beside the UKF.
//! State `[px, py, vx, vy]`; white acceleration noise; radar updates linearised (Jacobian).

use nalgebra::{Matrix2x4, Matrix3x4, Matrix4, Vector4};

use super::{classify, normalize_angle, Estimate, Measurement, SensorNoise, Step};

/// EKF configuration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EkfConfig {
    /// Acceleration noise variance per axis, (m/s²)².
    pub accel_var: f64,
    pub noise: SensorNoise,
    /// Initial variance of each velocity component, (m/s)²; settings written before it existed
    /// read as 100.
    #[serde(default = "default_init_vel_var")]
    pub init_vel_var: f64,
}

fn default_init_vel_var() -> f64 {
    100.0
}

impl Default for EkfConfig {
    fn default() -> Self {
        Self { accel_var: 9.0, noise: SensorNoise::default(), init_vel_var: default_init_vel_var() }
    }
}

/// The filter.
#[derive(Debug, Clone)]
pub struct Ekf {
    pub config: EkfConfig,
    x: Vector4<f64>,
    p: Matrix4<f64>,
    t_secs: Option<f64>,
    /// Log-likelihood of the last update's innovation (for an IMM's mode probabilities).
    last_log_likelihood: Option<f64>,
    /// The lidar noise of the next measurements, in place of the configured one.
    lidar_std_m: Option<f64>,
}

impl Ekf {
    pub fn new(config: EkfConfig) -> Self {
        Self {
            config,
            x: Vector4::zeros(),
            p: Matrix4::identity(),
            t_secs: None,
            last_log_likelihood: None,
            lidar_std_m: None,
        }
    }

    /// The state `[px, py, vx, vy]` and its covariance.
    pub fn state(&self) -> (&Vector4<f64>, &Matrix4<f64>) {
        (&self.x, &self.p)
    }

    /// Replaces the state (an IMM's mixing).
    pub(super) fn set_state(&mut self, x: Vector4<f64>, p: Matrix4<f64>) {
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

    fn noise(&self) -> SensorNoise {
        self.config.noise.with_lidar_std(self.lidar_std_m)
    }

    fn init(&mut self, m: &Measurement) {
        let n = self.noise();
        let vv = self.config.init_vel_var;
        match *m {
            Measurement::Lidar { px_m, py_m, .. } => {
                self.x = Vector4::new(px_m, py_m, 0.0, 0.0);
                self.p = Matrix4::from_diagonal(&Vector4::new(n.lidar_px_m.powi(2), n.lidar_py_m.powi(2), vv, vv));
            }
            Measurement::Radar { rho_m, phi_rad, rho_dot_mps, .. } => {
                let (s, c) = phi_rad.sin_cos();
                let var = n.radar_rho_m.powi(2) + (rho_m * n.radar_phi_rad).powi(2);
                self.x = Vector4::new(rho_m * c, rho_m * s, rho_dot_mps * c, rho_dot_mps * s);
                self.p = Matrix4::from_diagonal(&Vector4::new(var, var, vv, vv));
            }
        }
        self.t_secs = Some(m.t_secs());
    }

    pub(super) fn estimate(&self, t: f64, nis: Option<f64>) -> Estimate {
        Estimate {
            t_secs: t,
            px_m: self.x[0],
            py_m: self.x[1],
            vx_mps: self.x[2],
            vy_mps: self.x[3],
            yaw_rad: self.x[3].atan2(self.x[2]),
            yaw_rate_rps: 0.0,
            nis,
            pos_var_m2: self.p[(0, 0)] + self.p[(1, 1)],
        }
    }

    pub fn process(&mut self, m: &Measurement) -> Estimate {
        self.last_log_likelihood = None;
        let t = m.t_secs();
        let dt = match classify(self.t_secs, m) {
            Step::Skip(at) => return self.estimate(at, None),
            Step::Init => {
                self.init(m);
                return self.estimate(t, None);
            }
            Step::Advance(dt) => dt,
        };
        self.predict(dt);
        self.t_secs = Some(t);
        let nis = match *m {
            Measurement::Lidar { px_m, py_m, .. } => self.update_lidar(px_m, py_m),
            Measurement::Radar { rho_m, phi_rad, rho_dot_mps, .. } => {
                if rho_m > 1e-3 {
                    self.update_radar(rho_m, phi_rad, rho_dot_mps)
                } else {
                    None
                }
            }
        };
        if !(self.x.iter().all(|v| v.is_finite()) && self.p.iter().all(|v| v.is_finite())) {
            self.init(m);
            return self.estimate(t, None);
        }
        self.estimate(t, nis)
    }

    fn predict(&mut self, dt: f64) {
        let mut f = Matrix4::identity();
        f[(0, 2)] = dt;
        f[(1, 3)] = dt;
        let (dt2, dt3, dt4) = (dt * dt, dt * dt * dt / 2.0, dt.powi(4) / 4.0);
        let q = self.config.accel_var;
        let mut qm = Matrix4::zeros();
        qm[(0, 0)] = dt4 * q;
        qm[(1, 1)] = dt4 * q;
        qm[(0, 2)] = dt3 * q;
        qm[(2, 0)] = dt3 * q;
        qm[(1, 3)] = dt3 * q;
        qm[(3, 1)] = dt3 * q;
        qm[(2, 2)] = dt2 * q;
        qm[(3, 3)] = dt2 * q;
        self.x = f * self.x;
        self.p = f * self.p * f.transpose() + qm;
    }

    fn update_lidar(&mut self, px: f64, py: f64) -> Option<f64> {
        let n = self.noise();
        let h = Matrix2x4::new(1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        let r = nalgebra::Matrix2::new(n.lidar_px_m.powi(2), 0.0, 0.0, n.lidar_py_m.powi(2));
        let y = nalgebra::Vector2::new(px, py) - h * self.x;
        let s = h * self.p * h.transpose() + r;
        let si = s.try_inverse()?;
        let k = self.p * h.transpose() * si;
        self.x += k * y;
        self.p = (Matrix4::identity() - k * h) * self.p;
        let nis = (y.transpose() * si * y)[(0, 0)];
        self.last_log_likelihood = Some(super::ukf::log_gaussian(nis, s.determinant(), y.len()));
        Some(nis)
    }

    fn update_radar(&mut self, rho: f64, phi: f64, rho_dot: f64) -> Option<f64> {
        let n = self.config.noise;
        let (px, py, vx, vy) = (self.x[0], self.x[1], self.x[2], self.x[3]);
        let c1 = (px * px + py * py).max(1e-6);
        let c2 = c1.sqrt();
        let c3 = c1 * c2;
        let h = Matrix3x4::new(
            px / c2,
            py / c2,
            0.0,
            0.0,
            -py / c1,
            px / c1,
            0.0,
            0.0,
            py * (vx * py - vy * px) / c3,
            px * (vy * px - vx * py) / c3,
            px / c2,
            py / c2,
        );
        let z_pred = nalgebra::Vector3::new(c2, py.atan2(px), (px * vx + py * vy) / c2);
        let mut y = nalgebra::Vector3::new(rho, phi, rho_dot) - z_pred;
        y[1] = normalize_angle(y[1]);
        let r = nalgebra::Matrix3::from_diagonal(&nalgebra::Vector3::new(
            n.radar_rho_m.powi(2),
            n.radar_phi_rad.powi(2),
            n.radar_rho_dot_mps.powi(2),
        ));
        let s = h * self.p * h.transpose() + r;
        let si = s.try_inverse()?;
        let k = self.p * h.transpose() * si;
        self.x += k * y;
        self.p = (Matrix4::identity() - k * h) * self.p;
        let nis = (y.transpose() * si * y)[(0, 0)];
        self.last_log_likelihood = Some(super::ukf::log_gaussian(nis, s.determinant(), y.len()));
        Some(nis)
    }
}

impl super::Filter for Ekf {
    fn process(&mut self, m: &Measurement) -> Estimate {
        Ekf::process(self, m)
    }

    fn set_lidar_std(&mut self, std_m: Option<f64>) {
        Ekf::set_lidar_std(self, std_m);
    }

    fn shift(&mut self, dx_m: f64, dy_m: f64) {
        self.x[0] += dx_m;
        self.x[1] += dy_m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter starts its velocity with the configured variance, from a lidar or a radar row,
    /// and a settings file without the field reads as 100 (m/s)².
    #[test]
    fn the_first_measurement_sets_the_configured_velocity_variance() {
        for m in [
            Measurement::Lidar { t_secs: 0.0, px_m: 4.0, py_m: 1.0 },
            Measurement::Radar { t_secs: 0.0, rho_m: 5.0, phi_rad: 0.3, rho_dot_mps: 2.0 },
        ] {
            for v in [25.0, 100.0] {
                let mut f = Ekf::new(EkfConfig { init_vel_var: v, ..EkfConfig::default() });
                f.process(&m);
                let p = f.state().1;
                assert_eq!((p[(2, 2)], p[(3, 3)]), (v, v), "{m:?}");
            }
        }
        let mut old = serde_json::to_value(EkfConfig::default()).unwrap();
        old.as_object_mut().unwrap().remove("init_vel_var");
        let read: EkfConfig = serde_json::from_value(old).unwrap();
        assert_eq!(read.init_vel_var, 100.0);
    }
}
