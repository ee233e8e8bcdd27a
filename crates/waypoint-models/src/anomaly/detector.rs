//! A streaming anomaly detector for one channel.
//!
//! Three kinds of evidence are computed from the past only, each as a deviation in units of
//! the channel's own robust scale: the new value against a slowly adapting level (spikes), a
//! fast level against the slow one (level shifts, drift), and a fast spread against the slow
//! spread (noise-level changes). The largest is the raw score. Raw scores are then judged
//! against their own recent history, as an anomaly likelihood: how unusual is the short-term
//! average raw score given its long-term distribution? Recurring patterns (seasonality, a
//! noisy channel) raise that distribution and stop scoring. After an alarm the output is held
//! down for a refractory period, so that one event raises one alarm.
//!
//! Everything is O(1) per sample; the state is a few numbers and can be saved.

/// Detector settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetectorConfig {
    /// Adaptation rate of the slow level and spread (per sample).
    pub slow_rate: f64,
    /// Adaptation rate of the fast level and spread.
    pub fast_rate: f64,
    /// Adaptation rate of the raw-score distribution.
    pub likelihood_rate: f64,
    /// Samples averaged for the short-term raw score.
    pub short_window: usize,
    /// Samples before the detector scores at all.
    pub warmup: usize,
    /// After an output above `alarm_level`, outputs are capped at `refractory_cap` for this
    /// many samples.
    pub refractory: usize,
    pub alarm_level: f64,
    pub refractory_cap: f64,
    /// How many more standard deviations a single sample needs than the short-term average.
    pub single_sample_margin: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            slow_rate: 0.005,
            fast_rate: 0.1,
            likelihood_rate: 0.002,
            short_window: 5,
            warmup: 50,
            refractory: 200,
            alarm_level: 0.99,
            refractory_cap: 0.5,
            single_sample_margin: 1.5,
        }
    }
}

/// The detector's state (serialisable).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detector {
    pub config: DetectorConfig,
    n: u64,
    slow_mean: f64,
    slow_dev: f64,
    fast_mean: f64,
    fast_dev: f64,
    raw_mean: f64,
    raw_var: f64,
    recent: Vec<f64>,
    recent_pos: usize,
    hold: usize,
    /// The last raw score (for inspection).
    pub last_raw: f64,
}

fn normal_cdf(z: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 via erf.
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592)
            * t
            * (-x * x).exp();
    let erf = if x >= 0.0 { y } else { -y };
    0.5 * (1.0 + erf)
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            n: 0,
            slow_mean: 0.0,
            slow_dev: 0.0,
            fast_mean: 0.0,
            fast_dev: 0.0,
            raw_mean: 0.0,
            raw_var: 0.0,
            recent: vec![0.0; config.short_window.max(1)],
            recent_pos: 0,
            hold: 0,
            last_raw: 0.0,
        }
    }

    /// Consumes one sample and returns its anomaly score in [0, 1]. Non-finite samples score
    /// 1 (a sensor producing NaN is unhealthy) and do not change the state.
    pub fn update(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 1.0;
        }
        let c = self.config;
        self.n += 1;
        if self.n == 1 {
            self.slow_mean = x;
            self.fast_mean = x;
            return 0.0;
        }
        // Scale floor: relative to the level, so a flat signal does not divide by zero.
        let floor = 1e-3 * (self.slow_mean.abs() + 1e-3);
        let scale = self.slow_dev.max(floor);
        let spike = (x - self.slow_mean).abs() / scale;
        let shift = (self.fast_mean - self.slow_mean).abs() / scale;
        let spread = (self.fast_dev.max(floor) / scale).ln().abs() * 3.0;
        let raw = spike.max(shift).max(spread).min(1e6);
        self.last_raw = raw;
        // Update the level and spread estimates after scoring (the score uses only the past).
        let dev = (x - self.slow_mean).abs();
        self.slow_mean += c.slow_rate * (x - self.slow_mean);
        self.slow_dev += c.slow_rate * (dev - self.slow_dev);
        let fdev = (x - self.fast_mean).abs();
        self.fast_mean += c.fast_rate * (x - self.fast_mean);
        self.fast_dev += c.fast_rate * (fdev - self.fast_dev);
        // Short-term average raw score.
        self.recent[self.recent_pos] = raw.ln_1p();
        self.recent_pos = (self.recent_pos + 1) % self.recent.len();
        let short = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        // Likelihood against the long-term distribution of (log) raw scores.
        let sd = self.raw_var.sqrt().max(0.05);
        // The short-term average, or the current sample alone when it is far more extreme
        // (a single spike should not be averaged away).
        let z = ((short - self.raw_mean) / sd).max((raw.ln_1p() - self.raw_mean) / sd - c.single_sample_margin);
        let lr = if self.n < 2 * c.warmup as u64 { 1.0 / self.n as f64 } else { c.likelihood_rate };
        let d = raw.ln_1p() - self.raw_mean;
        self.raw_mean += lr * d;
        self.raw_var += lr * (d * d - self.raw_var);
        if self.n <= c.warmup as u64 {
            return 0.0;
        }
        let mut score = normal_cdf(z);
        if self.hold > 0 {
            self.hold -= 1;
            score = score.min(c.refractory_cap);
        } else if score >= c.alarm_level {
            self.hold = c.refractory;
        }
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_after_steady_noise_scores_high_once_and_noise_does_not() {
        let mut d = Detector::new(DetectorConfig::default());
        let mut rng = waypoint_sim::rng::SimRng::new(1);
        let mut max_clean: f64 = 0.0;
        for i in 0..2000 {
            let s = d.update(10.0 + rng.gauss(0.5));
            if i > 200 {
                max_clean = max_clean.max(s);
            }
        }
        assert!(max_clean < 0.999, "clean noise scored {max_clean}");
        let spike = d.update(30.0);
        assert!(spike > 0.999, "spike scored {spike}");
        // Held down right after the alarm.
        assert!(d.update(30.0) <= 0.5);
    }

    #[test]
    fn a_level_shift_is_detected() {
        let mut d = Detector::new(DetectorConfig::default());
        let mut rng = waypoint_sim::rng::SimRng::new(2);
        let mut max_clean: f64 = 0.0;
        for i in 0..1500 {
            let s = d.update(rng.gauss(1.0));
            if i > 300 {
                max_clean = max_clean.max(s);
            }
        }
        let best = (0..30).map(|_| d.update(6.0 + rng.gauss(1.0))).fold(0.0, f64::max);
        assert!(best > 0.99 && best > max_clean, "shift {best}, clean max {max_clean}");
        assert_eq!(d.update(f64::NAN), 1.0);
    }
}
