//! What one simulator tick produces: sensor data and ground truth.

use serde::{Deserialize, Serialize};

use crate::agent::AgentKind;
use crate::fault::FaultRecord;
use crate::map::SignalPhase;

/// Pose of a sensor in the world frame (x east, y north, z up; yaw from +x, counter-clockwise).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SensorPose {
    pub x_m: f64,
    pub y_m: f64,
    pub z_m: f64,
    pub yaw_rad: f64,
}

/// One full lidar sweep. Points are in the sensor frame (x forward, y left, z up), as
/// `[x_m, y_m, z_m, intensity]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LidarSweep {
    pub t_secs: f64,
    pub world_from_sensor: SensorPose,
    pub points: Vec<[f32; 4]>,
}

/// One radar detection, in the sensor frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RadarTarget {
    pub range_m: f64,
    pub azimuth_rad: f64,
    pub range_rate_mps: f64,
    pub rcs_dbsm: f64,
    /// Ground truth: the agent this return came from (none for clutter). Never sent as sensor
    /// data; kept for evaluation.
    #[serde(skip)]
    pub truth_agent_id: Option<u32>,
}

/// One radar scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadarScan {
    pub t_secs: f64,
    pub world_from_sensor: SensorPose,
    pub targets: Vec<RadarTarget>,
}

/// One 2-D detection box in the camera image, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CameraBox {
    pub class: AgentKind,
    pub left_px: f64,
    pub top_px: f64,
    pub right_px: f64,
    pub bottom_px: f64,
    /// Fraction of the box hidden behind nearer objects, 0..1.
    pub occlusion: f64,
    #[serde(skip)]
    pub truth_agent_id: Option<u32>,
}

/// One camera frame's detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraFrame {
    pub t_secs: f64,
    pub width_px: u32,
    pub height_px: u32,
    pub boxes: Vec<CameraBox>,
}

/// One IMU sample in the body frame (x forward, y left, z up).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImuSample {
    pub t_secs: f64,
    pub accel_x_mps2: f64,
    pub accel_y_mps2: f64,
    pub accel_z_mps2: f64,
    pub yaw_rate_rps: f64,
}

/// One GPS fix in the local world frame, metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpsFix {
    pub t_secs: f64,
    pub x_m: f64,
    pub y_m: f64,
    /// The receiver's own claimed one-sigma accuracy.
    pub sigma_m: f64,
}

/// Ground truth for one agent (or the ego vehicle).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AgentTruth {
    pub id: u32,
    pub kind: AgentKind,
    pub x_m: f64,
    pub y_m: f64,
    pub length_m: f64,
    pub width_m: f64,
    pub height_m: f64,
    pub yaw_rad: f64,
    pub vx_mps: f64,
    pub vy_mps: f64,
    pub yaw_rate_rps: f64,
}

/// Everything that is really true at the end of a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub t_secs: f64,
    pub ego: AgentTruth,
    pub agents: Vec<AgentTruth>,
    /// Faults active at any time during the tick (with their full start and end).
    pub faults: Vec<FaultRecord>,
    pub signal: SignalPhase,
}

/// The output of one tick: the sensor data that arrived during it, and the truth at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub seq: u64,
    pub t_secs: f64,
    pub lidar: Vec<LidarSweep>,
    pub radar: Vec<RadarScan>,
    pub camera: Vec<CameraFrame>,
    pub imu: Vec<ImuSample>,
    pub gps: Vec<GpsFix>,
    pub truth: GroundTruth,
}
