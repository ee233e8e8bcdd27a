//! Training data for the classifier from simulated lidar sweeps: every cluster, labelled with
//! the class of the agent whose box contains it, or "other".

use waypoint_sim::frame::{AgentTruth, SensorPose};
use waypoint_sim::geometry::Vec2;
use waypoint_sim::sensors::LidarConfig;
use waypoint_sim::{AgentKind, Fleet, Scene, SceneConfig};

use super::classifier::{features, N_FEATURES};
use super::segment::{self, SegmentConfig};
use super::{boxfit, MAX_OBJECT_LENGTH_M};

/// The class index of an agent kind.
pub fn class_of(kind: AgentKind) -> usize {
    match kind {
        AgentKind::Vehicle => 0,
        AgentKind::Pedestrian => 1,
        AgentKind::Cyclist => 2,
    }
}

/// An agent's true box in the frame of the sensor at `pose` (its bottom at z = 0: the box's
/// height is its own, the ground is where the caller puts it).
pub fn sensor_box(a: &AgentTruth, pose: &SensorPose) -> boxfit::FittedBox {
    let rel = (Vec2::new(a.x_m, a.y_m) - Vec2::new(pose.x_m, pose.y_m)).rotate(-pose.yaw_rad);
    boxfit::FittedBox {
        x_m: rel.x,
        y_m: rel.y,
        z_m: 0.0,
        length_m: a.length_m,
        width_m: a.width_m,
        height_m: a.height_m,
        yaw_rad: a.yaw_rad - pose.yaw_rad,
    }
}

/// Offset of the seed of the random stream that draws a training scene's sensor tilt.
const TILT_STREAM: u64 = 77_777;

/// Samples from `scenes` scenes seeded `first_seed`, `first_seed + 1`, ..., of `ticks` ticks
/// each (every `every`-th sweep), seen by `lidar`, with `parked` cars parked beside the road in
/// each. With a `max_tilt_deg` (pitch, roll) other than zero, each scene's sensor is tilted by
/// a pitch and a roll drawn uniformly within ± those (domain randomisation: a sensor on a car
/// that brakes or is loaded, a street that climbs or leans), and its sweeps are levelled as
/// the detector levels them. `fleet` gives the vehicles their bodies.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    first_seed: u64,
    scenes: u64,
    ticks: usize,
    every: usize,
    seg: &SegmentConfig,
    lidar: &LidarConfig,
    parked: usize,
    max_tilt_deg: [f64; 2],
    fleet: Fleet,
) -> Vec<([f32; N_FEATURES], usize)> {
    let mut out = Vec::new();
    for seed in 0..scenes {
        let mut cfg = SceneConfig {
            seed: first_seed + seed,
            vehicles: 8,
            pedestrians: 8,
            cyclists: 5,
            parked,
            fleet,
            ..SceneConfig::default()
        };
        cfg.sensors.lidar = lidar.clone();
        if max_tilt_deg != [0.0, 0.0] {
            // The scene's sensor tilt, from a stream of its own.
            let mut rng = waypoint_sim::rng::SimRng::new(first_seed + seed + TILT_STREAM);
            cfg.sensors.lidar.tilt_deg =
                [rng.range(-max_tilt_deg[0], max_tilt_deg[0]), rng.range(-max_tilt_deg[1], max_tilt_deg[1])];
        }
        let Ok(mut scene) = Scene::new(cfg) else { continue };
        for t in 0..ticks {
            let frame = scene.tick();
            if t % every != 0 {
                continue;
            }
            for sweep in &frame.lidar {
                let pose = sweep.world_from_sensor;
                // As the detector sees it: levelled when tilted (a tilted sensor's level frame
                // is its car's, the frame of `pose`).
                let level = segment::level_sweep(&sweep.points, seg);
                let (points, ground_z) = (&level.points, &level.ground_z);
                for c in segment::cluster_with_ground(points, seg, &level.is_ground, ground_z) {
                    let pts: Vec<[f32; 4]> = c.iter().map(|i| points[*i]).collect();
                    let g = c.iter().map(|i| f64::from(ground_z[*i])).sum::<f64>() / c.len() as f64;
                    if boxfit::surely_longer_than(&pts, MAX_OBJECT_LENGTH_M) {
                        continue;
                    }
                    let Some(b) = boxfit::fit(&pts, g) else { continue };
                    if b.length_m > MAX_OBJECT_LENGTH_M || b.height_m < 0.3 {
                        continue;
                    }
                    let world = Vec2::new(pose.x_m, pose.y_m) + Vec2::new(b.x_m, b.y_m).rotate(pose.yaw_rad);
                    let label = frame
                        .truth
                        .agents
                        .iter()
                        .find(|a| {
                            let rel = (world - Vec2::new(a.x_m, a.y_m)).rotate(-a.yaw_rad);
                            rel.x.abs() < a.length_m / 2.0 + 0.5 && rel.y.abs() < a.width_m / 2.0 + 0.5
                        })
                        .map_or(3, |a| class_of(a.kind));
                    out.push((features(&b, &pts, lidar.ring_spacing_rad()), label));
                }
            }
        }
    }
    out
}
