//! Agents and their behaviour: vehicles and cyclists follow lanes with a kinematic bicycle
//! model, pure-pursuit steering and IDM car following, and obey the signal; pedestrians walk
//! the sidewalk graph, pause, and cross only in the walk phase.

use serde::{Deserialize, Serialize};

use crate::geometry::{wrap_angle, OrientedBox, Vec2};
use crate::map::{self, driving_route, Arm, Map, Path, SignalPhase};
use crate::replay::Track;
use crate::rng::SimRng;

/// What an agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Vehicle,
    Pedestrian,
    Cyclist,
}

impl AgentKind {
    /// Length, width, height in metres.
    pub fn nominal_size_m(self) -> (f64, f64, f64) {
        match self {
            AgentKind::Vehicle => (4.5, 1.85, 1.55),
            AgentKind::Pedestrian => (0.55, 0.55, 1.75),
            AgentKind::Cyclist => (1.8, 0.6, 1.7),
        }
    }
}

/// Which vehicles a scene's traffic is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fleet {
    /// Mid-size cars only, 4.1–5.0 m long, 1.5–1.6 m high (the simulator's traffic so far).
    #[default]
    Sedans,
    /// A street's mix of bodies: small cars, mid-size cars, SUVs and vans (up to 5.6 m long and
    /// 2.5 m high), each vehicle's drawn from a stream of its own (see [`Agent::rebody`]).
    Mixed,
}

/// The body types of [`Fleet::Mixed`]: share, then length, width and height ranges in metres
/// (typical of each class of vehicle sold in Europe; not fitted to any data).
const MIXED_BODIES: [(f64, [(f64, f64); 3]); 4] = [
    (0.3, [(3.6, 4.1), (1.65, 1.78), (1.42, 1.55)]),  // small car
    (0.35, [(4.4, 4.95), (1.78, 1.9), (1.40, 1.52)]), // mid-size car, estate
    (0.2, [(4.3, 4.9), (1.82, 1.95), (1.62, 1.80)]),  // SUV
    (0.15, [(4.8, 5.6), (1.9, 2.05), (1.9, 2.5)]),    // van
];

/// A vehicle's or cyclist's length, width and height: the nominal ones, scaled by a draw from
/// `rng` (the length by 0.92–1.1, the width and height by its square root).
fn sized(kind: AgentKind, rng: &mut SimRng) -> (f64, f64, f64) {
    let (l, w, h) = kind.nominal_size_m();
    let scale = rng.range(0.92, 1.1);
    (l * scale, w * scale.sqrt(), h * scale.sqrt())
}

/// Lane-following state of a vehicle or cyclist.
#[derive(Debug, Clone)]
pub struct DriveState {
    pub path: Path,
    pub from: Arm,
    pub s_m: f64,
    pub stop_s_m: f64,
    pub desired_speed_mps: f64,
    pub lane_offset_m: f64,
    pub wheelbase_m: f64,
}

/// Sidewalk-walking state of a pedestrian.
#[derive(Debug, Clone)]
pub struct WalkState {
    pub prev_node: usize,
    pub target_node: usize,
    pub crossing: bool,
    pub desired_speed_mps: f64,
    pub pause_secs: f64,
}

/// How an agent decides its motion.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Drive(DriveState),
    Walk(WalkState),
    /// Positions come from a recorded track; the agent leaves when the track ends.
    Replay(Track),
    /// A vehicle parked off the road: it stays where it is.
    Parked,
}

/// One agent with its kinematic state.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: u32,
    pub kind: AgentKind,
    pub pos: Vec2,
    pub yaw_rad: f64,
    pub speed_mps: f64,
    pub accel_mps2: f64,
    pub yaw_rate_rps: f64,
    pub length_m: f64,
    pub width_m: f64,
    pub height_m: f64,
    pub behaviour: Behaviour,
    pub(crate) rng: SimRng,
    /// Set when a replayed agent's track has ended.
    pub finished: bool,
}

/// What an agent needs to know about the others while deciding.
#[derive(Debug, Clone, Copy)]
pub struct Neighbour {
    pub id: u32,
    pub pos: Vec2,
    pub speed_mps: f64,
    pub half_length_m: f64,
    pub half_width_m: f64,
}

const IDM_MAX_ACCEL: f64 = 1.8;
const IDM_COMFORT_DECEL: f64 = 2.5;
const IDM_MIN_GAP_M: f64 = 2.0;
const IDM_HEADWAY_SECS: f64 = 1.2;
const MAX_BRAKE: f64 = 8.0;
const LOOKAHEAD_M: f64 = 35.0;

impl Agent {
    pub fn bbox(&self) -> OrientedBox {
        OrientedBox {
            center: self.pos,
            z_bottom_m: 0.0,
            length_m: self.length_m,
            width_m: self.width_m,
            height_m: self.height_m,
            yaw_rad: self.yaw_rad,
        }
    }

