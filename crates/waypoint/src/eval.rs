//! `waypoint eval <model>`: each model's figures on public data, beside the published numbers.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use waypoint_models::fusion::{self, ekf::EkfConfig, eval as feval, imm::ImmConfig, ukf::UkfConfig};

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub model: EvalModel,
}

#[derive(Debug, Subcommand)]
pub enum EvalModel {
    /// Lidar + radar fusion on a log in the Udacity format.
    Fusion(FusionArgs),
    /// Lidar object detection on KITTI frames or simulated scenes.
    Detection(crate::detection_cmd::EvalDetectionArgs),
    /// Streaming anomaly detection on the Numenta Anomaly Benchmark.
    Anomaly(crate::anomaly_cmd::EvalAnomalyArgs),
    /// Trajectory prediction on ETH/UCY files (ADE/FDE, Social-GAN windows).
    Trajectory(crate::trajectory_cmd::EvalTrajectoryArgs),
    /// Road users' trajectories (vehicles, cyclists) on simulated scenes: the map-aware model
    /// against constant velocity, Kalman and constant turn rate, per class.
    TrajectoryRoad(crate::road_cmd::EvalRoadArgs),
    /// Versions of a model side by side on the same recorded drive (an MCAP recording played
    /// through the live stack, every sweep, as fast as it goes).
    Replay(crate::record_cmd::EvalReplayArgs),
}

#[derive(Debug, Args)]
pub struct FusionArgs {
    /// The log (`L px py t gt...` / `R rho phi rho_dot t gt...` rows).
    #[arg(long, required_unless_present = "synthetic", conflicts_with = "synthetic")]
    pub udacity: Option<PathBuf>,
    /// Score on simulated logs of five kinds of motion instead (seeds 1–10 chose the IMM's
    /// settings; the default seeds are held out).
    #[arg(long)]
    pub synthetic: bool,
    /// Seeds of the simulated logs (`A-B` ranges and single seeds, comma-separated).
    #[arg(long, default_value = "101-110", requires = "synthetic")]
    pub seeds: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write a plot of estimates against ground truth and NIS over time.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Choose the UKF process noise on this log by NIS consistency instead of using the defaults.
    #[arg(long)]
    pub calibrate: bool,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    match args.model {
        EvalModel::Fusion(a) => eval_fusion(a),
        EvalModel::Detection(a) => crate::detection_cmd::eval(a),
        EvalModel::Anomaly(a) => crate::anomaly_cmd::eval(a),
        EvalModel::Trajectory(a) => crate::trajectory_cmd::eval(a),
        EvalModel::Replay(a) => crate::record_cmd::eval_replay(a),
        EvalModel::TrajectoryRoad(a) => crate::road_cmd::eval(a),
    }
}

/// The simulated logs: UKF, EKF and IMM per kind of motion.
fn eval_fusion_synthetic(a: &FusionArgs) -> Result<()> {
    let seeds = crate::road_cmd::seeds_of(&a.seeds)?;
    let tuned: Vec<u64> = seeds.iter().copied().filter(|s| fusion::imm::SETTINGS_SEEDS.contains(s)).collect();
    let imm = ImmConfig::default();
    let rows: Vec<(fusion::synthetic::MotionKind, [[f64; 4]; 3])> = fusion::synthetic::MotionKind::ALL
        .into_iter()
        .map(|k| (k, feval::synthetic_rmse(k, &seeds, UkfConfig::default(), EkfConfig::default(), &imm)))
        .collect();
    if a.json {
        let kinds: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, [u, e, i])| (k.name().to_string(), json!({"ukf": u, "ekf": e, "imm": i}))).collect();
        let out = json!({"seeds": seeds, "in_sample_seeds": tuned, "rmse": kinds, "imm_config": imm});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("simulated logs, {} seeds per kind of motion; mean RMSE [px, py, vx, vy]", seeds.len());
    if tuned.is_empty() {
        println!("held out: the IMM's settings were chosen on seeds {:?}", fusion::imm::SETTINGS_SEEDS);
    } else {
        println!(
            "IN-SAMPLE seeds {tuned:?}: the IMM's settings were chosen on seeds {:?}",
            fusion::imm::SETTINGS_SEEDS
        );
    }
    for (kind, [u, e, i]) in &rows {
        println!("{}", kind.name());
        for (name, r) in [("UKF (CTRV)", u), ("EKF (constant velocity)", e), ("IMM (CTRV x2 + CV x2)", i)] {
            println!("  {name:<26} {:>8.4} {:>8.4} {:>8.4} {:>8.4}", r[0], r[1], r[2], r[3]);
        }
    }
    Ok(())
}

