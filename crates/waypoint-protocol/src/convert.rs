//! Stream messages built from simulator frames.

use waypoint_sim::fault::Sensor;
use waypoint_sim::frame::{Frame, LidarSweep};

use crate::bulk::{Bulk, BulkFormat, Compression};
use crate::codec::Codec;
use crate::messages::*;

/// Scene state that is not in the frame itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneStatus {
    pub running: bool,
    pub speed: f64,
    pub seed: u64,
    pub sensors_enabled: [bool; 5],
}

/// One item of a stream, before encoding. Most are ready messages; lidar sweeps are encoded
/// according to each subscriber's options.
// Each item is built once and moved into the hub (which shares it behind an `Arc`), so the
// ready variant's size costs no copies worth a heap allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Ready(StreamName, ServerMessage),
    Lidar { seq: u64, sweep: LidarSweep },
}

impl StreamItem {
    pub fn stream(&self) -> StreamName {
        match self {
            StreamItem::Ready(s, _) => *s,
            StreamItem::Lidar { .. } => StreamName::Lidar,
        }
    }

    /// The message to send to a subscriber with these options on this codec.
    pub fn message(&self, codec: Codec, options: StreamOptions) -> ServerMessage {
        match self {
            StreamItem::Ready(_, m) => m.clone(),
            StreamItem::Lidar { seq, sweep } => ServerMessage::Lidar(lidar_msg(*seq, sweep, codec, options)),
        }
    }
}

/// Lidar message with the requested layout; compression only on binary codecs.
pub fn lidar_msg(seq: u64, sweep: &LidarSweep, codec: Codec, options: StreamOptions) -> LidarMsg {
    let compression = if codec == Codec::MsgPack { options.compression } else { Compression::None };
    let points = match options.lidar_format {
        BulkFormat::F32 => {
            let flat: Vec<f32> = sweep.points.iter().flatten().copied().collect();
            match codec {
                Codec::MsgPack => Bulk::encode_f32(&flat, compression),
                Codec::Json => Bulk::F32(flat),
            }
        }
        BulkFormat::I16 => {
            let flat: Vec<i16> = sweep
                .points
                .iter()
                .flat_map(|p| {
                    let cm = |v: f32| (f64::from(v) * 100.0).round().clamp(-32768.0, 32767.0) as i16;
                    [cm(p[0]), cm(p[1]), cm(p[2]), (f64::from(p[3]).clamp(0.0, 1.0) * 32767.0).round() as i16]
                })
                .collect();
            match codec {
                Codec::MsgPack => Bulk::encode_i16(&flat, compression),
                Codec::Json => Bulk::I16(flat),
            }
        }
    };
    LidarMsg {
        seq,
        t_secs: sweep.t_secs,
        world_from_sensor: sweep.world_from_sensor,
        count: sweep.points.len() as u32,
        format: options.lidar_format,
        compression,
        points,
    }
}

/// Every stream item of one frame.
pub fn stream_items(frame: &Frame, status: &SceneStatus) -> Vec<StreamItem> {
    let seq = frame.seq;
    let mut items = Vec::with_capacity(8);
    let truth = &frame.truth;
    items.push(StreamItem::Ready(
        StreamName::Scene,
        ServerMessage::Scene(SceneMsg {
            seq,
            t_secs: frame.t_secs,
            running: status.running,
            speed: status.speed,
            seed: status.seed,
            ego: AgentPose::from(&truth.ego),
            agents: truth.agents.iter().map(AgentPose::from).collect(),
            signal: truth.signal,
            sensors: Sensor::ALL
                .iter()
                .zip(status.sensors_enabled)
                .map(|(s, enabled)| SensorState { sensor: *s, enabled })
                .collect(),
            active_faults: truth.faults.iter().filter(|f| f.active_at(frame.t_secs)).copied().collect(),
        }),
    ));
    items.push(StreamItem::Ready(StreamName::Truth, ServerMessage::Truth(TruthMsg { seq, truth: truth.clone() })));
    for sweep in &frame.lidar {
        items.push(StreamItem::Lidar { seq, sweep: sweep.clone() });
    }
    for scan in &frame.radar {
        let flat: Vec<f32> = scan
            .targets
            .iter()
            .flat_map(|t| [t.range_m as f32, t.azimuth_rad as f32, t.range_rate_mps as f32, t.rcs_dbsm as f32])
            .collect();
        items.push(StreamItem::Ready(
            StreamName::Radar,
            ServerMessage::Radar(RadarMsg {
                seq,
                t_secs: scan.t_secs,
                world_from_sensor: scan.world_from_sensor,
                count: scan.targets.len() as u32,
                targets: Bulk::F32(flat),
            }),
        ));
    }
    for cam in &frame.camera {
        items.push(StreamItem::Ready(
            StreamName::Camera,
            ServerMessage::Camera(CameraMsg {
                seq,
                t_secs: cam.t_secs,
                width_px: cam.width_px,
                height_px: cam.height_px,
                boxes: cam.boxes.clone(),
            }),
        ));
    }
    if let Some(first) = frame.imu.first() {
        let t0 = first.t_secs;
        let flat: Vec<f32> = frame
            .imu
            .iter()
            .flat_map(|s| {
                [
                    (s.t_secs - t0) as f32,
                    s.accel_x_mps2 as f32,
                    s.accel_y_mps2 as f32,
                    s.accel_z_mps2 as f32,
                    s.yaw_rate_rps as f32,
                ]
            })
            .collect();
        items.push(StreamItem::Ready(
            StreamName::Imu,
            ServerMessage::Imu(ImuMsg { seq, t0_secs: t0, count: frame.imu.len() as u32, samples: Bulk::F32(flat) }),
        ));
    }
    if !frame.gps.is_empty() {
        items.push(StreamItem::Ready(StreamName::Gps, ServerMessage::Gps(GpsMsg { seq, fixes: frame.gps.clone() })));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;
    use waypoint_sim::{Scene, SceneConfig};

    #[test]
    fn lidar_round_trips_through_every_encoding() {
        let mut scene = Scene::new(SceneConfig::default()).unwrap();
        let frame = scene.tick();
        let sweep = &frame.lidar[0];
        for codec in [Codec::MsgPack, Codec::Json] {
            for compression in [Compression::None, Compression::Deflate] {
                for lidar_format in [BulkFormat::F32, BulkFormat::I16] {
                    let msg = lidar_msg(0, sweep, codec, StreamOptions { compression, lidar_format });
                    let bytes = encode(codec, &ServerMessage::Lidar(msg)).unwrap();
                    let back: ServerMessage = match codec {
                        Codec::MsgPack => rmp_serde::from_slice(&bytes).unwrap(),
                        Codec::Json => serde_json::from_slice(&bytes).unwrap(),
                    };
                    let ServerMessage::Lidar(l) = back else { panic!("not lidar") };
                    let values = l.points.to_f64(l.format, l.compression).unwrap();
                    assert_eq!(values.len(), sweep.points.len() * 4);
                    let scale = if lidar_format == BulkFormat::I16 { 0.01 } else { 1.0 };
                    for (k, p) in sweep.points.iter().enumerate().step_by(97) {
                        for c in 0..3 {
                            let err = (values[4 * k + c] * scale - f64::from(p[c])).abs();
                            assert!(err <= 0.005 + 1e-6, "{codec:?} {compression:?} {lidar_format:?}: {err}");
                        }
                    }
                }
            }
        }
    }
}
