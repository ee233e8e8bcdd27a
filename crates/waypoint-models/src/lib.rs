//! `waypoint-models`: Waypoint's models as plain synchronous Rust.
//!
//! [`tensor`] holds the tensor type exchanged with the serving layer; [`model`] the [`Model`]
//! trait every servable model implements and the declared input/output specs; [`native`] the
//! registry of native model implementations the server can instantiate by name; one module per
//! model family (`trajectory`, ...). Nothing here knows about async runtimes or the network.

pub mod anomaly;
pub mod detection;
pub mod fusion;
pub mod model;
pub mod native;
pub mod onnx;
pub mod plot;
pub mod tensor;
pub mod trajectory;

pub use model::{Model, TensorSpec};
pub use tensor::{DataType, Tensor, TensorData};

/// Errors of model construction and inference.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The caller's input is wrong (shape, datatype, values).
    #[error("{0}")]
    BadInput(String),
    /// Weights or configuration cannot be used.
    #[error("cannot load model: {0}")]
    Load(String),
    /// Evaluation or training data cannot be read or written, or a scene cannot be built.
    #[error("{0}")]
    Data(String),
    /// A defect or unexpected state inside the model.
    #[error("internal model error: {0}")]
    Internal(String),
}

impl ModelError {
    /// A file or directory of evaluation or training data that could not be read or written.
    pub fn data_at(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        ModelError::Data(format!("{}: {e}", path.display()))
    }
}
