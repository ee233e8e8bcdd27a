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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use waypoint_models::Tensor;

use crate::lifecycle::online::OnlineEval;
use crate::metrics::VersionMetrics;
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

/// How a canary advances and when it is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanarySettings {
    /// Candidate shares, in (0, 1], ascending.
    pub steps: Vec<f64>,
    /// Seconds each step is held at least.
    pub dwell_secs: f64,
    /// Online-error metric compared (for the trajectory model, `ade_m`).
    pub metric: String,
    /// Whether a larger metric is better (recall) or worse (error).
    pub higher_is_better: bool,
    /// Relative margin: the candidate may be this much worse (0.05 = 5 %) and still advance.
    pub margin: f64,
    /// Online-error samples each version needs before the canary is judged on error.
    pub min_samples: usize,
    /// Requests each version needs before failure rates and latencies are compared.
    pub min_requests: u64,
    /// Roll back when the candidate's failure rate exceeds the incumbent's by this much.
    pub max_failure_rate_increase: f64,
    /// Roll back when the candidate's mean latency exceeds this multiple of the incumbent's
    /// (and by at least a millisecond).
    pub max_latency_ratio: f64,
}

impl Default for CanarySettings {
    fn default() -> Self {
        Self {
            steps: vec![0.05, 0.25, 0.5, 1.0],
            dwell_secs: 30.0,
            metric: "ade_m".into(),
            higher_is_better: false,
            margin: 0.05,
            min_samples: 50,
            min_requests: 20,
            max_failure_rate_increase: 0.02,
            max_latency_ratio: 2.0,
        }
    }
}

/// Where a canary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStatus {
    Running,
    Promoted,
    RolledBack,
}

/// Counters of one version when a canary started, to judge only what happened since.
#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    ok: u64,
    failed: u64,
    latency_count: u64,
    latency_sum_secs: f64,
}

impl Baseline {
    fn of(m: &VersionMetrics) -> Self {
        Self {
            ok: m.ok.load(Ordering::Relaxed),
            failed: m.failed.load(Ordering::Relaxed) + m.rejected.load(Ordering::Relaxed),
            latency_count: m.request.count(),
            latency_sum_secs: m.request.sum_secs(),
        }
    }

    /// (requests, failure rate, mean latency in seconds) since `self`.
    fn since(&self, m: &VersionMetrics) -> (u64, f64, Option<f64>) {
        let now = Self::of(m);
        let ok = now.ok - self.ok;
        let failed = now.failed - self.failed;
        let n = ok + failed;
        let rate = if n == 0 { 0.0 } else { failed as f64 / n as f64 };
        let lc = now.latency_count - self.latency_count;
        let mean = (lc > 0).then(|| (now.latency_sum_secs - self.latency_sum_secs) / lc as f64);
        (n, rate, mean)
    }
}

#[derive(Debug, Clone)]
struct Canary {
    incumbent: u64,
    candidate: u64,
    settings: CanarySettings,
    step: usize,
    step_started: Instant,
    status: CanaryStatus,
    incumbent_base: Baseline,
    candidate_base: Baseline,
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

/// One routing decision, with the evidence it was taken on.
#[derive(Debug, Clone, Serialize)]
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
}

/// Routing state of every model.
#[derive(Debug, Default)]
pub struct Router {
    inner: Mutex<Inner>,
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

