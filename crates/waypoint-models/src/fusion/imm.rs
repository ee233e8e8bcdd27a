//! An interacting multiple model (IMM) filter: filters of different motion models — CTRV
//! unscented Kalman filters and constant-velocity Kalman filters — mixed at every measurement
//! by their mode probabilities (Blom and Bar-Shalom's IMM). When one motion model with fixed
//! noise does not fit all the motion in a log, the mixture follows whichever fits the recent
//! measurements.
//!
//! The modes live in different states (CTRV: `[px, py, v, yaw, yaw_rate]`; constant velocity:
//! `[px, py, vx, vy]`); mixing converts each mode's mean and covariance into the receiving
//! mode's state (first order), so a constant-velocity mode also carries the CTRV modes through
//! standing and starting, where speed and heading are far from Gaussian.
//!
//! The default modes and switching probability are chosen on simulated logs of several kinds of
//! motion ([`super::synthetic`]), never on a recorded log (docs/EVALUATION.md).

use nalgebra::{Matrix4, SMatrix, SVector, Vector4};

use super::ekf::{Ekf, EkfConfig};
use super::ukf::{Ukf, UkfConfig};
use super::{classify, normalize_angle, Estimate, Measurement, Step};

type V5 = SVector<f64, 5>;
type M5 = SMatrix<f64, 5, 5>;
type V4 = Vector4<f64>;
type M4 = Matrix4<f64>;

/// One mode of the IMM.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "motion", rename_all = "snake_case")]
pub enum ModeConfig {
    /// A CTRV unscented Kalman filter.
    Ctrv(UkfConfig),
    /// A constant-velocity Kalman filter with white acceleration (the EKF).
    ConstantVelocity(EkfConfig),
}

/// The seeds of the simulated logs ([`super::synthetic`]) the default settings were chosen on;
/// figures on them are in-sample.
pub const SETTINGS_SEEDS: std::ops::RangeInclusive<u64> = 1..=10;

/// IMM settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImmConfig {
    /// One filter per mode.
    pub modes: Vec<ModeConfig>,
    /// Probability of leaving the current mode between two measurements (spread evenly over
    /// the others).
    pub switch_prob: f64,
    /// Mode probabilities at the start (normalised; uniform when the length differs).
    pub initial: Vec<f64>,
}

impl ImmConfig {
    /// Two CTRV modes that differ only in process noise: steady (0.5 m/s², 0.2 rad/s²) and
    /// manoeuvring (3 m/s², 1.5 rad/s²).
    pub fn two_ctrv() -> Self {
        let base = UkfConfig::default();
        Self {
            modes: vec![
                ModeConfig::Ctrv(UkfConfig { std_accel_mps2: 0.5, std_yaw_accel_rps2: 0.2, ..base }),
                ModeConfig::Ctrv(UkfConfig { std_accel_mps2: 3.0, std_yaw_accel_rps2: 1.5, ..base }),
            ],
            switch_prob: 0.05,
            initial: vec![0.8, 0.2],
        }
    }
}