    pub fn velocity(&self) -> Vec2 {
        Vec2::from_angle(self.yaw_rad).scale(self.speed_mps)
    }

    pub fn neighbour(&self) -> Neighbour {
        Neighbour {
            id: self.id,
            pos: self.pos,
            speed_mps: self.speed_mps,
            half_length_m: self.length_m / 2.0,
            half_width_m: self.width_m / 2.0,
        }
    }

    /// Gives a vehicle a body drawn from `fleet` with `rng` (the sedans it has already for
    /// [`Fleet::Sedans`]; other agents are left alone). Drawn from a stream apart from the
    /// agent's own, so its route and desired speed are the ones it would have had as a sedan.
    pub fn rebody(&mut self, fleet: Fleet, rng: &mut SimRng) {
        if self.kind != AgentKind::Vehicle || fleet == Fleet::Sedans {
            return;
        }
        let mut pick = rng.uniform();
        let body = MIXED_BODIES.iter().find(|(share, _)| {
            pick -= share;
            pick < 0.0
        });
        let [l, w, h] = body.unwrap_or(&MIXED_BODIES[MIXED_BODIES.len() - 1]).1;
        self.length_m = rng.range(l.0, l.1);
        self.width_m = rng.range(w.0, w.1);
        self.height_m = rng.range(h.0, h.1);
    }

    /// A new lane-following agent at arc length `s_m` of a route.
    pub fn new_driver(id: u32, kind: AgentKind, from: Arm, to: Arm, s_m: f64, rng: &mut SimRng) -> Self {
        let mut own = rng.fork(u64::from(id));
        let (length_m, width_m, height_m) = sized(kind, &mut own);
        let (offset, speed) = match kind {
            AgentKind::Cyclist => (map::BIKE_OFFSET_M, own.range(3.5, 6.0)),
            _ => (map::LANE_OFFSET_M, own.range(8.0, 12.5)),
        };
        let (path, stop_s_m) = driving_route(from, to, offset);
        let (pos, yaw) = path.at(s_m);
        Self {
            id,
            kind,
            pos,
            yaw_rad: yaw,
            speed_mps: speed * 0.6,
            accel_mps2: 0.0,
            yaw_rate_rps: 0.0,
            length_m,
            width_m,
            height_m,
            behaviour: Behaviour::Drive(DriveState {
                path,
                from,
                s_m,
                stop_s_m,
                desired_speed_mps: speed,
                lane_offset_m: offset,
                wheelbase_m: if kind == AgentKind::Cyclist { 1.1 } else { 2.7 },
            }),
            rng: own,
            finished: false,
        }
    }

    /// A new parked vehicle centred at `pos`, facing `yaw_rad`, sized like a driving one.
    pub fn new_parked(id: u32, pos: Vec2, yaw_rad: f64, rng: &mut SimRng) -> Self {
        let mut own = rng.fork(u64::from(id));
        let (length_m, width_m, height_m) = sized(AgentKind::Vehicle, &mut own);
        Self {
            id,
            kind: AgentKind::Vehicle,
            pos,
            yaw_rad,
            speed_mps: 0.0,
            accel_mps2: 0.0,
            yaw_rate_rps: 0.0,
            length_m,
            width_m,
            height_m,
            behaviour: Behaviour::Parked,
            rng: own,
            finished: false,
        }
    }

    /// A new pedestrian on the sidewalk edge from `from` to `to`, a fraction `f` along it.
    pub fn new_walker(id: u32, map: &Map, from: usize, to: usize, f: f64, rng: &mut SimRng) -> Self {
        let mut own = rng.fork(u64::from(id));
        let (l, w, h) = AgentKind::Pedestrian.nominal_size_m();
        let a = map.walk_nodes[from].pos;
        let b = map.walk_nodes[to].pos;
        let pos = a + (b - a).scale(f);
        let desired = own.range(0.9, 1.6);
        Self {
            id,
            kind: AgentKind::Pedestrian,
            pos,
            yaw_rad: (b - a).angle(),
            speed_mps: desired,
            accel_mps2: 0.0,
            yaw_rate_rps: 0.0,
            length_m: l,
            width_m: w,
            height_m: h * own.range(0.9, 1.08),
            behaviour: Behaviour::Walk(WalkState {
                prev_node: from,
                target_node: to,
                crossing: false,
                desired_speed_mps: desired,
                pause_secs: 0.0,
            }),
            rng: own,
            finished: false,
        }
    }

