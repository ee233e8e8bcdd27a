//! Forward camera reduced to what a detector would report: a 2-D box with class per visible
//! agent, from the pinhole projection of its 3-D box, with truncation, occlusion and noise.

use serde::{Deserialize, Serialize};

use super::WorldView;
use crate::fault::FaultEffect;
use crate::frame::{CameraBox, CameraFrame};
use crate::geometry::Vec2;
use crate::rng::SimRng;

/// Camera configuration (pinhole intrinsics in pixels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraConfig {
    pub enabled: bool,
    pub rate_hz: f64,
    pub width_px: u32,
    pub height_px: u32,
    pub focal_px: f64,
    pub max_range_m: f64,
    pub box_noise_px: f64,
    pub mount_forward_m: f64,
    pub mount_height_m: f64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_hz: 15.0,
            width_px: 1280,
            height_px: 720,
            focal_px: 700.0,
            max_range_m: 80.0,
            box_noise_px: 2.0,
            mount_forward_m: 1.5,
            mount_height_m: 1.6,
        }
    }
}

/// The camera sensor.
#[derive(Debug, Clone)]
pub struct Camera {
    pub config: CameraConfig,
    rng: SimRng,
}

/// Unclipped projection of one target.
#[derive(Debug, Clone, Copy)]
struct Projected {
    idx: usize,
    dist_m: f64,
    rect: [f64; 4],
}

fn area(r: &[f64; 4]) -> f64 {
    (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0)
}

fn intersect(a: &[f64; 4], b: &[f64; 4]) -> [f64; 4] {
    [a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])]
}

impl Camera {
    pub fn new(config: CameraConfig, rng: SimRng) -> Self {
        Self { config, rng }
    }

    /// Pixel coordinates of a world point, if it lies in front of the camera.
    pub fn project(&self, world: &WorldView, p: [f64; 3]) -> Option<(f64, f64)> {
        let pose = world.mount(self.config.mount_forward_m, self.config.mount_height_m);
        let rel = (Vec2::new(p[0], p[1]) - Vec2::new(pose.x_m, pose.y_m)).rotate(-pose.yaw_rad);
        let (xc, yc, zc) = (-rel.y, -(p[2] - pose.z_m), rel.x);
        if zc < 0.3 {
            return None;
        }
        let f = self.config.focal_px;
        Some((
            f64::from(self.config.width_px) / 2.0 + f * xc / zc,
            f64::from(self.config.height_px) / 2.0 + f * yc / zc,
        ))
    }

    pub fn capture(&mut self, t_secs: f64, world: &WorldView, effect: &FaultEffect) -> CameraFrame {
        let pose = world.mount(self.config.mount_forward_m, self.config.mount_height_m);
        let cam = Vec2::new(pose.x_m, pose.y_m);
        let image = [0.0, 0.0, f64::from(self.config.width_px), f64::from(self.config.height_px)];
        let mut projected = Vec::new();
        'targets: for (idx, t) in world.targets.iter().enumerate() {
            let dist = t.bbox.center.dist(cam);
            if dist > self.config.max_range_m {
                continue;
            }
            let mut rect = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
            for c in t.bbox.corners() {
                for z in [t.bbox.z_bottom_m, t.bbox.z_bottom_m + t.bbox.height_m] {
                    let Some((u, v)) = self.project(world, [c.x, c.y, z]) else { continue 'targets };
                    rect = [rect[0].min(u), rect[1].min(v), rect[2].max(u), rect[3].max(v)];
                }
            }
            // Hidden behind a building?
            let dir = (t.bbox.center - cam).scale(1.0 / dist.max(1e-9));
            let mut blocked = f64::INFINITY;
            for o in world.obstacles {
                if let Some((t0, _)) = o.ray_interval(cam, dir) {
                    if o.height_m > t.bbox.height_m {
                        blocked = blocked.min(t0);
                    }
                }
            }
            if blocked < dist {
                continue;
            }
            projected.push(Projected { idx, dist_m: dist, rect });
        }
        projected.sort_by(|a, b| a.dist_m.total_cmp(&b.dist_m));
        let nm = effect.noise_mult;
        let mut boxes = Vec::new();
        for (k, p) in projected.iter().enumerate() {
            let full = area(&p.rect);
            let clipped = intersect(&p.rect, &image);
            if full <= 0.0 || area(&clipped) < 0.3 * full {
                continue;
            }
            let covered: f64 = projected[..k].iter().map(|q| area(&intersect(&q.rect, &clipped))).sum();
            let occlusion = (covered / area(&clipped)).min(1.0);
            if occlusion > 0.85 {
                continue;
            }
            let sigma = self.config.box_noise_px * nm;
            let mut shift = effect.drift;
            if let Some(size) = effect.spike {
                if self.rng.chance(0.3) {
                    shift += size * if self.rng.chance(0.5) { 1.0 } else { -1.0 };
                }
            }
            let t = &world.targets[p.idx];
            boxes.push(CameraBox {
                class: t.kind,
                left_px: clipped[0] + self.rng.gauss(sigma) + shift,
                top_px: clipped[1] + self.rng.gauss(sigma),
                right_px: clipped[2] + self.rng.gauss(sigma) + shift,
                bottom_px: clipped[3] + self.rng.gauss(sigma),
                occlusion,
                truth_agent_id: Some(t.id),
            });
        }
        CameraFrame { t_secs, width_px: self.config.width_px, height_px: self.config.height_px, boxes }
    }
}
