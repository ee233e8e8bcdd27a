//! Spinning lidar: a ray cast over 360° against agent boxes, static obstacles, street clutter
//! (solid, or porous like foliage) and the ground.
//!
//! The cast is done per azimuth column: the horizontal interval over which each box's footprint
//! is crossed is computed once, then every beam of the column only intersects that interval with
//! the height band of the box. That makes a 32 × 1024 sweep cost about as much as 1024 2-D ray
//! tests plus one scalar test per beam and candidate box.

use serde::{Deserialize, Serialize};

use super::WorldView;
use crate::fault::FaultEffect;
use crate::frame::LidarSweep;
use crate::geometry::{OrientedBox, Vec2};
use crate::rng::SimRng;

/// Lidar configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LidarConfig {
    pub enabled: bool,
    pub rate_hz: f64,
    pub beams: u32,
    pub elevation_min_deg: f64,
    pub elevation_max_deg: f64,
    pub azimuth_steps: u32,
    pub max_range_m: f64,
    pub range_noise_m: f64,
    /// Probability that a ray returns nothing although it hit something.
    pub dropout_prob: f64,
    pub mount_height_m: f64,
    /// The sensor's tilt on its car, degrees: pitch (its forward axis raised) and roll (its
    /// left side raised). A tilted sensor's rings cross the road and the objects on it at
    /// heights that vary around the sweep, and its points come in its own, tilted frame (as a
    /// real sensor's do on a car that brakes, is loaded, or stands on a cambered road).
    #[serde(default)]
    pub tilt_deg: [f64; 2],
    /// Vehicles' windows let the beams into the cabin (returns from the interior, some beams
    /// through to what lies behind) instead of the cabin being solid.
    #[serde(default)]
    pub vehicle_glass: bool,
}

/// With [`LidarConfig::vehicle_glass`], returns per metre inside a vehicle's cabin behind its
/// windows: a beam meets the interior 0.5 m in on average, and one in twenty-five crosses a
/// 1.6 m cabin (not fitted to data).
pub const CABIN_DENSITY_PER_M: f64 = 2.0;
/// With [`LidarConfig::vehicle_glass`], the share of the cabin's height under its solid roof.
const ROOF_SHARE: f64 = 0.2;

impl Default for LidarConfig {
    /// A 32-beam sensor, 1024 azimuth steps, 10 Hz (similar to a Velodyne HDL-32E).
    fn default() -> Self {
        Self {
            enabled: true,
            rate_hz: 10.0,
            beams: 32,
            elevation_min_deg: -30.67,
            elevation_max_deg: 10.67,
            azimuth_steps: 1024,
            max_range_m: 100.0,
            range_noise_m: 0.02,
            dropout_prob: 0.01,
            mount_height_m: 1.73,
            tilt_deg: [0.0, 0.0],
            vehicle_glass: false,
        }
    }
}

impl LidarConfig {
    /// Vertical angle between adjacent beams, radians.
    pub fn ring_spacing_rad(&self) -> f64 {
        (self.elevation_max_deg - self.elevation_min_deg).to_radians() / f64::from(self.beams.max(2) - 1)
    }

    /// Horizontal angle between successive firings, radians.
    pub fn azimuth_step_rad(&self) -> f64 {
        std::f64::consts::TAU / f64::from(self.azimuth_steps.max(1))
    }

    /// The rotation from the sensor's frame to the level frame of its car (row-major), none
    /// when the sensor is level.
    pub fn level_from_sensor(&self) -> Option<[[f64; 3]; 3]> {
        let [pitch, roll] = self.tilt_deg;
        if pitch == 0.0 && roll == 0.0 {
            return None;
        }
        // Pitch turns the forward axis up about y, after roll turns the left axis up about x.
        let (sp, cp) = pitch.to_radians().sin_cos();
        let (sr, cr) = roll.to_radians().sin_cos();
        let pitch_m = [[cp, 0.0, -sp], [0.0, 1.0, 0.0], [sp, 0.0, cp]];
        let roll_m = [[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]];
        Some(std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| pitch_m[i][k] * roll_m[k][j]).sum())))
    }

    /// A 64-beam preset matching the Velodyne HDL-64E used for KITTI (+2° to −24.9°, ~0.17°
    /// azimuth resolution, 120 m, mounted 1.73 m above the ground).
    pub fn hdl64e() -> Self {
        Self {
            beams: 64,
            elevation_min_deg: -24.9,
            elevation_max_deg: 2.0,
            azimuth_steps: 2048,
            max_range_m: 120.0,
            ..Self::default()
        }
    }
}

