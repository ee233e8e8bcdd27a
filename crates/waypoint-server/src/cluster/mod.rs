//! Replicas of one Waypoint behind a load balancer, sharing one scene, one control plane and one
//! response cache through one Redis (`waypoint serve --redis redis://HOST:PORT`).
//!
//! - **Leadership** ([`lease`]): one replica at a time holds `waypoint:leader` (`SET NX PX`,
//!   renewed by a compare-and-extend script every quarter lease). The leader runs the scene, the
//!   live stack, the canary controller and the learner. A new leader goes on with the scene from
//!   the state the last one saved twice a second (a reset with the same seed, then the same
//!   settings and the faults still to come, on the new leader's clock).
//! - **One scene** ([`relay`]): the leader publishes every stream item on the pub/sub channel
//!   `waypoint:ch:stream`; every other replica fans them out to its own clients through its hub
//!   (the same bounded queues, compression and quantisation). Pub/sub, not Streams: a tick is
//!   worth something for 100 ms, a replica that missed it wants the next one, not a backlog.
//!   Scene commands sent to a follower go to the leader on `waypoint:ch:cmd` and its answer comes
//!   back on the follower's own channel.
//! - **One control plane** ([`control`]): routing policies, the decision log, batching overrides
//!   and model loads/unloads are written to the hash `waypoint:cp` (each field with a generation
//!   from `INCR waypoint:cp:gen`) and announced on `waypoint:ch:cp`; every replica applies what it
//!   has not applied on the announcement, and re-reads the hash every second, so a missed
//!   announcement heals.
//! - **Redis down**: inference goes on everywhere (uncached); the leader keeps its scene; the
//!   followers' clients are told the scene paused, and everything resumes when Redis is back
//!   (followers wait one lease before bidding, so the old leader keeps the scene).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::lifecycle::online::OnlineEval;
use crate::lifecycle::routing::Router;
use crate::live::hub::Hub;
use crate::live::scene_runner::SceneRunner;
use crate::serving::redis_link::RedisLink;
use crate::serving::registry::Registry;

mod control;
mod lease;
mod relay;

/// Redis keys and channels.
const LEADER_KEY: &str = "waypoint:leader";
const REPLICAS_KEY: &str = "waypoint:replicas";
const ADDRS_KEY: &str = "waypoint:replica-addrs";
const SCENE_STATE_KEY: &str = "waypoint:scene:state";
const STREAM_CHANNEL: &str = "waypoint:ch:stream";
const CMD_CHANNEL: &str = "waypoint:ch:cmd";
const CP_CHANNEL: &str = "waypoint:ch:cp";

/// How a replica joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://HOST:PORT`.
    pub url: String,
    /// This replica's name (default: host name and port).
    pub replica_id: Option<String>,
    /// How long a leader's lease lasts without renewal.
    pub lease: Duration,
}

/// One replica as the others see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaInfo {
    pub id: String,
    pub addr: String,
    pub last_seen_secs: f64,
}

/// The parts of a replica the cluster drives.
#[derive(Debug, Clone)]
pub struct Parts {
    pub hub: Arc<Hub>,
    pub scene: Arc<SceneRunner>,
    pub router: Arc<Router>,
    pub registry: Arc<Registry>,
    pub online: Arc<OnlineEval>,
}

/// This replica's membership of a cluster.
#[derive(Debug)]
pub struct Cluster {
    id: Mutex<String>,
    addr: Mutex<String>,
    lease: Duration,
    link: RedisLink,
    parts: Parts,
    leading: Arc<AtomicBool>,
    /// Whether the subscriber connection is up.
    subscribed: AtomicBool,
    leader: Mutex<Option<String>>,
    replicas: Mutex<Vec<ReplicaInfo>>,
    pending: relay::Pending,
    control: control::State,
    stats: Stats,
    /// Redis came back (or the replica started) at this moment: followers wait a lease before
    /// bidding.
    contact_since: Mutex<Option<Instant>>,
    /// The leader's items waiting to be published (taken by the publisher when it starts).
    relay_rx: Mutex<Option<tokio::sync::mpsc::Receiver<waypoint_protocol::convert::StreamItem>>>,
}

/// Counters of the cluster's traffic.
#[derive(Debug, Default)]
pub struct Stats {
    pub relayed: AtomicU64,
    pub relay_dropped: AtomicU64,
    pub received: AtomicU64,
    /// Sum and count of the delay from the leader's publish to the hub here, microseconds.
    pub delay_us_sum: AtomicU64,
    pub delay_count: AtomicU64,
    pub takeovers: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn default_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "waypoint".into());
    format!("{host}:{port}")
}

