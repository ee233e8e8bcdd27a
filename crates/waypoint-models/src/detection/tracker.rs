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

// The 4×4 filter algebra is written with index loops that mirror the matrix formulas.
#![allow(clippy::needless_range_loop)]

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

#[derive(Debug, Clone)]
struct Track {
    state: TrackState,
    x: [f64; 4],
    p: [[f64; 4]; 4],
    /// Fading count of the classes of the detections that updated it; `state.class` is the
    /// largest.
    votes: [f64; 4],
    /// Consecutive updates at more than a pedestrian's speed.
    fast_updates: u32,
    /// Whether it has kept up more than a pedestrian's speed: then it is no pedestrian, and a
    /// detection of it as one (a stopped cyclist seen end-on looks like a pedestrian) counts
    /// as a cyclist.
    outran_pedestrians: bool,
    /// Consecutive frames it has sat on an older track, close and moving alike.
    shadowing: u32,
    /// The long axis of the last vehicle box that updated it (world frame), if any.
    axis: Option<f64>,
}

impl Track {
    /// Measures the velocity across the box axis `yaw` as zero (a scalar Kalman update).
    fn heading_update(&mut self, yaw: f64, cfg: &TrackerConfig) {
        let (s, c) = yaw.sin_cos();
        let (vx, vy) = (self.x[2], self.x[3]);
        let speed = vx.hypot(vy);
        // Within 45° of the axis either way (a box's yaw is ambiguous by 180°).
        if speed < cfg.heading_min_speed_mps || (vx * c + vy * s).abs() < speed * std::f64::consts::FRAC_1_SQRT_2 {
            return;
        }
        let h = [0.0, 0.0, -s, c];
        let ph: [f64; 4] = std::array::from_fn(|i| (0..4).map(|j| self.p[i][j] * h[j]).sum());
        let innov_var = (0..4).map(|i| h[i] * ph[i]).sum::<f64>() + cfg.heading_sigma_mps.powi(2);
        let k: [f64; 4] = std::array::from_fn(|i| ph[i] / innov_var);
        let y = -(-s * vx + c * vy);
        for i in 0..4 {
            self.x[i] += k[i] * y;
        }
        let p = self.p;
        for i in 0..4 {
            for j in 0..4 {
                self.p[i][j] = p[i][j] - k[i] * ph[j];
            }
        }
    }

    fn vote(&mut self, class: usize, cfg: &TrackerConfig) {
        let fast = self.state.hits >= cfg.fast_min_hits && self.x[2].hypot(self.x[3]) > cfg.pedestrian_max_speed_mps;
        self.fast_updates = if fast { self.fast_updates + 1 } else { 0 };
        self.outran_pedestrians |= self.fast_updates >= cfg.fast_updates;
        let class = if class == 1 && self.outran_pedestrians { 2 } else { class.min(3) };
        for v in &mut self.votes {
            *v *= cfg.class_memory;
        }
        self.votes[class] += 1.0;
        self.state.class = (0..4).fold(0, |best, c| if self.votes[c] > self.votes[best] { c } else { best });
    }
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

/// Minimum-cost assignment of rows to columns (square or rectangular), O(n³).
pub fn hungarian(cost: &[Vec<f64>]) -> Vec<Option<usize>> {
    let n_rows = cost.len();
    let n_cols = cost.first().map_or(0, Vec::len);
    let n = n_rows.max(n_cols);
    if n == 0 {
        return Vec::new();
    }
    let big = 1e9;
    let c = |i: usize, j: usize| if i < n_rows && j < n_cols { cost[i][j] } else { big };
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = c(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n_rows];
    for j in 1..=n {
        if p[j] > 0 && p[j] <= n_rows && j <= n_cols && cost[p[j] - 1][j - 1] < big / 2.0 {
            out[p[j] - 1] = Some(j - 1);
        }
    }
    out
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
            let x = t.x;
            t.x = [x[0] + dt * x[2], x[1] + dt * x[3], x[2], x[3]];
            let p = t.p;
            let mut np = [[0.0; 4]; 4];
            // P = F P F^T + Q for F = [[I, dt I], [0, I]].
            for i in 0..4 {
                for j in 0..4 {
                    let f = |a: usize, b: usize| {
                        if a == b {
                            1.0
                        } else if b == a + 2 && a < 2 {
                            dt
                        } else {
                            0.0
                        }
                    };
                    let mut acc = 0.0;
                    for k in 0..4 {
                        for l in 0..4 {
                            acc += f(i, k) * p[k][l] * f(j, l);
                        }
                    }
                    np[i][j] = acc;
                }
            }
            for a in 0..2 {
                np[a][a] += q * dt.powi(4) / 4.0;
                np[a][a + 2] += q * dt.powi(3) / 2.0;
                np[a + 2][a] += q * dt.powi(3) / 2.0;
                np[a + 2][a + 2] += q * dt * dt;
            }
            t.p = np;
            t.state.observation = None;
        }
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
                    let (s00, s01, s11) = (t.p[0][0] + r, t.p[0][1], t.p[1][1] + r);
                    let det = (s00 * s11 - s01 * s01).max(1e-12);
                    let si = [[s11 / det, -s01 / det], [-s01 / det, s00 / det]];
                    let y = [o.x_m - t.x[0], o.y_m - t.x[1]];
                    let mut k = [[0.0; 2]; 4];
                    for i in 0..4 {
                        for j2 in 0..2 {
                            k[i][j2] = t.p[i][0] * si[0][j2] + t.p[i][1] * si[1][j2];
                        }
                    }
                    for i in 0..4 {
                        t.x[i] += k[i][0] * y[0] + k[i][1] * y[1];
                    }
                    let p = t.p;
                    for i in 0..4 {
                        for j2 in 0..4 {
                            t.p[i][j2] = p[i][j2] - (k[i][0] * p[0][j2] + k[i][1] * p[1][j2]);
                        }
                    }
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