impl Default for ImmConfig {
    /// Four modes: steady CTRV (0.5 m/s², 0.2 rad/s²), manoeuvring CTRV (3 m/s², 1.5 rad/s²),
    /// steady constant velocity (white acceleration of variance 0.25 (m/s²)² per axis: the
    /// steady CTRV mode's 0.5 m/s², not scanned) and manoeuvring constant velocity (16 (m/s²)²);
    /// a 0.5 % chance of leaving a mode per measurement; equal odds at the start. Chosen on
    /// simulated logs, seeds 1–10 of every kind of motion (`cargo run --release -p
    /// waypoint-models --example fusion_settings`), by the mean RMSE relative to the better of
    /// the UKF and the EKF: the three-mode IMM (without the steady constant-velocity mode) of 29
    /// settings scored 0.867, the four-mode one 0.832 (0.828 with 25 for the manoeuvring mode,
    /// under 1 % apart, not taken). The constant-velocity modes start from a velocity variance
    /// of 25 (m/s)² per component, the UKFs' speed prior: of 1, 4, 9, 16, 25, 49 and 100 on the
    /// same seeds (`... --example fusion_settings -- cv-init`) it scored best, 0.8266 (100:
    /// 0.8324). Version 2 of the served model is the three-mode IMM, version 3 the four-mode one
    /// starting its constant-velocity modes from 100 (m/s)², version 4 this one.
    fn default() -> Self {
        let base = UkfConfig::default();
        Self {
            modes: vec![
                ModeConfig::Ctrv(UkfConfig { std_accel_mps2: 0.5, std_yaw_accel_rps2: 0.2, ..base }),
                ModeConfig::Ctrv(UkfConfig { std_accel_mps2: 3.0, std_yaw_accel_rps2: 1.5, ..base }),
                ModeConfig::ConstantVelocity(EkfConfig { accel_var: 0.25, init_vel_var: 25.0, ..EkfConfig::default() }),
                ModeConfig::ConstantVelocity(EkfConfig { accel_var: 16.0, init_vel_var: 25.0, ..EkfConfig::default() }),
            ],
            switch_prob: 0.005,
            initial: vec![],
        }
    }
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a handful per filter, never moved in a hot path
enum Mode {
    Ctrv(Ukf),
    Cv(Ekf),
}

/// A mode's state in one of the two forms.
#[derive(Debug, Clone, Copy)]
enum ModeState {
    Ctrv(V5, M5),
    Cv(V4, M4),
}

impl Mode {
    fn new(c: &ModeConfig) -> Self {
        match c {
            ModeConfig::Ctrv(u) => Mode::Ctrv(Ukf::new(*u)),
            ModeConfig::ConstantVelocity(e) => Mode::Cv(Ekf::new(*e)),
        }
    }

    fn state(&self) -> ModeState {
        match self {
            Mode::Ctrv(f) => ModeState::Ctrv(*f.state().0, *f.state().1),
            Mode::Cv(f) => ModeState::Cv(*f.state().0, *f.state().1),
        }
    }

    fn process(&mut self, m: &Measurement) -> Estimate {
        match self {
            Mode::Ctrv(f) => f.process(m),
            Mode::Cv(f) => f.process(m),
        }
    }

    fn last_log_likelihood(&self) -> Option<f64> {
        match self {
            Mode::Ctrv(f) => f.last_log_likelihood(),
            Mode::Cv(f) => f.last_log_likelihood(),
        }
    }

    /// The yaw-rate variance a constant-velocity state is given when it becomes a CTRV one.
    fn yaw_rate_var(&self) -> f64 {
        match self {
            Mode::Ctrv(f) => f.config.init_var[2],
            Mode::Cv(_) => UkfConfig::default().init_var[2],
        }
    }
}

impl ModeState {
    /// As a constant-velocity state (first order).
    fn cartesian(&self) -> (V4, M4) {
        match *self {
            ModeState::Cv(x, p) => (x, p),
            ModeState::Ctrv(x, p) => {
                let (v, yaw) = (x[2], x[3]);
                let (s, c) = yaw.sin_cos();
                let mut j = SMatrix::<f64, 4, 5>::zeros();
                j[(0, 0)] = 1.0;
                j[(1, 1)] = 1.0;
                j[(2, 2)] = c;
                j[(2, 3)] = -v * s;
                j[(3, 2)] = s;
                j[(3, 3)] = v * c;
                (V4::new(x[0], x[1], v * c, v * s), j * p * j.transpose())
            }
        }
    }

