//! The camera's evidence: boxes against the previous frames' and against the radar targets
//! they show.

use waypoint_sim::sensors::CameraConfig;
use waypoint_sim::Frame;

use super::stats::{digest, median_mad, push_window};
use super::{Evidence, HealthMonitor};

/// Horizontal offsets (pixels) of camera boxes from the radar targets they show. Each target
/// (range, azimuth from the radar) is projected into the image; the box it shows is the one
/// whose bottom edge lies where the road under a road user at that distance would be (a
/// horizontal shift of the image leaves that alone), nearest in column within 80 px. The
/// radar's azimuth does not share the camera's faults, so a camera drift moves every offset
/// alike.
pub(super) fn camera_radar_offsets(
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
pub(super) fn edge_second_differences(a: &[[f64; 4]], b: &[[f64; 4]], c: &[[f64; 4]]) -> Vec<f64> {
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
    /// Camera: boxes against the previous frame's. Each box is matched to the nearest box
    /// of similar size; the matches' common move (the vehicle turning) is removed; jumps: the
    /// share of boxes displaced sideways far beyond it (over the last second). Noise: the
    /// median size of the boxes' edge second differences over three frames (see
    /// `edge_second_differences`; over the last second). Drift: boxes against the
    /// radar targets they show (a drift moves every box alike, which the vehicle's own
    /// turning does too, so frame-to-frame moves cannot tell it).
    pub(super) fn camera_evidence(&mut self, frame: &Frame) -> Evidence {
        let now = frame.t_secs;
        let ego = &frame.truth.ego;
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
            let edges: Vec<[f64; 4]> =
                img.boxes.iter().map(|b| [bearing(b.left_px), b.top_px, bearing(b.right_px), b.bottom_px]).collect();
            if self.camera_edges.len() == 2 {
                rough.extend(edge_second_differences(&self.camera_edges[0], &self.camera_edges[1], &edges));
            }
            push_window(&mut self.camera_edges, edges, 2);
            // The radar scan nearest in time, its bearings turned by the vehicle's yaw since.
            let nearest =
                self.recent_radar.iter().min_by(|a, b| (a.0 - img.t_secs).abs().total_cmp(&(b.0 - img.t_secs).abs()));
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
        (vec![lag, share, offset, roughness], vec![])
    }
}
