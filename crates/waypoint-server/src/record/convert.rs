//! What each stream item becomes in a recording and on the Foxglove bridge: Foxglove's
//! well-known schemas where one fits (point clouds, scene entities, location fixes, logs), and
//! Waypoint's own JSON messages (schemas in `docs/schemas/`) for the rest.

use foxglove::messages::{
    line_primitive, packed_element_field::NumericType, scene_entity_deletion, Color, CubePrimitive, CylinderPrimitive,
    LinePrimitive, LocationFix, PackedElementField, Point3, PointCloud, Pose, Quaternion, SceneEntity,
    SceneEntityDeletion, SceneUpdate, TextPrimitive, Timestamp, Vector3,
};
use waypoint_protocol::{PredictionsMsg, TracksMsg};
use waypoint_sim::frame::{AgentTruth, GpsFix, LidarSweep, SensorPose};
use waypoint_sim::AgentKind;

/// The frame every position is in (metres, x east, y north, z up).
pub const WORLD: &str = "world";

/// Where the scene's origin lies on Earth, for `LocationFix` (an arbitrary fixed point; the
/// scene is a few hundred metres across, so a flat-Earth projection is exact to millimetres).
pub const ORIGIN_LAT_LON: (f64, f64) = (48.137, 11.575);
const EARTH_RADIUS_M: f64 = 6_378_137.0;

/// Bytes per lidar point in a recorded `PointCloud`: x, y, z, intensity as little-endian f32.
pub const POINT_STRIDE: u32 = 16;

/// Nanoseconds since the Unix epoch as a Foxglove timestamp.
pub fn timestamp(ns: u64) -> Timestamp {
    Timestamp::new((ns / 1_000_000_000) as u32, (ns % 1_000_000_000) as u32)
}

fn quat_yaw(yaw: f64) -> Quaternion {
    Quaternion { x: 0.0, y: 0.0, z: (yaw / 2.0).sin(), w: (yaw / 2.0).cos() }
}

/// Yaw of a quaternion (rotation about z; roll and pitch ignored).
pub fn yaw_of(q: &Quaternion) -> f64 {
    let siny = 2.0 * (q.w * q.z + q.x * q.y);
    let cosy = 1.0 - 2.0 * (q.y * q.y + q.z * q.z);
    siny.atan2(cosy)
}

fn pose(x: f64, y: f64, z: f64, yaw: f64) -> Pose {
    Pose { position: Some(Vector3 { x, y, z }), orientation: Some(quat_yaw(yaw)) }
}

fn rgba(r: f64, g: f64, b: f64, a: f64) -> Option<Color> {
    Some(Color { r, g, b, a })
}

/// Colour of a road user by kind (the dashboard's palette).
fn kind_color(kind: AgentKind, a: f64) -> Option<Color> {
    match kind {
        AgentKind::Vehicle => rgba(0.36, 0.62, 0.98, a),
        AgentKind::Pedestrian => rgba(0.98, 0.75, 0.25, a),
        AgentKind::Cyclist => rgba(0.55, 0.85, 0.45, a),
    }
}

fn class_kind(class: &str) -> AgentKind {
    match class {
        "pedestrian" => AgentKind::Pedestrian,
        "cyclist" => AgentKind::Cyclist,
        _ => AgentKind::Vehicle,
    }
}

