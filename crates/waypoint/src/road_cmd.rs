//! `waypoint eval trajectory-road`: the map-aware road-user model against constant velocity,
//! the Kalman filter and constant turn rate on simulated scenes, per class; its constants are
//! chosen on one set of seeds and reported on another.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use waypoint_models::model::latest_version;
use waypoint_models::trajectory::road::{correction_rows, predict_corrected, Correction};
use waypoint_models::trajectory::road_learned::{train_correction, CorrectionConfig, CORRECTION_FILE};
use waypoint_server::live::sweep_log::{track_windows, TrackWindow};
use waypoint_server::AppState;
use waypoint_sim::AgentKind;

use crate::cli::ServeArgs;
use waypoint_models::trajectory::eval::Acc;
use waypoint_models::trajectory::kalman::KalmanCv;
use waypoint_models::trajectory::road::{
    ade_fde, fit_params, point_prediction, predict, sim_windows, RoadClass, RoadParams, RoadWindow,
};
use waypoint_models::trajectory::{ConstantVelocity, OBS_STEPS, PRED_STEPS, STEP_SECS};

#[derive(Debug, Args)]
pub struct EvalRoadArgs {
    /// Seeds the constants are chosen on (`A-B`, inclusive); reported as in-sample.
    #[arg(long, default_value = "1-12")]
    pub fit_seeds: String,
    /// Seeds the figures are reported on (never looked at while choosing the constants or
    /// building the model; 101-112 were, while it was built, and the correction's drives are
    /// 1-6, 8-40).
    #[arg(long, default_value = "501-512")]
    pub seeds: String,
    /// Scene seconds simulated per seed.
    #[arg(long, default_value_t = 300.0)]
    pub secs: f64,
    /// Choose the constants on the fitting seeds instead of using the shipped ones (which were
    /// chosen that way on the default fitting seeds).
    #[arg(long)]
    pub fit: bool,
    /// Report on the tracks the simulator's perception produces (drives of the default scene,
    /// every sweep through perception), by the kind of road user each track lies on, instead of
    /// on true positions (the live online error, measured offline).
    #[arg(long)]
    pub tracks: bool,
    /// With `--tracks`: a file of the drives' track windows (JSON lines), read when it holds the
    /// seeds, written otherwise.
    #[arg(long)]
    pub windows: Option<PathBuf>,
    /// Model repository holding `trajectory_road`.
    #[arg(long, default_value = "models")]
    pub model_repository: PathBuf,
    /// The version whose learned correction to score as `road + correction` (default: the
    /// latest, when it has one).
    #[arg(long)]
    pub version: Option<u64>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Seeds as `A-B` ranges (inclusive) and single seeds, comma-separated: `1-6,11-30`.
pub(crate) fn seeds_of(s: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
        if a > b || b - a > 100_000 {
            bail!("seed range {part:?} is empty or too long");
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        bail!("no seeds in {s:?}");
    }
    Ok(out)
}

fn overlap(a: &[u64], b: &[u64]) -> bool {
    a.iter().any(|s| b.contains(s))
}

/// Constant turn rate and velocity from the last four positions (two-step differences).
pub fn ctrv(h: &[[f32; 2]; OBS_STEPS]) -> [[f32; 2]; PRED_STEPS] {
    let d = |a: [f32; 2], b: [f32; 2]| (f64::from(b[0] - a[0]), f64::from(b[1] - a[1]));
    let (x2, y2) = d(h[OBS_STEPS - 3], h[OBS_STEPS - 1]);
    let (x1, y1) = d(h[OBS_STEPS - 5], h[OBS_STEPS - 3]);
    let v = x2.hypot(y2) / (2.0 * STEP_SECS);
    let mut th = y2.atan2(x2);
    let turning = x1.hypot(y1) > 0.2 && x2.hypot(y2) > 0.2;
    let w = if turning {
        let dth =
            (th - y1.atan2(x1) + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI;
        dth / (2.0 * STEP_SECS)
    } else {
        0.0
    };
    let (mut x, mut y) = (f64::from(h[OBS_STEPS - 1][0]), f64::from(h[OBS_STEPS - 1][1]));
    std::array::from_fn(|_| {
        for _ in 0..4 {
            let dt = STEP_SECS / 4.0;
            th += w * dt;
            x += v * th.cos() * dt;
            y += v * th.sin() * dt;
        }
        [x as f32, y as f32]
    })
}

/// ADE/FDE per method on `windows`; the road model with `correction` too when there is one.
fn score<'a>(
    windows: impl Iterator<Item = &'a RoadWindow>,
    p: &RoadParams,
    correction: Option<&Correction>,
) -> serde_json::Value {
    let kalman = KalmanCv::default();
    let mut s = [Acc::default(); 7];
    for w in windows {
        s[0].add(ade_fde(&ConstantVelocity::predict(&w.obs), &w.fut));
        s[1].add(ade_fde(&kalman.predict(&w.obs), &w.fut));
        s[2].add(ade_fde(&ctrv(&w.obs), &w.fut));
        let futures = predict(&w.obs, w.class, &w.others, Some(w.t_secs), p);
        s[3].add(ade_fde(&futures[0].positions, &w.fut));
        s[5].add(ade_fde(&futures[point_prediction(&futures)].positions, &w.fut));
        let best = futures.iter().map(|f| ade_fde(&f.positions, &w.fut)).min_by(|a, b| a.0.total_cmp(&b.0));
        s[4].add(best.unwrap_or((f64::NAN, f64::NAN)));
        if let Some(c) = correction {
            let f = predict_corrected(&w.obs, w.class, &w.others, Some(w.t_secs), p, Some(c));
            s[6].add(ade_fde(&f[point_prediction(&f)].positions, &w.fut));
        }
    }
    let mut out = json!({
        "windows": s[0].count(),
        "constant_velocity": s[0].get(),
        "kalman": s[1].get(),
        "ctrv": s[2].get(),
        "road_most_likely": s[3].get(),
        "road": s[5].get(),
        "road_min_of_3": s[4].get(),
    });
    if correction.is_some() {
        out["road_corrected"] = json!(s[6].get());
    }
    out
}

fn windows_of(seeds: &[u64], secs: f64) -> Vec<RoadWindow> {
    seeds.iter().flat_map(|&seed| sim_windows(seed, secs)).collect()
}

/// The learned correction of `version` (default: the latest) of `model_dir`, if it has one.
fn correction_of(model_dir: &std::path::Path, version: Option<u64>) -> Result<Option<(u64, Correction)>> {
    let Some(v) = version.or_else(|| latest_version(model_dir)) else { return Ok(None) };
    let path = model_dir.join(v.to_string()).join(CORRECTION_FILE);
    if !path.exists() {
        if version.is_some() {
            bail!("{} does not exist", path.display());
        }
        return Ok(None);
    }
    Ok(Some((v, Correction::load(&path)?)))
}

/// The seeds of the drives a version's correction was trained and validated on (its
/// `train.json`); none when it has no such record.
fn correction_seeds(model_dir: &std::path::Path, version: u64) -> Result<Vec<u64>> {
    let path = model_dir.join(version.to_string()).join("train.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    let record: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let mut seeds = Vec::new();
    for key in ["train_seeds", "val_seeds"] {
        if let Some(s) = record[key].as_str() {
            seeds.extend(seeds_of(s)?);
        }
    }
    Ok(seeds)
}

pub fn eval(a: EvalRoadArgs) -> Result<()> {
    let (fit_seeds, seeds) = (seeds_of(&a.fit_seeds)?, seeds_of(&a.seeds)?);
    if overlap(&fit_seeds, &seeds) {
        bail!("the fitting seeds {:?} and the reported seeds {:?} overlap", a.fit_seeds, a.seeds);
    }
    let p = if a.fit { fit_params(&windows_of(&fit_seeds, a.secs)) } else { RoadParams::default() };
    let model_dir = a.model_repository.join("trajectory_road");
    let correction = correction_of(&model_dir, a.version)?;
    if let Some((v, _)) = &correction {
        if overlap(&seeds, &correction_seeds(&model_dir, *v)?) {
            bail!("the correction of trajectory_road version {v} was trained or validated on some of the reported seeds {:?}", a.seeds);
        }
    }
    let c = correction.as_ref().map(|(_, c)| c);
    let mut out = json!({
        "source": if a.tracks { "perception's tracks" } else { "true positions" },
        "params": format!("{p:?}"),
        "fitted_here": a.fit,
        "fit_seeds": a.fit_seeds,
        "seeds": a.seeds,
        "secs_per_seed": a.secs,
        "correction_version": correction.as_ref().map(|(v, _)| v),
    });
    if a.tracks {
        // Perception's tracks, scored by the kind of road user each lies on.
        let test = drives(&seeds, a.secs, a.windows.as_ref())?;
        let of = |kind: AgentKind| test.iter().filter(move |t| t.kind == kind).map(|t| &t.window);
        out["held_out"] = json!({
            "vehicle": score(of(AgentKind::Vehicle), &p, c),
            "cyclist": score(of(AgentKind::Cyclist), &p, c),
        });
    } else {
        let report = |w: &[RoadWindow]| {
            let of = |class: RoadClass| w.iter().filter(move |w| w.class == class);
            json!({
                "vehicle": score(of(RoadClass::Vehicle), &p, c),
                "cyclist": score(of(RoadClass::Cyclist), &p, c),
            })
        };
        out["in_sample"] = report(&windows_of(&fit_seeds, a.secs));
        out["held_out"] = report(&windows_of(&seeds, a.secs));
    }
    if a.json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "road-user prediction, 4.8 s ahead, on simulated scenes ({}, 0.4 s steps)",
        if a.tracks {
            "perception's tracks, scored against the truth of the road user each lies on"
        } else {
            "true positions"
        }
    );
    println!("constants: {p:?}");
    println!(
        "chosen on seeds {} ({}); reported on seeds {} (not looked at while choosing)",
        a.fit_seeds,
        if a.fit { "fitted in this run" } else { "the shipped constants, fitted on the default seeds" },
        a.seeds
    );
    match &correction {
        Some((v, _)) => println!("road + correction: the learned correction of trajectory_road version {v}"),
        None => println!("no learned correction in {}", model_dir.display()),
    }
    let sections: &[(&str, &str)] = if a.tracks {
        &[("held-out seeds", "held_out")]
    } else {
        &[("held-out seeds", "held_out"), ("fitting seeds (in-sample)", "in_sample")]
    };
    for (label, key) in sections {
        println!("\n{label}: ADE / FDE (m)");
        for class in ["vehicle", "cyclist"] {
            let r = &out[key][class];
            let f = |m: &str| {
                format!("{:.3} / {:.3}", r[m][0].as_f64().unwrap_or(f64::NAN), r[m][1].as_f64().unwrap_or(f64::NAN))
            };
            let corrected = if r.get("road_corrected").is_some() {
                format!("  road + correction {}", f("road_corrected"))
            } else {
                String::new()
            };
            println!(
                "  {class:8} {:5} windows  CV {}  Kalman {}  CTRV {}  road {}  (most likely {})  road best of 3 {}{corrected}",
                r["windows"],
                f("constant_velocity"),
                f("kalman"),
                f("ctrv"),
                f("road"),
                f("road_most_likely"),
                f("road_min_of_3")
            );
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct TrainRoadArgs {
    /// Train on the tracks the simulator's perception produces (drives of the default scene with
    /// other seeds); the only source there is, so required.
    #[arg(long, required = true)]
    pub sim: bool,
    /// Seeds of the training drives (`A-B,C`; not 42, the live scene, nor 7, the recording the
    /// model is checked on while being built).
    #[arg(long, default_value = "1-6,11-40")]
    pub seeds: String,
    /// Seeds of the drives the best epoch is chosen on.
    #[arg(long, default_value = "8-10")]
    pub val_seeds: String,
    /// Scene seconds per drive.
    #[arg(long, default_value_t = 300.0)]
    pub secs: f64,
    /// Model repository to write the new version into.
    #[arg(long, default_value = "models")]
    pub model_repository: PathBuf,
    /// Model name in the repository.
    #[arg(long, default_value = "trajectory_road")]
    pub model: String,
    #[arg(long, default_value_t = CorrectionConfig::default().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = CorrectionConfig::default().learning_rate)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = CorrectionConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// Seed of the initial weights and the batch order.
    #[arg(long, default_value_t = CorrectionConfig::default().seed)]
    pub seed: u64,
    /// A file of the drives' track windows (JSON lines): read when it holds every seed asked
    /// for, written otherwise (the drives take most of the time).
    #[arg(long)]
    pub windows: Option<PathBuf>,
}

#[derive(clap::Parser)]
struct DefaultServe {
    #[command(flatten)]
    serve: ServeArgs,
}

/// The track windows of one drive of the default scene with `seed`, every sweep through
/// perception, as fast as it runs.
pub fn drive_windows(runtime: &tokio::runtime::Runtime, seed: u64, secs: f64) -> Result<Vec<TrackWindow>> {
    let mut serve = <DefaultServe as clap::Parser>::parse_from(["waypoint"]).serve;
    serve.seed = seed;
    let mut config = crate::cli::server_config(&serve)?;
    config.unpaced = true;
    config.log_sweeps = true;
    config.autostart = true;
    config.learner.every_secs = None;
    config.record = None;
    config.foxglove_addr = None;
    let sweeps = runtime.block_on(async move {
        let state = AppState::new(config)?;
        while state.scene.t_secs() < secs {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        state.scene.shutdown();
        let log = state.sweep_log.as_ref().map(|l| l.take()).unwrap_or_default();
        anyhow::Ok(log)
    })?;
    let mut windows = track_windows(seed, &sweeps);
    windows.retain(|w| w.window.t_secs <= secs);
    Ok(windows)
}

/// The windows of the drives with `seeds`, from `cache` where it holds them all.
fn drives(seeds: &[u64], secs: f64, cache: Option<&PathBuf>) -> Result<Vec<TrackWindow>> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Drive {
        seed: u64,
        secs: f64,
        windows: Vec<TrackWindow>,
    }
    let mut have: Vec<Drive> = Vec::new();
    if let Some(path) = cache.filter(|p| p.exists()) {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            have.push(serde_json::from_str(line).with_context(|| format!("{}: a bad line", path.display()))?);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut out = Vec::new();
    let mut changed = false;
    for &seed in seeds {
        if let Some(d) = have.iter().find(|d| d.seed == seed && d.secs == secs) {
            out.extend(d.windows.iter().cloned());
            continue;
        }
        let started = Instant::now();
        let windows = drive_windows(&runtime, seed, secs)?;
        eprintln!(
            "drive seed {seed}: {secs} scene s in {:.1} s, {} track windows",
            started.elapsed().as_secs_f64(),
            windows.len()
        );
        out.extend(windows.iter().cloned());
        have.push(Drive { seed, secs, windows });
        changed = true;
    }
    if let (Some(path), true) = (cache, changed) {
        let mut text = String::new();
        for d in &have {
            text.push_str(&serde_json::to_string(d)?);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("{}", path.display()))?;
    }
    Ok(out)
}

pub fn train(a: TrainRoadArgs) -> Result<()> {
    let (seeds, val_seeds) = (seeds_of(&a.seeds)?, seeds_of(&a.val_seeds)?);
    if overlap(&seeds, &val_seeds) {
        bail!("the training seeds {:?} and the validation seeds {:?} overlap", a.seeds, a.val_seeds);
    }
    if !(a.secs.is_finite() && a.secs >= 30.0) {
        bail!("--secs must be at least 30 scene seconds");
    }
    let p = RoadParams::default();
    let started = Instant::now();
    let train_w = drives(&seeds, a.secs, a.windows.as_ref())?;
    let val_w = drives(&val_seeds, a.secs, a.windows.as_ref())?;
    let rows = |w: &[TrackWindow]| correction_rows(w.iter().map(|t| &t.window), &p);
    let (train_rows, val_rows) = (rows(&train_w), rows(&val_w));
    eprintln!(
        "{} training rows ({} windows), {} validation rows ({} windows), drives took {:.0} s",
        train_rows.len(),
        train_w.len(),
        val_rows.len(),
        val_w.len(),
        started.elapsed().as_secs_f64()
    );
    let cfg = CorrectionConfig {
        epochs: a.epochs,
        learning_rate: a.learning_rate,
        weight_decay: a.weight_decay,
        seed: a.seed,
        ..CorrectionConfig::default()
    };
    let (varmap, report) = train_correction(&train_rows, &val_rows, &cfg, |e| {
        crate::trajectory_cmd::epoch_line(
            e.epoch,
            cfg.epochs,
            &format!("train {:.3} m, val {:.3} m", e.train_m, e.val_m),
        );
    })?;
    eprintln!();
    let dir = a.model_repository.join(&a.model);
    let version = latest_version(&dir).map_or(1, |v| v + 1);
    let vdir = dir.join(version.to_string());
    std::fs::create_dir_all(&vdir).with_context(|| format!("{}", vdir.display()))?;
    varmap.save(vdir.join(CORRECTION_FILE))?;
    let score = |w: &[TrackWindow], correction: Option<&Correction>| {
        let mut acc = [Acc::default(); 2];
        for t in w {
            let w = &t.window;
            let f = predict_corrected(&w.obs, w.class, &w.others, Some(w.t_secs), &p, correction);
            acc[usize::from(t.kind != AgentKind::Vehicle)].add(ade_fde(&f[point_prediction(&f)].positions, &w.fut));
        }
        acc
    };
    let correction = Correction::from_varmap(&varmap)?;
    let (before, after) = (score(&val_w, None), score(&val_w, Some(&correction)));
    let summary = json!({
        "source": "tracks of the simulator's perception, default scene",
        "train_seeds": a.seeds,
        "val_seeds": a.val_seeds,
        "secs_per_drive": a.secs,
        "params": format!("{p:?}"),
        "val_vehicle_uncorrected": before[0].get(),
        "val_vehicle_corrected": after[0].get(),
        "val_other_uncorrected": before[1].get(),
        "val_other_corrected": after[1].get(),
        "report": report,
    });
    std::fs::write(vdir.join("train.json"), serde_json::to_string_pretty(&summary)?)?;
    std::fs::write(
        vdir.join("version.toml"),
        format!(
            "description = \"Lane following with a learned correction (42 features -> 64 -> 64 -> 24) trained by `waypoint train trajectory-road --sim` on the tracks of drives {} (best epoch {} of {}, chosen on drives {}: {:.3} m against {:.3} m uncorrected)\"\n",
            a.seeds, report.best_epoch, cfg.epochs, a.val_seeds, report.best_val_m, report.val_uncorrected_m
        ),
    )?;
    println!(
        "wrote {} (validation drives {}: vehicles ADE/FDE {:.3}/{:.3} m corrected, {:.3}/{:.3} m uncorrected; in {:.0} s)",
        vdir.display(),
        a.val_seeds,
        after[0].get()[0],
        after[0].get()[1],
        before[0].get()[0],
        before[0].get()[1],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
