//! The one control plane. What a replica changes (a routing policy, a canary's step, a model
//! loaded or unloaded, batching overrides) becomes a field of the hash `waypoint:cp` —
//! `route:<model>`, `repo:<model>`, `batching:<model>` — holding the change, the replica it
//! came from and a generation from `INCR waypoint:cp:gen`; its decisions are appended to the
//! list `waypoint:cp:decisions` (the newest 200). Then `waypoint:ch:cp` is told. Every replica
//! applies, in generation order, each field newer than the one it last applied, on the
//! announcement and every second (so a lost announcement heals within a second). A write that
//! fails while Redis is down is kept and written when Redis is back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use super::{Cluster, CP_CHANNEL};
use crate::lifecycle::routing::{Decision, SharedRoute};
use crate::serving::registry::RepoChange;

const CP_KEY: &str = "waypoint:cp";
const GEN_KEY: &str = "waypoint:cp:gen";
const DECISIONS_KEY: &str = "waypoint:cp:decisions";
/// Decisions the cluster keeps.
const DECISIONS_KEPT: i64 = 200;
/// The decision log is re-read at least this often even when no field changed.
const DECISIONS_REFRESH: Duration = Duration::from_secs(10);

/// What a replica knows of the control plane.
#[derive(Debug, Default)]
pub(super) struct State {
    wake: Notify,
    /// Field → generation applied here (or written here).
    applied: Mutex<HashMap<String, u64>>,
    /// Generations this replica wrote (not applied again).
    mine: Mutex<HashSet<u64>>,
    highest: AtomicU64,
    synced_once: AtomicBool,
    /// Read the decision log at the next reconcile even if no field changed.
    reread: AtomicBool,
}

