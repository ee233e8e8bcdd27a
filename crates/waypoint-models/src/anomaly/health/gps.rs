//! The GPS's evidence: fixes against the pose; jumps, spread and a stepwise slope (drift).

use std::collections::VecDeque;

use waypoint_sim::Frame;

use super::stats::{digest, median_mad, push_window};
use super::{Evidence, HealthMonitor};

/// Change (m) between the means of three GPS residuals and the three before them that marks
/// a step (a multipath jump, 3 m or more): the means' noise is 0.4 m a side.
pub(super) const GPS_STEP_M: f64 = 2.0;

/// Seconds of GPS residuals kept: a fit over the middle, and three fixes either side to find
/// steps at its edges.
pub(super) const GPS_TRACK_SECS: f64 = 4.65;

/// Least-squares slope (per second) of 2-D residuals that may step (a GPS multipath jump and
/// its end): steps are found where the mean of three samples differs from the mean of the three
/// before by more than [`GPS_STEP_M`] (the largest such difference nearby), and each stretch
/// between steps has its own intercept. The first and last three samples only serve to find
/// steps. Returns the slope per axis in standard errors (from the fit's own residuals), so
/// a window cut short by steps does not look steeper; `None` with fewer than ten samples in the
/// fit.
pub(super) fn stepwise_slope(samples: &VecDeque<(f64, [f64; 2])>) -> Option<[f64; 2]> {
    const K: usize = 3;
    let n = samples.len();
    if n < 10 + 2 * K {
        return None;
    }
    let mean = |range: std::ops::Range<usize>| {
        let m = range.len() as f64;
        range.fold([0.0, 0.0], |a, i| [a[0] + samples[i].1[0] / m, a[1] + samples[i].1[1] / m])
    };
    // Step size before sample k, for k in K..=n-K.
    let step: Vec<f64> = (0..=n)
        .map(|k| {
            if k < K || k + K > n {
                return 0.0;
            }
            let (a, b) = (mean(k - K..k), mean(k..k + K));
            (b[0] - a[0]).hypot(b[1] - a[1])
        })
        .collect();
    let is_step = |k: usize| step[k] > GPS_STEP_M && step[k] >= step[k - 1] && step[k] >= step[k + 1];
    let (mut sxx, mut sxy, mut syy) = (0.0, [0.0, 0.0], [0.0, 0.0]);
    let (mut start, mut stretches, mut count) = (K, 0, 0);
    for end in K + 1..=n - K {
        if end < n - K && !is_step(end) {
            continue;
        }
        let part = &samples.range(start..end).collect::<Vec<_>>();
        start = end;
        stretches += 1;
        count += part.len();
        let m = part.len() as f64;
        let mt = part.iter().map(|s| s.0).sum::<f64>() / m;
        let mx = part.iter().map(|s| s.1[0]).sum::<f64>() / m;
        let my = part.iter().map(|s| s.1[1]).sum::<f64>() / m;
        for s in part {
            let dt = s.0 - mt;
            sxx += dt * dt;
            sxy[0] += dt * (s.1[0] - mx);
            sxy[1] += dt * (s.1[1] - my);
            syy[0] += (s.1[0] - mx).powi(2);
            syy[1] += (s.1[1] - my).powi(2);
        }
    }
    let dof = count.checked_sub(stretches + 1).filter(|d| *d >= 5)? as f64;
    if sxx <= 0.0 {
        return None;
    }
    let t = |a: usize| {
        let slope = sxy[a] / sxx;
        let sigma = ((syy[a] - slope * sxy[a]) / dof).max(1e-12).sqrt();
        slope * sxx.sqrt() / sigma
    };
    Some([t(0), t(1)])
}

impl HealthMonitor {
    /// GPS: each fix against the pose; jumps between consecutive residuals (spikes), their
    /// spread over the last ten fixes (noise), and ramps of their one-second means (drift).
    /// A multipath jump is a step: one large jump, no spread, no ramp.
    pub(super) fn gps_evidence(&mut self, frame: &Frame) -> Evidence {
        let now = frame.t_secs;
        let ego = &frame.truth.ego;
        let mut lag = None;
        let mut jump: Option<f64> = None;
        for fix in &frame.gps {
            lag = Some(now - fix.t_secs);
            let r = [fix.x_m - ego.x_m, fix.y_m - ego.y_m];
            if let Some(p) = self.prev_gps_residual {
                let j = (r[0] - p[0]).hypot(r[1] - p[1]);
                jump = Some(jump.map_or(j, |x: f64| x.max(j)));
            }
            self.prev_gps_residual = Some(r);
            push_window(&mut self.gps_residuals, r, 10);
            self.gps_track.push_back((fix.t_secs, r));
            self.channels[4].heard(fix.t_secs, Some(digest([fix.x_m, fix.y_m])));
        }
        // Spread of the fix-to-fix changes (robust: a multipath step is one outlier).
        let spread = if frame.gps.is_empty() || self.gps_residuals.len() < 6 {
            None
        } else {
            let r: Vec<[f64; 2]> = self.gps_residuals.iter().copied().collect();
            let dx: Vec<f64> = r.windows(2).map(|w| w[1][0] - w[0][0]).collect();
            let dy: Vec<f64> = r.windows(2).map(|w| w[1][1] - w[0][1]).collect();
            median_mad(&dx).zip(median_mad(&dy)).map(|(a, b)| a.1.hypot(b.1))
        };
        // Drift: the residual's slope over the last seconds, fitted within the stretches
        // between jumps (a multipath step starts a new stretch and moves no slope).
        while self.gps_track.front().is_some_and(|s| s.0 < now - GPS_TRACK_SECS) {
            self.gps_track.pop_front();
        }
        let drift =
            if frame.gps.is_empty() { None } else { stepwise_slope(&self.gps_track).map(|[sx, sy]| sx.hypot(sy)) };
        (vec![lag, jump, spread, drift], vec![])
    }
}
