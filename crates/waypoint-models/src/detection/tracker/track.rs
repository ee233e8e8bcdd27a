//! One track: its constant-velocity Kalman filter in the world frame, its velocity held along a
//! vehicle's box axis, and its fading vote of the classes it was seen as.

// The 4×4 filter algebra is written with index loops that mirror the matrix formulas.
#![allow(clippy::needless_range_loop)]

use super::{Observation, TrackState, TrackerConfig};

#[derive(Debug, Clone)]
pub(super) struct Track {
    pub(super) state: TrackState,
    pub(super) x: [f64; 4],
    pub(super) p: [[f64; 4]; 4],
    /// Fading count of the classes of the detections that updated it; `state.class` is the
    /// largest.
    pub(super) votes: [f64; 4],
    /// Consecutive updates at more than a pedestrian's speed.
    pub(super) fast_updates: u32,
    /// Whether it has kept up more than a pedestrian's speed: then it is no pedestrian, and a
    /// detection of it as one (a stopped cyclist seen end-on looks like a pedestrian) counts
    /// as a cyclist.
    pub(super) outran_pedestrians: bool,
    /// Consecutive frames it has sat on an older track, close and moving alike.
    pub(super) shadowing: u32,
    /// The long axis of the last vehicle box that updated it (world frame), if any.
    pub(super) axis: Option<f64>,
}

impl Track {
    /// Measures the velocity across the box axis `yaw` as zero (a scalar Kalman update).
    pub(super) fn heading_update(&mut self, yaw: f64, cfg: &TrackerConfig) {
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

    pub(super) fn vote(&mut self, class: usize, cfg: &TrackerConfig) {
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

    /// The constant-velocity prediction over `dt` seconds with white acceleration noise of
    /// variance `q`: x = F x, P = F P F^T + Q.
    pub(super) fn predict(&mut self, dt: f64, q: f64) {
        let x = self.x;
        self.x = [x[0] + dt * x[2], x[1] + dt * x[3], x[2], x[3]];
        let p = self.p;
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
        self.p = np;
    }

    /// The Kalman update with a position measurement `o` of variance `r` per axis.
    pub(super) fn correct(&mut self, o: &Observation, r: f64) {
        let (s00, s01, s11) = (self.p[0][0] + r, self.p[0][1], self.p[1][1] + r);
        let det = (s00 * s11 - s01 * s01).max(1e-12);
        let si = [[s11 / det, -s01 / det], [-s01 / det, s00 / det]];
        let y = [o.x_m - self.x[0], o.y_m - self.x[1]];
        let mut k = [[0.0; 2]; 4];
        for i in 0..4 {
            for j2 in 0..2 {
                k[i][j2] = self.p[i][0] * si[0][j2] + self.p[i][1] * si[1][j2];
            }
        }
        for i in 0..4 {
            self.x[i] += k[i][0] * y[0] + k[i][1] * y[1];
        }
        let p = self.p;
        for i in 0..4 {
            for j2 in 0..4 {
                self.p[i][j2] = p[i][j2] - (k[i][0] * p[0][j2] + k[i][1] * p[1][j2]);
            }
        }
    }
}
