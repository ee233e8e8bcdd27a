//! Evaluation of the fusion filters on logs with ground truth: RMSE of [px, py, vx, vy] and
//! NIS consistency per sensor.

use super::{Ekf, Estimate, Measurement, Ukf, CHI2_95_DF2, CHI2_95_DF3};

/// Results of one filter on one log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilterReport {
    pub rmse: [f64; 4],
    /// Share of lidar / radar NIS values above the 95 % chi-square bound (ideal: 0.05).
    pub nis_above_95_lidar: f64,
    pub nis_above_95_radar: f64,
    pub mean_nis_lidar: f64,
    pub mean_nis_radar: f64,
    pub estimates: Vec<Estimate>,
}

/// Root mean square error of estimates against truth rows `[px, py, vx, vy]`.
pub fn rmse(estimates: &[Estimate], truth: &[[f64; 4]]) -> [f64; 4] {
    let n = estimates.len().min(truth.len()).max(1) as f64;
    let mut acc = [0.0; 4];
    for (e, g) in estimates.iter().zip(truth) {
        let d = [e.px_m - g[0], e.py_m - g[1], e.vx_mps - g[2], e.vy_mps - g[3]];
        for k in 0..4 {
            acc[k] += d[k] * d[k];
        }
    }
    acc.map(|a| (a / n).sqrt())
}

fn report(measurements: &[(Measurement, [f64; 4])], mut step: impl FnMut(&Measurement) -> Estimate) -> FilterReport {
    let estimates: Vec<Estimate> = measurements.iter().map(|(m, _)| step(m)).collect();
    let truth: Vec<[f64; 4]> = measurements.iter().map(|(_, g)| *g).collect();
    let mut lidar = Vec::new();
    let mut radar = Vec::new();
    for ((m, _), e) in measurements.iter().zip(&estimates) {
        if let Some(nis) = e.nis.filter(|v| v.is_finite()) {
            match m {
                Measurement::Lidar { .. } => lidar.push(nis),
                Measurement::Radar { .. } => radar.push(nis),
            }
        }
    }
    let share = |v: &[f64], bound: f64| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().filter(|x| **x > bound).count() as f64 / v.len() as f64
        }
    };
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    FilterReport {
        rmse: rmse(&estimates, &truth),
        nis_above_95_lidar: share(&lidar, CHI2_95_DF2),
        nis_above_95_radar: share(&radar, CHI2_95_DF3),
        mean_nis_lidar: mean(&lidar),
        mean_nis_radar: mean(&radar),
        estimates,
    }
}

/// Runs a UKF over a log.
pub fn run_ukf(measurements: &[(Measurement, [f64; 4])], config: super::ukf::UkfConfig) -> FilterReport {
    let mut f = Ukf::new(config);
    report(measurements, |m| f.process(m))
}

/// Runs the IMM over a log.
pub fn run_imm(measurements: &[(Measurement, [f64; 4])], config: super::imm::ImmConfig) -> FilterReport {
    let mut f = super::Imm::new(config);
    report(measurements, |m| f.process(m))
}

/// Runs an EKF over a log.
pub fn run_ekf(measurements: &[(Measurement, [f64; 4])], config: super::ekf::EkfConfig) -> FilterReport {
    let mut f = Ekf::new(config);
    report(measurements, |m| f.process(m))
}

/// Mean RMSE `[px, py, vx, vy]` of the UKF, the EKF and the IMM on simulated logs of one kind
/// of motion, over the given seeds.
pub fn synthetic_rmse(
    kind: super::synthetic::MotionKind,
    seeds: &[u64],
    ukf: super::ukf::UkfConfig,
    ekf: super::ekf::EkfConfig,
    imm: &super::imm::ImmConfig,
) -> [[f64; 4]; 3] {
    let mut acc = [[0.0; 4]; 3];
    for &seed in seeds {
        let log = super::synthetic::log(kind, seed);
        let rows = [run_ukf(&log, ukf).rmse, run_ekf(&log, ekf).rmse, run_imm(&log, imm.clone()).rmse];
        for (a, r) in acc.iter_mut().zip(rows) {
            for k in 0..4 {
                a[k] += r[k] / seeds.len().max(1) as f64;
            }
        }
    }
    acc
}

/// Chooses the UKF's process noise by NIS consistency: on a grid of (acceleration, yaw
/// acceleration) noise, the pair whose mean NIS per sensor is closest to its degrees of
/// freedom (2 for lidar, 3 for radar) — a consistent filter's expectation. Ground truth is not
/// used.
pub fn calibrate_ukf(measurements: &[(Measurement, [f64; 4])], base: super::ukf::UkfConfig) -> super::ukf::UkfConfig {
    let mut best = (f64::INFINITY, base);
    for a in [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0] {
        for yy in [0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5] {
            let cfg = super::ukf::UkfConfig { std_accel_mps2: a, std_yaw_accel_rps2: yy, ..base };
            let r = run_ukf(measurements, cfg);
            let score = (r.mean_nis_lidar / 2.0).ln().powi(2) + (r.mean_nis_radar / 3.0).ln().powi(2);
            if score < best.0 {
                best = (score, cfg);
            }
        }
    }
    best.1
}
/// The reference RMSE [px, py, vx, vy] printed beside the filters' (from
/// ../shared/data/README.md): each with its key in `--json` and its label in the table.
pub const REFERENCES: [(&str, &str, [f64; 4]); 4] = [
    ("ukf_rubric", "UKF rubric (must be at or below)", [0.09, 0.10, 0.40, 0.30]),
    ("ukf_good_published", "UKF, good published", [0.069, 0.083, 0.334, 0.238]),
    ("ekf_rubric", "EKF rubric", [0.11, 0.11, 0.52, 0.52]),
    ("ekf_typical_reproduced", "EKF, typical (reproduced)", [0.097, 0.086, 0.451, 0.440]),
];
