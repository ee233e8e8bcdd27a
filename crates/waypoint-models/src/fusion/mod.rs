//! Lidar + radar fusion for one tracked object: an unscented Kalman filter with a CTRV motion
//! model ([`ukf`]) and a constant-velocity extended Kalman filter as the baseline ([`ekf`]).
//!
//! Both filters take the same [`Measurement`]s and are safe on real logs: a radar return with
//! zero range carries no bearing or range-rate information and is skipped; a measurement whose
//! timestamp repeats the previous one updates without predicting; one older than the previous
//! one is skipped (filters only move forward); a gap longer than [`MAX_GAP_SECS`] — or the first
//! measurement, whatever its time — (re)initialises the filter from the measurement. No input
//! can produce a NaN: a non-finite state after a step re-initialises the filter.

pub mod ekf;
pub mod eval;
pub mod imm;
pub mod model;
pub mod synthetic;
pub mod ukf;

pub use ekf::Ekf;
pub use imm::Imm;
pub use ukf::Ukf;

/// What every filter here does: one measurement in, the estimate after it out.
pub trait Filter {
    /// Processes one measurement and returns the estimate after it.
    fn process(&mut self, m: &Measurement) -> Estimate;

    /// Moves the estimated position by `(dx, dy)` metres.
    fn shift(&mut self, dx_m: f64, dy_m: f64);

    /// Declares the lidar noise (one sigma per axis, metres) of the measurements that follow —
    /// a detector's box centre is noisier than a lidar return — in place of the configured
    /// one; `None` goes back to the configured one.
    fn set_lidar_std(&mut self, std_m: Option<f64>);

    /// Processes a measurement taken by a sensor at `origin` (world frame) rather than at the
    /// frame's origin: the state is shifted so the sensor sits at the origin for the update,
    /// then shifted back. For radar, `phi_rad` must be the world-frame bearing and
    /// `rho_dot_mps` the range rate with the sensor's own motion removed.
    fn process_from(&mut self, origin: (f64, f64), m: &Measurement) -> Estimate {
        let shifted = match *m {
            Measurement::Lidar { t_secs, px_m, py_m } => {
                Measurement::Lidar { t_secs, px_m: px_m - origin.0, py_m: py_m - origin.1 }
            }
            radar => radar,
        };
        self.shift(-origin.0, -origin.1);
        let mut e = self.process(&shifted);
        self.shift(origin.0, origin.1);
        e.px_m += origin.0;
        e.py_m += origin.1;
        e
    }
}

/// Gaps longer than this start the track again.
pub const MAX_GAP_SECS: f64 = 5.0;

/// One sensor measurement of the object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measurement {
    /// Position, metres.
    Lidar { t_secs: f64, px_m: f64, py_m: f64 },
    /// Range, bearing (counter-clockwise from +x) and range rate.
    Radar { t_secs: f64, rho_m: f64, phi_rad: f64, rho_dot_mps: f64 },
}

impl Measurement {
    pub fn t_secs(&self) -> f64 {
        match self {
            Measurement::Lidar { t_secs, .. } | Measurement::Radar { t_secs, .. } => *t_secs,
        }
    }

    /// Whether every number is finite (a non-finite measurement is skipped).
    pub fn is_finite(&self) -> bool {
        match *self {
            Measurement::Lidar { t_secs, px_m, py_m } => t_secs.is_finite() && px_m.is_finite() && py_m.is_finite(),
            Measurement::Radar { t_secs, rho_m, phi_rad, rho_dot_mps } => {
                t_secs.is_finite() && rho_m.is_finite() && phi_rad.is_finite() && rho_dot_mps.is_finite()
            }
        }
    }
}

/// What a filter does with a measurement, given the time of its last one (the rules in this
/// module's documentation, shared by both filters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    /// Ignore it; report the current estimate at this time.
    Skip(f64),
    /// (Re)initialise from it.
    Init,
    /// Predict over this many seconds (possibly 0), then update.
    Advance(f64),
}

pub(crate) fn classify(last_t: Option<f64>, m: &Measurement) -> Step {
    if !m.is_finite() {
        return Step::Skip(last_t.unwrap_or(0.0));
    }
    let Some(t0) = last_t else { return Step::Init };
    let dt = m.t_secs() - t0;
    if dt < 0.0 {
        Step::Skip(t0)
    } else if dt > MAX_GAP_SECS {
        Step::Init
    } else {
        Step::Advance(dt)
    }
}

/// Measurement noise (one sigma), shared by both filters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SensorNoise {
    pub lidar_px_m: f64,
    pub lidar_py_m: f64,
    pub radar_rho_m: f64,
    pub radar_phi_rad: f64,
    pub radar_rho_dot_mps: f64,
}

impl SensorNoise {
    /// The same with the lidar's noise replaced by `std_m` on both axes, where given.
    pub fn with_lidar_std(self, std_m: Option<f64>) -> Self {
        match std_m {
            Some(s) => Self { lidar_px_m: s, lidar_py_m: s, ..self },
            None => self,
        }
    }
}

impl Default for SensorNoise {
    /// Datasheet-level values for an automotive lidar and radar (as in the Udacity data).
    fn default() -> Self {
        Self { lidar_px_m: 0.15, lidar_py_m: 0.15, radar_rho_m: 0.3, radar_phi_rad: 0.03, radar_rho_dot_mps: 0.3 }
    }
}

/// What a filter reports after each measurement.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Estimate {
    pub t_secs: f64,
    pub px_m: f64,
    pub py_m: f64,
    pub vx_mps: f64,
    pub vy_mps: f64,
    pub yaw_rad: f64,
    pub yaw_rate_rps: f64,
    /// Normalised innovation squared of the measurement just applied (None when it only
    /// initialised the filter or was skipped).
    pub nis: Option<f64>,
    /// Trace of the position covariance, m².
    pub pos_var_m2: f64,
}

/// Wraps an angle to [-pi, pi].
pub fn normalize_angle(a: f64) -> f64 {
    if !a.is_finite() {
        return 0.0;
    }
    let mut a = a % std::f64::consts::TAU;
    if a > std::f64::consts::PI {
        a -= std::f64::consts::TAU;
    } else if a < -std::f64::consts::PI {
        a += std::f64::consts::TAU;
    }
    a
}

/// 95 % points of the chi-square distribution with 2 and 3 degrees of freedom (lidar and radar
/// NIS bounds).
pub const CHI2_95_DF2: f64 = 5.991;
pub const CHI2_95_DF3: f64 = 7.815;

/// Reads the Udacity format into measurements and ground truth.
pub fn from_udacity(rows: &[waypoint_sim::replay::UdacityRow]) -> Vec<(Measurement, [f64; 4])> {
    use waypoint_sim::replay::UdacityRow;
    rows.iter()
        .map(|r| {
            let t = r.timestamp_us() as f64 * 1e-6;
            let g = r.truth();
            let m = match *r {
                UdacityRow::Lidar { px_m, py_m, .. } => Measurement::Lidar { t_secs: t, px_m, py_m },
                UdacityRow::Radar { rho_m, phi_rad, rho_dot_mps, .. } => {
                    Measurement::Radar { t_secs: t, rho_m, phi_rad, rho_dot_mps }
                }
            };
            (m, [g.px_m, g.py_m, g.vx_mps, g.vy_mps])
        })
        .collect()
}
