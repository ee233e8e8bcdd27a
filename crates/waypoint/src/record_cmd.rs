//! `waypoint record` (the live stack to an MCAP file, without serving) and `waypoint eval
//! replay` (versions of a model side by side on one recorded drive).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use waypoint_protocol::Command;
use waypoint_server::config::ReplaySettings;
use waypoint_server::lifecycle::routing::PolicySpec;
use waypoint_server::live::predictor::BASELINE_MODEL;
use waypoint_server::record::RecordSettings;
use waypoint_server::{AppState, ServerConfig};

use crate::cli::ServeArgs;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The MCAP file to write (replaced if it exists).
    pub out: PathBuf,
    /// Seconds of wall-clock time to record (0: until Ctrl-C or SIGTERM).
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// First run the same scene as long without recording, and report the recording's CPU
    /// cost against that baseline.
    #[arg(long)]
    pub baseline: bool,
    /// The scene and the models, as for `serve` (the address is not used).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// CPU seconds this process has used, all threads, ended ones included (Linux; none elsewhere).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; clock ticks
    // of 1/100 s (USER_HZ on Linux).
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct Run {
    wall_secs: f64,
    cpu_secs: Option<f64>,
    stats: Option<(u64, u64, u64, u64)>,
}

/// Runs the live stack for `duration` seconds (or until a signal) with `config`.
fn run_stack(runtime: &tokio::runtime::Runtime, config: ServerConfig, duration: f64) -> Result<Run> {
    runtime.block_on(async move {
        let state = AppState::new(config)?;
        let cpu0 = process_cpu_secs();
        let started = Instant::now();
        if duration > 0.0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(duration)) => {},
                _ = crate::cli::shutdown_signal() => {},
            }
        } else {
            crate::cli::shutdown_signal().await;
        }
        state.scene.shutdown();
        let stats = state.recorder.as_ref().map(|r| {
            r.close();
            let s = &r.stats;
            (
                s.entries.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed),
                s.failed.load(Ordering::Relaxed),
                s.busy_nanos.load(Ordering::Relaxed),
            )
        });
        let wall_secs = started.elapsed().as_secs_f64();
        let cpu_secs = process_cpu_secs().zip(cpu0).map(|(b, a)| b - a);
        Ok(Run { wall_secs, cpu_secs, stats })
    })
}

