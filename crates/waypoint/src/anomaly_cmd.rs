//! `waypoint eval anomaly --nab DIR`: the detector online over every NAB series, scored with
//! NAB v1.1 beside the published scoreboard; optionally results in NAB's own layout.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use waypoint_models::anomaly::nab::{detect_all, evaluate, read_corpus, write_results, SCOREBOARD};
use waypoint_models::anomaly::nab_folds::{leave_one_category_out, settings_grid};
use waypoint_models::anomaly::DetectorConfig;

#[derive(Debug, Args)]
pub struct EvalAnomalyArgs {
    /// NAB directory (with `data/` and `combined_windows.json`).
    #[arg(long, required_unless_present = "sim")]
    pub nab: Option<PathBuf>,
    /// Score the live sensor-health monitor on seeded simulated scenes with injected faults.
    #[arg(long, conflicts_with = "nab")]
    pub sim: bool,
    /// Seeds of the simulated scenes (with `--sim`).
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 2, 3])]
    pub seeds: Vec<u64>,
    /// Alarm threshold on the [0, 1] health score (with `--sim`).
    #[arg(long, default_value_t = waypoint_models::anomaly::health::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Write `OUT/waypoint/<category>/waypoint_<file>.csv` (timestamp,value,anomaly_score,label).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Leave-one-category-out (with `--nab`): for each category, the settings and thresholds
    /// chosen on the others, then applied to it; the held-out detections scored as one corpus.
    #[arg(long, requires = "nab")]
    pub leave_one_category_out: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(a: EvalAnomalyArgs) -> Result<()> {
    let Some(nab) = &a.nab else { return eval_sim(&a) };
    let corpus = read_corpus(nab).with_context(|| format!("reading {}", nab.display()))?;
    if a.leave_one_category_out {
        return eval_folds(&corpus, a.json);
    }
    let started = std::time::Instant::now();
    let samples: usize = corpus.iter().map(|s| s.values.len()).sum();
    let scores = detect_all(&corpus, &DetectorConfig::default());
    let secs = started.elapsed().as_secs_f64();
    if let Some(out) = &a.results {
        write_results(out, &corpus, &scores)?;
    }
    let results = evaluate(&corpus, &scores);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "series": corpus.len(),
                "windows": corpus.iter().map(|s| s.windows.len()).sum::<usize>(),
                "samples": samples,
                "samples_per_sec": samples as f64 / secs,
                "profiles": results,
                "published": SCOREBOARD.iter().map(|(n, v)| json!({"detector": n, "standard": v[0], "low_fp": v[1], "low_fn": v[2]})).collect::<Vec<_>>(),
            }))?
        );
        return Ok(());
    }
    println!(
        "{} series, {} windows, {samples} samples ({:.1} M samples/s)",
        corpus.len(),
        corpus.iter().map(|s| s.windows.len()).sum::<usize>(),
        samples as f64 / secs / 1e6
    );
    println!("{:<22} {:>10} {:>10} {:>10}", "detector", "standard", "low FP", "low FN");
    println!(
        "{:<22} {:>10.1} {:>10.1} {:>10.1}",
        "Waypoint (this run)", results[0].normalized, results[1].normalized, results[2].normalized
    );
    for (n, v) in SCOREBOARD {
        println!("{n:<22} {:>10.1} {:>10.1} {:>10.1}", v[0], v[1], v[2]);
    }
    for r in &results {
        println!("{:<20} threshold {:.4}: TP {} FP {} FN {}", r.profile.name, r.threshold, r.tp, r.fp, r.fn_);
    }
    Ok(())
}

/// `--leave-one-category-out`.
fn eval_folds(corpus: &[waypoint_models::anomaly::nab::Series], json: bool) -> Result<()> {
    let grid = settings_grid();
    let r = leave_one_category_out(corpus, &grid, |c| {
        if !json {
            eprintln!("{c}: choosing among {} settings on the other categories", grid.len());
        }
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>6} {:>7} {:>6} {:>7} {:>7} {:>7} {:>8} {:>10} {:>9} {:>4} {:>4} {:>4}",
        "held-out category",
        "series",
        "windows",
        "alarm",
        "refract",
        "short",
        "shapes",
        "discount",
        "train std",
        "threshold",
        "TP",
        "FP",
        "FN"
    );
    for f in &r.folds {
        println!(
            "{:<24} {:>6} {:>7} {:>6.2} {:>7} {:>7} {:>7} {:>8.1} {:>10.1} {:>9.4} {:>4} {:>4} {:>4}",
            f.category,
            f.series,
            f.windows,
            f.chosen.alarm_level,
            f.chosen.refractory,
            f.chosen.short_window,
            f.chosen.shape_memory,
            f.chosen.level_discount,
            f.chosen_train_standard,
            f.thresholds[0],
            f.tp[0],
            f.fp[0],
            f.fn_[0]
        );
    }
    println!("{:<44} {:>10} {:>10} {:>10}", "", "standard", "low FP", "low FN");
    let row = |label: &str, v: [f64; 3]| println!("{label:<44} {:>10.1} {:>10.1} {:>10.1}", v[0], v[1], v[2]);
    row("out of fold (each category held out)", r.out_of_fold);
    row("in-sample (defaults, thresholds on all)", r.in_sample);
    Ok(())
}

/// `--sim`: every fault kind on every sensor of seeded scenes, against the fault ground truth.
fn eval_sim(a: &EvalAnomalyArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let e = waypoint_models::anomaly::sim_eval::evaluate(&a.seeds, a.threshold);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(());
    }
    println!(
        "seeds {:?}, threshold {}, {:.0} s of clean driving: {} false alarms ({:.2} per 10 min); {:.1} s",
        e.seeds,
        e.threshold,
        e.clean_secs,
        e.false_alarms,
        e.false_alarms_per_10min,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<12} {:>7} {:>9} {:>7} {:>10} {:>10}",
        "fault", "faults", "detected", "recall", "precision", "delay (s)"
    );
    for (kind, r) in &e.by_kind {
        println!(
            "{kind:<12} {:>7} {:>9} {:>7.2} {:>10.2} {:>10}",
            r.faults,
            r.detected,
            r.recall,
            r.precision,
            r.mean_delay_secs.map_or("-".into(), |d| format!("{d:.2}"))
        );
    }
    for (sensor, (d, n)) in &e.by_sensor {
        println!("{sensor:<12} detected {d}/{n}");
    }
    println!("missed: {:?}", e.missed);
    println!("false alarms by cause: {:?}", e.false_alarm_causes);
    Ok(())
}
