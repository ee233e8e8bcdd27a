//! The urban map: a four-way signalised intersection with one lane per direction, sidewalks,
//! crosswalks, buildings and poles. All coordinates are metres in the world frame: x east,
//! y north, origin at the centre of the intersection.

use serde::{Deserialize, Serialize};

use crate::geometry::{OrientedBox, Vec2};
use crate::rng::SimRng;

/// Half-width of each road (one lane per direction), metres.
pub const ROAD_HALF_WIDTH_M: f64 = 4.0;
/// Offset of a lane centre from the road centre line, metres.
pub const LANE_OFFSET_M: f64 = 2.0;
/// Offset of the cycling line (right edge of the lane) from the road centre line, metres.
pub const BIKE_OFFSET_M: f64 = 3.1;
/// Offset of a sidewalk centre line from the road centre line, metres.
pub const SIDEWALK_OFFSET_M: f64 = 5.5;
/// Outer edge of the sidewalks, metres from the road centre line.
pub const SIDEWALK_OUTER_M: f64 = 7.0;
/// Length of each arm from the centre, metres.
pub const ARM_LENGTH_M: f64 = 70.0;
/// Distance of the stop line from the centre, metres.
pub const STOP_LINE_M: f64 = 7.5;

/// One of the four arms of the intersection, by the direction it points from the centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    East,
    North,
    West,
    South,
}

impl Arm {
    pub const ALL: [Arm; 4] = [Arm::East, Arm::North, Arm::West, Arm::South];

    /// Unit vector from the centre along the arm.
    pub fn out(self) -> Vec2 {
        match self {
            Arm::East => Vec2::new(1.0, 0.0),
            Arm::North => Vec2::new(0.0, 1.0),
            Arm::West => Vec2::new(-1.0, 0.0),
            Arm::South => Vec2::new(0.0, -1.0),
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// A point on the inbound lane (heading to the centre) at `dist_m` from the centre.
    pub fn inbound(self, dist_m: f64, offset_m: f64) -> Vec2 {
        let o = self.out();
        o.scale(dist_m) + o.rotate(std::f64::consts::FRAC_PI_2).scale(offset_m)
    }

    /// A point on the outbound lane (heading away) at `dist_m` from the centre.
    pub fn outbound(self, dist_m: f64, offset_m: f64) -> Vec2 {
        let o = self.out();
        o.scale(dist_m) - o.rotate(std::f64::consts::FRAC_PI_2).scale(offset_m)
    }
}

/// A polyline with cumulative arc length, the path an agent follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Path {
    pub points: Vec<Vec2>,
    pub s_m: Vec<f64>,
}

impl Path {
    pub fn new(points: Vec<Vec2>) -> Self {
        let mut s_m = Vec::with_capacity(points.len());
        let mut acc = 0.0;
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                acc += p.dist(points[i - 1]);
            }
            s_m.push(acc);
        }
        Self { points, s_m }
    }

    pub fn length_m(&self) -> f64 {
        self.s_m.last().copied().unwrap_or(0.0)
    }

    /// Point and heading at arc length `s`.
    pub fn at(&self, s: f64) -> (Vec2, f64) {
        let n = self.points.len();
        if n < 2 {
            return (self.points.first().copied().unwrap_or_default(), 0.0);
        }
        let s = s.clamp(0.0, self.length_m());
        let i = match self.s_m.binary_search_by(|v| v.total_cmp(&s)) {
            Ok(i) => i.min(n - 2),
            Err(i) => i.saturating_sub(1).min(n - 2),
        };
        let seg = self.points[i + 1] - self.points[i];
        let len = (self.s_m[i + 1] - self.s_m[i]).max(1e-9);
        let f = (s - self.s_m[i]) / len;
        (self.points[i] + seg.scale(f), seg.angle())
    }

    /// Arc length and signed lateral offset (left positive) of the projection of `p`, searching
    /// the segments whose arc length lies in `[s_lo, s_hi]`.
    pub fn project(&self, p: Vec2, s_lo: f64, s_hi: f64) -> Option<(f64, f64)> {
        let mut best: Option<(f64, f64, f64)> = None;
        for i in 0..self.points.len().saturating_sub(1) {
            if self.s_m[i + 1] < s_lo || self.s_m[i] > s_hi {
                continue;
            }
            let a = self.points[i];
            let seg = self.points[i + 1] - a;
            let len2 = seg.dot(seg).max(1e-12);
            let f = ((p - a).dot(seg) / len2).clamp(0.0, 1.0);
            let q = a + seg.scale(f);
            let d = p.dist(q);
            if best.is_none_or(|b| d < b.2) {
                let lat = seg.cross(p - a) / len2.sqrt();
                best = Some((self.s_m[i] + f * len2.sqrt(), lat, d));
            }
        }
        best.map(|(s, lat, _)| (s, lat))
    }
}

