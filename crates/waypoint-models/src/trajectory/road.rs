//! Map-aware prediction for the road users of Waypoint's simulated intersection (vehicles and
//! cyclists): the lanes through the intersection that the history fits are the candidate
//! futures, each driven along its centre line with a car-following speed law (the intelligent
//! driver model), together with the road users ahead in the lane, the first in line stopping at
//! the stop line while the fixed-time signal plan does not let the arm go. A route's probability
//! comes from how well the history lies on it (lateral offset now and three steps back,
//! heading) and from how often each turn is taken.
//!
//! The map (`waypoint_sim::map`: the four arms, their lanes and bike lanes, stop lines, signal
//! plan) is the simulator's, so this model is for Waypoint's own scene or recordings of it; on
//! any other road it finds no lane and answers constant velocity. The speed law's form is the
//! textbook one (Treiber et al. 2000); its constants ([`RoadParams`]) are chosen by
//! [`fit_params`] on simulated seeds kept apart from the ones it is reported on.

use std::sync::OnceLock;

use waypoint_sim::agent::AgentKind;
use waypoint_sim::geometry::{wrap_angle, Vec2};
use waypoint_sim::map::{driving_route, signal_phase, Arm, Path, SignalPhase, BIKE_OFFSET_M, LANE_OFFSET_M};

use super::cv::ConstantVelocity;
pub use super::data::ade_fde;
pub use super::road_learned::{correction_rows, Correction};
use super::{OBS_STEPS, PRED_STEPS, STEP_SECS};

pub use super::road_fit::{fit_params, mean_ade, sim_windows, RoadWindow};

/// Futures the model gives per agent (one per candidate route, the likeliest first; padded with
/// probability 0).
pub const ROAD_MODES: usize = 3;

/// The road users this model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoadClass {
    Vehicle,
    Cyclist,
}

impl RoadClass {
    fn offset_m(self) -> f64 {
        match self {
            Self::Vehicle => LANE_OFFSET_M,
            Self::Cyclist => BIKE_OFFSET_M,
        }
    }

    /// Half the simulator's nominal length of such a road user.
    fn half_length_m(self) -> f64 {
        let kind = match self {
            Self::Vehicle => AgentKind::Vehicle,
            Self::Cyclist => AgentKind::Cyclist,
        };
        kind.nominal_size_m().0 / 2.0
    }
}

/// The speed law's and the route likelihood's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoadParams {
    /// Most acceleration, m/s².
    pub accel_mps2: f64,
    /// Comfortable deceleration (braking for a stop line), m/s².
    pub comfort_decel_mps2: f64,
    /// Speed a vehicle / cyclist tends to when the road is free, m/s (the larger of this and its
    /// current speed).
    pub vehicle_speed_mps: f64,
    pub cyclist_speed_mps: f64,
    /// Most speed through a turn, m/s.
    pub turn_speed_mps: f64,
    /// How far off a lane centre a road user on it is, one sigma, m.
    pub lateral_sigma_m: f64,
    /// How far off the lane's heading, one sigma, rad.
    pub heading_sigma_rad: f64,
    /// Prior weight of a left turn, going straight and a right turn (relative).
    pub turn_prior: [f64; 3],
    /// The speed law's least gap to the road user ahead, m, and its time headway, s.
    pub min_gap_m: f64,
    pub headway_secs: f64,
}

impl Default for RoadParams {
    /// Chosen by `waypoint eval trajectory-road --fit` on simulated seeds 1–12 (300 s each); see
    /// docs/EVALUATION.md.
    fn default() -> Self {
        Self {
            accel_mps2: 2.0,
            comfort_decel_mps2: 2.5,
            vehicle_speed_mps: 10.0,
            cyclist_speed_mps: 3.75,
            turn_speed_mps: 8.0,
            lateral_sigma_m: 0.3,
            heading_sigma_rad: 0.35,
            // Counted per trip [0.75, 0.88, 1.37]; the search tempered it to even odds.
            turn_prior: [1.0, 1.0, 1.0],
            min_gap_m: 2.0,
            headway_secs: 1.2,
        }
    }
}

/// The speed law's hardest braking (not fitted).
const MAX_BRAKE_MPS2: f64 = 8.0;
/// A road user this far off every lane centre is on none.
pub(super) const MAX_LATERAL_M: f64 = 3.0;
/// Or heading this far off the lane's direction.
const MAX_HEADING_RAD: f64 = 1.0;
/// Moved less than this over the last four steps: standing (its heading says nothing).
const STANDING_M: f64 = 0.5;

