//! `waypoint eval trajectory-road`: the map-aware road-user model against constant velocity,
//! the Kalman filter and constant turn rate on simulated scenes, per class; its constants are
//! chosen on one set of seeds and reported on another.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use waypoint_models::trajectory::eval::Acc;
use waypoint_models::trajectory::kalman::KalmanCv;
use waypoint_models::trajectory::road::{
    ade_fde, fit_params, point_prediction, predict, sim_windows, RoadClass, RoadParams, RoadWindow,
};
use waypoint_models::trajectory::{ConstantVelocity, OBS_STEPS, PRED_STEPS, STEP_SECS};

#[derive(Debug, Args)]
pub struct EvalRoadArgs {
    /// Seeds the constants are chosen on (`A-B`, inclusive); reported as in-sample.
    #[arg(long, default_value = "1-12")]
    pub fit_seeds: String,
    /// Seeds the figures are reported on (never looked at while choosing the constants or
    /// building the model; 101-112 were, while it was built).
    #[arg(long, default_value = "201-212")]
    pub seeds: String,
    /// Scene seconds simulated per seed.
    #[arg(long, default_value_t = 300.0)]
    pub secs: f64,
    /// Choose the constants on the fitting seeds instead of using the shipped ones (which were
    /// chosen that way on the default fitting seeds).
    #[arg(long)]
    pub fit: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn seed_range(s: &str) -> Result<std::ops::RangeInclusive<u64>> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    if a > b {
        bail!("seed range {s:?} is empty");
    }
    Ok(a..=b)
}

/// Constant turn rate and velocity from the last four positions (two-step differences).
pub fn ctrv(h: &[[f32; 2]; OBS_STEPS]) -> [[f32; 2]; PRED_STEPS] {
    let d = |a: [f32; 2], b: [f32; 2]| (f64::from(b[0] - a[0]), f64::from(b[1] - a[1]));
    let (x2, y2) = d(h[OBS_STEPS - 3], h[OBS_STEPS - 1]);
    let (x1, y1) = d(h[OBS_STEPS - 5], h[OBS_STEPS - 3]);
    let v = x2.hypot(y2) / (2.0 * STEP_SECS);
    let mut th = y2.atan2(x2);
    let turning = x1.hypot(y1) > 0.2 && x2.hypot(y2) > 0.2;
    let w = if turning {
        let dth =
            (th - y1.atan2(x1) + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI;
        dth / (2.0 * STEP_SECS)
    } else {
        0.0
    };
    let (mut x, mut y) = (f64::from(h[OBS_STEPS - 1][0]), f64::from(h[OBS_STEPS - 1][1]));
    std::array::from_fn(|_| {
        for _ in 0..4 {
            let dt = STEP_SECS / 4.0;
            th += w * dt;
            x += v * th.cos() * dt;
            y += v * th.sin() * dt;
        }
        [x as f32, y as f32]
    })
}

/// ADE/FDE per method on `windows` of `class`.
fn score(windows: &[RoadWindow], class: RoadClass, p: &RoadParams) -> serde_json::Value {
    let kalman = KalmanCv::default();
    let mut s = [Acc::default(); 6];
    for w in windows.iter().filter(|w| w.class == class) {
        s[0].add(ade_fde(&ConstantVelocity::predict(&w.obs), &w.fut));
        s[1].add(ade_fde(&kalman.predict(&w.obs), &w.fut));
        s[2].add(ade_fde(&ctrv(&w.obs), &w.fut));
        let futures = predict(&w.obs, w.class, &w.others, Some(w.t_secs), p);
        s[3].add(ade_fde(&futures[0].positions, &w.fut));
        s[5].add(ade_fde(&futures[point_prediction(&futures)].positions, &w.fut));
        let best = futures.iter().map(|f| ade_fde(&f.positions, &w.fut)).min_by(|a, b| a.0.total_cmp(&b.0));
        s[4].add(best.unwrap_or((f64::NAN, f64::NAN)));
    }
    json!({
        "windows": s[0].count(),
        "constant_velocity": s[0].get(),
        "kalman": s[1].get(),
        "ctrv": s[2].get(),
        "road_most_likely": s[3].get(),
        "road": s[5].get(),
        "road_min_of_3": s[4].get(),
    })
}

fn windows_of(seeds: std::ops::RangeInclusive<u64>, secs: f64) -> Vec<RoadWindow> {
    seeds.flat_map(|seed| sim_windows(seed, secs)).collect()
}

pub fn eval(a: EvalRoadArgs) -> Result<()> {
    let (fit_seeds, seeds) = (seed_range(&a.fit_seeds)?, seed_range(&a.seeds)?);
    if fit_seeds.start() <= seeds.end() && seeds.start() <= fit_seeds.end() {
        bail!("the fitting seeds {:?} and the reported seeds {:?} overlap", a.fit_seeds, a.seeds);
    }
    let fit_windows = windows_of(fit_seeds, a.secs);
    let p = if a.fit { fit_params(&fit_windows) } else { RoadParams::default() };
    let test = windows_of(seeds, a.secs);
    let report = |w: &[RoadWindow]| {
        json!({
            "vehicle": score(w, RoadClass::Vehicle, &p),
            "cyclist": score(w, RoadClass::Cyclist, &p),
        })
    };
    let out = json!({
        "params": format!("{p:?}"),
        "fitted_here": a.fit,
        "fit_seeds": a.fit_seeds,
        "seeds": a.seeds,
        "secs_per_seed": a.secs,
        "in_sample": report(&fit_windows),
        "held_out": report(&test),
    });
    if a.json {
        println!("{out}");
        return Ok(());
    }
    println!("road-user prediction, 4.8 s ahead, on simulated scenes (true positions, 0.4 s steps)");
    println!("constants: {p:?}");
    println!(
        "chosen on seeds {} ({}); reported on seeds {} (not looked at while choosing)",
        a.fit_seeds,
        if a.fit { "fitted in this run" } else { "the shipped constants, fitted on the default seeds" },
        a.seeds
    );
    for (label, key) in [("held-out seeds", "held_out"), ("fitting seeds (in-sample)", "in_sample")] {
        println!("\n{label}: ADE / FDE (m)");
        for class in ["vehicle", "cyclist"] {
            let r = &out[key][class];
            let f = |m: &str| {
                format!("{:.3} / {:.3}", r[m][0].as_f64().unwrap_or(f64::NAN), r[m][1].as_f64().unwrap_or(f64::NAN))
            };
            println!(
                "  {class:8} {:5} windows  CV {}  Kalman {}  CTRV {}  road {}  (most likely {})  road best of 3 {}",
                r["windows"],
                f("constant_velocity"),
                f("kalman"),
                f("ctrv"),
                f("road"),
                f("road_most_likely"),
                f("road_min_of_3")
            );
        }
    }
    Ok(())
}
