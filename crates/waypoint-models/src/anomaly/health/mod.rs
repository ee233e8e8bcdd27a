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

mod camera;
mod channel;
mod gps;
mod imu;
mod lidar;
mod radar;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use waypoint_sim::fault::Sensor;
use waypoint_sim::sensors::{CameraConfig, SensorsConfig};
use waypoint_sim::Frame;

use channel::{Channel, Feature, Ramp, Side};
use radar::RangeChain;

/// One tick's values of a sensor's features and of its ramps, in the order they are declared
/// (`None`: not measured this tick).
type Evidence = (Vec<Option<f64>>, Vec<Option<f64>>);

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
        let evidence = [
            self.lidar_evidence(frame),
            self.radar_evidence(frame),
            self.camera_evidence(frame),
            self.imu_evidence(frame),
            self.gps_evidence(frame),
        ];
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
            let (score, cause) = self.channels[i].score(now, &evidence[i].0, &evidence[i].1);
            let c = &self.channels[i];
            let learning =
                c.features.iter().any(|f| f.n <= WARMUP) || c.ramps.iter().any(|r| r.feature.n <= RAMP_WARMUP_BLOCKS);
            out[i] = SensorHealth { sensor, enabled: true, score, alarm: score >= threshold, cause, learning };
        }
        out
    }
}
