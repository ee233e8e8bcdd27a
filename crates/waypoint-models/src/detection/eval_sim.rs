//! `eval detection --sim`: the detector and the tracker on seeded simulated scenes, judged
//! against the scene's truth. Recall within range per class (40 m for vehicles, 25 m for people
//! on foot and on bicycles), precision, the share of vehicles with a box of their own at
//! bird's-eye IoU 0.5 (KITTI's rule), tracking by the CLEAR MOT procedure (MOTA, id switches),
//! false tracks, and the calibration of the scores.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};
use waypoint_sim::frame::{AgentTruth, Frame, LidarSweep};
use waypoint_sim::geometry::Vec2;
use waypoint_sim::sensors::LidarConfig;
use waypoint_sim::{Fleet, Scene, SceneConfig};

use super::boxfit::bev_iou;
use super::tracker::{hungarian, Observation, Tracker, TrackerConfig};
use super::{simdata, Detection, LidarDetector};
use crate::ModelError;

/// Range evaluated per class (vehicle, pedestrian, cyclist), metres.
const RANGES_M: [f64; 3] = [40.0, 25.0, 25.0];
/// A road user counts as seen with at least this many lidar points on it.
const MIN_POINTS_ON_AGENT: usize = 10;
/// An agent and a track further apart than this are not matched (CLEAR MOT), metres.
const TRACK_MATCH_M: f64 = 2.0;
/// The cost of a pair that may not be matched, in the evaluation's assignments.
const UNMATCHED: f64 = 1e9;
/// Score bins of the reliability table.
pub const RELIABILITY_BINS: usize = 10;

/// The detector's output at an operating point: detections scored at least `min_score`.
pub fn detect_at(det: &LidarDetector, points: &[[f32; 4]], min_score: f32) -> Vec<Detection> {
    let mut dets = det.detect(points, false);
    dets.retain(|d| d.score >= min_score);
    dets
}

/// What `eval detection --sim` measured.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub seeds: Vec<u64>,
    pub seconds: u32,
    pub min_score: f32,
    pub lidar_beams: u32,
    /// Road users seen (in range, 10+ points), summed over sweeps.
    pub visible_agent_frames: usize,
    /// Recall per class with each detection's own class, and with its track's.
    pub recall: [f64; 3],
    pub recall_tracked: [f64; 3],
    pub vehicle_recall_iou: f64,
    pub precision: f64,
    pub precision_tracked: f64,
    pub mota: f64,
    pub switches: usize,
    pub switches_per_track_minute: f64,
    pub false_tracks_per_sweep: f64,
    pub false_positives_on_agents: usize,
    pub false_positives_duplicates: usize,
    pub false_positives_clutter: usize,
    pub calibration_error: f64,
    pub reliability: Vec<ReliabilityBin>,
    pub ms_per_sweep: f64,
    /// Every detection within 40 m judged right or wrong, with its score (for calibration).
    pub judged: Vec<(f32, bool)>,
    /// Per class and range band ([`CENTRE_BANDS_M`]): the root mean square error of a found
    /// road user's detected centre per axis (the one-sigma position noise a filter fed with
    /// the detections should declare), and how many were found there.
    pub centre_rmse_m: [[f64; 3]; 3],
    pub centre_count: [[usize; 3]; 3],
}

/// The range bands of [`SimReport::centre_rmse_m`]: up to 10 m, 10–20 m, beyond 20 m.
pub const CENTRE_BANDS_M: [f64; 2] = [10.0, 20.0];

/// The band of a range.
pub fn centre_band(range_m: f64) -> usize {
    CENTRE_BANDS_M.iter().filter(|b| range_m >= **b).count()
}

/// One bin of the reliability table: detections whose score is at least `from`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReliabilityBin {
    pub from: f64,
    pub detections: usize,
    pub mean_score: f64,
    pub share_right: f64,
}