fn bezier(p0: Vec2, c: Vec2, p1: Vec2, n: usize) -> Vec<Vec2> {
    (0..=n)
        .map(|i| {
            let t = i as f64 / n as f64;
            let u = 1.0 - t;
            p0.scale(u * u) + c.scale(2.0 * u * t) + p1.scale(t * t)
        })
        .collect()
}

/// A driving route from one arm to another through the intersection, sampled as a path,
/// with the arc length of the stop line.
pub fn driving_route(from: Arm, to: Arm, offset_m: f64) -> (Path, f64) {
    let mut pts = Vec::new();
    let mut d = ARM_LENGTH_M;
    while d > ROAD_HALF_WIDTH_M + 1e-9 {
        pts.push(from.inbound(d, offset_m));
        d -= 5.0;
    }
    let entry = from.inbound(ROAD_HALF_WIDTH_M, offset_m);
    let exit = to.outbound(ROAD_HALF_WIDTH_M, offset_m);
    pts.push(entry);
    let control = if from.out().dot(to.out()) < -0.5 {
        (entry + exit).scale(0.5)
    } else {
        // Intersection of the inbound line (through entry, along -from.out) and the outbound
        // line (through exit, along to.out).
        let d1 = from.out().scale(-1.0);
        let d2 = to.out();
        let denom = d1.cross(d2);
        let t = (exit - entry).cross(d2) / denom;
        entry + d1.scale(t)
    };
    let arc = bezier(entry, control, exit, 12);
    pts.extend(arc.into_iter().skip(1));
    let mut d = ROAD_HALF_WIDTH_M + 5.0;
    while d < ARM_LENGTH_M - 1e-9 {
        pts.push(to.outbound(d, offset_m));
        d += 5.0;
    }
    pts.push(to.outbound(ARM_LENGTH_M, offset_m));
    let path = Path::new(pts);
    let stop_s = ARM_LENGTH_M - STOP_LINE_M;
    (path, stop_s)
}

/// Node of the sidewalk graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalkNode {
    pub pos: Vec2,
    /// Corner nodes sit at the crosswalks.
    pub corner: bool,
}

/// Edge of the sidewalk graph; crosswalk edges need the pedestrian signal phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalkEdge {
    pub a: usize,
    pub b: usize,
    pub crosswalk: bool,
}

/// Signal phase of the intersection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum SignalPhase {
    /// Vehicles from one arm may go.
    Green { arm: Arm },
    /// The arm's vehicles should stop if they can.
    Yellow { arm: Arm },
    /// Nobody enters; the intersection clears.
    AllRed,
    /// Pedestrians cross, all vehicles wait.
    Walk,
}

const GREEN_SECS: f64 = 7.0;
const YELLOW_SECS: f64 = 2.0;
const ALL_RED_SECS: f64 = 1.5;
const WALK_SECS: f64 = 12.0;

/// The fixed-time signal plan: each arm in turn, then an exclusive pedestrian phase.
pub fn signal_phase(t_secs: f64) -> (SignalPhase, f64) {
    let per_arm = GREEN_SECS + YELLOW_SECS + ALL_RED_SECS;
    let cycle = 4.0 * per_arm + WALK_SECS + ALL_RED_SECS;
    let t = t_secs.rem_euclid(cycle);
    let arm_i = (t / per_arm) as usize;
    if arm_i < 4 {
        let arm = Arm::ALL[arm_i];
        let u = t - arm_i as f64 * per_arm;
        if u < GREEN_SECS {
            (SignalPhase::Green { arm }, GREEN_SECS - u)
        } else if u < GREEN_SECS + YELLOW_SECS {
            (SignalPhase::Yellow { arm }, GREEN_SECS + YELLOW_SECS - u)
        } else {
            (SignalPhase::AllRed, per_arm - u)
        }
    } else {
        let u = t - 4.0 * per_arm;
        if u < WALK_SECS {
            (SignalPhase::Walk, WALK_SECS - u)
        } else {
            (SignalPhase::AllRed, cycle - t)
        }
    }
}

