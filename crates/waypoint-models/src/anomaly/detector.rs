//! A streaming anomaly detector for one channel.
//!
//! Two kinds of evidence are computed from the past only:
//!
//! - **Level**: the new value against a slowly adapting level (spikes), a fast level against
//!   the slow one (level shifts, drift), and a fast spread against the slow spread (noise-level
//!   changes), each in units of the channel's own robust scale; the largest is the raw score.
//! - **Shape**: the recent shape of the series (the last `shape_dims` × `shape_segment`
//!   samples, averaged per segment and scaled by the range seen so far) against a memory of
//!   past shapes; the raw score is the mean distance to the `shape_k` nearest. A pattern that
//!   recurs (a daily cycle) finds itself in the memory; a jump inside the cycle, a flat line
//!   where there was a cycle, or a new rhythm does not.
//!
//! Each raw score is judged against its own history, as an anomaly likelihood: how unusual is
//! the short-term average of its logarithm given the long-term distribution? Recurring
//! patterns and noisy channels raise that distribution and stop scoring. The stronger of the
//! two becomes a tail probability `q`, reported on a log scale, `score = -log10(q) / 10`
//! clamped to [0, 1] (0.1: one in ten; 0.3: one in a thousand; 1.0: one in 10^10), which keeps
//! the scores of rare events apart instead of crowding them at 1. After an alarm the output is
//! held down for a refractory period, so that one event raises one alarm.
//!
//! Per sample: O(1) for the level evidence, O(`shape_memory` × `shape_dims`) for the shape;
//! the state is a few numbers and a few kilobytes of shapes, and can be saved.

/// Detector settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetectorConfig {
    /// Adaptation rate of the slow level and spread (per sample).
    pub slow_rate: f64,
    /// Adaptation rate of the fast level and spread.
    pub fast_rate: f64,
    /// Adaptation rate of the raw-score distributions.
    pub likelihood_rate: f64,
    /// Samples averaged for the short-term raw score.
    pub short_window: usize,
    /// Samples before the detector scores at all.
    pub warmup: usize,
    /// After an output at or above `alarm_level`, outputs are capped at `refractory_cap` for
    /// this many samples.
    pub refractory: usize,
    pub alarm_level: f64,
    pub refractory_cap: f64,
    /// How many more standard deviations a single sample needs than the short-term average.
    pub single_sample_margin: f64,
    /// Samples averaged into one element of a shape.
    pub shape_segment: usize,
    /// Past shapes remembered.
    pub shape_memory: usize,
    /// A shape is remembered every this many samples.
    pub shape_stride: usize,
    /// Nearest past shapes averaged.
    pub shape_k: usize,
    /// Standard units the level evidence is discounted by once the shape evidence scores (a
    /// level change the shape memory has seen before, a daily step, counts for less).
    #[serde(default)]
    pub level_discount: f64,
}

/// Shape distances are floored at this fraction of the range.
pub const SHAPE_FLOOR: f64 = 1e-3;

/// Elements of a shape.
pub const SHAPE_DIMS: usize = 8;

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            slow_rate: 0.005,
            fast_rate: 0.1,
            likelihood_rate: 0.002,
            short_window: 10,
            warmup: 50,
            refractory: 100,
            alarm_level: 0.11,
            refractory_cap: 0.0,
            single_sample_margin: 3.0,
            shape_segment: 4,
            shape_memory: 256,
            shape_stride: 4,
            shape_k: 3,
            level_discount: 2.0,
        }
    }
}

/// Turns a raw score into a z-score against the long-term distribution of its logarithm.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Likelihood {
    n: u64,
    mean: f64,
    var: f64,
    recent: Vec<f64>,
    pos: usize,
}

impl Likelihood {
    fn new(window: usize) -> Self {
        Self { n: 0, mean: 0.0, var: 0.0, recent: vec![0.0; window.max(1)], pos: 0 }
    }

