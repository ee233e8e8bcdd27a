//! The canary: how it advances (its settings and where it stands), the counters it is judged on,
//! and one step of its judgement — latency strikes that must persist, failures against the
//! incumbent's, and online error (the statistics are in [`crate::lifecycle::judge`]). The routing
//! policies (`lifecycle::routing`) hold canaries and tick them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::lifecycle::judge::{self, Traffic};
use crate::lifecycle::online::OnlineEval;
use crate::metrics::{HistogramSnapshot, VersionMetrics};

/// How a canary advances and when it is judged (the tests are in [`crate::lifecycle::judge`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanarySettings {
    /// Candidate shares, in (0, 1], ascending.
    pub steps: Vec<f64>,
    /// Seconds each step is held at least.
    pub dwell_secs: f64,
    /// Online-error metric compared (absent: the model's own — `ade_m` for trajectories,
    /// `recall` for detection and anomaly, `rmse_pos_m` for fusion — and, for trajectories and
    /// detection, its per-class forms too, where a significant regression of one class rolls
    /// back; a model the scene does not score is judged on failures and latency only).
    pub metric: Option<String>,
    /// Whether a larger metric is better (absent: as the model's own metric).
    pub higher_is_better: Option<bool>,
    /// Relative margin: the candidate may be this much worse (0.05 = 5 %) and still advance.
    pub margin: f64,
    /// Online-error samples each version needs before the canary is judged on error.
    pub min_samples: usize,
    /// Requests each version needs in a judgement window (and since the canary started).
    pub min_requests: u64,
    /// Roll back when the candidate's failure rate exceeds the incumbent's by this much (and
    /// significantly).
    pub max_failure_rate_increase: f64,
    /// A window is a latency strike when the candidate's median latency exceeds this multiple
    /// of the incumbent's (and by at least a millisecond).
    pub max_latency_ratio: f64,
    /// Latency strikes in a row that roll back.
    pub persist_windows: u32,
    /// Standard units a failure or error difference must exceed to count (3.0: one in 740
    /// by chance).
    pub significance_z: f64,
}

impl Default for CanarySettings {
    fn default() -> Self {
        Self {
            steps: vec![0.05, 0.25, 0.5, 1.0],
            dwell_secs: 30.0,
            metric: None,
            higher_is_better: None,
            margin: 0.05,
            min_samples: 50,
            min_requests: 20,
            max_failure_rate_increase: 0.02,
            max_latency_ratio: 2.0,
            persist_windows: 3,
            significance_z: 3.0,
        }
    }
}

impl CanarySettings {
    /// The online metric the canary of `model` is judged on, and whether larger is better.
    pub fn judged_metric(&self, model: &str) -> Option<(String, bool)> {
        match (&self.metric, crate::lifecycle::online::default_metric(model)) {
            (Some(m), default) => {
                let hib = self.higher_is_better.or(default.filter(|d| d.0 == m).map(|d| d.1)).unwrap_or(false);
                Some((m.clone(), hib))
            }
            (None, Some((m, hib))) => Some((m.to_string(), self.higher_is_better.unwrap_or(hib))),
            (None, None) => None,
        }
    }
}

/// Where a canary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStatus {
    Running,
    Promoted,
    RolledBack,
}

/// Counters of one version at a moment, to judge only what happened since.
#[derive(Debug, Clone)]
pub(crate) struct Baseline {
    ok: u64,
    failed: u64,
    latency: HistogramSnapshot,
}

impl Default for Baseline {
    fn default() -> Self {
        Self { ok: 0, failed: 0, latency: HistogramSnapshot::empty(crate::metrics::DURATION_BUCKETS) }
    }
}

impl Baseline {
    pub(crate) fn of(m: &VersionMetrics) -> Self {
        Self {
            ok: m.ok.load(Ordering::Relaxed),
            failed: m.failed.load(Ordering::Relaxed) + m.rejected.load(Ordering::Relaxed),
            latency: m.request.snapshot(),
        }
    }