/// A piece of street clutter as the lidar sees it: a box that is solid (a bin, a post, a
/// trunk) or porous (foliage, a fence), where a beam that enters stops after an exponentially
/// distributed depth, or passes through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClutterPart {
    pub bbox: OrientedBox,
    /// Returns per metre a beam travels inside; infinite for a solid part.
    pub density_per_m: f64,
}

/// The static world: obstacles, street clutter and the sidewalk graph.
#[derive(Debug, Clone)]
pub struct Map {
    pub obstacles: Vec<OrientedBox>,
    /// Vegetation and street furniture beside the road, drawn per scene (see [`Map::street`]).
    /// Only the lidar sees it: it neither blocks the camera or radar nor steers anyone.
    pub clutter: Vec<ClutterPart>,
    pub walk_nodes: Vec<WalkNode>,
    pub walk_edges: Vec<WalkEdge>,
}

impl Default for Map {
    fn default() -> Self {
        Self::intersection()
    }
}

impl Map {
    /// The default four-way intersection.
    pub fn intersection() -> Self {
        let mut obstacles = Vec::new();
        let inner = SIDEWALK_OUTER_M + 1.0;
        for (sx, sy) in [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)] {
            // A building block in each quadrant, and a second one further out along x.
            obstacles.push(OrientedBox {
                center: Vec2::new(sx * (inner + 14.0), sy * (inner + 12.0)),
                z_bottom_m: 0.0,
                length_m: 28.0,
                width_m: 24.0,
                height_m: 12.0,
                yaw_rad: 0.0,
            });
            obstacles.push(OrientedBox {
                center: Vec2::new(sx * (inner + 45.0), sy * (inner + 9.0)),
                z_bottom_m: 0.0,
                length_m: 22.0,
                width_m: 18.0,
                height_m: 8.0,
                yaw_rad: 0.0,
            });
            // Poles at the sidewalk's outer edge.
            for d in [15.0, 32.0] {
                obstacles.push(pole(Vec2::new(sx * d, sy * (SIDEWALK_OUTER_M - 0.4))));
                obstacles.push(pole(Vec2::new(sx * (SIDEWALK_OUTER_M - 0.4), sy * d)));
            }
        }
        let mut walk_nodes = Vec::new();
        let mut walk_edges = Vec::new();
        let quads = [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)];
        for (sx, sy) in quads {
            let c = walk_nodes.len();
            walk_nodes.push(WalkNode { pos: Vec2::new(sx * SIDEWALK_OFFSET_M, sy * SIDEWALK_OFFSET_M), corner: true });
            walk_nodes
                .push(WalkNode { pos: Vec2::new(sx * (ARM_LENGTH_M - 10.0), sy * SIDEWALK_OFFSET_M), corner: false });
            walk_nodes
                .push(WalkNode { pos: Vec2::new(sx * SIDEWALK_OFFSET_M, sy * (ARM_LENGTH_M - 10.0)), corner: false });
            walk_edges.push(WalkEdge { a: c, b: c + 1, crosswalk: false });
            walk_edges.push(WalkEdge { a: c, b: c + 2, crosswalk: false });
        }
        // Crosswalks join neighbouring corners (quadrants are listed counter-clockwise).
        for q in 0..4 {
            walk_edges.push(WalkEdge { a: q * 3, b: ((q + 1) % 4) * 3, crosswalk: true });
        }
        Self { obstacles, clutter: Vec::new(), walk_nodes, walk_edges }
    }

    /// The intersection with street clutter drawn from `rng`: hedges and bins in the strip
    /// between the sidewalks and the buildings, trees and sign posts at the kerb, fences along
    /// the gaps between buildings. Nothing stands on a road, a sidewalk's walking
    /// line or a crosswalk (a hedge's ragged edge may lean a few centimetres into the building
    /// front behind it).
    pub fn street(rng: &mut SimRng) -> Self {
        let mut map = Self::intersection();
        for (sx, sy) in [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)] {
            for along_x in [true, false] {
                // Arm-local frame: `a` out along the arm, `c` across it into the quadrant.
                let frame = ArmSide { sx, sy, along_x };
                // Building fronts: x-arms have two blocks (8–36 m and 42–64 m), y-arms one
                // (8–32 m); the rest is open ground.
                let fronts: &[(f64, f64)] = if along_x { &[(8.0, 36.0), (42.0, 64.0)] } else { &[(8.0, 32.0)] };
                let gaps: &[(f64, f64)] = if along_x { &[(36.0, 42.0), (64.0, 70.0)] } else { &[(32.0, 70.0)] };
                for &(a0, a1) in fronts {
                    front_strip(&mut map.clutter, &frame, a0 + 2.0, a1, rng);
                }
                for &(a0, a1) in gaps {
                    open_ground(&mut map.clutter, &frame, a0, a1, rng);
                }
                kerb(&mut map.clutter, &frame, rng);
            }
        }
        map
    }

    /// Edges touching node `n`, as (edge index, other node).
    pub fn walk_neighbours(&self, n: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.walk_edges.iter().enumerate().filter_map(move |(i, e)| {
            if e.a == n {
                Some((i, e.b))
            } else if e.b == n {
                Some((i, e.a))
            } else {
                None
            }
        })
    }

    /// Whether a ground point lies on a road surface.
    pub fn on_road(p: Vec2) -> bool {
        (p.x.abs() <= ROAD_HALF_WIDTH_M && p.y.abs() <= ARM_LENGTH_M)
            || (p.y.abs() <= ROAD_HALF_WIDTH_M && p.x.abs() <= ARM_LENGTH_M)
    }
}

