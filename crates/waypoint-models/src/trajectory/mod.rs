//! Trajectory prediction: from an agent's last 8 positions (0.4 s apart) predict its next 12.
//!
//! [`cv`] and [`kalman`] are the baselines; [`tcn`] the learned model, trained by [`train`] and
//! fine-tuned on live windows by [`finetune`]; [`data`] turns ETH/UCY files into evaluation
//! windows and defines the agent-centric frame; [`eval`] measures them beside the published
//! figures; [`model`] serves them.

pub mod cv;
pub mod data;
pub mod eval;
mod fast_tcn;
pub mod finetune;
pub mod kalman;
pub mod model;
pub mod onnx_export;
pub mod road;
pub mod road_model;
pub mod tcn;
pub mod train;
mod trainer;

pub use cv::ConstantVelocity;

/// Observed steps (3.2 s).
pub const OBS_STEPS: usize = 8;
/// Predicted steps (4.8 s).
pub const PRED_STEPS: usize = 12;
/// Time between steps.
pub const STEP_SECS: f64 = 0.4;
