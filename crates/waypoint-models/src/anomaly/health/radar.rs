//! The radar's evidence: range change against the measured range rate between scans, and
//! range chains whose growing offset from the integrated rate is a drift.

use std::collections::VecDeque;

use waypoint_sim::Frame;

use super::stats::{digest, median_mad, push_window};
use super::{Evidence, HealthMonitor};

/// A radar target followed from scan to scan: its range should change by the integral of its
/// measured range rate. A range bias growing over time (drift) makes the difference grow; noise
/// and the target's own motion do not.
#[derive(Debug, Clone)]
pub(super) struct RangeChain {
    pub(super) azimuth: f64,
    pub(super) range: f64,
    pub(super) rate: f64,
    pub(super) last_t: f64,
    /// Range predicted from the first range and the integrated range rate.
    pub(super) integrated: f64,
    /// (time, range − integrated) over the last [`CHAIN_SECS`].
    pub(super) samples: VecDeque<(f64, f64)>,
}

/// How much of a chain is kept, and how long it must span to give a slope.
pub(super) const CHAIN_SECS: f64 = 2.0;
pub(super) const CHAIN_MIN_SPAN_SECS: f64 = 1.0;
/// Ticks the chains' median slope must keep its sign to count as drift.
pub(super) const DRIFT_PERSISTENCE: usize = 10;

impl RangeChain {
    /// Least-squares slope of range − integrated range rate, m/s, once the chain spans long
    /// enough.
    pub(super) fn slope(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if self.samples.len() < 8 || last.0 - first.0 < CHAIN_MIN_SPAN_SECS {
            return None;
        }
        let n = self.samples.len() as f64;
        let (mt, mv) = self.samples.iter().fold((0.0, 0.0), |a, s| (a.0 + s.0 / n, a.1 + s.1 / n));
        let (sxy, sxx) =
            self.samples.iter().fold((0.0, 0.0), |a, s| (a.0 + (s.0 - mt) * (s.1 - mv), a.1 + (s.0 - mt) * (s.0 - mt)));
        (sxx > 0.0).then(|| sxy / sxx)
    }
}

/// Continues each chain with the nearest target of a new scan (same direction, range where its
/// rate said), or starts a chain.
pub(super) fn extend_chains(chains: &mut Vec<RangeChain>, t: f64, targets: &[waypoint_sim::frame::RadarTarget]) {
    chains.retain(|c| t - c.last_t < 0.3);
    let old = chains.len();
    let mut taken = vec![false; old];
    for target in targets {
        let best = (0..old)
            .filter(|&i| !taken[i])
            .filter_map(|i| {
                let c = &chains[i];
                let daz = (target.azimuth_rad - c.azimuth).abs();
                let dr = (target.range_m - (c.range + c.rate * (t - c.last_t))).abs();
                (daz < 0.03 && dr < 1.5).then_some((i, daz / 0.03 + dr / 1.5))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, _)) => {
                taken[i] = true;
                let c = &mut chains[i];
                c.integrated += 0.5 * (c.rate + target.range_rate_mps) * (t - c.last_t);
                c.azimuth = target.azimuth_rad;
                c.range = target.range_m;
                c.rate = target.range_rate_mps;
                c.last_t = t;
                c.samples.push_back((t, target.range_m - c.integrated));
                while c.samples.front().is_some_and(|s| t - s.0 > CHAIN_SECS) {
                    c.samples.pop_front();
                }
            }
            None => chains.push(RangeChain {
                azimuth: target.azimuth_rad,
                range: target.range_m,
                rate: target.range_rate_mps,
                last_t: t,
                integrated: target.range_m,
                samples: VecDeque::from([(t, 0.0)]),
            }),
        }
    }
}

impl HealthMonitor {
    /// Radar: each target against the previous scan's target in the same direction: the
    /// change of range over the scan interval should match the measured range rate. Over the
    /// last two seconds: the spread of that rate residual (noise) and the share of residuals far
    /// beyond any vehicle's speed (range spikes).
    pub(super) fn radar_evidence(&mut self, frame: &Frame) -> Evidence {
        let now = frame.t_secs;
        let mut lag = None;
        let mut residuals = Vec::new();
        for scan in &frame.radar {
            lag = Some(now - scan.t_secs);
            if let Some((t_prev, prev)) = self.recent_radar.back() {
                let dt = scan.t_secs - t_prev;
                if dt > 1e-3 && dt < 0.5 {
                    for t in &scan.targets {
                        // The previous target in the same direction (within 0.03 rad) whose
                        // range best fits this one's range rate: two road users at one
                        // bearing are not taken for one that jumped.
                        let best = prev
                            .iter()
                            .map(|&(r_prev, az_prev)| ((az_prev - t.azimuth_rad).abs(), r_prev))
                            .filter(|(daz, _)| *daz < 0.03)
                            .map(|(daz, r_prev)| {
                                let jump = (t.range_m - r_prev - t.range_rate_mps * dt).abs();
                                (daz / 0.03 + jump / 5.0, r_prev)
                            })
                            .min_by(|a, b| a.0.total_cmp(&b.0));
                        if let Some((_, r_prev)) = best {
                            residuals.push(((t.range_m - r_prev) / dt - t.range_rate_mps).clamp(-1000.0, 1000.0));
                        }
                    }
                }
            }
            extend_chains(&mut self.range_chains, scan.t_secs, &scan.targets);
            push_window(
                &mut self.recent_radar,
                (scan.t_secs, scan.targets.iter().map(|t| (t.range_m, t.azimuth_rad)).collect()),
                3,
            );
            let d = digest(scan.targets.iter().flat_map(|t| [t.range_m, t.azimuth_rad, t.range_rate_mps]));
            self.channels[1].heard(scan.t_secs, (!scan.targets.is_empty()).then_some(d));
        }
        push_window(&mut self.radar_window, residuals, 20);
        let all: Vec<f64> = self.radar_window.iter().flatten().copied().collect();
        let measured = !frame.radar.is_empty() && all.len() >= 20;
        let spread = median_mad(&all).filter(|_| measured).map(|m| m.1);
        let jumps = measured.then(|| all.iter().filter(|e| e.abs() > 100.0).count() as f64 / all.len() as f64);
        // Drift: the chains' median slope, the same way for the last few ticks (its
        // smallest size then); 0 when there is no chain or the sign changes.
        let slopes: Vec<f64> = self.range_chains.iter().filter_map(RangeChain::slope).collect();
        let median_slope = median_mad(&slopes).map_or(0.0, |m| m.0);
        push_window(&mut self.range_drift_recent, median_slope, DRIFT_PERSISTENCE);
        let r = &self.range_drift_recent;
        let same_way = r.iter().all(|s| *s > 0.0) || r.iter().all(|s| *s < 0.0);
        let drift = (!frame.radar.is_empty()).then(|| {
            if r.len() == DRIFT_PERSISTENCE && same_way {
                r.iter().map(|s| s.abs()).fold(f64::INFINITY, f64::min)
            } else {
                0.0
            }
        });
        (vec![lag, spread, jumps, drift], vec![])
    }
}