/// One side of one arm: `a` metres out along the arm and `c` across it, into quadrant
/// (`sx`, `sy`).
struct ArmSide {
    sx: f64,
    sy: f64,
    along_x: bool,
}

impl ArmSide {
    /// A box `length` along the arm and `width` across it, centred at (`a`, `c`), from `z0` up
    /// `height`, turned `yaw` from the arm's direction.
    #[allow(clippy::too_many_arguments)]
    fn part(
        &self,
        a: f64,
        c: f64,
        length: f64,
        width: f64,
        z0: f64,
        height: f64,
        yaw: f64,
        density: f64,
    ) -> ClutterPart {
        let (center, base) = if self.along_x {
            (Vec2::new(self.sx * a, self.sy * c), 0.0)
        } else {
            (Vec2::new(self.sx * c, self.sy * a), std::f64::consts::FRAC_PI_2)
        };
        ClutterPart {
            bbox: OrientedBox {
                center,
                z_bottom_m: z0,
                length_m: length,
                width_m: width,
                height_m: height,
                yaw_rad: base + yaw,
            },
            density_per_m: density,
        }
    }
}

/// The strip between a sidewalk's outer edge and the building fronts (7–8 m from the road's
/// centre line), from `a0` to `a1` along the arm: hedges with ragged tops, bins and cabinets.
fn front_strip(out: &mut Vec<ClutterPart>, side: &ArmSide, a0: f64, a1: f64, rng: &mut SimRng) {
    let mut a = a0 + rng.range(0.0, 3.0);
    while a < a1 - 1.0 {
        let pick = rng.uniform();
        if pick < 0.45 {
            // A hedge: segments of foliage whose height wanders.
            let end = (a + rng.range(2.0, 9.0)).min(a1);
            let width = rng.range(0.5, 0.85);
            let c = SIDEWALK_OUTER_M + 0.1 + width / 2.0;
            let density = rng.range(4.0, 10.0);
            let mut h = rng.range(0.7, 1.5);
            while a < end - 0.3 {
                let seg = rng.range(0.5, 1.0).min(end - a);
                h = (h + rng.gauss(0.12)).clamp(0.5, 1.8);
                out.push(side.part(a + seg / 2.0, c + rng.gauss(0.05), seg, width, 0.0, h, 0.0, density));
                a += seg;
            }
        } else if pick < 0.65 {
            // A bin, a cabinet or a post box: solid, person-sized or smaller.
            let (l, w, h) = (rng.range(0.4, 1.2), rng.range(0.35, 0.7), rng.range(0.8, 1.6));
            out.push(side.part(a + l / 2.0, SIDEWALK_OUTER_M + 0.15 + w / 2.0, l, w, 0.0, h, 0.0, f64::INFINITY));
            a += l;
        }
        a += rng.range(1.0, 6.0);
    }
}