impl SimReport {
    /// The report as `eval detection --sim --json` prints it.
    pub fn to_json(&self) -> Value {
        let [r0, r1, r2] = self.recall;
        let [t0, t1, t2] = self.recall_tracked;
        json!({
            "recall_vehicle_40m": r0, "recall_pedestrian_25m": r1, "recall_cyclist_25m": r2,
            "recall_vehicle_40m_bev_iou_0_5": self.vehicle_recall_iou,
            "tracked_class": {
                "recall_vehicle_40m": t0, "recall_pedestrian_25m": t1, "recall_cyclist_25m": t2,
                "precision_within_40m": self.precision_tracked,
            },
            "precision_within_40m": self.precision, "mota": self.mota, "id_switches": self.switches,
            "id_switches_per_track_minute": self.switches_per_track_minute,
            "ms_per_sweep": self.ms_per_sweep, "lidar_beams": self.lidar_beams,
            "visible_agent_frames": self.visible_agent_frames, "seeds": self.seeds,
            "seconds_per_scene": self.seconds, "min_score": self.min_score,
            "false_tracks_per_sweep": self.false_tracks_per_sweep,
            "calibration_error": self.calibration_error, "reliability": self.reliability,
            "false_positives_on_agents": self.false_positives_on_agents,
            "false_positives_duplicates": self.false_positives_duplicates,
            "false_positives_clutter": self.false_positives_clutter,
            "centre_rmse_m": {"bands_m": [0.0, CENTRE_BANDS_M[0], CENTRE_BANDS_M[1]],
                "vehicle": self.centre_rmse_m[0], "pedestrian": self.centre_rmse_m[1],
                "cyclist": self.centre_rmse_m[2], "found": self.centre_count},
        })
    }
}

/// Runs the detector and a fresh tracker over `seconds` of each seeded scene (8 vehicles, 8
/// pedestrians, 5 cyclists, `parked` parked cars, the vehicles' bodies from `fleet`) seen by
/// `lidar`.
pub fn evaluate(
    det: &LidarDetector,
    lidar: &LidarConfig,
    seeds: &[u64],
    seconds: u32,
    parked: usize,
    fleet: Fleet,
    min_score: f32,
) -> Result<SimReport, ModelError> {
    let mut tally = Tally::default();
    for &seed in seeds {
        let mut cfg =
            SceneConfig { seed, vehicles: 8, pedestrians: 8, cyclists: 5, parked, fleet, ..SceneConfig::default() };
        cfg.sensors.lidar = lidar.clone();
        let mut scene = Scene::new(cfg).map_err(|e| ModelError::Data(format!("the scene: {e}")))?;
        let mut state = SceneState {
            seed,
            tracker: Tracker::new(TrackerConfig::default()),
            last_track_of: BTreeMap::new(),
            last_pos: BTreeMap::new(),
        };
        // One lidar sweep a tick.
        let tick = scene.config().tick_secs;
        for _ in 0..(f64::from(seconds) / tick).round() as usize {
            let frame = scene.tick();
            let Some(sweep) = frame.lidar.last() else { continue };
            tally.sweep(det, &mut state, &frame, sweep, min_score, tick);
        }
    }
    Ok(tally.report(seeds, seconds, min_score, lidar.beams))
}

/// The tracking state of the evaluation within one scene.
struct SceneState {
    seed: u64,
    tracker: Tracker,
    /// The track each agent was matched to last.
    last_track_of: BTreeMap<u32, u32>,
    /// Where each agent was on the previous tick: a driver at the end of its route re-enters
    /// elsewhere under the same id, which is a new object, not an id switch.
    last_pos: BTreeMap<u32, Vec2>,
}

/// One sweep's detections in the world frame, with the class each had and the class of the
/// track it updated (what the `tracks` stream reports).
struct SweepDetections {
    dets: Vec<Detection>,
    world: Vec<Vec2>,
    origin: Vec2,
    det_class: Vec<usize>,
    tracked_class: Vec<usize>,
}

/// The running counts over every scene and sweep.
#[derive(Default)]
struct Tally {
    found: [usize; 3],
    present: [usize; 3],
    fp: usize,
    tp_all: usize,
    found_tracked: [usize; 3],
    tp_tracked: usize,
    fp_tracked: usize,
    misses: usize,
    switches: usize,
    gt_total: usize,
    track_secs: f64,
    fp_near: usize,
    fp_far: usize,
    fp_duplicate: usize,
    false_tracks: usize,
    sweeps: usize,
    /// Vehicles with a vehicle box of their own at bird's-eye IoU 0.5 or more.
    boxed_vehicles: usize,
    judged: Vec<(f32, bool)>,
    /// Per class and range band: the sum of squared centre errors (both axes) and the count.
    centre: [[(f64, usize); 3]; 3],
    ms: Vec<f64>,
}

