//! `waypoint train trajectory` and `waypoint eval trajectory`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use waypoint_models::trajectory::data::{ade_fde, file_windows, track_files, Window};
use waypoint_models::trajectory::finetune::next_version;
use waypoint_models::trajectory::kalman::KalmanCv;
use waypoint_models::trajectory::model::WEIGHTS_FILE;
use waypoint_models::trajectory::tcn::{FastTcn, TrainConfig, TrainReport, Trainer};
use waypoint_models::trajectory::ConstantVelocity;

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

fn load_windows(files: &[PathBuf]) -> Result<Vec<Window>> {
    let mut all = Vec::new();
    for f in files {
        all.extend(file_windows(f).with_context(|| format!("reading {}", f.display()))?);
    }
    Ok(all)
}

fn progress_bar(epoch: usize, total: usize, loss: f64, ade: f64, fde: f64) {
    let width = 30;
    let done = (epoch * width / total.max(1)).min(width);
    eprint!(
        "\r[{}{}] epoch {epoch:>3}/{total} loss {loss:.4} val ADE {ade:.3} FDE {fde:.3}   ",
        "=".repeat(done),
        " ".repeat(width - done)
    );
    let _ = std::io::stderr().flush();
}

/// Trains a network on the given files.
pub fn train_on(
    files: &[PathBuf],
    epochs: usize,
    seed: u64,
    hyper: &Hyper,
    init: Option<&Path>,
    quiet: bool,
) -> Result<(Trainer, TrainReport)> {
    let groups = files
        .iter()
        .map(|f| file_windows(f).with_context(|| format!("reading {}", f.display())))
        .collect::<Result<Vec<_>>>()?;
    if groups.iter().all(Vec::is_empty) {
        bail!("no 20-frame windows in the training files");
    }
    let mut trainer = match init {
        Some(p) => Trainer::load(p)?,
        None => Trainer::new(seed)?,
    };
    let cfg = TrainConfig {
        epochs,
        seed,
        weight_decay: hyper.weight_decay,
        nll_weight: hyper.nll_weight,
        speed_jitter: hyper.speed_jitter,
        learning_rate: hyper.learning_rate,
        ..TrainConfig::default()
    };
    let report = trainer.train_groups(&groups, &cfg, |r| {
        if !quiet {
            progress_bar(r.epoch, epochs, r.train_loss, r.val_ade_m, r.val_fde_m);
        }
    })?;
    if !quiet {
        eprintln!();
    }
    Ok((trainer, report))
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
    let (trainer, report) = train_on(&files, a.epochs, a.seed, &a.hyper, a.init.as_deref(), false)?;
    let model_dir = a.model_repository.join(&a.model);
    let version = next_version(&model_dir);
    let dir = model_dir.join(version.to_string());
    std::fs::create_dir_all(&dir)?;
    trainer.save(&dir.join(WEIGHTS_FILE))?;
    std::fs::write(
        dir.join("train.json"),
        serde_json::to_string_pretty(&json!({
            "files": files.iter().filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string())).collect::<Vec<_>>(),
            "report": report,
        }))?,
    )?;
    crate::plot::loss_plot(&dir.join("loss.png"), &report)?;
    std::fs::write(
        dir.join("version.toml"),
        format!(
            "description = \"TCN trained by `waypoint train trajectory` on {} windows, best epoch {} (val ADE {:.3} m)\"\n",
            report.train_windows, report.best_epoch, report.best_val_ade_m
        ),
    )?;
    if !model_dir.join("config.toml").exists() {
        std::fs::write(model_dir.join("config.toml"), TRAJECTORY_CONFIG)?;
    }
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

/// The repository configuration of the learned model.
pub const TRAJECTORY_CONFIG: &str = r#"# Learned trajectory model: temporal CNN in the agent frame (see docs/EVALUATION.md).
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

[[outputs]]
name = "trajectory"
datatype = "FP32"
dims = [-1, 12, 2]  # next 12 positions, metres

[[outputs]]
name = "sigma"
datatype = "FP32"
dims = [-1, 12, 2]  # one-sigma error along and across the heading, metres
"#;

/// Published deterministic ADE/FDE per test scene (from ../shared/data/README.md).
fn published() -> serde_json::Value {
    json!({
        "univ": {"linear": [0.82, 1.59], "s_lstm": [0.67, 1.40], "sr_lstm_2": [0.51, 1.10], "singular_trajectory": [0.57, 1.12], "constant_velocity_reproduced": [0.524, 1.165]},
        "zara1": {"linear": [0.62, 1.21], "s_lstm": [0.47, 1.00], "sr_lstm_2": [0.41, 0.90], "singular_trajectory": [0.44, 0.93], "constant_velocity_reproduced": [0.431, 0.960]},
        "zara2": {"linear": [0.77, 1.48], "s_lstm": [0.56, 1.17], "sr_lstm_2": [0.32, 0.70], "singular_trajectory": [0.35, 0.73], "constant_velocity_reproduced": [0.326, 0.728]},
    })
}

/// Test scenes: the Social-GAN names where the files are present, else one scene per file
/// (files that are training-only in the protocol are not test scenes).
fn scenes(files: &[PathBuf]) -> Vec<(String, Vec<PathBuf>)> {
    let name = |f: &PathBuf| f.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let n = name(f);
        let scene = match n.as_str() {
            "students001" | "students003" => "univ".to_string(),
            "crowds_zara01" => "zara1".to_string(),
            "crowds_zara02" => "zara2".to_string(),
            "crowds_zara03" | "uni_examples" => continue,
            other => other.to_string(),
        };
        out.entry(scene).or_default().push(f.clone());
    }
    out.into_iter().collect()
}

