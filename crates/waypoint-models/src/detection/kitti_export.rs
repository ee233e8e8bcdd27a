//! `export-kitti`: simulated sweeps written as a KITTI 3D-object directory
//! (`velodyne/`, `label_2/`, `calib/`), so that `waypoint eval detection --kitti` (or any KITTI
//! tool) can judge detections on the simulator by the benchmark's own rule, bird's-eye-view
//! IoU, rather than by the distance to an agent that `eval detection --sim` uses.

use std::path::PathBuf;

use nalgebra::Vector3;
use waypoint_sim::frame::{AgentTruth, LidarSweep};
use waypoint_sim::geometry::{wrap_angle, Vec2};
use waypoint_sim::sensors::LidarConfig;
use waypoint_sim::{AgentKind, Fleet, Scene, SceneConfig};

use super::{kitti, simdata};
use crate::ModelError;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The scene's seed.
    pub seed: u64,
    /// How many frames to write.
    pub frames: u32,
    /// Sweeps between two frames written (10 sweeps a second).
    pub every: u32,
    /// The simulated lidar (`eval detection --kitti` assumes KITTI's HDL-64E).
    pub lidar: LidarConfig,
    /// Vehicles parked beside the north and south arms, as `eval detection --sim --parked`.
    pub parked: usize,
    /// The vehicles' bodies.
    pub fleet: Fleet,
    /// A road user in the camera's view is labelled when it shows at least this many lidar
    /// points, and marked DontCare (its image box) when it shows fewer.
    pub min_points: usize,
    /// The directory to write (created; existing frames of the same numbers are replaced).
    pub out: PathBuf,
}

