//! Where the default detector's NAB score is won and lost, at the in-sample standard threshold:
//! per series the rows, windows, true and false positives, misses and raw score; with a
//! series name (any part of it), that series' alarms with the evidence behind each. With
//! `--every`, the baseline that knows nothing: an alarm every R rows, for each R given.
//!
//! ```sh
//! cargo run --release -p waypoint-models --example nab_files -- ../shared/data/anomaly/nab --every 200,300,400,600,800
//! cargo run --release -p waypoint-models --example nab_files -- ../shared/data/anomaly/nab
//! cargo run --release -p waypoint-models --example nab_files -- ../shared/data/anomaly/nab machine_temperature
//! ```
use waypoint_models::anomaly::nab::{detect_all, evaluate, probation, read_corpus, score_file, PROFILES};
use waypoint_models::anomaly::{Detector, DetectorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: nab_files NAB_DIR [SERIES | --every R,R,...]")?;
    let only = args.next();
    let corpus = read_corpus(std::path::Path::new(&dir))?;
    if only.as_deref() == Some("--every") {
        let periods = args.next().ok_or("--every takes periods, e.g. 200,400")?;
        for r in periods.split(',') {
            let r: usize = r.trim().parse()?;
            let periodic: Vec<Vec<f64>> = corpus
                .iter()
                .map(|s| (0..s.values.len()).map(|i| f64::from(u8::from(r > 0 && i > 0 && i % r == 0))).collect())
                .collect();
            let e = evaluate(&corpus, &periodic);
            println!(
                "an alarm every {r} rows: standard {:.1}, low FP {:.1}, low FN {:.1} (TP {} FP {} FN {} at the standard threshold)",
                e[0].normalized, e[1].normalized, e[2].normalized, e[0].tp, e[0].fp, e[0].fn_
            );
        }
        return Ok(());
    }
    let scores = detect_all(&corpus, &DetectorConfig::default());
    let standard = &evaluate(&corpus, &scores)[0];
    println!("standard threshold {:.4}, normalised {:.1} (in-sample)", standard.threshold, standard.normalized);
    if let Some(name) = only {
        let s = corpus.iter().find(|s| s.key.contains(&name)).ok_or("no such series")?;
        println!(
            "{}: {} rows, probation {}, windows {:?}",
            s.key,
            s.values.len(),
            probation(s.values.len()),
            s.windows
        );
        println!("{:>6} {:<20} {:>10} {:>6} {:>7} {:>7}", "row", "time", "value", "score", "z level", "z shape");
        let mut d = Detector::new(DetectorConfig::default());
        for (i, v) in s.values.iter().enumerate() {
            let score = d.update(*v);
            if score >= standard.threshold {
                let inside = s.windows.iter().any(|(a, b)| (*a..=*b).contains(&i));
                println!(
                    "{i:>6} {:<20} {v:>10.3} {score:>6.3} {:>7.2} {:>7.2} {}",
                    s.timestamps[i],
                    d.last_z[0],
                    d.last_z[1],
                    if i < probation(s.values.len()) {
                        "probation"
                    } else if inside {
                        "window"
                    } else {
                        ""
                    }
                );
            }
        }
        return Ok(());
    }
    println!("{:<60} {:>6} {:>4} {:>3} {:>3} {:>3} {:>7}", "series", "rows", "win", "TP", "FP", "FN", "raw");
    for (s, sc) in corpus.iter().zip(&scores) {
        let detected: Vec<bool> = sc.iter().map(|v| *v >= standard.threshold).collect();
        let f = score_file(s.values.len(), &s.windows, &detected, &PROFILES[0]);
        println!(
            "{:<60} {:>6} {:>4} {:>3} {:>3} {:>3} {:>7.2}",
            s.key,
            s.values.len(),
            s.windows.len(),
            f.tp,
            f.fp,
            f.fn_,
            f.score
        );
    }
    Ok(())
}
