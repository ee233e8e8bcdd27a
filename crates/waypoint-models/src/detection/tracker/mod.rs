//! Multi-object tracker: a constant-velocity Kalman filter per track in the world frame,
//! Mahalanobis gating, optimal assignment (Hungarian algorithm) on a cost that also weighs a
//! detection's class against the track's (a fading vote of the classes it was seen as), a
//! vehicle's velocity held along its detected box's axis, track birth after two hits (only a
//! detection scored at least `birth_min_score` starts one; any can keep one) and death after
//! `max_misses` misses (`established_max_misses` for a track followed for seconds), stable
//! ids. A second detection on an object that already has a track (a vehicle split in two by an
//! occluder) does not start a track of its own; a young track that shadows an older one (same
//! place, same velocity) is retired, an established one only after it has shadowed it for
//! `duplicate_frames` frames (two walkers passing each other are briefly one cluster); and a
//! coasting track hands its id to a young track that appeared beside it (the same object found
//! again after the old estimate wandered off).

mod hungarian;
mod rules;
#[cfg(test)]
mod tests;
mod track;

pub use hungarian::hungarian;
use track::Track;

/// One detection handed to the tracker: world position, class, the box's yaw in the world
/// frame (a vehicle moves along its box's long axis) and the classifier's probability of the
/// class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub x_m: f64,
    pub y_m: f64,
    pub class: usize,
    pub yaw_rad: Option<f64>,
    pub score: f32,
}

/// A track's public state.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TrackState {
    pub id: u32,
    pub x_m: f64,
    pub y_m: f64,
    pub vx_mps: f64,
    pub vy_mps: f64,
    pub class: usize,
    pub hits: u32,
    pub misses: u32,
    /// Index of the observation that updated it this frame, if any.
    pub observation: Option<usize>,
}

/// Tracker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    pub meas_sigma_m: f64,
    pub accel_sigma_mps2: f64,
    /// Gate on the squared Mahalanobis distance (chi-square, 2 dof, 99.9 %: 13.8).
    pub gate: f64,
    pub confirm_hits: u32,
    /// Only a detection whose score (a calibrated confidence) is at least this starts a track; a
    /// less certain one can still update a track that exists (a road user seen in part keeps
    /// its track, a stray cluster on clutter starts none). 0.64 is the raw 0.9 of classifier
    /// version 5 on version 6's calibrated scale.
    pub birth_min_score: f32,
    pub max_misses: u32,
    /// A track with at least `established_hits` hits coasts this many misses instead: an object
    /// followed for seconds and then hidden (a walker behind a parked car) keeps moving as it
    /// did, and is found again where its track predicts it.
    pub established_max_misses: u32,
    pub established_hits: u32,
    /// An unmatched observation this close to a track updated this frame starts no track,
    /// metres, per class (vehicle, pedestrian, cyclist, other): a vehicle's fragments lie
    /// within its length, a pedestrian's beside its body.
    pub duplicate_radius_m: [f64; 4],
    /// ... but a vehicle's fragments lie along its box's long axis: across it, a vehicle track
    /// and a detection or track beside it are one object only this close, metres (cars parked
    /// side by side, 2.4–3 m apart, are two).
    pub duplicate_across_m: f64,
    /// Two confirmed tracks closer than their class's radius whose velocities differ by less
    /// than this are one object: the younger is retired, m/s.
    pub duplicate_speed_mps: f64,
    /// ... at once when the younger has at most `handover_max_hits` hits (a shadow of the older
    /// is found early), otherwise after this many frames in a row: two established tracks that
    /// meet are two objects passing each other, whose merged detection drags their velocities
    /// together for a few frames.
    pub duplicate_frames: u32,
    /// A confirmed track that missed this frame hands its id to a young track (at most
    /// `handover_max_hits` hits) updated this close to it, metres per class: the young track
    /// is the same object found again after the old one's estimate wandered off.
    pub handover_radius_m: [f64; 4],
    pub handover_max_hits: u32,
    /// Added to the assignment cost (a squared Mahalanobis distance) when a detection's class
    /// differs from the track's, by pair (vehicle, pedestrian, cyclist, other): a car's
    /// fragment is seldom taken for a pedestrian, a pedestrian often for a cyclist.
    pub class_cost: [[f64; 4]; 4],
    /// Each update keeps this share of a track's earlier class votes (about a 1 s memory at
    /// 10 Hz).
    pub class_memory: f64,
    /// A vehicle's velocity across its detected box's long axis is measured as zero with this
    /// standard deviation, m/s (a car does not slide sideways: the track turns with the box).
    /// Applied when the track moves faster than `heading_min_speed_mps` within 45° of the axis.
    pub heading_sigma_mps: f64,
    pub heading_min_speed_mps: f64,
    /// A confirmed track with at least `fast_min_hits` hits that moves faster than this for
    /// `fast_updates` updates in a row is no pedestrian, m/s (walking is 1–2 m/s, a jog
    /// about 3).
    pub pedestrian_max_speed_mps: f64,
    pub fast_min_hits: u32,
    pub fast_updates: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            meas_sigma_m: 0.8,
            accel_sigma_mps2: 3.0,
            gate: 13.8,
            confirm_hits: 2,
            birth_min_score: 0.64,
            max_misses: 10,
            established_max_misses: 20,
            established_hits: 50,
            duplicate_radius_m: [3.0, 0.6, 1.0, 1.0],
            duplicate_across_m: 1.5,
            duplicate_speed_mps: 1.5,
            duplicate_frames: 10,
            handover_radius_m: [3.5, 1.5, 2.5, 1.5],
            handover_max_hits: 20,
            class_cost: [[0.0, 6.0, 6.0, 3.0], [6.0, 0.0, 2.0, 3.0], [6.0, 2.0, 0.0, 3.0], [3.0, 3.0, 3.0, 0.0]],
            class_memory: 0.9,
            heading_sigma_mps: 0.5,
            heading_min_speed_mps: 1.5,
            pedestrian_max_speed_mps: 3.0,
            fast_min_hits: 10,
            fast_updates: 5,
        }
    }
}

