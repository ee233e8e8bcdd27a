//! Live health of the five simulated sensors.
//!
//! Every tick, each sensor's output is reduced to health features that a fault would move:
//! how long since the sensor last spoke against its usual interval (dropout), whether it
//! repeats itself exactly (stuck), how late its data arrives (latency), and residuals against a
//! reference — the lidar's ground against the flat road; the radar's range change between scans
//! against its measured range rate, and, per target followed for one to two seconds, its range
//! against the integral of its range rate (a growing range bias: drift); camera boxes against
//! the previous two frames' (edges move smoothly; noise does not), and against the radar
//! targets they show (the radar's bearing does not share a camera drift); the IMU against the
//! motion of the vehicle's pose; GPS fixes against the pose (the pose is the scene's ego pose,
//! standing in for the vehicle's localisation). From the residuals come a level (a bias), a
//! spread (noise), the share or size of outliers (spikes), a ramp (the residual's one-second
//! block means moving the same way three times running) or a slope (drift).
//!
//! Each feature is scored online against a robust, slowly adapting model of its own normal
//! values (level and scale with clipped updates, adapting ten times slower while the feature is
//! anomalous, so a lasting fault is not learned as normal) — or, for a test statistic whose
//! normal law is known (the GPS slope in standard errors), against that law: `z` standard units
//! from normal maps linearly to a score, 0 at [`Z_NORMAL`] and 1 at [`Z_CERTAIN`]. A sensor's
//! score is the largest of its features', and it must be high in two of three ticks (a single
//! odd tick — a GPS multipath jump's edge — does not alarm). Only data up to the current tick is
//! used.

use std::collections::VecDeque;

use waypoint_sim::fault::Sensor;
use waypoint_sim::sensors::{CameraConfig, SensorsConfig};
use waypoint_sim::Frame;

/// Ticks in the persistence window; a score must be high in two of them.
pub const PERSISTENCE: usize = 3;

/// Default alarm threshold on the [0, 1] scores.
pub const DEFAULT_THRESHOLD: f64 = 0.99;

/// Deviation (in robust standard units) scoring 0, and scoring 1.
pub const Z_NORMAL: f64 = 4.0;
pub const Z_CERTAIN: f64 = 8.0;

/// Samples a feature learns from before it scores.
const WARMUP: u64 = 100;

/// One-second blocks a ramp learns the size of typical steps from before it scores.
const RAMP_WARMUP_BLOCKS: u64 = 15;

/// Which deviations of a feature are anomalous.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    /// Either way (a bias).
    Both,
    /// Only increases (a spread, a share of outliers, a delay).
    Up,
}

/// A robust running model of one feature's normal values.
#[derive(Debug, Clone)]
struct Feature {
    name: &'static str,
    side: Side,
    /// Smallest scale, in the feature's unit (a floor for near-constant features).
    floor: f64,
    n: u64,
    level: f64,
    scale: f64,
    rate: f64,
    /// Whether the model learns (a statistic with a known normal law need not).
    adapts: bool,
    last: f64,
    /// The last deviation in robust standard units (for diagnosis).
    last_z: f64,
}

impl Feature {
    fn new(name: &'static str, side: Side, floor: f64) -> Self {
        Self { name, side, floor, n: 0, level: 0.0, scale: 0.0, rate: 0.01, adapts: true, last: 0.0, last_z: 0.0 }
    }

    /// A feature whose normal level and scale are known (a test statistic): it scores from the
    /// first sample and never learns, so a fault that grows slowly is not learned as normal.
    fn known(name: &'static str, side: Side, level: f64, scale: f64) -> Self {
        Self { n: WARMUP, level, scale, adapts: false, ..Self::new(name, side, scale) }
    }

