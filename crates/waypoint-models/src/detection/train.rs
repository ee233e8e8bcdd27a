//! `train detection`: a new version of the detector's classifier, trained on clusters drawn
//! from seeded simulated scenes seen by the HDL-64E and by the live scene's 32-beam lidar, its
//! scores then Platt-calibrated on scenes of their own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use waypoint_sim::sensors::LidarConfig;
use waypoint_sim::Fleet;

use super::classifier::{self, Classifier, ClassifierReport};
use super::eval_sim::{self, calibration_error};
use super::model::CLASSIFIER_FILE;
use super::segment::SegmentConfig;
use super::{simdata, LidarDetector};
use crate::model::next_version;
use crate::ModelError;

/// Simulated seconds of each calibration scene.
const CALIBRATION_SECONDS: u32 = 30;
/// The calibration scenes: seeds 3000-3003 on the HDL-64E, 3100-3103 on the 32-beam lidar.
pub const CALIBRATION_SEEDS: [[u64; 4]; 2] = [[3000, 3001, 3002, 3003], [3100, 3101, 3102, 3103]];

/// What a training draws on.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Scenes seen by the HDL-64E (seeds 1000, 1001, ...).
    pub scenes: u64,
    /// Scenes seen by the 32-beam lidar (seeds 2000, 2001, ...).
    pub scenes_hdl32e: u64,
    /// Vehicles parked beside the road in each training scene.
    pub parked: usize,
    /// The largest sensor pitch and roll drawn for a training scene, degrees
    /// ([`simdata::generate`]); zero for a level sensor throughout.
    pub max_tilt_deg: [f64; 2],
    /// The vehicles' bodies in the training scenes (the calibration scenes keep sedans).
    pub fleet: Fleet,
    /// Vehicles' windows let the beams into the cabin in the training scenes
    /// ([`LidarConfig::vehicle_glass`]; the calibration scenes' cabins stay solid).
    pub vehicle_glass: bool,
    pub seed: u64,
}

/// A trained version.
#[derive(Debug)]
pub struct Trained {
    pub dir: PathBuf,
    pub report: ClassifierReport,
    /// Expected calibration error on the calibration scenes' detections, before and after.
    pub ece_before: f64,
    pub ece_after: f64,
}

