//! A sensor's features, each scored against a robust, slowly adapting model of its own normal
//! values, ramps of their one-second means, and the sensor's score with persistence.

use std::collections::VecDeque;

use super::{PERSISTENCE, RAMP_WARMUP_BLOCKS, WARMUP, Z_CERTAIN, Z_NORMAL};

/// Which deviations of a feature are anomalous.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Side {
    /// Either way (a bias).
    Both,
    /// Only increases (a spread, a share of outliers, a delay).
    Up,
}

/// A robust running model of one feature's normal values.
#[derive(Debug, Clone)]
pub(super) struct Feature {
    pub(super) name: &'static str,
    pub(super) side: Side,
    /// Smallest scale, in the feature's unit (a floor for near-constant features).
    pub(super) floor: f64,
    pub(super) n: u64,
    pub(super) level: f64,
    pub(super) scale: f64,
    pub(super) rate: f64,
    /// Whether the model learns (a statistic with a known normal law need not).
    pub(super) adapts: bool,
    pub(super) last: f64,
    /// The last deviation in robust standard units (for diagnosis).
    pub(super) last_z: f64,
}

impl Feature {
    pub(super) fn new(name: &'static str, side: Side, floor: f64) -> Self {
        Self { name, side, floor, n: 0, level: 0.0, scale: 0.0, rate: 0.01, adapts: true, last: 0.0, last_z: 0.0 }
    }

    /// A feature whose normal level and scale are known (a test statistic): it scores from the
    /// first sample and never learns, so a fault that grows slowly is not learned as normal.
    pub(super) fn known(name: &'static str, side: Side, level: f64, scale: f64) -> Self {
        Self { n: WARMUP, level, scale, adapts: false, ..Self::new(name, side, scale) }
    }

    /// Scores `x` against the model, then updates the model.
    pub(super) fn score(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 1.0;
        }
        self.n += 1;
        if self.n == 1 {
            self.level = x;
            return 0.0;
        }
        let scale = self.scale.max(self.floor);
        let dev = x - self.level;
        let z = match self.side {
            Side::Both => dev.abs() / scale,
            Side::Up => dev.max(0.0) / scale,
        };
        self.last_z = if self.n <= WARMUP { 0.0 } else { z };
        let s = if self.n <= WARMUP { 0.0 } else { ((z - Z_NORMAL) / (Z_CERTAIN - Z_NORMAL)).clamp(0.0, 1.0) };
        if !self.adapts {
            self.last = s;
            return s;
        }
        // Learn fast while warming up, slowly after, ten times slower while anomalous; clip
        // the step so one outlier moves the model little. (Mean absolute deviation × 1.25 is
        // the standard deviation of a normal variable.)
        let rate = if self.n <= WARMUP {
            1.0 / self.n as f64
        } else if s > 0.0 {
            self.rate / 10.0
        } else {
            self.rate
        };
        let clip = if self.n <= WARMUP { f64::INFINITY } else { 3.0 * scale };
        self.level += rate * dev.clamp(-clip, clip);
        self.scale += rate * (1.25 * dev.abs().min(clip) - self.scale);
        self.last = s;
        s
    }
}

/// One-second block means of a residual and a drift score from their steps.
#[derive(Debug, Clone)]
pub(super) struct Ramp {
    pub(super) feature: Feature,
    pub(super) sum: f64,
    pub(super) count: u32,
    pub(super) ticks: u32,
    pub(super) blocks: VecDeque<f64>,
    pub(super) last: f64,
}

impl Ramp {
    pub(super) fn new(name: &'static str, floor: f64) -> Self {
        Self {
            feature: Feature::new(name, Side::Both, floor),
            sum: 0.0,
            count: 0,
            ticks: 0,
            blocks: VecDeque::new(),
            last: 0.0,
        }
    }