/// The camera of the exported calibration: it looks along the lidar's x axis (camera x =
/// -lidar y, camera y = -lidar z, camera z = lidar x) from 0.1 m below and 0.3 m ahead of it,
/// with a 700 px focal length, the principal point at (620, 190) and a 1242 × 375 image, about
/// KITTI's left colour camera.
pub const CALIB: &str = "P0: 700 0 620 0 0 700 190 0 0 0 1 0
P1: 700 0 620 0 0 700 190 0 0 0 1 0
P2: 700 0 620 0 0 700 190 0 0 0 1 0
P3: 700 0 620 0 0 700 190 0 0 0 1 0
R0_rect: 1 0 0 0 1 0 0 0 1
Tr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.1 1 0 0 -0.3
Tr_imu_to_velo: 1 0 0 0 0 1 0 0 0 0 1 0
";
/// [`CALIB`] for a sensor tilted on its car: `Tr_velo_to_cam` first turns the sensor's frame
/// level (`level_from_sensor`, row-major), then maps it as [`CALIB`]'s does.
fn calib_with_tilt(level_from_sensor: &[[f64; 3]; 3]) -> Result<String, ModelError> {
    let tr = kitti::parse_calib(CALIB)?.velo_to_cam;
    let level = nalgebra::Matrix3::from_fn(|i, j| level_from_sensor[i][j]);
    let mut tilted = tr;
    tilted.fixed_view_mut::<3, 3>(0, 0).copy_from(&(tr.fixed_view::<3, 3>(0, 0) * level));
    let row = |i: usize| (0..4).map(|j| format!("{:.9}", tilted[(i, j)])).collect::<Vec<_>>().join(" ");
    Ok(CALIB
        .lines()
        .map(|l| {
            if l.starts_with("Tr_velo_to_cam:") {
                format!("Tr_velo_to_cam: {} {} {}", row(0), row(1), row(2))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

/// Image height, pixels (the width is [`kitti::IMAGE_WIDTH_PX`]).
const IMAGE_HEIGHT_PX: f64 = 375.0;

/// The KITTI label line of an agent seen from the sensor, if it is in the camera's view and
/// shows a point of `sweep`: DontCare when it shows fewer than `min_points`.
fn label_line(
    a: &AgentTruth,
    sweep: &LidarSweep,
    calib: &kitti::Calib,
    mount_height_m: f64,
    min_points: usize,
) -> Option<String> {
    let b = simdata::sensor_box(a, &sweep.world_from_sensor);
    let (rel, yaw) = (Vec2::new(b.x_m, b.y_m), b.yaw_rad);
    let ground = -mount_height_m;
    // The box's eight corners: all in front of the camera, and the bottom centre inside the
    // image.
    let (s, c) = yaw.sin_cos();
    let corners: Vec<Vector3<f64>> = [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)]
        .iter()
        .flat_map(|(du, dv)| {
            let (u, v) = (du * a.length_m / 2.0, dv * a.width_m / 2.0);
            let (x, y) = (rel.x + c * u - s * v, rel.y + s * u + c * v);
            [Vector3::new(x, y, ground), Vector3::new(x, y, ground + a.height_m)]
        })
        .collect();
    if corners.iter().any(|p| calib.velo_to_rect(*p).z < 0.5) {
        return None;
    }
    let bottom_centre = Vector3::new(rel.x, rel.y, ground);
    calib.in_fov(bottom_centre)?;
    let seen = sweep
        .points
        .iter()
        .filter(|p| {
            let (dx, dy) = (f64::from(p[0]) - rel.x, f64::from(p[1]) - rel.y);
            (c * dx + s * dy).abs() < a.length_m / 2.0
                && (-s * dx + c * dy).abs() < a.width_m / 2.0
                && f64::from(p[2]) > ground + 0.2
        })
        .count();
    if seen == 0 {
        return None;
    }
    let px: Vec<(f64, f64)> = corners.iter().filter_map(|p| calib.project(*p)).collect();
    let clip = |v: f64, max: f64| v.clamp(0.0, max - 1.0);
    let left = clip(px.iter().map(|p| p.0).fold(f64::INFINITY, f64::min), kitti::IMAGE_WIDTH_PX);
    let right = clip(px.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max), kitti::IMAGE_WIDTH_PX);
    let top = clip(px.iter().map(|p| p.1).fold(f64::INFINITY, f64::min), IMAGE_HEIGHT_PX);
    let bottom = clip(px.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max), IMAGE_HEIGHT_PX);
    if seen < min_points {
        // Seen, but too little to ask for: KITTI marks such an object DontCare.
        return Some(format!(
            "DontCare -1 -1 -10 {left:.2} {top:.2} {right:.2} {bottom:.2} -1 -1 -1 -1000 -1000 -1000 -10"
        ));
    }
    // KITTI writes the bottom centre in camera coordinates and the heading as ry, the camera
    // heading being (cos ry, 0, -sin ry); alpha is ry less the bearing.
    let centre = calib.velo_to_rect(bottom_centre);
    let heading = calib.velo_to_rect(bottom_centre + Vector3::new(c, s, 0.0)) - centre;
    let ry = (-heading.z).atan2(heading.x);
    let alpha = wrap_angle(ry - centre.x.atan2(centre.z));
    let kind = match a.kind {
        AgentKind::Vehicle => "Car",
        AgentKind::Pedestrian => "Pedestrian",
        AgentKind::Cyclist => "Cyclist",
    };
    Some(format!(
        "{kind} 0.00 0 {alpha:.2} {left:.2} {top:.2} {right:.2} {bottom:.2} {:.2} {:.2} {:.2} {:.2} {:.2} {:.2} {ry:.2}",
        a.height_m, a.width_m, a.length_m, centre.x, centre.y, centre.z
    ))
}

/// The file an export leaves beside its frames: which scene they come from (`{"seed": …}`), so
/// that `eval detection --kitti` can tell simulated frames from KITTI's own and say whether
/// their seed is in-sample.
pub const EXPORT_MARKER: &str = "waypoint-export.json";

/// The seed of the simulated scene `dir` was exported from, if it is an export
/// ([`EXPORT_MARKER`]); an unreadable marker is an error, not a real KITTI directory.
pub fn exported_seed(dir: &std::path::Path) -> Result<Option<u64>, ModelError> {
    let p = dir.join(EXPORT_MARKER);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| ModelError::data_at(&p, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::Data(format!("{}: {e}", p.display())))?;
    v["seed"].as_u64().map(Some).ok_or_else(|| ModelError::Data(format!("{}: no seed", p.display())))
}

/// Writes the frames; returns the labels written per class (vehicle, pedestrian, cyclist).
pub fn export(a: &ExportOptions) -> Result<[usize; 3], ModelError> {
    if a.out.exists() && !a.out.is_dir() {
        return Err(ModelError::Data(format!("{} is not a directory", a.out.display())));
    }
    let mut cfg = SceneConfig {
        seed: a.seed,
        vehicles: 8,
        pedestrians: 8,
        cyclists: 5,
        parked: a.parked,
        fleet: a.fleet,
        ..SceneConfig::default()
    };
    cfg.sensors.lidar = a.lidar.clone();
    let mut scene = Scene::new(cfg).map_err(|e| ModelError::Data(format!("the scene: {e}")))?;
    let calib = kitti::parse_calib(CALIB)?;
    for sub in ["velodyne", "label_2", "calib"] {
        let d = a.out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| ModelError::data_at(&d, e))?;
    }
    // A tilted sensor (`LidarConfig::tilt_deg`): its points are in its own frame, and the
    // calibration written carries the tilt, so that the labels (boxes standing on the level
    // road, in a level camera's frame) move into that frame when read.
    let level_from_sensor = a.lidar.level_from_sensor();
    let calib_text = match &level_from_sensor {
        Some(m) => calib_with_tilt(m)?,
        None => CALIB.to_string(),
    };
    let marker = a.out.join(EXPORT_MARKER);
    let about = serde_json::json!({
        "seed": a.seed, "frames": a.frames, "every": a.every, "parked": a.parked, "tilt_deg": a.lidar.tilt_deg, "fleet": a.fleet,
        "vehicle_glass": a.lidar.vehicle_glass,
    });
    std::fs::write(&marker, about.to_string()).map_err(|e| ModelError::data_at(&marker, e))?;
    let mut per_class = [0usize; 3];
    let mut sweeps = 0u64;
    for frame in 0..a.frames {
        let (sweep, truth) = loop {
            let mut f = scene.tick();
            if let Some(s) = f.lidar.pop() {
                sweeps += 1;
                if (sweeps - 1).is_multiple_of(u64::from(a.every)) {
                    break (s, f.truth);
                }
            }
        };
        let id = format!("{frame:06}");
        let write = |dir: &str, ext: &str, bytes: &[u8]| {
            let p = a.out.join(dir).join(format!("{id}.{ext}"));
            std::fs::write(&p, bytes).map_err(|e| ModelError::data_at(&p, e))
        };
        let bytes: Vec<u8> = sweep.points.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        write("velodyne", "bin", &bytes)?;
        write("calib", "txt", calib_text.as_bytes())?;
        // Labels are drawn in the level frame, from the points turned level.
        let level = match level_from_sensor {
            Some(m) => LidarSweep {
                points: sweep
                    .points
                    .iter()
                    .map(|p| {
                        let v = [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])];
                        let l: [f64; 3] = std::array::from_fn(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2]);
                        [l[0] as f32, l[1] as f32, l[2] as f32, p[3]]
                    })
                    .collect(),
                ..sweep.clone()
            },
            None => sweep.clone(),
        };
        let mut labels = String::new();
        for agent in &truth.agents {
            if let Some(line) = label_line(agent, &level, &calib, a.lidar.mount_height_m, a.min_points) {
                if !line.starts_with("DontCare") {
                    per_class[simdata::class_of(agent.kind)] += 1;
                }
                labels += &line;
                labels.push('\n');
            }
        }
        write("label_2", "txt", labels.as_bytes())?;
    }
    Ok(per_class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_sim::frame::SensorPose;

    /// A car at a slant, seen from a sensor that is itself turned: its label, read back by the
    /// KITTI reader, is the car's box in the sensor frame; with few points it is DontCare.
    #[test]
    fn a_label_reads_back_as_the_agents_box() {
        let pose = SensorPose { x_m: 100.0, y_m: 50.0, z_m: 1.73, yaw_rad: 0.3 };
        // In the sensor frame the car is at (12, 3), heading 0.4 rad.
        let rel = Vec2::new(12.0, 3.0).rotate(0.3);
        let car = AgentTruth {
            id: 1,
            kind: AgentKind::Vehicle,
            x_m: 100.0 + rel.x,
            y_m: 50.0 + rel.y,
            length_m: 4.5,
            width_m: 1.8,
            height_m: 1.5,
            yaw_rad: 0.7,
            vx_mps: 0.0,
            vy_mps: 0.0,
            yaw_rate_rps: 0.0,
        };
        let sweep = |n: usize| LidarSweep {
            t_secs: 0.0,
            world_from_sensor: pose,
            points: (0..n).map(|k| [12.0 + 0.1 * k as f32, 3.0, -1.0, 0.5]).collect(),
        };
        let calib = kitti::parse_calib(CALIB).unwrap();
        let line = label_line(&car, &sweep(12), &calib, 1.73, 10).expect("in view and seen");
        let labels = kitti::parse_labels(&line, &calib).unwrap();
        assert_eq!(labels[0].kind, "Car");
        let b = labels[0].bbox.unwrap();
        let turn = (b.yaw_rad - 0.4).rem_euclid(std::f64::consts::PI);
        assert!((b.x_m - 12.0).abs() < 0.01 && (b.y_m - 3.0).abs() < 0.01, "{b:?}");
        assert!(turn.min(std::f64::consts::PI - turn) < 0.01, "{b:?}");
        assert!((b.z_m + 1.73).abs() < 0.01 && (b.length_m, b.width_m, b.height_m) == (4.5, 1.8, 1.5), "{b:?}");
        let few = label_line(&car, &sweep(5), &calib, 1.73, 10).unwrap();
        assert!(few.starts_with("DontCare "), "{few}");
        assert_eq!(label_line(&car, &sweep(0), &calib, 1.73, 10), None, "not seen");
        let behind = AgentTruth { x_m: 100.0 - rel.x, y_m: 50.0 - rel.y, ..car };
        assert_eq!(label_line(&behind, &sweep(12), &calib, 1.73, 10), None, "behind the camera");
    }
}
