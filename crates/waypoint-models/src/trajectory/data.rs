//! Trajectory data: ETH/UCY files to the Social-GAN evaluation windows, and the agent-centric
//! frame the learned model works in.

use std::path::{Path, PathBuf};

use waypoint_sim::replay::{read_tracks, TrackRow};

use super::{OBS_STEPS, PRED_STEPS};
use crate::ModelError;

/// Frames per window (observed + predicted).
pub const WINDOW: usize = OBS_STEPS + PRED_STEPS;

/// One agent over one 20-frame window, metres in the file's frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub obs: [[f32; 2]; OBS_STEPS],
    pub fut: [[f32; 2]; PRED_STEPS],
}

/// A window with the other agents around at its last observed frame: each neighbour's position
/// one step before and at that frame, `[x_prev, y_prev, x_last, y_last]`, metres in the file's
/// frame (agents present in both frames only).
#[derive(Debug, Clone, PartialEq)]
pub struct SocialWindow {
    pub window: Window,
    pub neighbours: Vec<[f32; 4]>,
}

/// Social-GAN windows of one file: every run of 20 consecutive frames (step 1), every agent
/// present in all 20.
pub fn windows(rows: &[TrackRow]) -> Vec<Window> {
    social_windows(rows).into_iter().map(|s| s.window).collect()
}

/// [`windows`] with each window's neighbours.
pub fn social_windows(rows: &[TrackRow]) -> Vec<SocialWindow> {
    let mut frames: Vec<i64> = rows.iter().map(|r| r.frame_id).collect();
    frames.sort_unstable();
    frames.dedup();
    let index = |f: i64| frames.binary_search(&f).ok();
    // positions[frame index] = list of (agent, x, y), in file order.
    let mut by_frame: Vec<Vec<(i64, f32, f32)>> = vec![Vec::new(); frames.len()];
    for r in rows {
        if let Some(i) = index(r.frame_id) {
            by_frame[i].push((r.agent_id, r.x_m as f32, r.y_m as f32));
        }
    }
    let mut out = Vec::new();
    if frames.len() < WINDOW {
        return out;
    }
    for start in 0..=frames.len() - WINDOW {
        let mut agents: Vec<i64> = by_frame[start].iter().map(|a| a.0).collect();
        agents.sort_unstable();
        agents.dedup();
        'agent: for a in agents {
            let mut pts = [[0f32; 2]; WINDOW];
            for (k, p) in pts.iter_mut().enumerate() {
                match by_frame[start + k].iter().find(|x| x.0 == a) {
                    Some(&(_, x, y)) => *p = [x, y],
                    None => continue 'agent,
                }
            }
            let mut w = Window { obs: [[0.0; 2]; OBS_STEPS], fut: [[0.0; 2]; PRED_STEPS] };
            w.obs.copy_from_slice(&pts[..OBS_STEPS]);
            w.fut.copy_from_slice(&pts[OBS_STEPS..]);
            let (prev, last) = (&by_frame[start + OBS_STEPS - 2], &by_frame[start + OBS_STEPS - 1]);
            let neighbours = last
                .iter()
                .filter(|n| n.0 != a)
                .filter_map(|&(id, x, y)| prev.iter().find(|p| p.0 == id).map(|p| [p.1, p.2, x, y]))
                .collect();
            out.push(SocialWindow { window: w, neighbours });
        }
    }
    out
}

/// Track files (`*.txt`) directly in a directory, sorted by name.
pub fn track_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::Load(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Windows of a file.
pub fn file_windows(path: &Path) -> Result<Vec<Window>, ModelError> {
    Ok(file_social_windows(path)?.into_iter().map(|s| s.window).collect())
}

/// Windows of a file with their neighbours.
pub fn file_social_windows(path: &Path) -> Result<Vec<SocialWindow>, ModelError> {
    let rows = read_tracks(path).map_err(|e| ModelError::Load(e.to_string()))?;
    Ok(social_windows(&rows))
}

/// The agent-centric frame of an observation: origin at the last position, x along the
/// recent heading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentFrame {
    pub origin: [f32; 2],
    pub cos: f32,
    pub sin: f32,
}

