//! The detector as served: `points` FP32 `[N, 4]` (x, y, z, intensity in the sensor frame) and,
//! optionally, `ring_spacing_deg` and `azimuth_step_deg` FP32 `[1]` (the vertical angle between
//! the lidar's adjacent beams and the horizontal one between its successive firings; default
//! the HDL-64E's, as in KITTI) to
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
                ring_spacing_rad: super::HDL64E_RING_SPACING_RAD,
                azimuth_step_rad: super::HDL64E_AZIMUTH_STEP_RAD,
            },
        })
    }
}

/// The optional input `name`, one angle in (0, 10] degrees, in radians; `default` without it.
fn lidar_angle(inputs: &[Tensor], name: &str, default: f64) -> Result<f64, ModelError> {
    let Some(t) = inputs.iter().find(|t| t.name == name) else { return Ok(default) };
    match t.as_f32()? {
        [d] if d.is_finite() && *d > 0.0 && *d <= 10.0 => Ok(f64::from(*d).to_radians()),
        other => Err(ModelError::BadInput(format!("{name} must be one angle in (0, 10] degrees, got {other:?}"))),
    }
}

impl Model for DetectionModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let pts = Tensor::named(inputs, "points")?;
        if pts.shape.len() != 2 || pts.shape[1] != 4 {
            return Err(ModelError::BadInput(format!("points must be [N, 4], got {:?}", pts.shape)));
        }
        let spacing = lidar_angle(inputs, "ring_spacing_deg", super::HDL64E_RING_SPACING_RAD)?;
        let azimuth_step = lidar_angle(inputs, "azimuth_step_deg", super::HDL64E_AZIMUTH_STEP_RAD)?;
        let v = pts.as_f32()?;
        let points: Vec<[f32; 4]> = v.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        self.detector.ring_spacing_rad = spacing;
        self.detector.azimuth_step_rad = azimuth_step;
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
