//! How a canary is judged: tests that hold on a noisy, shared machine.
//!
//! One window's mean latency over a few dozen requests says more about what else the machine
//! was doing than about the model. So, after the anchors of automated canary analysis (Kayenta's
//! statistical comparison of the two versions' metrics, Flagger's checks that must fail several
//! intervals running before a rollback):
//!
//! - **Latency**: the medians of the two versions in one judgement window (a window closes when
//!   both have served `min_requests` requests since it opened) are compared; a window is a strike
//!   when the candidate's median exceeds `max_latency_ratio` × the incumbent's and by at least a
//!   millisecond. Only `persist_windows` strikes in a row roll back; a window without one clears
//!   the count.
//! - **Failures**: counted since the canary started; a rollback needs the candidate's failure
//!   rate to exceed the incumbent's by `max_failure_rate_increase` *and* a one-sided
//!   two-proportion z-test at `significance_z` (3.0: about 1 in 740 by chance).
//! - **Online error** (models the live scene scores): on paired samples when there are
//!   `min_samples` of them (in a canary both versions score the same road users, sweeps and
//!   tracks, the one not serving as a shadow), else on each version's own samples (Welch). The
//!   candidate is worse when the difference exceeds the relative `margin` *and* its t statistic
//!   exceeds `significance_z`; it may advance only once shown within the margin (a one-sided
//!   95 % non-inferiority bound); in between, the canary waits for more samples.

use serde::Serialize;

use crate::metrics::HistogramSnapshot;

/// Requests one version served in a span of time.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub requests: u64,
    pub failures: u64,
    pub latency: HistogramSnapshot,
}

impl Traffic {
    pub fn failure_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }
}

/// Summary of one version's online-error samples of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorStats {
    /// The metric's value (the root of the mean for a root-mean-square metric).
    pub value: f64,
    /// Mean and variance of the samples (squares, for a root-mean-square metric).
    pub mean: f64,
    pub var: f64,
    pub n: usize,
}

/// The comparison of the two versions' online errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ErrorVerdict {
    /// Fewer than `min_samples` samples of either version.
    NotEnough,
    /// Worse beyond the margin, significantly.
    Worse { t: f64 },
    /// Shown not worse than the margin allows (non-inferior at one-sided 95 %).
    NotWorse { t: f64 },
    /// Neither yet: more samples are needed.
    Undecided { t: f64 },
}

/// One-sided 95 % normal quantile: the confidence a candidate must be shown within the margin
/// with before it advances.
pub const NON_INFERIORITY_Z: f64 = 1.645;

/// The verdict on a difference `d` in the candidate's disfavour (in the metric's sample
/// units), its standard error, and the margin in the same units.
fn verdict(d: f64, se: f64, margin: f64, z: f64) -> ErrorVerdict {
    let t = if se > 0.0 {
        d / se
    } else if d > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    if d > margin && t > z {
        ErrorVerdict::Worse { t }
    } else if d + NON_INFERIORITY_Z * se < margin {
        ErrorVerdict::NotWorse { t }
    } else {
        ErrorVerdict::Undecided { t }
    }
}

/// One-sided two-proportion z statistic of the candidate failing more often than the incumbent.
pub fn failure_z(inc: &Traffic, cand: &Traffic) -> f64 {
    let (n1, n2) = (inc.requests as f64, cand.requests as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return 0.0;
    }
    let pooled = (inc.failures + cand.failures) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return 0.0;
    }
    (cand.failure_rate() - inc.failure_rate()) / se
}

/// Whether the candidate fails significantly more often (since the canary started).
pub fn failures_regressed(inc: &Traffic, cand: &Traffic, max_increase: f64, z: f64) -> bool {
    cand.failure_rate() > inc.failure_rate() + max_increase && failure_z(inc, cand) > z
}

/// Whether one closed window's medians are a latency strike against the candidate.
pub fn latency_strike(inc: &HistogramSnapshot, cand: &HistogramSnapshot, max_ratio: f64) -> bool {
    match (inc.quantile(0.5), cand.quantile(0.5)) {
        (Some(i), Some(c)) => c > i * max_ratio && c > i + 1e-3,
        _ => false,
    }
}

/// Compares the online errors from each version's own samples (Welch; `higher_is_better` for a
/// metric such as recall). The margin is relative to the incumbent's mean sample.
pub fn compare_error(
    inc: &ErrorStats,
    cand: &ErrorStats,
    higher_is_better: bool,
    margin: f64,
    min_samples: usize,
    z: f64,
) -> ErrorVerdict {
    if inc.n < min_samples || cand.n < min_samples {
        return ErrorVerdict::NotEnough;
    }
    let se = (inc.var / inc.n as f64 + cand.var / cand.n as f64).sqrt();
    let d = if higher_is_better { inc.mean - cand.mean } else { cand.mean - inc.mean };
    verdict(d, se, margin * inc.mean.abs(), z)
}