    /// The requests served since `self`.
    fn since(&self, m: &VersionMetrics) -> Traffic {
        let now = Self::of(m);
        let ok = now.ok.saturating_sub(self.ok);
        let failures = now.failed.saturating_sub(self.failed);
        Traffic { requests: ok + failures, failures, latency: now.latency.since(&self.latency) }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Canary {
    pub(crate) incumbent: u64,
    pub(crate) candidate: u64,
    pub(crate) settings: CanarySettings,
    pub(crate) step: usize,
    pub(crate) step_started: Instant,
    pub(crate) status: CanaryStatus,
    /// Counters when the canary started (failures are judged on everything since).
    pub(crate) incumbent_base: Baseline,
    pub(crate) candidate_base: Baseline,
    /// Counters when the current latency window opened.
    pub(crate) incumbent_window: Baseline,
    pub(crate) candidate_window: Baseline,
    /// Latency strikes in a row.
    pub(crate) strikes: u32,
}

/// One step of a running canary's judgement: the canary's next state and the decision taken,
/// if any (action, detail, evidence).
pub(crate) fn judge_step(
    model: &str,
    c: &Canary,
    inc: &VersionMetrics,
    cand: &VersionMetrics,
    online: &OnlineEval,
) -> (Canary, Option<(&'static str, String, Value)>) {
    let s = &c.settings;
    let mut next = c.clone();
    // Failures, since the canary started.
    let (inc_all, cand_all) = (c.incumbent_base.since(inc), c.candidate_base.since(cand));
    let enough_requests = inc_all.requests >= s.min_requests && cand_all.requests >= s.min_requests;
    let failing = enough_requests
        && judge::failures_regressed(&inc_all, &cand_all, s.max_failure_rate_increase, s.significance_z);
    // Latency, window by window.
    let (inc_win, cand_win) = (c.incumbent_window.since(inc), c.candidate_window.since(cand));
    let window_closed = inc_win.requests >= s.min_requests && cand_win.requests >= s.min_requests;
    let p50_ms = |t: &Traffic| t.latency.quantile(0.5).map(|x| x * 1e3);
    let window = json!({"closed": window_closed,
        "incumbent": {"requests": inc_win.requests, "p50_ms": p50_ms(&inc_win)},
        "candidate": {"requests": cand_win.requests, "p50_ms": p50_ms(&cand_win)}});
    if window_closed {
        let strike = judge::latency_strike(&inc_win.latency, &cand_win.latency, s.max_latency_ratio);
        next.strikes = if strike { c.strikes + 1 } else { 0 };
        next.incumbent_window = Baseline::of(inc);
        next.candidate_window = Baseline::of(cand);
    }
    // Online error, when the model has a metric.
    let metric = s.judged_metric(model);
    let overall = metric.as_ref().map(|(m, hib)| judge_metric(online, model, c, m, *hib));
    let error = overall.map(|o| o.verdict);
    // With the model's own metric, each class of road user too: only a significant regression
    // counts (a class with few samples neither holds the canary back nor rolls it back).
    let per_class: Vec<(&str, judge::ErrorVerdict)> = match (&metric, &s.metric) {
        (Some((_, hib)), None) => crate::lifecycle::online::class_metrics(model)
            .iter()
            .map(|m| (*m, judge_metric(online, model, c, m, *hib).verdict))
            .collect(),
        _ => Vec::new(),
    };
    let class_worse = per_class.iter().find_map(|(m, v)| match v {
        judge::ErrorVerdict::Worse { t } => Some((*m, *t)),
        _ => None,
    });
    let (inc_err, cand_err) = (overall.and_then(|o| o.incumbent), overall.and_then(|o| o.candidate));
    let t_stat = error.as_ref().and_then(verdict_t);
    let side = |v: u64, all: &Traffic, err: Option<judge::ErrorStats>| {
        json!({"version": v, "error": err.map(|e| e.value), "samples": err.map(|e| e.n),
               "requests": all.requests, "failure_rate": all.failure_rate(),
               "p50_ms": p50_ms(all), "p99_ms": all.latency.quantile(0.99).map(|x| x * 1e3)})
    };
    let evidence = json!({
        "step": c.step, "share": s.steps.get(c.step), "judged_on": judged_on(model, s),
        "metric": metric.as_ref().map(|m| &m.0), "error_t": t_stat, "paired_samples": overall.map_or(0, |o| o.paired),
        "failure_z": judge::failure_z(&inc_all, &cand_all),
        "latency_window": window, "latency_strikes": next.strikes,
        "per_class_t": per_class.iter().map(|(m, v)| (m.to_string(), json!(verdict_t(v)))).collect::<serde_json::Map<_, _>>(),
        "incumbent": side(c.incumbent, &inc_all, inc_err),
        "candidate": side(c.candidate, &cand_all, cand_err),
    });
    let rollback = if let Some(judge::ErrorVerdict::Worse { t }) = error {
        let m = metric.as_ref().map_or("", |m| m.0.as_str());
        Some(format!("{m} worse than the incumbent's by more than {:.0} % (t = {t:.1})", s.margin * 100.0))
    } else if let Some((m, t)) = class_worse {
        Some(format!("{m} worse than the incumbent's by more than {:.0} % (t = {t:.1})", s.margin * 100.0))
    } else if failing {
        Some(format!(
            "failure rate {:.3} against {:.3} (z = {:.1})",
            cand_all.failure_rate(),
            inc_all.failure_rate(),
            judge::failure_z(&inc_all, &cand_all)
        ))
    } else if next.strikes >= s.persist_windows {
        Some(format!(
            "median latency over {} ms against {} ms in {} windows running",
            fmt_ms(p50_ms(&cand_win)),
            fmt_ms(p50_ms(&inc_win)),
            next.strikes
        ))
    } else {
        None
    };
    if let Some(why) = rollback {
        next.status = CanaryStatus::RolledBack;
        return (next, Some(("rollback", format!("candidate {} rolled back: {why}", c.candidate), evidence)));
    }
    let evidence_ok = match error {
        Some(v) => matches!(v, judge::ErrorVerdict::NotWorse { .. }),
        None => enough_requests,
    };
    if !(evidence_ok && next.strikes == 0 && c.step_started.elapsed() >= Duration::from_secs_f64(s.dwell_secs)) {
        return (next, None);
    }
    next.step += 1;
    next.step_started = Instant::now();
    if next.step >= s.steps.len() {
        next.status = CanaryStatus::Promoted;
        (next, Some(("promote", format!("candidate {} promoted", c.candidate), evidence)))
    } else {
        let detail = format!("candidate {} to {:.0} %", c.candidate, s.steps[next.step] * 100.0);
        (next, Some(("advance", detail, evidence)))
    }
}

/// One metric's comparison of a canary's two versions, and what it rested on.
#[derive(Debug, Clone, Copy)]
struct Judged {
    verdict: judge::ErrorVerdict,
    incumbent: Option<judge::ErrorStats>,
    candidate: Option<judge::ErrorStats>,
    paired: usize,
}

/// Compares the versions on metric `m`: on paired samples when there are enough, else on the
/// two windows' summaries.
fn judge_metric(online: &OnlineEval, model: &str, c: &Canary, m: &str, hib: bool) -> Judged {
    let s = &c.settings;
    let (inc, cand) = (c.incumbent.to_string(), c.candidate.to_string());
    let pairs = online.paired_differences(model, &inc, &cand, m);
    let (incumbent, candidate) = (online.stats(model, &inc, m), online.stats(model, &cand, m));
    let verdict = match (incumbent, candidate) {
        (Some(i), Some(_)) if pairs.len() >= s.min_samples => {
            judge::compare_paired(&i, &pairs, hib, s.margin, s.min_samples, s.significance_z)
        }
        (Some(i), Some(k)) => judge::compare_error(&i, &k, hib, s.margin, s.min_samples, s.significance_z),
        _ => judge::ErrorVerdict::NotEnough,
    };
    Judged { verdict, incumbent, candidate, paired: pairs.len() }
}

/// The t statistic of a verdict that has one.
fn verdict_t(v: &judge::ErrorVerdict) -> Option<f64> {
    match v {
        judge::ErrorVerdict::Worse { t }
        | judge::ErrorVerdict::NotWorse { t }
        | judge::ErrorVerdict::Undecided { t } => Some(*t),
        judge::ErrorVerdict::NotEnough => None,
    }
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or("-".into(), |m| format!("{m:.2}"))
}

/// What a canary of `model` is judged on, in words (the API says it).
pub(crate) fn judged_on(model: &str, s: &CanarySettings) -> String {
    match s.judged_metric(model) {
        Some((m, hib)) => {
            let classes = s.metric.is_none() && !crate::lifecycle::online::class_metrics(model).is_empty();
            format!(
                "online {m} ({} is better){}, failure rate and median latency",
                if hib { "higher" } else { "lower" },
                if classes { ", and per class of road user (a significant regression rolls back)" } else { "" }
            )
        }
        None => "failure rate and median latency only (the live scene does not score this model)".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A running canary of version 2 against 1, with these settings and empty counters.
    pub(crate) fn canary(settings: CanarySettings) -> Canary {
        Canary {
            incumbent: 1,
            candidate: 2,
            settings,
            step: 0,
            step_started: Instant::now(),
            status: CanaryStatus::Running,
            incumbent_base: Baseline::default(),
            candidate_base: Baseline::default(),
            incumbent_window: Baseline::default(),
            candidate_window: Baseline::default(),
            strikes: 0,
        }
    }

    /// Serves `n` requests on `m` with latencies around `ms` (every `stall_every`-th one stalls
    /// 20 times longer, as on a busy machine) of which `failures` fail.
    fn serve(m: &VersionMetrics, n: u64, ms: f64, stall_every: u64, failures: u64) {
        for i in 0..n {
            let jitter = 0.8 + 0.4 * ((i * 7919) % 100) as f64 / 100.0;
            let stall = stall_every > 0 && i % stall_every == 0;
            m.request.observe(ms * 1e-3 * if stall { 20.0 } else { jitter });
            let counter = if i < failures { &m.failed } else { &m.ok };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs judgement rounds, each after serving a window of requests on both versions, until a
    /// decision other than an advance or `rounds` rounds; returns the decisions.
    fn run(
        model: &str,
        mut c: Canary,
        rounds: usize,
        online: &OnlineEval,
        window: impl Fn(usize, &VersionMetrics, &VersionMetrics),
    ) -> Vec<(&'static str, String, Value)> {
        let (inc, cand) = (VersionMetrics::default(), VersionMetrics::default());
        let mut decisions = Vec::new();
        for r in 0..rounds {
            window(r, &inc, &cand);
            let (next, d) = judge_step(model, &c, &inc, &cand, online);
            c = next;
            if let Some(d) = d {
                let stop = d.0 != "advance";
                decisions.push(d);
                if stop {
                    break;
                }
            }
        }
        decisions
    }

    fn no_dwell() -> CanarySettings {
        CanarySettings { dwell_secs: 0.0, min_requests: 30, steps: vec![0.5, 1.0], ..Default::default() }
    }

    #[test]
    fn a_model_without_an_online_metric_is_promoted_on_failures_and_latency_despite_stalls() {
        // A user's model ("mlp"): the scene does not score it. The candidate's windows catch
        // the machine's stalls (a mean several times the incumbent's); its median is the same.
        let online = OnlineEval::default();
        let d = run("mlp", canary(no_dwell()), 10, &online, |_, inc, cand| {
            serve(inc, 40, 0.6, 0, 0);
            serve(cand, 40, 0.6, 4, 0);
        });
        let actions: Vec<&str> = d.iter().map(|x| x.0).collect();
        assert_eq!(actions, ["advance", "promote"], "{d:?}");
        assert!(d[1].2["judged_on"].as_str().unwrap().contains("failure rate and median latency only"));
    }

    #[test]
    fn a_slower_candidate_is_rolled_back_only_when_the_slowdown_persists() {
        let online = OnlineEval::default();
        // One slow window, then normal ones: no rollback (and no advance while it counts).
        let d = run("mlp", canary(no_dwell()), 6, &online, |r, inc, cand| {
            serve(inc, 40, 0.6, 0, 0);
            serve(cand, 40, if r == 0 { 5.0 } else { 0.6 }, 0, 0);
        });
        assert!(d.iter().all(|x| x.0 != "rollback"), "{d:?}");
        // Three slow windows running: rolled back, with the medians as evidence.
        let d = run("mlp", canary(no_dwell()), 6, &online, |_, inc, cand| {
            serve(inc, 40, 0.6, 10, 0);
            serve(cand, 40, 5.0, 10, 0);
        });
        let last = d.last().expect("a decision");
        assert_eq!(last.0, "rollback", "{d:?}");
        assert!(last.1.contains("median latency"), "{}", last.1);
        assert_eq!(last.2["latency_strikes"], 3);
        assert_eq!(d.len(), 1, "no advance before the rollback: {d:?}");
    }

    #[test]
    fn a_failing_candidate_is_rolled_back_on_a_significant_difference() {
        let online = OnlineEval::default();
        // One failure in 40 is within chance: promoted.
        let d = run("mlp", canary(no_dwell()), 10, &online, |r, inc, cand| {
            serve(inc, 40, 0.6, 0, 0);
            serve(cand, 40, 0.6, 0, u64::from(r == 0));
        });
        assert_eq!(d.last().map(|x| x.0), Some("promote"), "{d:?}");
        // A fifth failing: rolled back.
        let d = run("mlp", canary(no_dwell()), 10, &online, |_, inc, cand| {
            serve(inc, 40, 0.6, 0, 0);
            serve(cand, 40, 0.6, 0, 8);
        });
        assert_eq!(d.last().map(|x| x.0), Some("rollback"), "{d:?}");
        assert!(d.last().unwrap().1.contains("failure rate"));
    }

    #[test]
    fn a_model_with_an_online_metric_waits_for_its_evidence() {
        // Requests alone do not advance a trajectory canary: it waits for online error.
        let online = OnlineEval::default();
        let d = run("trajectory", canary(no_dwell()), 5, &online, |_, inc, cand| {
            serve(inc, 40, 0.6, 0, 0);
            serve(cand, 40, 0.6, 0, 0);
        });
        assert!(d.is_empty(), "{d:?}");
        let c = canary(no_dwell());
        assert!(judged_on("trajectory", &c.settings).starts_with("online ade_m"));
        assert!(judged_on("detection", &c.settings).starts_with("online recall (higher is better)"));
    }

    #[test]
    fn a_canary_is_judged_on_injected_online_error() {
        let noisy = |mean: f64, k: usize| (0..k).map(move |i| mean + 0.3 * (((i * 37) % 11) as f64 / 5.0 - 1.0));
        let traffic = |_: usize, inc: &VersionMetrics, cand: &VersionMetrics| {
            serve(inc, 40, 0.6, 0, 0);
            serve(cand, 40, 0.6, 0, 0);
        };
        // The candidate's ADE is 50 % worse: rolled back on it.
        let online = OnlineEval::default();
        online.inject("trajectory", "1", "ade_m", noisy(1.0, 120));
        online.inject("trajectory", "2", "ade_m", noisy(1.5, 120));
        let d = run("trajectory", canary(no_dwell()), 5, &online, traffic);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].0, "rollback");
        assert!(d[0].1.contains("ade_m worse"), "{}", d[0].1);
        assert!(d[0].2["error_t"].as_f64().unwrap() > 3.0);
        // The same error: advanced and promoted.
        let online = OnlineEval::default();
        online.inject("trajectory", "1", "ade_m", noisy(1.0, 120));
        online.inject("trajectory", "2", "ade_m", noisy(1.0, 120));
        let d = run("trajectory", canary(no_dwell()), 5, &online, traffic);
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), ["advance", "promote"], "{d:?}");
        // The same error overall but 60 % worse for pedestrians: rolled back on that class.
        let online = OnlineEval::default();
        online.inject("trajectory", "1", "ade_m", noisy(1.0, 120));
        online.inject("trajectory", "2", "ade_m", noisy(1.0, 120));
        online.inject("trajectory", "1", "ade_pedestrian_m", noisy(1.0, 120));
        online.inject("trajectory", "2", "ade_pedestrian_m", noisy(1.6, 120));
        let d = run("trajectory", canary(no_dwell()), 5, &online, traffic);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].0 == "rollback" && d[0].1.contains("ade_pedestrian_m worse"), "{d:?}");
        assert!(d[0].2["per_class_t"]["ade_pedestrian_m"].as_f64().unwrap() > 3.0);
        // A class the candidate has no samples of yet holds nothing back.
        let online = OnlineEval::default();
        online.inject("trajectory", "1", "ade_m", noisy(1.0, 120));
        online.inject("trajectory", "2", "ade_m", noisy(1.0, 120));
        online.inject("trajectory", "1", "ade_cyclist_m", noisy(1.0, 120));
        let d = run("trajectory", canary(no_dwell()), 5, &online, traffic);
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), ["advance", "promote"], "{d:?}");
    }
}
