//! The lidar's evidence: lateness, and the ground ring near the car against a flat road.

use waypoint_sim::Frame;

use super::stats::{digest, mean_std, median_mad};
use super::{Evidence, HealthMonitor};

impl HealthMonitor {
    /// Lidar: lateness, and the ground ring near the car against a flat road.
    pub(super) fn lidar_evidence(&mut self, frame: &Frame) -> Evidence {
        let now = frame.t_secs;
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
        (vec![lag, below, ground.map(|g| g.0), ground.map(|g| g.1), surface], vec![ground.map(|g| g.0)])
    }
}