pub fn record(args: RecordArgs) -> Result<()> {
    if !(args.duration.is_finite() && args.duration >= 0.0) {
        bail!("--duration must be a number of seconds >= 0");
    }
    if args.baseline && args.duration == 0.0 {
        bail!("--baseline needs a --duration");
    }
    let mut config = crate::cli::server_config(&args.serve)?;
    config.foxglove_addr = None;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let baseline = if args.baseline {
        config.record = None;
        eprintln!("baseline: the same scene for {} s without recording", args.duration);
        Some(run_stack(&runtime, config.clone(), args.duration)?)
    } else {
        None
    };
    config.record = Some(RecordSettings { path: Some(args.out.clone()), compression: args.serve.record_compression });
    eprintln!("recording to {}", args.out.display());
    let run = run_stack(&runtime, config, args.duration)?;
    let bytes = std::fs::metadata(&args.out).with_context(|| format!("{}", args.out.display()))?.len();
    let (entries, dropped, failed, busy) = run.stats.unwrap_or_default();
    let share = |r: &Run| r.cpu_secs.map(|c| c / r.wall_secs);
    let mut out = json!({
        "file": args.out,
        "bytes": bytes,
        "wall_secs": run.wall_secs,
        "bytes_per_min": bytes as f64 / run.wall_secs * 60.0,
        "entries": entries,
        "dropped": dropped,
        "failed": failed,
        "recorder_thread_share": busy as f64 * 1e-9 / run.wall_secs,
        "process_cpu_share": share(&run),
    });
    if let Some(b) = &baseline {
        out["baseline_cpu_share"] = json!(share(b));
        out["recording_cost_share"] = json!(share(&run).zip(share(b)).map(|(r, b)| r - b));
    }
    println!("{out}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct EvalReplayArgs {
    /// The recording (Waypoint's own MCAP; another file's point clouds play, but without truth
    /// nothing is scored).
    pub file: PathBuf,
    /// The model whose versions to compare.
    #[arg(long, default_value = "trajectory")]
    pub model: String,
    /// The versions, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub versions: Vec<String>,
    /// Model repository directory (default: the project's `models/`).
    #[arg(long)]
    pub model_repository: Option<PathBuf>,
    /// Also record each version's run, to `PREFIX-v<version>.mcap`.
    #[arg(long)]
    pub record_prefix: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One version's pass over the recording.
fn replay_once(runtime: &tokio::runtime::Runtime, args: &EvalReplayArgs, version: &str) -> Result<serde_json::Value> {
    let config = ServerConfig {
        autostart: false,
        model_repository: args
            .model_repository
            .clone()
            .unwrap_or_else(waypoint_server::config::default_model_repository),
        replay: Some(ReplaySettings { path: args.file.clone() }),
        unpaced: true,
        record: args.record_prefix.as_ref().map(|p| RecordSettings {
            path: Some(PathBuf::from(format!("{}-v{version}.mcap", p.display()))),
            ..Default::default()
        }),
        ..ServerConfig::default()
    };
    let model = args.model.clone();
    let version = version.to_string();
    runtime.block_on(async move {
        let state = AppState::new(config)?;
        state
            .router
            .set(&model, PolicySpec::Fixed { version: version.clone() }, &state.registry, &state.online)
            .map_err(|e| anyhow::anyhow!("{model} version {version}: {e}"))?;
        let started = Instant::now();
        let ticks0 = state.metrics.sim_ticks.load(Ordering::Relaxed);
        state.scene.command(Command::Start).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        while !state.scene.replay_ended() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let frames = state.metrics.sim_ticks.load(Ordering::Relaxed) - ticks0;
        let scene_secs = state.scene.t_secs();
        state.scene.shutdown();
        if let Some(r) = &state.recorder {
            r.close();
        }
        let metrics = state.online.whole_run(&model, &version).unwrap_or_default();
        let table = |m: BTreeMap<String, (f64, u64)>| {
            m.iter()
                .map(|(k, (v, n))| (k.clone(), json!({"value": v, "samples": n})))
                .collect::<serde_json::Map<_, _>>()
        };
        // The baselines (trajectory only), scored on every track of each round: a version is
        // scored on the tracks routed to it (the road model's classes, say).
        let baselines: serde_json::Map<_, _> = ["constant_velocity", "kalman"]
            .iter()
            .filter_map(|b| state.online.whole_run(BASELINE_MODEL, b).map(|m| (b.to_string(), json!(table(m)))))
            .collect();
        Ok(json!({
            "version": version,
            "frames": frames,
            "scene_secs": scene_secs,
            "wall_secs": wall,
            "times_real_time": if wall > 0.0 { scene_secs / wall } else { 0.0 },
            "metrics": table(metrics),
            "baselines": baselines,
        }))
    })
}

pub fn eval_replay(args: EvalReplayArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut runs = Vec::new();
    for v in &args.versions {
        eprintln!("{} version {v}: playing {} through the live stack", args.model, args.file.display());
        runs.push(replay_once(&runtime, &args, v)?);
    }
    let out = json!({
        "file": args.file,
        "model": args.model,
        "note": "online error of each version over the whole recording, every sweep through perception; \
                 each version saw the same sensor data and truth; a version is scored on the subjects routed \
                 to it, the baselines (constant velocity, Kalman) on every subject of each round",
        "versions": runs,
    });
    if args.json {
        println!("{out}");
        return Ok(());
    }
    println!("{}: {} on {}", args.model, args.versions.join(" vs "), args.file.display());
    let mut names: Vec<String> = Vec::new();
    for r in &runs {
        for k in r["metrics"].as_object().into_iter().flat_map(|m| m.keys()) {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    // Each version's column, then the baselines' of the first run (every run sees the same
    // tracks).
    let mut columns: Vec<(String, &serde_json::Value)> =
        runs.iter().map(|r| (format!("v{}", r["version"].as_str().unwrap_or("?")), &r["metrics"])).collect();
    if let Some(b) = runs.first().and_then(|r| r["baselines"].as_object()) {
        columns.extend(b.iter().map(|(k, v)| (k.clone(), v)));
    }
    print!("{:<28}", "metric");
    for (title, _) in &columns {
        print!("{title:>18}");
    }
    println!();
    for name in &names {
        print!("{name:<28}");
        for (_, metrics) in &columns {
            let m = &metrics[name];
            match m["value"].as_f64() {
                Some(v) => print!("{:>18}", format!("{v:.3} (n={})", m["samples"])),
                None => print!("{:>18}", "-"),
            }
        }
        println!();
    }
    for r in &runs {
        println!(
            "v{}: {} frames, {:.1} scene s in {:.1} s ({:.1}x real time)",
            r["version"].as_str().unwrap_or("?"),
            r["frames"],
            r["scene_secs"].as_f64().unwrap_or(0.0),
            r["wall_secs"].as_f64().unwrap_or(0.0),
            r["times_real_time"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
