//! Live perception: every lidar sweep of the scene goes through the served `detection` model's
//! engine; detections are moved into the world frame and fed to a multi-object tracker; the
//! result is published on the `tracks` stream. Sweeps are processed in order by one task; when
//! it is still busy with an earlier sweep, a new one is skipped (counted in the logs), never
//! queued without bound.

use std::sync::Arc;

use tokio::sync::mpsc;
use waypoint_models::detection::classifier::CLASSES;
use waypoint_models::detection::tracker::{Observation, Tracker, TrackerConfig};
use waypoint_models::{Tensor, TensorData};
use waypoint_protocol::convert::StreamItem;
use waypoint_protocol::{DetectedObject, ServerMessage, StreamName, TrackedObject, TracksMsg};
use waypoint_sim::frame::LidarSweep;
use waypoint_sim::geometry::Vec2;

use crate::hub::Hub;
use crate::registry::Registry;

/// Model used for live detection.
pub const DETECTION_MODEL: &str = "detection";

/// Handle that accepts sweeps.
#[derive(Debug, Clone)]
pub struct Perception {
    tx: mpsc::Sender<(u64, LidarSweep)>,
}

impl Perception {
    /// Starts the perception task on the runtime.
    pub fn start(registry: Arc<Registry>, hub: Arc<Hub>, handle: &tokio::runtime::Handle) -> Self {
        let (tx, mut rx) = mpsc::channel::<(u64, LidarSweep)>(1);
        handle.spawn(async move {
            let mut tracker = Tracker::new(TrackerConfig::default());
            let mut last_t: Option<f64> = None;
            while let Some((seq, sweep)) = rx.recv().await {
                let Ok(loaded) = registry.get(DETECTION_MODEL, None) else { continue };
                let n = sweep.points.len();
                let flat: Vec<f32> = sweep.points.iter().flatten().copied().collect();
                let Ok(input) = Tensor::new("points", vec![n, 4], TensorData::F32(flat)) else { continue };
                let out = match crate::inference::infer_on(&loaded, vec![input]).await {
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
                    .map(|(d, class)| Observation { x_m: d.x_m, y_m: d.y_m, class: (*class).max(0) as usize })
                    .collect();
                let dt = last_t.map_or(0.1, |t| (sweep.t_secs - t).max(0.0));
                last_t = Some(sweep.t_secs);
                tracker.step(dt, &obs);
                let tracks = tracker
                    .tracks()
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
                let msg = TracksMsg {
                    seq,
                    t_secs: sweep.t_secs,
                    model: loaded.model.clone(),
                    version: loaded.version.to_string(),
                    detections,
                    tracks,
                };
                hub.publish(&StreamItem::Ready(StreamName::Tracks, ServerMessage::Tracks(msg)));
            }
        });
        Self { tx }
    }

    /// Offers a sweep; skipped when the previous one is still being processed.
    pub fn offer(&self, seq: u64, sweep: &LidarSweep) {
        if self.tx.try_send((seq, sweep.clone())).is_err() {
            tracing::trace!(seq, "perception busy; sweep skipped");
        }
    }
}
