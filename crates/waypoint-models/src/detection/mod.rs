//! Object detection from a lidar sweep: ground removal and clustering ([`segment`]), oriented
//! box fitting ([`boxfit`]), a trained classifier ([`classifier`]), a multi-object tracker
//! ([`tracker`]); training data from the simulator ([`simdata`]) and the KITTI reader and
//! evaluation ([`kitti`]). [`model`] serves it.

pub mod boxfit;
pub mod classifier;
pub mod kitti;
pub mod model;
pub mod segment;
pub mod simdata;
pub mod tracker;

use boxfit::FittedBox;
use classifier::Classifier;
use segment::SegmentConfig;

/// One detected object, in the sensor frame.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection {
    pub bbox: FittedBox,
    /// Index into [`classifier::CLASSES`].
    pub class: usize,
    /// Probability of that class.
    pub score: f32,
    pub points: usize,
}

/// The detection pipeline.
#[derive(Debug, Clone)]
pub struct LidarDetector {
    pub segment: SegmentConfig,
    pub classifier: Classifier,
}

impl LidarDetector {
    /// Detections of one sweep (`[x, y, z, intensity]` in the sensor frame), "other" excluded
    /// unless `keep_other`.
    pub fn detect(&self, points: &[[f32; 4]], keep_other: bool) -> Vec<Detection> {
        let (is_ground, ground_z) = segment::ground(points, &self.segment);
        let mut out = Vec::new();
        for c in segment::cluster_with_ground(points, &self.segment, &is_ground, &ground_z) {
            let pts: Vec<[f32; 4]> = c.iter().map(|i| points[*i]).collect();
            let g = c.iter().map(|i| f64::from(ground_z[*i])).sum::<f64>() / c.len() as f64;
            let Some(b) = boxfit::fit(&pts, g) else { continue };
            // Implausibly large clusters are structure (walls, hedges), not objects.
            if b.length_m > 12.0 || b.height_m < 0.3 {
                continue;
            }
            let probs = self.classifier.predict(&classifier::features(&b, &pts));
            let (class, score) =
                probs.iter().enumerate().fold((3, 0.0f32), |acc, (i, p)| if *p > acc.1 { (i, *p) } else { acc });
            if class == 3 && !keep_other {
                continue;
            }
            out.push(Detection { bbox: b, class, score, points: pts.len() });
        }
        out
    }
}