/// One lidar sweep as a point cloud in the world frame (the cloud's pose is the sensor's).
pub fn point_cloud(sweep: &LidarSweep, ns: u64) -> PointCloud {
    let mut data = Vec::with_capacity(sweep.points.len() * POINT_STRIDE as usize);
    for p in &sweep.points {
        for v in p {
            data.extend_from_slice(&v.to_le_bytes());
        }
    }
    let field =
        |name: &str, offset: u32| PackedElementField { name: name.into(), offset, r#type: NumericType::Float32 as i32 };
    let s = &sweep.world_from_sensor;
    PointCloud {
        timestamp: Some(timestamp(ns)),
        frame_id: WORLD.into(),
        pose: Some(pose(s.x_m, s.y_m, s.z_m, s.yaw_rad)),
        point_stride: POINT_STRIDE,
        fields: vec![field("x", 0), field("y", 4), field("z", 8), field("intensity", 12)],
        data: data.into(),
    }
}

/// Why a point cloud cannot be read as a lidar sweep.
#[derive(Debug, thiserror::Error)]
#[error("point cloud: {0}")]
pub struct CloudError(String);

/// A point cloud (Waypoint's or anyone's, with float32 or float64 `x`, `y`, `z` and optionally
/// `intensity`) as a sweep: points in the sensor frame, the sensor's pose from the cloud's pose.
/// Points whose coordinates are not finite are dropped; a missing intensity reads as 0.
pub fn sweep_from_cloud(cloud: &PointCloud, t_secs: f64) -> Result<LidarSweep, CloudError> {
    let stride = cloud.point_stride as usize;
    if stride == 0 {
        return Err(CloudError("point_stride is 0".into()));
    }
    let find = |name: &str| cloud.fields.iter().find(|f| f.name == name);
    let reader = |f: &PackedElementField| -> Result<(usize, bool), CloudError> {
        let wide = match NumericType::try_from(f.r#type) {
            Ok(NumericType::Float32) => false,
            Ok(NumericType::Float64) => true,
            _ => return Err(CloudError(format!("field {:?} is not float32 or float64", f.name))),
        };
        let end = f.offset as usize + if wide { 8 } else { 4 };
        if end > stride {
            return Err(CloudError(format!("field {:?} lies beyond the point stride", f.name)));
        }
        Ok((f.offset as usize, wide))
    };
    let mut cols = Vec::new();
    for name in ["x", "y", "z"] {
        let f = find(name).ok_or_else(|| CloudError(format!("no {name:?} field")))?;
        cols.push(reader(f)?);
    }
    let intensity = find("intensity").map(reader).transpose()?;
    let read = |chunk: &[u8], (off, wide): (usize, bool)| -> f32 {
        if wide {
            let mut b = [0u8; 8];
            b.copy_from_slice(&chunk[off..off + 8]);
            f64::from_le_bytes(b) as f32
        } else {
            let mut b = [0u8; 4];
            b.copy_from_slice(&chunk[off..off + 4]);
            f32::from_le_bytes(b)
        }
    };
    let mut points = Vec::with_capacity(cloud.data.len() / stride);
    for chunk in cloud.data.chunks_exact(stride) {
        let p = [
            read(chunk, cols[0]),
            read(chunk, cols[1]),
            read(chunk, cols[2]),
            intensity.map_or(0.0, |c| read(chunk, c)),
        ];
        if p.iter().all(|v| v.is_finite()) {
            points.push(p);
        }
    }
    let (x, y, z, yaw) = match &cloud.pose {
        Some(p) => {
            let v = p.position.unwrap_or_default();
            (v.x, v.y, v.z, p.orientation.as_ref().map_or(0.0, yaw_of))
        }
        None => (0.0, 0.0, 0.0, 0.0),
    };
    Ok(LidarSweep { t_secs, world_from_sensor: SensorPose { x_m: x, y_m: y, z_m: z, yaw_rad: yaw }, points })
}

fn replace_all(ns: u64, entities: Vec<SceneEntity>) -> SceneUpdate {
    SceneUpdate {
        deletions: vec![SceneEntityDeletion {
            timestamp: Some(timestamp(ns)),
            r#type: scene_entity_deletion::Type::All as i32,
            id: String::new(),
        }],
        entities,
    }
}

fn entity(ns: u64, id: String) -> SceneEntity {
    SceneEntity { timestamp: Some(timestamp(ns)), frame_id: WORLD.into(), id, ..Default::default() }
}

fn label(x: f64, y: f64, z: f64, text: String) -> TextPrimitive {
    TextPrimitive {
        pose: Some(pose(x, y, z, 0.0)),
        billboard: true,
        font_size: 12.0,
        scale_invariant: true,
        color: rgba(1.0, 1.0, 1.0, 0.9),
        text,
    }
}

/// The true road users and the ego vehicle as boxes.
pub fn truth_entities(ego: &AgentTruth, agents: &[AgentTruth], ns: u64) -> SceneUpdate {
    let cube = |a: &AgentTruth, color| CubePrimitive {
        pose: Some(pose(a.x_m, a.y_m, a.height_m / 2.0, a.yaw_rad)),
        size: Some(Vector3 { x: a.length_m, y: a.width_m, z: a.height_m }),
        color,
    };
    let mut out = Vec::with_capacity(agents.len() + 1);
    let mut e = entity(ns, "ego".into());
    e.cubes.push(cube(ego, rgba(0.9, 0.9, 0.9, 0.9)));
    out.push(e);
    for a in agents {
        let mut e = entity(ns, format!("agent-{}", a.id));
        e.cubes.push(cube(a, kind_color(a.kind, 0.7)));
        e.texts.push(label(a.x_m, a.y_m, a.height_m + 0.6, format!("{}", a.id)));
        out.push(e);
    }
    replace_all(ns, out)
}

/// Detections (translucent boxes with their score) of one `tracks` message.
pub fn detection_entities(msg: &TracksMsg, ns: u64) -> SceneUpdate {
    let out = msg
        .detections
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut e = entity(ns, format!("det-{i}"));
            e.cubes.push(CubePrimitive {
                pose: Some(pose(d.x_m, d.y_m, d.height_m / 2.0, d.yaw_rad)),
                size: Some(Vector3 { x: d.length_m, y: d.width_m, z: d.height_m }),
                color: kind_color(class_kind(&d.class), 0.3),
            });
            e.texts.push(label(d.x_m, d.y_m, d.height_m + 0.3, format!("{} {:.2}", d.class, d.score)));
            e
        })
        .collect();
    replace_all(ns, out)
}

