//! The small trait every servable model implements, and its declared interface.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::tensor::{DataType, Tensor};
use crate::ModelError;

/// One input or output as declared in a model's configuration; `-1` marks a variable dimension
/// (the first dimension is the batch dimension when the model batches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub dims: Vec<i64>,
    /// An input the caller may leave out (the model then uses its default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl TensorSpec {
    pub fn new(name: &str, datatype: DataType, dims: &[i64]) -> Self {
        Self { name: name.into(), datatype, dims: dims.to_vec(), optional: false }
    }

    /// Whether a concrete shape fits this declaration.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        shape.len() == self.dims.len() && self.dims.iter().zip(shape).all(|(d, s)| *d < 0 || *d as usize == *s)
    }
}

/// A loaded model instance. Synchronous: the serving engine calls it from its own worker
/// thread with a whole batch (inputs concatenated along dimension 0, in declared order).
pub trait Model: Send {
    /// Runs one batch; returns the outputs in declared order, each with the same number of rows
    /// as the inputs.
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError>;
}

/// The highest version number in a model directory, if it has one.
pub fn latest_version(model_dir: &Path) -> Option<u64> {
    Some(next_version(model_dir) - 1).filter(|v| *v > 0)
}

/// The next free version number in a model directory.
pub fn next_version(model_dir: &Path) -> u64 {
    std::fs::read_dir(model_dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok()).max().unwrap_or(0))
        .unwrap_or(0)
        + 1
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn versions_are_the_numbered_directories() {
        let dir = std::env::temp_dir().join(format!("waypoint-versions-{}", std::process::id()));
        assert_eq!((latest_version(&dir), next_version(&dir)), (None, 1), "no directory");
        for name in ["1", "3", "notes", ".writing-4-1"] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
        }
        assert_eq!((latest_version(&dir), next_version(&dir)), (Some(3), 4));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
