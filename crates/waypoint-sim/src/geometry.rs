//! Planar and box geometry in metres and radians.

use serde::{Deserialize, Serialize};

/// A point or vector in the ground plane, metres.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Vec2 {
    pub x: f64,
    pub y: f64,
}

impl Vec2 {
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }
    pub fn from_angle(rad: f64) -> Self {
        Self::new(rad.cos(), rad.sin())
    }
    pub fn dot(self, o: Self) -> f64 {
        self.x * o.x + self.y * o.y
    }
    pub fn cross(self, o: Self) -> f64 {
        self.x * o.y - self.y * o.x
    }
    pub fn norm(self) -> f64 {
        self.x.hypot(self.y)
    }
    pub fn angle(self) -> f64 {
        self.y.atan2(self.x)
    }
    pub fn rotate(self, rad: f64) -> Self {
        let (s, c) = rad.sin_cos();
        Self::new(c * self.x - s * self.y, s * self.x + c * self.y)
    }
    pub fn scale(self, k: f64) -> Self {
        Self::new(self.x * k, self.y * k)
    }
    pub fn dist(self, o: Self) -> f64 {
        (self - o).norm()
    }
}

impl std::ops::Add for Vec2 {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self::new(self.x + o.x, self.y + o.y)
    }
}
impl std::ops::Sub for Vec2 {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self::new(self.x - o.x, self.y - o.y)
    }
}

/// Wraps an angle to (-pi, pi].
pub fn wrap_angle(rad: f64) -> f64 {
    let mut a = rad % std::f64::consts::TAU;
    if a > std::f64::consts::PI {
        a -= std::f64::consts::TAU;
    } else if a <= -std::f64::consts::PI {
        a += std::f64::consts::TAU;
    }
    a
}

/// An upright box: centre in the ground plane, bottom height, size and heading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OrientedBox {
    pub center: Vec2,
    pub z_bottom_m: f64,
    pub length_m: f64,
    pub width_m: f64,
    pub height_m: f64,
    pub yaw_rad: f64,
}

impl OrientedBox {
    /// The four ground-plane corners, counter-clockwise.
    pub fn corners(&self) -> [Vec2; 4] {
        let hl = self.length_m / 2.0;
        let hw = self.width_m / 2.0;
        [(hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw)].map(|(x, y)| self.center + Vec2::new(x, y).rotate(self.yaw_rad))
    }

    /// Radius of the circle that encloses the footprint.
    pub fn bounding_radius(&self) -> f64 {
        0.5 * self.length_m.hypot(self.width_m)
    }

    /// The horizontal parameter interval `[t_in, t_out]` (metres along the unit direction `dir`
    /// from `origin`) over which a vertical ray fan crosses the footprint, if it does.
    pub fn ray_interval(&self, origin: Vec2, dir: Vec2) -> Option<(f64, f64)> {
        // Slab test in the box frame.
        let rel = (origin - self.center).rotate(-self.yaw_rad);
        let d = dir.rotate(-self.yaw_rad);
        let mut t0 = f64::NEG_INFINITY;
        let mut t1 = f64::INFINITY;
        for (o, dv, half) in [(rel.x, d.x, self.length_m / 2.0), (rel.y, d.y, self.width_m / 2.0)] {
            if dv.abs() < 1e-12 {
                if o.abs() > half {
                    return None;
                }
            } else {
                let a = (-half - o) / dv;
                let b = (half - o) / dv;
                let (a, b) = if a < b { (a, b) } else { (b, a) };
                t0 = t0.max(a);
                t1 = t1.min(b);
                if t0 > t1 {
                    return None;
                }
            }
        }
        if t1 < 0.0 {
            None
        } else {
            Some((t0.max(0.0), t1))
        }
    }

    /// Distance from a 3-D point to the box surface (0 on the surface).
    pub fn surface_distance(&self, p: [f64; 3]) -> f64 {
        let rel = (Vec2::new(p[0], p[1]) - self.center).rotate(-self.yaw_rad);
        let zc = self.z_bottom_m + self.height_m / 2.0;
        let q = [
            rel.x.abs() - self.length_m / 2.0,
            rel.y.abs() - self.width_m / 2.0,
            (p[2] - zc).abs() - self.height_m / 2.0,
        ];
        let outside = q.iter().map(|v| v.max(0.0).powi(2)).sum::<f64>().sqrt();
        let inside = q[0].max(q[1]).max(q[2]).min(0.0);
        outside + inside.abs()
    }

    /// Whether the footprints of two boxes overlap (separating-axis test).
    pub fn overlaps(&self, other: &OrientedBox) -> bool {
        let a = self.corners();
        let b = other.corners();
        let axes = [
            Vec2::from_angle(self.yaw_rad),
            Vec2::from_angle(self.yaw_rad + std::f64::consts::FRAC_PI_2),
            Vec2::from_angle(other.yaw_rad),
            Vec2::from_angle(other.yaw_rad + std::f64::consts::FRAC_PI_2),
        ];
        axes.iter().all(|ax| {
            let (amin, amax) = project(&a, *ax);
            let (bmin, bmax) = project(&b, *ax);
            amax >= bmin && bmax >= amin
        })
    }
}

fn project(pts: &[Vec2; 4], axis: Vec2) -> (f64, f64) {
    pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        let v = p.dot(axis);
        (lo.min(v), hi.max(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_box(yaw: f64) -> OrientedBox {
        OrientedBox {
            center: Vec2::new(10.0, 0.0),
            z_bottom_m: 0.0,
            length_m: 4.0,
            width_m: 2.0,
            height_m: 1.5,
            yaw_rad: yaw,
        }
    }

    #[test]
    fn ray_hits_box_front_face() {
        let b = unit_box(0.0);
        let (t0, t1) = b.ray_interval(Vec2::default(), Vec2::new(1.0, 0.0)).unwrap();
        assert!((t0 - 8.0).abs() < 1e-9 && (t1 - 12.0).abs() < 1e-9);
        assert!(b.ray_interval(Vec2::default(), Vec2::new(0.0, 1.0)).is_none());
        // Rotated 90 degrees: now 2 m deep along x.
        let (t0, _) = unit_box(std::f64::consts::FRAC_PI_2).ray_interval(Vec2::default(), Vec2::new(1.0, 0.0)).unwrap();
        assert!((t0 - 9.0).abs() < 1e-9);
    }

    #[test]
    fn surface_distance_and_overlap() {
        let b = unit_box(0.3);
        assert!(b.surface_distance([10.0, 0.0, 1.5]) < 1e-9);
        assert!((b.surface_distance([10.0, 0.0, 2.5]) - 1.0).abs() < 1e-9);
        let mut c = unit_box(0.0);
        assert!(b.overlaps(&c));
        c.center = Vec2::new(16.0, 0.0);
        assert!(!b.overlaps(&c));
    }

    #[test]
    fn wraps_angles() {
        assert!((wrap_angle(3.0 * std::f64::consts::PI) - std::f64::consts::PI).abs() < 1e-12);
        assert!((wrap_angle(-0.5) + 0.5).abs() < 1e-12);
    }
}