impl Tally {
    /// Detects, tracks and judges one sweep.
    fn sweep(
        &mut self,
        det: &LidarDetector,
        st: &mut SceneState,
        frame: &Frame,
        sweep: &LidarSweep,
        min_score: f32,
        tick: f64,
    ) {
        let t = Instant::now();
        let dets = detect_at(det, &sweep.points, min_score);
        self.ms.push(t.elapsed().as_secs_f64() * 1e3);
        let pose = sweep.world_from_sensor;
        let origin = Vec2::new(pose.x_m, pose.y_m);
        let world: Vec<Vec2> =
            dets.iter().map(|d| origin + Vec2::new(d.bbox.x_m, d.bbox.y_m).rotate(pose.yaw_rad)).collect();
        let obs: Vec<Observation> = dets
            .iter()
            .zip(&world)
            .map(|(d, w)| Observation {
                x_m: w.x,
                y_m: w.y,
                class: d.class,
                yaw_rad: Some(d.bbox.yaw_rad + pose.yaw_rad),
                score: d.score,
            })
            .collect();
        st.tracker.step(tick, &obs);
        let det_class: Vec<usize> = dets.iter().map(|d| d.class).collect();
        let mut tracked_class = det_class.clone();
        for t in st.tracker.tracks() {
            if let Some(i) = t.observation {
                tracked_class[i] = t.class;
            }
        }
        let sd = SweepDetections { dets, world, origin, det_class, tracked_class };
        let evaluated = self.visible_agents(st, frame, sweep, &sd, tick);
        let (matched_det, matched_tracked) = self.count_found(st.seed, frame, &sd, &evaluated);
        self.count_tracking(st, frame, origin, &evaluated);
        self.count_false_positives(frame, &sd, &evaluated, &matched_det, &matched_tracked);
    }

    /// Marks the road users this sweep is judged on (in range, 10+ points on them), counts them,
    /// and counts the vehicles among them with a box of their own at bird's-eye IoU 0.5.
    fn visible_agents(
        &mut self,
        st: &mut SceneState,
        frame: &Frame,
        sweep: &LidarSweep,
        sd: &SweepDetections,
        tick: f64,
    ) -> Vec<bool> {
        let pose = sweep.world_from_sensor;
        let mut boxed = vec![false; sd.dets.len()];
        let mut evaluated = vec![false; frame.truth.agents.len()];
        for (ai, a) in frame.truth.agents.iter().enumerate() {
            let k = simdata::class_of(a.kind);
            let pos = Vec2::new(a.x_m, a.y_m);
            if st.last_pos.insert(a.id, pos).is_some_and(|p| p.dist(pos) > 8.0) {
                st.last_track_of.remove(&a.id);
            }
            if !is_judged(a, sweep) {
                continue;
            }
            evaluated[ai] = true;
            self.present[k] += 1;
            self.gt_total += 1;
            if k == 0 {
                // Its box in the sensor frame, against the vehicle boxes not yet taken (in the
                // order of the scene's agents).
                let truth = simdata::sensor_box(a, &pose);
                let best = (0..sd.dets.len())
                    .filter(|i| !boxed[*i] && sd.dets[*i].class == 0)
                    .map(|i| (bev_iou(&sd.dets[i].bbox, &truth), i))
                    .max_by(|x, y| x.0.total_cmp(&y.0));
                if let Some((_, i)) = best.filter(|(iou, _)| *iou >= 0.5) {
                    boxed[i] = true;
                    self.boxed_vehicles += 1;
                }
            }
            self.track_secs += tick;
        }
        evaluated
    }