/// Whether two things of these classes, with these vehicle box axes (world frame, where
/// known), `(dx, dy)` apart, may be one object: closer than the smaller of their classes'
/// duplicate radii, unless they lie further than `duplicate_across_m` apart across every
/// vehicle box axis known (a vehicle's fragments lie along it; a fragment's box may be turned,
/// so one axis along is enough to keep them one).
fn same_object(cfg: &TrackerConfig, a: (usize, Option<f64>), b: (usize, Option<f64>), dx: f64, dy: f64) -> bool {
    let r = cfg.duplicate_radius_m[a.0.min(3)].min(cfg.duplicate_radius_m[b.0.min(3)]);
    let across = |yaw: f64| (-yaw.sin() * dx + yaw.cos() * dy).abs() > cfg.duplicate_across_m;
    let mut axes = [a.1, b.1].into_iter().flatten().peekable();
    dx.hypot(dy) < r && (axes.peek().is_none() || !axes.all(across))
}

/// The tracker.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pub config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u32,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self { config, tracks: Vec::new(), next_id: 1 }
    }

    /// Confirmed tracks (seen at least `confirm_hits` times).
    pub fn tracks(&self) -> Vec<TrackState> {
        self.tracks.iter().filter(|t| t.state.hits >= self.config.confirm_hits).map(|t| t.state).collect()
    }

    /// Advances all tracks by `dt_secs` and updates them with this frame's observations.
    pub fn step(&mut self, dt_secs: f64, obs: &[Observation]) {
        let dt = dt_secs.clamp(0.0, 5.0);
        let q = self.config.accel_sigma_mps2.powi(2);
        let r = self.config.meas_sigma_m.powi(2);
        for t in &mut self.tracks {
            t.predict(dt, q);
            t.state.observation = None;
        }
        let used = self.associate(obs, r);
        let cfg = self.config;
        // Tentative tracks die at their first miss; confirmed ones after `max_misses`,
        // established ones after `established_max_misses`.
        self.tracks.retain(|t| {
            let limit = if t.state.hits >= cfg.established_hits {
                cfg.established_max_misses
            } else if t.state.hits >= cfg.confirm_hits {
                cfg.max_misses
            } else {
                0
            };
            t.state.misses <= limit
        });
        self.retire_duplicates();
        self.hand_over();
        self.start_tracks(obs, &used, r);
    }

    /// Assigns observations to tracks on gated Mahalanobis costs (plus the class cost) and
    /// updates each track; returns which observations were used.
    fn associate(&mut self, obs: &[Observation], r: f64) -> Vec<bool> {
        // Gated Mahalanobis costs.
        let cost: Vec<Vec<f64>> = self
            .tracks
            .iter()
            .map(|t| {
                obs.iter()
                    .map(|o| {
                        let (dx, dy) = (o.x_m - t.x[0], o.y_m - t.x[1]);
                        let (s00, s01, s11) = (t.p[0][0] + r, t.p[0][1], t.p[1][1] + r);
                        let det = s00 * s11 - s01 * s01;
                        let d2 = (s11 * dx * dx - 2.0 * s01 * dx * dy + s00 * dy * dy) / det.max(1e-12);
                        if d2 < self.config.gate {
                            d2 + self.config.class_cost[t.state.class.min(3)][o.class.min(3)]
                        } else {
                            1e9
                        }
                    })
                    .collect()
            })
            .collect();
        let assignment = hungarian(&cost);
        let mut used = vec![false; obs.len()];
        for (ti, a) in assignment.iter().enumerate() {
            let t = &mut self.tracks[ti];
            match a {
                Some(j) => {
                    used[*j] = true;
                    let o = obs[*j];
                    t.correct(&o, r);
                    if o.class == 0 {
                        if let Some(yaw) = o.yaw_rad {
                            t.heading_update(yaw, &self.config);
                        }
                    }
                    t.axis = if o.class == 0 { o.yaw_rad } else { None };
                    t.state.hits += 1;
                    t.state.misses = 0;
                    t.vote(o.class, &self.config);
                    t.state.observation = Some(*j);
                }
                None => t.state.misses += 1,
            }
            t.state.x_m = t.x[0];
            t.state.y_m = t.x[1];
            t.state.vx_mps = t.x[2];
            t.state.vy_mps = t.x[3];
        }
        used
    }

    /// Starts a track on each unused observation scored at least `birth_min_score` that lies
    /// on no track updated this frame.
    fn start_tracks(&mut self, obs: &[Observation], used: &[bool], r: f64) {
        let updated: Vec<(f64, f64, usize, Option<f64>)> = self
            .tracks
            .iter()
            .filter(|t| t.state.observation.is_some())
            .map(|t| (t.x[0], t.x[1], t.state.class, t.axis))
            .collect();
        for (j, o) in obs.iter().enumerate().filter(|(j, o)| !used[*j] && o.score >= self.config.birth_min_score) {
            let axis = if o.class == 0 { o.yaw_rad } else { None };
            let on_a_track = updated
                .iter()
                .any(|(x, y, c, a)| same_object(&self.config, (*c, *a), (o.class, axis), o.x_m - x, o.y_m - y));
            if on_a_track {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let mut p = [[0.0; 4]; 4];
            p[0][0] = r;
            p[1][1] = r;
            p[2][2] = 25.0;
            p[3][3] = 25.0;
            self.tracks.push(Track {
                state: TrackState {
                    id,
                    x_m: o.x_m,
                    y_m: o.y_m,
                    vx_mps: 0.0,
                    vy_mps: 0.0,
                    class: o.class,
                    hits: 1,
                    misses: 0,
                    observation: Some(j),
                },
                x: [o.x_m, o.y_m, 0.0, 0.0],
                p,
                votes: std::array::from_fn(|c| if c == o.class.min(3) { 1.0 } else { 0.0 }),
                fast_updates: 0,
                outran_pedestrians: false,
                shadowing: 0,
                axis: if o.class == 0 { o.yaw_rad } else { None },
            });
        }
    }
}
