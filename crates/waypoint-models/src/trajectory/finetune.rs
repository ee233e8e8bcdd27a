//! Fine-tuning: start from a saved version, train on given tracks, write a new version into a
//! model repository. The entry point of continuous learning (the server's learner calls it on
//! the tracks it observed) and of `waypoint train trajectory --init`.

use std::path::{Path, PathBuf};

use super::data::SocialWindow;
use super::model::WEIGHTS_FILE;
use super::tcn::{EpochRecord, TrainConfig, TrainReport, Trainer};
use crate::model::next_version;
use crate::ModelError;

/// Settings of a fine-tuning round: fewer epochs and a smaller step than training from scratch.
pub fn fine_tune_config(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        seed,
        batch_size: 64,
        learning_rate: 1e-3,
        patience: 8,
        validation_share: 0.2,
        // A round is a few hundred steps from a trained model: an average over them would
        // mostly be the base weights.
        ema_epochs: 0.0,
        // Live windows come in time order from overlapping tracks: validate on the latest, and
        // give back the base weights when no epoch beats them there.
        validate_on_latest: true,
        keep_start_if_best: true,
        // For a network of several futures, the loss it was trained with.
        top_weight: super::tcn::SHIPPED_TOP_WEIGHT,
        ..TrainConfig::default()
    }
}

/// Loads the weights of `base_version_dir` and trains them on `groups` of windows (one group per
/// source, balanced per epoch). Keeps the best epoch by validation ADE (with
/// [`fine_tune_config`], the base weights when no epoch beats them: `best_epoch` 0).
pub fn fine_tune(
    base_version_dir: &Path,
    groups: &[Vec<SocialWindow>],
    config: &TrainConfig,
    progress: impl FnMut(&EpochRecord),
) -> Result<(Trainer, TrainReport), ModelError> {
    if groups.iter().all(Vec::is_empty) {
        return Err(ModelError::BadInput("no training windows".into()));
    }
    let mut trainer = Trainer::load(&base_version_dir.join(WEIGHTS_FILE))?;
    let report = trainer.train_social_groups(groups, config, progress)?;
    Ok((trainer, report))
}

/// Writes `trainer` as a new version of the model in `model_dir`: weights, `train.json` (the
/// report and `source`, a description of the data and the starting point) and `version.toml`.
/// The version directory is written under a temporary name and renamed into place, so a
/// repository scan never sees it half written. Returns the version and its directory.
pub fn write_version(
    model_dir: &Path,
    trainer: &Trainer,
    report: &TrainReport,
    source: serde_json::Value,
    description: &str,
) -> Result<(u64, PathBuf), ModelError> {
    write_version_with(model_dir, |dir| trainer.save(&dir.join(WEIGHTS_FILE)), report, source, description)
}

/// Writes a new version of the model in `model_dir` as [`write_version`] does, its weights
/// written by `save` into the (temporary) version directory it is given.
pub fn write_version_with(
    model_dir: &Path,
    save: impl FnOnce(&Path) -> Result<(), ModelError>,
    report: &impl serde::Serialize,
    source: serde_json::Value,
    description: &str,
) -> Result<(u64, PathBuf), ModelError> {
    let io = |e: std::io::Error| ModelError::Internal(e.to_string());
    std::fs::create_dir_all(model_dir).map_err(io)?;
    let version = next_version(model_dir);
    let tmp = model_dir.join(format!(".writing-{version}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(io)?;
    let written = save(&tmp).and_then(|()| {
        let train = serde_json::json!({ "source": source, "report": report });
        let text = serde_json::to_string_pretty(&train).map_err(|e| ModelError::Internal(e.to_string()))?;
        std::fs::write(tmp.join("train.json"), text).map_err(io)?;
        std::fs::write(tmp.join("version.toml"), format!("description = {:?}\n", description)).map_err(io)
    });
    if let Err(e) = written {
        std::fs::remove_dir_all(&tmp).ok();
        return Err(e);
    }
    let dir = model_dir.join(version.to_string());
    std::fs::rename(&tmp, &dir).map_err(io)?;
    Ok((version, dir))
}
