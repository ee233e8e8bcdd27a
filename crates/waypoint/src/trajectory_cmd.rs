//! `waypoint train trajectory` and `waypoint eval trajectory`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use waypoint_models::model::latest_version;
use waypoint_models::trajectory::data::track_files;
use waypoint_models::trajectory::eval::{self, published_json, PUBLISHED};
use waypoint_models::trajectory::model::WEIGHTS_FILE;
use waypoint_models::trajectory::tcn::{Arch, EpochRecord, TrainConfig, SHIPPED_MODES, SHIPPED_TOP_WEIGHT};
use waypoint_models::trajectory::train::{save_trained, train_on};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Directory of ETH/UCY track files (`frame agent x y`).
    #[arg(long)]
    pub data: PathBuf,
    /// Files in that directory to leave out (e.g. a test scene).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Model repository to write the new version into.
    #[arg(long, default_value = "models")]
    pub model_repository: PathBuf,
    /// Model name in the repository.
    #[arg(long, default_value = "trajectory")]
    pub model: String,
    /// Start from this weight file (fine-tuning) instead of a fresh network.
    #[arg(long)]
    pub init: Option<PathBuf>,
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[command(flatten)]
    pub hyper: Hyper,
}

/// Training hyper-parameters that can be changed from the command line.
#[derive(Debug, Clone, Args)]
pub struct Hyper {
    /// AdamW weight decay.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// Weight of the Gaussian NLL term beside the displacement loss.
    #[arg(long, default_value_t = TrainConfig::default().nll_weight)]
    pub nll_weight: f64,
    /// Speed-scaling augmentation (0.2: ×[0.8, 1.2]).
    #[arg(long, default_value_t = TrainConfig::default().speed_jitter)]
    pub speed_jitter: f32,
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    pub learning_rate: f64,
    /// Futures predicted per agent, each with its probability (the AV convention is 6; 1: a
    /// single future).
    #[arg(long, default_value_t = SHIPPED_MODES)]
    pub modes: usize,
    /// Read the neighbours present at the last observed frame (social pooling): `--social false`
    /// for a network of the history alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub social: bool,
    /// Largest standard deviation of the noise added to observed positions in training, metres.
    #[arg(long, default_value_t = TrainConfig::default().obs_noise_m)]
    pub obs_noise_m: f32,
    /// Weight of the mode classification loss (several modes).
    #[arg(long, default_value_t = TrainConfig::default().ce_weight)]
    pub ce_weight: f64,
    /// Weight of the most likely mode's error on every sample (several modes).
    #[arg(long, default_value_t = SHIPPED_TOP_WEIGHT)]
    pub top_weight: f64,
}

#[derive(Debug, Args)]
pub struct EvalTrajectoryArgs {
    /// Directory of ETH/UCY track files to evaluate on.
    #[arg(long)]
    pub data: PathBuf,
    /// Weights of the learned model (default: the highest version in models/trajectory).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Leave-one-scene-out: for each test scene, train a model on the other files of the
    /// directory and evaluate it on that scene (the Social-GAN protocol).
    #[arg(long)]
    pub leave_one_out: bool,
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[command(flatten)]
    pub hyper: Hyper,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl Hyper {
    /// The training settings: these, `epochs` and `seed`, the rest the defaults.
    fn config(&self, epochs: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            epochs,
            seed,
            weight_decay: self.weight_decay,
            nll_weight: self.nll_weight,
            speed_jitter: self.speed_jitter,
            learning_rate: self.learning_rate,
            arch: Arch { modes: self.modes.max(1), social: self.social },
            obs_noise_m: self.obs_noise_m,
            ce_weight: self.ce_weight,
            top_weight: self.top_weight,
            ..TrainConfig::default()
        }
    }
}

fn progress_bar(r: &EpochRecord, total: usize) {
    epoch_line(r.epoch, total, &format!("loss {:.4} val ADE {:.3} FDE {:.3}", r.train_loss, r.val_ade_m, r.val_fde_m));
}

/// Rewrites the progress line on standard error: a bar of `epoch` of `total` and `text`.
pub fn epoch_line(epoch: usize, total: usize, text: &str) {
    let width = 30;
    let done = (epoch * width / total.max(1)).min(width);
    eprint!("\r[{}{}] epoch {epoch:>3}/{total} {text}   ", "=".repeat(done), " ".repeat(width - done));
    let _ = std::io::stderr().flush();
}

