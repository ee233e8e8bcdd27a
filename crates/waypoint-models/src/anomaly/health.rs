//! Live health of the five simulated sensors.
//!
//! Every tick, each sensor's output is reduced to a few health features — how long since it
//! last spoke against its usual interval, how late its data arrives, whether it repeats itself
//! exactly, and value features that a fault would move (the lidar's ground against the flat
//! road, the radar's ranges against the lidar's, the camera boxes' frame-to-frame jumps, the
//! IMU's spread, the GPS fixes against a constant-velocity filter of their own past). Each
//! value feature is scored online by a [`Detector`]; silence and exact repeats by plain rules.
//! A sensor's score is the largest of its features' scores, held for [`PERSISTENCE`] ticks
//! (it alarms only when its score is above the threshold in two of three ticks), and the combined score is the
//! largest over sensors. Only data up to the current tick is used.

use waypoint_sim::fault::Sensor;
use waypoint_sim::Frame;

use super::detector::{Detector, DetectorConfig};

/// A score must be high in two of this many ticks before the sensor's score reports it.
pub const PERSISTENCE: usize = 3;

/// Default alarm threshold on the [0, 1] scores.
pub const DEFAULT_THRESHOLD: f64 = 0.99;

fn feature_detector() -> Detector {
    Detector::new(DetectorConfig {
        slow_rate: 0.01,
        fast_rate: 0.3,
        likelihood_rate: 0.002,
        short_window: 3,
        warmup: 60,
        refractory: 0,
        alarm_level: 1.1,
        refractory_cap: 1.0,
        single_sample_margin: 1.0,
    })
}

/// One sensor's scored features.
#[derive(Debug, Clone)]
struct Channel {
    names: &'static [&'static str],
    detectors: Vec<Detector>,
    last_scores: Vec<f64>,
    /// Seconds since the last message, and the running mean interval between messages.
    last_seen: Option<f64>,
    mean_interval: f64,
    /// A digest of the last message, for exact-repeat detection, and the repeat count.
    last_digest: Option<u64>,
    repeats: u32,
    recent: [f64; PERSISTENCE],
    recent_pos: usize,
}

