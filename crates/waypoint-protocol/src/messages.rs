//! The messages of protocol v1. Every message is a map with a `type`; requests carry an `id`
//! that the reply echoes.

use serde::{Deserialize, Serialize};
use waypoint_sim::fault::{FaultKind, FaultRecord, Sensor};
use waypoint_sim::frame::{AgentTruth, CameraBox, GpsFix, GroundTruth, SensorPose};
use waypoint_sim::map::SignalPhase;
use waypoint_sim::AgentKind;

use crate::bulk::{Bulk, BulkFormat, Compression};

/// A request id chosen by the client: a number or a string, echoed verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Num(u64),
    Str(String),
}

/// The live streams a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    /// Agent poses, signal and scene state, once per tick: what a map view draws.
    Scene,
    /// Full ground truth per tick: agents with velocities, the ego, faults.
    Truth,
    Lidar,
    Radar,
    Camera,
    Imu,
    Gps,
    /// Trajectory predictions for every agent, from the served `trajectory` model.
    Predictions,
    /// Objects detected in each lidar sweep by the served `detection` model, and the tracks
    /// built from them.
    Tracks,
    /// Per-sensor health scores from the anomaly monitor, once per tick.
    Health,
    /// Online error of the served models against the scene's ground truth, once a second.
    Evaluation,
}

impl StreamName {
    pub const ALL: [StreamName; 11] = [
        StreamName::Scene,
        StreamName::Truth,
        StreamName::Lidar,
        StreamName::Radar,
        StreamName::Camera,
        StreamName::Imu,
        StreamName::Gps,
        StreamName::Predictions,
        StreamName::Tracks,
        StreamName::Health,
        StreamName::Evaluation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StreamName::Scene => "scene",
            StreamName::Truth => "truth",
            StreamName::Lidar => "lidar",
            StreamName::Radar => "radar",
            StreamName::Camera => "camera",
            StreamName::Imu => "imu",
            StreamName::Gps => "gps",
            StreamName::Predictions => "predictions",
            StreamName::Tracks => "tracks",
            StreamName::Health => "health",
            StreamName::Evaluation => "evaluation",
        }
    }
}

/// How a subscriber wants bulk data encoded. Negotiated per connection; the last `subscribe`
/// sets it for every stream of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamOptions {
    /// Compress `bin` payloads (MessagePack connections only; ignored on JSON).
    pub compression: Compression,
    /// `f32`: lidar points as f32 metres; `i16`: as i16 centimetres (±327 m, 5 mm rounding).
    pub lidar_format: BulkFormat,
}

/// A scene command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Resume ticking.
    Start,
    /// Pause ticking (sensor streams go quiet; the `scene` stream repeats its state once a
    /// second with `running: false`).
    Stop,
    /// Rebuild the scene from its configuration with a new seed.
    Reset {
        seed: u64,
    },
    AddAgent {
        kind: AgentKind,
    },
    RemoveAgent {
        agent_id: u32,
    },
    /// Remove every agent but the ego vehicle.
    Clear,
    InjectFault {
        sensor: Sensor,
        fault: FaultKind,
        duration_secs: f64,
        #[serde(default)]
        magnitude: Option<f64>,
        /// Scene time to start at; now when absent.
        #[serde(default)]
        start_secs: Option<f64>,
    },
    ClearFaults,
    SetSensor {
        sensor: Sensor,
        enabled: bool,
    },
    /// Scene time per wall-clock second (1 = real time), 0.1 ..= 10.
    SetRate {
        speed: f64,
    },
    /// Alarm threshold of the sensor-health scores, in (0, 1].
    SetThreshold {
        value: f64,
    },
    /// Play a recording from this time (seconds of scene time); only while one plays
    /// (`serve --replay`).
    Seek {
        t_secs: f64,
    },
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe {
        id: RequestId,
        streams: Vec<StreamName>,
        #[serde(default)]
        options: StreamOptions,
    },
    Unsubscribe {
        id: RequestId,
        streams: Vec<StreamName>,
    },
    Command {
        id: RequestId,
        command: Command,
    },
    Ping {
        id: RequestId,
    },
    /// One inference request; answered by `infer_result` or `error`.
    Infer {
        id: RequestId,
        #[serde(flatten)]
        request: InferRequest,
    },
    /// Many inference requests answered in one `batch_result`; a failing request does not
    /// fail its siblings.
    Batch {
        id: RequestId,
        requests: Vec<InferRequest>,
    },
}