    /// Removes the tracks marked dead.
    fn remove(&mut self, dead: &[bool]) {
        let mut k = 0;
        self.tracks.retain(|_| {
            k += 1;
            !dead[k - 1]
        });
    }

    /// A coasting confirmed track takes over the nearest young track updated within its class's
    /// hand-over radius: the old id continues with the young track's state.
    fn hand_over(&mut self) {
        let cfg = self.config;
        let n = self.tracks.len();
        let mut dead = vec![false; n];
        for i in 0..n {
            let old = &self.tracks[i].state;
            if old.misses == 0 || old.hits < cfg.confirm_hits || dead[i] {
                continue;
            }
            let r = cfg.handover_radius_m[old.class.min(3)];
            let young = (0..n)
                .filter(|&j| j != i && !dead[j])
                .filter(|&j| {
                    let y = &self.tracks[j].state;
                    y.observation.is_some() && y.hits < old.hits && y.hits <= cfg.handover_max_hits
                })
                .map(|j| {
                    (j, (self.tracks[j].x[0] - self.tracks[i].x[0]).hypot(self.tracks[j].x[1] - self.tracks[i].x[1]))
                })
                .filter(|(_, d)| *d < r)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((j, _)) = young {
                let y = self.tracks[j].clone();
                let t = &mut self.tracks[i];
                t.x = y.x;
                t.p = y.p;
                t.state = TrackState { id: t.state.id, hits: t.state.hits + y.state.hits, ..y.state };
                t.votes = y.votes;
                t.fast_updates = y.fast_updates;
                t.outran_pedestrians |= y.outran_pedestrians;
                dead[j] = true;
            }
        }
        self.remove(&dead);
    }

