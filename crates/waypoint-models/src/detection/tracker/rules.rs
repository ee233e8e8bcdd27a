//! The tracker's rules on pairs of tracks: a coasting track's hand-over to a young track beside
//! it, and the retiring of a track that shadows an older one.

use super::{same_object, TrackState, Tracker};

impl Tracker {
    /// Removes the tracks marked dead.
    pub(super) fn remove(&mut self, dead: &[bool]) {
        let mut k = 0;
        self.tracks.retain(|_| {
            k += 1;
            !dead[k - 1]
        });
    }

    /// A coasting confirmed track takes over the nearest young track updated within its class's
    /// hand-over radius: the old id continues with the young track's state.
    pub(super) fn hand_over(&mut self) {
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
    pub(super) fn retire_duplicates(&mut self) {
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