fn eval_fusion(a: FusionArgs) -> Result<()> {
    if a.synthetic {
        return eval_fusion_synthetic(&a);
    }
    let Some(path) = &a.udacity else { anyhow::bail!("--udacity or --synthetic is needed") };
    let rows = waypoint_sim::replay::read_udacity(path).with_context(|| format!("reading {}", path.display()))?;
    let data = fusion::from_udacity(&rows);
    let ukf_cfg = if a.calibrate { feval::calibrate_ukf(&data, UkfConfig::default()) } else { UkfConfig::default() };
    let ukf = feval::run_ukf(&data, ukf_cfg);
    let ekf = feval::run_ekf(&data, EkfConfig::default());
    let imm = feval::run_imm(&data, ImmConfig::default());
    if let Some(path) = &a.plot {
        waypoint_models::plot::fusion_plot(path, &data, &ukf, &ekf)?;
    }
    let reference: serde_json::Map<String, serde_json::Value> =
        feval::REFERENCES.iter().map(|(key, _, v)| (key.to_string(), json!(v))).collect();
    let summary = |r: &feval::FilterReport| {
        json!({
            "rmse": {"px": r.rmse[0], "py": r.rmse[1], "vx": r.rmse[2], "vy": r.rmse[3]},
            "nis_above_95_lidar": r.nis_above_95_lidar,
            "nis_above_95_radar": r.nis_above_95_radar,
            "mean_nis_lidar": r.mean_nis_lidar,
            "mean_nis_radar": r.mean_nis_radar,
        })
    };
    if a.json {
        let out = json!({
            "file": path.display().to_string(),
            "rows": data.len(),
            "ukf": summary(&ukf),
            "ukf_config": ukf_cfg,
            "ekf": summary(&ekf),
            "imm": summary(&imm),
            "imm_config": ImmConfig::default(),
            "reference": reference,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} ({} measurements)", path.display(), data.len());
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8}   {:>14} {:>14}",
        "RMSE", "px", "py", "vx", "vy", "NIS>95% lidar", "NIS>95% radar"
    );
    let row = |name: &str, r: &feval::FilterReport| {
        println!(
            "{name:<34} {:>8.4} {:>8.4} {:>8.4} {:>8.4}   {:>13.1}% {:>13.1}%",
            r.rmse[0],
            r.rmse[1],
            r.rmse[2],
            r.rmse[3],
            100.0 * r.nis_above_95_lidar,
            100.0 * r.nis_above_95_radar
        )
    };
    row("Waypoint UKF (CTRV)", &ukf);
    row("Waypoint EKF (constant velocity)", &ekf);
    row("Waypoint IMM (CTRV x2 + CV x2)", &imm);
    for (_, name, v) in feval::REFERENCES {
        println!("{name:<34} {:>8.3} {:>8.3} {:>8.3} {:>8.3}", v[0], v[1], v[2], v[3]);
    }
    println!(
        "UKF process noise: accel {} m/s², yaw accel {} rad/s² (ideal NIS>95% share: 5%)",
        ukf_cfg.std_accel_mps2, ukf_cfg.std_yaw_accel_rps2
    );
    Ok(())
}