#[derive(Debug)]
pub(super) struct Route {
    pub(super) from: Arm,
    /// 0 left, 1 straight, 2 right.
    pub(super) turn: usize,
    pub(super) path: Path,
    pub(super) stop_s_m: f64,
}

fn turn_of(from: Arm, to: Arm) -> usize {
    let (a, b) = (from.index() as i64, to.index() as i64);
    // Arms are listed anticlockwise (east, north, west, south); driving in from `from` heads
    // towards the opposite arm; the arm after that one anticlockwise is a left turn.
    match (b - a).rem_euclid(4) {
        2 => 1,
        3 => 0,
        _ => 2,
    }
}

pub(super) fn routes(class: RoadClass) -> &'static [Route] {
    static VEHICLE: OnceLock<Vec<Route>> = OnceLock::new();
    static CYCLIST: OnceLock<Vec<Route>> = OnceLock::new();
    let cell = match class {
        RoadClass::Vehicle => &VEHICLE,
        RoadClass::Cyclist => &CYCLIST,
    };
    cell.get_or_init(|| {
        let mut out = Vec::new();
        for from in Arm::ALL {
            for to in Arm::ALL {
                if from == to {
                    continue;
                }
                let (path, stop_s_m) = driving_route(from, to, class.offset_m());
                out.push(Route { from, turn: turn_of(from, to), path, stop_s_m });
            }
        }
        out
    })
}

/// One predicted future: its probability and 12 positions.
#[derive(Debug, Clone, PartialEq)]
pub struct RoadFuture {
    pub probability: f32,
    pub positions: [[f32; 2]; PRED_STEPS],
}

pub(super) fn v2(p: [f32; 2]) -> Vec2 {
    Vec2::new(f64::from(p[0]), f64::from(p[1]))
}

/// A road user ahead on a route: its arc length and speed along the route at the last step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leader {
    pub(super) s_m: f64,
    pub(super) v_mps: f64,
}

/// Half the length assumed for a road user ahead (its kind is not known): a car's.
fn leader_half_length_m() -> f64 {
    RoadClass::Vehicle.half_length_m()
}
/// How far ahead a road user counts as a leader.
pub const LEADER_REACH_M: f64 = 60.0;
/// Most road users ahead driven with the one predicted (a queue at the stop line).
const MAX_PLATOON: usize = 8;

/// The road users of `others` (`[x_prev, y_prev, x_last, y_last]`, one step apart) ahead of arc
/// length `s` on `route`, within the lane's corridor, nearest first.
pub(super) fn platoon(route: &Route, class: RoadClass, s: f64, others: &[[f32; 4]]) -> Vec<Leader> {
    let corridor = match class {
        RoadClass::Vehicle => 2.2,
        RoadClass::Cyclist => 1.7,
    };
    let mut ahead: Vec<Leader> = Vec::new();
    for o in others {
        if !o.iter().all(|v| v.is_finite()) {
            continue;
        }
        let last = Vec2::new(f64::from(o[2]), f64::from(o[3]));
        let Some((so, lat)) = route.path.project(last, s + 0.1, s + LEADER_REACH_M) else { continue };
        if so <= s + 0.5 || lat.abs() > corridor {
            continue;
        }
        let (_, h) = route.path.at(so);
        let step = Vec2::new(f64::from(o[2] - o[0]), f64::from(o[3] - o[1]));
        ahead.push(Leader { s_m: so, v_mps: (step.dot(Vec2::from_angle(h)) / STEP_SECS).max(0.0) });
    }
    ahead.sort_by(|a, b| a.s_m.total_cmp(&b.s_m));
    ahead.truncate(MAX_PLATOON);
    ahead
}

/// Whether a road user `to_stop` metres before the stop line of `route` at speed `v` must stop
/// for the signal `elapsed` seconds after `scene_time`.
fn must_stop(route: &Route, scene_time: f64, elapsed: f64, to_stop: f64, v: f64, p: &RoadParams) -> bool {
    match signal_phase(scene_time + elapsed).0 {
        SignalPhase::Green { arm } if arm == route.from => false,
        SignalPhase::Yellow { arm } if arm == route.from => to_stop > v * v / (2.0 * p.comfort_decel_mps2),
        _ => true,
    }
}