    /// Scores `x` against the model, then updates the model.
    fn score(&mut self, x: f64) -> f64 {
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
struct Ramp {
    feature: Feature,
    sum: f64,
    count: u32,
    ticks: u32,
    blocks: VecDeque<f64>,
    last: f64,
}

impl Ramp {
    fn new(name: &'static str, floor: f64) -> Self {
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
    fn tick(&mut self, x: Option<f64>) -> f64 {
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
struct Channel {
    features: Vec<Feature>,
    ramps: Vec<Ramp>,
    last_seen: Option<f64>,
    mean_interval: f64,
    last_digest: Option<u64>,
    repeats: u32,
    recent: [f64; PERSISTENCE],
    recent_pos: usize,
}

impl Channel {
    fn new(features: Vec<Feature>, ramps: Vec<Ramp>) -> Self {
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

    fn heard(&mut self, t_secs: f64, digest: Option<u64>) {
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
    fn score(&mut self, now_secs: f64, values: &[Option<f64>], ramp_values: &[Option<f64>]) -> (f64, &'static str) {
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

/// One sensor's health in one tick.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SensorHealth {
    pub sensor: Sensor,
    pub enabled: bool,
    /// Score in [0, 1].
    pub score: f64,
    pub alarm: bool,
    /// The feature that gave the score.
    pub cause: &'static str,
    /// Some of the sensor's features are still learning what normal looks like.
    pub learning: bool,
}

/// Scores the five sensors of a scene, tick by tick.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    channels: [Channel; 5],
    pub threshold: f64,
    /// Boxes of the previous camera frame: centre x, y, width, height.
    prev_camera_boxes: Vec<[f64; 4]>,
    /// Last second of camera matches (jumped, matched) and last two seconds of radar rate
    /// residuals.
    camera_window: VecDeque<(usize, usize)>,
    radar_window: VecDeque<Vec<f64>>,
    /// The vehicle pose's time, speed and heading at the previous tick.
    prev_pose: Option<(f64, f64, f64)>,
    /// GPS residuals (fix − pose) of the last ten fixes, and the previous residual.
    gps_residuals: VecDeque<[f64; 2]>,
    prev_gps_residual: Option<[f64; 2]>,
    /// GPS residuals (time, residual) of the last [`GPS_TRACK_SECS`].
    gps_track: VecDeque<(f64, [f64; 2])>,
    /// Where the radar and the camera sit, and the camera's optics.
    radar_forward_m: f64,
    camera: CameraConfig,
    /// The latest radar scans (the last is the previous scan for the next one): time, and
    /// (range, azimuth) per target.
    recent_radar: VecDeque<(f64, Vec<(f64, f64)>)>,
    /// Last second of camera box offsets from the radar targets they show, pixels.
    camera_radar_window: VecDeque<Vec<f64>>,
    range_chains: Vec<RangeChain>,
    /// Edges (left, top, right, bottom) of the boxes of the last two camera frames, newest last.
    camera_edges: VecDeque<Vec<[f64; 4]>>,
    /// Last second of the boxes' edge second differences, pixels.
    camera_rough_window: VecDeque<Vec<f64>>,
    /// The chains' median slope over the last [`DRIFT_PERSISTENCE`] ticks.
    range_drift_recent: VecDeque<f64>,
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
    }
}

/// Change (m) between the means of three GPS residuals and the three before them that marks
/// a step (a multipath jump, 3 m or more): the means' noise is 0.4 m a side.
const GPS_STEP_M: f64 = 2.0;

/// Seconds of GPS residuals kept: a fit over the middle, and three fixes either side to find
/// steps at its edges.
const GPS_TRACK_SECS: f64 = 4.65;

/// Least-squares slope (per second) of 2-D residuals that may step (a GPS multipath jump and
/// its end): steps are found where the mean of three samples differs from the mean of the three
/// before by more than [`GPS_STEP_M`] (the largest such difference nearby), and each stretch
/// between steps has its own intercept. The first and last three samples only serve to find
/// steps. Returns the slope per axis in standard errors (from the fit's own residuals), so
/// a window cut short by steps does not look steeper; `None` with fewer than ten samples in the
/// fit.
fn stepwise_slope(samples: &VecDeque<(f64, [f64; 2])>) -> Option<[f64; 2]> {
    const K: usize = 3;
    let n = samples.len();
    if n < 10 + 2 * K {
        return None;
    }
    let mean = |range: std::ops::Range<usize>| {
        let m = range.len() as f64;
        range.fold([0.0, 0.0], |a, i| [a[0] + samples[i].1[0] / m, a[1] + samples[i].1[1] / m])
    };
    // Step size before sample k, for k in K..=n-K.
    let step: Vec<f64> = (0..=n)
        .map(|k| {
            if k < K || k + K > n {
                return 0.0;
            }
            let (a, b) = (mean(k - K..k), mean(k..k + K));
            (b[0] - a[0]).hypot(b[1] - a[1])
        })
        .collect();
    let is_step = |k: usize| step[k] > GPS_STEP_M && step[k] >= step[k - 1] && step[k] >= step[k + 1];
    let (mut sxx, mut sxy, mut syy) = (0.0, [0.0, 0.0], [0.0, 0.0]);
    let (mut start, mut stretches, mut count) = (K, 0, 0);
    for end in K + 1..=n - K {
        if end < n - K && !is_step(end) {
            continue;
        }
        let part = &samples.range(start..end).collect::<Vec<_>>();
        start = end;
        stretches += 1;
        count += part.len();
        let m = part.len() as f64;
        let mt = part.iter().map(|s| s.0).sum::<f64>() / m;
        let mx = part.iter().map(|s| s.1[0]).sum::<f64>() / m;
        let my = part.iter().map(|s| s.1[1]).sum::<f64>() / m;
        for s in part {
            let dt = s.0 - mt;
            sxx += dt * dt;
            sxy[0] += dt * (s.1[0] - mx);
            sxy[1] += dt * (s.1[1] - my);
            syy[0] += (s.1[0] - mx).powi(2);
            syy[1] += (s.1[1] - my).powi(2);
        }
    }
    let dof = count.checked_sub(stretches + 1).filter(|d| *d >= 5)? as f64;
    if sxx <= 0.0 {
        return None;
    }
    let t = |a: usize| {
        let slope = sxy[a] / sxx;
        let sigma = ((syy[a] - slope * sxy[a]) / dof).max(1e-12).sqrt();
        slope * sxx.sqrt() / sigma
    };
    Some([t(0), t(1)])
}

/// Appends `x` to a window of the last `n` items.
fn push_window<T>(window: &mut VecDeque<T>, x: T, n: usize) {
    window.push_back(x);
    while window.len() > n {
        window.pop_front();
    }
}

fn digest(values: impl IntoIterator<Item = f64>) -> u64 {
    // FNV-1a over the bit patterns.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        h ^= v.to_bits();
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    Some((m, v.sqrt()))
}

/// Median and median absolute deviation (scaled to a standard deviation).
fn median_mad(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    Some((med, 1.4826 * dev[dev.len() / 2]))
}

/// A radar target followed from scan to scan: its range should change by the integral of its
/// measured range rate. A range bias growing over time (drift) makes the difference grow; noise
/// and the target's own motion do not.
#[derive(Debug, Clone)]
struct RangeChain {
    azimuth: f64,
    range: f64,
    rate: f64,
    last_t: f64,
    /// Range predicted from the first range and the integrated range rate.
    integrated: f64,
    /// (time, range − integrated) over the last [`CHAIN_SECS`].
    samples: VecDeque<(f64, f64)>,
}

/// How much of a chain is kept, and how long it must span to give a slope.
const CHAIN_SECS: f64 = 2.0;
const CHAIN_MIN_SPAN_SECS: f64 = 1.0;
/// Ticks the chains' median slope must keep its sign to count as drift.
const DRIFT_PERSISTENCE: usize = 10;

impl RangeChain {
    /// Least-squares slope of range − integrated range rate, m/s, once the chain spans long
    /// enough.
    fn slope(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if self.samples.len() < 8 || last.0 - first.0 < CHAIN_MIN_SPAN_SECS {
            return None;
        }
        let n = self.samples.len() as f64;
        let (mt, mv) = self.samples.iter().fold((0.0, 0.0), |a, s| (a.0 + s.0 / n, a.1 + s.1 / n));
        let (sxy, sxx) =
            self.samples.iter().fold((0.0, 0.0), |a, s| (a.0 + (s.0 - mt) * (s.1 - mv), a.1 + (s.0 - mt) * (s.0 - mt)));
        (sxx > 0.0).then(|| sxy / sxx)
    }
}

/// Continues each chain with the nearest target of a new scan (same direction, range where its
/// rate said), or starts a chain.
fn extend_chains(chains: &mut Vec<RangeChain>, t: f64, targets: &[waypoint_sim::frame::RadarTarget]) {
    chains.retain(|c| t - c.last_t < 0.3);
    let old = chains.len();
    let mut taken = vec![false; old];
    for target in targets {
        let best = (0..old)
            .filter(|&i| !taken[i])
            .filter_map(|i| {
                let c = &chains[i];
                let daz = (target.azimuth_rad - c.azimuth).abs();
                let dr = (target.range_m - (c.range + c.rate * (t - c.last_t))).abs();
                (daz < 0.03 && dr < 1.5).then_some((i, daz / 0.03 + dr / 1.5))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, _)) => {
                taken[i] = true;
                let c = &mut chains[i];
                c.integrated += 0.5 * (c.rate + target.range_rate_mps) * (t - c.last_t);
                c.azimuth = target.azimuth_rad;
                c.range = target.range_m;
                c.rate = target.range_rate_mps;
                c.last_t = t;
                c.samples.push_back((t, target.range_m - c.integrated));
                while c.samples.front().is_some_and(|s| t - s.0 > CHAIN_SECS) {
                    c.samples.pop_front();
                }
            }
            None => chains.push(RangeChain {
                azimuth: target.azimuth_rad,
                range: target.range_m,
                rate: target.range_rate_mps,
                last_t: t,
                integrated: target.range_m,
                samples: VecDeque::from([(t, 0.0)]),
            }),
        }
    }
}

/// Horizontal offsets (pixels) of camera boxes from the radar targets they show. Each target
/// (range, azimuth from the radar) is projected into the image; the box it shows is the one
/// whose bottom edge lies where the road under a road user at that distance would be (a
/// horizontal shift of the image leaves that alone), nearest in column within 80 px. The
/// radar's azimuth does not share the camera's faults, so a camera drift moves every offset
/// alike.
fn camera_radar_offsets(
    camera: &CameraConfig,
    radar_forward_m: f64,
    targets: &[(f64, f64)],
    boxes: &[waypoint_sim::frame::CameraBox],
) -> Vec<f64> {
    let (cx, cy) = (f64::from(camera.width_px) / 2.0, f64::from(camera.height_px) / 2.0);
    let f = camera.focal_px;
    let mut out = Vec::new();
    for &(range, az) in targets {
        let (x, y) = (range * az.cos() + radar_forward_m - camera.mount_forward_m, range * az.sin());
        // Nearer than 25 m only straight ahead: a near road user seen at an angle has its box's
        // centre far from its centre's projection.
        let ahead = y.abs() < 0.05 * x;
        if x < 3.0 || (x < 25.0 && !ahead) {
            continue;
        }
        let u = cx - f * y / x;
        // Its box's bottom edge is the road under its nearest part: from the radar's distance
        // (its centre) to 3 m nearer (half a long vehicle), or the image's bottom edge.
        let row = |depth: f64| cy + f * camera.mount_height_m / depth.max(0.5);
        let (lo, hi) = (row(x + 1.0) - 6.0, row(x - 3.0) + 6.0);
        let image_bottom = f64::from(camera.height_px) - 2.0;
        let stands_there = |b: &&waypoint_sim::frame::CameraBox| {
            (b.bottom_px >= lo && b.bottom_px <= hi) || (hi >= image_bottom && b.bottom_px >= image_bottom)
        };
        let best = boxes
            .iter()
            .filter(stands_there)
            .map(|b| (b.left_px + b.right_px) / 2.0 - u)
            .filter(|d| d.abs() < 80.0)
            .min_by(|a, c| a.abs().total_cmp(&c.abs()));
        out.extend(best);
    }
    out
}

/// Sizes of the second differences of box edges over three frames (`a`, `b`, `c`, oldest
/// first; left, top, right, bottom, the side edges as bearings): each box of `c` is followed
/// back to the nearest box of `b` and that one to the nearest of `a` (centres within half the
/// box's larger side plus 40 px). A road user's edges move smoothly from frame to frame, so
/// what is left is mostly the detector's noise.
fn edge_second_differences(a: &[[f64; 4]], b: &[[f64; 4]], c: &[[f64; 4]]) -> Vec<f64> {
    let nearest = |from: &[f64; 4], among: &[[f64; 4]]| -> Option<[f64; 4]> {
        let centre = |e: &[f64; 4]| ((e[0] + e[2]) / 2.0, (e[1] + e[3]) / 2.0);
        let (x, y) = centre(from);
        let gate = 0.5 * (from[2] - from[0]).abs().max(from[3] - from[1]) + 40.0;
        among
            .iter()
            .map(|e| {
                let (ex, ey) = centre(e);
                ((ex - x).hypot(ey - y), *e)
            })
            .filter(|(d, _)| *d < gate)
            .min_by(|p, q| p.0.total_cmp(&q.0))
            .map(|(_, e)| e)
    };
    let mut out = Vec::new();
    for e2 in c {
        let Some(e1) = nearest(e2, b) else { continue };
        let Some(e0) = nearest(&e1, a) else { continue };
        out.extend((0..4).map(|k| (e2[k] - 2.0 * e1[k] + e0[k]).abs()));
    }
    out
}

impl HealthMonitor {
    /// A monitor for the default sensor set.
    pub fn new() -> Self {
        Self::for_sensors(&SensorsConfig::default())
    }

    /// A monitor for a scene with the given sensors (the radar's and camera's mounts, the
    /// camera's optics).
    pub fn for_sensors(sensors: &SensorsConfig) -> Self {
        use Side::{Both, Up};
        Self {
            channels: [
                Channel::new(
                    vec![
                        Feature::new("lag", Up, 0.02),
                        Feature::new("below_ground", Up, 0.0005),
                        Feature::new("ground_offset", Both, 0.002),
                        Feature::new("ground_spread", Up, 0.002),
                        Feature::new("surface_noise", Up, 0.002),
                    ],
                    vec![Ramp::new("ground_drift", 0.001)],
                ),
                Channel::new(
                    vec![
                        Feature::new("lag", Up, 0.02),
                        Feature::new("rate_residual_spread", Up, 2.0),
                        Feature::new("range_jumps", Up, 0.05),
                        Feature::new("range_drift", Up, 0.05),
                    ],
                    vec![],
                ),
                Channel::new(
                    vec![
                        Feature::new("lag", Up, 0.02),
                        Feature::new("box_jumps", Up, 0.04),
                        Feature::new("radar_offset", Both, 4.0),
                        Feature::new("box_roughness", Up, 1.5),
                    ],
                    vec![],
                ),
                Channel::new(
                    vec![
                        Feature::new("lag", Up, 0.02),
                        Feature::new("accel_roughness", Up, 0.04),
                        Feature::new("accel_peak", Up, 0.3),
                        Feature::new("accel_residual", Both, 0.05),
                        Feature::new("yaw_rate_residual", Both, 0.005),
                    ],
                    vec![Ramp::new("accel_drift", 0.01), Ramp::new("yaw_rate_drift", 0.001)],
                ),
                Channel::new(
                    vec![
                        Feature::new("lag", Up, 0.02),
                        Feature::new("fix_jump", Up, 0.2),
                        Feature::new("fix_spread", Up, 0.1),
                        // The slope's size in standard errors: Rayleigh-distributed (mean 1.25,
                        // standard deviation 0.66) while the fixes only scatter.
                        Feature::known("fix_drift", Up, 1.25, 0.66),
                    ],
                    vec![],
                ),
            ],
            threshold: DEFAULT_THRESHOLD,
            prev_camera_boxes: Vec::new(),
            camera_window: VecDeque::new(),
            radar_window: VecDeque::new(),
            prev_pose: None,
            gps_residuals: VecDeque::new(),
            prev_gps_residual: None,
            gps_track: VecDeque::new(),
            radar_forward_m: sensors.radar.mount_forward_m,
            camera: sensors.camera.clone(),
            recent_radar: VecDeque::new(),
            camera_radar_window: VecDeque::new(),
            range_chains: Vec::new(),
            camera_edges: VecDeque::new(),
            camera_rough_window: VecDeque::new(),
            range_drift_recent: VecDeque::new(),
        }
    }

    /// The latest deviation (robust standard units) of every feature of a sensor, ramps
    /// excluded (for diagnosis).
    pub fn feature_z(&self, sensor: usize) -> Vec<(&'static str, f64)> {
        self.channels[sensor].features.iter().map(|f| (f.name, f.last_z)).collect()
    }

    /// The latest score of every feature of a sensor (for diagnosis).
    pub fn feature_scores(&self, sensor: usize) -> Vec<(&'static str, f64)> {
        let c = &self.channels[sensor];
        c.features.iter().map(|f| (f.name, f.last)).chain(c.ramps.iter().map(|r| (r.feature.name, r.last))).collect()
    }

    /// Scores one tick. `enabled` says which sensors the operator has switched on (a switched
    /// off sensor is not scored and starts afresh when switched back on).
    pub fn update(&mut self, frame: &Frame, enabled: [bool; 5]) -> [SensorHealth; 5] {
        let now = frame.t_secs;
        let mut values: [Vec<Option<f64>>; 5] = Default::default();
        let mut ramps: [Vec<Option<f64>>; 5] = Default::default();
        let ego = &frame.truth.ego;

        // Lidar: lateness, and the ground ring near the car against a flat road.
        {
            let mut lag = None;
            let (mut below, mut offsets, mut steps) = (None, Vec::new(), Vec::new());
            for sweep in &frame.lidar {
                lag = Some(now - sweep.t_secs);
                let h = sweep.world_from_sensor.z_m.max(0.1);
                let mut under = 0usize;
                offsets.clear();
                steps.clear();
                let mut prev: Option<(f64, f64, f64)> = None;
                for p in &sweep.points {
                    let (x, y, z) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
                    let r = x.hypot(y);
                    if z < -h - 0.3 {
                        under += 1;
                    } else if (z + h).abs() < 0.3 && r < 15.0 && r > 3.0 {
                        offsets.push(-z / h - 1.0);
                    }
                    // Two beams of one column on an upright surface (a wall, a vehicle's side)
                    // lie at one distance: their difference is range noise.
                    let upright = z > -h + 0.3 && r > 1.0;
                    if let (true, Some((px, py, pr))) = (upright, prev) {
                        if (x * py - y * px).abs() < 1e-4 * r * pr && x * px + y * py > 0.0 {
                            steps.push((r - pr).abs());
                        }
                    }
                    prev = upright.then_some((x, y, r));
                }
                below = Some(under as f64 / sweep.points.len().max(1) as f64);
                let d = digest(sweep.points.iter().take(64).flat_map(|p| p.map(f64::from)));
                self.channels[0].heard(sweep.t_secs, (!sweep.points.is_empty()).then_some(d));
            }
            let ground = mean_std(&offsets);
            let surface = (steps.len() >= 50).then(|| median_mad(&steps).map_or(0.0, |m| m.0));
            values[0] = vec![lag, below, ground.map(|g| g.0), ground.map(|g| g.1), surface];
            ramps[0] = vec![ground.map(|g| g.0)];
        }

        // Radar: each target against the previous scan's target in the same direction: the
        // change of range over the scan interval should match the measured range rate. Over the
        // last two seconds: the spread of that rate residual (noise) and the share of residuals far
        // beyond any vehicle's speed (range spikes).
        {
            let mut lag = None;
            let mut residuals = Vec::new();
            for scan in &frame.radar {
                lag = Some(now - scan.t_secs);
                if let Some((t_prev, prev)) = self.recent_radar.back() {
                    let dt = scan.t_secs - t_prev;
                    if dt > 1e-3 && dt < 0.5 {
                        for t in &scan.targets {
                            // The previous target in the same direction (within 0.03 rad) whose
                            // range best fits this one's range rate: two road users at one
                            // bearing are not taken for one that jumped.
                            let best = prev
                                .iter()
                                .map(|&(r_prev, az_prev)| ((az_prev - t.azimuth_rad).abs(), r_prev))
                                .filter(|(daz, _)| *daz < 0.03)
                                .map(|(daz, r_prev)| {
                                    let jump = (t.range_m - r_prev - t.range_rate_mps * dt).abs();
                                    (daz / 0.03 + jump / 5.0, r_prev)
                                })
                                .min_by(|a, b| a.0.total_cmp(&b.0));
                            if let Some((_, r_prev)) = best {
                                residuals.push(((t.range_m - r_prev) / dt - t.range_rate_mps).clamp(-1000.0, 1000.0));
                            }
                        }
                    }
                }
                extend_chains(&mut self.range_chains, scan.t_secs, &scan.targets);
                push_window(
                    &mut self.recent_radar,
                    (scan.t_secs, scan.targets.iter().map(|t| (t.range_m, t.azimuth_rad)).collect()),
                    3,
                );
                let d = digest(scan.targets.iter().flat_map(|t| [t.range_m, t.azimuth_rad, t.range_rate_mps]));
                self.channels[1].heard(scan.t_secs, (!scan.targets.is_empty()).then_some(d));
            }
            push_window(&mut self.radar_window, residuals, 20);
            let all: Vec<f64> = self.radar_window.iter().flatten().copied().collect();
            let measured = !frame.radar.is_empty() && all.len() >= 20;
            let spread = median_mad(&all).filter(|_| measured).map(|m| m.1);
            let jumps = measured.then(|| all.iter().filter(|e| e.abs() > 100.0).count() as f64 / all.len() as f64);
            // Drift: the chains' median slope, the same way for the last few ticks (its
            // smallest size then); 0 when there is no chain or the sign changes.
            let slopes: Vec<f64> = self.range_chains.iter().filter_map(RangeChain::slope).collect();
            let median_slope = median_mad(&slopes).map_or(0.0, |m| m.0);
            push_window(&mut self.range_drift_recent, median_slope, DRIFT_PERSISTENCE);
            let r = &self.range_drift_recent;
            let same_way = r.iter().all(|s| *s > 0.0) || r.iter().all(|s| *s < 0.0);
            let drift = (!frame.radar.is_empty()).then(|| {
                if r.len() == DRIFT_PERSISTENCE && same_way {
                    r.iter().map(|s| s.abs()).fold(f64::INFINITY, f64::min)
                } else {
                    0.0
                }
            });
            values[1] = vec![lag, spread, jumps, drift];
            ramps[1] = vec![];
        }

        // Camera: boxes against the previous frame's. Each box is matched to the nearest box
        // of similar size; the matches' common move (the vehicle turning) is removed; jumps: the
        // share of boxes displaced sideways far beyond it (over the last second). Noise: the
        // median size of the boxes' edge second differences over three frames (see
        // `edge_second_differences`; over the last second). Drift: boxes against the
        // radar targets they show (a drift moves every box alike, which the vehicle's own
        // turning does too, so frame-to-frame moves cannot tell it).
        {
            let mut lag = None;
            let mut radar_offsets = Vec::new();
            let mut rough = Vec::new();
            let (mut jumped, mut total) = (0usize, 0usize);
            for img in &frame.camera {
                lag = Some(now - img.t_secs);
                // Side edges as bearings in the world (in pixels at the image centre), so the
                // vehicle's turning does not move them.
                let (cx, f) = (f64::from(self.camera.width_px) / 2.0, self.camera.focal_px);
                let yaw = ego.yaw_rad + ego.yaw_rate_rps * (img.t_secs - now);
                let bearing = |u: f64| f * (yaw + ((cx - u) / f).atan());
                let edges: Vec<[f64; 4]> = img
                    .boxes
                    .iter()
                    .map(|b| [bearing(b.left_px), b.top_px, bearing(b.right_px), b.bottom_px])
                    .collect();
                if self.camera_edges.len() == 2 {
                    rough.extend(edge_second_differences(&self.camera_edges[0], &self.camera_edges[1], &edges));
                }
                push_window(&mut self.camera_edges, edges, 2);
                // The radar scan nearest in time, its bearings turned by the vehicle's yaw since.
                let nearest = self
                    .recent_radar
                    .iter()
                    .min_by(|a, b| (a.0 - img.t_secs).abs().total_cmp(&(b.0 - img.t_secs).abs()));
                if let Some((t_radar, targets)) = nearest.filter(|r| (r.0 - img.t_secs).abs() < 0.06) {
                    let turn = frame.truth.ego.yaw_rate_rps * (img.t_secs - t_radar);
                    let turned: Vec<(f64, f64)> = targets.iter().map(|&(r, az)| (r, az - turn)).collect();
                    radar_offsets.extend(camera_radar_offsets(&self.camera, self.radar_forward_m, &turned, &img.boxes));
                }
                let boxes: Vec<[f64; 4]> = img
                    .boxes
                    .iter()
                    .map(|b| {
                        [
                            (b.left_px + b.right_px) / 2.0,
                            (b.top_px + b.bottom_px) / 2.0,
                            b.right_px - b.left_px,
                            b.bottom_px - b.top_px,
                        ]
                    })
                    .collect();
                let mut pairs = Vec::new();
                for b in &boxes {
                    let similar = |p: &&[f64; 4]| {
                        (p[2] - b[2]).abs() < 0.2 * b[2].max(8.0) && (p[3] - b[3]).abs() < 0.2 * b[3].max(8.0)
                    };
                    let best = self
                        .prev_camera_boxes
                        .iter()
                        .filter(similar)
                        .map(|p| (b[0] - p[0], b[1] - p[1]))
                        .filter(|(_, dy)| dy.abs() < 30.0)
                        .min_by(|a, c| a.0.abs().total_cmp(&c.0.abs()));
                    if let Some(d) = best {
                        pairs.push(d);
                    }
                }
                if !pairs.is_empty() {
                    let dxs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
                    let (m, _) = median_mad(&dxs).unwrap_or((0.0, 0.0));
                    for (dx, _) in &pairs {
                        total += 1;
                        let off = dx - m;
                        if off.abs() > 80.0 {
                            jumped += 1;
                        }
                    }
                }
                self.prev_camera_boxes = boxes;
                let d = digest(img.boxes.iter().flat_map(|b| [b.left_px, b.top_px, b.right_px, b.bottom_px]));
                self.channels[2].heard(img.t_secs, (!img.boxes.is_empty()).then_some(d));
            }
            push_window(&mut self.camera_window, (jumped, total), 10);
            let (j, n) = self.camera_window.iter().fold((0, 0), |a, w| (a.0 + w.0, a.1 + w.1));
            let measured = !frame.camera.is_empty();
            let share = (measured && n >= 8).then(|| j as f64 / n as f64);
            push_window(&mut self.camera_radar_window, radar_offsets, 10);
            let offsets: Vec<f64> = self.camera_radar_window.iter().flatten().copied().collect();
            let offset = median_mad(&offsets).filter(|_| measured && offsets.len() >= 8).map(|m| m.0);
            push_window(&mut self.camera_rough_window, rough, 10);
            let rough: Vec<f64> = self.camera_rough_window.iter().flatten().copied().collect();
            let roughness = median_mad(&rough).filter(|_| measured && rough.len() >= 24).map(|m| m.0);
            values[2] = vec![lag, share, offset, roughness];
            ramps[2] = vec![];
        }

        // IMU: spread and peak of the longitudinal acceleration within the tick, and the
        // readings against the motion of the vehicle's pose over the tick.
        {
            let ax: Vec<f64> = frame.imu.iter().map(|s| s.accel_x_mps2).collect();
            let yaw: Vec<f64> = frame.imu.iter().map(|s| s.yaw_rate_rps).collect();
            let lag = frame.imu.last().map(|s| now - s.t_secs);
            let stats = mean_std(&ax);
            let peak = stats.map(|(m, _)| ax.iter().map(|a| (a - m).abs()).fold(0.0, f64::max));
            for s in &frame.imu {
                let d = digest([s.accel_x_mps2, s.accel_y_mps2, s.accel_z_mps2, s.yaw_rate_rps]);
                self.channels[3].heard(s.t_secs, Some(d));
            }
            let ego = &frame.truth.ego;
            let speed = ego.vx_mps.hypot(ego.vy_mps);
            let (accel, yaw_rate) = match self.prev_pose {
                Some((t, v, y)) if frame.t_secs > t => {
                    let dt = frame.t_secs - t;
                    let dyaw = (ego.yaw_rad - y + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
                        - std::f64::consts::PI;
                    (Some((speed - v) / dt), Some(dyaw / dt))
                }
                _ => (None, None),
            };
            self.prev_pose = Some((frame.t_secs, speed, ego.yaw_rad));
            let accel_residual = stats.zip(accel).map(|(s, a)| s.0 - a);
            let yaw_residual = mean_std(&yaw).zip(yaw_rate).map(|(s, w)| s.0 - w);
            // Noise: second differences of consecutive samples (the vehicle's own acceleration
            // changes too slowly to show in them), median size.
            let second: Vec<f64> = ax.windows(3).map(|w| (w[2] - 2.0 * w[1] + w[0]).abs()).collect();
            let roughness = (second.len() >= 4).then(|| median_mad(&second).map_or(0.0, |m| m.0));
            values[3] = vec![lag, roughness, peak, accel_residual, yaw_residual];
            ramps[3] = vec![accel_residual, yaw_residual];
        }

        // GPS: each fix against the pose; jumps between consecutive residuals (spikes), their
        // spread over the last ten fixes (noise), and ramps of their one-second means (drift).
        // A multipath jump is a step: one large jump, no spread, no ramp.
        {
            let ego = &frame.truth.ego;
            let mut lag = None;
            let mut jump: Option<f64> = None;
            for fix in &frame.gps {
                lag = Some(now - fix.t_secs);
                let r = [fix.x_m - ego.x_m, fix.y_m - ego.y_m];
                if let Some(p) = self.prev_gps_residual {
                    let j = (r[0] - p[0]).hypot(r[1] - p[1]);
                    jump = Some(jump.map_or(j, |x: f64| x.max(j)));
                }
                self.prev_gps_residual = Some(r);
                push_window(&mut self.gps_residuals, r, 10);
                self.gps_track.push_back((fix.t_secs, r));
                self.channels[4].heard(fix.t_secs, Some(digest([fix.x_m, fix.y_m])));
            }
            // Spread of the fix-to-fix changes (robust: a multipath step is one outlier).
            let spread = if frame.gps.is_empty() || self.gps_residuals.len() < 6 {
                None
            } else {
                let r: Vec<[f64; 2]> = self.gps_residuals.iter().copied().collect();
                let dx: Vec<f64> = r.windows(2).map(|w| w[1][0] - w[0][0]).collect();
                let dy: Vec<f64> = r.windows(2).map(|w| w[1][1] - w[0][1]).collect();
                median_mad(&dx).zip(median_mad(&dy)).map(|(a, b)| a.1.hypot(b.1))
            };
            // Drift: the residual's slope over the last seconds, fitted within the stretches
            // between jumps (a multipath step starts a new stretch and moves no slope).
            while self.gps_track.front().is_some_and(|s| s.0 < now - GPS_TRACK_SECS) {
                self.gps_track.pop_front();
            }
            let drift =
                if frame.gps.is_empty() { None } else { stepwise_slope(&self.gps_track).map(|[sx, sy]| sx.hypot(sy)) };
            values[4] = vec![lag, jump, spread, drift];
            ramps[4] = vec![];
        }

        let threshold = self.threshold;
        let mut out = [SensorHealth {
            sensor: Sensor::Lidar,
            enabled: true,
            score: 0.0,
            alarm: false,
            cause: "",
            learning: false,
        }; 5];
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            if !enabled[i] {
                // Start afresh when switched back on (reset once, when switched off).
                if self.channels[i].last_seen.is_some() {
                    self.channels[i] = Self::new().channels[i].clone();
                }
                out[i] = SensorHealth { sensor, enabled: false, score: 0.0, alarm: false, cause: "", learning: false };
                continue;
            }
            let (score, cause) = self.channels[i].score(now, &values[i], &ramps[i]);
            let c = &self.channels[i];
            let learning =
                c.features.iter().any(|f| f.n <= WARMUP) || c.ramps.iter().any(|r| r.feature.n <= RAMP_WARMUP_BLOCKS);
            out[i] = SensorHealth { sensor, enabled: true, score, alarm: score >= threshold, cause, learning };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_sim::fault::{FaultKind, FaultSpec};
    use waypoint_sim::frame::{CameraBox, RadarTarget};
    use waypoint_sim::{AgentKind, Scene, SceneConfig};

    fn target(range_m: f64, azimuth_rad: f64, range_rate_mps: f64) -> RadarTarget {
        RadarTarget { range_m, azimuth_rad, range_rate_mps, rcs_dbsm: 10.0, truth_agent_id: None }
    }

    /// Chains over two seconds of a target closing at 5 m/s, with the range biased by
    /// `bias_rate` m/s; the median chain slope.
    fn chain_slope(bias_rate: f64) -> f64 {
        let mut chains = Vec::new();
        for k in 0..40 {
            let t = f64::from(k) * 0.05;
            // A second target moving away, and alternating ±0.2 m of range noise.
            let noise = if k % 2 == 0 { 0.2 } else { -0.2 };
            let scan = [
                target(40.0 - 5.0 * t + bias_rate * t + noise, 0.1, -5.0),
                target(20.0 + 2.0 * t + bias_rate * t - noise, -0.4, 2.0),
            ];
            extend_chains(&mut chains, t, &scan);
        }
        assert_eq!(chains.len(), 2, "each target keeps one chain");
        let slopes: Vec<f64> = chains.iter().filter_map(RangeChain::slope).collect();
        median_mad(&slopes).unwrap().0
    }

    #[test]
    fn a_growing_range_bias_is_the_slope_of_range_less_integrated_rate() {
        assert!(chain_slope(0.0).abs() < 0.05, "{}", chain_slope(0.0));
        assert!((chain_slope(0.5) - 0.5).abs() < 0.05, "{}", chain_slope(0.5));
        assert!((chain_slope(-0.5) + 0.5).abs() < 0.05, "{}", chain_slope(-0.5));
    }

    #[test]
    fn a_camera_box_is_measured_against_the_radar_target_it_shows() {
        let camera = CameraConfig::default();
        let radar_forward = 2.2;
        // A target 30 m ahead of the radar, slightly left.
        let (range, az): (f64, f64) = (30.0, 0.05);
        let (x, y) = (range * az.cos() + radar_forward - camera.mount_forward_m, range * az.sin());
        let (cx, cy) = (f64::from(camera.width_px) / 2.0, f64::from(camera.height_px) / 2.0);
        let u = cx - camera.focal_px * y / x;
        let bottom = cy + camera.focal_px * camera.mount_height_m / x;
        let shown = |shift: f64| CameraBox {
            class: AgentKind::Vehicle,
            left_px: u - 30.0 + shift,
            top_px: bottom - 40.0,
            right_px: u + 30.0 + shift,
            bottom_px: bottom,
            occlusion: 0.0,
            truth_agent_id: None,
        };
        for shift in [0.0, 25.0, -40.0] {
            let offsets = camera_radar_offsets(&camera, radar_forward, &[(range, az)], &[shown(shift)]);
            assert_eq!(offsets.len(), 1);
            assert!((offsets[0] - shift).abs() < 1e-6, "{offsets:?} for {shift}");
        }
        // A box standing at another distance (its bottom elsewhere) does not show the target.
        let mut far = shown(0.0);
        far.bottom_px = cy + (bottom - cy) / 2.0;
        assert!(camera_radar_offsets(&camera, radar_forward, &[(range, az)], &[far]).is_empty());
    }

    /// GPS residuals at 10 Hz for `secs`: white noise of 0.5 m, a slope of `drift` m/s on
    /// both axes, and a 6 m multipath step from `step_from` to `step_to` seconds.
    fn gps_residuals(secs: f64, drift: f64, step_from: f64, step_to: f64) -> VecDeque<(f64, [f64; 2])> {
        let mut rng = waypoint_sim::rng::SimRng::new(7);
        (0..(secs * 10.0) as usize)
            .map(|i| {
                let t = i as f64 / 10.0;
                let step = if (step_from..step_to).contains(&t) { 6.0 } else { 0.0 };
                (t, [drift * t + step + rng.gauss(0.5), drift * t - step + rng.gauss(0.5)])
            })
            .collect()
    }

    #[test]
    fn a_multipath_step_does_not_read_as_a_gps_drift() {
        let t = |s: Option<[f64; 2]>| s.map(|[a, b]| a.hypot(b)).unwrap();
        // Still: a small slope in standard errors, with or without a step in the window.
        assert!(t(stepwise_slope(&gps_residuals(4.65, 0.0, 99.0, 99.0))) < 4.0);
        assert!(t(stepwise_slope(&gps_residuals(4.65, 0.0, 2.0, 3.5))) < 4.0);
        // A plain least-squares fit takes the step for a slope.
        let plain = gps_residuals(4.65, 0.0, 2.0, 99.0);
        let n = plain.len() as f64;
        let mt = plain.iter().map(|s| s.0).sum::<f64>() / n;
        let mx = plain.iter().map(|s| s.1[0]).sum::<f64>() / n;
        let sxy: f64 = plain.iter().map(|s| (s.0 - mt) * (s.1[0] - mx)).sum();
        let sxx: f64 = plain.iter().map(|s| (s.0 - mt).powi(2)).sum();
        assert!(sxy / sxx > 1.0, "{}", sxy / sxx);
        assert!(t(stepwise_slope(&plain)) < 4.0);
        // Drifting at 1 m/s: far beyond, through a step too.
        assert!(t(stepwise_slope(&gps_residuals(4.65, 1.0, 99.0, 99.0))) > 8.0);
        assert!(t(stepwise_slope(&gps_residuals(4.65, 1.0, 2.0, 3.5))) > 6.0);
    }

    #[test]
    fn box_edges_moving_smoothly_have_no_second_difference() {
        // Two road users: one sliding left at a steady 12 px a frame, one growing as it nears.
        let frame = |k: f64| {
            vec![
                [500.0 - 12.0 * k, 300.0, 560.0 - 12.0 * k, 340.0],
                [800.0, 300.0 - 2.0 * k, 900.0 + 4.0 * k, 380.0 + 2.0 * k],
            ]
        };
        let d = edge_second_differences(&frame(0.0), &frame(1.0), &frame(2.0));
        assert_eq!(d.len(), 8, "each box followed back two frames");
        assert!(d.iter().all(|x| x.abs() < 1e-9), "{d:?}");
        // One box jolted by 10 px; a box with nothing near it before is not followed.
        let mut last = frame(2.0);
        last[0][0] += 10.0;
        last.push([100.0, 100.0, 120.0, 140.0]);
        let d = edge_second_differences(&frame(0.0), &frame(1.0), &last);
        assert_eq!(d.len(), 8);
        assert!((d[0] - 10.0).abs() < 1e-9, "{d:?}");
    }

    /// Alarm onsets of one sensor while a scene with one fault runs to `end_secs`.
    fn alarms(seed: u64, sensor: Sensor, kind: FaultKind, start_secs: f64, end_secs: f64) -> Vec<(f64, &'static str)> {
        let fault = FaultSpec { sensor, kind, start_secs: Some(start_secs), duration_secs: 5.0, magnitude: None };
        let mut scene = Scene::new(SceneConfig { seed, faults: vec![fault], ..SceneConfig::default() }).unwrap();
        let mut monitor = HealthMonitor::new();
        let i = Sensor::ALL.iter().position(|s| *s == sensor).unwrap();
        let (mut out, mut was) = (Vec::new(), false);
        while scene.t_secs() < end_secs {
            let frame = scene.tick();
            let h = monitor.update(&frame, [true; 5])[i];
            if h.alarm && !was && frame.t_secs > 30.0 {
                out.push((frame.t_secs, h.cause));
            }
            was = h.alarm;
        }
        out
    }

    #[test]
    fn noise_bursts_alarm_in_a_simulated_scene() {
        for (sensor, cause) in [(Sensor::Lidar, "surface_noise"), (Sensor::Camera, "box_roughness")] {
            let onsets = alarms(2, sensor, FaultKind::NoiseBurst, 100.0, 106.0);
            assert!(onsets.iter().all(|(t, _)| *t >= 100.0), "false alarm before the fault: {onsets:?}");
            assert!(onsets.iter().any(|(_, c)| *c == cause), "{sensor:?}: {onsets:?}");
        }
    }

    #[test]
    fn gps_drift_alarms_in_a_simulated_scene() {
        let onsets = alarms(2, Sensor::Gps, FaultKind::Drift, 100.0, 107.0);
        assert!(onsets.iter().all(|(t, _)| *t >= 100.0), "false alarm before the fault: {onsets:?}");
        assert!(onsets.iter().any(|(t, cause)| *t <= 106.0 && *cause == "fix_drift"), "{onsets:?}");
    }

    #[test]
    fn radar_range_drift_alarms_in_a_simulated_scene() {
        let onsets = alarms(2, Sensor::Radar, FaultKind::Drift, 100.0, 107.0);
        assert!(onsets.iter().all(|(t, _)| *t >= 100.0), "false alarm before the fault: {onsets:?}");
        assert!(onsets.iter().any(|(t, cause)| *t <= 106.0 && *cause == "range_drift"), "{onsets:?}");
    }
}