/// Lidar with precomputed beam and azimuth tables.
#[derive(Debug, Clone)]
pub struct Lidar {
    pub config: LidarConfig,
    beam_tan: Vec<f64>,
    beam_cos: Vec<f64>,
    beam_sin: Vec<f64>,
    az_cos: Vec<f64>,
    az_sin: Vec<f64>,
    rng: SimRng,
}

#[derive(Clone, Copy)]
struct Candidate {
    t0: f64,
    t1: f64,
    z0: f64,
    z1: f64,
    intensity: f64,
    /// Returns per metre inside (infinite: solid).
    density: f64,
}

/// The boxes a road user's shape is made of, inside its bounding box (a walker's feet reach up
/// to 0.12 m beyond it along the heading): a vehicle's lower body and its narrower, shorter
/// cabin (part [`VEHICLE_CABIN`]); a pedestrian's two legs, torso and head; a bicycle (a thin
/// slab) and its rider.
pub fn body_parts(kind: crate::agent::AgentKind, b: &OrientedBox) -> Vec<OrientedBox> {
    use crate::agent::AgentKind;
    let (l, w, h) = (b.length_m, b.width_m, b.height_m);
    // A part `along` forward and `across` left of the centre, `length` × `width`, from `z0` to
    // `z1` above the box's bottom.
    let part = |along: f64, across: f64, length: f64, width: f64, z0: f64, z1: f64| OrientedBox {
        center: b.center + Vec2::new(along, across).rotate(b.yaw_rad),
        z_bottom_m: b.z_bottom_m + z0,
        length_m: length,
        width_m: width,
        height_m: z1 - z0,
        yaw_rad: b.yaw_rad,
    };
    match kind {
        AgentKind::Vehicle => {
            vec![part(0.0, 0.0, l, w, 0.0, 0.6 * h), part(-0.05 * l, 0.0, 0.55 * l, 0.88 * w, 0.6 * h, h)]
        }
        AgentKind::Pedestrian => {
            // Walking legs swing apart along the heading, about 0.6 m at the widest, a full
            // swing every 1.5 m walked (the phase comes from the position along the heading).
            let walked = b.center.dot(Vec2::new(1.0, 0.0).rotate(b.yaw_rad));
            let stride = 0.3 * (std::f64::consts::PI * walked / 0.75).sin();
            vec![
                part(stride, 0.11, 0.18, 0.15, 0.0, 0.5 * h),
                part(-stride, -0.11, 0.18, 0.15, 0.0, 0.5 * h),
                part(0.0, 0.0, 0.28, w.min(0.5), 0.5 * h, 0.84 * h),
                part(0.0, 0.0, 0.2, 0.18, 0.86 * h, h),
            ]
        }
        AgentKind::Cyclist => vec![
            part(0.0, 0.0, l * 0.97, 0.12, 0.0, 0.35 * h),
            part(-0.1 * l, 0.0, 0.3 * l, 0.45_f64.min(w), 0.3 * h, h),
        ],
    }
}

/// Which of a vehicle's [`body_parts`] is its cabin.
pub const VEHICLE_CABIN: usize = 1;

/// Azimuth columns per bucket of [`azimuth_buckets`].
const BUCKET_COLUMNS: usize = 32;