/// Open ground between or beyond buildings, from `a0` to `a1` along the arm: a fence along the
/// sidewalk, about half of it holes, half of the time.
fn open_ground(out: &mut Vec<ClutterPart>, side: &ArmSide, a0: f64, a1: f64, rng: &mut SimRng) {
    if rng.chance(0.5) {
        let h = rng.range(0.9, 1.9);
        out.push(side.part((a0 + a1) / 2.0, SIDEWALK_OUTER_M + 0.3, a1 - a0 - 0.4, 0.05, 0.0, h, 0.0, 14.0));
    }
}

/// The kerb side of a sidewalk (4.3–4.8 m from the road's centre line): trees (a trunk and a
/// canopy of foliage that starts above head height and leans away from the road) and sign
/// posts, from 12 m out along the arm, clear of the corners.
fn kerb(out: &mut Vec<ClutterPart>, side: &ArmSide, rng: &mut SimRng) {
    let mut a = rng.range(12.0, 20.0);
    while a < ARM_LENGTH_M - 2.0 {
        if rng.chance(0.7) {
            let trunk = rng.range(0.25, 0.45);
            let c = ROAD_HALF_WIDTH_M + 0.6;
            let base = rng.range(2.5, 3.2);
            out.push(side.part(a, c, trunk, trunk, 0.0, base + 0.5, 0.0, f64::INFINITY));
            let density = rng.range(1.5, 4.0);
            for _ in 0..3 {
                let size = rng.range(1.2, 2.2);
                let yaw = rng.range(0.0, std::f64::consts::PI);
                let z0 = base + rng.range(0.0, 0.6);
                out.push(side.part(a + rng.gauss(0.4), c + 0.5, size, size, z0, rng.range(1.5, 3.5), yaw, density));
            }
        } else {
            // A sign: a thin post and a plate at the top.
            let h = rng.range(2.2, 2.8);
            out.push(side.part(a, ROAD_HALF_WIDTH_M + 0.3, 0.08, 0.08, 0.0, h, 0.0, f64::INFINITY));
            out.push(side.part(a, ROAD_HALF_WIDTH_M + 0.3, 0.05, 0.6, h - 0.6, 0.6, 0.0, f64::INFINITY));
        }
        a += rng.range(8.0, 20.0);
    }
}

/// Parking spaces on the open ground beside the north and south arms (32–70 m out, where no
/// building stands), as (centre, heading): per side of an arm, a row of spaces square to the
/// road (2.6–3.0 m apart, noses about 1 m behind the sidewalk's outer edge, as in a car park)
/// or along it (6–7 m apart), drawn from `rng`.
pub fn parking_spaces(rng: &mut SimRng) -> Vec<(Vec2, f64)> {
    let mut out = Vec::new();
    for (sx, sy) in [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)] {
        let square = rng.chance(0.6);
        let (pitch, c, yaw) = if square {
            (rng.range(2.6, 3.0), SIDEWALK_OUTER_M + 1.0 + 2.3, 0.0)
        } else {
            (rng.range(6.0, 7.0), SIDEWALK_OUTER_M + 1.0 + 1.0, std::f64::consts::FRAC_PI_2)
        };
        let mut a = 33.0 + pitch / 2.0;
        while a < ARM_LENGTH_M - 2.0 - pitch / 2.0 {
            // Square to the road the car points along x; along it, along y.
            out.push((Vec2::new(sx * c, sy * a), if sx > 0.0 { yaw } else { std::f64::consts::PI - yaw }));
            a += pitch;
        }
    }
    out
}

