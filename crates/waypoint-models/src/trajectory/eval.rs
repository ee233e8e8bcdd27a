//! `eval trajectory`: ADE/FDE of constant velocity, the Kalman filter and the learned network on
//! ETH/UCY files, per file with given weights, or leave-one-scene-out (for each test scene, a
//! network trained on the other files: the Social-GAN protocol), beside the published figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::data::{ade_fde, file_social_windows, SocialWindow};
use super::kalman::KalmanCv;
use super::tcn::{EpochRecord, FastTcn, TrainConfig};
use super::train::train_on;
use super::ConstantVelocity;
use crate::ModelError;

/// The test scenes of the published tables, in their order.
pub const SCENES: [&str; 3] = ["univ", "zara1", "zara2"];

/// Published deterministic ADE/FDE (m) per test scene (univ, zara1, zara2), with each
/// method's key in `--json` and its label in the table (from ../shared/data/README.md).
pub const PUBLISHED: [(&str, &str, [[f64; 2]; 3]); 5] = [
    ("linear", "Linear", [[0.82, 1.59], [0.62, 1.21], [0.77, 1.48]]),
    ("s_lstm", "S-LSTM", [[0.67, 1.40], [0.47, 1.00], [0.56, 1.17]]),
    ("sr_lstm_2", "SR-LSTM-2", [[0.51, 1.10], [0.41, 0.90], [0.32, 0.70]]),
    ("singular_trajectory", "SingularTrajectory", [[0.57, 1.12], [0.44, 0.93], [0.35, 0.73]]),
    ("constant_velocity_reproduced", "CV (reproduced)", [[0.524, 1.165], [0.431, 0.960], [0.326, 0.728]]),
];

/// [`PUBLISHED`] as `{scene: {method: [ADE, FDE]}}`.
pub fn published_json() -> Value {
    let mut out = serde_json::Map::new();
    for (s, scene) in SCENES.iter().enumerate() {
        let methods: serde_json::Map<String, Value> =
            PUBLISHED.iter().map(|(key, _, v)| (key.to_string(), json!(v[s]))).collect();
        out.insert(scene.to_string(), Value::Object(methods));
    }
    Value::Object(out)
}

/// Mean ADE and FDE over windows.
#[derive(Debug, Default, Clone, Copy)]
pub struct Acc {
    ade: f64,
    fde: f64,
    n: usize,
}

impl Acc {
    /// Adds one window's `(ADE, FDE)`.
    pub fn add(&mut self, (a, f): (f64, f64)) {
        self.ade += a;
        self.fde += f;
        self.n += 1;
    }

    /// Windows added.
    pub fn count(&self) -> usize {
        self.n
    }

    /// `[ADE, FDE]`, metres.
    pub fn get(&self) -> [f64; 2] {
        let n = self.n.max(1) as f64;
        [self.ade / n, self.fde / n]
    }
}

/// Constant velocity, the Kalman filter, `net`'s most likely future and the best of its futures
/// on `windows`, in that order (the last equals the third for a network of one future).
pub fn evaluate(windows: &[SocialWindow], net: &FastTcn) -> [Acc; 4] {
    let mut acc = [Acc::default(); 4];
    let kalman = KalmanCv::default();
    for sw in windows {
        let w = &sw.window;
        acc[0].add(ade_fde(&ConstantVelocity::predict(&w.obs), &w.fut));
        acc[1].add(ade_fde(&kalman.predict(&w.obs), &w.fut));
        let errs: Vec<(f64, f64)> =
            net.predict_modes(&w.obs, &sw.neighbours).iter().map(|m| ade_fde(&m.pos, &w.fut)).collect();
        acc[2].add(errs[0]);
        acc[3].add((
            errs.iter().map(|e| e.0).fold(f64::INFINITY, f64::min),
            errs.iter().map(|e| e.1).fold(f64::INFINITY, f64::min),
        ));
    }
    acc
}