    /// Detections found on the evaluated road users ([`match_to_agents`]), with each detection's
    /// own class and with its track's. Returns which detections were matched, per way.
    fn count_found(
        &mut self,
        seed: u64,
        frame: &Frame,
        sd: &SweepDetections,
        evaluated: &[bool],
    ) -> (Vec<bool>, Vec<bool>) {
        let mut matched_det = vec![false; sd.dets.len()];
        let mut matched_tracked = vec![false; sd.dets.len()];
        let agents: Vec<&AgentTruth> =
            frame.truth.agents.iter().zip(evaluated).filter(|(_, e)| **e).map(|(a, _)| a).collect();
        for (per_sweep, classes, matched, found) in [
            (true, &sd.det_class, &mut matched_det, &mut self.found),
            (false, &sd.tracked_class, &mut matched_tracked, &mut self.found_tracked),
        ] {
            let assigned = match_to_agents(&agents, &sd.world, classes);
            for (a, col) in agents.iter().zip(assigned) {
                if let Some(i) = col {
                    matched[i] = true;
                    let k = simdata::class_of(a.kind);
                    found[k] += 1;
                    if per_sweep {
                        let pos = Vec2::new(a.x_m, a.y_m);
                        let e = &mut self.centre[k][centre_band(pos.dist(sd.origin))];
                        e.0 += sd.world[i].dist(pos).powi(2);
                        e.1 += 1;
                    }
                } else if per_sweep {
                    // The nearest detection is only looked for when debug logging is on.
                    let pos = Vec2::new(a.x_m, a.y_m);
                    tracing::debug!(
                        seed, t = frame.truth.t_secs, agent = a.id, kind = ?a.kind, x = a.x_m, y = a.y_m,
                        range = pos.dist(sd.origin),
                        nearest = ?sd.world
                            .iter()
                            .enumerate()
                            .min_by(|a, b| a.1.dist(pos).total_cmp(&b.1.dist(pos)))
                            .map(|(i, w)| (classes[i], w.dist(pos), sd.dets[i].points, sd.dets[i].bbox.height_m)),
                        "missed"
                    );
                }
            }
        }
        (matched_det, matched_tracked)
    }

    /// Tracking, by the CLEAR MOT procedure: an agent keeps last frame's track while that track
    /// is still within 2 m; the others are matched one-to-one to the remaining confirmed tracks
    /// within 2 m (Hungarian, on distance). A match to a track other than the agent's last one
    /// is an id switch; an evaluated agent left without one, a miss. Also counts false tracks:
    /// confirmed, updated this sweep, within 40 m, and not within 2 m of any road user (seen or
    /// not).
    fn count_tracking(&mut self, st: &mut SceneState, frame: &Frame, origin: Vec2, evaluated_agent: &[bool]) {
        let agents = &frame.truth.agents;
        let tracks = st.tracker.tracks();
        self.false_tracks += tracks
            .iter()
            .filter(|t| t.observation.is_some())
            .map(|t| Vec2::new(t.x_m, t.y_m))
            .filter(|p| p.dist(origin) <= RANGES_M[0])
            .filter(|p| !agents.iter().any(|a| Vec2::new(a.x_m, a.y_m).dist(*p) < TRACK_MATCH_M))
            .count();
        self.sweeps += 1;
        let evaluated: Vec<usize> = (0..agents.len()).filter(|ai| evaluated_agent[*ai]).collect();
        let agent_pos = |ai: usize| Vec2::new(agents[ai].x_m, agents[ai].y_m);
        let track_pos = |ti: usize| Vec2::new(tracks[ti].x_m, tracks[ti].y_m);
        let mut track_taken = vec![false; tracks.len()];
        let mut matched: Vec<Option<usize>> = vec![None; evaluated.len()];
        for (k, ai) in evaluated.iter().enumerate() {
            let Some(prev) = st.last_track_of.get(&agents[*ai].id) else { continue };
            if let Some(ti) = tracks.iter().position(|t| t.id == *prev) {
                if !track_taken[ti] && track_pos(ti).dist(agent_pos(*ai)) < TRACK_MATCH_M {
                    track_taken[ti] = true;
                    matched[k] = Some(ti);
                }
            }
        }
        let open_agents: Vec<usize> = (0..evaluated.len()).filter(|k| matched[*k].is_none()).collect();
        let open_tracks: Vec<usize> = (0..tracks.len()).filter(|ti| !track_taken[*ti]).collect();
        let cost: Vec<Vec<f64>> = open_agents
            .iter()
            .map(|k| {
                open_tracks
                    .iter()
                    .map(|ti| {
                        let d = track_pos(*ti).dist(agent_pos(evaluated[*k]));
                        if d < TRACK_MATCH_M {
                            d
                        } else {
                            UNMATCHED
                        }
                    })
                    .collect()
            })
            .collect();
        for (row, col) in hungarian(&cost).into_iter().enumerate() {
            if let Some(c) = col {
                matched[open_agents[row]] = Some(open_tracks[c]);
            }
        }
        for (k, ai) in evaluated.iter().enumerate() {
            let a = &agents[*ai];
            match matched[k] {
                Some(ti) => {
                    let id = tracks[ti].id;
                    if let Some(prev) = st.last_track_of.insert(a.id, id).filter(|prev| *prev != id) {
                        self.switches += 1;
                        tracing::debug!(
                            seed = st.seed, t = frame.truth.t_secs, agent = a.id, kind = ?a.kind, x = a.x_m,
                            y = a.y_m, prev, now = id, "id switch"
                        );
                    }
                }
                None => self.misses += 1,
            }
        }
    }