#[derive(Default, Clone, Copy)]
struct Acc {
    ade: f64,
    fde: f64,
    n: usize,
}

impl Acc {
    fn add(&mut self, (a, f): (f64, f64)) {
        self.ade += a;
        self.fde += f;
        self.n += 1;
    }
    fn get(&self) -> [f64; 2] {
        let n = self.n.max(1) as f64;
        [self.ade / n, self.fde / n]
    }
}

fn evaluate(windows: &[Window], net: &FastTcn) -> [Acc; 3] {
    let mut acc = [Acc::default(); 3];
    let kalman = KalmanCv::default();
    for w in windows {
        acc[0].add(ade_fde(&ConstantVelocity::predict(&w.obs), &w.fut));
        acc[1].add(ade_fde(&kalman.predict(&w.obs), &w.fut));
        acc[2].add(ade_fde(&net.predict(&w.obs).0, &w.fut));
    }
    acc
}

fn default_weights() -> Result<PathBuf> {
    let dir = waypoint_server::config::default_model_repository().join("trajectory");
    let v = next_version(&dir) - 1;
    if v == 0 {
        bail!("no trained version in {}; pass --weights", dir.display());
    }
    Ok(dir.join(v.to_string()).join(WEIGHTS_FILE))
}

pub fn eval(a: EvalTrajectoryArgs) -> Result<()> {
    let files = track_files(&a.data)?;
    if files.is_empty() {
        bail!("no .txt track files in {}", a.data.display());
    }
    let mut results = Vec::new();
    if a.leave_one_out {
        for (scene, test_files) in scenes(&files) {
            let train_files: Vec<PathBuf> = files.iter().filter(|f| !test_files.contains(f)).cloned().collect();
            if !a.json {
                eprintln!("{scene}: training on {} files without it", train_files.len());
            }
            let (trainer, report) = train_on(&train_files, a.epochs, 7, &a.hyper, None, a.json)?;
            let net = FastTcn::from_varmap(&trainer.varmap)?;
            let windows = load_windows(&test_files)?;
            let acc = evaluate(&windows, &net);
            results.push(json!({
                "scene": scene,
                "files": test_files.iter().filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string())).collect::<Vec<_>>(),
                "windows": windows.len(),
                "constant_velocity": acc[0].get(),
                "kalman": acc[1].get(),
                "learned": acc[2].get(),
                "train_seconds": report.seconds,
                "best_epoch": report.best_epoch,
            }));
        }
    } else {
        let weights = match &a.weights {
            Some(w) => w.clone(),
            None => default_weights()?,
        };
        let net = FastTcn::load(&weights)?;
        for f in &files {
            let windows = file_windows(f)?;
            let acc = evaluate(&windows, &net);
            results.push(json!({
                "file": f.file_name().map(|n| n.to_string_lossy().to_string()),
                "windows": windows.len(),
                "constant_velocity": acc[0].get(),
                "kalman": acc[1].get(),
                "learned": acc[2].get(),
            }));
        }
    }
    let n = results.len().max(1) as f64;
    let mean = |key: &str, i: usize| results.iter().map(|r| r[key][i].as_f64().unwrap_or(0.0)).sum::<f64>() / n;
    let average = json!({
        "constant_velocity": [mean("constant_velocity", 0), mean("constant_velocity", 1)],
        "kalman": [mean("kalman", 0), mean("kalman", 1)],
        "learned": [mean("learned", 0), mean("learned", 1)],
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "protocol": if a.leave_one_out { "leave-one-scene-out" } else { "per-file, given weights" },
                "results": results, "average": average, "published": published(),
            }))?
        );
        return Ok(());
    }
    println!(
        "{:<22} {:>8} {:>16} {:>16} {:>16}",
        "scene / file", "windows", "const. velocity", "Kalman CV", "learned (TCN)"
    );
    let pair = |v: &serde_json::Value| {
        format!("{:.3}/{:.3}", v[0].as_f64().unwrap_or(f64::NAN), v[1].as_f64().unwrap_or(f64::NAN))
    };
    for r in &results {
        let label = r.get("scene").or_else(|| r.get("file")).and_then(|v| v.as_str()).unwrap_or("");
        println!(
            "{:<22} {:>8} {:>16} {:>16} {:>16}",
            label,
            r["windows"],
            pair(&r["constant_velocity"]),
            pair(&r["kalman"]),
            pair(&r["learned"])
        );
    }
    println!(
        "{:<22} {:>8} {:>16} {:>16} {:>16}",
        "average",
        "",
        pair(&average["constant_velocity"]),
        pair(&average["kalman"]),
        pair(&average["learned"])
    );
    println!("\npublished ADE/FDE (m)      univ          zara1         zara2");
    let p = published();
    for (k, label) in [
        ("linear", "Linear"),
        ("s_lstm", "S-LSTM"),
        ("sr_lstm_2", "SR-LSTM-2"),
        ("singular_trajectory", "SingularTrajectory"),
        ("constant_velocity_reproduced", "CV (reproduced)"),
    ] {
        println!("{:<22} {:>13} {:>13} {:>13}", label, pair(&p["univ"][k]), pair(&p["zara1"][k]), pair(&p["zara2"][k]));
    }
    Ok(())
}
