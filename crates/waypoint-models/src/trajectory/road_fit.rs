//! The road model's data and its fitted constants: windows of the simulated road users' true
//! positions ([`sim_windows`]), the model's mean error on them and the coordinate search that
//! chooses the constants ([`fit_params`]).

use waypoint_sim::agent::{AgentKind, Behaviour};
use waypoint_sim::scene::{Scene, SceneConfig};

use super::road::*;
use super::{OBS_STEPS, PRED_STEPS, STEP_SECS};

/// One 8 + 12 step window of a simulated road user, with the scene time of its last observed step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoadWindow {
    pub class: RoadClass,
    /// The trip the window belongs to (one road user from entering the map to leaving it):
    /// the scene's seed, the road user's id and its trip's number.
    pub trip: (u64, u32, u32),
    pub t_secs: f64,
    /// The other road users within [`LEADER_REACH_M`] at the last observed step, as
    /// `[x_prev, y_prev, x_last, y_last]`.
    pub others: Vec<[f32; 4]>,
    pub obs: [[f32; 2]; OBS_STEPS],
    pub fut: [[f32; 2]; PRED_STEPS],
}

/// The windows of every driving road user of the default scene with `seed`, simulated for
/// `secs` seconds (true positions every 0.4 s; a window across a re-entry is dropped).
pub fn sim_windows(seed: u64, secs: f64) -> Vec<RoadWindow> {
    let config = SceneConfig { seed, ..SceneConfig::default() };
    let Ok(mut scene) = Scene::new(config) else { return Vec::new() };
    let ticks_per_step = (STEP_SECS / scene.config().tick_secs).round().max(1.0) as usize;
    // Each driving road user's class and (time, position) samples.
    type Track = (RoadClass, Vec<(f64, [f32; 2])>);
    let mut tracks: std::collections::BTreeMap<u32, Track> = Default::default();
    // Every agent's position at each sample (the others of a window), by sample index.
    let mut everyone: Vec<Vec<(u32, [f32; 2])>> = Vec::new();
    let steps = (secs / STEP_SECS) as usize;
    for _ in 0..steps {
        for _ in 0..ticks_per_step {
            scene.tick();
        }
        let t = scene.t_secs();
        // The vehicle itself is among the others, as the live stack sends it.
        let ego = scene.ego();
        everyone.push(
            scene
                .agents()
                .iter()
                .chain(std::iter::once(ego))
                .map(|a| (a.id, [a.pos.x as f32, a.pos.y as f32]))
                .collect(),
        );
        for a in scene.agents() {
            let class = match (a.kind, &a.behaviour) {
                (AgentKind::Vehicle, Behaviour::Drive(_)) => RoadClass::Vehicle,
                (AgentKind::Cyclist, Behaviour::Drive(_)) => RoadClass::Cyclist,
                _ => continue,
            };
            let e = tracks.entry(a.id).or_insert_with(|| (class, Vec::new()));
            e.1.push((t, [a.pos.x as f32, a.pos.y as f32]));
        }
    }
    let n = OBS_STEPS + PRED_STEPS;
    let mut out = Vec::new();
    let sample_of = |t: f64| ((t / STEP_SECS).round() as usize).checked_sub(1);
    for (id, (class, track)) in &tracks {
        // The trip of each sample: a new one after each re-entry (a jump or a gap).
        let mut trip_of = vec![0u32; track.len()];
        for i in 1..track.len() {
            let (a, b) = (track[i - 1], track[i]);
            let jump = (b.1[0] - a.1[0]).hypot(b.1[1] - a.1[1]) >= 8.0 || (b.0 - a.0 - STEP_SECS).abs() > 1e-6;
            trip_of[i] = trip_of[i - 1] + u32::from(jump);
        }
        for (start, w) in track.windows(n).enumerate().step_by(2) {
            // Consecutive samples (no gap in time) and no re-entry jump.
            let contiguous = w.windows(2).all(|p| (p[1].0 - p[0].0 - STEP_SECS).abs() < 1e-6);
            let smooth = w.windows(2).all(|p| (p[1].1[0] - p[0].1[0]).hypot(p[1].1[1] - p[0].1[1]) < 8.0);
            if !contiguous || !smooth {
                continue;
            }
            let t_last = w[OBS_STEPS - 1].0;
            let me = w[OBS_STEPS - 1].1;
            let others = match sample_of(t_last) {
                Some(i) if i >= 1 && i < everyone.len() => everyone[i]
                    .iter()
                    .filter(|(o, p)| o != id && (p[0] - me[0]).hypot(p[1] - me[1]) <= LEADER_REACH_M as f32)
                    .filter_map(|(o, p)| {
                        let prev = everyone[i - 1].iter().find(|(q, _)| q == o)?.1;
                        Some([prev[0], prev[1], p[0], p[1]])
                    })
                    .collect(),
                _ => Vec::new(),
            };
            out.push(RoadWindow {
                class: *class,
                trip: (seed, *id, trip_of[start]),
                t_secs: t_last,
                others,
                obs: std::array::from_fn(|k| w[k].1),
                fut: std::array::from_fn(|k| w[OBS_STEPS + k].1),
            });
        }
    }
    out
}