impl Channel {
    fn new(names: &'static [&'static str]) -> Self {
        Self {
            names,
            detectors: names.iter().map(|_| feature_detector()).collect(),
            last_scores: vec![0.0; names.len()],
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

    /// Scores this tick's features (`None`: not measured this tick, keeps its last score
    /// decaying) and returns the sensor score.
    fn score(&mut self, now_secs: f64, features: &[Option<f64>]) -> (f64, &'static str) {
        let mut best = (0.0, "");
        for (i, f) in features.iter().enumerate() {
            // The detector's output is the probability that the evidence is unusual, 0.5 when it
            // is typical; rescale so that typical is 0 and certain is 1.
            let s = match f {
                Some(x) => (2.0 * self.detectors[i].update(*x) - 1.0).max(0.0),
                None => self.last_scores[i] * 0.8,
            };
            self.last_scores[i] = s;
            if s > best.0 {
                best = (s, self.names[i]);
            }
        }
        // Silence: more than three usual intervals (at least 0.3 s) without a message.
        if let Some(seen) = self.last_seen {
            let usual = self.mean_interval.max(0.1);
            let ratio = (now_secs - seen) / usual;
            let s = ((ratio - 3.0) / 3.0).clamp(0.0, 1.0);
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
        // The second highest of the window: a score must be high in two of the last three ticks.
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
}

/// Scores the five sensors of a scene, tick by tick.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    channels: [Channel; 5],
    pub threshold: f64,
    /// GPS constant-velocity filter: position, velocity and the last fix time.
    gps_state: Option<([f64; 2], [f64; 2], f64)>,
    prev_camera_centres: Vec<[f64; 2]>,
    /// The vehicle pose's time, speed and heading at the previous tick.
    prev_pose: Option<(f64, f64, f64)>,
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
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

const AZIMUTH_BINS: usize = 720;

impl HealthMonitor {
    pub fn new() -> Self {
        Self {
            channels: [
                Channel::new(&["lag", "below_ground", "ground_offset", "ground_spread"]),
                Channel::new(&["lag", "range_residual", "range_residual_spread", "range_outliers"]),
                Channel::new(&["lag", "box_jump", "box_jump_max"]),
                Channel::new(&["lag", "accel_spread", "accel_peak", "accel_residual", "yaw_rate_residual"]),
                Channel::new(&["lag", "innovation", "pose_residual"]),
            ],
            threshold: DEFAULT_THRESHOLD,
            gps_state: None,
            prev_camera_centres: Vec::new(),
            prev_pose: None,
        }
    }

    /// Scores one tick. `enabled` says which sensors the operator has switched on (a switched
    /// off sensor is not scored and starts afresh when switched back on).
    pub fn update(&mut self, frame: &Frame, enabled: [bool; 5]) -> [SensorHealth; 5] {
        let now = frame.t_secs;
        let mut features: [Vec<Option<f64>>; 5] = Default::default();

        // Lidar: lateness, and the ground ring near the car against a flat road.
        let mut lidar_free: Option<Vec<f32>> = None;
        {
            let mut lag = None;
            let (mut below, mut offsets) = (None, Vec::new());
            for sweep in &frame.lidar {
                lag = Some(now - sweep.t_secs);
                let h = sweep.world_from_sensor.z_m.max(0.1);
                let mut under = 0usize;
                let mut free = vec![f32::INFINITY; AZIMUTH_BINS];
                offsets.clear();
                for p in &sweep.points {
                    let (x, y, z) = (p[0] as f64, p[1] as f64, p[2] as f64);
                    let r = (x * x + y * y).sqrt();
                    if z < -h - 0.3 {
                        under += 1;
                    } else if (z + h).abs() < 0.3 && r < 15.0 && r > 3.0 {
                        offsets.push(-z / h - 1.0);
                    } else if z > -h + 0.4 {
                        let bin = (((y.atan2(x) + std::f64::consts::PI) / std::f64::consts::TAU) * AZIMUTH_BINS as f64)
                            as usize
                            % AZIMUTH_BINS;
                        free[bin] = free[bin].min(r as f32);
                    }
                }
                below = Some(under as f64 / sweep.points.len().max(1) as f64);
                lidar_free = Some(free);
                let d = digest(sweep.points.iter().take(64).flat_map(|p| p.map(f64::from)));
                self.channels[0].heard(sweep.t_secs, (!sweep.points.is_empty()).then_some(d));
            }
            let ground = mean_std(&offsets);
            features[0] = vec![lag, below, ground.map(|g| g.0), ground.map(|g| g.1)];
        }

        // Radar: ranges against the lidar's nearest obstacle in the same direction.
        {
            let mut lag = None;
            let mut residuals = Vec::new();
            for scan in &frame.radar {
                lag = Some(now - scan.t_secs);
                if let Some(free) = &lidar_free {
                    for t in &scan.targets {
                        let bin = (((t.azimuth_rad + std::f64::consts::PI) / std::f64::consts::TAU)
                            * AZIMUTH_BINS as f64) as usize
                            % AZIMUTH_BINS;
                        let near = (bin + AZIMUTH_BINS - 1..=bin + AZIMUTH_BINS + 1)
                            .map(|b| free[b % AZIMUTH_BINS])
                            .fold(f32::INFINITY, f32::min) as f64;
                        if near.is_finite() && t.range_m < 60.0 {
                            residuals.push((t.range_m - near).clamp(-30.0, 30.0));
                        }
                    }
                }
                let d = digest(scan.targets.iter().flat_map(|t| [t.range_m, t.azimuth_rad, t.range_rate_mps]));
                self.channels[1].heard(scan.t_secs, (!scan.targets.is_empty()).then_some(d));
            }
            let mut med = None;
            if !residuals.is_empty() {
                residuals.sort_by(f64::total_cmp);
                med = Some(residuals[residuals.len() / 2]);
            }
            let spread = med.map(|m| {
                let mut dev: Vec<f64> = residuals.iter().map(|r| (r - m).abs()).collect();
                dev.sort_by(f64::total_cmp);
                dev[dev.len() / 2]
            });
            let outliers =
                med.map(|m| residuals.iter().filter(|r| (*r - m).abs() > 8.0).count() as f64 / residuals.len() as f64);
            features[1] = vec![lag, med, spread, outliers];
        }

        // Camera: how far box centres jump from one frame to the next.
        {
            let mut lag = None;
            let mut jumps = Vec::new();
            for img in &frame.camera {
                lag = Some(now - img.t_secs);
                let centres: Vec<[f64; 2]> = img
                    .boxes
                    .iter()
                    .map(|b| [(b.left_px + b.right_px) / 2.0, (b.top_px + b.bottom_px) / 2.0])
                    .collect();
                for c in &centres {
                    let best = self
                        .prev_camera_centres
                        .iter()
                        .map(|p| ((c[0] - p[0]).powi(2) + (c[1] - p[1]).powi(2)).sqrt())
                        .fold(f64::INFINITY, f64::min);
                    if best.is_finite() {
                        jumps.push(best.min(500.0));
                    }
                }
                self.prev_camera_centres = centres;
                let d = digest(img.boxes.iter().flat_map(|b| [b.left_px, b.top_px, b.right_px, b.bottom_px]));
                self.channels[2].heard(img.t_secs, (!img.boxes.is_empty()).then_some(d));
            }
            let stats = mean_std(&jumps);
            let max = jumps.iter().copied().reduce(f64::max);
            features[2] = vec![lag, stats.map(|s| s.0), max];
        }

        // IMU: spread and peak of the longitudinal acceleration within the tick, and levels.
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
            // Against the motion of the vehicle's pose over the tick.
            let ego = &frame.truth.ego;
            let speed = ego.vx_mps.hypot(ego.vy_mps);
            let (accel, yaw_rate) = match self.prev_pose {
                Some((t, v, yaw)) if frame.t_secs > t => {
                    let dt = frame.t_secs - t;
                    let dyaw = (ego.yaw_rad - yaw + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
                        - std::f64::consts::PI;
                    (Some((speed - v) / dt), Some(dyaw / dt))
                }
                _ => (None, None),
            };
            self.prev_pose = Some((frame.t_secs, speed, ego.yaw_rad));
            let accel_residual = stats.zip(accel).map(|(s, a)| s.0 - a);
            let yaw_residual = mean_std(&yaw).zip(yaw_rate).map(|(s, w)| s.0 - w);
            features[3] = vec![lag, stats.map(|s| s.1), peak, accel_residual, yaw_residual];
        }

        // GPS: innovation of each fix against a constant-velocity filter of the fixes.
        {
            let mut lag = None;
            let mut innovation: Option<f64> = None;
            for fix in &frame.gps {
                lag = Some(now - fix.t_secs);
                let z = [fix.x_m, fix.y_m];
                self.gps_state = Some(match self.gps_state {
                    None => (z, [0.0, 0.0], fix.t_secs),
                    Some((p, v, t)) => {
                        let dt = (fix.t_secs - t).clamp(0.0, 2.0);
                        let pred = [p[0] + v[0] * dt, p[1] + v[1] * dt];
                        let r = [z[0] - pred[0], z[1] - pred[1]];
                        let norm = (r[0] * r[0] + r[1] * r[1]).sqrt() / fix.sigma_m.max(0.1);
                        innovation = Some(innovation.map_or(norm, |i: f64| i.max(norm)));
                        let (a, b) = (0.3, if dt > 0.0 { 0.05 / dt } else { 0.0 });
                        (
                            [pred[0] + a * r[0], pred[1] + a * r[1]],
                            [v[0] + b * r[0], v[1] + b * r[1]],
                            fix.t_secs.max(t),
                        )
                    }
                });
                self.channels[4].heard(fix.t_secs, Some(digest([fix.x_m, fix.y_m])));
            }
            let ego = &frame.truth.ego;
            let pose = frame
                .gps
                .iter()
                .map(|f| (f.x_m - ego.x_m).hypot(f.y_m - ego.y_m) / f.sigma_m.max(0.1))
                .reduce(f64::max);
            features[4] = vec![lag, innovation, pose];
        }

        let threshold = self.threshold;
        let mut out = [SensorHealth { sensor: Sensor::Lidar, enabled: true, score: 0.0, alarm: false, cause: "" }; 5];
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            if !enabled[i] {
                self.channels[i] = Channel::new(self.channels[i].names);
                out[i] = SensorHealth { sensor, enabled: false, score: 0.0, alarm: false, cause: "" };
                continue;
            }
            let (score, cause) = self.channels[i].score(now, &features[i]);
            out[i] = SensorHealth { sensor, enabled: true, score, alarm: score >= threshold, cause };
        }
        out
    }
}
