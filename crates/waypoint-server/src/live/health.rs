//! Sensor health through the serving core: every tick's sensor output goes to the served
//! `sensor_health` model (a stateful model: one sequence per scene run, a new one after each
//! reset). Routing picks the version that answers the tick (key `tick-<seq>`); every other
//! version the model's policy names (a split's, a shadow, a canary's two) is fed the same tick,
//! since its state must not miss ticks, and every version's alarms are scored online against the
//! faults truly active.

use waypoint_models::anomaly::health::DEFAULT_THRESHOLD;
use waypoint_models::anomaly::health_model::{cause_text, encode_tick};
use waypoint_models::{Tensor, TensorData};
use waypoint_protocol::SensorHealthMsg;
use waypoint_sim::fault::Sensor;
use waypoint_sim::sensors::SensorsConfig;
use waypoint_sim::Frame;

use crate::live::Context;

/// Model used for live sensor health.
pub const HEALTH_MODEL: &str = "sensor_health";

/// The scene's side of the sensor health sequence.
#[derive(Debug)]
pub struct Health {
    ctx: Option<Context>,
    sequence: i64,
    /// The next request starts the sequence.
    start: bool,
    sensors_json: Vec<u8>,
    pub threshold: f64,
    /// A failure to reach the model was logged (once until it answers again).
    warned: bool,
}

/// One tick's health as the answering version gave it.
#[derive(Debug)]
pub struct Answer {
    pub version: String,
    pub sensors: Vec<SensorHealthMsg>,
}

impl Health {
    /// Health for a scene with these sensors; `ctx` is absent without a runtime (no health then).
    pub fn new(ctx: Option<Context>, sensors: &SensorsConfig) -> Self {
        Self {
            ctx,
            sequence: 0,
            start: true,
            sensors_json: serde_json::to_vec(sensors).unwrap_or_default(),
            threshold: DEFAULT_THRESHOLD,
            warned: false,
        }
    }

    /// A new sequence (after a scene reset): every version starts learning afresh.
    pub fn restart(&mut self, sensors: &SensorsConfig) {
        self.sequence += 1;
        self.start = true;
        self.sensors_json = serde_json::to_vec(sensors).unwrap_or_default();
    }

    fn warn(&mut self, why: &str) {
        if !self.warned {
            tracing::warn!(model = HEALTH_MODEL, why, "no sensor health this tick");
            self.warned = true;
        }
    }

    /// Scores one tick through every version in use; returns the routed version's answer.
    pub fn tick(&mut self, frame: &Frame, enabled: [bool; 5], tick_secs: f64) -> Option<Answer> {
        let ctx = self.ctx.clone()?;
        let key = format!("tick-{}", frame.seq);
        let (answering, shadow) =
            match crate::lifecycle::routing::resolve(&ctx.registry, &ctx.router, HEALTH_MODEL, None, &key) {
                Ok(r) => r,
                Err(e) => {
                    self.warn(&e.to_string());
                    return None;
                }
            };
        let mut versions = vec![answering];
        let named = ctx.router.versions_in_use(HEALTH_MODEL);
        let others = named.iter().filter_map(|v| ctx.registry.get(HEALTH_MODEL, Some(&v.to_string())).ok());
        for v in shadow.into_iter().chain(others) {
            if !versions.iter().any(|x| x.version == v.version) {
                versions.push(v);
            }
        }
        let bytes = encode_tick(frame);
        let inputs = [
            Tensor::new("frame", vec![bytes.len()], TensorData::U8(bytes)),
            Tensor::new("sequence_id", vec![1], TensorData::I64(vec![self.sequence])),
            Tensor::new("sequence_start", vec![1], TensorData::Bool(vec![self.start])),
            Tensor::new("sensors", vec![self.sensors_json.len()], TensorData::U8(self.sensors_json.clone())),
            Tensor::new("enabled", vec![5], TensorData::Bool(enabled.to_vec())),
            Tensor::new("threshold", vec![1], TensorData::F64(vec![self.threshold])),
        ];
        let mut inputs: Vec<Tensor> = match inputs.into_iter().collect() {
            Ok(i) => i,
            Err(e) => {
                self.warn(&e.to_string());
                return None;
            }
        };
        self.start = false;
        let mut answer = None;
        let last = versions.len() - 1;
        for (i, loaded) in versions.iter().enumerate() {
            let version = loaded.version.to_string();
            // The last version takes the inputs; the others a copy (the frame is large).
            let request = if i == last { std::mem::take(&mut inputs) } else { inputs.clone() };
            let out = match ctx.handle.block_on(crate::serving::inference::infer_on(loaded, request)) {
                Ok(o) => o,
                Err(e) => {
                    self.warn(&format!("version {version}: {e}"));
                    continue;
                }
            };
            let Some(sensors) = parse(&out.outputs, enabled) else {
                self.warn(&format!("version {version} answered without score, alarm, learning and cause"));
                continue;
            };
            let alarms = std::array::from_fn(|k| sensors[k].alarm);
            ctx.online.record_health(HEALTH_MODEL, &version, frame.seq, alarms, &frame.truth, tick_secs);
            if i == 0 {
                self.warned = false;
                answer = Some(Answer { version, sensors });
            }
        }
        answer
    }
}

/// The five sensors' health from the model's outputs.
fn parse(outputs: &[Tensor], enabled: [bool; 5]) -> Option<Vec<SensorHealthMsg>> {
    let get = |name: &str| outputs.iter().find(|t| t.name == name).map(|t| &t.data);
    let (Some(TensorData::F64(score)), Some(TensorData::Bool(alarm)), Some(TensorData::Bool(learning))) =
        (get("score"), get("alarm"), get("learning"))
    else {
        return None;
    };
    let Some(TensorData::U8(cause)) = get("cause") else { return None };
    if score.len() != 5 || alarm.len() != 5 || learning.len() != 5 {
        return None;
    }
    Some(
        Sensor::ALL
            .into_iter()
            .enumerate()
            .map(|(i, sensor)| SensorHealthMsg {
                sensor,
                enabled: enabled[i],
                score: score[i],
                alarm: alarm[i],
                cause: cause_text(cause, i),
                learning: learning[i],
            })
            .collect(),
    )
}