impl State {
    /// Asks for a reconcile now (an announcement arrived, or the subscriber reconnected).
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(super) fn applied_generation(&self) -> u64 {
        self.highest.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Field {
    gen: u64,
    origin: String,
    body: Value,
}

pub(super) async fn run(c: Arc<Cluster>) {
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let mut decisions: Vec<Decision> = Vec::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut decisions_read = Instant::now();
    loop {
        let reconcile = tokio::select! {
            _ = every.tick() => true,
            _ = c.control.wake.notified() => true,
            _ = c.parts.router.changed.notified() => false,
            _ = c.parts.registry.changed.notified() => false,
        };
        let (new_decisions, models) = c.parts.router.take_outbox();
        decisions.extend(new_decisions);
        for m in models {
            if let Ok(v) = serde_json::to_value(c.parts.router.export(&m)) {
                fields.insert(format!("route:{m}"), v);
            }
        }
        for change in c.parts.registry.take_changes() {
            let name = match &change {
                RepoChange::Load { model } | RepoChange::Unload { model } => format!("repo:{model}"),
                RepoChange::Batching { model, .. } => format!("batching:{model}"),
            };
            if let Ok(v) = serde_json::to_value(&change) {
                fields.insert(name, v);
            }
        }
        if (!fields.is_empty() || !decisions.is_empty()) && write(&c, &fields, &decisions).await {
            if !decisions.is_empty() {
                // Read the log back, so this replica holds the very list the others read.
                c.control.reread.store(true, Ordering::Relaxed);
                c.control.wake();
            }
            fields.clear();
            decisions.clear();
        }
        if reconcile {
            let refresh =
                decisions_read.elapsed() >= DECISIONS_REFRESH || c.control.reread.swap(false, Ordering::Relaxed);
            if sync(&c, refresh).await {
                decisions_read = Instant::now();
            }
        }
    }
}

/// Writes this replica's changes and announces them; false when Redis did not take them.
async fn write(c: &Cluster, fields: &BTreeMap<String, Value>, decisions: &[Decision]) -> bool {
    let origin = c.id();
    let mut p = redis::pipe();
    let mut gens = Vec::new();
    for (name, body) in fields {
        let mut incr = redis::cmd("INCR");
        incr.arg(GEN_KEY);
        let Some(gen) = c.link.run::<u64>(incr).await else { return false };
        c.control.mine.lock().unwrap_or_else(|p| p.into_inner()).insert(gen);
        gens.push((name.clone(), gen));
        let Ok(value) = serde_json::to_string(&Field { gen, origin: origin.clone(), body: body.clone() }) else {
            continue;
        };
        p.cmd("HSET").arg(CP_KEY).arg(name).arg(value).ignore();
    }
    for d in decisions {
        if let Ok(v) = serde_json::to_string(d) {
            p.cmd("RPUSH").arg(DECISIONS_KEY).arg(v).ignore();
        }
    }
    p.cmd("LTRIM").arg(DECISIONS_KEY).arg(-DECISIONS_KEPT).arg(-1).ignore();
    p.cmd("PUBLISH").arg(CP_CHANNEL).arg(&origin).ignore();
    if c.link.pipe::<()>(&p).await.is_none() {
        return false;
    }
    let mut applied = c.control.applied.lock().unwrap_or_else(|p| p.into_inner());
    for (name, gen) in gens {
        applied.insert(name, gen);
        c.control.highest.fetch_max(gen, Ordering::Relaxed);
    }
    true
}

/// Applies every field newer than what this replica applied; re-reads the decision log when
/// something changed (or `refresh`). True when the log was read.
async fn sync(c: &Arc<Cluster>, refresh: bool) -> bool {
    let mut p = redis::pipe();
    p.cmd("GET").arg(GEN_KEY).cmd("HGETALL").arg(CP_KEY);
    let Some((gen, raw)) = c.link.pipe::<(Option<u64>, HashMap<String, String>)>(&p).await else { return false };
    if gen.unwrap_or(0) < c.control.highest.load(Ordering::Relaxed) {
        // Redis lost the control plane (restarted without persistence): start counting again,
        // and the leader writes what it serves.
        tracing::warn!("the cluster's Redis lost its control plane; the leader writes it again");
        c.control.applied.lock().unwrap_or_else(|p| p.into_inner()).clear();
        c.control.mine.lock().unwrap_or_else(|p| p.into_inner()).clear();
        c.control.highest.store(0, Ordering::Relaxed);
        if c.is_leader() {
            c.parts.router.reshare();
            c.parts.registry.reshare();
        }
        return false;
    }
    let mut todo: Vec<(String, Field)> = {
        let applied = c.control.applied.lock().unwrap_or_else(|p| p.into_inner());
        raw.into_iter()
            .filter_map(|(name, v)| serde_json::from_str::<Field>(&v).ok().map(|f| (name, f)))
            .filter(|(name, f)| applied.get(name).is_none_or(|g| f.gen > *g))
            .collect()
    };
    todo.sort_by_key(|(_, f)| f.gen);
    let changed = !todo.is_empty();
    for (name, f) in todo {
        let mine = c.control.mine.lock().unwrap_or_else(|p| p.into_inner()).contains(&f.gen);
        if !mine {
            apply(c, &name, f.body).await;
        }
        c.control.applied.lock().unwrap_or_else(|p| p.into_inner()).insert(name, f.gen);
        c.control.highest.fetch_max(f.gen, Ordering::Relaxed);
    }
    let first = !c.control.synced_once.swap(true, Ordering::Relaxed);
    if !(changed || refresh || first) {
        return false;
    }
    let mut range = redis::cmd("LRANGE");
    range.arg(DECISIONS_KEY).arg(0).arg(-1);
    let Some(list) = c.link.run::<Vec<String>>(range).await else { return false };
    let decisions = list.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    c.parts.router.replace_decisions(decisions);
    true
}

async fn apply(c: &Arc<Cluster>, name: &str, body: Value) {
    let p = &c.parts;
    if let Some(model) = name.strip_prefix("route:") {
        match serde_json::from_value::<SharedRoute>(body) {
            Ok(route) => {
                tracing::info!(model, ?route, "routing from the cluster");
                p.router.import(model, route, &p.registry, &p.online);
            }
            Err(e) => tracing::warn!(field = name, error = %e, "unreadable routing from the cluster"),
        }
        return;
    }
    match serde_json::from_value::<RepoChange>(body) {
        Ok(change) => {
            tracing::info!(?change, "model change from the cluster");
            let registry = p.registry.clone();
            match tokio::task::spawn_blocking(move || registry.apply_peer(&change)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(field = name, error = %e, "a model change from the cluster failed here"),
                Err(e) => tracing::warn!(field = name, error = %e, "a model change from the cluster panicked"),
            }
        }
        Err(e) => tracing::warn!(field = name, error = %e, "unreadable model change from the cluster"),
    }
}
