//! The NAB score of the detector with some settings changed, for sensitivity checks:
//!
//! ```sh
//! cargo run --release -p waypoint-models --example nab_settings -- ../shared/data/anomaly/nab alarm_level=0.11 refractory=150
//! ```
use waypoint_models::anomaly::nab::{evaluate, read_corpus};
use waypoint_models::anomaly::{Detector, DetectorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: nab_settings NAB_DIR [setting=value ...]")?;
    let mut config = serde_json::to_value(DetectorConfig::default())?;
    for kv in args {
        let (k, v) = kv.split_once('=').ok_or("settings are name=value")?;
        if config.get(k).is_none() {
            return Err(format!("no setting {k}; the settings are {config}").into());
        }
        config[k] = serde_json::from_str(v)?;
    }
    let config: DetectorConfig = serde_json::from_value(config)?;
    let corpus = read_corpus(std::path::Path::new(&dir))?;
    let scores: Vec<Vec<f64>> = corpus
        .iter()
        .map(|s| {
            let mut d = Detector::new(config);
            s.values.iter().map(|v| d.update(*v)).collect()
        })
        .collect();
    for r in evaluate(&corpus, &scores) {
        println!(
            "{:<20} {:>6.1}  threshold {:.4}: TP {} FP {} FN {}",
            r.profile.name, r.normalized, r.threshold, r.tp, r.fp, r.fn_
        );
    }
    Ok(())
}
