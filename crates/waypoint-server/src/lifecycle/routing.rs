//! Which version of a model answers a request: the model lifecycle's routing policies.
//!
//! - `newest` (the default): the highest loaded version.
//! - `fixed`: one version for everyone.
//! - `split`: weighted traffic across versions, sticky per caller — a caller's key (a WebSocket
//!   client id, an OIP caller's `x-waypoint-client` header, an agent of the live scene) hashes
//!   to a fixed point in [0, 1), so it lands on the same version while the weights are unchanged.
//! - `shadow`: the primary answers; a candidate gets a copy of each request whose reply is
//!   discarded and whose latency and errors are recorded. The caller never waits for it.
//! - `canary`: the candidate takes a growing share (5 → 25 → 50 → 100 % by default), each step
//!   held for a dwell time. Both versions are scored on the same live agents (the one not
//!   serving an agent runs as a shadow), so their online errors are paired. The candidate is
//!   rolled back at once when its error is worse than the incumbent's by more than the margin
//!   (with enough samples), when it fails more often, or when its latency regresses; it is
//!   promoted after the last step. Every decision is logged with its evidence.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use waypoint_models::Tensor;

use crate::lifecycle::canary::{judge_step, judged_on, Baseline, Canary};
pub use crate::lifecycle::canary::{CanarySettings, CanaryStatus};
use crate::lifecycle::online::OnlineEval;
use crate::serving::error::AppError;
use crate::serving::registry::{LoadedVersion, Registry};

/// A routing policy as the control API takes it (versions as strings, as in OIP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicySpec {
    Newest,
    Fixed {
        version: String,
    },
    Split {
        /// Version → weight (any non-negative scale).
        weights: BTreeMap<String, f64>,
    },
    Shadow {
        /// The version that answers (newest when absent).
        #[serde(default)]
        primary: Option<String>,
        candidate: String,
    },
    Canary {
        /// The version the candidate must match (the one serving now when absent).
        #[serde(default)]
        incumbent: Option<String>,
        candidate: String,
        #[serde(default)]
        settings: CanarySettings,
    },
}

/// The policy in force for one model, with versions resolved.
#[derive(Debug, Clone)]
enum Route {
    Newest,
    Fixed(u64),
    Split(Vec<(u64, f64)>),
    Shadow { primary: Option<u64>, candidate: u64 },
    Canary(Box<Canary>),
}

impl Route {
    fn shared(&self) -> SharedRoute {
        match self {
            Route::Newest => SharedRoute::Newest,
            Route::Fixed(v) => SharedRoute::Fixed { version: *v },
            Route::Split(w) => SharedRoute::Split { weights: w.clone() },
            Route::Shadow { primary, candidate } => SharedRoute::Shadow { primary: *primary, candidate: *candidate },
            Route::Canary(c) => SharedRoute::Canary {
                incumbent: c.incumbent,
                candidate: c.candidate,
                settings: c.settings.clone(),
                step: c.step,
                status: c.status,
            },
        }
    }
}

/// One routing decision, with the evidence it was taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub unix_secs: f64,
    pub model: String,
    pub action: String,
    pub detail: String,
    pub evidence: Value,
}

/// What serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Choice {
    /// The version that answers (`None`: the registry's newest).
    pub version: Option<u64>,
    /// A version that gets a copy whose reply is discarded.
    pub shadow: Option<u64>,
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("model {0:?} is not loaded")]
    NotLoaded(String),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default)]
struct Inner {
    routes: BTreeMap<String, Route>,
    decisions: VecDeque<Decision>,
    /// Decisions taken here and not yet shared with the other replicas (kept only when
    /// [`Router::share_decisions`] is on).
    outbox: Vec<Decision>,
    /// Models whose policy changed here and is not yet shared.
    dirty: std::collections::BTreeSet<String>,
    /// Decisions taken here, by model and action (for `/metrics`).
    counts: BTreeMap<(String, String), u64>,
    share: bool,
}