/// Fused tracks of one `tracks` message: a disc sized by the position uncertainty, a velocity
/// line and the track's id.
pub fn track_entities(msg: &TracksMsg, ns: u64) -> SceneUpdate {
    let out = msg
        .fused
        .iter()
        .map(|t| {
            let mut e = entity(ns, format!("track-{}", t.id));
            let r = t.pos_var_m2.max(0.0).sqrt().clamp(0.2, 5.0);
            e.cylinders.push(CylinderPrimitive {
                pose: Some(pose(t.x_m, t.y_m, 0.05, 0.0)),
                size: Some(Vector3 { x: 2.0 * r, y: 2.0 * r, z: 0.1 }),
                bottom_scale: 1.0,
                top_scale: 1.0,
                color: rgba(0.95, 0.35, 0.85, 0.35),
            });
            e.lines.push(LinePrimitive {
                r#type: line_primitive::Type::LineList as i32,
                pose: None,
                thickness: 2.0,
                scale_invariant: true,
                points: vec![
                    Point3 { x: t.x_m, y: t.y_m, z: 0.2 },
                    Point3 { x: t.x_m + t.vx_mps, y: t.y_m + t.vy_mps, z: 0.2 },
                ],
                color: rgba(0.95, 0.35, 0.85, 1.0),
                ..Default::default()
            });
            e.texts.push(label(t.x_m, t.y_m, 1.0, format!("T{}", t.id)));
            e
        })
        .collect();
    replace_all(ns, out)
}

