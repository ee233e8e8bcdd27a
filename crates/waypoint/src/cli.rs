//! Command-line arguments and the commands they run.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use waypoint_server::config::Secret;
use waypoint_server::{AppState, ServerConfig};
use waypoint_sim::replay::{read_tracks, read_udacity, tracks_from_rows, UdacityRow, ETH_UCY_SECS_PER_FRAME_ID};
use waypoint_sim::SceneConfig;

use crate::lidar_preset::LidarPreset;

/// Waypoint: a real-time ML server for autonomous-vehicle perception and prediction.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "WAYPOINT_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `waypoint_server=debug`.
    #[arg(long, env = "WAYPOINT_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the simulator and serve it over HTTP and WebSocket.
    Serve(Box<ServeArgs>),
    /// Print a summary of a recorded file (ETH/UCY tracks or a Udacity lidar/radar log).
    Replay(ReplayArgs),
    /// Load generator: latency percentiles and throughput against a running server.
    Bench(crate::bench_cmd::BenchArgs),
    /// Stream fan-out: many WebSocket subscribers over several replicas, their delay behind a
    /// subscriber of the leader and the frames dropped for them.
    BenchFanout(crate::bench_cmd::FanoutArgs),
    /// Evaluate a model on public data, beside the published reference numbers.
    Eval(crate::eval::EvalArgs),
    /// Train a model and write it as a new version into the model repository.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Write simulated lidar sweeps and their road users as a KITTI 3D-object directory.
    ExportKitti(crate::detection_cmd::ExportKittiArgs),
    /// Run the live stack without serving and write every stream to an MCAP file.
    Record(Box<crate::record_cmd::RecordArgs>),
    /// Write a native trajectory network as an ONNX model (to serve it with ONNX Runtime, on the
    /// CPU or a GPU).
    ExportOnnx(crate::export_cmd::ExportOnnxArgs),
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// The learned trajectory model, on ETH/UCY track files.
    Trajectory(crate::trajectory_cmd::TrainArgs),
    /// The lidar object classifier, on simulated 64- and 32-beam sweeps.
    Detection(crate::detection_cmd::TrainDetectionArgs),
    /// The road-user model's learned correction, on the tracks of simulated drives (`--sim`).
    TrajectoryRoad(crate::road_cmd::TrainRoadArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WAYPOINT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Scene seed: the same seed gives the same scene.
    #[arg(long, env = "WAYPOINT_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Scene seconds per wall-clock second.
    #[arg(long, env = "WAYPOINT_SPEED", default_value_t = 1.0)]
    pub speed: f64,
    #[arg(long, env = "WAYPOINT_VEHICLES", default_value_t = 6)]
    pub vehicles: usize,
    #[arg(long, env = "WAYPOINT_PEDESTRIANS", default_value_t = 4)]
    pub pedestrians: usize,
    #[arg(long, env = "WAYPOINT_CYCLISTS", default_value_t = 2)]
    pub cyclists: usize,
    /// Vehicles parked beside the north and south arms (rows square to the road or along it;
    /// they never move).
    #[arg(long, env = "WAYPOINT_PARKED", default_value_t = 0)]
    pub parked: usize,
    /// Lidar model.
    #[arg(long, env = "WAYPOINT_LIDAR", default_value = "default")]
    pub lidar: LidarPreset,
    /// Start with the scene paused.
    #[arg(long, env = "WAYPOINT_PAUSED")]
    pub paused: bool,
    /// Largest client message accepted, bytes.
    #[arg(long, env = "WAYPOINT_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Stream frames queued per client before the oldest are dropped.
    #[arg(long, env = "WAYPOINT_SEND_QUEUE_FRAMES", default_value_t = 64)]
    pub send_queue_frames: usize,
    /// Bytes of stream frames queued per client before the oldest are dropped.
    #[arg(long, env = "WAYPOINT_SEND_QUEUE_BYTES", default_value_t = 8 << 20)]
    pub send_queue_bytes: usize,
    /// Model repository directory (default: the project's `models/`).
    #[arg(long, env = "WAYPOINT_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,
    /// Rescan the repository for new versions every this many seconds (0: never).
    #[arg(long, env = "WAYPOINT_REPOSITORY_POLL_SECS", default_value_t = 0)]
    pub repository_poll_secs: u64,
    /// Largest HTTP request body after decompression, bytes.
    #[arg(long, env = "WAYPOINT_MAX_REQUEST_BYTES", default_value_t = 64 << 20)]
    pub max_request_bytes: usize,
    /// Byte budget of the in-process response cache, for models whose config.toml says
    /// `response_cache = true` (least recently used answers go first); 0 turns it off.
    #[arg(long, env = "WAYPOINT_CACHE_BYTES", default_value_t = 64 << 20)]
    pub cache_bytes: usize,
    /// Join a cluster of replicas sharing this Redis (`redis://HOST:PORT`): one scene run by the
    /// leader, one control plane, and the response cache's second tier. Inference goes on
    /// (uncached) while Redis is down.
    #[arg(long, env = "WAYPOINT_REDIS_URL")]
    pub redis: Option<String>,
    /// How long an answer stays in Redis, seconds.
    #[arg(long, env = "WAYPOINT_CACHE_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_ttl_secs: u64,
    /// This replica's name in the cluster (default: host name and port).
    #[arg(long, env = "WAYPOINT_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Bearer token every mutating call needs (control-API writes, repository load/unload, scene
    /// commands). Required to listen beyond loopback, unless --insecure-no-auth.
    #[arg(long, env = "WAYPOINT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Bearer token inference needs too (the API token also works).
    #[arg(long, env = "WAYPOINT_INFER_TOKEN", hide_env_values = true)]
    pub infer_token: Option<String>,
    /// Listen beyond loopback without --api-token: anyone who reaches the port may change
    /// routing, load models and drive the scene.
    #[arg(long, env = "WAYPOINT_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Scene commands each client may send per second (twice that in a burst); 0: no limit.
    #[arg(long, env = "WAYPOINT_SCENE_COMMANDS_PER_SEC", default_value_t = 10.0)]
    pub scene_commands_per_sec: f64,
    /// Check the flags, environment, model repository and Redis URL, print the result and exit
    /// without serving.
    #[arg(long)]
    pub check_config: bool,
    /// The cluster leader's lease, milliseconds: a dead leader is replaced within two leases.
    #[arg(long, env = "WAYPOINT_LEASE_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(200..))]
    pub lease_ms: u64,
    /// Write every stream of the run (sensors, truth, detections, tracks, fused states,
    /// predictions, health, online evaluation, routing decisions) to this MCAP file; it is
    /// closed cleanly on Ctrl-C or SIGTERM.
    #[arg(long, env = "WAYPOINT_RECORD")]
    pub record: Option<PathBuf>,
    /// Compression of the recording's chunks: zstd, lz4 or none.
    #[arg(long, env = "WAYPOINT_RECORD_COMPRESSION", default_value = "zstd")]
    pub record_compression: waypoint_server::record::Compression,
    /// Play this MCAP recording (Waypoint's own, or any with a foxglove.PointCloud lidar topic)
    /// through the live stack instead of simulating, at --speed; `seek` commands move in it.
    #[arg(long, env = "WAYPOINT_REPLAY")]
    pub replay: Option<PathBuf>,
    /// Serve the live run to the Foxglove app on this address (WebSocket protocol
    /// foxglove.websocket.v1; loopback only unless --insecure-no-auth).
    #[arg(long, env = "WAYPOINT_FOXGLOVE_ADDR")]
    pub foxglove_addr: Option<SocketAddr>,
    /// Replay pedestrian tracks from an ETH/UCY file instead of simulated agents.
    #[arg(long, env = "WAYPOINT_REPLAY_TRACKS")]
    pub replay_tracks: Option<PathBuf>,
    /// LightningChart JS licence key for the dashboard's charts (default: the open-source
    /// renderer).
    #[arg(long, env = "WAYPOINT_LCJS_LICENSE", hide_env_values = true)]
    pub lcjs_license: Option<String>,
    /// The licence information your LightningChart JS deployment key was issued for, as JSON:
    /// `{"company": "…", "appTitle": "…"}` (string values only).
    #[arg(long, env = "WAYPOINT_LCJS_LICENSE_INFO", value_parser = parse_license_information)]
    pub lcjs_license_info: Option<serde_json::Map<String, serde_json::Value>>,
    /// Your own copy of LightningChart JS's browser bundle (`lcjs.iife.js` from the
    /// `@lightningchart/lcjs` package, under its maker's licence), served to the dashboard;
    /// Waypoint ships none, and uses it only with --lcjs-license.
    #[arg(long, env = "WAYPOINT_LCJS_MODULE")]
    pub lcjs_module: Option<PathBuf>,
    /// Fine-tune the trajectory models (`trajectory` on every track, `trajectory_road`'s
    /// correction on those of vehicles and cyclists) on the scene's tracks every this many
    /// seconds (0: only on request, `POST /api/v1/models/{trajectory,trajectory_road}/train`).
    #[arg(long, env = "WAYPOINT_LEARN_EVERY_SECS", default_value_t = 0)]
    pub learn_every_secs: u64,
    /// Windows (one per track every 0.4 s of scene) a training round needs at least.
    #[arg(long, env = "WAYPOINT_LEARN_MIN_WINDOWS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(32..))]
    pub learn_min_windows: u64,
    /// Do not offer each fine-tuned version as a canary automatically.
    #[arg(long, env = "WAYPOINT_NO_AUTO_CANARY")]
    pub no_auto_canary: bool,
    /// Seconds each canary step is held at least.
    #[arg(long, env = "WAYPOINT_CANARY_DWELL_SECS", default_value_t = 30.0)]
    pub canary_dwell_secs: f64,
    /// Learned versions kept per trajectory model (the newest; versions a routing policy uses
    /// are kept too). Older learned versions are unloaded and deleted; shipped versions never are.
    #[arg(long, env = "WAYPOINT_KEEP_LEARNED_VERSIONS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_learned_versions: u64,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// An ETH/UCY track file (`frame agent x y`) or a Udacity log (`L ...` / `R ...` rows).
    pub file: PathBuf,
}