/// For each run of [`BUCKET_COLUMNS`] azimuth columns, the boxes (indices, ascending) whose
/// footprint's enclosing circle the run's rays may cross; a box around the sensor is in every
/// bucket. A superset of the boxes each column's own test keeps, in the same order, so the
/// sweep is the same as testing every box in every column.
fn azimuth_buckets(boxes: &[(OrientedBox, f64, f64)], origin: Vec2, yaw: f64, columns: usize) -> Vec<Vec<u32>> {
    let n = columns.div_ceil(BUCKET_COLUMNS).max(1);
    let step = std::f64::consts::TAU / columns.max(1) as f64;
    let mut buckets = vec![Vec::new(); n];
    for (k, (b, _, _)) in boxes.iter().enumerate() {
        let rel = b.center - origin;
        let (d, r) = (rel.norm(), b.bounding_radius());
        if d <= r + 1e-6 {
            buckets.iter_mut().for_each(|v| v.push(k as u32));
            continue;
        }
        // Columns within the circle's angular half-width (and one more each side).
        let centre = (rel.angle() - yaw).rem_euclid(std::f64::consts::TAU) / step;
        let half = (r / d).asin() / step + 1.0;
        let (lo, hi) = ((centre - half).floor() as i64, (centre + half).ceil() as i64);
        for c in lo..=hi.min(lo + columns as i64 - 1) {
            let bucket = &mut buckets[c.rem_euclid(columns as i64) as usize / BUCKET_COLUMNS];
            if bucket.last() != Some(&(k as u32)) {
                bucket.push(k as u32);
            }
        }
    }
    buckets
}

impl Lidar {
    pub fn new(config: LidarConfig, rng: SimRng) -> Self {
        let beams = config.beams.max(1) as usize;
        let steps = config.azimuth_steps.max(1) as usize;
        let elev: Vec<f64> = (0..beams)
            .map(|i| {
                let f = if beams == 1 { 0.0 } else { i as f64 / (beams - 1) as f64 };
                (config.elevation_min_deg + f * (config.elevation_max_deg - config.elevation_min_deg)).to_radians()
            })
            .collect();
        let az: Vec<f64> = (0..steps).map(|j| j as f64 / steps as f64 * std::f64::consts::TAU).collect();
        Self {
            beam_tan: elev.iter().map(|e| e.tan()).collect(),
            beam_cos: elev.iter().map(|e| e.cos()).collect(),
            beam_sin: elev.iter().map(|e| e.sin()).collect(),
            az_cos: az.iter().map(|a| a.cos()).collect(),
            az_sin: az.iter().map(|a| a.sin()).collect(),
            config,
            rng,
        }
    }

