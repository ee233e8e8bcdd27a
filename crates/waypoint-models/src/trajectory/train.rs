//! `train trajectory`: a network trained on ETH/UCY files, written as a new version of the
//! model with its report and, for a fresh model, its repository configuration.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::data::file_social_windows;
use super::model::WEIGHTS_FILE;
use super::tcn::{Arch, EpochRecord, TrainConfig, TrainReport, Trainer};
use crate::model::next_version;
use crate::ModelError;

/// Trains a network on the files (each file one group of windows), from `init` or fresh;
/// `progress` hears each epoch.
pub fn train_on(
    files: &[PathBuf],
    cfg: &TrainConfig,
    init: Option<&Path>,
    progress: impl FnMut(&EpochRecord),
) -> Result<(Trainer, TrainReport), ModelError> {
    let groups = files.iter().map(|f| file_social_windows(f)).collect::<Result<Vec<_>, _>>()?;
    if groups.iter().all(Vec::is_empty) {
        return Err(ModelError::Data("no 20-frame windows in the training files".into()));
    }
    let mut trainer = match init {
        Some(p) => Trainer::load(p)?,
        None => Trainer::with_arch(cfg.seed, cfg.arch)?,
    };
    let report = trainer.train_social_groups(&groups, cfg, progress)?;
    Ok((trainer, report))
}

/// Writes a trained network as the next version in `model_dir`: weights, `train.json` (the
/// files and the report), `version.toml`, and `config.toml` when the model has none. Returns the
/// version's directory.
pub fn save_trained(
    model_dir: &Path,
    trainer: &Trainer,
    report: &TrainReport,
    files: &[PathBuf],
) -> Result<PathBuf, ModelError> {
    let dir = model_dir.join(next_version(model_dir).to_string());
    std::fs::create_dir_all(&dir).map_err(|e| ModelError::data_at(&dir, e))?;
    trainer.save(&dir.join(WEIGHTS_FILE))?;
    let names: Vec<String> =
        files.iter().filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string())).collect();
    let train = serde_json::to_string_pretty(&json!({ "files": names, "report": report }))
        .map_err(|e| ModelError::Internal(e.to_string()))?;
    let write = |p: PathBuf, text: &str| std::fs::write(&p, text).map_err(|e| ModelError::data_at(&p, e));
    write(dir.join("train.json"), &train)?;
    write(
        dir.join("version.toml"),
        &format!(
            "description = \"TCN{} trained by `waypoint train trajectory` on {} windows, best epoch {} (val ADE {:.3} m)\"\n",
            arch_note(trainer.arch()),
            report.train_windows,
            report.best_epoch,
            report.best_val_ade_m
        ),
    )?;
    if !model_dir.join("config.toml").exists() {
        write(model_dir.join("config.toml"), TRAJECTORY_CONFIG)?;
    }
    Ok(dir)
}

/// How a network's shape reads in a description: nothing for the plain one.
fn arch_note(arch: Arch) -> String {
    match (arch.modes > 1, arch.social) {
        (false, false) => String::new(),
        (true, false) => format!(" ({} futures)", arch.modes),
        (false, true) => " (reads neighbours)".into(),
        (true, true) => format!(" ({} futures, reads neighbours)", arch.modes),
    }
}

/// The repository configuration of the learned model.
pub const TRAJECTORY_CONFIG: &str = r#"# Learned trajectory model: temporal CNN in the agent frame; from version 3 it reads the
# neighbours and predicts several futures (see docs/EVALUATION.md and docs/PROTOCOL.md).
platform = "waypoint"
backend = "trajectory_tcn"
max_batch_size = 4096
max_queue_delay_us = 100
instances = 1
queue_capacity = 4096
version_policy = "all"

[[inputs]]
name = "history"
datatype = "FP32"
dims = [-1, 8, 2]   # last 8 positions (x, y), metres, 0.4 s apart

[[inputs]]
name = "neighbours"
datatype = "FP32"
dims = [-1, -1, 4]  # optional: other agents (x, y one step before the last, x, y at the last step); NaN row: none
optional = true

[[outputs]]
name = "trajectory"
datatype = "FP32"
dims = [-1, 12, 2]  # next 12 positions of the most likely future, metres

[[outputs]]
name = "sigma"
datatype = "FP32"
dims = [-1, 12, 2]  # its one-sigma error along and across the heading, metres

[[outputs]]
name = "modes"
datatype = "FP32"
dims = [-1, -1, 12, 2]  # every predicted future (K of them), most likely first

[[outputs]]
name = "mode_probabilities"
datatype = "FP32"
dims = [-1, -1]     # their probabilities (sum 1)

[[outputs]]
name = "mode_sigma"
datatype = "FP32"
dims = [-1, -1, 12, 2]  # their one-sigma errors along and across the heading, metres
"#;
