//! Readers for recorded data, so that a scene can be replayed from files:
//! pedestrian tracks in the ETH/UCY text format, lidar/radar measurement logs in the Udacity
//! format, and KITTI Velodyne sweeps.

use std::path::Path;

use crate::geometry::Vec2;
use crate::SimError;

/// Seconds per frame-id unit in the ETH/UCY files (ids step by 10 for 0.4 s).
pub const ETH_UCY_SECS_PER_FRAME_ID: f64 = 0.04;

/// One row of an ETH/UCY file: `frame_id agent_id x y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackRow {
    pub frame_id: i64,
    pub agent_id: i64,
    pub x_m: f64,
    pub y_m: f64,
}

fn read_text(path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|source| SimError::Io { path: path.display().to_string(), source })
}

fn parse_num(field: Option<&str>, line: usize, what: &str) -> Result<f64, SimError> {
    let f = field.ok_or_else(|| SimError::Parse { line, message: format!("missing {what}") })?;
    let v: f64 = f.parse().map_err(|_| SimError::Parse { line, message: format!("{what} is not a number: {f:?}") })?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(SimError::Parse { line, message: format!("{what} is not finite") })
    }
}

/// Parses ETH/UCY track text (whitespace-separated; blank lines ignored).
pub fn parse_tracks(text: &str) -> Result<Vec<TrackRow>, SimError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let frame = parse_num(it.next(), line_no, "frame_id")?;
        let agent = parse_num(it.next(), line_no, "agent_id")?;
        let x = parse_num(it.next(), line_no, "x")?;
        let y = parse_num(it.next(), line_no, "y")?;
        rows.push(TrackRow { frame_id: frame.round() as i64, agent_id: agent.round() as i64, x_m: x, y_m: y });
    }
    Ok(rows)
}

/// Reads an ETH/UCY track file.
pub fn read_tracks(path: &Path) -> Result<Vec<TrackRow>, SimError> {
    parse_tracks(&read_text(path)?)
}

/// One agent's recorded positions over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub agent_id: i64,
    pub t_secs: Vec<f64>,
    pub pos: Vec<Vec2>,
}

impl Track {
    pub fn start_secs(&self) -> f64 {
        self.t_secs.first().copied().unwrap_or(0.0)
    }

    pub fn end_secs(&self) -> f64 {
        self.t_secs.last().copied().unwrap_or(0.0)
    }

    /// Linearly interpolated position and the velocity of the current segment, if `t_secs`
    /// lies within the track.
    pub fn state_at(&self, t_secs: f64) -> Option<(Vec2, Vec2)> {
        let n = self.t_secs.len();
        if n == 0 || t_secs < self.start_secs() || t_secs > self.end_secs() {
            return None;
        }
        if n == 1 {
            return Some((self.pos[0], Vec2::default()));
        }
        let i = self.t_secs.partition_point(|t| *t <= t_secs).clamp(1, n - 1);
        let (t0, t1) = (self.t_secs[i - 1], self.t_secs[i]);
        let dt = (t1 - t0).max(1e-9);
        let vel = (self.pos[i] - self.pos[i - 1]).scale(1.0 / dt);
        let f = ((t_secs - t0) / dt).clamp(0.0, 1.0);
        Some((self.pos[i - 1] + (self.pos[i] - self.pos[i - 1]).scale(f), vel))
    }
}

/// Groups rows into tracks ordered by agent id, each ordered by time; `t_secs` is relative to
/// the first frame in the file.
pub fn tracks_from_rows(rows: &[TrackRow], secs_per_frame_id: f64) -> Vec<Track> {
    let first = rows.iter().map(|r| r.frame_id).min().unwrap_or(0);
    let mut by_agent: std::collections::BTreeMap<i64, Vec<&TrackRow>> = Default::default();
    for r in rows {
        by_agent.entry(r.agent_id).or_default().push(r);
    }
    by_agent
        .into_iter()
        .map(|(agent_id, mut rs)| {
            rs.sort_by_key(|r| r.frame_id);
            rs.dedup_by_key(|r| r.frame_id);
            Track {
                agent_id,
                t_secs: rs.iter().map(|r| (r.frame_id - first) as f64 * secs_per_frame_id).collect(),
                pos: rs.iter().map(|r| Vec2::new(r.x_m, r.y_m)).collect(),
            }
        })
        .collect()
}

/// Ground truth carried on every Udacity row: position, velocity, yaw and yaw rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UdacityTruth {
    pub px_m: f64,
    pub py_m: f64,
    pub vx_mps: f64,
    pub vy_mps: f64,
    pub yaw_rad: f64,
    pub yaw_rate_rps: f64,
}

/// One measurement of the Udacity lidar/radar log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UdacityRow {
    Lidar { px_m: f64, py_m: f64, timestamp_us: i64, truth: UdacityTruth },
    Radar { rho_m: f64, phi_rad: f64, rho_dot_mps: f64, timestamp_us: i64, truth: UdacityTruth },
}