    /// Counts the right detections and the false positives, by each detection's own class and by
    /// its track's, and keeps each judged detection's score for the reliability table.
    fn count_false_positives(
        &mut self,
        frame: &Frame,
        sd: &SweepDetections,
        evaluated: &[bool],
        matched_det: &[bool],
        matched_tracked: &[bool],
    ) {
        let agents = &frame.truth.agents;
        self.tp_all += matched_det.iter().filter(|m| **m).count();
        let ranges: Vec<f64> = sd.dets.iter().map(|d| d.bbox.x_m.hypot(d.bbox.y_m)).collect();
        let f = false_positives(&ranges, &sd.world, &sd.det_class, matched_det, agents, evaluated);
        // Reliability: each detection within 40 m that is right (matched) or counted wrong, by
        // its score.
        for (i, d) in sd.dets.iter().enumerate() {
            if matched_det[i] || f.counted[i] {
                self.judged.push((d.score, matched_det[i]));
            }
        }
        self.fp += f.near + f.clutter;
        self.fp_near += f.near;
        self.fp_duplicate += f.duplicates;
        self.fp_far += f.clutter;
        self.tp_tracked += matched_tracked.iter().filter(|m| **m).count();
        let f = false_positives(&ranges, &sd.world, &sd.tracked_class, matched_tracked, agents, evaluated);
        self.fp_tracked += f.near + f.clutter;
    }

    fn report(self, seeds: &[u64], seconds: u32, min_score: f32, lidar_beams: u32) -> SimReport {
        let share = |found: &[usize; 3]| -> [f64; 3] {
            std::array::from_fn(|k| found[k] as f64 / self.present[k].max(1) as f64)
        };
        let reliability = reliability(&self.judged)
            .iter()
            .enumerate()
            .filter(|(_, b)| b.0 > 0)
            .map(|(k, b)| ReliabilityBin {
                from: k as f64 / RELIABILITY_BINS as f64,
                detections: b.0,
                mean_score: b.2 / b.0 as f64,
                share_right: b.1 as f64 / b.0 as f64,
            })
            .collect();
        SimReport {
            seeds: seeds.to_vec(),
            seconds,
            min_score,
            lidar_beams,
            visible_agent_frames: self.gt_total,
            recall: share(&self.found),
            recall_tracked: share(&self.found_tracked),
            vehicle_recall_iou: self.boxed_vehicles as f64 / self.present[0].max(1) as f64,
            precision: self.tp_all as f64 / (self.tp_all + self.fp).max(1) as f64,
            precision_tracked: self.tp_tracked as f64 / (self.tp_tracked + self.fp_tracked).max(1) as f64,
            mota: 1.0 - (self.misses + self.switches + self.fp) as f64 / self.gt_total.max(1) as f64,
            switches: self.switches,
            switches_per_track_minute: self.switches as f64 / (self.track_secs / 60.0).max(1e-9),
            false_tracks_per_sweep: self.false_tracks as f64 / self.sweeps.max(1) as f64,
            false_positives_on_agents: self.fp_near,
            false_positives_duplicates: self.fp_duplicate,
            false_positives_clutter: self.fp_far,
            calibration_error: calibration_error(&self.judged),
            reliability,
            ms_per_sweep: self.ms.iter().sum::<f64>() / self.ms.len().max(1) as f64,
            judged: self.judged,
            centre_rmse_m: self
                .centre
                .map(|c| c.map(|(sq, n)| if n > 0 { (sq / (2 * n) as f64).sqrt() } else { f64::NAN })),
            centre_count: self.centre.map(|c| c.map(|(_, n)| n)),
        }
    }
}

