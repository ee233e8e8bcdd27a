//! Live perception: every lidar sweep of the scene goes through the served `detection` model's
//! engine; detections are moved into the world frame and fed to a multi-object tracker; the
//! result is published on the `tracks` stream. Each confirmed track also carries an unscented
//! Kalman filter (CTRV) updated with its lidar detection and with the radar returns gated to
//! it — the `fusion` model's filter, run per object. Sweeps are processed in order by one task; when
//! it is still busy with an earlier sweep, a new one is skipped (counted in the logs), never
//! queued without bound.

use std::sync::Arc;

use std::collections::BTreeMap;
use tokio::sync::mpsc;
use waypoint_models::detection::classifier::CLASSES;

use waypoint_models::detection::tracker::{Observation, Tracker, TrackerConfig};
use waypoint_models::fusion::ukf::UkfConfig;
use waypoint_models::fusion::{Measurement, Ukf};
use waypoint_models::{Tensor, TensorData};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{DetectedObject, FusedTrack, ServerMessage, StreamName, TrackedObject, TracksMsg};
use waypoint_sim::frame::{LidarSweep, RadarScan};
use waypoint_sim::geometry::Vec2;
use waypoint_sim::sensors::lidar::LidarConfig;

use crate::live::hub::Hub;
use crate::serving::registry::Registry;

/// Model used for live detection.
pub const DETECTION_MODEL: &str = "detection";

/// Handle that accepts sweeps.
#[derive(Debug, Clone)]
pub struct Perception {
    tx: mpsc::Sender<Input>,
}

