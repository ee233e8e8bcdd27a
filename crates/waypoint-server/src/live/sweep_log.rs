//! What perception saw at every sweep beside the truth, kept when the server is configured with
//! `log_sweeps` (to train and evaluate a model on perception's tracks: `waypoint train
//! trajectory-road --sim`), and the 8 + 12 step windows of the tracks built from it: each
//! track's history sampled as the live predictor samples it, with the future the road user it
//! lies on actually took — what the online evaluator scores a live prediction against.

use std::sync::Mutex;

use waypoint_models::trajectory::road::{RoadClass, RoadWindow, LEADER_REACH_M};
use waypoint_models::trajectory::{OBS_STEPS, PRED_STEPS, STEP_SECS};
use waypoint_sim::AgentKind;

use crate::lifecycle::online::JUMP_M;
use crate::live::predictor::{within_reach, Ego, Sample, ROAD_MAX_OTHERS};

/// One sweep: perception's confirmed tracks (fused positions, the class each is taken for and
/// the road user it lies on), every road user's true position, and the vehicle's own pose.
#[derive(Debug, Clone)]
pub struct LoggedSweep {
    pub t_secs: f64,
    pub tracks: Vec<Sample>,
    /// `(id, kind, [x, y])` of every road user.
    pub truth: Vec<(u32, AgentKind, [f32; 2])>,
    pub ego: Ego,
}

/// Most sweeps kept (about 5.5 hours of scene at 10 sweeps a second); later ones are not kept.
pub const MOST_SWEEPS: usize = 200_000;

/// The sweeps of a run, bounded by [`MOST_SWEEPS`].
#[derive(Debug, Default)]
pub struct SweepLog {
    sweeps: Mutex<Vec<LoggedSweep>>,
}

impl SweepLog {
    pub fn push(&self, sweep: LoggedSweep) {
        let mut v = self.sweeps.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < MOST_SWEEPS {
            v.push(sweep);
        }
    }