    /// Adds this tick's value (if any); every ten ticks closes a block and rescores. The score
    /// is the smallest of the last three block steps' scores when the steps share a sign.
    pub(super) fn tick(&mut self, x: Option<f64>) -> f64 {
        if let Some(x) = x.filter(|v| v.is_finite()) {
            self.sum += x;
            self.count += 1;
        }
        self.ticks += 1;
        if self.ticks < 10 {
            return self.last;
        }
        self.ticks = 0;
        if self.count == 0 {
            return self.last;
        }
        self.blocks.push_back(self.sum / f64::from(self.count));
        self.sum = 0.0;
        self.count = 0;
        while self.blocks.len() > 4 {
            self.blocks.pop_front();
        }
        if self.blocks.len() < 2 {
            return 0.0;
        }
        let n = self.blocks.len();
        let step = self.blocks[n - 1] - self.blocks[n - 2];
        // Learn the typical size of a step.
        self.feature.score(step);
        if n < 4 {
            self.last = 0.0;
            return 0.0;
        }
        let steps: Vec<f64> = (1..4).map(|i| self.blocks[i] - self.blocks[i - 1]).collect();
        let same_sign = steps.iter().all(|d| *d > 0.0) || steps.iter().all(|d| *d < 0.0);
        let scale = self.feature.scale.max(self.feature.floor);
        let smallest = steps.iter().map(|d| d.abs()).fold(f64::INFINITY, f64::min) / scale;
        // Three steps the same way, each well beyond typical: a ramp.
        let ramp = if same_sign { ((smallest - 1.5) / 1.5).clamp(0.0, 1.0) } else { 0.0 };
        self.last = if self.feature.n > RAMP_WARMUP_BLOCKS { ramp } else { 0.0 };
        self.last
    }
}

/// One sensor's scored features.
#[derive(Debug, Clone)]
pub(super) struct Channel {
    pub(super) features: Vec<Feature>,
    pub(super) ramps: Vec<Ramp>,
    pub(super) last_seen: Option<f64>,
    pub(super) mean_interval: f64,
    pub(super) last_digest: Option<u64>,
    pub(super) repeats: u32,
    pub(super) recent: [f64; PERSISTENCE],
    pub(super) recent_pos: usize,
}

impl Channel {
    pub(super) fn new(features: Vec<Feature>, ramps: Vec<Ramp>) -> Self {
        Self {
            features,
            ramps,
            last_seen: None,
            mean_interval: 0.0,
            last_digest: None,
            repeats: 0,
            recent: [0.0; PERSISTENCE],
            recent_pos: 0,
        }
    }

    pub(super) fn heard(&mut self, t_secs: f64, digest: Option<u64>) {
        if let Some(prev) = self.last_seen {
            let dt = (t_secs - prev).max(0.0);
            self.mean_interval =
                if self.mean_interval == 0.0 { dt } else { self.mean_interval + 0.05 * (dt - self.mean_interval) };
        }
        self.last_seen = Some(t_secs);
        match (digest, self.last_digest) {
            (Some(d), Some(p)) if d == p => self.repeats += 1,
            _ => self.repeats = 0,
        }
        if digest.is_some() {
            self.last_digest = digest;
        }
    }

    /// Scores this tick's features (`None`: not measured this tick; its score decays) and ramp
    /// inputs; returns the sensor score and its cause.
    pub(super) fn score(
        &mut self,
        now_secs: f64,
        values: &[Option<f64>],
        ramp_values: &[Option<f64>],
    ) -> (f64, &'static str) {
        let mut best = (0.0, "");
        for (f, v) in self.features.iter_mut().zip(values) {
            let s = match v {
                Some(x) => f.score(*x),
                None => {
                    f.last *= 0.8;
                    f.last
                }
            };
            if s > best.0 {
                best = (s, f.name);
            }
        }
        for (r, v) in self.ramps.iter_mut().zip(ramp_values) {
            let s = r.tick(*v);
            if s > best.0 {
                best = (s, r.feature.name);
            }
        }
        // Silence: more than three usual intervals (at least 0.3 s) without a message.
        if let Some(seen) = self.last_seen {
            let usual = self.mean_interval.max(0.1);
            let s = (((now_secs - seen) / usual - 3.0) / 3.0).clamp(0.0, 1.0);
            if s > best.0 {
                best = (s, "silence");
            }
        }
        // Exact repeats of a noisy measurement.
        if self.repeats >= 2 {
            best = (1.0, "repeats");
        }
        self.recent[self.recent_pos] = best.0;
        self.recent_pos = (self.recent_pos + 1) % PERSISTENCE;
        let mut r = self.recent;
        r.sort_by(f64::total_cmp);
        (r[PERSISTENCE - 2], best.1)
    }
}