    /// One sweep taken at `t_secs`.
    pub fn sweep(&mut self, t_secs: f64, world: &WorldView, effect: &FaultEffect) -> LidarSweep {
        let pose = world.mount(0.0, self.config.mount_height_m);
        let origin = Vec2::new(pose.x_m, pose.y_m);
        let z0 = pose.z_m;
        let noise = self.config.range_noise_m * effect.noise_mult;
        // Each box with its intensity and density (returns per metre inside; infinite: solid).
        let mut boxes: Vec<(OrientedBox, f64, f64)> =
            Vec::with_capacity(world.targets.len() * 4 + world.obstacles.len() + world.clutter.len());
        for t in world.targets {
            let intensity = match t.kind {
                crate::agent::AgentKind::Vehicle => 0.55,
                crate::agent::AgentKind::Cyclist => 0.4,
                crate::agent::AgentKind::Pedestrian => 0.3,
            };
            for (k, b) in body_parts(t.kind, &t.bbox).into_iter().enumerate() {
                if self.config.vehicle_glass && t.kind == crate::agent::AgentKind::Vehicle && k == VEHICLE_CABIN {
                    // The cabin: windows below, a solid roof above.
                    let roof = ROOF_SHARE * b.height_m;
                    let glass = OrientedBox { height_m: b.height_m - roof, ..b };
                    let top = OrientedBox { z_bottom_m: b.z_bottom_m + b.height_m - roof, height_m: roof, ..b };
                    boxes.push((glass, intensity, CABIN_DENSITY_PER_M));
                    boxes.push((top, intensity, f64::INFINITY));
                } else {
                    boxes.push((b, intensity, f64::INFINITY));
                }
            }
        }
        boxes.extend(world.obstacles.iter().map(|o| (*o, 0.35, f64::INFINITY)));
        boxes.extend(
            world
                .clutter
                .iter()
                .map(|c| (c.bbox, if c.density_per_m.is_finite() { 0.2 } else { 0.35 }, c.density_per_m)),
        );
        // Keep only boxes within range.
        boxes.retain(|(b, _, _)| b.center.dist(origin) - b.bounding_radius() < self.config.max_range_m);
        let mut points = Vec::with_capacity(self.beam_tan.len() * self.az_cos.len() / 2);
        let mut cands: Vec<Candidate> = Vec::with_capacity(16);
        let (ys, yc) = pose.yaw_rad.sin_cos();
        let buckets = azimuth_buckets(&boxes, origin, pose.yaw_rad, self.az_cos.len());
        // A tilted sensor: each beam's elevation in the level frame, per column (the column's
        // level azimuth is kept, which is exact for a level sensor and off by about the tilt
        // times the tangent of the beam's elevation otherwise).
        let tilt = self.config.level_from_sensor();
        let beams = self.beam_tan.len();
        let (mut col_tan, mut col_cos, mut col_sin) = (vec![0.0; beams], vec![0.0; beams], vec![0.0; beams]);
        for j in 0..self.az_cos.len() {
            let (ca, sa) = (self.az_cos[j], self.az_sin[j]);
            if let Some(m) = tilt {
                for i in 0..beams {
                    let d = [self.beam_cos[i] * ca, self.beam_cos[i] * sa, self.beam_sin[i]];
                    let level: [f64; 3] = std::array::from_fn(|r| m[r][0] * d[0] + m[r][1] * d[1] + m[r][2] * d[2]);
                    let e = level[2].atan2(level[0].hypot(level[1]));
                    (col_tan[i], col_cos[i], col_sin[i]) = (e.tan(), e.cos(), e.sin());
                }
            }
            let (beam_tan, beam_cos, beam_sin) = if tilt.is_some() {
                (&col_tan, &col_cos, &col_sin)
            } else {
                (&self.beam_tan, &self.beam_cos, &self.beam_sin)
            };
            let dir = Vec2::new(yc * ca - ys * sa, ys * ca + yc * sa);
            cands.clear();
            for (b, intensity, density) in buckets[j / BUCKET_COLUMNS].iter().map(|k| &boxes[*k as usize]) {
                let rel = b.center - origin;
                let along = rel.dot(dir);
                let r = b.bounding_radius();
                if along < -r || rel.cross(dir).abs() > r {
                    continue;
                }
                if let Some((t0, t1)) = b.ray_interval(origin, dir) {
                    cands.push(Candidate {
                        t0,
                        t1,
                        z0: b.z_bottom_m,
                        z1: b.z_bottom_m + b.height_m,
                        intensity: *intensity,
                        density: *density,
                    });
                }
            }
            for i in 0..beams {
                let tan_e = beam_tan[i];
                let mut best_t = f64::INFINITY;
                let mut best_int = 0.0;
                if tan_e < -1e-9 {
                    best_t = -z0 / tan_e;
                    best_int = 0.15;
                }
                for c in &cands {
                    // Horizontal distances at which the ray is within the box's height band.
                    let (lo, hi) = if tan_e.abs() < 1e-12 {
                        if z0 >= c.z0 && z0 <= c.z1 {
                            (c.t0, c.t1)
                        } else {
                            continue;
                        }
                    } else {
                        let a = (c.z0 - z0) / tan_e;
                        let b = (c.z1 - z0) / tan_e;
                        let (a, b) = if a < b { (a, b) } else { (b, a) };
                        (a.max(c.t0), b.min(c.t1))
                    };
                    if lo > hi || lo >= best_t {
                        continue;
                    }
                    // A porous part stops the beam after an exponential depth, if inside.
                    let hit = if c.density.is_finite() { lo - (1.0 - self.rng.uniform()).ln() / c.density } else { lo };
                    if hit <= hi && hit < best_t {
                        best_t = hit;
                        best_int = c.intensity;
                    }
                }
                let range = best_t / beam_cos[i];
                if !range.is_finite() || range > self.config.max_range_m || range < 0.5 {
                    continue;
                }
                if self.rng.chance(self.config.dropout_prob) {
                    continue;
                }
                let mut r = range + self.rng.gauss(noise) + effect.drift;
                if let Some(size) = effect.spike {
                    if self.rng.chance(0.02) {
                        r += size * self.rng.range(0.5, 1.0);
                    }
                }
                let r = r.max(0.0);
                let h = r * beam_cos[i];
                let intensity = (best_int + self.rng.gauss(0.03)).clamp(0.0, 1.0);
                let mut p = [h * ca, h * sa, r * beam_sin[i]];
                if let Some(m) = tilt {
                    // Into the sensor's own frame: the transpose of level-from-sensor.
                    p = std::array::from_fn(|c| m[0][c] * p[0] + m[1][c] * p[1] + m[2][c] * p[2]);
                }
                points.push([p[0] as f32, p[1] as f32, p[2] as f32, intensity as f32]);
            }
        }
        LidarSweep { t_secs, world_from_sensor: pose, points }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentKind;

    #[test]
    fn azimuth_buckets_hold_every_box_a_column_can_hit() {
        let mut rng = SimRng::new(7);
        for columns in [1024, 2048, 100] {
            let boxes: Vec<(OrientedBox, f64, f64)> = (0..200)
                .map(|_| {
                    let b = OrientedBox {
                        center: Vec2::new(rng.range(-30.0, 30.0), rng.range(-30.0, 30.0)),
                        z_bottom_m: 0.0,
                        length_m: rng.range(0.05, 12.0),
                        width_m: rng.range(0.05, 4.0),
                        height_m: 1.0,
                        yaw_rad: rng.range(-3.2, 3.2),
                    };
                    (b, 0.5, f64::INFINITY)
                })
                .collect();
            let origin = Vec2::new(rng.range(-5.0, 5.0), rng.range(-5.0, 5.0));
            let yaw = rng.range(-7.0, 7.0);
            let buckets = azimuth_buckets(&boxes, origin, yaw, columns);
            let mut hits = 0;
            for j in 0..columns {
                let dir = Vec2::from_angle(yaw + j as f64 / columns as f64 * std::f64::consts::TAU);
                for (k, (b, _, _)) in boxes.iter().enumerate() {
                    if b.ray_interval(origin, dir).is_some() {
                        hits += 1;
                        assert!(buckets[j / BUCKET_COLUMNS].contains(&(k as u32)), "column {j} misses box {k}");
                    }
                }
            }
            assert!(hits > columns, "{hits} hits");
            // Culling: on average a bucket holds far fewer than all the boxes.
            let mean = buckets.iter().map(Vec::len).sum::<usize>() as f64 / buckets.len() as f64;
            assert!(columns == 100 || mean < 0.5 * boxes.len() as f64, "{mean} boxes a bucket");
        }
    }

    #[test]
    fn body_parts_fill_their_bounding_box_and_have_a_road_users_profile() {
        for (kind, (l, w, h)) in [
            (AgentKind::Vehicle, (4.5, 1.8, 1.5)),
            (AgentKind::Pedestrian, (0.55, 0.55, 1.75)),
            (AgentKind::Cyclist, (1.8, 0.6, 1.7)),
        ] {
            let b = OrientedBox {
                center: Vec2::new(10.0, -3.0),
                z_bottom_m: 0.0,
                length_m: l,
                width_m: w,
                height_m: h,
                yaw_rad: 0.7,
            };
            let parts = body_parts(kind, &b);
            // A walking pedestrian's feet may reach beyond the standing box along the heading:
            // 0.3 m of stride plus half a foot.
            let reach = if kind == AgentKind::Pedestrian { 0.39 } else { l / 2.0 };
            for p in &parts {
                for c in p.corners() {
                    let r = (c - b.center).rotate(-b.yaw_rad);
                    assert!(r.x.abs() <= reach + 1e-9 && r.y.abs() <= w / 2.0 + 1e-9, "{kind:?}: {p:?}");
                }
                assert!(p.z_bottom_m >= 0.0 && p.z_bottom_m + p.height_m <= h + 1e-9, "{kind:?}: {p:?}");
            }
            // The highest part reaches the top; the lowest stands on the ground.
            assert!(parts.iter().any(|p| (p.z_bottom_m + p.height_m - h).abs() < 1e-9));
            assert!(parts.iter().any(|p| p.z_bottom_m == 0.0));
            let top = parts.iter().max_by(|a, c| a.z_bottom_m.total_cmp(&c.z_bottom_m)).unwrap();
            match kind {
                // A car's cabin is shorter and narrower than its body.
                AgentKind::Vehicle => assert!(top.length_m < l && top.width_m < w),
                // A head is narrower than the shoulders below it.
                AgentKind::Pedestrian => assert!(top.width_m < 0.5),
                // The rider is shorter than the bicycle and wider than its frame.
                AgentKind::Cyclist => assert!(top.length_m < l / 2.0 && top.width_m > 0.3),
            }
        }
    }

    /// With glass, beams enter a car's cabin: returns from inside it, and some through it to a
    /// wall behind; the body below the windows stays solid. Without, the cabin returns from its
    /// near face only.
    #[test]
    fn vehicle_glass_lets_beams_into_the_cabin_and_through_it() {
        use crate::sensors::Target;
        // A car 8 m ahead, side on (its near side at x = 7.1), a wall 6 m behind it.
        let bbox = OrientedBox {
            center: Vec2::new(8.0, 0.0),
            z_bottom_m: 0.0,
            length_m: 4.5,
            width_m: 1.8,
            height_m: 1.5,
            yaw_rad: std::f64::consts::FRAC_PI_2,
        };
        let car = Target { id: 1, kind: AgentKind::Vehicle, bbox, velocity: Vec2::new(0.0, 0.0) };
        let wall = OrientedBox {
            center: Vec2::new(14.0, 0.0),
            z_bottom_m: 0.0,
            length_m: 0.3,
            width_m: 30.0,
            height_m: 6.0,
            yaw_rad: 0.0,
        };
        let sweep = |glass: bool| {
            let world = WorldView {
                ego_pos: Vec2::new(0.0, 0.0),
                ego_yaw_rad: 0.0,
                ego_velocity: Vec2::new(0.0, 0.0),
                ego_yaw_rate_rps: 0.0,
                targets: std::slice::from_ref(&car),
                obstacles: std::slice::from_ref(&wall),
                clutter: &[],
            };
            let config =
                LidarConfig { dropout_prob: 0.0, range_noise_m: 0.0, vehicle_glass: glass, ..LidarConfig::hdl64e() };
            Lidar::new(config, SimRng::new(3)).sweep(0.0, &world, &FaultEffect::default()).points
        };
        let mount = 1.73f32;
        // Returns in the car's footprint at window height, more than 0.1 m behind the cabin's
        // face (x 7.21); returns on the wall at window height straight behind; returns from
        // below the windows beyond the body's face (x 7.1).
        let inside = |pts: &[[f32; 4]]| {
            pts.iter()
                .filter(|p| p[0] > 7.35 && p[0] < 8.9 && p[1].abs() < 1.0 && p[2] + mount > 1.0 && p[2] + mount < 1.25)
                .count()
        };
        let through = |pts: &[[f32; 4]]| {
            pts.iter().filter(|p| p[0] > 13.8 && p[1].abs() < 1.0 && p[2] + mount > 0.95 && p[2] + mount < 1.2).count()
        };
        let below = |pts: &[[f32; 4]]| {
            pts.iter().filter(|p| p[0] > 7.2 && p[0] < 8.9 && p[1].abs() < 1.0 && p[2] + mount < 0.8).count()
        };
        let (solid, glass) = (sweep(false), sweep(true));
        assert_eq!((inside(&solid), through(&solid), below(&solid)), (0, 0, 0));
        assert!(inside(&glass) > 20 && through(&glass) > 0, "{} inside, {} through", inside(&glass), through(&glass));
        assert_eq!(below(&glass), 0, "the body below the windows stays solid");
    }

    #[test]
    fn a_tilted_sensor_sees_the_level_road_and_a_wall_in_its_own_frame() {
        // An empty road and a wall across it 20 m ahead, 6 m tall.
        let wall = OrientedBox {
            center: Vec2::new(20.0, 0.0),
            z_bottom_m: 0.0,
            length_m: 0.3,
            width_m: 30.0,
            height_m: 6.0,
            yaw_rad: 0.0,
        };
        let world = WorldView {
            ego_pos: Vec2::new(0.0, 0.0),
            ego_yaw_rad: 0.0,
            ego_velocity: Vec2::new(0.0, 0.0),
            ego_yaw_rate_rps: 0.0,
            targets: &[],
            obstacles: std::slice::from_ref(&wall),
            clutter: &[],
        };
        let clean = FaultEffect::default();
        let quiet = LidarConfig { dropout_prob: 0.0, range_noise_m: 0.0, ..LidarConfig::hdl64e() };
        let level = Lidar::new(quiet.clone(), SimRng::new(1)).sweep(0.0, &world, &clean);
        assert!(quiet.level_from_sensor().is_none());
        let pitched = LidarConfig { tilt_deg: [3.0, -1.0], ..quiet };
        let m = pitched.level_from_sensor().unwrap();
        let tilted = Lidar::new(pitched, SimRng::new(1)).sweep(0.0, &world, &clean);
        let to_level = |p: &[f32; 4]| -> [f64; 3] {
            let v = [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])];
            std::array::from_fn(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
        };
        let mount = 1.73;
        for sweep in [&level, &tilted] {
            assert!(sweep.points.len() > 10_000);
        }
        // Turned level, every return lies on the road or the wall's face.
        for p in &tilted.points {
            let q = to_level(p);
            let on_road = (q[2] + mount).abs() < 1e-6;
            let on_wall = (q[0] - 19.85).abs() < 1e-6 && q[2] + mount <= 6.0 + 1e-6;
            assert!(on_road || on_wall, "{q:?}");
        }
        // In its own frame the road ahead seems to fall by the pitch: 20 m out, 1.05 m lower.
        let ahead: Vec<&[f32; 4]> =
            tilted.points.iter().filter(|p| (p[0] - 15.0).abs() < 1.0 && p[1].abs() < 0.5).collect();
        assert!(!ahead.is_empty());
        for p in ahead {
            let expect = -mount / 3f64.to_radians().cos() - f64::from(p[0]) * 3f64.to_radians().tan();
            assert!((f64::from(p[2]) - expect).abs() < 0.1, "{p:?} against {expect}");
        }
        // Pitched up 3°, its top ring (2° up) reaches the wall about 1 m higher.
        let top = |pts: &[[f32; 4]], level_frame: bool| {
            pts.iter()
                .map(|p| if level_frame { to_level(p) } else { [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])] })
                .filter(|q| q[0] > 19.0 && q[1].abs() < 1.0)
                .map(|q| q[2])
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let (up, flat) = (top(&tilted.points, true), top(&level.points, false));
        assert!((flat - (20.0 - 0.15) * 2f64.to_radians().tan()).abs() < 0.02, "{flat}");
        assert!(up > flat + 0.9, "{up} against {flat}");
    }
}