impl ClientMessage {
    /// The `type` values of client messages.
    pub const TYPES: [&'static str; 6] = ["subscribe", "unsubscribe", "command", "ping", "infer", "batch"];
}

/// Most requests one `batch` message may carry.
pub const MAX_BATCH_REQUESTS: usize = 4096;

/// A tensor on the wire: Open Inference Protocol datatype names (`FP32`, `FP64`, `INT32`,
/// `INT64`, `UINT8`, `BOOL`); `data` is a `bin` of little-endian values (MessagePack) or an
/// array of numbers (JSON), row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireTensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<u64>,
    pub data: Bulk,
}

/// What to run: a model (and optionally a version) on named inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub inputs: Vec<WireTensor>,
    /// Output names to return; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<String>>,
}

/// The result of one inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferResult {
    pub model: String,
    pub version: String,
    pub outputs: Vec<WireTensor>,
}

/// One entry of a `batch_result`, in request order: `result` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<InferResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// An error inside a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not decodable, or a field is missing or of the wrong kind.
    BadMessage,
    /// A `type` this server does not know.
    UnknownType,
    /// Larger than the server accepts.
    TooLarge,
    /// Well-formed but refused (e.g. an agent id that does not exist).
    BadCommand,
    /// No such model or version.
    NotFound,
    /// Inputs do not match the model (names, datatypes, shapes).
    BadInput,
    /// The request did not finish within the model's deadline.
    Timeout,
    /// The server is too busy to take the request now.
    Overloaded,
    /// The call needs a token this connection did not present (`--api-token`, `--infer-token`).
    Unauthorized,
    /// Too many scene commands from this client: retry after the time the message says.
    RateLimited,
    Internal,
}

/// Result of a successful request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyBody {
    /// Streams subscribed after the request (subscribe/unsubscribe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Vec<StreamName>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultRecord>,
    /// Scene time when the command took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_secs: Option<f64>,
}

/// One agent as drawn on the map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AgentPose {
    pub id: u32,
    pub kind: AgentKind,
    pub x_m: f64,
    pub y_m: f64,
    pub yaw_rad: f64,
    pub speed_mps: f64,
    pub length_m: f64,
    pub width_m: f64,
}

impl From<&AgentTruth> for AgentPose {
    fn from(a: &AgentTruth) -> Self {
        Self {
            id: a.id,
            kind: a.kind,
            x_m: a.x_m,
            y_m: a.y_m,
            yaw_rad: a.yaw_rad,
            speed_mps: a.vx_mps.hypot(a.vy_mps),
            length_m: a.length_m,
            width_m: a.width_m,
        }
    }
}

/// Per-sensor switch state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SensorState {
    pub sensor: Sensor,
    pub enabled: bool,
}

/// `scene` stream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneMsg {
    pub seq: u64,
    pub t_secs: f64,
    pub running: bool,
    pub speed: f64,
    pub seed: u64,
    pub ego: AgentPose,
    pub agents: Vec<AgentPose>,
    pub signal: SignalPhase,
    pub sensors: Vec<SensorState>,
    pub active_faults: Vec<FaultRecord>,
}

/// `truth` stream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthMsg {
    pub seq: u64,
    #[serde(flatten)]
    pub truth: GroundTruth,
}