    /// z of the short-term average of `log_raw` (or of this sample alone, `margin` deviations
    /// stricter), then learns from it.
    fn z(&mut self, log_raw: f64, c: &DetectorConfig) -> f64 {
        self.n += 1;
        self.recent[self.pos] = log_raw;
        self.pos = (self.pos + 1) % self.recent.len();
        let short = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        let sd = self.var.sqrt().max(0.05);
        let z = if self.n > 1 {
            ((short - self.mean) / sd).max((log_raw - self.mean) / sd - c.single_sample_margin)
        } else {
            0.0
        };
        let lr = if self.n < 2 * c.warmup as u64 { 1.0 / self.n as f64 } else { c.likelihood_rate };
        let d = log_raw - self.mean;
        self.mean += lr * d;
        self.var += lr * (d * d - self.var);
        z
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
    level: Likelihood,
    shape: Likelihood,
    /// The last `SHAPE_DIMS × shape_segment` samples (a ring).
    history: Vec<f64>,
    lo: f64,
    hi: f64,
    /// Remembered shapes, `SHAPE_DIMS` each (a ring of `shape_memory`).
    shapes: Vec<f32>,
    shapes_pos: usize,
    hold: usize,
    /// The last raw level score (for inspection).
    pub last_raw: f64,
    /// The last z-scores of the level and the shape evidence (for inspection).
    pub last_z: [f64; 2],
}

/// Upper tail probability of the standard normal, accurate in relative terms far out in the
/// tail (Numerical Recipes' erfc approximation, relative error < 1.2e-7).
pub fn normal_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * (-x * x + poly).exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

/// The reported score of a z-score: `-log10(tail) / 10`, clamped to [0, 1].
pub fn score_of_z(z: f64) -> f64 {
    (-normal_tail(z).max(1e-300).log10() / 10.0).clamp(0.0, 1.0)
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        let seg = config.shape_segment.max(1);
        Self {
            config,
            n: 0,
            slow_mean: 0.0,
            slow_dev: 0.0,
            fast_mean: 0.0,
            fast_dev: 0.0,
            level: Likelihood::new(config.short_window),
            shape: Likelihood::new(config.short_window),
            history: vec![0.0; SHAPE_DIMS * seg],
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            shapes: Vec::with_capacity(config.shape_memory * SHAPE_DIMS),
            shapes_pos: 0,
            hold: 0,
            last_raw: 0.0,
            last_z: [0.0; 2],
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
        let w = self.history.len();
        self.history[(self.n as usize - 1) % w] = x;
        if self.n == 1 {
            self.slow_mean = x;
            self.fast_mean = x;
            self.lo = x;
            self.hi = x;
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
        let mut z = self.level.z(raw.ln_1p(), &c);
        self.last_z = [z, 0.0];
        if self.n as usize >= w {
            self.last_z[1] = self.shape_z(x);
            if self.shapes.len() / SHAPE_DIMS >= c.shape_k.max(16) {
                z -= c.level_discount;
            }
            z = z.max(self.last_z[1]);
        } else {
            self.lo = self.lo.min(x);
            self.hi = self.hi.max(x);
        }
        if self.n <= c.warmup as u64 {
            return 0.0;
        }
        let mut score = score_of_z(z);
        if self.hold > 0 {
            self.hold -= 1;
            score = score.min(c.refractory_cap);
        } else if score >= c.alarm_level {
            self.hold = c.refractory;
        }
        score
    }

    /// The shape evidence's z-score for the newest sample `x`; remembers the shape every
    /// `shape_stride` samples.
    fn shape_z(&mut self, x: f64) -> f64 {
        let c = self.config;
        let seg = c.shape_segment.max(1);
        let w = self.history.len();
        let n = self.n as usize;
        // The shape, oldest segment first, in units of the range seen before this sample.
        let range = (self.hi - self.lo).max(1e-9 * (self.hi.abs() + 1.0));
        let mut shape = [0f32; SHAPE_DIMS];
        for (j, e) in shape.iter_mut().enumerate() {
            let sum: f64 = (0..seg).map(|i| self.history[(n - w + j * seg + i) % w]).sum();
            *e = ((sum / seg as f64 - self.lo) / range) as f32;
        }
        self.lo = self.lo.min(x);
        self.hi = self.hi.max(x);
        let remembered = self.shapes.len() / SHAPE_DIMS;
        let k = c.shape_k.max(1);
        let mut z = 0.0;
        if remembered >= k.max(16) {
            // The k smallest squared distances, by insertion into a short sorted list.
            let mut best = vec![f32::INFINITY; k];
            for past in self.shapes.chunks_exact(SHAPE_DIMS) {
                let d: f32 = past.iter().zip(&shape).map(|(a, b)| (a - b) * (a - b)).sum();
                if d < best[k - 1] {
                    let mut i = k - 1;
                    while i > 0 && best[i - 1] > d {
                        best[i] = best[i - 1];
                        i -= 1;
                    }
                    best[i] = d;
                }
            }
            let alpha = best.iter().map(|d| f64::from(d.sqrt())).sum::<f64>() / k as f64;
            // Differences under a thousandth of the range are not told apart (a noiseless cycle
            // would otherwise swing between exact and near repeats by orders of magnitude).
            z = self.shape.z((alpha + SHAPE_FLOOR).ln(), &c);
        }
        if n.is_multiple_of(c.shape_stride.max(1)) && c.shape_memory > 0 {
            if remembered < c.shape_memory {
                self.shapes.extend_from_slice(&shape);
            } else {
                let at = self.shapes_pos * SHAPE_DIMS;
                self.shapes[at..at + SHAPE_DIMS].copy_from_slice(&shape);
                self.shapes_pos = (self.shapes_pos + 1) % c.shape_memory;
            }
        }
        z
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
        // Clean noise stays below one in a thousand (0.3).
        assert!(max_clean < 0.3, "clean noise scored {max_clean}");
        let spike = d.update(30.0);
        assert!(spike > 0.5, "spike scored {spike}");
        // Held down right after the alarm.
        assert_eq!(d.update(30.0), 0.0);
    }

    #[test]
    fn a_level_shift_raises_an_alarm_within_a_few_samples() {
        let mut d = Detector::new(DetectorConfig::default());
        let alarm = d.config.alarm_level;
        let mut rng = waypoint_sim::rng::SimRng::new(2);
        let mut max_clean: f64 = 0.0;
        for i in 0..1500 {
            let s = d.update(rng.gauss(1.0));
            if i > 300 {
                max_clean = max_clean.max(s);
            }
        }
        let after: Vec<f64> = (0..30).map(|_| d.update(6.0 + rng.gauss(1.0))).collect();
        let first = after.iter().position(|s| *s >= alarm);
        assert!(max_clean < alarm, "clean noise scored {max_clean}");
        assert!(first.is_some_and(|k| k < 10), "shift scores {after:?}");
        assert_eq!(d.update(f64::NAN), 1.0);
    }

    #[test]
    fn a_held_level_inside_a_daily_cycle_is_a_new_shape() {
        // A noiseless cycle of 288 samples (a day at five minutes), then four hours held at a
        // level within the range already seen, which the cycle only passes through. The
        // level evidence alone sits near the alarm level at the cycle's peaks; the shape
        // evidence tells the held level from the cycle.
        let day = |i: usize| 50.0 + 40.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin();
        let mut d = Detector::new(DetectorConfig::default());
        let mut max_cycle: f64 = 0.0;
        for i in 0..288 * 8 {
            let s = d.update(day(i));
            if i > 288 * 4 {
                max_cycle = max_cycle.max(s);
            }
        }
        let start = 288 * 8;
        // The level at a quarter of the way into the day (the cycle's top), held.
        let (mut jump, mut shape_z, mut cycle_shape_z): (f64, f64, f64) = (0.0, 0.0, 0.0);
        for _ in 0..48 {
            jump = jump.max(d.update(day(72)));
            shape_z = shape_z.max(d.last_z[1]);
        }
        let mut again = Detector::new(DetectorConfig::default());
        for i in 0..start {
            again.update(day(i));
            if i > 288 * 4 {
                cycle_shape_z = cycle_shape_z.max(again.last_z[1]);
            }
        }
        assert!(max_cycle < 0.2, "the known cycle scored {max_cycle}");
        assert!(jump >= DetectorConfig::default().alarm_level && jump > max_cycle, "the held level scored {jump}");
        assert!(shape_z > cycle_shape_z + 2.0, "shape z {shape_z} against the cycle's {cycle_shape_z}");
    }

    #[test]
    fn tail_probabilities_stay_apart_far_out() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-6);
        assert!((normal_tail(3.0) - 1.35e-3).abs() < 1e-5);
        assert!((normal_tail(-3.0) - (1.0 - 1.35e-3)).abs() < 1e-5);
        // Where 1 - cdf would be 0 in f64, the tail keeps its order.
        assert!(normal_tail(9.0) > normal_tail(10.0) && normal_tail(10.0) > 0.0);
        assert!(score_of_z(3.0) > 0.28 && score_of_z(3.0) < 0.29);
        assert!(score_of_z(-5.0) < 1e-6);
        assert_eq!(score_of_z(40.0), 1.0);
    }
}
