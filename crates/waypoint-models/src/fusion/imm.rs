//! An interacting multiple model (IMM) filter: two CTRV unscented Kalman filters that differ
//! only in process noise — one for steady motion, one for manoeuvres — mixed at every
//! measurement by their mode probabilities (Blom and Bar-Shalom's IMM). When one motion model
//! with fixed noise does not fit all the motion in a log, the mixture follows whichever fits
//! the recent measurements.
//!
//! Settings are set from what the modes mean, not fitted to a log: steady 0.5 m/s² and
//! 0.2 rad/s², manoeuvring 3 m/s² and 1.5 rad/s² (one sigma); a 5 % chance of switching per
//! measurement; starting 80 % steady.

use nalgebra::{SMatrix, SVector};

use super::ukf::{Ukf, UkfConfig};
use super::{classify, normalize_angle, Estimate, Measurement, Step};

type V5 = SVector<f64, 5>;
type M5 = SMatrix<f64, 5, 5>;

/// IMM settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImmConfig {
    pub steady: UkfConfig,
    pub manoeuvre: UkfConfig,
    /// Probability of switching mode between two measurements.
    pub switch_prob: f64,
    /// Probability of the steady mode at the start.
    pub initial_steady: f64,
}

impl Default for ImmConfig {
    fn default() -> Self {
        let base = UkfConfig::default();
        Self {
            steady: UkfConfig { std_accel_mps2: 0.5, std_yaw_accel_rps2: 0.2, ..base },
            manoeuvre: UkfConfig { std_accel_mps2: 3.0, std_yaw_accel_rps2: 1.5, ..base },
            switch_prob: 0.05,
            initial_steady: 0.8,
        }
    }
}

/// The filter.
#[derive(Debug, Clone)]
pub struct Imm {
    pub config: ImmConfig,
    filters: [Ukf; 2],
    /// Mode probabilities (steady, manoeuvre).
    mu: [f64; 2],
    t_secs: Option<f64>,
}

/// The probability-weighted mean and covariance of states (headings averaged on the circle,
/// spreads included).
fn combine(states: &[(V5, M5)], w: &[f64]) -> (V5, M5) {
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

impl Imm {
    pub fn new(config: ImmConfig) -> Self {
        let mu0 = config.initial_steady.clamp(0.0, 1.0);
        Self {
            config,
            filters: [Ukf::new(config.steady), Ukf::new(config.manoeuvre)],
            mu: [mu0, 1.0 - mu0],
            t_secs: None,
        }
    }

    /// Mode probabilities (steady, manoeuvre).
    pub fn mode_probabilities(&self) -> [f64; 2] {
        self.mu
    }

    /// Processes one measurement and returns the combined estimate after it (its NIS: the
    /// modes' NIS weighted by their probabilities before the update).
    pub fn process(&mut self, m: &Measurement) -> Estimate {
        let t = m.t_secs();
        match classify(self.t_secs, m) {
            Step::Skip(at) => return self.estimate(at, None),
            Step::Init => {
                for f in &mut self.filters {
                    f.process(m);
                }
                let mu0 = self.config.initial_steady.clamp(0.0, 1.0);
                self.mu = [mu0, 1.0 - mu0];
                self.t_secs = Some(t);
                return self.estimate(t, None);
            }
            Step::Advance(_) => {}
        }
        // Mixing: each filter starts from the mixture of both, weighted by how likely each
        // mode was to have led to it.
        let p_sw = self.config.switch_prob.clamp(0.0, 0.5);
        let trans = [[1.0 - p_sw, p_sw], [p_sw, 1.0 - p_sw]];
        let predicted: [f64; 2] = std::array::from_fn(|j| (0..2).map(|i| trans[i][j] * self.mu[i]).sum::<f64>());
        let states: Vec<(V5, M5)> = self.filters.iter().map(|f| (*f.state().0, *f.state().1)).collect();
        for (j, f) in self.filters.iter_mut().enumerate() {
            let w: Vec<f64> = (0..2).map(|i| trans[i][j] * self.mu[i] / predicted[j].max(1e-300)).collect();
            let (x, p) = combine(&states, &w);
            f.set_state(x, p);
        }
        let estimates: Vec<Estimate> = self.filters.iter_mut().map(|f| f.process(m)).collect();
        // Mode probabilities from each filter's innovation likelihood.
        let logs: Vec<Option<f64>> = self.filters.iter().map(Ukf::last_log_likelihood).collect();
        if let (Some(a), Some(b)) = (logs[0], logs[1]) {
            let top = a.max(b);
            let post = [predicted[0] * (a - top).exp(), predicted[1] * (b - top).exp()];
            let sum = post[0] + post[1];
            if sum > 0.0 && sum.is_finite() {
                // Neither mode is ever ruled out entirely.
                self.mu = post.map(|v| (v / sum).clamp(1e-6, 1.0 - 1e-6));
            }
        } else {
            self.mu = predicted;
        }
        self.t_secs = Some(t);
        let nis = match (estimates[0].nis, estimates[1].nis) {
            (Some(a), Some(b)) => Some(predicted[0] * a + predicted[1] * b),
            _ => None,
        };
        self.estimate(t, nis)
    }

    fn estimate(&self, t: f64, nis: Option<f64>) -> Estimate {
        let states: Vec<(V5, M5)> = self.filters.iter().map(|f| (*f.state().0, *f.state().1)).collect();
        let (x, p) = combine(&states, &self.mu);
        let (v, yaw) = (x[2], x[3]);
        Estimate {
            t_secs: t,
            px_m: x[0],
            py_m: x[1],
            vx_mps: v * yaw.cos(),
            vy_mps: v * yaw.sin(),
            yaw_rad: normalize_angle(yaw),
            yaw_rate_rps: x[4],
            nis,
            pos_var_m2: p[(0, 0)] + p[(1, 1)],
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
        let mut imm = Imm::new(ImmConfig::default());
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
            let c = ImmConfig::default();
            let mut imm = Imm::new(c);
            let mut steady = Ukf::new(c.steady);
            let mut agile = Ukf::new(c.manoeuvre);
            total_imm += rmse_of(Box::new(move |m| imm.process(m)), &data);
            total_steady += rmse_of(Box::new(move |m| steady.process(m)), &data);
            total_agile += rmse_of(Box::new(move |m| agile.process(m)), &data);
        }
        assert!(
            total_imm <= total_steady.min(total_agile) * 1.02,
            "IMM {total_imm}, steady {total_steady}, manoeuvre {total_agile}"
        );
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