/// Trains a new version of `model` in `repository` (weights, `train.json`, `version.toml`, and
/// `config.toml` when the model has none); `note` hears the progress.
pub fn train_version(
    repository: &Path,
    model: &str,
    o: &TrainOptions,
    note: &mut dyn FnMut(String),
) -> Result<Trained, ModelError> {
    let started = Instant::now();
    let seg = SegmentConfig::default();
    let tilt = o.max_tilt_deg;
    let glass = |l: LidarConfig| LidarConfig { vehicle_glass: o.vehicle_glass, ..l };
    let mut samples =
        simdata::generate(1000, o.scenes, 300, 5, &seg, &glass(LidarConfig::hdl64e()), o.parked, tilt, o.fleet);
    samples.extend(simdata::generate(
        2000,
        o.scenes_hdl32e,
        300,
        5,
        &seg,
        &glass(LidarConfig::default()),
        o.parked,
        tilt,
        o.fleet,
    ));
    note(format!(
        "{} clusters from {} + {} simulated scenes (64 + 32 beams, {:.0} s)",
        samples.len(),
        o.scenes,
        o.scenes_hdl32e,
        started.elapsed().as_secs_f64()
    ));
    let dir = repository.join(model);
    let vdir = dir.join(next_version(&dir).to_string());
    std::fs::create_dir_all(&vdir).map_err(|e| ModelError::data_at(&vdir, e))?;
    let weights = vdir.join(CLASSIFIER_FILE);
    let report = classifier::train(&samples, o.seed, 600, &weights)?;
    // Calibration: Platt scaling of the detections' scores, fitted on scenes of its own:
    // whether each detection is right, as `eval detection --sim` judges it, against its score.
    let mut judged = Vec::new();
    for (seeds, lidar) in CALIBRATION_SEEDS.iter().zip([LidarConfig::hdl64e(), LidarConfig::default()]) {
        let det = LidarDetector {
            segment: seg,
            classifier: Classifier::load(&weights)?,
            merge_fragments: true,
            ring_spacing_rad: lidar.ring_spacing_rad(),
            azimuth_step_rad: lidar.azimuth_step_rad(),
        };
        judged.extend(eval_sim::evaluate(&det, &lidar, seeds, CALIBRATION_SECONDS, 0, Fleet::Sedans, 0.0)?.judged);
    }
    let platt = classifier::fit_platt(&judged)
        .ok_or_else(|| ModelError::Data("calibration scenes gave no right and wrong detections".into()))?;
    classifier::save_platt(&weights, platt)?;
    let calibrated = Classifier::load(&weights)?;
    let ece_of =
        |f: &dyn Fn(f32) -> f32| calibration_error(&judged.iter().map(|(s, r)| (f(*s), *r)).collect::<Vec<_>>());
    let (ece_before, ece_after) = (ece_of(&|s| s), ece_of(&|s| calibrated.calibrated(s)));
    note(format!(
        "calibration on {} detections: expected calibration error {ece_before:.3} -> {ece_after:.3}",
        judged.len()
    ));
    let train_json = json!({
        "scenes": o.scenes, "scenes_hdl32e": o.scenes_hdl32e, "max_tilt_deg": o.max_tilt_deg, "fleet": o.fleet,
        "vehicle_glass": o.vehicle_glass, "report": report,
        "calibration": {"detections": judged.len(), "platt": platt, "ece_before": ece_before, "ece_after": ece_after},
    });
    let write = |p: PathBuf, text: String| std::fs::write(&p, text).map_err(|e| ModelError::data_at(&p, e));
    write(
        vdir.join("train.json"),
        serde_json::to_string_pretty(&train_json).map_err(|e| ModelError::Internal(e.to_string()))?,
    )?;
    write(
        vdir.join("version.toml"),
        format!(
            "description = \"classifier trained on {} simulated clusters{}{}, validation accuracy {:.3}; \
             scores calibrated on {} detections, expected calibration error {:.3} -> {:.3}\"\n",
            report.samples,
            if o.max_tilt_deg == [0.0, 0.0] {
                String::new()
            } else {
                format!(" (sensor tilted up to {}° in pitch, {}° in roll)", o.max_tilt_deg[0], o.max_tilt_deg[1])
            },
            match (o.fleet, o.vehicle_glass) {
                (Fleet::Sedans, false) => "",
                (Fleet::Mixed, false) => " (a mixed fleet of vehicles)",
                (Fleet::Sedans, true) => " (vehicles with windows)",
                (Fleet::Mixed, true) => " (a mixed fleet of vehicles with windows)",
            },
            report.val_accuracy,
            judged.len(),
            ece_before,
            ece_after
        ),
    )?;
    if !dir.join("config.toml").exists() {
        write(dir.join("config.toml"), DETECTION_CONFIG.to_string())?;
    }
    Ok(Trained { dir: vdir, report, ece_before, ece_after })
}

/// The repository configuration of a fresh detection model.
pub const DETECTION_CONFIG: &str = r#"# Lidar object detection: ground removal, clustering, box fitting, trained classifier.
platform = "waypoint"
backend = "lidar_detection"
max_batch_size = 0
instances = 1
queue_capacity = 64
timeout_ms = 5000

[[inputs]]
name = "points"
datatype = "FP32"
dims = [-1, 4]      # x, y, z (m, sensor frame: x forward, y left, z up), intensity

[[inputs]]
name = "ring_spacing_deg"
datatype = "FP32"
dims = [1]          # optional: vertical angle between the lidar's adjacent beams, default 0.43 (HDL-64E)
optional = true

[[inputs]]
name = "azimuth_step_deg"
datatype = "FP32"
dims = [1]          # optional: horizontal angle between the lidar's successive firings, default 0.18 (HDL-64E)
optional = true

[[outputs]]
name = "boxes"
datatype = "FP32"
dims = [-1, 7]      # x, y, z bottom, length, width, height (m), yaw (rad)

[[outputs]]
name = "classes"
datatype = "INT32"
dims = [-1]         # 0 vehicle, 1 pedestrian, 2 cyclist

[[outputs]]
name = "scores"
datatype = "FP32"
dims = [-1]
"#;