/// Predicted paths as line strips, with a one-sigma ellipse (along and across the path) at
/// every step; from a model of several futures, the other likely ones as thinner, fainter strips
/// with their probability at the end.
pub fn prediction_entities(msg: &PredictionsMsg, ns: u64) -> SceneUpdate {
    let numbers = |b: &waypoint_protocol::Bulk| {
        b.to_f64(waypoint_protocol::BulkFormat::F32, waypoint_protocol::Compression::None).unwrap_or_default()
    };
    let traj = numbers(&msg.trajectory);
    let sigma = msg.sigma.as_ref().map(numbers).unwrap_or_default();
    let modes = msg.modes.as_ref().map(numbers).unwrap_or_default();
    let probs = msg.mode_probabilities.as_ref().map(numbers).unwrap_or_default();
    let n = msg.agent_ids.len();
    let steps = if n == 0 { 0 } else { traj.len() / (2 * n) };
    let m = probs.len().checked_div(n).unwrap_or(0);
    let modes_ok = m > 1 && modes.len() == n * m * steps * 2 && probs.len() == n * m;
    let mut out = Vec::with_capacity(n);
    for (i, id) in msg.agent_ids.iter().enumerate() {
        let at = |k: usize| (traj[(i * steps + k) * 2], traj[(i * steps + k) * 2 + 1]);
        let mut e = entity(ns, format!("pred-{id}"));
        let points: Vec<Point3> = (0..steps).map(&at).map(|(x, y)| Point3 { x, y, z: 0.15 }).collect();
        e.lines.push(LinePrimitive {
            r#type: line_primitive::Type::LineStrip as i32,
            thickness: 2.0,
            scale_invariant: true,
            points,
            color: rgba(0.3, 0.9, 0.95, 1.0),
            ..Default::default()
        });
        for j in (1..m).filter(|_| modes_ok) {
            let p = probs[i * m + j];
            let base = (i * m + j) * steps * 2;
            let points: Vec<Point3> =
                (0..steps).map(|k| Point3 { x: modes[base + 2 * k], y: modes[base + 2 * k + 1], z: 0.15 }).collect();
            if let Some(end) = points.last() {
                e.texts.push(label(end.x, end.y, 0.5, format!("{:.0}%", 100.0 * p)));
            }
            e.lines.push(LinePrimitive {
                r#type: line_primitive::Type::LineStrip as i32,
                thickness: 1.0,
                scale_invariant: true,
                points,
                color: rgba(0.3, 0.9, 0.95, (0.25 + p).min(1.0)),
                ..Default::default()
            });
        }
        // No ellipses for a path whose model gives no uncertainty (NaN rows).
        if steps > 0 && sigma.len() == traj.len() && sigma[i * steps * 2].is_finite() {
            for k in 0..steps {
                let (x, y) = at(k);
                let (px, py) = if k == 0 { (x, y) } else { at(k - 1) };
                let heading = if k == 0 && steps > 1 {
                    let (nx, ny) = at(1);
                    (ny - y).atan2(nx - x)
                } else {
                    (y - py).atan2(x - px)
                };
                let s_along = sigma[(i * steps + k) * 2];
                let s_across = sigma[(i * steps + k) * 2 + 1];
                e.cylinders.push(CylinderPrimitive {
                    pose: Some(pose(x, y, 0.05, heading)),
                    size: Some(Vector3 { x: 2.0 * s_along.max(0.05), y: 2.0 * s_across.max(0.05), z: 0.02 }),
                    bottom_scale: 1.0,
                    top_scale: 1.0,
                    color: rgba(0.3, 0.9, 0.95, 0.12),
                });
            }
        }
        out.push(e);
    }
    replace_all(ns, out)
}

/// A GPS fix in latitude and longitude about [`ORIGIN_LAT_LON`].
pub fn location_fix(fix: &GpsFix, ns: u64) -> LocationFix {
    let (lat0, lon0) = ORIGIN_LAT_LON;
    let lat = lat0 + (fix.y_m / EARTH_RADIUS_M).to_degrees();
    let lon = lon0 + (fix.x_m / (EARTH_RADIUS_M * lat0.to_radians().cos())).to_degrees();
    let var = fix.sigma_m * fix.sigma_m;
    LocationFix {
        timestamp: Some(timestamp(ns)),
        frame_id: "gps".into(),
        latitude: lat,
        longitude: lon,
        altitude: 0.0,
        position_covariance: vec![var, 0.0, 0.0, 0.0, var, 0.0, 0.0, 0.0, var],
        // DIAGONAL_KNOWN
        position_covariance_type: 2,
        ..Default::default()
    }
}