/// `lidar` stream message: one sweep in the sensor frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LidarMsg {
    pub seq: u64,
    pub t_secs: f64,
    pub world_from_sensor: SensorPose,
    pub count: u32,
    /// `f32`: `[x_m, y_m, z_m, intensity]` per point. `i16`: `[x_cm, y_cm, z_cm,
    /// intensity × 32767]` per point.
    pub format: BulkFormat,
    pub compression: Compression,
    pub points: Bulk,
}

/// Column order of [`RadarMsg::targets`].
pub const RADAR_COLUMNS: [&str; 4] = ["range_m", "azimuth_rad", "range_rate_mps", "rcs_dbsm"];

/// `radar` stream message: one scan, `count` rows of [`RADAR_COLUMNS`] as f32.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadarMsg {
    pub seq: u64,
    pub t_secs: f64,
    pub world_from_sensor: SensorPose,
    pub count: u32,
    pub targets: Bulk,
}

/// `camera` stream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraMsg {
    pub seq: u64,
    pub t_secs: f64,
    pub width_px: u32,
    pub height_px: u32,
    pub boxes: Vec<CameraBox>,
}

/// Column order of [`ImuMsg::samples`].
pub const IMU_COLUMNS: [&str; 5] = ["dt_secs", "accel_x_mps2", "accel_y_mps2", "accel_z_mps2", "yaw_rate_rps"];

/// `imu` stream message: the samples delivered during one tick, `count` rows of
/// [`IMU_COLUMNS`] as f32; `dt_secs` is relative to `t0_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImuMsg {
    pub seq: u64,
    pub t0_secs: f64,
    pub count: u32,
    pub samples: Bulk,
}

/// `gps` stream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsMsg {
    pub seq: u64,
    pub fixes: Vec<GpsFix>,
}

/// `predictions` stream message: for `count` agents (in `agent_ids` order), 12 future
/// positions `[x_m, y_m]` (f32, `count × 12 × 2`) and their one-sigma uncertainty along and
/// across the agent's heading (same layout), made at `t_secs` from the last 3.2 s of each
/// agent, 0.4 s apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionsMsg {
    pub seq: u64,
    pub t_secs: f64,
    pub model: String,
    pub version: String,
    pub count: u32,
    pub agent_ids: Vec<u32>,
    pub trajectory: Bulk,
    /// Absent when no agent's model gives an uncertainty (a model without a `sigma` output);
    /// NaN rows for the agents whose model gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<Bulk>,
    /// When a routing policy split the agents across versions: the version that predicted each
    /// agent, in `agent_ids` order (`version` is then the one that predicted most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    /// When the agents were sent to more than one model (vehicles and cyclists to the road
    /// model, the others to the people's): the model that predicted each agent, in `agent_ids`
    /// order (`model` is then the one that predicted most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// From a model of several futures: each agent's most likely futures (at most
    /// [`LIVE_MODES`]; count × M × 12 × 2 world positions, most likely first) and their probabilities (count × M). Absent otherwise, or when the agents'
    /// versions disagree on M.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modes: Option<Bulk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_probabilities: Option<Bulk>,
}

/// Most futures per agent the `predictions` stream carries.
pub const LIVE_MODES: usize = 3;

/// One detected object in the world frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedObject {
    pub x_m: f64,
    pub y_m: f64,
    pub length_m: f64,
    pub width_m: f64,
    pub height_m: f64,
    pub yaw_rad: f64,
    /// `vehicle`, `pedestrian` or `cyclist`.
    pub class: String,
    pub score: f32,
}

/// One confirmed track in the world frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackedObject {
    pub id: u32,
    pub x_m: f64,
    pub y_m: f64,
    pub vx_mps: f64,
    pub vy_mps: f64,
    pub class: u8,
    /// Frames since the track was last seen (0: seen in this sweep).
    pub misses: u32,
}