/// False positives among one sweep's detections within 40 m of the sensor.
struct FalsePositives {
    /// On an evaluated agent: a duplicate (`duplicates` of them of the agent's class) or a
    /// wrong class.
    near: usize,
    duplicates: usize,
    /// On no agent.
    clutter: usize,
    /// Which detections were counted.
    counted: Vec<bool>,
}

/// Whether a sweep judges a road user: within its class's range of the sensor (40 m for
/// vehicles, 25 m for people) and with at least [`MIN_POINTS_ON_AGENT`] lidar points on it.
/// The one definition of a road user the detector should have found, shared by
/// `eval detection --sim` and the server's online error.
pub fn is_judged(a: &AgentTruth, sweep: &LidarSweep) -> bool {
    let pose = sweep.world_from_sensor;
    let origin = Vec2::new(pose.x_m, pose.y_m);
    let pos = Vec2::new(a.x_m, a.y_m);
    if pos.dist(origin) > RANGES_M[simdata::class_of(a.kind)] {
        return false;
    }
    let on_agent = sweep
        .points
        .iter()
        .filter(|p| {
            let w = origin + Vec2::new(f64::from(p[0]), f64::from(p[1])).rotate(pose.yaw_rad);
            let r = (w - pos).rotate(-a.yaw_rad);
            r.x.abs() < a.length_m / 2.0 + 0.2 && r.y.abs() < a.width_m / 2.0 + 0.2 && f64::from(p[2]) > -1.5
        })
        .count();
    on_agent >= MIN_POINTS_ON_AGENT
}

/// One sweep's detections judged as `eval detection --sim` judges them: per class (vehicle,
/// pedestrian, cyclist) the road users judged ([`is_judged`]) and found ([`match_to_agents`],
/// one to one), and the detections within 40 m of the sensor that are right or counted wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SweepScore {
    pub judged: [usize; 3],
    pub found: [usize; 3],
    pub true_positives: usize,
    pub false_positives: usize,
}

/// Scores detections (world positions and classes) against a sweep's road users.
pub fn score_sweep(agents: &[AgentTruth], sweep: &LidarSweep, world: &[Vec2], classes: &[usize]) -> SweepScore {
    let origin = Vec2::new(sweep.world_from_sensor.x_m, sweep.world_from_sensor.y_m);
    let evaluated: Vec<bool> = agents.iter().map(|a| is_judged(a, sweep)).collect();
    let judged: Vec<&AgentTruth> = agents.iter().zip(&evaluated).filter(|(_, e)| **e).map(|(a, _)| a).collect();
    let mut score = SweepScore::default();
    let mut matched = vec![false; world.len()];
    for (a, col) in judged.iter().zip(match_to_agents(&judged, world, classes)) {
        let k = simdata::class_of(a.kind);
        score.judged[k] += 1;
        if let Some(i) = col {
            score.found[k] += 1;
            matched[i] = true;
        }
    }
    let ranges: Vec<f64> = world.iter().map(|w| w.dist(origin)).collect();
    let f = false_positives(&ranges, world, classes, &matched, agents, &evaluated);
    score.true_positives = matched.iter().filter(|m| **m).count();
    score.false_positives = f.near + f.clutter;
    score
}

/// Counts the detections not matched to an agent (`matched`), by what they lie on, with the
/// given class for each detection (`ranges`: each detection's distance from the sensor). One on
/// an agent out of the evaluated range or barely visible is not counted.
fn false_positives(
    ranges: &[f64],
    world: &[Vec2],
    classes: &[usize],
    matched: &[bool],
    agents: &[AgentTruth],
    evaluated: &[bool],
) -> FalsePositives {
    let mut out = FalsePositives { near: 0, duplicates: 0, clutter: 0, counted: vec![false; world.len()] };
    for (i, w) in world.iter().enumerate() {
        if matched[i] || ranges[i] > RANGES_M[0] {
            continue;
        }
        match agents.iter().enumerate().find(|(_, a)| Vec2::new(a.x_m, a.y_m).dist(*w) < a.length_m.max(1.0)) {
            Some((ai, a)) if evaluated[ai] => {
                out.near += 1;
                out.counted[i] = true;
                if classes[i] == simdata::class_of(a.kind) {
                    out.duplicates += 1;
                }
            }
            Some(_) => {}
            None => {
                out.clutter += 1;
                out.counted[i] = true;
            }
        }
    }
    out
}