/// A GPS fix's scene position back from latitude and longitude.
pub fn scene_xy(lat: f64, lon: f64) -> (f64, f64) {
    let (lat0, lon0) = ORIGIN_LAT_LON;
    let y = (lat - lat0).to_radians() * EARTH_RADIUS_M;
    let x = (lon - lon0).to_radians() * EARTH_RADIUS_M * lat0.to_radians().cos();
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_survives_the_point_cloud_bit_for_bit() {
        let sweep = LidarSweep {
            t_secs: 1.25,
            world_from_sensor: SensorPose { x_m: 3.0, y_m: -4.5, z_m: 1.8, yaw_rad: 0.7 },
            points: vec![[1.0, -2.5, 0.125, 0.5], [f32::MAX, 1e-7, -3.0, 1.0]],
        };
        let cloud = point_cloud(&sweep, 5);
        let back = sweep_from_cloud(&cloud, 1.25).unwrap();
        assert_eq!(back.points, sweep.points);
        let p = back.world_from_sensor;
        assert_eq!((p.x_m, p.y_m, p.z_m), (3.0, -4.5, 1.8));
        assert!((p.yaw_rad - 0.7).abs() < 1e-12);
    }

    #[test]
    fn a_foreign_cloud_with_float64_fields_and_no_intensity_reads_and_bad_ones_are_refused() {
        let mut data = Vec::new();
        for v in [1.0f64, 2.0, 3.0, f64::NAN, 0.0, 0.0] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let f =
            |name: &str, offset| PackedElementField { name: name.into(), offset, r#type: NumericType::Float64 as i32 };
        let mut cloud = PointCloud {
            point_stride: 24,
            fields: vec![f("x", 0), f("y", 8), f("z", 16)],
            data: data.into(),
            ..Default::default()
        };
        let sweep = sweep_from_cloud(&cloud, 0.0).unwrap();
        assert_eq!(sweep.points, vec![[1.0, 2.0, 3.0, 0.0]], "the NaN point is dropped");
        cloud.fields[2].offset = 20;
        assert!(sweep_from_cloud(&cloud, 0.0).unwrap_err().to_string().contains("beyond"));
        cloud.fields[2] = PackedElementField { name: "z".into(), offset: 16, r#type: NumericType::Uint8 as i32 };
        assert!(sweep_from_cloud(&cloud, 0.0).is_err());
        cloud.point_stride = 0;
        assert!(sweep_from_cloud(&cloud, 0.0).is_err());
    }

    #[test]
    fn gps_positions_go_to_latitude_and_longitude_and_back() {
        let fix = GpsFix { t_secs: 0.0, x_m: 120.5, y_m: -80.25, sigma_m: 1.5 };
        let l = location_fix(&fix, 0);
        let (x, y) = scene_xy(l.latitude, l.longitude);
        assert!((x - 120.5).abs() < 1e-6 && (y + 80.25).abs() < 1e-6);
        assert_eq!(l.position_covariance[0], 2.25);
    }

    #[test]
    fn the_other_likely_futures_are_drawn_with_their_probability() {
        let line = |dx: f32| (0..12).flat_map(move |k| [k as f32 * dx, 1.0]).collect::<Vec<f32>>();
        let mut msg = PredictionsMsg {
            seq: 1,
            t_secs: 0.0,
            model: "trajectory".into(),
            version: "3".into(),
            count: 1,
            agent_ids: vec![7],
            trajectory: waypoint_protocol::Bulk::F32(line(1.0)),
            sigma: None,
            versions: None,
            models: None,
            modes: Some(waypoint_protocol::Bulk::F32([line(1.0), line(0.5), line(0.2)].concat())),
            mode_probabilities: Some(waypoint_protocol::Bulk::F32(vec![0.7, 0.2, 0.1])),
        };
        let u = prediction_entities(&msg, 0);
        let e = &u.entities[0];
        assert_eq!(e.lines.len(), 3, "the path and two other futures");
        assert_eq!(e.texts.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(), ["20%", "10%"]);
        assert!((e.lines[1].points[11].x - 5.5).abs() < 1e-9);
        // Malformed modes (a length that does not fit) draw the path alone.
        msg.mode_probabilities = Some(waypoint_protocol::Bulk::F32(vec![0.7, 0.3]));
        assert_eq!(prediction_entities(&msg, 0).entities[0].lines.len(), 1);
    }

    #[test]
    fn a_path_without_uncertainty_gets_no_ellipses_beside_one_with() {
        let line = |y: f32| (0..12).flat_map(move |k| [k as f32, y]).collect::<Vec<f32>>();
        let msg = PredictionsMsg {
            seq: 1,
            t_secs: 0.0,
            model: "trajectory_road".into(),
            version: "1".into(),
            count: 2,
            agent_ids: vec![7, 8],
            trajectory: waypoint_protocol::Bulk::F32([line(0.0), line(5.0)].concat()),
            // The first from a model without sigma (NaN rows), the second with.
            sigma: Some(waypoint_protocol::Bulk::F32([vec![f32::NAN; 24], vec![0.3; 24]].concat())),
            versions: Some(vec!["1".into(), "3".into()]),
            models: Some(vec!["trajectory_road".into(), "trajectory".into()]),
            modes: None,
            mode_probabilities: None,
        };
        let u = prediction_entities(&msg, 0);
        assert_eq!(u.entities.len(), 2);
        assert!(u.entities[0].cylinders.is_empty());
        assert_eq!(u.entities[1].cylinders.len(), 12);
    }
}