/// Compares the online errors on paired samples — the same road user, sweep or track measured
/// by both versions — whose differences (`candidate − incumbent`) vary far less than the
/// samples themselves: a regression shows in fewer samples.
pub fn compare_paired(
    inc: &ErrorStats,
    differences: &[f64],
    higher_is_better: bool,
    margin: f64,
    min_samples: usize,
    z: f64,
) -> ErrorVerdict {
    let n = differences.len();
    if n < min_samples.max(2) {
        return ErrorVerdict::NotEnough;
    }
    let mean = differences.iter().sum::<f64>() / n as f64;
    let var = differences.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let d = if higher_is_better { -mean } else { mean };
    verdict(d, (var / n as f64).sqrt(), margin * inc.mean.abs(), z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::DURATION_BUCKETS;

    /// `n` requests whose latencies follow a noisy law around `median_ms` (a deterministic
    /// spread: a tenth of them are stalls 20 times slower, as on a busy machine).
    fn latencies(median_ms: f64, n: u64, stall_every: u64) -> HistogramSnapshot {
        let mut h = HistogramSnapshot::empty(DURATION_BUCKETS);
        for i in 0..n {
            let jitter = 0.8 + 0.4 * ((i * 7919) % 100) as f64 / 100.0;
            let ms = if stall_every > 0 && i % stall_every == 0 { median_ms * 20.0 } else { median_ms * jitter };
            h.add(ms * 1e-3, 1);
        }
        h
    }

    fn traffic(requests: u64, failures: u64) -> Traffic {
        Traffic { requests, failures, latency: HistogramSnapshot::empty(DURATION_BUCKETS) }
    }

    #[test]
    fn stalls_that_double_a_mean_are_not_a_latency_strike() {
        // The candidate's window happened to catch the machine's stalls: its mean is several
        // times the incumbent's (the old test rolled back on that), its median is not.
        // Here a fifth of its requests stall at 12 ms: a mean of about 2.9 ms against 0.6 ms.
        let inc = latencies(0.6, 50, 0);
        let cand = latencies(0.6, 50, 5);
        assert!(!latency_strike(&inc, &cand, 2.0));
    }

    #[test]
    fn a_slower_median_is_a_strike() {
        let inc = latencies(0.6, 50, 10);
        let cand = latencies(3.0, 50, 10);
        assert!(latency_strike(&inc, &cand, 2.0));
        // Twice as slow but by less than a millisecond: not a strike.
        assert!(!latency_strike(&latencies(0.1, 50, 0), &latencies(0.3, 50, 0), 2.0));
    }

    #[test]
    fn failures_must_be_more_and_significantly_so() {
        // One failure in 30 against none: above the 2 % allowance, but well within chance.
        assert!(!failures_regressed(&traffic(30, 0), &traffic(30, 1), 0.02, 3.0));
        // A quarter failing against none, over 80 requests each: a regression.
        assert!(failures_regressed(&traffic(80, 0), &traffic(80, 20), 0.02, 3.0));
        // The incumbent failing as often: no regression.
        assert!(!failures_regressed(&traffic(80, 18), &traffic(80, 20), 0.02, 3.0));
    }

    #[test]
    fn an_error_difference_counts_beyond_the_margin_and_beyond_chance() {
        let stats = |mean: f64, sd: f64, n: usize| ErrorStats { value: mean, mean, var: sd * sd, n };
        let verdict = |i, c| compare_error(&i, &c, false, 0.05, 50, 3.0);
        assert_eq!(verdict(stats(1.0, 0.5, 40), stats(2.0, 0.5, 40)), ErrorVerdict::NotEnough);
        assert!(matches!(verdict(stats(1.0, 0.5, 200), stats(1.3, 0.5, 200)), ErrorVerdict::Worse { .. }));
        // 8 % worse on noisy samples: neither shown worse nor shown within the margin.
        assert!(matches!(verdict(stats(1.0, 2.0, 60), stats(1.08, 2.0, 60)), ErrorVerdict::Undecided { .. }));
        assert!(matches!(verdict(stats(1.0, 0.2, 400), stats(1.0, 0.2, 400)), ErrorVerdict::NotWorse { .. }));
        // Significant but within the margin.
        assert!(matches!(verdict(stats(1.0, 0.1, 5000), stats(1.03, 0.1, 5000)), ErrorVerdict::NotWorse { .. }));
        // Recall: lower is worse.
        let recall = compare_error(&stats(0.95, 0.2, 500), &stats(0.7, 0.45, 500), true, 0.05, 50, 3.0);
        assert!(matches!(recall, ErrorVerdict::Worse { .. }), "{recall:?}");
    }

    #[test]
    fn pairs_show_a_regression_that_unpaired_samples_hide() {
        // Errors that vary a lot between road users (sd 1 m), the candidate 0.2 m worse on each.
        let base: Vec<f64> = (0..200).map(|i| 2.0 + (((i * 7919) % 200) as f64 / 100.0 - 1.0) * 1.7).collect();
        let mean = base.iter().sum::<f64>() / 200.0;
        let var = base.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 199.0;
        let inc = ErrorStats { value: mean, mean, var, n: 200 };
        let cand = ErrorStats { value: mean + 0.2, mean: mean + 0.2, var, n: 200 };
        assert!(matches!(compare_error(&inc, &cand, false, 0.05, 50, 3.0), ErrorVerdict::Undecided { .. }));
        let diffs: Vec<f64> = (0..200).map(|i| 0.2 + 0.05 * ((i % 5) as f64 - 2.0)).collect();
        assert!(matches!(compare_paired(&inc, &diffs, false, 0.05, 50, 3.0), ErrorVerdict::Worse { .. }));
        let same: Vec<f64> = (0..200).map(|i| 0.05 * ((i % 5) as f64 - 2.0)).collect();
        assert!(matches!(compare_paired(&inc, &same, false, 0.05, 50, 3.0), ErrorVerdict::NotWorse { .. }));
    }
}