/// IDM's acceleration at speed `v` towards `target`, `gap` metres behind something at `lead_v`.
fn idm_accel(v: f64, target: f64, gap: f64, lead_v: f64, p: &RoadParams) -> f64 {
    let s_star = p.min_gap_m
        + (v * p.headway_secs + v * (v - lead_v) / (2.0 * (p.accel_mps2 * p.comfort_decel_mps2).sqrt())).max(0.0);
    let free = 1.0 - (v / target.max(0.1)).powi(4);
    let interaction = if gap.is_finite() { (s_star / gap.max(0.05)).powi(2) } else { 0.0 };
    (p.accel_mps2 * (free - interaction)).clamp(-MAX_BRAKE_MPS2, p.accel_mps2)
}

/// Drives `route` from arc length `s` at speed `v` (lateral offset `lat` fading) for the 12 steps,
/// together with the road users ahead of it in the lane (`ahead`, nearest first; each driven by
/// the same speed law behind the next, the first in line stopping for the signal), so that a
/// queue that the light releases moves off car by car.
pub(super) fn roll_out(
    route: &Route,
    class: RoadClass,
    (s0, lat0, v0): (f64, f64, f64),
    ahead: &[Leader],
    scene_time: Option<f64>,
    p: &RoadParams,
) -> Profile {
    const SUB: usize = 4;
    let dt = STEP_SECS / SUB as f64;
    let cruise = match class {
        RoadClass::Vehicle => p.vehicle_speed_mps,
        RoadClass::Cyclist => p.cyclist_speed_mps,
    };
    // The line: 0 is the road user predicted, then those ahead, nearest first.
    let mut s_of: Vec<f64> = std::iter::once(s0).chain(ahead.iter().map(|l| l.s_m)).collect();
    let mut v_of: Vec<f64> = std::iter::once(v0.max(0.0)).chain(ahead.iter().map(|l| l.v_mps)).collect();
    let desired: Vec<f64> = v_of.iter().map(|v| v.max(cruise)).collect();
    let half: Vec<f64> =
        std::iter::once(class.half_length_m()).chain(ahead.iter().map(|_| leader_half_length_m())).collect();
    let mut accel = vec![0.0; s_of.len()];
    let mut out = Profile { s: [0.0; PRED_STEPS], lat: [0.0; PRED_STEPS] };
    for k in 0..PRED_STEPS {
        for j in 0..SUB {
            let elapsed = (k * SUB + j) as f64 * dt;
            for i in 0..s_of.len() {
                let (s, v) = (s_of[i], v_of[i]);
                let (mut gap, mut lead_v) = match s_of.get(i + 1) {
                    Some(&sl) => (sl - s - half[i] - half[i + 1], v_of[i + 1]),
                    None => (f64::INFINITY, 0.0),
                };
                if let Some(t0) = scene_time {
                    let to_stop = route.stop_s_m - s - half[i];
                    if to_stop > -0.5 && to_stop < gap && must_stop(route, t0, elapsed, to_stop, v, p) {
                        gap = to_stop.max(0.01);
                        lead_v = 0.0;
                    }
                }
                let (_, h_now) = route.path.at(s);
                let (_, h_ahead) = route.path.at(s + 12.0);
                let target =
                    if wrap_angle(h_ahead - h_now).abs() > 0.3 { desired[i].min(p.turn_speed_mps) } else { desired[i] };
                accel[i] = idm_accel(v, target, gap, lead_v, p);
            }
            for i in 0..s_of.len() {
                let nv = (v_of[i] + accel[i] * dt).max(0.0);
                s_of[i] += 0.5 * (v_of[i] + nv) * dt;
                v_of[i] = nv;
            }
        }
        let t = (k + 1) as f64 * STEP_SECS;
        out.s[k] = s_of[0];
        // The lateral offset fades as the road user settles into its lane.
        out.lat[k] = lat0 * (-t / 2.0).exp();
    }
    out
}

/// A future along a route: arc length and lateral offset at each of the 12 steps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Profile {
    pub(super) s: [f64; PRED_STEPS],
    pub(super) lat: [f64; PRED_STEPS],
}

/// The scene position `lat` metres left of arc length `s` on `route`.
fn place(route: &Route, s: f64, lat: f64) -> [f32; 2] {
    let (q, heading) = route.path.at(s);
    let at = q + Vec2::from_angle(heading + std::f64::consts::FRAC_PI_2).scale(lat);
    [at.x as f32, at.y as f32]
}