    /// As a CTRV state (first order; a constant-velocity state turns at 0 with the given
    /// yaw-rate variance, and its heading is near `yaw_hint` when its speed is near 0).
    fn polar(&self, yaw_rate_var: f64, yaw_hint: f64) -> (V5, M5) {
        match *self {
            ModeState::Ctrv(x, p) => (x, p),
            ModeState::Cv(x, p) => polar_from_cartesian(&x, &p, yaw_rate_var, yaw_hint),
        }
    }
}

/// A constant-velocity state `[px, py, vx, vy]` and covariance as a CTRV state `[px, py, v,
/// yaw, yaw_rate]` (first order). The heading is the one of the pair (yaw, −v) or (yaw + π, v)
/// nearest `yaw_hint`, so a mode mixed into a CTRV filter does not flip its heading. A heading
/// no better than unknown gets the variance π², uncorrelated.
fn polar_from_cartesian(x: &V4, p: &M4, yaw_rate_var: f64, yaw_hint: f64) -> (V5, M5) {
    let (vx, vy) = (x[2], x[3]);
    let speed = vx.hypot(vy);
    let v = speed.max(1e-3);
    let mut yaw = vy.atan2(vx);
    let mut sign = 1.0;
    if normalize_angle(yaw - yaw_hint).abs() > std::f64::consts::FRAC_PI_2 {
        yaw = normalize_angle(yaw + std::f64::consts::PI);
        sign = -1.0;
    }
    // Keep the heading continuous with the hint (no wrap between the two).
    let yaw = yaw_hint + normalize_angle(yaw - yaw_hint);
    let mut j = SMatrix::<f64, 5, 4>::zeros();
    j[(0, 0)] = 1.0;
    j[(1, 1)] = 1.0;
    j[(2, 2)] = sign * vx / v;
    j[(2, 3)] = sign * vy / v;
    j[(3, 2)] = -vy / (v * v);
    j[(3, 3)] = vx / (v * v);
    let mut p5 = j * p * j.transpose();
    let pi2 = std::f64::consts::PI * std::f64::consts::PI;
    if p5[(3, 3)].is_nan() || p5[(3, 3)] > pi2 {
        for k in 0..5 {
            p5[(3, k)] = 0.0;
            p5[(k, 3)] = 0.0;
        }
        p5[(3, 3)] = pi2;
    }
    p5[(4, 4)] = yaw_rate_var;
    (V5::new(x[0], x[1], sign * speed, yaw, 0.0), p5)
}

/// The probability-weighted mean and covariance of CTRV states (headings averaged on the
/// circle, spreads included).
fn combine_polar(states: &[(V5, M5)], w: &[f64]) -> (V5, M5) {
    let mut x = V5::zeros();
    let (mut s, mut c) = (0.0, 0.0);
    for ((xi, _), wi) in states.iter().zip(w) {
        x += xi * *wi;
        s += wi * xi[3].sin();
        c += wi * xi[3].cos();
    }
    x[3] = s.atan2(c);
    let mut p = M5::zeros();
    for ((xi, pi), wi) in states.iter().zip(w) {
        let mut d = xi - x;
        d[3] = normalize_angle(d[3]);
        p += (pi + d * d.transpose()) * *wi;
    }
    (x, p)
}

/// The probability-weighted mean and covariance of constant-velocity states.
fn combine_cartesian(states: &[(V4, M4)], w: &[f64]) -> (V4, M4) {
    let x: V4 = states.iter().zip(w).map(|((xi, _), wi)| xi * *wi).sum();
    let p: M4 = states
        .iter()
        .zip(w)
        .map(|((xi, pi), wi)| {
            let d = xi - x;
            (pi + d * d.transpose()) * *wi
        })
        .sum();
    (x, p)
}

/// The filter.
#[derive(Debug, Clone)]
pub struct Imm {
    pub config: ImmConfig,
    modes: Vec<Mode>,
    /// Mode probabilities, one per mode.
    mu: Vec<f64>,
    t_secs: Option<f64>,
}

impl Imm {
    pub fn new(config: ImmConfig) -> Self {
        let mut config = config;
        if config.modes.is_empty() {
            config.modes.push(ModeConfig::Ctrv(UkfConfig::default()));
        }
        let modes = config.modes.iter().map(Mode::new).collect();
        let mu = Self::initial(&config);
        Self { config, modes, mu, t_secs: None }
    }

