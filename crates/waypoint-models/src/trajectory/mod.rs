//! Trajectory prediction: from an agent's last 8 positions (0.4 s apart) predict its next 12.
//!
//! [`cv`] and [`kalman`] are the baselines; [`tcn`] the learned model, trained by [`train`] and
//! fine-tuned on live windows by [`finetune`]; [`data`] turns ETH/UCY files into evaluation
//! windows and defines the agent-centric frame; [`eval`] measures them beside the published
//! figures; [`model`] serves them. [`road`] predicts vehicles and cyclists on the simulated
//! intersection from its lanes and signal, served by [`road_model`].

pub mod cv;
pub mod data;
pub mod eval;
mod fast_tcn;
pub mod finetune;
pub mod kalman;
pub mod model;
pub mod onnx_export;
pub mod road;
pub mod road_fit;
pub mod road_learned;
pub mod road_model;
pub mod tcn;
pub mod train;
mod trainer;

pub use cv::ConstantVelocity;

use crate::tensor::Tensor;
use crate::ModelError;

/// Observed steps (3.2 s).
pub const OBS_STEPS: usize = 8;
/// Predicted steps (4.8 s).
pub const PRED_STEPS: usize = 12;
/// Time between steps.
pub const STEP_SECS: f64 = 0.4;

/// The `history` input of every trajectory model, checked (`[N, 8, 2]` FP32): each row's 8
/// positions. With `finite`, a row with a non-finite value is refused.
pub(crate) fn history_rows(inputs: &[Tensor], finite: bool) -> Result<Vec<[[f32; 2]; OBS_STEPS]>, ModelError> {
    let history = Tensor::named(inputs, "history")?;
    if history.shape.len() != 3 || history.shape[1] != OBS_STEPS || history.shape[2] != 2 {
        return Err(ModelError::BadInput(format!("history must be [N, {OBS_STEPS}, 2], got {:?}", history.shape)));
    }
    let h = history.as_f32()?;
    (0..history.shape[0])
        .map(|r| {
            let obs: [[f32; 2]; OBS_STEPS] =
                std::array::from_fn(|k| [h[(r * OBS_STEPS + k) * 2], h[(r * OBS_STEPS + k) * 2 + 1]]);
            if finite && obs.iter().flatten().any(|v| !v.is_finite()) {
                return Err(ModelError::BadInput(format!("history row {r} has a non-finite value")));
            }
            Ok(obs)
        })
        .collect()
}