    fn log(inner: &mut Inner, model: &str, action: &str, detail: String, evidence: Value) {
        tracing::info!(model, action, detail = %detail, evidence = %evidence, "routing decision");
        inner.decisions.push_back(Decision {
            unix_secs: now_unix(),
            model: model.to_string(),
            action: action.to_string(),
            detail,
            evidence,
        });
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
                    && s.max_latency_ratio >= 1.0;
                if !steps_ok || !knobs_ok {
                    return Err(RoutingError::Invalid(
                        "canary steps must ascend within (0, 1]; dwell and margin >= 0; latency ratio >= 1".into(),
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
                }))
            }
        };
        let mut g = self.lock();
        let detail = serde_json::to_string(&spec).unwrap_or_default();
        Self::log(&mut g, model, "set", detail, json!({"loaded": loaded}));
        g.routes.insert(model.to_string(), route);
        Ok(Self::describe_route(model, g.routes.get(model)))
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
                Self::log(&mut g, &model, "abort", "a canary version is no longer loaded".into(), Value::Null);
                g.routes.insert(model.clone(), Route::Newest);
                continue;
            };
            let s = &c.settings;
            let err =
                |v: u64| online.summary(&model, &v.to_string()).and_then(|(m, n)| m.get(&s.metric).map(|e| (*e, n)));
            let (inc_err, cand_err) = (err(c.incumbent), err(c.candidate));
            let (inc_n, inc_fail, inc_lat) = c.incumbent_base.since(&inc.metrics);
            let (cand_n, cand_fail, cand_lat) = c.candidate_base.since(&cand.metrics);
            let evidence = json!({
                "step": c.step, "share": s.steps.get(c.step),
                "metric": s.metric,
                "incumbent": {"version": c.incumbent, "error": inc_err.map(|e| e.0), "samples": inc_err.map(|e| e.1),
                              "requests": inc_n, "failure_rate": inc_fail, "mean_latency_ms": inc_lat.map(|l| l * 1e3)},
                "candidate": {"version": c.candidate, "error": cand_err.map(|e| e.0), "samples": cand_err.map(|e| e.1),
                              "requests": cand_n, "failure_rate": cand_fail, "mean_latency_ms": cand_lat.map(|l| l * 1e3)},
            });
            let enough_requests = inc_n >= s.min_requests && cand_n >= s.min_requests;
            // Error comparison, on enough samples of both.
            let worse = match (inc_err, cand_err) {
                (Some((ie, in_)), Some((ce, cn))) if in_ >= s.min_samples && cn >= s.min_samples => {
                    let worse =
                        if s.higher_is_better { ce < ie * (1.0 - s.margin) } else { ce > ie * (1.0 + s.margin) };
                    Some(worse)
                }
                _ => None,
            };
            let mut rollback = None;
            if worse == Some(true) {
                rollback =
                    Some(format!("{} worse than the incumbent's by more than {:.0} %", s.metric, s.margin * 100.0));
            } else if enough_requests && cand_fail > inc_fail + s.max_failure_rate_increase {
                rollback = Some(format!("failure rate {cand_fail:.3} against {inc_fail:.3}"));
            } else if let (true, Some(il), Some(cl)) = (enough_requests, inc_lat, cand_lat) {
                if cl > il * s.max_latency_ratio && cl > il + 1e-3 {
                    rollback = Some(format!("mean latency {:.2} ms against {:.2} ms", cl * 1e3, il * 1e3));
                }
            }
            let mut next = *c.clone();
            if let Some(why) = rollback {
                next.status = CanaryStatus::RolledBack;
                Self::log(
                    &mut g,
                    &model,
                    "rollback",
                    format!("candidate {} rolled back: {why}", c.candidate),
                    evidence,
                );
                g.routes.insert(model.clone(), Route::Canary(Box::new(next)));
                continue;
            }
            if worse == Some(false) && c.step_started.elapsed() >= Duration::from_secs_f64(s.dwell_secs) {
                next.step += 1;
                next.step_started = Instant::now();
                if next.step >= s.steps.len() {
                    next.status = CanaryStatus::Promoted;
                    Self::log(&mut g, &model, "promote", format!("candidate {} promoted", c.candidate), evidence);
                } else {
                    Self::log(
                        &mut g,
                        &model,
                        "advance",
                        format!("candidate {} to {:.0} %", c.candidate, s.steps[next.step] * 100.0),
                        evidence,
                    );
                }
                g.routes.insert(model.clone(), Route::Canary(Box::new(next)));
            }
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

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("m", "alice"), bucket("m", "alice"));
        let xs: Vec<f64> = (0..10_000).map(|i| bucket("trajectory", &format!("agent-{i}"))).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let below = xs.iter().filter(|x| **x < 0.25).count();
        assert!((2300..2700).contains(&below), "{below} of 10000 below 0.25");
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