    /// Takes every sweep kept so far.
    pub fn take(&self) -> Vec<LoggedSweep> {
        std::mem::take(&mut *self.sweeps.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A track's window for the road model: what the live stack would send it, the true future,
/// and the kind of road user the track lies on (the class errors are reported by).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrackWindow {
    pub window: RoadWindow,
    pub kind: AgentKind,
}

/// The windows of the tracks taken for vehicles and cyclists (the road model's), one per track
/// per 0.4 s step: 8 positions of the track sampled as the live predictor samples them, the
/// other tracks and the vehicle itself at the last step (the nearest within the road model's
/// reach, as the live stack sends them), and the next 12 true positions of the road user the
/// track lay on at its last step. `seed` names the run in each window's trip.
pub fn track_windows(seed: u64, sweeps: &[LoggedSweep]) -> Vec<TrackWindow> {
    // The sweeps the predictor samples: the first at or after each 0.4 s step.
    let mut steps: Vec<&LoggedSweep> = Vec::new();
    let mut next = f64::NEG_INFINITY;
    for s in sweeps {
        if s.t_secs + 1e-9 >= next {
            steps.push(s);
            next = s.t_secs + STEP_SECS - 1e-6;
        }
    }
    let track_at = |i: usize, id: u32| steps[i].tracks.iter().find(|t| t.id == id);
    let truth_at = |i: usize, id: u32| steps[i].truth.iter().find(|t| t.0 == id).map(|t| t.2);
    let near = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]) <= JUMP_M;
    let regular = |i: usize| (steps[i].t_secs - steps[i - 1].t_secs - STEP_SECS).abs() < 0.06;
    let mut out = Vec::new();
    let last = steps.len().saturating_sub(PRED_STEPS);
    for (i, &step) in steps.iter().enumerate().take(last).skip(OBS_STEPS - 1) {
        if !(i + 1 - OBS_STEPS + 1..=i + PRED_STEPS).all(regular) {
            continue;
        }
        for t in &step.tracks {
            let class = match t.class {
                Some(AgentKind::Vehicle) => RoadClass::Vehicle,
                Some(AgentKind::Cyclist) => RoadClass::Cyclist,
                _ => continue,
            };
            let Some(subject) = t.subject else { continue };
            let obs: Option<Vec<[f32; 2]>> =
                (i + 1 - OBS_STEPS..=i).map(|j| track_at(j, t.id).map(|s| [s.x_m as f32, s.y_m as f32])).collect();
            let fut: Option<Vec<[f32; 2]>> = (i..=i + PRED_STEPS).map(|j| truth_at(j, subject.agent)).collect();
            let (Some(obs), Some(fut)) = (obs, fut) else { continue };
            if !obs.windows(2).all(|p| near(p[0], p[1])) || !fut.windows(2).all(|p| near(p[0], p[1])) {
                continue;
            }
            let others = step
                .tracks
                .iter()
                .filter(|o| o.id != t.id)
                .filter_map(|o| {
                    let prev = track_at(i - 1, o.id)?;
                    Some([prev.x_m as f32, prev.y_m as f32, o.x_m as f32, o.y_m as f32])
                })
                .chain(std::iter::once(step.ego.row()));
            let mut others = within_reach(obs[OBS_STEPS - 1], others, LEADER_REACH_M as f32);
            others.truncate(ROAD_MAX_OTHERS);
            out.push(TrackWindow {
                window: RoadWindow {
                    class,
                    trip: (seed, subject.agent, 0),
                    t_secs: step.t_secs,
                    others,
                    obs: std::array::from_fn(|k| obs[k]),
                    fut: std::array::from_fn(|k| fut[k + 1]),
                },
                kind: subject.kind,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::online::Subject;

    fn sweep(t: f64, track_x: f32, truth_x: f32) -> LoggedSweep {
        let subject = Some(Subject { agent: 9, kind: AgentKind::Vehicle });
        LoggedSweep {
            t_secs: t,
            tracks: vec![Sample {
                id: 3,
                x_m: f64::from(track_x),
                y_m: -2.0,
                subject,
                class: Some(AgentKind::Vehicle),
            }],
            truth: vec![(9, AgentKind::Vehicle, [truth_x, -2.0])],
            ego: Ego { x_m: 2.0, y_m: -40.0, vx_mps: 0.0, vy_mps: 5.0 },
        }
    }

    #[test]
    fn a_track_window_is_the_tracks_history_and_the_true_future_sampled_every_step() {
        // 10 sweeps a second for 8 s; the track runs 0.5 m behind the truth.
        let sweeps: Vec<LoggedSweep> = (0..80).map(|k| sweep(k as f64 * 0.1, k as f32 - 0.5, k as f32)).collect();
        let w = track_windows(5, &sweeps);
        // Steps at 0, 0.4, …, 7.6 s: 8 positions, then 12 more: one window.
        assert_eq!(w.len(), 1, "{w:?}");
        let w0 = &w[0].window;
        assert_eq!(w0.class, RoadClass::Vehicle);
        assert_eq!(w0.trip, (5, 9, 0));
        assert!((w0.t_secs - 2.8).abs() < 1e-9);
        assert_eq!(w0.obs[0], [-0.5, -2.0]);
        assert_eq!(w0.obs[OBS_STEPS - 1], [27.5, -2.0]);
        assert_eq!(w0.fut[0], [32.0, -2.0]);
        assert_eq!(w0.fut[PRED_STEPS - 1], [76.0, -2.0]);
        // The vehicle itself is among the others.
        assert_eq!(w0.others, vec![[2.0, -42.0, 2.0, -40.0]]);
        // A track taken for a pedestrian is not the road model's; a gap breaks the window.
        let mut walker = sweeps.clone();
        walker.iter_mut().for_each(|s| s.tracks[0].class = Some(AgentKind::Pedestrian));
        assert!(track_windows(5, &walker).is_empty());
        let mut gap = sweeps;
        gap.retain(|s| (s.t_secs - 1.2).abs() > 0.05);
        assert!(track_windows(5, &gap).is_empty());
    }
}
