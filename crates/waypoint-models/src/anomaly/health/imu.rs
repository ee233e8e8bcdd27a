//! The IMU's evidence: the spread and peak of the acceleration within a tick, and the readings
//! against the motion of the vehicle's pose.

use waypoint_sim::Frame;

use super::stats::{digest, mean_std, median_mad};
use super::{Evidence, HealthMonitor};

impl HealthMonitor {
    /// IMU: spread and peak of the longitudinal acceleration within the tick, and the
    /// readings against the motion of the vehicle's pose over the tick.
    pub(super) fn imu_evidence(&mut self, frame: &Frame) -> Evidence {
        let now = frame.t_secs;
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
                let dyaw =
                    (ego.yaw_rad - y + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
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
        (vec![lag, roughness, peak, accel_residual, yaw_residual], vec![accel_residual, yaw_residual])
    }
}