impl Profile {
    fn positions(&self, route: &Route) -> [[f32; 2]; PRED_STEPS] {
        std::array::from_fn(|k| place(route, self.s[k], self.lat[k]))
    }
}

/// The futures of a road user from its last 8 positions (0.4 s apart, the scene's metres), its
/// class, the other road users (`[x_prev, y_prev, x_last, y_last]`, its last step; those
/// ahead in its lane are driven along with it) and the scene time of its last position (the signal's state
/// follows from it; without it every arm may go). Most likely first; constant velocity alone
/// when no lane fits.
pub fn predict(
    history: &[[f32; 2]; OBS_STEPS],
    class: RoadClass,
    others: &[[f32; 4]],
    scene_time: Option<f64>,
    p: &RoadParams,
) -> Vec<RoadFuture> {
    predict_corrected(history, class, others, scene_time, p, None)
}

/// [`predict`], each route's roll-out corrected by a learned network when one is given.
pub fn predict_corrected(
    history: &[[f32; 2]; OBS_STEPS],
    class: RoadClass,
    others: &[[f32; 4]],
    scene_time: Option<f64>,
    p: &RoadParams,
    correction: Option<&Correction>,
) -> Vec<RoadFuture> {
    let Some(scored) = candidates(history, class, p) else {
        return vec![RoadFuture { probability: 1.0, positions: ConstantVelocity::predict(history) }];
    };
    let top = scored[0].log_p;
    let weights: Vec<f64> = scored.iter().map(|c| (c.log_p - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    scored
        .iter()
        .zip(&weights)
        .map(|(c, w)| {
            let ahead = platoon(c.route, class, c.s, others);
            let mut profile = roll_out(c.route, class, (c.s, c.lat, c.v), &ahead, scene_time, p);
            if let Some(net) = correction {
                let d =
                    net.correct(&super::road_learned::features(history, class, c, &profile, ahead.first(), scene_time));
                for k in 0..PRED_STEPS {
                    profile.s[k] += f64::from(d[k]);
                    profile.lat[k] += f64::from(d[PRED_STEPS + k]);
                }
                // Never backwards along the route.
                let mut s_min = c.s;
                for s in &mut profile.s {
                    *s = s.max(s_min);
                    s_min = *s;
                }
            }
            RoadFuture { probability: (w / total) as f32, positions: profile.positions(c.route) }
        })
        .collect()
}

/// A route a history fits: its log-likelihood, and where on it (arc length, lateral offset) and
/// how fast along it the road user is at the last step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub(super) route: &'static Route,
    pub(super) log_p: f64,
    pub(super) s: f64,
    pub(super) lat: f64,
    pub(super) v: f64,
}

/// The likeliest routes (at most [`ROAD_MODES`]) of a history, most likely first; none when no
/// lane fits or the history is not finite.
pub(super) fn candidates(history: &[[f32; 2]; OBS_STEPS], class: RoadClass, p: &RoadParams) -> Option<Vec<Candidate>> {
    if !history.iter().flatten().all(|v| v.is_finite()) {
        return None;
    }
    let last = v2(history[OBS_STEPS - 1]);
    let earlier = v2(history[OBS_STEPS - 4]);
    let velocity = (last - v2(history[OBS_STEPS - 3])).scale(1.0 / (2.0 * STEP_SECS));
    let moved = last.dist(v2(history[OBS_STEPS - 5]));
    let heading = (moved > STANDING_M).then(|| (last - v2(history[OBS_STEPS - 5])).angle());
    let mut scored: Vec<Candidate> = Vec::new();
    for route in routes(class) {
        let len = route.path.length_m();
        let Some((s, lat)) = route.path.project(last, 0.0, len) else { continue };
        if lat.abs() > MAX_LATERAL_M || s >= len - 1.0 {
            continue;
        }
        let Some((s_e, lat_e)) = route.path.project(earlier, (s - 30.0).max(0.0), s + 1.0) else { continue };
        if lat_e.abs() > MAX_LATERAL_M || s_e > s + 0.5 {
            continue;
        }
        let (_, h_path) = route.path.at(s);
        let mut log_p = -0.5 * ((lat / p.lateral_sigma_m).powi(2) + (lat_e / p.lateral_sigma_m).powi(2));
        if let Some(h) = heading {
            let d = wrap_angle(h - h_path);
            if d.abs() > MAX_HEADING_RAD {
                continue;
            }
            log_p -= 0.5 * (d / p.heading_sigma_rad).powi(2);
        }
        log_p += p.turn_prior[route.turn].max(1e-9).ln();
        let along = velocity.dot(Vec2::from_angle(h_path)).max(0.0);
        scored.push(Candidate { route, log_p, s, lat, v: along });
    }
    if scored.is_empty() {
        return None;
    }
    scored.sort_by(|a, b| b.log_p.total_cmp(&a.log_p));
    scored.truncate(ROAD_MODES);
    Some(scored)
}

/// Whether the signal lets `arm` go at `t` (green, or yellow).
pub(super) fn may_go(arm: Arm, t: f64) -> bool {
    matches!(signal_phase(t).0, SignalPhase::Green { arm: a } | SignalPhase::Yellow { arm: a } if a == arm)
}

/// The future to give as the single prediction: the one with the least expected displacement
/// error against the futures weighted by their probabilities (the Bayes choice under ADE), which
/// before a junction is the straight-on path rather than a coin toss between turns.
pub fn point_prediction(futures: &[RoadFuture]) -> usize {
    let expected = |i: usize| -> f64 {
        futures.iter().map(|f| f64::from(f.probability) * ade_fde(&futures[i].positions, &f.positions).0).sum()
    };
    (0..futures.len()).min_by(|a, b| expected(*a).total_cmp(&expected(*b))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn straight_east_inbound(speed: f32) -> [[f32; 2]; OBS_STEPS] {
        // The west arm's inbound lane (heading east, right of the centre line) far from the stop line.
        std::array::from_fn(|k| [-60.0 + k as f32 * speed * STEP_SECS as f32, -LANE_OFFSET_M as f32])
    }

    #[test]
    fn a_car_in_a_lane_gets_one_future_per_exit_and_stops_at_red() {
        let h = straight_east_inbound(10.0);
        let p = RoadParams::default();
        let futures = predict(&h, RoadClass::Vehicle, &[], None, &p);
        assert_eq!(futures.len(), 3, "{futures:?}");
        let total: f32 = futures.iter().map(|f| f.probability).sum();
        assert!((total - 1.0).abs() < 1e-5);
        // Without the signal the car drives on at about its speed (the straight-on future).
        let free = futures.iter().map(|f| f.positions).max_by(|a, b| a[11][0].total_cmp(&b[11][0])).unwrap();
        assert!(free[11][0] - h[7][0] > 35.0 && (free[11][1] - h[7][1]).abs() < 0.5, "{free:?}");
        // The three are the three exits: one ends north of the road, one south, one straight on.
        assert!(futures.iter().any(|f| f.positions[11][1] > 5.0) && futures.iter().any(|f| f.positions[11][1] < -5.0));
        // Find a time when the west arm has red for the next 5 s: the car stops before the line.
        let red = (0..600)
            .map(|i| i as f64 * 0.1)
            .find(|t| {
                (0..50).all(|j| {
                    !matches!(
                        signal_phase(t + j as f64 * 0.1).0,
                        SignalPhase::Green { arm: Arm::West } | SignalPhase::Yellow { arm: Arm::West }
                    )
                })
            })
            .unwrap();
        // Close to the line: 20 m before it.
        let near: [[f32; 2]; OBS_STEPS] =
            std::array::from_fn(|k| [-(7.5 + 2.25 + 20.0) - (7 - k) as f32 * 2.0, -LANE_OFFSET_M as f32]);
        for f in predict(&near, RoadClass::Vehicle, &[], Some(red), &p) {
            let stop = f.positions;
            assert!(stop.iter().all(|q| q[0] < -7.5 + 0.6), "crossed the stop line on red: {stop:?}");
        }
    }

    /// A time when the west arm's light is not green nor yellow for `before` seconds, then green
    /// for at least `green` seconds.
    fn west_turns_green(before: f64, green: f64) -> f64 {
        let west = |t: f64| {
            matches!(signal_phase(t).0, SignalPhase::Green { arm: Arm::West } | SignalPhase::Yellow { arm: Arm::West })
        };
        (0..1000)
            .map(|i| i as f64 * 0.1)
            .find(|t| {
                (0..(before * 10.0) as usize).all(|j| !west(t + j as f64 * 0.1))
                    && (0..(green * 10.0) as usize).all(|j| west(t + before + j as f64 * 0.1))
            })
            .unwrap()
    }

    #[test]
    fn a_car_follows_the_one_ahead_in_its_lane_and_ignores_one_in_the_other_lane() {
        // 10 m/s towards a car standing at the red light 25 m ahead, before the stop line.
        let h: [[f32; 2]; OBS_STEPS] = std::array::from_fn(|k| [-65.0 + k as f32 * 4.0, -LANE_OFFSET_M as f32]);
        let p = RoadParams::default();
        let red = west_turns_green(6.0, 1.0);
        let ahead = h[7][0] + 25.0;
        let standing = [[ahead, -LANE_OFFSET_M as f32, ahead, -LANE_OFFSET_M as f32]];
        for f in predict(&h, RoadClass::Vehicle, &standing, Some(red), &p) {
            assert!(f.positions.iter().all(|q| q[0] < ahead - 4.0), "ran into the car ahead: {:?}", f.positions);
        }
        // The same car in the oncoming lane is no leader (without the signal, a free road).
        let oncoming = [[ahead, LANE_OFFSET_M as f32, ahead, LANE_OFFSET_M as f32]];
        let free = predict(&h, RoadClass::Vehicle, &oncoming, None, &p);
        assert!(free.iter().any(|f| f.positions[11][0] > ahead), "{free:?}");
    }

    #[test]
    fn a_queue_released_by_the_light_moves_off_car_by_car() {
        // Three cars standing in the west arm's lane, the first at the stop line (x = -7.5);
        // the third is predicted.
        let y = -LANE_OFFSET_M as f32;
        let first = -7.5 - 2.25 - 1.0;
        let queue = [[first, y, first, y], [first - 7.0, y, first - 7.0, y]];
        let me: [[f32; 2]; OBS_STEPS] = [[first - 14.0, y]; OBS_STEPS];
        let p = RoadParams::default();
        let moved = |t: f64| {
            let f = predict(&me, RoadClass::Vehicle, &queue, Some(t), &p);
            f[point_prediction(&f)].positions[11][0] - me[7][0]
        };
        // Red for the next 6 s: the queue stays (the third car closes up at most a little).
        let red = moved(west_turns_green(6.0, 1.0));
        assert!(red.abs() < 1.0, "{red}");
        // Green in 0.5 s: the first car pulls away, then the second, then this one.
        let green = moved(west_turns_green(0.5, 5.0));
        assert!(green > 2.0 && green > red + 1.5, "{green} (red: {red})");
        // It never catches up with the car in front (7 m ahead at the start, now driven too).
        assert!(f64::from(green) < 7.0 + 0.5 * p.accel_mps2 * 4.8 * 4.8, "{green}");
    }

    #[test]
    fn the_single_prediction_before_a_junction_is_straight_on_not_a_coin_toss() {
        // Three equally likely futures: the left and right turns lie farther from each other
        // than either from straight on, so straight on has the least expected error.
        let path = |dy: f32| std::array::from_fn(|k| [k as f32, dy * (k as f32 / 11.0).powi(2)]);
        let futures: Vec<RoadFuture> =
            [8.0, 0.0, -8.0].map(|dy| RoadFuture { probability: 1.0 / 3.0, positions: path(dy) }).into();
        assert_eq!(point_prediction(&futures), 1);
        // A likely enough turn wins.
        let mut skewed = futures.clone();
        skewed[0].probability = 0.8;
        skewed[1].probability = 0.1;
        skewed[2].probability = 0.1;
        assert_eq!(point_prediction(&skewed), 0);
    }

    #[test]
    fn off_the_lanes_or_unreadable_it_is_constant_velocity() {
        let p = RoadParams::default();
        // Inside a block, far from any lane.
        let h: [[f32; 2]; OBS_STEPS] = std::array::from_fn(|k| [30.0 + k as f32, 30.0]);
        let f = predict(&h, RoadClass::Vehicle, &[], Some(3.0), &p);
        assert_eq!(f, vec![RoadFuture { probability: 1.0, positions: ConstantVelocity::predict(&h) }]);
        let mut bad = straight_east_inbound(8.0);
        bad[3][1] = f32::NAN;
        assert_eq!(predict(&bad, RoadClass::Cyclist, &[], None, &p).len(), 1);
    }

    #[test]
    fn simulated_windows_are_contiguous_driving_road_users() {
        let w = sim_windows(3, 40.0);
        assert!(w.len() > 20, "{}", w.len());
        assert!(w.iter().any(|x| x.class == RoadClass::Cyclist));
        for x in &w {
            assert!(x.t_secs > 0.0);
            assert!(x.obs.iter().chain(&x.fut).all(|p| p[0].is_finite() && p[1].is_finite()));
        }
    }
}