/// (detections, right, sum of scores) per score bin of (score, right) pairs.
fn reliability(judged: &[(f32, bool)]) -> [(usize, usize, f64); RELIABILITY_BINS] {
    let mut bins = [(0usize, 0usize, 0.0f64); RELIABILITY_BINS];
    for &(score, right) in judged {
        let b = ((score * RELIABILITY_BINS as f32) as usize).min(RELIABILITY_BINS - 1);
        bins[b].0 += 1;
        bins[b].1 += usize::from(right);
        bins[b].2 += f64::from(score);
    }
    bins
}

/// Expected calibration error: the gap between the mean score and the share right, per bin,
/// weighted by the bin's share of the pairs.
pub fn calibration_error(judged: &[(f32, bool)]) -> f64 {
    reliability(judged)
        .iter()
        .filter(|b| b.0 > 0)
        .map(|b| b.0 as f64 / judged.len() as f64 * (b.1 as f64 / b.0 as f64 - b.2 / b.0 as f64).abs())
        .sum()
}

/// Detections (world positions, classes) matched to road users: each road user to at most one
/// detection of its class within its length of its centre, each detection to at most one road
/// user, as many pairs as can be and the nearest (a first-come match lets one car take its
/// neighbour's detection in a row of parked cars).
pub fn match_to_agents(agents: &[&AgentTruth], world: &[Vec2], classes: &[usize]) -> Vec<Option<usize>> {
    if world.is_empty() {
        return vec![None; agents.len()];
    }
    let cost: Vec<Vec<f64>> = agents
        .iter()
        .map(|a| {
            let pos = Vec2::new(a.x_m, a.y_m);
            world
                .iter()
                .zip(classes)
                .map(|(w, c)| {
                    let d = w.dist(pos);
                    if *c == simdata::class_of(a.kind) && d < a.length_m.max(1.0) {
                        d
                    } else {
                        UNMATCHED
                    }
                })
                .collect()
        })
        .collect();
    hungarian(&cost).into_iter().enumerate().map(|(row, col)| col.filter(|i| cost[row][*i] < UNMATCHED)).collect()
}

#[cfg(test)]
mod tests {
    use waypoint_sim::AgentKind;

    use super::*;

    fn car(x_m: f64) -> AgentTruth {
        AgentTruth {
            id: 0,
            kind: AgentKind::Vehicle,
            x_m,
            y_m: 0.0,
            length_m: 4.5,
            width_m: 1.8,
            height_m: 1.5,
            yaw_rad: 0.0,
            vx_mps: 0.0,
            vy_mps: 0.0,
            yaw_rate_rps: 0.0,
        }
    }

    #[test]
    fn detections_go_to_road_users_one_to_one_as_many_as_can_be() {
        // Two cars 2.7 m apart and two vehicle detections: one 0.1 m from the second car (and
        // 2.6 m from the first), one 3 m behind the first (5.7 m from the second). The first
        // car taking the nearer detection, first come, would leave the second car with none.
        let (a, b) = (car(0.0), car(2.7));
        let world = [Vec2::new(2.6, 0.0), Vec2::new(-3.0, 0.0)];
        assert_eq!(match_to_agents(&[&a, &b], &world, &[0, 0]), vec![Some(1), Some(0)]);
        // A detection of another class, or beyond a road user's length, matches nothing.
        assert_eq!(match_to_agents(&[&a, &b], &world, &[1, 0]), vec![Some(1), None]);
        assert_eq!(match_to_agents(&[&a], &[Vec2::new(4.6, 0.0)], &[0]), vec![None]);
        assert_eq!(match_to_agents(&[&a], &[], &[]), vec![None]);
    }
}