    /// Retires the younger of two confirmed tracks that sit on one object: closer than their
    /// class's duplicate radius and moving alike, at once for a young shadow, or for
    /// `duplicate_frames` frames in a row for an established track.
    fn retire_duplicates(&mut self) {
        let cfg = self.config;
        let n = self.tracks.len();
        let mut dead = vec![false; n];
        let mut shadowing = vec![false; n];
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (&self.tracks[i], &self.tracks[j]);
                if dead[i] || dead[j] || a.state.hits < cfg.confirm_hits || b.state.hits < cfg.confirm_hits {
                    continue;
                }
                let close = same_object(
                    &cfg,
                    (a.state.class, a.axis),
                    (b.state.class, b.axis),
                    a.x[0] - b.x[0],
                    a.x[1] - b.x[1],
                );
                let alike = (a.x[2] - b.x[2]).hypot(a.x[3] - b.x[3]) < cfg.duplicate_speed_mps;
                if close && alike {
                    // The older track (more hits, then the lower id) keeps the object.
                    let younger = if (a.state.hits, b.state.id) >= (b.state.hits, a.state.id) { j } else { i };
                    let y = &self.tracks[younger];
                    shadowing[younger] = true;
                    if y.state.hits <= cfg.handover_max_hits || y.shadowing + 1 >= cfg.duplicate_frames {
                        dead[younger] = true;
                    }
                }
            }
        }
        for (t, s) in self.tracks.iter_mut().zip(&shadowing) {
            t.shadowing = if *s { t.shadowing + 1 } else { 0 };
        }
        self.remove(&dead);
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::FRAC_PI_2;

    use super::*;

    #[test]
    fn hungarian_finds_the_optimum() {
        let cost = vec![vec![4.0, 1.0, 3.0], vec![2.0, 0.0, 5.0], vec![3.0, 2.0, 2.0]];
        // Optimum: 0->1 (1), 1->0 (2), 2->2 (2) = 5.
        assert_eq!(hungarian(&cost), vec![Some(1), Some(0), Some(2)]);
        let rect = vec![vec![1.0, 9.0, 9.0], vec![9.0, 9.0, 1.0]];
        assert_eq!(hungarian(&rect), vec![Some(0), Some(2)]);
        assert_eq!(hungarian(&[vec![1e9]]), vec![None]);
    }

    #[test]
    fn a_second_piece_of_a_tracked_car_starts_no_track() {
        let mut t = Tracker::new(TrackerConfig::default());
        for k in 0..10 {
            let x = 10.0 + k as f64;
            let mut obs = vec![Observation { x_m: x, y_m: 0.0, class: 0, yaw_rad: None, score: 1.0 }];
            if k >= 5 {
                // From frame 5 the car is seen in two pieces 2 m apart.
                obs.push(Observation { x_m: x + 2.0, y_m: 0.3, class: 0, yaw_rad: None, score: 1.0 });
            }
            // A pedestrian walking 2 m beside the car keeps a track of its own.
            obs.push(Observation { x_m: x, y_m: 2.0, class: 1, yaw_rad: None, score: 1.0 });
            t.step(1.0, &obs);
        }
        let tracks = t.tracks();
        assert_eq!(tracks.iter().filter(|s| s.class == 0).count(), 1, "{tracks:?}");
        assert_eq!(tracks.iter().filter(|s| s.class == 1).count(), 1, "{tracks:?}");
    }

    #[test]
    fn cars_parked_side_by_side_keep_a_track_each_and_a_piece_along_a_car_starts_none() {
        // A row of three cars parked square to the road (boxes along y), 2.7 m apart along x,
        // seen for 3 s; the middle one is first seen a second later.
        let car = |x: f64| Observation { x_m: x, y_m: 8.0, class: 0, yaw_rad: Some(FRAC_PI_2), score: 1.0 };
        let mut t = Tracker::new(TrackerConfig::default());
        for k in 0..30 {
            let mut obs = vec![car(0.0), car(5.4)];
            if k >= 10 {
                obs.push(car(2.7));
            }
            t.step(0.1, &obs);
        }
        let tracks = t.tracks();
        assert_eq!(tracks.len(), 3, "{tracks:?}");
        let mut xs: Vec<f64> = tracks.iter().map(|s| s.x_m).collect();
        xs.sort_by(f64::total_cmp);
        for (x, want) in xs.iter().zip([0.0, 2.7, 5.4]) {
            assert!((x - want).abs() < 0.3, "{xs:?}");
        }
        // The same offset along a car's box is a piece of it: no second track, even when the
        // piece's own box is turned across.
        let mut t = Tracker::new(TrackerConfig::default());
        for k in 0..30 {
            let mut obs = vec![Observation { x_m: 0.0, y_m: 8.0, class: 0, yaw_rad: Some(0.0), score: 1.0 }];
            if k >= 10 {
                obs.push(Observation { x_m: 2.7, y_m: 8.0, class: 0, yaw_rad: Some(FRAC_PI_2), score: 1.0 });
            }
            t.step(0.1, &obs);
        }
        assert_eq!(t.tracks().len(), 1, "{:?}", t.tracks());
    }

    #[test]
    fn a_younger_track_on_the_same_object_is_retired() {
        let mut t = Tracker::new(TrackerConfig::default());
        // Two detections 6 m apart moving alike, then, from frame 5, 0.5 m apart: one object
        // seen twice (a vehicle and its own reflection, a split cluster).
        let mut first_id = None;
        for k in 0..20 {
            let x = 10.0 + k as f64;
            let gap = if k < 5 { 6.0 } else { 0.5 };
            t.step(
                1.0,
                &[
                    Observation { x_m: x, y_m: 0.0, class: 0, yaw_rad: None, score: 1.0 },
                    Observation { x_m: x + gap, y_m: 0.2, class: 0, yaw_rad: None, score: 1.0 },
                ],
            );
            if k == 4 {
                assert_eq!(t.tracks().len(), 2);
                first_id = t.tracks().iter().map(|s| s.id).min();
            }
        }
        let tracks = t.tracks();
        assert_eq!(tracks.len(), 1, "{tracks:?}");
        assert_eq!(Some(tracks[0].id), first_id, "the older track keeps the object");
    }

    /// Two walkers on one line, 12 m apart, walking at each other at 1.3 m/s; while they are
    /// closer than 0.7 m the lidar sees one cluster between them. Returns the ids of the tracks
    /// on the first walker (starting at x = -6 m, walking towards +x) and on the second, 0.6 s
    /// before and 1.5 s after they pass (they meet at 4.6 s).
    fn walkers_passing(config: TrackerConfig) -> ([u32; 2], [Option<u32>; 2]) {
        let mut t = Tracker::new(config);
        let ped = |x: f64| Observation { x_m: x, y_m: 5.5, class: 1, yaw_rad: None, score: 1.0 };
        let at = |k: usize| (-6.0 + 0.13 * k as f64, 6.0 - 0.13 * k as f64);
        let id_near = |t: &Tracker, x: f64| t.tracks().iter().find(|s| (s.x_m - x).abs() < 0.5).map(|s| s.id);
        let mut before = [0; 2];
        for k in 0..62 {
            let (a, b) = at(k);
            let obs = if (a - b).abs() < 0.7 { vec![ped(0.5 * (a + b))] } else { vec![ped(a), ped(b)] };
            t.step(0.1, &obs);
            if k == 40 {
                before = [id_near(&t, a).unwrap(), id_near(&t, b).unwrap()];
            }
        }
        let (a, b) = at(61);
        (before, [id_near(&t, a), id_near(&t, b)])
    }

    #[test]
    fn walkers_passing_each_other_keep_their_ids() {
        let (before, after) = walkers_passing(TrackerConfig::default());
        assert_eq!(after, before.map(Some));
        // Retiring an established track at the first frame it sits close to another and
        // moves alike loses one walker's id when the merged cluster drags the velocities
        // together.
        let eager = TrackerConfig { duplicate_frames: 1, handover_max_hits: 1000, ..TrackerConfig::default() };
        let (before, after) = walkers_passing(eager);
        assert_ne!(after, before.map(Some), "{before:?} {after:?}");
    }

    #[test]
    fn only_a_confident_detection_starts_a_track_and_any_keeps_one() {
        let mut t = Tracker::new(TrackerConfig::default());
        let obs = |x: f64, y: f64, score: f32| Observation { x_m: x, y_m: y, class: 1, yaw_rad: None, score };
        // A walker seen at 0.95, then at 0.6 (partly hidden); a stray cluster at 0.6 all along.
        for k in 0..20 {
            let walker = obs(0.13 * k as f64, 0.0, if k < 5 { 0.95 } else { 0.6 });
            t.step(0.1, &[walker, obs(5.0, 8.0, 0.6)]);
        }
        let tracks = t.tracks();
        assert_eq!(tracks.len(), 1, "{tracks:?}");
        assert_eq!((tracks[0].hits, tracks[0].misses), (20, 0), "{tracks:?}");
        // With every detection allowed to start a track, the stray cluster has one too.
        let mut t = Tracker::new(TrackerConfig { birth_min_score: 0.0, ..TrackerConfig::default() });
        for _ in 0..3 {
            t.step(0.1, &[obs(5.0, 8.0, 0.6)]);
        }
        assert_eq!(t.tracks().len(), 1);
    }

    #[test]
    fn an_established_track_coasts_through_a_long_occlusion() {
        let run = |config: TrackerConfig| {
            let mut t = Tracker::new(config);
            let ped = |k: usize| Observation { x_m: 0.13 * k as f64, y_m: 5.5, class: 1, yaw_rad: None, score: 1.0 };
            for k in 0..60 {
                t.step(0.1, &[ped(k)]);
            }
            let id = t.tracks()[0].id;
            // Hidden for 1.5 s (behind a parked van), then seen again where it walked to.
            for _ in 60..75 {
                t.step(0.1, &[]);
            }
            for k in 75..80 {
                t.step(0.1, &[ped(k)]);
            }
            (id, t.tracks().iter().map(|s| s.id).collect::<Vec<_>>())
        };
        let (id, ids) = run(TrackerConfig::default());
        assert_eq!(ids, vec![id]);
        // A track with 10 misses' grace dies behind the van; the walker comes back under a new id.
        let (id, ids) = run(TrackerConfig {
            established_max_misses: TrackerConfig::default().max_misses,
            ..TrackerConfig::default()
        });
        assert_eq!(ids.len(), 1);
        assert_ne!(ids[0], id);
    }

    #[test]
    fn a_coasting_track_hands_its_id_to_the_young_track_beside_it() {
        let tracked = |config: TrackerConfig| {
            let mut t = Tracker::new(config);
            let ped = |x: f64, y: f64| Observation { x_m: x, y_m: y, class: 1, yaw_rad: None, score: 1.0 };
            for _ in 0..5 {
                t.step(0.1, &[ped(0.0, 0.0)]);
            }
            let id = t.tracks()[0].id;
            // A stray detection takes the track while the pedestrian, 1.2 m off, starts a
            // young track; then only the pedestrian is seen and the old track misses.
            t.step(0.1, &[ped(0.0, -0.3), ped(0.0, 1.2)]);
            t.step(0.1, &[ped(0.0, 1.2)]);
            (id, t.tracks())
        };
        let (id, tracks) = tracked(TrackerConfig::default());
        assert_eq!(tracks.len(), 1, "{tracks:?}");
        assert_eq!(tracks[0].id, id, "the old id continues on the pedestrian");
        assert!((tracks[0].y_m - 1.2).abs() < 0.2, "{tracks:?}");
        // Without the hand-over the pedestrian goes on under a new id beside the old track.
        let (id, tracks) = tracked(TrackerConfig { handover_radius_m: [0.0; 4], ..TrackerConfig::default() });
        assert_eq!(tracks.len(), 2, "{tracks:?}");
        assert!(tracks.iter().any(|t| t.id != id && (t.y_m - 1.2).abs() < 0.2), "{tracks:?}");
    }

    #[test]
    fn a_vehicle_track_turns_with_its_box() {
        // A car at 7 m/s drives 10 m east, a quarter circle of radius 12 m, then north; its
        // detections carry the box's yaw (the direction of travel).
        let (speed, radius, dt) = (7.0, 12.0, 0.1);
        let arc = radius * std::f64::consts::FRAC_PI_2;
        let pose = |s: f64| {
            if s < 10.0 {
                (s, 0.0, 0.0)
            } else if s < 10.0 + arc {
                let a = (s - 10.0) / radius;
                (10.0 + radius * a.sin(), radius * (1.0 - a.cos()), a)
            } else {
                (10.0 + radius, radius + s - 10.0 - arc, std::f64::consts::FRAC_PI_2)
            }
        };
        let run = |config: TrackerConfig| {
            let mut t = Tracker::new(config);
            let mut errors = Vec::new();
            for k in 0..60 {
                let s = speed * dt * k as f64;
                let (x, y, yaw) = pose(s);
                t.step(dt, &[Observation { x_m: x, y_m: y, class: 0, yaw_rad: Some(yaw), score: 1.0 }]);
                if k >= 20 {
                    // Where the track expects the car a sweep later, against where it will be.
                    let car = t.tracks()[0];
                    let (nx, ny, _) = pose(s + speed * dt);
                    errors.push((car.x_m + dt * car.vx_mps - nx).hypot(car.y_m + dt * car.vy_mps - ny));
                }
            }
            errors.iter().sum::<f64>() / errors.len() as f64
        };
        let with_heading = run(TrackerConfig::default());
        let without = run(TrackerConfig { heading_sigma_mps: f64::INFINITY, ..TrackerConfig::default() });
        assert!(
            with_heading < 0.5 * without,
            "mean prediction error {with_heading:.2} m with the box's yaw, {without:.2} m without"
        );
    }

    #[test]
    fn a_track_prefers_a_detection_of_its_own_class() {
        let mut t = Tracker::new(TrackerConfig::default());
        let obs = |x: f64, y: f64, class: usize| Observation { x_m: x, y_m: y, class, yaw_rad: None, score: 1.0 };
        for k in 0..10 {
            t.step(0.1, &[obs(10.0 + 0.5 * k as f64, 0.0, 0)]);
        }
        let car = t.tracks()[0].id;
        // The car is missed once and taken for a pedestrian once: its track stays a vehicle.
        t.step(0.1, &[obs(15.0, 0.0, 1)]);
        assert_eq!(t.tracks()[0].class, 0, "{:?}", t.tracks());
        // A pedestrian steps out 0.6 m ahead of where the car is expected, the car's own
        // detection lies 1.0 m behind it: the car's track takes the vehicle detection.
        t.step(0.1, &[obs(16.1, 0.0, 1), obs(14.5, 0.0, 0)]);
        let tracks = t.tracks();
        let car_track = tracks.iter().find(|s| s.id == car).unwrap();
        assert_eq!(car_track.observation, Some(1), "{tracks:?}");
        assert_eq!(car_track.class, 0);
    }

    #[test]
    fn a_cyclist_that_stops_stays_a_cyclist() {
        let run = |config: TrackerConfig| {
            let mut t = Tracker::new(config);
            let obs = |x: f64, y: f64, class: usize| Observation { x_m: x, y_m: y, class, yaw_rad: None, score: 1.0 };
            // A cyclist rides at 5 m/s for 3 s, then waits at a crossing seen end-on, where
            // every sweep takes it for a pedestrian; a pedestrian walks at 1.5 m/s beside it.
            for k in 0..80 {
                let x = 5.0 * 0.1 * (k.min(30) as f64);
                t.step(0.1, &[obs(x, 0.0, if k < 30 { 2 } else { 1 }), obs(0.15 * k as f64, 8.0, 1)]);
            }
            let tracks = t.tracks();
            let class_at = |y: f64| tracks.iter().find(|s| (s.y_m - y).abs() < 1.0).map(|s| s.class);
            (class_at(0.0), class_at(8.0))
        };
        assert_eq!(run(TrackerConfig::default()), (Some(2), Some(1)));
        // Without the speed rule the waiting cyclist becomes a pedestrian.
        assert_eq!(
            run(TrackerConfig { pedestrian_max_speed_mps: f64::INFINITY, ..TrackerConfig::default() }),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn keeps_ids_through_a_one_frame_miss() {
        let mut t = Tracker::new(TrackerConfig::default());
        let frame = |k: usize| {
            vec![
                Observation { x_m: 10.0 + k as f64, y_m: 0.0, class: 0, yaw_rad: None, score: 1.0 },
                Observation { x_m: -5.0, y_m: 3.0 + 0.1 * k as f64, class: 1, yaw_rad: None, score: 1.0 },
            ]
        };
        for k in 0..5 {
            t.step(0.1 * 10.0, &frame(k));
        }
        let ids: Vec<u32> = t.tracks().iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), 2);
        // Frame 5: the first object is not seen.
        t.step(1.0, &frame(5)[1..]);
        for k in 6..9 {
            t.step(1.0, &frame(k));
        }
        let after: Vec<u32> = t.tracks().iter().map(|s| s.id).collect();
        assert_eq!(after, ids, "ids must survive a one-frame miss");
        let car = t.tracks().into_iter().find(|s| s.class == 0).unwrap();
        assert!((car.vx_mps - 1.0).abs() < 0.2, "{car:?}");
    }
}