/// What one tick hands to perception: the sweep, the radar scans of the tick and the ego
/// velocity (odometry) to remove the sensor's own motion from radar range rates.
#[derive(Debug)]
struct Input {
    seq: u64,
    sweep: LidarSweep,
    radar: Vec<RadarScan>,
    ego_velocity: (f64, f64),
    /// The lidar's beam angles, degrees, by the detection model's input names: the vertical
    /// one between adjacent beams and the horizontal one between successive firings.
    lidar_angles: [(&'static str, f32); 2],
}

/// Radar returns farther than this from a track are not associated with it, metres.
const RADAR_GATE_M: f64 = 2.5;

#[derive(Debug)]
struct Fused {
    ukf: Ukf,
    lidar: u32,
    radar: u32,
    nis_lidar: Option<f64>,
    nis_radar: Option<f64>,
}

impl Perception {
    /// Starts the perception task on the runtime.
    pub fn start(
        registry: Arc<Registry>,
        hub: Arc<Hub>,
        online: Arc<crate::lifecycle::online::OnlineEval>,
        handle: &tokio::runtime::Handle,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Input>(1);
        handle.spawn(async move {
            let mut tracker = Tracker::new(TrackerConfig::default());
            let mut fused: BTreeMap<u32, Fused> = BTreeMap::new();
            let mut last_t: Option<f64> = None;
            while let Some(Input { seq, sweep, radar, ego_velocity, lidar_angles }) = rx.recv().await {
                let Ok(loaded) = registry.get(DETECTION_MODEL, None) else { continue };
                let n = sweep.points.len();
                let flat: Vec<f32> = sweep.points.iter().flatten().copied().collect();
                let Ok(input) = Tensor::new("points", vec![n, 4], TensorData::F32(flat)) else { continue };
                let mut inputs = vec![input];
                // The lidar's beam angles, to a model configured to take them (a repository
                // written before an input existed does not declare it).
                for (name, deg) in lidar_angles {
                    if loaded.config.inputs.iter().any(|i| i.name == name) {
                        if let Ok(t) = Tensor::new(name, vec![1], TensorData::F32(vec![deg])) {
                            inputs.push(t);
                        }
                    }
                }
                let out = match crate::serving::inference::infer_on(&loaded, inputs).await {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::debug!(error = %e, "live detection failed");
                        continue;
                    }
                };
                let get = |name: &str| out.outputs.iter().find(|t| t.name == name);
                let (Some(boxes), Some(classes), Some(scores)) = (get("boxes"), get("classes"), get("scores")) else {
                    continue;
                };
                let (Ok(b), Ok(s)) = (boxes.as_f32(), scores.as_f32()) else { continue };
                let TensorData::I32(c) = &classes.data else { continue };
                let pose = sweep.world_from_sensor;
                let origin = Vec2::new(pose.x_m, pose.y_m);
                let detections: Vec<DetectedObject> = b
                    .chunks_exact(7)
                    .zip(c)
                    .zip(s)
                    .map(|((bx, class), score)| {
                        let w = origin + Vec2::new(f64::from(bx[0]), f64::from(bx[1])).rotate(pose.yaw_rad);
                        DetectedObject {
                            x_m: w.x,
                            y_m: w.y,
                            length_m: f64::from(bx[3]),
                            width_m: f64::from(bx[4]),
                            height_m: f64::from(bx[5]),
                            yaw_rad: f64::from(bx[6]) + pose.yaw_rad,
                            class: CLASSES.get(*class as usize).unwrap_or(&"other").to_string(),
                            score: *score,
                        }
                    })
                    .collect();
                let obs: Vec<Observation> = detections
                    .iter()
                    .zip(c)
                    .map(|(d, class)| Observation {
                        x_m: d.x_m,
                        y_m: d.y_m,
                        class: (*class).max(0) as usize,
                        yaw_rad: Some(d.yaw_rad),
                        score: d.score,
                    })
                    .collect();
                let dt = last_t.map_or(0.1, |t| (sweep.t_secs - t).max(0.0));
                last_t = Some(sweep.t_secs);
                tracker.step(dt, &obs);
                let confirmed = tracker.tracks();
                fused.retain(|id, _| confirmed.iter().any(|t| t.id == *id));
                // Radar returns of the tick, in time order, then the lidar detection.
                let mut scans: Vec<&RadarScan> = radar.iter().filter(|r| r.t_secs <= sweep.t_secs + 1e-9).collect();
                scans.sort_by(|a, b| a.t_secs.total_cmp(&b.t_secs));
                for t in &confirmed {
                    let f = fused.entry(t.id).or_insert_with(|| Fused {
                        ukf: Ukf::new(UkfConfig::default()),
                        lidar: 0,
                        radar: 0,
                        nis_lidar: None,
                        nis_radar: None,
                    });
                    for scan in &scans {
                        let mount = (scan.world_from_sensor.x_m, scan.world_from_sensor.y_m);
                        let best = scan
                            .targets
                            .iter()
                            .map(|r| {
                                let bearing = scan.world_from_sensor.yaw_rad + r.azimuth_rad;
                                let pos = (mount.0 + r.range_m * bearing.cos(), mount.1 + r.range_m * bearing.sin());
                                ((pos.0 - t.x_m).hypot(pos.1 - t.y_m), r, bearing)
                            })
                            .filter(|(d, _, _)| *d < RADAR_GATE_M)
                            .min_by(|a, b| a.0.total_cmp(&b.0));
                        if let Some((_, r, bearing)) = best {
                            // Remove the ego's own motion from the range rate.
                            let own = ego_velocity.0 * bearing.cos() + ego_velocity.1 * bearing.sin();
                            let m = Measurement::Radar {
                                t_secs: scan.t_secs,
                                rho_m: r.range_m,
                                phi_rad: bearing,
                                rho_dot_mps: r.range_rate_mps + own,
                            };
                            let e = f.ukf.process_from(mount, &m);
                            if e.nis.is_some() {
                                f.radar += 1;
                                f.nis_radar = e.nis;
                            }
                        }
                    }
                    if let Some(i) = t.observation {
                        let d = &obs[i];
                        let e = f.ukf.process(&Measurement::Lidar { t_secs: sweep.t_secs, px_m: d.x_m, py_m: d.y_m });
                        f.lidar += 1;
                        if e.nis.is_some() {
                            f.nis_lidar = e.nis;
                        }
                    }
                }
                let fused_out: Vec<FusedTrack> = fused
                    .iter()
                    .map(|(id, f)| {
                        let (x, p) = f.ukf.state();
                        FusedTrack {
                            id: *id,
                            x_m: x[0],
                            y_m: x[1],
                            vx_mps: x[2] * x[3].cos(),
                            vy_mps: x[2] * x[3].sin(),
                            yaw_rad: x[3],
                            yaw_rate_rps: x[4],
                            pos_var_m2: p[(0, 0)] + p[(1, 1)],
                            lidar_updates: f.lidar,
                            radar_updates: f.radar,
                            nis_lidar: f.nis_lidar,
                            nis_radar: f.nis_radar,
                        }
                    })
                    .collect();
                let tracks = confirmed
                    .into_iter()
                    .map(|t| TrackedObject {
                        id: t.id,
                        x_m: t.x_m,
                        y_m: t.y_m,
                        vx_mps: t.vx_mps,
                        vy_mps: t.vy_mps,
                        class: t.class as u8,
                        misses: t.misses,
                    })
                    .collect();
                online.record_perception(&loaded.model, &loaded.version.to_string(), seq, &detections, &fused_out);
                let msg = TracksMsg {
                    seq,
                    t_secs: sweep.t_secs,
                    model: loaded.model.clone(),
                    version: loaded.version.to_string(),
                    detections,
                    tracks,
                    fused: fused_out,
                };
                hub.publish(&StreamItem::Ready(StreamName::Tracks, ServerMessage::Tracks(msg)));
            }
        });
        Self { tx }
    }

    /// Offers a tick's sweep (from `lidar`) and radar scans; skipped when the previous sweep is
    /// still being processed.
    pub fn offer(
        &self,
        seq: u64,
        sweep: &LidarSweep,
        lidar: &LidarConfig,
        radar: &[RadarScan],
        ego_velocity: (f64, f64),
    ) {
        let lidar_angles = [
            ("ring_spacing_deg", lidar.ring_spacing_rad().to_degrees() as f32),
            ("azimuth_step_deg", lidar.azimuth_step_rad().to_degrees() as f32),
        ];
        let input = Input { seq, sweep: sweep.clone(), radar: radar.to_vec(), ego_velocity, lidar_angles };
        if self.tx.try_send(input).is_err() {
            tracing::trace!(seq, "perception busy; sweep skipped");
        }
    }
}