    fn initial(config: &ImmConfig) -> Vec<f64> {
        let n = config.modes.len();
        let given: Vec<f64> = config.initial.iter().map(|p| if p.is_finite() { p.max(0.0) } else { 0.0 }).collect();
        let sum: f64 = given.iter().sum();
        if given.len() == n && sum > 0.0 {
            given.iter().map(|p| p / sum).collect()
        } else {
            vec![1.0 / n as f64; n]
        }
    }

    /// Mode probabilities, in the order of the configured modes.
    pub fn mode_probabilities(&self) -> &[f64] {
        &self.mu
    }

    /// Processes one measurement and returns the combined estimate after it (its NIS: the
    /// modes' NIS weighted by their probabilities before the update).
    pub fn process(&mut self, m: &Measurement) -> Estimate {
        let t = m.t_secs();
        match classify(self.t_secs, m) {
            Step::Skip(at) => return self.estimate(at, None),
            Step::Init => {
                for f in &mut self.modes {
                    f.process(m);
                }
                self.mu = Self::initial(&self.config);
                self.t_secs = Some(t);
                return self.estimate(t, None);
            }
            Step::Advance(_) => {}
        }
        let n = self.modes.len();
        // Mixing: each filter starts from the mixture of all, weighted by how likely each mode
        // was to have led to it, each converted into the filter's own state.
        let p_sw = if n > 1 { self.config.switch_prob.clamp(0.0, 0.5) } else { 0.0 };
        let trans = |i: usize, j: usize| if i == j { 1.0 - p_sw } else { p_sw / (n - 1).max(1) as f64 };
        let predicted: Vec<f64> = (0..n).map(|j| (0..n).map(|i| trans(i, j) * self.mu[i]).sum::<f64>()).collect();
        let states: Vec<ModeState> = self.modes.iter().map(Mode::state).collect();
        for (j, f) in self.modes.iter_mut().enumerate() {
            let w: Vec<f64> = (0..n).map(|i| trans(i, j) * self.mu[i] / predicted[j].max(1e-300)).collect();
            match f {
                Mode::Ctrv(ukf) => {
                    let own = ukf.state().0[3];
                    let var = ukf.config.init_var[2];
                    let polar: Vec<(V5, M5)> = states.iter().map(|s| s.polar(var, own)).collect();
                    let (x, p) = combine_polar(&polar, &w);
                    ukf.set_state(x, p);
                }
                Mode::Cv(ekf) => {
                    let cart: Vec<(V4, M4)> = states.iter().map(ModeState::cartesian).collect();
                    let (x, p) = combine_cartesian(&cart, &w);
                    ekf.set_state(x, p);
                }
            }
        }
        let estimates: Vec<Estimate> = self.modes.iter_mut().map(|f| f.process(m)).collect();
        // Mode probabilities from each filter's innovation likelihood.
        let logs: Option<Vec<f64>> = self.modes.iter().map(Mode::last_log_likelihood).collect();
        self.mu = predicted.clone();
        if let Some(logs) = logs {
            let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let post: Vec<f64> = predicted.iter().zip(&logs).map(|(p, l)| p * (l - top).exp()).collect();
            let sum: f64 = post.iter().sum();
            if sum > 0.0 && sum.is_finite() {
                // No mode is ever ruled out entirely.
                self.mu = post.iter().map(|v| (v / sum).max(1e-6)).collect();
                let s: f64 = self.mu.iter().sum();
                self.mu.iter_mut().for_each(|v| *v /= s);
            }
        }
        self.t_secs = Some(t);
        let nis: Option<f64> = estimates.iter().zip(&predicted).map(|(e, p)| e.nis.map(|v| v * p)).sum();
        self.estimate(t, nis)
    }