impl UdacityRow {
    pub fn timestamp_us(&self) -> i64 {
        match self {
            UdacityRow::Lidar { timestamp_us, .. } | UdacityRow::Radar { timestamp_us, .. } => *timestamp_us,
        }
    }

    pub fn truth(&self) -> &UdacityTruth {
        match self {
            UdacityRow::Lidar { truth, .. } | UdacityRow::Radar { truth, .. } => truth,
        }
    }
}

/// Parses a Udacity lidar/radar log (`L px py t gt...` / `R rho phi rho_dot t gt...`).
pub fn parse_udacity(text: &str) -> Result<Vec<UdacityRow>, SimError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut it = line.split_whitespace();
        let Some(tag) = it.next() else { continue };
        let mut next = |what: &str| parse_num(it.next(), line_no, what);
        let row = match tag {
            "L" => {
                let (px, py) = (next("px")?, next("py")?);
                let ts = next("timestamp")? as i64;
                let truth = parse_udacity_truth(&mut next)?;
                UdacityRow::Lidar { px_m: px, py_m: py, timestamp_us: ts, truth }
            }
            "R" => {
                let (rho, phi, rho_dot) = (next("rho")?, next("phi")?, next("rho_dot")?);
                let ts = next("timestamp")? as i64;
                let truth = parse_udacity_truth(&mut next)?;
                UdacityRow::Radar { rho_m: rho, phi_rad: phi, rho_dot_mps: rho_dot, timestamp_us: ts, truth }
            }
            other => return Err(SimError::Parse { line: line_no, message: format!("unknown sensor tag {other:?}") }),
        };
        rows.push(row);
    }
    Ok(rows)
}

fn parse_udacity_truth(next: &mut impl FnMut(&str) -> Result<f64, SimError>) -> Result<UdacityTruth, SimError> {
    Ok(UdacityTruth {
        px_m: next("gt_px")?,
        py_m: next("gt_py")?,
        vx_mps: next("gt_vx")?,
        vy_mps: next("gt_vy")?,
        yaw_rad: next("gt_yaw").unwrap_or(0.0),
        yaw_rate_rps: next("gt_yawrate").unwrap_or(0.0),
    })
}

/// Reads a Udacity lidar/radar log file.
pub fn read_udacity(path: &Path) -> Result<Vec<UdacityRow>, SimError> {
    parse_udacity(&read_text(path)?)
}

/// Decodes a KITTI Velodyne sweep: little-endian f32, N × 4 (x, y, z, reflectance).
pub fn parse_velodyne(bytes: &[u8]) -> Result<Vec<[f32; 4]>, SimError> {
    if !bytes.len().is_multiple_of(16) {
        return Err(SimError::Parse {
            line: 0,
            message: format!("{} bytes is not a whole number of 16-byte points", bytes.len()),
        });
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|c| {
            let f = |k: usize| f32::from_le_bytes([c[4 * k], c[4 * k + 1], c[4 * k + 2], c[4 * k + 3]]);
            [f(0), f(1), f(2), f(3)]
        })
        .collect())
}

/// Reads a KITTI Velodyne `.bin` file.
pub fn read_velodyne(path: &Path) -> Result<Vec<[f32; 4]>, SimError> {
    let bytes = std::fs::read(path).map_err(|source| SimError::Io { path: path.display().to_string(), source })?;
    parse_velodyne(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracks_and_interpolates() {
        let rows = parse_tracks("0\t1\t0.0\t0.0\n10\t1\t1.0\t0.0\n10\t2\t5.0\t5.0\n\n20\t1\t2.0\t2.0\n").unwrap();
        assert_eq!(rows.len(), 4);
        let tracks = tracks_from_rows(&rows, ETH_UCY_SECS_PER_FRAME_ID);
        assert_eq!(tracks.len(), 2);
        let (p, v) = tracks[0].state_at(0.2).unwrap();
        assert!((p.x - 0.5).abs() < 1e-9 && (v.x - 2.5).abs() < 1e-9);
        assert!(tracks[0].state_at(0.81).is_none());
        assert!(parse_tracks("0 1 x 2").is_err());
    }

    #[test]
    fn parses_udacity_rows() {
        let text = "L\t3.1\t1.2\t1477010443000000\t3.0\t1.1\t5.2\t0.0\t0.0\t0.006\n\
                    R\t1.01\t0.55\t2.0\t1477010443050000\t0.86\t0.6\t5.19\t0.0\t0.01\t0.006\n";
        let rows = parse_udacity(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(matches!(rows[1], UdacityRow::Radar { rho_m, .. } if (rho_m - 1.01).abs() < 1e-12));
        assert_eq!(rows[1].timestamp_us(), 1_477_010_443_050_000);
        assert!(parse_udacity("X 1 2 3").is_err());
    }

    #[test]
    fn decodes_velodyne() {
        let mut bytes = Vec::new();
        for v in [1.0f32, -2.0, 0.5, 0.25] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(parse_velodyne(&bytes).unwrap(), vec![[1.0, -2.0, 0.5, 0.25]]);
        assert!(parse_velodyne(&bytes[..15]).is_err());
    }
}
