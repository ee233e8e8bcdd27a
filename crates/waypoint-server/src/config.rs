//! Server configuration: plain values, parsed from flags and environment by the binary.

use std::path::PathBuf;

pub use crate::access::Secret;
use waypoint_sim::replay::Track;
use waypoint_sim::SceneConfig;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The scene to simulate.
    pub scene: SceneConfig,
    /// Start ticking immediately.
    pub autostart: bool,
    /// Scene seconds per wall-clock second.
    pub speed: f64,
    /// Largest client message accepted by the protocol; larger ones get a `too_large` error.
    pub max_message_bytes: usize,
    /// Hard limit of the WebSocket layer; beyond it the connection is closed.
    pub ws_hard_limit_bytes: usize,
    /// Stream frames queued per client before the oldest are dropped.
    pub send_queue_frames: usize,
    /// Bytes of stream frames queued per client before the oldest are dropped.
    pub send_queue_bytes: usize,
    /// Replies queued per client before the server stops reading from it.
    pub reply_queue: usize,
    /// Recorded pedestrian tracks to replay instead of the simulated agents.
    pub replay_tracks: Option<Vec<Track>>,
    /// The model repository.
    pub model_repository: PathBuf,
    /// Seconds between scans of the repository for new versions; none disables polling.
    pub repository_poll_secs: Option<u64>,
    /// Largest HTTP request body, bytes (after decompression).
    pub max_request_bytes: usize,
    /// Byte budget of the in-process response cache (models with `response_cache = true`); 0
    /// turns it off.
    pub cache_bytes: usize,
    /// Redis shared by the replicas (`redis://HOST:PORT`): the response cache's second tier.
    pub redis_url: Option<String>,
    /// How long an answer stays in Redis, seconds.
    pub cache_ttl_secs: u64,
    /// This replica's name in a cluster (default: host name and port).
    pub replica_id: Option<String>,
    /// How long the cluster leader's lease lasts without renewal, milliseconds.
    pub lease_ms: u64,
    /// LightningChart JS licence key handed to the dashboard's own pages
    /// (`WAYPOINT_LCJS_LICENSE`); without one the dashboard draws with its open-source renderer.
    pub lcjs_license: Option<Secret>,
    /// The operator's own copy of LightningChart JS's browser bundle (`lcjs.iife.js`), served at
    /// `/lcjs/lcjs.js`; Waypoint ships none.
    pub lcjs_module: Option<PathBuf>,
    /// The licence information a LightningChart JS deployment key is checked against
    /// (`{"company": …, "appTitle": …}`), passed to the library as `licenseInformation`.
    pub lcjs_license_information: Option<serde_json::Map<String, serde_json::Value>>,
    /// Bearer token every mutating call needs (control API writes, repository load/unload,
    /// scene commands); none: open.
    pub api_token: Option<Secret>,
    /// Bearer token inference needs (the API token also works); none: open.
    pub infer_token: Option<Secret>,
    /// Scene commands per second each client may send (twice that in a burst); 0: no limit.
    pub scene_commands_per_sec: f64,
    /// Continuous learning of the trajectory model.
    pub learner: crate::lifecycle::learner::LearnerConfig,
    /// Write every stream of the run to an MCAP file.
    pub record: Option<crate::record::RecordSettings>,
    /// Serve the live run to the Foxglove app (WebSocket protocol `foxglove.websocket.v1`).
    pub foxglove_addr: Option<std::net::SocketAddr>,
    /// Play a recording through the live stack instead of simulating.
    pub replay: Option<ReplaySettings>,
    /// Run the scene (simulated or replayed) as fast as the stack takes it, every sweep through
    /// perception (`eval replay`, `train trajectory-road --sim`); otherwise at `speed`, sweeps
    /// skipped when perception is busy, as live.
    pub unpaced: bool,
    /// Keep what perception saw and the truth at every sweep ([`crate::live::sweep_log::SweepLog`]),
    /// for training on the tracks.
    pub log_sweeps: bool,
}

/// A recording to play.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    pub path: PathBuf,
}

/// The repository shipped with the project: `models/` in the working directory when there is
/// one, else the copy beside the sources this binary was built from.
pub fn default_model_repository() -> PathBuf {
    let local = PathBuf::from("models");
    if local.is_dir() {
        local
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models"))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            scene: SceneConfig::default(),
            autostart: true,
            speed: 1.0,
            max_message_bytes: 1 << 20,
            ws_hard_limit_bytes: 16 << 20,
            send_queue_frames: 64,
            send_queue_bytes: 8 << 20,
            reply_queue: 256,
            replay_tracks: None,
            model_repository: default_model_repository(),
            repository_poll_secs: None,
            max_request_bytes: 64 << 20,
            cache_bytes: 64 << 20,
            redis_url: None,
            cache_ttl_secs: 300,
            replica_id: None,
            lease_ms: 2000,
            lcjs_license: None,
            lcjs_module: None,
            lcjs_license_information: None,
            api_token: None,
            infer_token: None,
            scene_commands_per_sec: 10.0,
            learner: crate::lifecycle::learner::LearnerConfig::default(),
            record: None,
            foxglove_addr: None,
            replay: None,
            unpaced: false,
            log_sweeps: false,
        }
    }
}

/// Refuses to serve beyond loopback without a token: anyone who reaches the port could change
/// routing, load models and drive the scene. `insecure_no_auth` says the operator means it.
pub fn check_exposure(addr: std::net::SocketAddr, config: &ServerConfig, insecure_no_auth: bool) -> Result<(), String> {
    if let Some(fox) = config.foxglove_addr.filter(|a| !a.ip().is_loopback() && !insecure_no_auth) {
        return Err(format!(
            "refusing to serve the Foxglove bridge on {fox}: it has no access control; keep it on loopback (and reach \
             it through an SSH tunnel) or pass --insecure-no-auth"
        ));
    }
    if addr.ip().is_loopback() || config.api_token.is_some() || insecure_no_auth {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr} without access control: set --api-token (WAYPOINT_API_TOKEN), and \
             --infer-token to guard inference too, or pass --insecure-no-auth to serve it open"
        ))
    }
}

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