    fn estimate(&self, t: f64, nis: Option<f64>) -> Estimate {
        let states: Vec<ModeState> = self.modes.iter().map(Mode::state).collect();
        let cart: Vec<(V4, M4)> = states.iter().map(ModeState::cartesian).collect();
        let (x, p) = combine_cartesian(&cart, &self.mu);
        // Heading and turn rate: the modes' mixture, a constant-velocity mode turning at 0.
        let hint = x[3].atan2(x[2]);
        let polar: Vec<(V5, M5)> =
            states.iter().zip(&self.modes).map(|(s, f)| s.polar(f.yaw_rate_var(), hint)).collect();
        let (xp, _) = combine_polar(&polar, &self.mu);
        Estimate {
            t_secs: t,
            px_m: x[0],
            py_m: x[1],
            vx_mps: x[2],
            vy_mps: x[3],
            yaw_rad: normalize_angle(xp[3]),
            yaw_rate_rps: xp[4],
            nis,
            pos_var_m2: p[(0, 0)] + p[(1, 1)],
        }
    }
}

impl super::Filter for Imm {
    fn process(&mut self, m: &Measurement) -> Estimate {
        Imm::process(self, m)
    }

    fn set_lidar_std(&mut self, std_m: Option<f64>) {
        for f in &mut self.modes {
            match f {
                Mode::Ctrv(u) => u.set_lidar_std(std_m),
                Mode::Cv(e) => e.set_lidar_std(std_m),
            }
        }
    }

