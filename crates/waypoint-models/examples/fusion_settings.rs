//! The scan that chose the IMM's default settings (`ImmConfig::default`): on simulated logs of
//! every kind of motion, seeds 1–10 (or the seeds given as `A-B`), each candidate's RMSE per
//! component relative to the better of the UKF and the EKF, averaged over components and kinds.
//!
//! With `cv-init`, the scan that chose the constant-velocity modes' initial velocity variance
//! (the default IMM otherwise unchanged).
//!
//! ```sh
//! cargo run --release -p waypoint-models --example fusion_settings [-- 1-10] [cv-init]
//! ```
use waypoint_models::fusion::ekf::EkfConfig;
use waypoint_models::fusion::eval::synthetic_rmse;
use waypoint_models::fusion::imm::{ImmConfig, ModeConfig, SETTINGS_SEEDS};
use waypoint_models::fusion::synthetic::MotionKind;
use waypoint_models::fusion::ukf::UkfConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (lo, hi) = args
        .iter()
        .find_map(|a| {
            let (a, b) = a.split_once('-')?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        })
        .unwrap_or((*SETTINGS_SEEDS.start(), *SETTINGS_SEEDS.end()));
    let seeds: Vec<u64> = (lo..=hi).collect();
    let base = UkfConfig::default();
    let ctrv = |a: f64, y: f64| ModeConfig::Ctrv(UkfConfig { std_accel_mps2: a, std_yaw_accel_rps2: y, ..base });
    let cv = |var: f64| ModeConfig::ConstantVelocity(EkfConfig { accel_var: var, ..EkfConfig::default() });
    let mut candidates: Vec<(String, ImmConfig)> = Vec::new();
    if args.iter().any(|a| a == "cv-init") {
        for v in [1.0, 4.0, 9.0, 16.0, 25.0, 49.0, 100.0] {
            let mut c = ImmConfig::default();
            for m in &mut c.modes {
                if let ModeConfig::ConstantVelocity(e) = m {
                    e.init_vel_var = v;
                }
            }
            candidates.push((format!("default, CV initial velocity variance {v}"), c));
        }
        return print_scan(lo, hi, &seeds, base, &candidates);
    }
    candidates.push(("two CTRV (0.5/0.2, 3/1.5), 5 %".into(), ImmConfig::two_ctrv()));
    for p in [0.002, 0.005, 0.01, 0.02, 0.05, 0.1] {
        for var in [9.0, 16.0, 25.0] {
            for (name, modes) in [
                ("CTRV 1/0.6", vec![ctrv(1.0, 0.6), cv(var)]),
                ("CTRV 0.5/0.2 + 3/1.5", vec![ctrv(0.5, 0.2), ctrv(3.0, 1.5), cv(var)]),
            ] {
                if var == 25.0 && p > 0.005 {
                    continue;
                }
                candidates.push((
                    format!("{name} + CV {var}, {} %", p * 100.0),
                    ImmConfig { modes, switch_prob: p, initial: vec![] },
                ));
            }
        }
    }
    // A steady constant-velocity mode beside the manoeuvring one (four modes).
    for p in [0.002, 0.005, 0.01, 0.02] {
        for steady in [0.25, 0.5, 1.0, 2.0, 4.0] {
            for var in [16.0, 25.0] {
                candidates.push((
                    format!("CTRV 0.5/0.2 + 3/1.5 + CV {steady} + CV {var}, {} %", p * 100.0),
                    ImmConfig {
                        modes: vec![ctrv(0.5, 0.2), ctrv(3.0, 1.5), cv(steady), cv(var)],
                        switch_prob: p,
                        initial: vec![],
                    },
                ));
            }
        }
    }
    print_scan(lo, hi, &seeds, base, &candidates);
}

fn print_scan(lo: u64, hi: u64, seeds: &[u64], base: UkfConfig, candidates: &[(String, ImmConfig)]) {
    println!("seeds {lo}-{hi}; RMSE relative to the better of UKF and EKF per component, mean over components");
    let kinds = MotionKind::ALL;
    print!("{:<44}", "IMM");
    for k in kinds {
        print!(" {:>12}", k.name());
    }
    println!(" {:>8}", "mean");
    for (name, c) in candidates {
        print!("{name:<44}");
        let mut total = 0.0;
        for kind in kinds {
            let [u, e, i] = synthetic_rmse(kind, seeds, base, EkfConfig::default(), c);
            let r = (0..4).map(|k| i[k] / u[k].min(e[k])).sum::<f64>() / 4.0;
            total += r / kinds.len() as f64;
            print!(" {r:>12.3}");
        }
        println!(" {total:>8.4}");
    }
}