/// The windows of every file, with their neighbours.
pub fn load_windows(files: &[PathBuf]) -> Result<Vec<SocialWindow>, ModelError> {
    let mut all = Vec::new();
    for f in files {
        all.extend(file_social_windows(f)?);
    }
    Ok(all)
}

/// One result row's figures: the three predictors, and the best of the modes when there are
/// several.
fn figures(acc: &[Acc; 4], modes: usize) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("constant_velocity".into(), json!(acc[0].get()));
    m.insert("kalman".into(), json!(acc[1].get()));
    m.insert("learned".into(), json!(acc[2].get()));
    if modes > 1 {
        m.insert("learned_min_of_modes".into(), json!(acc[3].get()));
        m.insert("modes".into(), json!(modes));
    }
    m
}

/// Test scenes: the Social-GAN names where the files are present, else one scene per file
/// (files that are training-only in the protocol are not test scenes).
pub fn scenes(files: &[PathBuf]) -> Vec<(String, Vec<PathBuf>)> {
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

fn file_names(files: &[PathBuf]) -> Vec<String> {
    files.iter().filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string())).collect()
}

/// Leave-one-scene-out: for each test scene a network trained (with `cfg`, seed 7) on the other
/// files, and the three predictors on that scene. `progress` hears the scene before its
/// training and each epoch.
pub fn leave_one_out(
    files: &[PathBuf],
    cfg: &TrainConfig,
    mut progress: impl FnMut(&str, usize, Option<&EpochRecord>),
) -> Result<Vec<Value>, ModelError> {
    let mut results = Vec::new();
    for (scene, test_files) in scenes(files) {
        let train_files: Vec<PathBuf> = files.iter().filter(|f| !test_files.contains(f)).cloned().collect();
        progress(&scene, train_files.len(), None);
        let cfg = TrainConfig { seed: 7, ..cfg.clone() };
        let (trainer, report) = train_on(&train_files, &cfg, None, |r| progress(&scene, train_files.len(), Some(r)))?;
        let net = FastTcn::from_varmap(&trainer.varmap)?;
        let windows = load_windows(&test_files)?;
        let acc = evaluate(&windows, &net);
        let mut row = figures(&acc, net.arch().modes);
        row.insert("scene".into(), json!(scene));
        row.insert("files".into(), json!(file_names(&test_files)));
        row.insert("windows".into(), json!(windows.len()));
        row.insert("train_seconds".into(), json!(report.seconds));
        row.insert("best_epoch".into(), json!(report.best_epoch));
        row.insert("best_val_ade_fde_m".into(), json!([report.best_val_ade_m, report.best_val_fde_m]));
        results.push(Value::Object(row));
    }
    Ok(results)
}

/// Per file, with the network of `weights`.
pub fn per_file(files: &[PathBuf], weights: &Path) -> Result<Vec<Value>, ModelError> {
    let net = FastTcn::load(weights)?;
    let mut results = Vec::new();
    for f in files {
        let windows = file_social_windows(f)?;
        let acc = evaluate(&windows, &net);
        let mut row = figures(&acc, net.arch().modes);
        row.insert("file".into(), json!(f.file_name().map(|n| n.to_string_lossy().to_string())));
        row.insert("windows".into(), json!(windows.len()));
        results.push(Value::Object(row));
    }
    Ok(results)
}

/// The mean `[ADE, FDE]` of each predictor over the results.
pub fn average(results: &[Value]) -> Value {
    let n = results.len().max(1) as f64;
    let mean = |key: &str, i: usize| results.iter().map(|r| r[key][i].as_f64().unwrap_or(0.0)).sum::<f64>() / n;
    let mut out = json!({
        "constant_velocity": [mean("constant_velocity", 0), mean("constant_velocity", 1)],
        "kalman": [mean("kalman", 0), mean("kalman", 1)],
        "learned": [mean("learned", 0), mean("learned", 1)],
    });
    if results.iter().all(|r| r.get("learned_min_of_modes").is_some()) && !results.is_empty() {
        out["learned_min_of_modes"] = json!([mean("learned_min_of_modes", 0), mean("learned_min_of_modes", 1)]);
    }
    out
}