impl AgentFrame {
    /// Heading from the last step, or from the last four steps when the agent barely moved,
    /// or none (identity rotation) when it stood still.
    pub fn of(obs: &[[f32; 2]; OBS_STEPS]) -> Self {
        let last = obs[OBS_STEPS - 1];
        let d1 = [last[0] - obs[OBS_STEPS - 2][0], last[1] - obs[OBS_STEPS - 2][1]];
        let d4 = [last[0] - obs[OBS_STEPS - 5][0], last[1] - obs[OBS_STEPS - 5][1]];
        let (dx, dy) = if d1[0].hypot(d1[1]) > 0.02 {
            (d1[0], d1[1])
        } else if d4[0].hypot(d4[1]) > 0.05 {
            (d4[0], d4[1])
        } else {
            (1.0, 0.0)
        };
        let n = dx.hypot(dy);
        Self { origin: last, cos: dx / n, sin: dy / n }
    }

    pub fn to_local(&self, p: [f32; 2]) -> [f32; 2] {
        let (x, y) = (p[0] - self.origin[0], p[1] - self.origin[1]);
        [self.cos * x + self.sin * y, -self.sin * x + self.cos * y]
    }

    pub fn to_world(&self, p: [f32; 2]) -> [f32; 2] {
        [self.origin[0] + self.cos * p[0] - self.sin * p[1], self.origin[1] + self.sin * p[0] + self.cos * p[1]]
    }

    /// Rotates a vector (no translation) back to the world frame.
    pub fn vec_to_world(&self, v: [f32; 2]) -> [f32; 2] {
        [self.cos * v[0] - self.sin * v[1], self.sin * v[0] + self.cos * v[1]]
    }
}

/// Average and final displacement error of predictions against truth, metres.
pub fn ade_fde(pred: &[[f32; 2]; PRED_STEPS], truth: &[[f32; 2]; PRED_STEPS]) -> (f64, f64) {
    let d: Vec<f64> = pred.iter().zip(truth).map(|(p, t)| f64::from((p[0] - t[0]).hypot(p[1] - t[1]))).collect();
    (d.iter().sum::<f64>() / PRED_STEPS as f64, d[PRED_STEPS - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(f: i64, a: i64, x: f64, y: f64) -> TrackRow {
        TrackRow { frame_id: f, agent_id: a, x_m: x, y_m: y }
    }

    #[test]
    fn windows_need_the_agent_in_all_twenty_frames() {
        // Agent 1 in frames 0..=21 (22 frames: 3 windows); agent 2 misses frame 5.
        let mut rows = Vec::new();
        for f in 0..22 {
            rows.push(row(f * 10, 1, f as f64, 0.0));
            if f != 5 {
                rows.push(row(f * 10, 2, 0.0, f as f64));
            }
        }
        let w = windows(&rows);
        // Agent 2 only has windows starting at frame 6 or later: none fit in 22 frames... except
        // start 6 needs frames 6..=25, which do not exist.
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].obs[0], [0.0, 0.0]);
        assert_eq!(w[2].fut[11], [21.0, 0.0]);
    }

    #[test]
    fn agent_frame_round_trips() {
        let obs: [[f32; 2]; 8] = std::array::from_fn(|i| [1.0 + i as f32 * 0.3, 2.0 + i as f32 * 0.4]);
        let f = AgentFrame::of(&obs);
        let local = f.to_local([5.0, 7.0]);
        let back = f.to_world(local);
        assert!((back[0] - 5.0).abs() < 1e-5 && (back[1] - 7.0).abs() < 1e-5);
        // The last step points along +x in the agent frame.
        let prev = f.to_local(obs[6]);
        assert!(prev[0] < 0.0 && prev[1].abs() < 1e-5);
    }

    #[test]
    fn ade_fde_of_a_known_offset() {
        let truth = [[0.0f32; 2]; 12];
        let mut pred = [[0.0f32; 2]; 12];
        for (k, p) in pred.iter_mut().enumerate() {
            *p = [3.0 * (k + 1) as f32 / 12.0, 4.0 * (k + 1) as f32 / 12.0];
        }
        let (ade, fde) = ade_fde(&pred, &truth);
        // Distances 5k/12 for k = 1..=12: mean 5 * 6.5 / 12.
        assert!((ade - 5.0 * 6.5 / 12.0).abs() < 1e-6 && (fde - 5.0).abs() < 1e-6);
    }
}