impl Cluster {
    /// Joins nothing yet: [`Cluster::start`] does, once the replica listens.
    pub fn new(config: &ClusterConfig, parts: Parts) -> Result<Arc<Self>, String> {
        let link = RedisLink::new(&config.url)?;
        if config.lease < Duration::from_millis(200) {
            return Err("the leader lease must be at least 200 ms".into());
        }
        parts.scene.set_leading(false);
        parts.router.share_decisions();
        parts.registry.share_changes();
        let (relay_tx, relay_rx) = tokio::sync::mpsc::channel(relay::QUEUE);
        let c = Arc::new(Self {
            id: Mutex::new(config.replica_id.clone().unwrap_or_default()),
            addr: Mutex::new(String::new()),
            lease: config.lease,
            link,
            parts,
            leading: Arc::new(AtomicBool::new(false)),
            subscribed: AtomicBool::new(false),
            leader: Mutex::new(None),
            replicas: Mutex::new(Vec::new()),
            pending: relay::Pending::default(),
            control: control::State::default(),
            stats: Stats::default(),
            contact_since: Mutex::new(None),
            relay_rx: Mutex::new(Some(relay_rx)),
        });
        relay::install(&c, relay_tx);
        Ok(c)
    }

    /// Starts the cluster's loops, this replica reachable at `addr`.
    pub fn start(self: &Arc<Self>, addr: std::net::SocketAddr) {
        {
            let mut id = self.id.lock().unwrap_or_else(|p| p.into_inner());
            if id.is_empty() {
                *id = default_id(addr.port());
            }
        }
        *self.addr.lock().unwrap_or_else(|p| p.into_inner()) = addr.to_string();
        tracing::info!(replica = %self.id(), lease_ms = self.lease.as_millis() as u64, "joining the cluster");
        let forward: Arc<dyn crate::live::scene_runner::Forward> = Arc::new(relay::Forwarder(Arc::downgrade(self)));
        self.parts.scene.set_forward(forward);
        if let Some(rx) = self.relay_rx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            tokio::spawn(relay::publish(Arc::downgrade(self), rx));
        }
        tokio::spawn(lease::run(self.clone()));
        tokio::spawn(relay::subscribe(self.clone()));
        tokio::spawn(control::run(self.clone()));
    }

    pub fn id(&self) -> String {
        self.id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Whether Redis answers and the subscriber is connected.
    pub fn redis_up(&self) -> bool {
        self.link.is_up() && self.subscribed.load(Ordering::Relaxed)
    }

    /// Replicas seen within the last three leases (this one included while Redis is up).
    pub fn replicas(&self) -> Vec<ReplicaInfo> {
        self.replicas.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `GET /api/v1/cluster`.
    pub fn describe(&self) -> Value {
        json!({
            "replica": self.id(),
            "addr": *self.addr.lock().unwrap_or_else(|p| p.into_inner()),
            "leader": *self.leader.lock().unwrap_or_else(|p| p.into_inner()),
            "leading": self.is_leader(),
            "replicas": self.replicas(),
            "redis": if self.redis_up() { "up" } else { "down" },
            "lease_ms": self.lease.as_millis() as u64,
            "control_generation": self.control.applied_generation(),
            "takeovers": self.stats.takeovers.load(Ordering::Relaxed),
        })
    }

    /// The cluster's lines of `/metrics`.
    pub fn render_metrics(&self) -> String {
        let s = &self.stats;
        let n = s.delay_count.load(Ordering::Relaxed);
        let sum = s.delay_us_sum.load(Ordering::Relaxed) as f64 / 1e6;
        format!(
            "# HELP waypoint_cluster_leader 1 on the replica that leads the cluster.\n# TYPE waypoint_cluster_leader gauge\nwaypoint_cluster_leader {}\n\
             # HELP waypoint_cluster_replicas Replicas seen in the last three leases.\n# TYPE waypoint_cluster_replicas gauge\nwaypoint_cluster_replicas {}\n\
             # HELP waypoint_cluster_relayed_total Stream items the leader published to the cluster.\n# TYPE waypoint_cluster_relayed_total counter\nwaypoint_cluster_relayed_total {}\n\
             # HELP waypoint_cluster_relay_dropped_total Stream items not published because the relay queue was full.\n# TYPE waypoint_cluster_relay_dropped_total counter\nwaypoint_cluster_relay_dropped_total {}\n\
             # HELP waypoint_cluster_received_total Stream items received from the leader.\n# TYPE waypoint_cluster_received_total counter\nwaypoint_cluster_received_total {}\n\
             # HELP waypoint_cluster_relay_delay_seconds From the leader's publish to this replica's hub.\n# TYPE waypoint_cluster_relay_delay_seconds summary\nwaypoint_cluster_relay_delay_seconds_sum {sum}\nwaypoint_cluster_relay_delay_seconds_count {n}\n\
             # HELP waypoint_cluster_takeovers_total Times this replica took the scene over.\n# TYPE waypoint_cluster_takeovers_total counter\nwaypoint_cluster_takeovers_total {}\n",
            u8::from(self.is_leader()),
            self.replicas().len(),
            s.relayed.load(Ordering::Relaxed),
            s.relay_dropped.load(Ordering::Relaxed),
            s.received.load(Ordering::Relaxed),
            s.takeovers.load(Ordering::Relaxed),
        )
    }

    fn set_leader_seen(&self, leader: Option<String>) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = leader;
    }

    fn reply_channel(id: &str) -> String {
        format!("waypoint:ch:reply:{id}")
    }
}
