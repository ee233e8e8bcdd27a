//! The `sensor_health` model as served: the live sensor health monitor ([`HealthMonitor`]) behind
//! the engine, one tick of the five sensors' output per request, its state kept per sequence.
//!
//! The monitor is stateful (each feature's model of normal adapts over minutes), so, like a
//! stateful model behind a sequence batcher, a request names the sequence it belongs to and the
//! instance keeps one monitor per sequence: at most [`MAX_SEQUENCES`], the least recently used
//! dropped first. Requests of one sequence must reach one instance in order (`instances = 1`,
//! `max_batch_size = 0`; the repository refuses anything else for this backend).
//!
//! Inputs:
//! - `frame` UINT8 `[N]`: one tick's sensor output, MessagePack ([`encode_tick`]): the lidar
//!   sweeps, radar scans, camera frames, IMU samples and GPS fixes that arrived in the tick, and
//!   the vehicle's pose (standing in for its localisation). No other truth is read or sent.
//! - `sequence_id` INT64 `[1]`, optional (default 0); `sequence_start` BOOL `[1]`, optional: start
//!   the sequence afresh (an unknown sequence starts afresh anyway, learning what normal is).
//! - `sensors` UINT8 `[N]`, optional: the sensors' configuration as JSON (mounts, camera optics),
//!   read only when a monitor is made for a sequence (default: the default sensor set); a
//!   caller sends it with every request, so a version that joins a sequence late has it.
//! - `enabled` BOOL `[5]`, optional: which sensors are switched on (default all).
//! - `threshold` FP64 `[1]`, optional: the alarm threshold in (0, 1] (default
//!   [`DEFAULT_THRESHOLD`]).
//!
//! Outputs, per sensor in the order lidar, radar, camera, IMU, GPS: `score` FP64 `[5]` in [0, 1],
//! `alarm` BOOL `[5]`, `learning` BOOL `[5]` (some features still learn what normal is) and
//! `cause` UINT8 `[5, 24]` (the feature that gave the score, ASCII, zero-padded).

use serde::{Deserialize, Serialize};
use waypoint_sim::frame::{AgentTruth, CameraFrame, GpsFix, GroundTruth, ImuSample, LidarSweep, RadarScan};
use waypoint_sim::map::SignalPhase;
use waypoint_sim::sensors::SensorsConfig;
use waypoint_sim::Frame;

use super::health::{HealthMonitor, DEFAULT_THRESHOLD};
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// Sequences an instance keeps a monitor for.
pub const MAX_SEQUENCES: usize = 16;
/// Bytes of each sensor's `cause`.
pub const CAUSE_BYTES: usize = 24;
/// The largest `sensors` configuration accepted, bytes.
const MAX_SENSORS_JSON: usize = 64 * 1024;

/// One tick's sensor output as sent (borrowed: encoding copies nothing but the bytes).
#[derive(Serialize)]
struct TickRef<'a> {
    seq: u64,
    t_secs: f64,
    lidar: &'a [LidarSweep],
    radar: &'a [RadarScan],
    camera: &'a [CameraFrame],
    imu: &'a [ImuSample],
    gps: &'a [GpsFix],
    ego: &'a AgentTruth,
}

/// One tick's sensor output as received.
#[derive(Deserialize)]
struct Tick {
    seq: u64,
    t_secs: f64,
    lidar: Vec<LidarSweep>,
    radar: Vec<RadarScan>,
    camera: Vec<CameraFrame>,
    imu: Vec<ImuSample>,
    gps: Vec<GpsFix>,
    ego: AgentTruth,
}

/// The `frame` input for one tick of the scene: its sensor output and the vehicle's pose.
pub fn encode_tick(frame: &Frame) -> Vec<u8> {
    let tick = TickRef {
        seq: frame.seq,
        t_secs: frame.t_secs,
        lidar: &frame.lidar,
        radar: &frame.radar,
        camera: &frame.camera,
        imu: &frame.imu,
        gps: &frame.gps,
        ego: &frame.truth.ego,
    };
    rmp_serde::to_vec(&tick).unwrap_or_default()
}