    fn shift(&mut self, dx_m: f64, dy_m: f64) {
        for f in &mut self.modes {
            match f {
                Mode::Ctrv(u) => super::Filter::shift(u, dx_m, dy_m),
                Mode::Cv(e) => super::Filter::shift(e, dx_m, dy_m),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_sim::rng::SimRng;

    /// Lidar every 0.1 s of a target that drives straight at 8 m/s, then turns hard at
    /// 0.6 rad/s for 3 s, then drives straight again.
    fn drive(seed: u64) -> Vec<(Measurement, [f64; 4])> {
        let mut rng = SimRng::new(seed);
        let (mut x, mut y, mut yaw) = (0.0f64, 0.0f64, 0.0f64);
        let v = 8.0;
        (0..150)
            .map(|i| {
                let t = i as f64 * 0.1;
                let rate = if (5.0..8.0).contains(&t) { 0.6 } else { 0.0 };
                yaw += rate * 0.1;
                x += v * yaw.cos() * 0.1;
                y += v * yaw.sin() * 0.1;
                let m = Measurement::Lidar { t_secs: t, px_m: x + rng.gauss(0.15), py_m: y + rng.gauss(0.15) };
                (m, [x, y, v * yaw.cos(), v * yaw.sin()])
            })
            .collect()
    }

    #[test]
    fn the_manoeuvre_mode_takes_over_in_the_turn_and_the_steady_one_after_it() {
        let data = drive(3);
        let mut imm = Imm::new(ImmConfig::two_ctrv());
        let mut in_turn = Vec::new();
        let mut straight = Vec::new();
        for (m, _) in &data {
            let e = imm.process(m);
            assert!(e.px_m.is_finite() && e.vx_mps.is_finite());
            let t = m.t_secs();
            if (6.0..8.0).contains(&t) {
                in_turn.push(imm.mode_probabilities()[1]);
            } else if t > 11.0 || (2.0..5.0).contains(&t) {
                straight.push(imm.mode_probabilities()[1]);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&in_turn) > mean(&straight) + 0.2,
            "manoeuvre {} in the turn, {} straight",
            mean(&in_turn),
            mean(&straight)
        );
    }

    #[test]
    fn it_tracks_a_manoeuvring_target_no_worse_than_either_of_its_modes_alone() {
        let rmse_of = |mut step: Box<dyn FnMut(&Measurement) -> Estimate>, data: &[(Measurement, [f64; 4])]| {
            let est: Vec<Estimate> = data.iter().map(|(m, _)| step(m)).collect();
            let truth: Vec<[f64; 4]> = data.iter().map(|(_, g)| *g).collect();
            let r = crate::fusion::eval::rmse(&est[10..], &truth[10..]);
            r.iter().sum::<f64>()
        };
        let (mut total_imm, mut total_steady, mut total_agile) = (0.0, 0.0, 0.0);
        for seed in 1..=5 {
            let data = drive(seed);
            let c = ImmConfig::two_ctrv();
            let ModeConfig::Ctrv(c0) = c.modes[0] else { unreachable!() };
            let ModeConfig::Ctrv(c1) = c.modes[1] else { unreachable!() };
            let mut steady = Ukf::new(c0);
            let mut agile = Ukf::new(c1);
            let mut imm = Imm::new(c);
            total_imm += rmse_of(Box::new(move |m| imm.process(m)), &data);
            total_steady += rmse_of(Box::new(move |m| steady.process(m)), &data);
            total_agile += rmse_of(Box::new(move |m| agile.process(m)), &data);
        }
        assert!(
            total_imm <= total_steady.min(total_agile) * 1.02,
            "IMM {total_imm}, steady {total_steady}, manoeuvre {total_agile}"
        );
    }

    /// On simulated logs it was not tuned on (seeds 201–203; the settings were chosen on 1–10),
    /// the default IMM's summed RMSE over every kind of motion is below the UKF's and the EKF's.
    #[test]
    fn the_default_beats_both_single_filters_on_held_out_simulated_logs() {
        use crate::fusion::ekf::EkfConfig;
        use crate::fusion::synthetic::MotionKind;
        let seeds = [201, 202, 203];
        let (mut ukf, mut ekf, mut imm) = (0.0, 0.0, 0.0);
        for kind in MotionKind::ALL {
            let [u, e, i] = crate::fusion::eval::synthetic_rmse(
                kind,
                &seeds,
                UkfConfig::default(),
                EkfConfig::default(),
                &ImmConfig::default(),
            );
            ukf += u.iter().sum::<f64>();
            ekf += e.iter().sum::<f64>();
            imm += i.iter().sum::<f64>();
        }
        assert!(imm < ukf.min(ekf), "IMM {imm}, UKF {ukf}, EKF {ekf}");
    }

    /// On straight held-out logs (seeds 201–203) the default IMM is at or below the EKF, whose
    /// constant-velocity model is the right one there, in every component: its steady
    /// constant-velocity mode carries it (without that mode its vx and vy were 14 % and 8 % worse).
    #[test]
    fn on_straight_motion_it_is_at_or_below_the_constant_velocity_ekf_in_every_component() {
        use crate::fusion::ekf::EkfConfig;
        use crate::fusion::synthetic::MotionKind;
        let [_, e, i] = crate::fusion::eval::synthetic_rmse(
            MotionKind::Straight,
            &[201, 202, 203],
            UkfConfig::default(),
            EkfConfig::default(),
            &ImmConfig::default(),
        );
        assert!((0..4).all(|k| i[k] <= e[k]), "IMM {i:?}, EKF {e:?}");
    }

    #[test]
    fn bad_input_leaves_no_nan() {
        let mut imm = Imm::new(ImmConfig::default());
        imm.process(&Measurement::Lidar { t_secs: 0.0, px_m: 1.0, py_m: 1.0 });
        for m in [
            Measurement::Radar { t_secs: 0.1, rho_m: 0.0, phi_rad: 0.3, rho_dot_mps: 1.0 },
            Measurement::Lidar { t_secs: f64::NAN, px_m: 1.0, py_m: 1.0 },
            Measurement::Lidar { t_secs: 0.05, px_m: 1.0, py_m: 1.0 },
            Measurement::Lidar { t_secs: 0.2, px_m: 1e12, py_m: -1e12 },
            Measurement::Lidar { t_secs: 10.0, px_m: 2.0, py_m: 2.0 },
        ] {
            let e = imm.process(&m);
            assert!(e.px_m.is_finite() && e.vx_mps.is_finite() && e.pos_var_m2.is_finite(), "{m:?}: {e:?}");
            assert!(imm.mode_probabilities().iter().all(|p| p.is_finite()));
        }
    }
}