pub fn train(a: TrainArgs) -> Result<()> {
    let files: Vec<PathBuf> = track_files(&a.data)?
        .into_iter()
        .filter(|f| !a.exclude.iter().any(|x| f.file_name().is_some_and(|n| n.to_string_lossy() == x.as_str())))
        .collect();
    eprintln!(
        "training on {} files: {:?}",
        files.len(),
        files.iter().filter_map(|f| f.file_name()).collect::<Vec<_>>()
    );
    let cfg = a.hyper.config(a.epochs, a.seed);
    let (trainer, report) = train_on(&files, &cfg, a.init.as_deref(), |r| progress_bar(r, a.epochs))?;
    eprintln!();
    let dir = save_trained(&a.model_repository.join(&a.model), &trainer, &report, &files)?;
    waypoint_models::plot::loss_plot(&dir.join("loss.png"), &report)?;
    println!(
        "wrote {} (best epoch {}, val ADE {:.3} m, FDE {:.3} m, {:.0} s)",
        dir.display(),
        report.best_epoch,
        report.best_val_ade_m,
        report.best_val_fde_m,
        report.seconds
    );
    Ok(())
}

fn default_weights() -> Result<PathBuf> {
    let dir = waypoint_server::config::default_model_repository().join("trajectory");
    let Some(v) = latest_version(&dir) else { bail!("no trained version in {}; pass --weights", dir.display()) };
    Ok(dir.join(v.to_string()).join(WEIGHTS_FILE))
}

pub fn eval(a: EvalTrajectoryArgs) -> Result<()> {
    let files = track_files(&a.data)?;
    if files.is_empty() {
        bail!("no .txt track files in {}", a.data.display());
    }
    let results = if a.leave_one_out {
        let mut first = true;
        let results = eval::leave_one_out(&files, &a.hyper.config(a.epochs, 7), |scene, n, epoch| match epoch {
            _ if a.json => {}
            Some(r) => progress_bar(r, a.epochs),
            None => {
                if !std::mem::take(&mut first) {
                    eprintln!();
                }
                eprintln!("{scene}: training on {n} files without it");
            }
        })?;
        if !a.json {
            eprintln!();
        }
        results
    } else {
        let weights = match &a.weights {
            Some(w) => w.clone(),
            None => default_weights()?,
        };
        eval::per_file(&files, &weights)?
    };
    let average = eval::average(&results);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "protocol": if a.leave_one_out { "leave-one-scene-out" } else { "per-file, given weights" },
                "results": results, "average": average, "published": published_json(),
            }))?
        );
        return Ok(());
    }
    let pair = |v: &serde_json::Value| match (v[0].as_f64(), v[1].as_f64()) {
        (Some(a), Some(f)) => format!("{a:.3}/{f:.3}"),
        _ => "-".to_string(),
    };
    let modes = results.first().and_then(|r| r["modes"].as_u64());
    let min_label = modes.map(|k| format!("best of {k}")).unwrap_or_default();
    println!(
        "{:<22} {:>8} {:>16} {:>16} {:>16} {:>14} {:>14}",
        "scene / file",
        "windows",
        "const. velocity",
        "Kalman CV",
        "learned",
        min_label,
        if a.leave_one_out { "val (training)" } else { "" }
    );
    let row = |label: &str, windows: &str, r: &serde_json::Value| {
        println!(
            "{:<22} {:>8} {:>16} {:>16} {:>16} {:>14} {:>14}",
            label,
            windows,
            pair(&r["constant_velocity"]),
            pair(&r["kalman"]),
            pair(&r["learned"]),
            if modes.is_some() { pair(&r["learned_min_of_modes"]) } else { String::new() },
            if r.get("best_val_ade_fde_m").is_some() { pair(&r["best_val_ade_fde_m"]) } else { String::new() }
        )
    };
    for r in &results {
        let label = r.get("scene").or_else(|| r.get("file")).and_then(|v| v.as_str()).unwrap_or("");
        row(label, &r["windows"].to_string(), r);
    }
    row("average", "", &average);
    if a.leave_one_out {
        println!("(each scene held out from its network's training; \"val\" is the training files' own held-out 10 %, on which every setting is chosen)");
    } else {
        println!("(in-sample where the weights were trained on these files)");
    }
    println!("\npublished ADE/FDE (m)      univ          zara1         zara2");
    let cell = |v: [f64; 2]| format!("{:.3}/{:.3}", v[0], v[1]);
    for (_, label, v) in PUBLISHED {
        println!("{:<22} {:>13} {:>13} {:>13}", label, cell(v[0]), cell(v[1]), cell(v[2]));
    }
    Ok(())
}
