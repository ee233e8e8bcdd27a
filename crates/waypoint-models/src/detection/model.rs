//! The detector as served: `points` FP32 `[N, 4]` (x, y, z, intensity in the sensor frame) to
//! `boxes` FP32 `[M, 7]` (x, y, z bottom, length, width, height, yaw), `classes` INT32 `[M]`
//! (0 vehicle, 1 pedestrian, 2 cyclist) and `scores` FP32 `[M]`.

use std::path::Path;

use super::classifier::Classifier;
use super::segment::SegmentConfig;
use super::LidarDetector;
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// Classifier weight file in a version directory.
pub const CLASSIFIER_FILE: &str = "classifier.safetensors";

/// Serves [`LidarDetector`].
#[derive(Debug, Clone)]
pub struct DetectionModel {
    pub detector: LidarDetector,
}

impl DetectionModel {
    pub fn load(version_dir: &Path) -> Result<Self, ModelError> {
        Ok(Self {
            detector: LidarDetector {
                segment: SegmentConfig::default(),
                classifier: Classifier::load(&version_dir.join(CLASSIFIER_FILE))?,
                merge_fragments: true,
            },
        })
    }
}

impl Model for DetectionModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let pts = inputs.first().ok_or_else(|| ModelError::BadInput("missing input `points`".into()))?;
        if pts.shape.len() != 2 || pts.shape[1] != 4 {
            return Err(ModelError::BadInput(format!("points must be [N, 4], got {:?}", pts.shape)));
        }
        let v = pts.as_f32()?;
        let points: Vec<[f32; 4]> = v.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        let dets = self.detector.detect(&points, false);
        let m = dets.len();
        let boxes: Vec<f32> = dets
            .iter()
            .flat_map(|d| {
                let b = d.bbox;
                [b.x_m, b.y_m, b.z_m, b.length_m, b.width_m, b.height_m, b.yaw_rad].map(|x| x as f32)
            })
            .collect();
        Ok(vec![
            Tensor::new("boxes", vec![m, 7], TensorData::F32(boxes))?,
            Tensor::new("classes", vec![m], TensorData::I32(dets.iter().map(|d| d.class as i32).collect()))?,
            Tensor::new("scores", vec![m], TensorData::F32(dets.iter().map(|d| d.score).collect()))?,
        ])
    }
}