/// The frame the monitor reads, from a `frame` input (its truth holds the pose only).
fn decode_tick(bytes: &[u8]) -> Result<Frame, ModelError> {
    let t: Tick = rmp_serde::from_slice(bytes).map_err(|e| ModelError::BadInput(format!("frame: {e}")))?;
    if !t.t_secs.is_finite() {
        return Err(ModelError::BadInput("frame: t_secs must be finite".into()));
    }
    Ok(Frame {
        seq: t.seq,
        t_secs: t.t_secs,
        lidar: t.lidar,
        radar: t.radar,
        camera: t.camera,
        imu: t.imu,
        gps: t.gps,
        truth: GroundTruth {
            t_secs: t.t_secs,
            ego: t.ego,
            agents: Vec::new(),
            faults: Vec::new(),
            signal: SignalPhase::AllRed,
        },
    })
}

/// Serves the sensor health monitor, one monitor per sequence.
#[derive(Debug, Default)]
pub struct SensorHealthModel {
    /// (sequence id, last use, monitor), at most [`MAX_SEQUENCES`].
    sequences: Vec<(i64, u64, HealthMonitor)>,
    uses: u64,
}

fn optional<'a>(inputs: &'a [Tensor], name: &str) -> Option<&'a TensorData> {
    inputs.iter().find(|t| t.name == name).map(|t| &t.data)
}

impl SensorHealthModel {
    /// The monitor of a sequence: made afresh on `start` or when unknown, for the sensors
    /// configured in `sensors` (JSON, read only then).
    fn monitor(&mut self, id: i64, start: bool, sensors: Option<&[u8]>) -> Result<&mut HealthMonitor, ModelError> {
        self.uses += 1;
        let known = self.sequences.iter().position(|s| s.0 == id);
        if start || known.is_none() {
            let config = match sensors {
                Some(json) => serde_json::from_slice::<SensorsConfig>(json)
                    .map_err(|e| ModelError::BadInput(format!("sensors: {e}")))?,
                None => SensorsConfig::default(),
            };
            let fresh = HealthMonitor::for_sensors(&config);
            match known {
                Some(i) => self.sequences[i].2 = fresh,
                None => {
                    if self.sequences.len() >= MAX_SEQUENCES {
                        let lru = self.sequences.iter().enumerate().min_by_key(|(_, s)| s.1).map_or(0, |(i, _)| i);
                        self.sequences.swap_remove(lru);
                    }
                    self.sequences.push((id, 0, fresh));
                }
            }
        }
        let i = self.sequences.iter().position(|s| s.0 == id).unwrap_or(self.sequences.len() - 1);
        self.sequences[i].1 = self.uses;
        Ok(&mut self.sequences[i].2)
    }
}

impl Model for SensorHealthModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let TensorData::U8(bytes) = &Tensor::named(inputs, "frame")?.data else {
            return Err(ModelError::BadInput("frame must be UINT8".into()));
        };
        let frame = decode_tick(bytes)?;
        let id = match optional(inputs, "sequence_id") {
            Some(TensorData::I64(v)) if v.len() == 1 => v[0],
            Some(_) => return Err(ModelError::BadInput("sequence_id must be one INT64".into())),
            None => 0,
        };
        let start = match optional(inputs, "sequence_start") {
            Some(TensorData::Bool(v)) if v.len() == 1 => v[0],
            Some(_) => return Err(ModelError::BadInput("sequence_start must be one BOOL".into())),
            None => false,
        };
        let sensors = match optional(inputs, "sensors") {
            Some(TensorData::U8(v)) if v.len() <= MAX_SENSORS_JSON => Some(v.as_slice()),
            Some(_) => {
                return Err(ModelError::BadInput(format!(
                    "sensors must be UINT8 JSON of at most {MAX_SENSORS_JSON} bytes"
                )))
            }
            None => None,
        };
        let enabled = match optional(inputs, "enabled") {
            Some(TensorData::Bool(v)) if v.len() == 5 => [v[0], v[1], v[2], v[3], v[4]],
            Some(_) => {
                return Err(ModelError::BadInput("enabled must be five BOOL (lidar, radar, camera, imu, gps)".into()))
            }
            None => [true; 5],
        };
        let threshold = match optional(inputs, "threshold") {
            Some(TensorData::F64(v)) if v.len() == 1 && v[0] > 0.0 && v[0] <= 1.0 => v[0],
            Some(_) => return Err(ModelError::BadInput("threshold must be one FP64 in (0, 1]".into())),
            None => DEFAULT_THRESHOLD,
        };
        let monitor = self.monitor(id, start, sensors)?;
        monitor.threshold = threshold;
        let health = monitor.update(&frame, enabled);
        let mut cause = vec![0u8; 5 * CAUSE_BYTES];
        for (i, h) in health.iter().enumerate() {
            let b = h.cause.as_bytes();
            let n = b.len().min(CAUSE_BYTES);
            cause[i * CAUSE_BYTES..i * CAUSE_BYTES + n].copy_from_slice(&b[..n]);
        }
        Ok(vec![
            Tensor::new("score", vec![5], TensorData::F64(health.iter().map(|h| h.score).collect()))?,
            Tensor::new("alarm", vec![5], TensorData::Bool(health.iter().map(|h| h.alarm).collect()))?,
            Tensor::new("learning", vec![5], TensorData::Bool(health.iter().map(|h| h.learning).collect()))?,
            Tensor::new("cause", vec![5, CAUSE_BYTES], TensorData::U8(cause))?,
        ])
    }
}