    /// Advances the agent by `dt_secs`, given the signal, the map and the other agents.
    pub fn step(&mut self, dt_secs: f64, t_secs: f64, phase: (SignalPhase, f64), map: &Map, others: &[Neighbour]) {
        let yaw_before = self.yaw_rad;
        let speed_before = self.speed_mps;
        match &self.behaviour {
            Behaviour::Drive(_) => self.step_drive(dt_secs, phase, others),
            Behaviour::Walk(_) => self.step_walk(dt_secs, phase, map),
            Behaviour::Replay(_) => self.step_replay(t_secs + dt_secs),
            Behaviour::Parked => self.speed_mps = 0.0,
        }
        if dt_secs > 0.0 {
            self.yaw_rate_rps = wrap_angle(self.yaw_rad - yaw_before) / dt_secs;
            self.accel_mps2 = (self.speed_mps - speed_before) / dt_secs;
        }
    }

    fn step_drive(&mut self, dt: f64, (phase, _remaining): (SignalPhase, f64), others: &[Neighbour]) {
        let Behaviour::Drive(d) = &mut self.behaviour else { return };
        let v = self.speed_mps;
        // Nearest obstacle ahead along the path.
        let mut gap = f64::INFINITY;
        let mut lead_v = 0.0;
        for o in others {
            if o.id == self.id || o.pos.dist(self.pos) > LOOKAHEAD_M + 5.0 {
                continue;
            }
            if let Some((s, lat)) = d.path.project(o.pos, d.s_m, d.s_m + LOOKAHEAD_M) {
                let corridor = self.width_m / 2.0 + o.half_width_m + 0.6;
                if s > d.s_m && lat.abs() < corridor {
                    let g = s - d.s_m - self.length_m / 2.0 - o.half_length_m;
                    if g < gap {
                        gap = g;
                        lead_v = o.speed_mps;
                    }
                }
            }
        }
        // The stop line acts as a standing obstacle unless this arm may go.
        let may_go = matches!(phase, SignalPhase::Green { arm } if arm == d.from);
        let to_stop = d.stop_s_m - d.s_m - self.length_m / 2.0;
        let stop_needed = match phase {
            SignalPhase::Yellow { arm } if arm == d.from => {
                // Stop on yellow only if it can be done comfortably.
                to_stop > v * v / (2.0 * IDM_COMFORT_DECEL)
            }
            _ => !may_go,
        };
        if stop_needed && to_stop > -0.5 && to_stop < gap {
            gap = to_stop.max(0.01);
            lead_v = 0.0;
        }
        // Slow down for the curvature ahead.
        let (_, h_now) = d.path.at(d.s_m);
        let (_, h_ahead) = d.path.at(d.s_m + 12.0);
        let turn = wrap_angle(h_ahead - h_now).abs();
        let v0 = if turn > 0.3 { d.desired_speed_mps.min(6.0) } else { d.desired_speed_mps };
        let s_star = IDM_MIN_GAP_M
            + (v * IDM_HEADWAY_SECS + v * (v - lead_v) / (2.0 * (IDM_MAX_ACCEL * IDM_COMFORT_DECEL).sqrt())).max(0.0);
        let free = 1.0 - (v / v0.max(0.1)).powi(4);
        let interaction = if gap.is_finite() { (s_star / gap.max(0.05)).powi(2) } else { 0.0 };
        let accel = (IDM_MAX_ACCEL * (free - interaction)).clamp(-MAX_BRAKE, IDM_MAX_ACCEL);
        // Pure-pursuit steering on the kinematic bicycle model.
        let lookahead = (0.9 * v).max(4.0);
        let (target, _) = d.path.at(d.s_m + lookahead);
        let rel = (target - self.pos).rotate(-self.yaw_rad);
        let alpha = rel.y.atan2(rel.x);
        let steer = (2.0 * d.wheelbase_m * alpha.sin() / lookahead).atan().clamp(-0.6, 0.6);
        let new_v = (v + accel * dt).max(0.0);
        let mean_v = 0.5 * (v + new_v);
        self.yaw_rad = wrap_angle(self.yaw_rad + mean_v / d.wheelbase_m * steer.tan() * dt);
        self.pos = self.pos + Vec2::from_angle(self.yaw_rad).scale(mean_v * dt);
        self.speed_mps = new_v;
        if let Some((s, _)) = d.path.project(self.pos, d.s_m - 1.0, d.s_m + 5.0) {
            d.s_m = s.max(d.s_m);
        }
    }

    /// Whether a lane-following agent has reached the end of its route.
    pub fn route_done(&self) -> bool {
        match &self.behaviour {
            Behaviour::Drive(d) => d.s_m >= d.path.length_m() - 1.0,
            _ => false,
        }
    }

    /// Puts a finished driver on a new route starting at the far end of arm `from`.
    pub fn restart_route(&mut self, from: Arm, to: Arm) {
        let Behaviour::Drive(d) = &mut self.behaviour else { return };
        let (path, stop_s) = driving_route(from, to, d.lane_offset_m);
        let (pos, yaw) = path.at(0.0);
        d.path = path;
        d.stop_s_m = stop_s;
        d.s_m = 0.0;
        d.from = from;
        self.pos = pos;
        self.yaw_rad = yaw;
    }

