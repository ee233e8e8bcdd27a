//! Forward radar: range, azimuth, range rate and radar cross-section of each visible agent,
//! with missed detections and clutter false alarms.

use serde::{Deserialize, Serialize};

use super::WorldView;
use crate::agent::AgentKind;
use crate::fault::FaultEffect;
use crate::frame::{RadarScan, RadarTarget};
use crate::geometry::{wrap_angle, Vec2};
use crate::rng::SimRng;

/// Radar configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadarConfig {
    pub enabled: bool,
    pub rate_hz: f64,
    pub fov_deg: f64,
    pub max_range_m: f64,
    pub range_noise_m: f64,
    pub azimuth_noise_rad: f64,
    pub range_rate_noise_mps: f64,
    pub detection_prob: f64,
    /// Mean number of clutter detections per scan.
    pub false_alarms_per_scan: f64,
    pub mount_forward_m: f64,
}

impl Default for RadarConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_hz: 20.0,
            fov_deg: 120.0,
            max_range_m: 120.0,
            range_noise_m: 0.3,
            azimuth_noise_rad: 0.01,
            range_rate_noise_mps: 0.1,
            detection_prob: 0.95,
            false_alarms_per_scan: 0.8,
            mount_forward_m: 2.2,
        }
    }
}

/// The radar sensor.
#[derive(Debug, Clone)]
pub struct Radar {
    pub config: RadarConfig,
    rng: SimRng,
}

impl Radar {
    pub fn new(config: RadarConfig, rng: SimRng) -> Self {
        Self { config, rng }
    }

    pub fn scan(&mut self, t_secs: f64, world: &WorldView, effect: &FaultEffect) -> RadarScan {
        let pose = world.mount(self.config.mount_forward_m, 0.5);
        let origin = Vec2::new(pose.x_m, pose.y_m);
        let half_fov = self.config.fov_deg.to_radians() / 2.0;
        let nm = effect.noise_mult;
        // Range rates are relative to the radar itself, which swings sideways when the ego turns.
        let own_velocity = world.mount_velocity(self.config.mount_forward_m);
        let mut targets = Vec::new();
        for t in world.targets {
            let rel = t.bbox.center - origin;
            let range = rel.norm();
            let az = wrap_angle(rel.angle() - pose.yaw_rad);
            if range > self.config.max_range_m || range < 0.5 || az.abs() > half_fov {
                continue;
            }
            let dir = rel.scale(1.0 / range);
            // Line of sight to the centre, blocked by buildings or other agents.
            if world.blocked_before(origin, dir, Some(t.id), 0.4) < range - t.bbox.bounding_radius() {
                continue;
            }
            if !self.rng.chance(self.config.detection_prob) {
                continue;
            }
            let range_rate = (t.velocity - own_velocity).dot(dir);
            let rcs = match t.kind {
                AgentKind::Vehicle => 10.0,
                AgentKind::Cyclist => 2.0,
                AgentKind::Pedestrian => -5.0,
            };
            let mut r = range + self.rng.gauss(self.config.range_noise_m * nm) + effect.drift;
            if let Some(size) = effect.spike {
                if self.rng.chance(0.3) {
                    r += size * self.rng.range(0.5, 1.0);
                }
            }
            targets.push(RadarTarget {
                range_m: r.max(0.0),
                azimuth_rad: az + self.rng.gauss(self.config.azimuth_noise_rad * nm),
                range_rate_mps: range_rate + self.rng.gauss(self.config.range_rate_noise_mps * nm),
                rcs_dbsm: rcs + self.rng.gauss(2.0),
                truth_agent_id: Some(t.id),
            });
        }
        for _ in 0..self.rng.poisson(self.config.false_alarms_per_scan) {
            let az = self.rng.range(-half_fov, half_fov);
            let dir = Vec2::from_angle(pose.yaw_rad + az);
            targets.push(RadarTarget {
                range_m: self.rng.range(2.0, self.config.max_range_m),
                azimuth_rad: az,
                // Clutter is static: it closes at the ego speed projected on the line of sight.
                range_rate_mps: -own_velocity.dot(dir) + self.rng.gauss(0.3),
                rcs_dbsm: self.rng.range(-15.0, 0.0),
                truth_agent_id: None,
            });
        }
        RadarScan { t_secs, world_from_sensor: pose, targets }
    }
}