/// Routing state of every model.
#[derive(Debug, Default)]
pub struct Router {
    inner: Mutex<Inner>,
    /// Wakes whoever shares this replica's changes (a policy set, a decision).
    pub changed: tokio::sync::Notify,
    observer: DecisionObserver,
}

/// Who else hears of each decision taken here (the recorder).
pub type Observer = Box<dyn Fn(&Decision) + Send + Sync>;

#[derive(Default)]
struct DecisionObserver(std::sync::OnceLock<Observer>);

impl std::fmt::Debug for DecisionObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "DecisionObserver(set)" } else { "DecisionObserver(none)" })
    }
}

/// A model's policy as the replicas of a cluster share it: versions resolved, a canary with
/// where it stands but without the local counters it is judged on (each leader judges on its
/// own, from the moment it takes the canary over).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum SharedRoute {
    Newest,
    Fixed { version: u64 },
    Split { weights: Vec<(u64, f64)> },
    Shadow { primary: Option<u64>, candidate: u64 },
    Canary { incumbent: u64, candidate: u64, settings: CanarySettings, step: usize, status: CanaryStatus },
}

/// Decisions kept for the API.
const DECISIONS_KEPT: usize = 200;

/// A caller key's fixed point in [0, 1) for a model (FNV-1a).
pub fn bucket(model: &str, key: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model.bytes().chain([0xff]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Final avalanche so that similar keys spread.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A fresh caller key for a request that names no caller (an OIP request without the
/// `x-waypoint-client` header): every such request is a caller of its own, so a split or a
/// canary divides anonymous traffic by its weights instead of sending it all one way.
pub fn anonymous_key() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let salt = *SALT.get_or_init(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
            ^ u64::from(std::process::id())
    });
    format!("anonymous-{salt:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn pick_weighted(weights: &[(u64, f64)], x: f64) -> Option<u64> {
    let total: f64 = weights.iter().map(|w| w.1).sum();
    if total <= 0.0 {
        return None;
    }
    let mut acc = 0.0;
    for (v, w) in weights {
        acc += w / total;
        if x < acc {
            return Some(*v);
        }
    }
    weights.last().map(|w| w.0)
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn parse_version(model: &str, v: &str, loaded: &[u64]) -> Result<u64, RoutingError> {
    let n = v.parse::<u64>().map_err(|_| RoutingError::Invalid(format!("version {v:?} is not a number")))?;
    if loaded.contains(&n) {
        Ok(n)
    } else {
        Err(RoutingError::Invalid(format!("version {n} of {model:?} is not loaded; loaded: {loaded:?}")))
    }
}

impl Router {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands every decision taken here from now on to `observer` as well (once).
    pub fn observe_decisions(&self, observer: Observer) {
        let _ = self.observer.0.set(observer);
    }

    fn log(&self, inner: &mut Inner, model: &str, action: &str, detail: String, evidence: Value) {
        tracing::info!(model, action, detail = %detail, evidence = %evidence, "routing decision");
        let d =
            Decision { unix_secs: now_unix(), model: model.to_string(), action: action.to_string(), detail, evidence };
        *inner.counts.entry((model.to_string(), action.to_string())).or_default() += 1;
        if inner.share {
            inner.outbox.push(d.clone());
            inner.dirty.insert(model.to_string());
        }
        if let Some(o) = self.observer.0.get() {
            o(&d);
        }
        inner.decisions.push_back(d);
        while inner.decisions.len() > DECISIONS_KEPT {
            inner.decisions.pop_front();
        }
    }

    /// The version for a caller's request, and a shadow copy if the policy wants one.
    pub fn choose(&self, model: &str, key: &str) -> Choice {
        let g = self.lock();
        match g.routes.get(model) {
            None | Some(Route::Newest) => Choice::default(),
            Some(Route::Fixed(v)) => Choice { version: Some(*v), shadow: None },
            Some(Route::Split(w)) => Choice { version: pick_weighted(w, bucket(model, key)), shadow: None },
            Some(Route::Shadow { primary, candidate }) => Choice { version: *primary, shadow: Some(*candidate) },
            Some(Route::Canary(c)) => {
                let share = c.settings.steps.get(c.step).copied().unwrap_or(1.0);
                if bucket(model, key) < share {
                    Choice { version: Some(c.candidate), shadow: Some(c.incumbent) }
                } else {
                    Choice { version: Some(c.incumbent), shadow: Some(c.candidate) }
                }
            }
        }
    }

    /// Sets a model's policy (the versions must be loaded). A canary starts from fresh
    /// evidence: both versions' online-error windows are cleared.
    pub fn set(
        &self,
        model: &str,
        spec: PolicySpec,
        registry: &Registry,
        online: &OnlineEval,
    ) -> Result<Value, RoutingError> {
        let loaded = registry.versions(model).map(|(_, v)| v).ok_or_else(|| RoutingError::NotLoaded(model.into()))?;
        let newest = loaded.last().copied().ok_or_else(|| RoutingError::NotLoaded(model.into()))?;
        let route = match &spec {
            PolicySpec::Newest => Route::Newest,
            PolicySpec::Fixed { version } => Route::Fixed(parse_version(model, version, &loaded)?),
            PolicySpec::Split { weights } => {
                if weights.is_empty() {
                    return Err(RoutingError::Invalid("split needs at least one version".into()));
                }
                let mut w = Vec::new();
                for (v, x) in weights {
                    if !(x.is_finite() && *x >= 0.0) {
                        return Err(RoutingError::Invalid(format!("weight of version {v} must be >= 0")));
                    }
                    w.push((parse_version(model, v, &loaded)?, *x));
                }
                if w.iter().map(|x| x.1).sum::<f64>() <= 0.0 {
                    return Err(RoutingError::Invalid("weights sum to zero".into()));
                }
                Route::Split(w)
            }
            PolicySpec::Shadow { primary, candidate } => {
                let primary = primary.as_deref().map(|p| parse_version(model, p, &loaded)).transpose()?;
                Route::Shadow { primary, candidate: parse_version(model, candidate, &loaded)? }
            }
            PolicySpec::Canary { incumbent, candidate, settings } => {
                let candidate = parse_version(model, candidate, &loaded)?;
                let incumbent = match incumbent {
                    Some(v) => parse_version(model, v, &loaded)?,
                    None => match self.lock().routes.get(model) {
                        Some(Route::Fixed(v)) => *v,
                        Some(Route::Canary(c)) if c.status == CanaryStatus::Running => c.incumbent,
                        _ => newest,
                    },
                };
                if incumbent == candidate {
                    return Err(RoutingError::Invalid("the candidate is the incumbent".into()));
                }
                let s = settings;
                let steps_ok = !s.steps.is_empty()
                    && s.steps.iter().all(|x| *x > 0.0 && *x <= 1.0)
                    && s.steps.windows(2).all(|w| w[0] <= w[1]);
                let knobs_ok = s.dwell_secs.is_finite()
                    && s.dwell_secs >= 0.0
                    && s.margin.is_finite()
                    && s.margin >= 0.0
                    && s.max_latency_ratio >= 1.0
                    && s.persist_windows >= 1
                    && s.significance_z.is_finite()
                    && s.significance_z >= 0.0;
                if !steps_ok || !knobs_ok {
                    return Err(RoutingError::Invalid(
                        "canary steps must ascend within (0, 1]; dwell, margin and significance_z >= 0; \
                         latency ratio >= 1; persist_windows >= 1"
                            .into(),
                    ));
                }
                let base = |v: u64| {
                    registry.get(model, Some(&v.to_string())).map(|l| Baseline::of(&l.metrics)).unwrap_or_default()
                };
                online.clear(model, &incumbent.to_string());
                online.clear(model, &candidate.to_string());
                Route::Canary(Box::new(Canary {
                    incumbent,
                    candidate,
                    settings: s.clone(),
                    step: 0,
                    step_started: Instant::now(),
                    status: CanaryStatus::Running,
                    incumbent_base: base(incumbent),
                    candidate_base: base(candidate),
                    incumbent_window: base(incumbent),
                    candidate_window: base(candidate),
                    strikes: 0,
                }))
            }
        };
        let mut g = self.lock();
        let detail = serde_json::to_string(&spec).unwrap_or_default();
        self.log(&mut g, model, "set", detail, json!({"loaded": loaded}));
        g.routes.insert(model.to_string(), route);
        let v = Self::describe_route(model, g.routes.get(model));
        drop(g);
        self.changed.notify_one();
        Ok(v)
    }

    /// Advances or ends every running canary on its evidence. Called periodically.
    pub fn tick(&self, registry: &Registry, online: &OnlineEval) {
        let mut g = self.lock();
        let models: Vec<String> = g.routes.keys().cloned().collect();
        for model in models {
            let Some(Route::Canary(c)) = g.routes.get(&model).cloned() else { continue };
            if c.status != CanaryStatus::Running {
                continue;
            }
            let (Ok(inc), Ok(cand)) = (
                registry.get(&model, Some(&c.incumbent.to_string())),
                registry.get(&model, Some(&c.candidate.to_string())),
            ) else {
                // A version went away: serve what is left.
                self.log(&mut g, &model, "abort", "a canary version is no longer loaded".into(), Value::Null);
                g.routes.insert(model.clone(), Route::Newest);
                continue;
            };
            let (next, decision) = judge_step(&model, &c, &inc.metrics, &cand.metrics, online);
            if let Some((action, detail, evidence)) = decision {
                self.log(&mut g, &model, action, detail, evidence);
            }
            g.routes.insert(model.clone(), Route::Canary(Box::new(next)));
        }
        // A finished canary serves its winner as a fixed version.
        for route in g.routes.values_mut() {
            if let Route::Canary(c) = route {
                match c.status {
                    CanaryStatus::Promoted => *route = Route::Fixed(c.candidate),
                    CanaryStatus::RolledBack => *route = Route::Fixed(c.incumbent),
                    CanaryStatus::Running => {}
                }
            }
        }
        // Every change above came with a decision, which marked its model for sharing.
        let share = g.share && !g.dirty.is_empty();
        drop(g);
        if share {
            self.changed.notify_one();
        }
    }

    /// The share of a model's traffic each version gets under its policy, given the versions
    /// loaded (ascending); a shadow's copy is not a share.
    pub fn shares(&self, model: &str, loaded: &[u64]) -> Vec<(u64, f64)> {
        let newest = loaded.last().copied();
        match self.lock().routes.get(model) {
            None | Some(Route::Newest) => newest.map(|v| vec![(v, 1.0)]).unwrap_or_default(),
            Some(Route::Fixed(v)) => vec![(*v, 1.0)],
            Some(Route::Split(w)) => {
                let total: f64 = w.iter().map(|x| x.1).sum();
                w.iter().map(|(v, x)| (*v, if total > 0.0 { x / total } else { 0.0 })).collect()
            }
            Some(Route::Shadow { primary, .. }) => primary.or(newest).map(|v| vec![(v, 1.0)]).unwrap_or_default(),
            Some(Route::Canary(c)) => {
                let share = c.settings.steps.get(c.step).copied().unwrap_or(1.0);
                vec![(c.incumbent, 1.0 - share), (c.candidate, share)]
            }
        }
    }

    /// `waypoint_routing_decisions_total` (decisions taken on this replica) and
    /// `waypoint_routing_share` for every loaded model.
    pub fn render_metrics(&self, registry: &Registry) -> String {
        use std::fmt::Write as _;
        let mut out = String::from(
            "# HELP waypoint_routing_decisions_total Routing decisions taken on this replica, by model and action.\n# TYPE waypoint_routing_decisions_total counter\n",
        );
        for ((model, action), n) in &self.lock().counts {
            let _ = writeln!(out, "waypoint_routing_decisions_total{{model=\"{model}\",action=\"{action}\"}} {n}");
        }
        out.push_str("# HELP waypoint_routing_share The share of a model's traffic its policy sends to each version.\n# TYPE waypoint_routing_share gauge\n");
        for model in registry.loaded() {
            let Some((_, versions)) = registry.versions(&model) else { continue };
            for (v, share) in self.shares(&model, &versions) {
                let _ = writeln!(out, "waypoint_routing_share{{model=\"{model}\",version=\"{v}\"}} {share}");
            }
        }
        out
    }

    /// Turns on keeping this replica's decisions for [`Router::take_outbox`].
    pub fn share_decisions(&self) {
        self.lock().share = true;
    }

    /// The decisions taken and the models whose policy changed here since the last call.
    pub fn take_outbox(&self) -> (Vec<Decision>, Vec<String>) {
        let mut g = self.lock();
        (std::mem::take(&mut g.outbox), std::mem::take(&mut g.dirty).into_iter().collect())
    }

    /// Shares every policy and decision again (the cluster's store lost them).
    pub fn reshare(&self) {
        let mut g = self.lock();
        let models: Vec<String> = g.routes.keys().cloned().collect();
        g.dirty.extend(models);
        g.outbox = g.decisions.iter().cloned().collect();
        drop(g);
        self.changed.notify_one();
    }

    /// Replaces the decision log with the cluster's.
    pub fn replace_decisions(&self, decisions: Vec<Decision>) {
        let mut g = self.lock();
        g.decisions = decisions.into_iter().collect();
        while g.decisions.len() > DECISIONS_KEPT {
            g.decisions.pop_front();
        }
    }

    /// A model's policy as the cluster shares it.
    pub fn export(&self, model: &str) -> SharedRoute {
        self.lock().routes.get(model).map_or(SharedRoute::Newest, Route::shared)
    }

    /// Takes a model's policy from another replica. A canary this replica already runs with
    /// the same versions and settings keeps its counters and takes the other's step and
    /// status; any other canary starts from fresh counters, its versions' online windows
    /// cleared (as [`Router::set`] does).
    pub fn import(&self, model: &str, shared: SharedRoute, registry: &Registry, online: &OnlineEval) {
        let mut g = self.lock();
        let route = match shared {
            SharedRoute::Newest => Route::Newest,
            SharedRoute::Fixed { version } => Route::Fixed(version),
            SharedRoute::Split { weights } => Route::Split(weights),
            SharedRoute::Shadow { primary, candidate } => Route::Shadow { primary, candidate },
            SharedRoute::Canary { incumbent, candidate, settings, step, status } => match g.routes.get(model) {
                Some(Route::Canary(c))
                    if c.incumbent == incumbent && c.candidate == candidate && c.settings == settings =>
                {
                    let mut c = c.clone();
                    if c.step != step {
                        c.step_started = Instant::now();
                    }
                    c.step = step;
                    c.status = status;
                    Route::Canary(c)
                }
                _ => {
                    let base = |v: u64| {
                        registry.get(model, Some(&v.to_string())).map(|l| Baseline::of(&l.metrics)).unwrap_or_default()
                    };
                    if status == CanaryStatus::Running {
                        online.clear(model, &incumbent.to_string());
                        online.clear(model, &candidate.to_string());
                    }
                    Route::Canary(Box::new(Canary {
                        incumbent,
                        candidate,
                        settings,
                        step,
                        step_started: Instant::now(),
                        status,
                        incumbent_base: base(incumbent),
                        candidate_base: base(candidate),
                        incumbent_window: base(incumbent),
                        candidate_window: base(candidate),
                        strikes: 0,
                    }))
                }
            },
        };
        g.routes.insert(model.to_string(), route);
    }

    /// The version a model's policy pins for everyone, if any (a fixed policy, or a running
    /// canary's incumbent).
    pub fn pinned(&self, model: &str) -> Option<u64> {
        match self.lock().routes.get(model) {
            Some(Route::Fixed(v)) => Some(*v),
            Some(Route::Canary(c)) if c.status == CanaryStatus::Running => Some(c.incumbent),
            _ => None,
        }
    }

    /// Every version a model's policy names (fixed, split, shadow, or a canary's two).
    pub fn versions_in_use(&self, model: &str) -> Vec<u64> {
        match self.lock().routes.get(model) {
            None | Some(Route::Newest) => Vec::new(),
            Some(Route::Fixed(v)) => vec![*v],
            Some(Route::Split(w)) => w.iter().map(|x| x.0).collect(),
            Some(Route::Shadow { primary, candidate }) => primary.iter().copied().chain([*candidate]).collect(),
            Some(Route::Canary(c)) => vec![c.incumbent, c.candidate],
        }
    }

    fn describe_route(model: &str, route: Option<&Route>) -> Value {
        match route {
            None | Some(Route::Newest) => {
                json!({"model": model, "policy": "newest", "summary": "newest version"})
            }
            Some(Route::Fixed(v)) => json!({"model": model, "policy": "fixed", "version": v.to_string(),
                                            "summary": format!("version {v} for everyone")}),
            Some(Route::Split(w)) => {
                let total: f64 = w.iter().map(|x| x.1).sum();
                let shares: BTreeMap<String, f64> = w.iter().map(|(v, x)| (v.to_string(), x / total)).collect();
                let summary =
                    shares.iter().map(|(v, s)| format!("v{v} {:.0} %", s * 100.0)).collect::<Vec<_>>().join(" / ");
                json!({"model": model, "policy": "split", "shares": shares, "summary": format!("split {summary} (sticky)")})
            }
            Some(Route::Shadow { primary, candidate }) => json!({
                "model": model, "policy": "shadow", "primary": primary.map(|p| p.to_string()),
                "candidate": candidate.to_string(),
                "summary": format!("{} answers, v{candidate} shadows", primary.map_or("newest".into(), |p| format!("v{p}"))),
            }),
            Some(Route::Canary(c)) => {
                let share = c.settings.steps.get(c.step).copied().unwrap_or(1.0);
                json!({
                    "model": model, "policy": "canary", "status": c.status,
                    "incumbent": c.incumbent.to_string(), "candidate": c.candidate.to_string(),
                    "step": c.step, "share": share, "settings": c.settings,
                    "judged_on": judged_on(model, &c.settings), "latency_strikes": c.strikes,
                    "step_elapsed_secs": c.step_started.elapsed().as_secs_f64(),
                    "summary": format!("canary v{} at {:.0} % against v{} ({:?})", c.candidate, share * 100.0, c.incumbent, c.status),
                })
            }
        }
    }

    /// One model's policy.
    pub fn describe(&self, model: &str) -> Value {
        let g = self.lock();
        let mut v = Self::describe_route(model, g.routes.get(model));
        let decisions: Vec<&Decision> = g.decisions.iter().filter(|d| d.model == model).collect();
        v["decisions"] = json!(decisions);
        v
    }

    /// Every model with a policy other than the default, and the recent decisions.
    pub fn describe_all(&self) -> Value {
        let g = self.lock();
        let models: Vec<Value> = g
            .routes
            .iter()
            .filter(|(_, r)| !matches!(r, Route::Newest))
            .map(|(m, r)| Self::describe_route(m, Some(r)))
            .collect();
        json!({"models": models, "decisions": g.decisions.iter().collect::<Vec<_>>()})
    }
}

/// The version that answers a request (an explicit version bypasses the policy) and the one
/// that gets a shadow copy, if any.
pub fn resolve(
    registry: &Registry,
    router: &Router,
    model: &str,
    version: Option<&str>,
    key: &str,
) -> Result<(Arc<LoadedVersion>, Option<Arc<LoadedVersion>>), AppError> {
    let choice = if version.is_some() { Choice::default() } else { router.choose(model, key) };
    let resolved = version.map(str::to_string).or(choice.version.map(|v| v.to_string()));
    let loaded = registry.get(model, resolved.as_deref())?;
    let shadow =
        choice.shadow.filter(|s| *s != loaded.version).and_then(|s| registry.get(model, Some(&s.to_string())).ok());
    Ok((loaded, shadow))
}

/// Sends a copy of a request to a shadow version in the background; its reply is dropped
/// (its latency and errors land in that version's metrics).
pub fn shadow_copy(target: Option<Arc<LoadedVersion>>, inputs: &[Tensor]) {
    let Some(target) = target else { return };
    let copy = inputs.to_vec();
    tokio::spawn(async move {
        if let Err(e) = crate::serving::inference::infer_on(&target, copy).await {
            tracing::debug!(error = %e, version = target.version, "shadow request failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::canary::tests::canary;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("m", "alice"), bucket("m", "alice"));
        let xs: Vec<f64> = (0..10_000).map(|i| bucket("trajectory", &format!("agent-{i}"))).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let below = xs.iter().filter(|x| **x < 0.25).count();
        assert!((2300..2700).contains(&below), "{below} of 10000 below 0.25");
    }

    #[test]
    fn a_policy_shared_with_another_replica_routes_alike_and_a_known_canary_keeps_its_counters() {
        let registry = Registry::new(
            crate::serving::repository::Repository::new(std::env::temp_dir().join("waypoint-no-such-repository")),
            Arc::new(crate::metrics::Metrics::default()),
        );
        let online = OnlineEval::default();
        let (a, b) = (Router::default(), Router::default());
        a.share_decisions();
        let mut c = canary(CanarySettings::default());
        c.step = 1;
        a.lock().routes.insert("m".into(), Route::Canary(Box::new(c)));
        a.lock().routes.insert("n".into(), Route::Split(vec![(1, 1.0), (3, 3.0)]));
        for model in ["m", "n", "never-set"] {
            b.import(model, a.export(model), &registry, &online);
            for i in 0..200 {
                let key = format!("agent-{i}");
                assert_eq!(a.choose(model, &key), b.choose(model, &key), "{model} {key}");
            }
        }
        assert_eq!(b.export("m"), a.export("m"));
        // The same canary one step on: the counters stay, the step moves.
        if let Some(Route::Canary(c)) = b.lock().routes.get_mut("m") {
            c.strikes = 2;
        }
        let SharedRoute::Canary { incumbent, candidate, settings, status, .. } = a.export("m") else { panic!() };
        b.import("m", SharedRoute::Canary { incumbent, candidate, settings, step: 2, status }, &registry, &online);
        let Some(Route::Canary(c)) = b.lock().routes.get("m").cloned() else { panic!() };
        assert_eq!((c.step, c.strikes), (2, 2));
        // Imports are not shared again; only this replica's own changes are.
        assert_eq!(b.take_outbox(), (vec![], vec![]));
    }

    #[test]
    fn anonymous_callers_spread_over_a_split() {
        let keys: Vec<String> = (0..2000).map(|_| anonymous_key()).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "every request gets a key of its own");
        let w = [(1, 1.0), (2, 1.0)];
        let to_2 = keys.iter().filter(|k| pick_weighted(&w, bucket("trajectory", k)) == Some(2)).count();
        assert!((850..1150).contains(&to_2), "{to_2} of 2000 anonymous requests went to version 2");
    }

    #[test]
    fn weighted_pick_follows_the_weights() {
        let w = [(1, 3.0), (2, 1.0)];
        assert_eq!(pick_weighted(&w, 0.0), Some(1));
        assert_eq!(pick_weighted(&w, 0.74), Some(1));
        assert_eq!(pick_weighted(&w, 0.76), Some(2));
        assert_eq!(pick_weighted(&[(1, 0.0)], 0.5), None);
    }
}