/// The text of one sensor's `cause` (row `sensor` of the output).
pub fn cause_text(cause: &[u8], sensor: usize) -> String {
    let row = cause.get(sensor * CAUSE_BYTES..(sensor + 1) * CAUSE_BYTES).unwrap_or(&[]);
    let end = row.iter().position(|b| *b == 0).unwrap_or(row.len());
    String::from_utf8_lossy(&row[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use waypoint_sim::fault::{FaultKind, FaultSpec, Sensor};
    use waypoint_sim::{Scene, SceneConfig};

    use super::*;

    fn request(frame: &Frame, id: i64, start: bool) -> Vec<Tensor> {
        let b = encode_tick(frame);
        vec![
            Tensor::new("frame", vec![b.len()], TensorData::U8(b)).unwrap(),
            Tensor::new("sequence_id", vec![1], TensorData::I64(vec![id])).unwrap(),
            Tensor::new("sequence_start", vec![1], TensorData::Bool(vec![start])).unwrap(),
        ]
    }

    fn cause(out: &[Tensor], sensor: usize) -> String {
        let TensorData::U8(c) = &out[3].data else { panic!("cause is UINT8") };
        cause_text(c, sensor)
    }

    fn alarms(out: &[Tensor]) -> Vec<bool> {
        let TensorData::Bool(a) = &out[1].data else { panic!("alarm is BOOL") };
        a.clone()
    }

    #[test]
    fn served_monitor_answers_as_the_in_line_one_and_keeps_sequences_apart() {
        let mut scene = Scene::new(SceneConfig::default()).unwrap();
        scene
            .inject_fault(FaultSpec {
                sensor: Sensor::Radar,
                kind: FaultKind::Dropout,
                start_secs: Some(30.0),
                duration_secs: 4.0,
                magnitude: None,
            })
            .unwrap();
        let mut model = SensorHealthModel::default();
        let mut reference = HealthMonitor::for_sensors(&scene.config().sensors);
        let mut other_sequence_alarmed = false;
        let mut radar_alarmed = false;
        for k in 0..400 {
            let frame = scene.tick();
            let out = model.infer(&request(&frame, 1, k == 0)).unwrap();
            let want = reference.update(&frame, [true; 5]);
            let TensorData::F64(score) = &out[0].data else { panic!("score is FP64") };
            for i in 0..5 {
                assert_eq!(score[i], want[i].score, "tick {k} sensor {i}");
                assert_eq!(cause(&out, i), want[i].cause);
            }
            radar_alarmed |= alarms(&out)[1];
            // A second sequence fed only the first 100 ticks again, interleaved: its own state.
            if k < 100 {
                let again = model.infer(&request(&frame, 2, k == 0)).unwrap();
                other_sequence_alarmed |= alarms(&again).iter().any(|a| *a);
            }
        }
        assert!(radar_alarmed, "the radar dropout raised no alarm");
        assert!(!other_sequence_alarmed);
    }

    #[test]
    fn bad_inputs_are_refused_and_sequences_are_bounded() {
        let mut model = SensorHealthModel::default();
        let junk = Tensor::new("frame", vec![3], TensorData::U8(vec![1, 2, 3])).unwrap();
        assert!(matches!(model.infer(&[junk]), Err(ModelError::BadInput(_))));
        let mut scene = Scene::new(SceneConfig::default()).unwrap();
        let frame = scene.tick();
        let mut req = request(&frame, 0, true);
        req.push(Tensor::new("enabled", vec![2], TensorData::Bool(vec![true, false])).unwrap());
        assert!(matches!(model.infer(&req), Err(ModelError::BadInput(_))));
        for id in 0..(MAX_SEQUENCES as i64 * 3) {
            model.infer(&request(&frame, id, false)).unwrap();
        }
        assert_eq!(model.sequences.len(), MAX_SEQUENCES);
    }
}