fn pole(center: Vec2) -> OrientedBox {
    OrientedBox { center, z_bottom_m: 0.0, length_m: 0.3, width_m: 0.3, height_m: 4.5, yaw_rad: 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_connect_lanes() {
        for from in Arm::ALL {
            for to in Arm::ALL {
                if from == to {
                    continue;
                }
                let (path, stop) = driving_route(from, to, LANE_OFFSET_M);
                let (start, h0) = path.at(0.0);
                assert!(start.dist(from.inbound(ARM_LENGTH_M, LANE_OFFSET_M)) < 1e-9);
                assert!((Vec2::from_angle(h0).dot(from.out()) + 1.0).abs() < 1e-6);
                let (end, h1) = path.at(path.length_m());
                assert!(end.dist(to.outbound(ARM_LENGTH_M, LANE_OFFSET_M)) < 1e-9);
                assert!((Vec2::from_angle(h1).dot(to.out()) - 1.0).abs() < 1e-6);
                let (p, _) = path.at(stop);
                assert!((p.dot(from.out()) - STOP_LINE_M).abs() < 1e-6);
                // Right-hand traffic: the inbound lane lies to the right of the heading.
                let right = Vec2::from_angle(h0 - std::f64::consts::FRAC_PI_2);
                assert!((start.dot(right) - LANE_OFFSET_M).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn projection_finds_arc_length_and_side() {
        let path = Path::new(vec![Vec2::new(0.0, 0.0), Vec2::new(10.0, 0.0)]);
        let (s, lat) = path.project(Vec2::new(4.0, 1.5), 0.0, 10.0).unwrap();
        assert!((s - 4.0).abs() < 1e-9 && (lat - 1.5).abs() < 1e-9);
    }

    #[test]
    fn street_clutter_stays_off_roads_walking_lines_and_buildings() {
        for seed in 0..20 {
            let map = Map::street(&mut SimRng::new(seed));
            assert!(map.clutter.len() > 100, "seed {seed}: {} parts", map.clutter.len());
            let porous = map.clutter.iter().filter(|c| c.density_per_m.is_finite()).count();
            assert!(porous > 20 && porous < map.clutter.len(), "seed {seed}: {porous} porous parts");
            // What stands on the ground (not a canopy or a sign's plate overhead).
            for part in map.clutter.iter().filter(|c| c.bbox.z_bottom_m < 1.0) {
                let b = part.bbox;
                for p in b.corners().into_iter().chain([b.center]) {
                    assert!(!Map::on_road(p), "seed {seed}: {b:?} on a road");
                    // The walking lines, 5.5 m from the road's centre line, with room for a walker.
                    for (along, across) in [(p.x, p.y), (p.y, p.x)] {
                        let on_line = (across.abs() - SIDEWALK_OFFSET_M).abs() < 0.5
                            && along.abs() <= ARM_LENGTH_M - 10.0
                            && along.abs() >= SIDEWALK_OFFSET_M;
                        assert!(!on_line, "seed {seed}: {b:?} on a walking line");
                    }
                }
                // A hedge's ragged edge may lean a little into a building front behind it.
                let core =
                    OrientedBox { length_m: (b.length_m - 0.3).max(0.01), width_m: (b.width_m - 0.3).max(0.01), ..b };
                assert!(!map.obstacles.iter().any(|o| o.overlaps(&core)), "seed {seed}: {b:?} inside an obstacle");
            }
        }
    }

    #[test]
    fn parking_spaces_are_off_roads_and_sidewalks_and_clear_of_everything() {
        for seed in 0..20 {
            let map = Map::street(&mut SimRng::new(seed));
            let spaces = parking_spaces(&mut SimRng::new(seed + 100));
            assert!(spaces.len() >= 20, "seed {seed}: {} spaces", spaces.len());
            // The largest parked car: a nominal one scaled by 1.1.
            let car = |&(center, yaw_rad): &(Vec2, f64)| OrientedBox {
                center,
                z_bottom_m: 0.0,
                length_m: 4.5 * 1.1,
                width_m: 1.85 * 1.1f64.sqrt(),
                height_m: 1.6,
                yaw_rad,
            };
            for (i, space) in spaces.iter().enumerate() {
                let b = car(space);
                for p in b.corners() {
                    assert!(!Map::on_road(p), "seed {seed}: {b:?} on a road");
                    // Beyond the sidewalk's outer edge, along the north or south arm.
                    assert!(p.x.abs() > SIDEWALK_OUTER_M + 0.5 && p.y.abs() > 32.0, "seed {seed}: {b:?}");
                }
                assert!(!map.obstacles.iter().any(|o| o.overlaps(&b)), "seed {seed}: {b:?} in an obstacle");
                assert!(!map.clutter.iter().any(|c| c.bbox.overlaps(&b)), "seed {seed}: {b:?} on clutter");
                assert!(!spaces[i + 1..].iter().any(|o| car(o).overlaps(&b)), "seed {seed}: {b:?} overlaps a space");
            }
        }
    }

    #[test]
    fn signal_cycles_through_every_arm_and_walk() {
        let mut seen = std::collections::BTreeSet::new();
        let mut t = 0.0;
        while t < 60.0 {
            seen.insert(format!("{:?}", signal_phase(t).0));
            t += 0.5;
        }
        for arm in Arm::ALL {
            assert!(seen.contains(&format!("{:?}", SignalPhase::Green { arm })));
        }
        assert!(seen.contains("Walk"));
    }
}