pub fn init_logging(format: &LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// `--lcjs-license-info`: a JSON object of strings naming at least the company and the app title.
pub fn parse_license_information(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(map) = v else {
        return Err("expected a JSON object such as {\"company\": \"…\", \"appTitle\": \"…\"}".into());
    };
    if let Some((k, _)) = map.iter().find(|(_, v)| !v.is_string()) {
        return Err(format!("{k:?}: every value must be a string"));
    }
    for key in ["company", "appTitle"] {
        if !map.contains_key(key) {
            return Err(format!("{key:?} is missing"));
        }
    }
    Ok(map)
}

pub fn server_config(args: &ServeArgs) -> Result<ServerConfig> {
    let mut scene = SceneConfig {
        seed: args.seed,
        vehicles: args.vehicles,
        pedestrians: args.pedestrians,
        cyclists: args.cyclists,
        parked: args.parked,
        ..SceneConfig::default()
    };
    scene.sensors.lidar = args.lidar.config();
    let replay_tracks = match &args.replay_tracks {
        Some(path) => {
            let rows = read_tracks(path)?;
            Some(tracks_from_rows(&rows, ETH_UCY_SECS_PER_FRAME_ID))
        }
        None => None,
    };
    Ok(ServerConfig {
        scene,
        autostart: !args.paused,
        speed: args.speed,
        max_message_bytes: args.max_message_bytes,
        send_queue_frames: args.send_queue_frames,
        send_queue_bytes: args.send_queue_bytes,
        replay_tracks,
        model_repository: args
            .model_repository
            .clone()
            .unwrap_or_else(waypoint_server::config::default_model_repository),
        repository_poll_secs: Some(args.repository_poll_secs).filter(|s| *s > 0),
        max_request_bytes: args.max_request_bytes,
        cache_bytes: args.cache_bytes,
        redis_url: args.redis.clone(),
        cache_ttl_secs: args.cache_ttl_secs,
        replica_id: args.replica_id.clone(),
        lease_ms: args.lease_ms,
        lcjs_license: args.lcjs_license.clone().filter(|k| !k.trim().is_empty()).map(Secret::new),
        lcjs_module: args.lcjs_module.clone(),
        lcjs_license_information: args.lcjs_license_info.clone(),
        api_token: args.api_token.clone().filter(|k| !k.is_empty()).map(Secret::new),
        infer_token: args.infer_token.clone().filter(|k| !k.is_empty()).map(Secret::new),
        scene_commands_per_sec: args.scene_commands_per_sec,
        learner: waypoint_server::lifecycle::learner::LearnerConfig {
            every_secs: Some(args.learn_every_secs).filter(|s| *s > 0),
            auto_canary: !args.no_auto_canary,
            keep_versions: args.keep_learned_versions as usize,
            min_windows: args.learn_min_windows as usize,
            canary: waypoint_server::lifecycle::routing::CanarySettings {
                dwell_secs: args.canary_dwell_secs,
                ..Default::default()
            },
            ..Default::default()
        },
        record: args.record.clone().map(|path| waypoint_server::record::RecordSettings {
            path: Some(path),
            compression: args.record_compression,
        }),
        foxglove_addr: args.foxglove_addr,
        replay: args.replay.clone().map(|path| waypoint_server::config::ReplaySettings { path }),
        ..ServerConfig::default()
    })
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let config = server_config(&args)?;
    waypoint_server::config::check_exposure(args.addr, &config, args.insecure_no_auth).map_err(anyhow::Error::msg)?;
    if !(args.scene_commands_per_sec.is_finite() && args.scene_commands_per_sec >= 0.0) {
        anyhow::bail!("--scene-commands-per-sec must be a number >= 0");
    }
    if args.check_config {
        return check_config(&args, &config);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let state = AppState::new(config)?;
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "waypoint serving; open http://{addr}/");
        waypoint_server::run(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// `serve --check-config`: what serving would need, checked without serving.
fn check_config(args: &ServeArgs, config: &ServerConfig) -> Result<()> {
    let repo = waypoint_server::serving::repository::Repository::new(&config.model_repository);
    let models = repo.models().with_context(|| format!("model repository {}", config.model_repository.display()))?;
    for m in &models {
        repo.config(m).with_context(|| format!("model {m:?}"))?;
    }
    if let Some(url) = &config.redis_url {
        waypoint_server::serving::redis_link::RedisLink::new(url).map_err(anyhow::Error::msg)?;
    }
    if let Some(path) = &config.lcjs_module {
        std::fs::metadata(path).with_context(|| format!("--lcjs-module {}", path.display()))?;
    }
    println!(
        "configuration ok: listen on {}, {} models in {}, {}, API token {}, inference token {}",
        args.addr,
        models.len(),
        config.model_repository.display(),
        config.redis_url.as_deref().map_or("no cluster".to_string(), |u| format!("cluster through {u}")),
        if config.api_token.is_some() { "set" } else { "not set" },
        if config.infer_token.is_some() { "set" } else { "not set" },
    );
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub fn replay(args: ReplayArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let first = text.split_whitespace().next().unwrap_or("");
    let summary = if first == "L" || first == "R" {
        let rows = read_udacity(&args.file)?;
        let lidar = rows.iter().filter(|r| matches!(r, UdacityRow::Lidar { .. })).count();
        let span = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => (b.timestamp_us() - a.timestamp_us()) as f64 * 1e-6,
            _ => 0.0,
        };
        serde_json::json!({"format": "udacity", "rows": rows.len(), "lidar": lidar, "radar": rows.len() - lidar, "span_secs": span})
    } else {
        let rows = read_tracks(&args.file)?;
        let tracks = tracks_from_rows(&rows, ETH_UCY_SECS_PER_FRAME_ID);
        let span = tracks.iter().map(|t| t.end_secs()).fold(0.0, f64::max);
        serde_json::json!({"format": "eth_ucy", "rows": rows.len(), "agents": tracks.len(), "span_secs": span})
    };
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_chart_licence_information_is_a_json_object_of_strings_with_company_and_app_title() {
        let ok = parse_license_information(r#"{"company": "Example Ltd", "appTitle": "Waypoint"}"#).unwrap();
        assert_eq!(ok["appTitle"], "Waypoint");
        for (bad, why) in [
            ("company=Example", "not JSON"),
            (r#"["Example"]"#, "JSON object"),
            (r#"{"company": "Example Ltd"}"#, "\"appTitle\" is missing"),
            (r#"{"company": "Example Ltd", "appTitle": 3}"#, "every value must be a string"),
        ] {
            let e = parse_license_information(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn serve_builds_its_scene_from_the_flags_parked_cars_included() {
        let Command::Serve(args) =
            Cli::try_parse_from(["waypoint", "serve", "--seed", "7", "--vehicles", "3", "--parked", "12"])
                .unwrap()
                .command
        else {
            panic!("not serve")
        };
        let scene = server_config(&args).unwrap().scene;
        assert_eq!((scene.seed, scene.vehicles, scene.parked), (7, 3, 12));
        let Command::Serve(args) = Cli::try_parse_from(["waypoint", "serve"]).unwrap().command else {
            panic!("not serve")
        };
        assert_eq!(server_config(&args).unwrap().scene.parked, 0);
        assert!(Cli::try_parse_from(["waypoint", "serve", "--parked", "-1"]).is_err());
    }
}