/// The fused (lidar + radar, unscented Kalman filter) state of one track.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FusedTrack {
    pub id: u32,
    pub x_m: f64,
    pub y_m: f64,
    pub vx_mps: f64,
    pub vy_mps: f64,
    pub yaw_rad: f64,
    pub yaw_rate_rps: f64,
    /// Trace of the position covariance, m².
    pub pos_var_m2: f64,
    /// Updates each sensor contributed to this track so far.
    pub lidar_updates: u32,
    pub radar_updates: u32,
    /// Latest normalised innovation squared per sensor (2 and 3 degrees of freedom).
    pub nis_lidar: Option<f64>,
    pub nis_radar: Option<f64>,
}

/// `tracks` stream message: the detections of one lidar sweep and the confirmed tracks after
/// it (`class`: 0 vehicle, 1 pedestrian, 2 cyclist), with each track's fused state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracksMsg {
    pub seq: u64,
    pub t_secs: f64,
    /// The detection model and version that answered this sweep.
    pub model: String,
    pub version: String,
    /// The `fusion` version that fused most of the tracks (absent when none did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion_version: Option<String>,
    pub detections: Vec<DetectedObject>,
    pub tracks: Vec<TrackedObject>,
    pub fused: Vec<FusedTrack>,
}

/// One sensor's health in a `health` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorHealthMsg {
    pub sensor: Sensor,
    pub enabled: bool,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// Score at or above the threshold.
    pub alarm: bool,
    /// The health feature that gave the score (empty when none scored).
    pub cause: String,
    /// Some of the sensor's health features are still learning what normal looks like (the
    /// first seconds after start, reset, or switching the sensor on).
    #[serde(default)]
    pub learning: bool,
}

/// `health` stream message: the anomaly monitor's scores after one tick. `faults` are the
/// faults truly active during the tick (ground truth, for display and scoring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthMsg {
    pub seq: u64,
    pub t_secs: f64,
    /// The served `sensor_health` version that scored this tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub threshold: f64,
    /// Largest score over the enabled sensors.
    pub combined: f64,
    pub sensors: Vec<SensorHealthMsg>,
    pub faults: Vec<FaultRecord>,
}

/// `evaluation` stream message: the online error of each served model, per version, against
/// the scene's ground truth, over a sliding window. Fields are absent until there is data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationMsg {
    pub t_secs: f64,
    pub models: Vec<ModelEvaluation>,
}

/// Online error of one model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvaluation {
    pub model: String,
    pub version: String,
    /// Named metrics (for example `ade_m`, `fde_m`, `recall`, `rmse_pos_m`).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Samples behind the metrics.
    pub samples: u64,
}

/// First message on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloMsg {
    pub protocol: String,
    pub server: String,
    pub streams: Vec<StreamName>,
    pub max_message_bytes: usize,
    pub send_queue_frames: usize,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello(HelloMsg),
    Reply {
        id: RequestId,
        result: ReplyBody,
    },
    Error {
        #[serde(default)]
        id: Option<RequestId>,
        code: ErrorCode,
        message: String,
    },
    Pong {
        id: RequestId,
        t_secs: f64,
    },
    InferResult {
        id: RequestId,
        #[serde(flatten)]
        result: InferResult,
    },
    BatchResult {
        id: RequestId,
        results: Vec<BatchItem>,
    },
    /// Stream frames were dropped because this client read too slowly.
    Dropped {
        count: u64,
        total: u64,
    },
    Scene(SceneMsg),
    Truth(TruthMsg),
    Lidar(LidarMsg),
    Radar(RadarMsg),
    Camera(CameraMsg),
    Imu(ImuMsg),
    Gps(GpsMsg),
    Predictions(PredictionsMsg),
    Tracks(TracksMsg),
    Health(HealthMsg),
    Evaluation(EvaluationMsg),
    /// Something every client should see about the server itself, outside any stream (a
    /// replica that lost its cluster and paused the scene; the scene resumed).
    Notice {
        /// `warning` while something is wrong, `info` when it is over.
        level: String,
        message: String,
    },
}