/// Mean most-likely ADE of the road model on `windows` with `p`.
pub fn mean_ade(windows: &[RoadWindow], p: &RoadParams) -> f64 {
    let total: f64 = windows
        .iter()
        .map(|w| {
            let f = predict(&w.obs, w.class, &w.others, Some(w.t_secs), p);
            ade_fde(&f[point_prediction(&f)].positions, &w.fut).0
        })
        .sum();
    total / windows.len().max(1) as f64
}

/// Chooses the constants on `windows` (the fitting seeds): the turn prior from how often each
/// turn is taken per trip, then a coordinate search over how far that prior is tempered towards
/// even odds, the speed law's constants and the likelihood's sigmas, each over a fixed grid,
/// minimising the ADE of the single prediction.
pub fn fit_params(windows: &[RoadWindow]) -> RoadParams {
    let mut p = RoadParams::default();
    // Turn prior: how often each turn is taken, per trip (a window votes for the route its
    // future lies closest to, among the windows that leave a choice; a trip counts once, for
    // the turn most of its windows vote for). Counted per window instead, slow turns would
    // weigh more than quick ones.
    let mut votes: std::collections::BTreeMap<(u64, u32, u32), [u32; 3]> = Default::default();
    for w in windows {
        if predict(&w.obs, w.class, &w.others, Some(w.t_secs), &RoadParams { turn_prior: [1.0; 3], ..p }).len() < 2 {
            continue;
        }
        let off = |r: &Route| -> f64 {
            w.fut
                .iter()
                .map(|q| r.path.project(v2(*q), 0.0, r.path.length_m()).map_or(f64::INFINITY, |x| x.1.abs()))
                .sum()
        };
        if let Some(r) = routes(w.class).iter().min_by(|a, b| off(a).total_cmp(&off(b))) {
            votes.entry(w.trip).or_default()[r.turn] += 1;
        }
    }
    let mut counts = [1.0f64; 3];
    for v in votes.values() {
        let turn = (0..3).max_by_key(|&t| v[t]).unwrap_or(1);
        counts[turn] += 1.0;
    }
    let sum: f64 = counts.iter().sum();
    p.turn_prior = counts.map(|c| 3.0 * c / sum);
    type Knob = (fn(&mut RoadParams, f64), &'static [f64]);
    let knobs: [Knob; 9] = [
        (|p, v| p.accel_mps2 = v, &[0.8, 1.2, 1.5, 2.0, 2.5, 3.0]),
        (|p, v| p.comfort_decel_mps2 = v, &[1.0, 1.5, 2.0, 2.5, 3.0, 4.0]),
        (|p, v| p.vehicle_speed_mps = v, &[7.0, 8.5, 10.0, 11.0, 12.0, 13.5]),
        (|p, v| p.cyclist_speed_mps = v, &[3.0, 3.75, 4.5, 5.25, 6.0]),
        (|p, v| p.turn_speed_mps = v, &[4.0, 5.0, 6.0, 7.0, 8.0]),
        (|p, v| p.lateral_sigma_m = v, &[0.3, 0.45, 0.6, 0.9, 1.2]),
        (|p, v| p.heading_sigma_rad = v, &[0.15, 0.25, 0.35, 0.5, 0.8]),
        (|p, v| p.min_gap_m = v, &[1.0, 1.5, 2.0, 2.5, 3.0, 4.0]),
        (|p, v| p.headway_secs = v, &[0.8, 1.0, 1.2, 1.5, 2.0]),
    ];
    let mut best = mean_ade(windows, &p);
    // The counted prior tempered towards even odds (exponent 0: every turn alike; 1: as
    // counted), chosen with the other constants by the error of the single prediction.
    let counted = p.turn_prior;
    for _round in 0..2 {
        for alpha in [0.0, 0.5, 1.0] {
            let q = RoadParams { turn_prior: counted.map(|c| c.powf(alpha)), ..p };
            let ade = mean_ade(windows, &q);
            if ade < best - 1e-9 {
                best = ade;
                p = q;
            }
        }
        for (set, grid) in &knobs {
            for &v in *grid {
                let mut q = p;
                set(&mut q, v);
                let ade = mean_ade(windows, &q);
                if ade < best - 1e-9 {
                    best = ade;
                    p = q;
                }
            }
        }
    }
    p
}