    fn step_walk(&mut self, dt: f64, (phase, remaining): (SignalPhase, f64), map: &Map) {
        let Behaviour::Walk(w) = &mut self.behaviour else { return };
        if w.pause_secs > 0.0 {
            w.pause_secs -= dt;
            self.speed_mps = 0.0;
            return;
        }
        let target = map.walk_nodes[w.target_node].pos;
        let to_target = target - self.pos;
        let dist = to_target.norm();
        let step = w.desired_speed_mps * dt;
        if dist <= step {
            self.pos = target;
            // Choose the next edge: never straight back unless it is the only way.
            let here = w.target_node;
            let options: Vec<(usize, usize)> = map.walk_neighbours(here).filter(|(_, n)| *n != w.prev_node).collect();
            let options = if options.is_empty() { map.walk_neighbours(here).collect() } else { options };
            let (edge, next) = options[self.rng.below(options.len())];
            let crosswalk = map.walk_edges[edge].crosswalk;
            if crosswalk {
                let crossing_secs = map.walk_nodes[next].pos.dist(target) / w.desired_speed_mps;
                let can_cross = phase == SignalPhase::Walk && remaining > crossing_secs + 1.0;
                if !can_cross {
                    // Wait at the kerb and decide again next step.
                    self.speed_mps = 0.0;
                    return;
                }
            }
            if !crosswalk && self.rng.chance(0.25) {
                w.pause_secs = self.rng.range(1.0, 4.0);
            }
            w.prev_node = here;
            w.target_node = next;
            w.crossing = crosswalk;
            w.desired_speed_mps = (w.desired_speed_mps + self.rng.gauss(0.05)).clamp(0.7, 1.8);
            self.yaw_rad = (map.walk_nodes[next].pos - self.pos).angle();
            self.speed_mps = 0.0;
            return;
        }
        self.yaw_rad = to_target.angle();
        self.speed_mps = w.desired_speed_mps;
        self.pos = self.pos + to_target.scale(step / dist);
    }

    fn step_replay(&mut self, t_secs: f64) {
        let Behaviour::Replay(track) = &self.behaviour else { return };
        match track.state_at(t_secs) {
            Some((pos, vel)) => {
                self.pos = pos;
                let speed = vel.norm();
                if speed > 0.05 {
                    self.yaw_rad = vel.angle();
                }
                self.speed_mps = speed;
            }
            None => self.finished = t_secs > track.end_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_follows_its_lane_on_green() {
        let mut rng = SimRng::new(1);
        let map = Map::intersection();
        let mut a = Agent::new_driver(1, AgentKind::Vehicle, Arm::West, Arm::East, 0.0, &mut rng);
        let mut t = 0.0;
        let mut max_lat: f64 = 0.0;
        for _ in 0..1500 {
            a.step(0.01, t, (SignalPhase::Green { arm: Arm::West }, 5.0), &map, &[]);
            t += 0.01;
            max_lat = max_lat.max((a.pos.y + map::LANE_OFFSET_M).abs());
        }
        assert!(a.pos.x > 0.0, "should have crossed the intersection: {:?}", a.pos);
        assert!(max_lat < 0.3, "lateral error {max_lat}");
    }

    #[test]
    fn driver_stops_at_red_and_behind_a_standing_car() {
        let mut rng = SimRng::new(2);
        let map = Map::intersection();
        let mut a = Agent::new_driver(1, AgentKind::Vehicle, Arm::West, Arm::East, 30.0, &mut rng);
        for i in 0..2000 {
            a.step(0.01, i as f64 * 0.01, (SignalPhase::Walk, 10.0), &map, &[]);
        }
        let d = -a.pos.x;
        assert!(d > map::STOP_LINE_M && d < map::STOP_LINE_M + 5.0, "stopped at {d}");
        assert!(a.speed_mps < 0.05);
        // A standing obstacle 20 m ahead on the lane.
        let mut b = Agent::new_driver(2, AgentKind::Vehicle, Arm::West, Arm::East, 0.0, &mut rng);
        let obstacle =
            Neighbour { id: 9, pos: Vec2::new(-40.0, -2.0), speed_mps: 0.0, half_length_m: 2.2, half_width_m: 0.9 };
        for i in 0..3000 {
            b.step(0.01, i as f64 * 0.01, (SignalPhase::Green { arm: Arm::West }, 10.0), &map, &[obstacle]);
        }
        let gap = -40.0 - b.pos.x - 2.2 - b.length_m / 2.0;
        assert!(gap > 0.5 && gap < 4.0, "gap {gap}");
    }
}
