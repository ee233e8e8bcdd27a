//! The five sensors on the ego vehicle. Each turns the true world into noisy measurements at
//! its own rate; faults change what they report through [`crate::fault::FaultEffect`].

pub mod camera;
pub mod gps;
pub mod imu;
pub mod lidar;
pub mod radar;

use serde::{Deserialize, Serialize};

use crate::agent::AgentKind;
use crate::frame::SensorPose;
use crate::geometry::{OrientedBox, Vec2};
use crate::map::ClutterPart;

pub use camera::CameraConfig;
pub use gps::GpsConfig;
pub use imu::ImuConfig;
pub use lidar::LidarConfig;
pub use radar::RadarConfig;

/// Everything the sensors can see.
#[derive(Debug, Clone)]
pub struct WorldView<'a> {
    pub ego_pos: Vec2,
    pub ego_yaw_rad: f64,
    pub ego_velocity: Vec2,
    pub ego_yaw_rate_rps: f64,
    pub targets: &'a [Target],
    pub obstacles: &'a [OrientedBox],
    /// Street clutter, seen by the lidar only.
    pub clutter: &'a [ClutterPart],
}

/// A moving object as the sensors see it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub id: u32,
    pub kind: AgentKind,
    pub bbox: OrientedBox,
    pub velocity: Vec2,
}

impl WorldView<'_> {
    /// World pose of a sensor mounted at `forward_m` ahead of the ego centre, `height_m` up.
    pub fn mount(&self, forward_m: f64, height_m: f64) -> SensorPose {
        let p = self.ego_pos + Vec2::from_angle(self.ego_yaw_rad).scale(forward_m);
        SensorPose { x_m: p.x, y_m: p.y, z_m: height_m, yaw_rad: self.ego_yaw_rad }
    }

    /// World velocity of a point mounted `forward_m` ahead of the ego centre: the ego's
    /// velocity plus its turning (a radar on the bumper swings sideways in a turn).
    pub fn mount_velocity(&self, forward_m: f64) -> Vec2 {
        let side = Vec2::from_angle(self.ego_yaw_rad + std::f64::consts::FRAC_PI_2);
        self.ego_velocity + side.scale(self.ego_yaw_rate_rps * forward_m)
    }

    /// Nearest distance at which a horizontal sight line from `from` along `dir` is blocked by
    /// a static obstacle or by any target other than `except`.
    pub fn blocked_before(&self, from: Vec2, dir: Vec2, except: Option<u32>, height_m: f64) -> f64 {
        let mut best = f64::INFINITY;
        for o in self.obstacles {
            if let Some((t0, _)) = o.ray_interval(from, dir) {
                if o.height_m >= height_m {
                    best = best.min(t0);
                }
            }
        }
        for t in self.targets {
            if Some(t.id) == except || t.bbox.height_m < height_m * 0.8 {
                continue;
            }
            if let Some((t0, _)) = t.bbox.ray_interval(from, dir) {
                best = best.min(t0);
            }
        }
        best
    }
}

/// Configuration of all five sensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SensorsConfig {
    pub lidar: LidarConfig,
    pub radar: RadarConfig,
    pub camera: CameraConfig,
    pub imu: ImuConfig,
    pub gps: GpsConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_ahead_of_the_centre_swings_sideways_in_a_turn() {
        let world = WorldView {
            ego_pos: Vec2::new(0.0, 0.0),
            ego_yaw_rad: std::f64::consts::FRAC_PI_2,
            ego_velocity: Vec2::new(0.0, 10.0),
            ego_yaw_rate_rps: 0.5,
            targets: &[],
            obstacles: &[],
            clutter: &[],
        };
        // Heading north, turning left at 0.5 rad/s: a point 2 m ahead moves 1 m/s west too.
        let v = world.mount_velocity(2.0);
        assert!((v.x + 1.0).abs() < 1e-9 && (v.y - 10.0).abs() < 1e-9, "{v:?}");
        assert_eq!(world.mount_velocity(0.0), world.ego_velocity);
    }
}
