//! `waypoint train detection` and `waypoint eval detection`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use waypoint_models::detection::classifier::Classifier;
use waypoint_models::detection::eval_kitti::{self, KittiTally, CALIBRATED_OPERATING_POINT, REFERENCE_3D_AP};
use waypoint_models::detection::eval_sim::{self, SimReport};
use waypoint_models::detection::kitti_export::{export, exported_seed, ExportOptions};
use waypoint_models::detection::model::CLASSIFIER_FILE;
use waypoint_models::detection::segment::SegmentConfig;
use waypoint_models::detection::train::{train_version, TrainOptions, CALIBRATION_SEEDS};
use waypoint_models::detection::LidarDetector;
use waypoint_models::detection::{HDL64E_AZIMUTH_STEP_RAD, HDL64E_RING_SPACING_RAD};
use waypoint_models::model::latest_version;
use waypoint_models::plot::kitti_bev;
use waypoint_sim::Fleet;

use crate::lidar_preset::LidarPreset;

#[derive(Debug, Args)]
pub struct TrainDetectionArgs {
    #[arg(long, default_value = "models")]
    pub model_repository: PathBuf,
    #[arg(long, default_value = "detection")]
    pub model: String,
    /// Simulated scenes seen by the 64-beam HDL-64E (seeds 1000, 1001, ...) to draw training
    /// clusters from.
    #[arg(long, default_value_t = 12)]
    pub scenes: u64,
    /// Simulated scenes seen by the live scene's 32-beam lidar (seeds 2000, 2001, ...).
    #[arg(long, default_value_t = 9)]
    pub scenes_hdl32e: u64,
    /// Vehicles parked beside the road in each training scene.
    #[arg(long, default_value_t = 0)]
    pub parked: usize,
    /// Each training scene's sensor is tilted by a pitch and a roll drawn within ± these,
    /// degrees (MAX_PITCH,MAX_ROLL; the default 0,0 keeps it level). Training so (2,1.5; 1,0.75;
    /// 2,0) cut false positives on sweeps from a sensor pitched nose down, but cost pedestrian
    /// recall on level ones (docs/EVALUATION.md), so the served versions are trained level.
    #[arg(long, value_delimiter = ',', value_name = "MAX_PITCH,MAX_ROLL", default_value = "0,0")]
    pub max_tilt_deg: Vec<f64>,
    /// The vehicles' bodies in the training scenes: sedans only, or a street's mix of small
    /// cars, mid-size cars, SUVs and vans.
    #[arg(long, value_enum, default_value = "sedans")]
    pub fleet: FleetArg,
    /// Vehicles' windows let the beams into the cabin in the training scenes.
    #[arg(long)]
    pub vehicle_glass: bool,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Which vehicles a simulated scene's traffic is made of (`waypoint_sim::Fleet`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FleetArg {
    /// Mid-size cars only.
    Sedans,
    /// Small cars, mid-size cars, SUVs and vans (up to 5.6 m long and 2.5 m high).
    Mixed,
}

impl From<FleetArg> for Fleet {
    fn from(f: FleetArg) -> Self {
        match f {
            FleetArg::Sedans => Fleet::Sedans,
            FleetArg::Mixed => Fleet::Mixed,
        }
    }
}

#[derive(Debug, Args)]
pub struct EvalDetectionArgs {
    /// KITTI directory with velodyne/, label_2/, calib/.
    #[arg(long)]
    pub kitti: Option<PathBuf>,
    /// Evaluate on seeded simulated scenes instead (recall, MOTA, id switches).
    #[arg(long)]
    pub sim: bool,
    /// Scene seeds for --sim; 500-503 are the ones development looked at.
    #[arg(long, value_delimiter = ',', default_value = "500,501,502,503")]
    pub seeds: Vec<u64>,
    /// Length of each simulated scene for --sim, seconds (10 lidar sweeps a second).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub seconds: u32,
    /// Lidar of the simulated scenes for --sim: the 64-beam HDL-64E that KITTI uses, or the
    /// live scene's default 32-beam sensor.
    #[arg(long, value_enum, default_value = "hdl64e")]
    pub lidar: LidarPreset,
    /// Vehicles parked beside the north and south arms of each simulated scene, in rows square
    /// to the road or along it (a scene has 20 to 52 spaces; beyond that every space is taken).
    #[arg(long, default_value_t = 0)]
    pub parked: usize,
    /// The vehicles' bodies in each simulated scene: mid-size cars only, or a street's mix of
    /// small cars, mid-size cars, SUVs and vans.
    #[arg(long, value_enum, default_value = "sedans", requires = "sim")]
    pub fleet: FleetArg,
    /// Classifier weights (default: the highest version in models/detection).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Keep only detections whose class probability is at least this (an operating point:
    /// fewer false positives, lower recall).
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub min_score: f32,
    /// Where to write a bird's-eye-view PNG per KITTI frame.
    #[arg(long, default_value = "detection-bev")]
    pub png_dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportKittiArgs {
    /// The scene's seed.
    #[arg(long, default_value_t = 500)]
    pub seed: u64,
    /// How many frames to write.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub frames: u32,
    /// Sweeps between two frames written (10 sweeps a second).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub every: u32,
    /// The simulated lidar (`eval detection --kitti` assumes KITTI's HDL-64E: its ring spacing
    /// enters the vehicle height rule and the classifier).
    #[arg(long, value_enum, default_value = "hdl64e")]
    pub lidar: LidarPreset,
    /// Vehicles parked beside the north and south arms, as `eval detection --sim --parked`.
    #[arg(long, default_value_t = 0)]
    pub parked: usize,
    /// A road user in the camera's view is labelled when it shows at least this many lidar
    /// points, and marked DontCare (its image box) when it shows fewer.
    #[arg(long, default_value_t = 10)]
    pub min_points: usize,
    /// The sensor's tilt on its car, degrees: PITCH,ROLL (the forward axis raised, the left
    /// side raised). The points come in the tilted sensor's frame and the calibration written
    /// carries the tilt.
    #[arg(long, value_delimiter = ',', value_name = "PITCH,ROLL", allow_negative_numbers = true)]
    pub tilt_deg: Option<Vec<f64>>,
    /// The vehicles' bodies: sedans only, or a street's mix of small cars, mid-size cars, SUVs
    /// and vans.
    #[arg(long, value_enum, default_value = "sedans")]
    pub fleet: FleetArg,
    /// Vehicles' windows let the beams into the cabin (returns from the interior, some beams
    /// through) instead of the cabin being solid.
    #[arg(long)]
    pub vehicle_glass: bool,
    /// The directory to write (created; existing frames of the same numbers are replaced).
    #[arg(long)]
    pub out: PathBuf,
}

/// The largest tilt `export-kitti` accepts, degrees (a braking car pitches by a degree or two,
/// a steep street by five or so).
const MAX_TILT_DEG: f64 = 10.0;

/// `waypoint export-kitti`.
pub fn export_kitti(a: ExportKittiArgs) -> Result<()> {
    let mut lidar = a.lidar.config();
    if let Some(t) = &a.tilt_deg {
        if t.len() != 2 || t.iter().any(|v| !v.is_finite() || v.abs() > MAX_TILT_DEG) {
            anyhow::bail!(
                "--tilt-deg takes PITCH,ROLL, each within ±{MAX_TILT_DEG} degrees (a sensor on a car); got {t:?}"
            );
        }
        lidar.tilt_deg = [t[0], t[1]];
    }
    lidar.vehicle_glass = a.vehicle_glass;
    let options = ExportOptions {
        seed: a.seed,
        frames: a.frames,
        every: a.every,
        lidar,
        parked: a.parked,
        fleet: a.fleet.into(),
        min_points: a.min_points,
        out: a.out.clone(),
    };
    let n = export(&options)?;
    println!(
        "wrote {} frames to {}: {} vehicles, {} pedestrians, {} cyclists labelled",
        a.frames,
        a.out.display(),
        n[0],
        n[1],
        n[2]
    );
    Ok(())
}

fn parse_probability(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability in [0, 1]")),
    }
}

pub fn train(a: TrainDetectionArgs) -> Result<()> {
    let max_tilt_deg = match a.max_tilt_deg[..] {
        [p, r] if [p, r].iter().all(|v| v.is_finite() && (0.0..=MAX_TILT_DEG).contains(v)) => [p, r],
        _ => bail!(
            "--max-tilt-deg takes MAX_PITCH,MAX_ROLL, each within 0-{MAX_TILT_DEG} degrees; got {:?}",
            a.max_tilt_deg
        ),
    };
    let options = TrainOptions {
        scenes: a.scenes,
        scenes_hdl32e: a.scenes_hdl32e,
        parked: a.parked,
        max_tilt_deg,
        fleet: a.fleet.into(),
        vehicle_glass: a.vehicle_glass,
        seed: a.seed,
    };
    let t = train_version(&a.model_repository, &a.model, &options, &mut |note| eprintln!("{note}"))?;
    println!(
        "wrote {} — validation accuracy {:.3}, per class {:?}, confusion {:?}",
        t.dir.display(),
        t.report.val_accuracy,
        t.report.per_class,
        t.report.confusion
    );
    Ok(())
}

fn detector(weights: &Option<PathBuf>) -> Result<LidarDetector> {
    let path = match weights {
        Some(p) => p.clone(),
        None => {
            let dir = waypoint_server::config::default_model_repository().join("detection");
            let v = latest_version(&dir).context("no trained detection version; run `waypoint train detection`")?;
            dir.join(v.to_string()).join(CLASSIFIER_FILE)
        }
    };
    Ok(LidarDetector {
        segment: SegmentConfig::default(),
        classifier: Classifier::load(&path)?,
        merge_fragments: true,
        ring_spacing_rad: HDL64E_RING_SPACING_RAD,
        azimuth_step_rad: HDL64E_AZIMUTH_STEP_RAD,
    })
}

pub fn eval(a: EvalDetectionArgs) -> Result<()> {
    let det = detector(&a.weights)?;
    match (&a.kitti, a.sim) {
        (Some(dir), _) => eval_kitti(&det, dir, &a),
        (None, true) => {
            let lidar = a.lidar.config();
            let det = LidarDetector {
                ring_spacing_rad: lidar.ring_spacing_rad(),
                azimuth_step_rad: lidar.azimuth_step_rad(),
                ..det
            };
            let report = eval_sim::evaluate(&det, &lidar, &a.seeds, a.seconds, a.parked, a.fleet.into(), a.min_score)?;
            print_sim(&report, a.json)
        }
        _ => bail!("give --kitti DIR or --sim"),
    }
}

/// KITTI frames some of the detector's rules were fitted to during development.
const DEV_KITTI_FRAMES: [&str; 2] = ["000000", "000003"];

/// Why a simulated seed's figures are in-sample, if they are: seeds development looked at while
/// tuning the detector and tracker (500-503, 600-603, 700-703), the scenes its scores are
/// calibrated on, or the ranges training draws its scenes from.
fn seed_in_sample(seed: u64) -> Option<&'static str> {
    match seed {
        500..=503 | 600..=603 | 700..=703 => Some("looked at while tuning the detector and tracker"),
        s if CALIBRATION_SEEDS.iter().flatten().any(|c| *c == s) => Some("the classifier's calibration scenes"),
        1000..=1999 => Some("the classifier's HDL-64E training scenes"),
        2000..=2999 => Some("the classifier's 32-beam training scenes"),
        _ => None,
    }
}

/// The in-sample ones among `items` (frame ids or seeds) with the reason, as JSON, and as a
/// line for the report.
fn in_sample_note<T: std::fmt::Display>(items: &[T], why: impl Fn(&T) -> Option<&'static str>) -> (Value, String) {
    let seen: Vec<(String, &str)> = items.iter().filter_map(|i| why(i).map(|w| (i.to_string(), w))).collect();
    let json = Value::Array(seen.iter().map(|(i, w)| json!({"item": i, "why": w})).collect());
    let line = if seen.is_empty() {
        "held out: none of these was looked at while tuning (out-of-sample figures)".to_string()
    } else if seen.len() == items.len() && seen.iter().all(|(_, w)| *w == seen[0].1) {
        format!("in-sample: every one of these was {}", seen[0].1)
    } else {
        let list: Vec<String> = seen.iter().map(|(i, w)| format!("{i} ({w})")).collect();
        let partly = if seen.len() < items.len() { "partly " } else { "" };
        format!("{partly}in-sample: {}", list.join(", "))
    };
    (json, line)
}

fn eval_kitti(det: &LidarDetector, dir: &Path, a: &EvalDetectionArgs) -> Result<()> {
    let ids = eval_kitti::frame_ids(dir)?;
    let mut tally = KittiTally::default();
    for id in &ids {
        let f = eval_kitti::judge(det, dir, id, a.min_score)?;
        std::fs::create_dir_all(&a.png_dir)?;
        kitti_bev(&a.png_dir.join(format!("{id}.png")), &f)?;
        tally.add(&f);
    }
    let r = tally.finish();
    // Frames exported from a simulated scene are in-sample by their seed; KITTI's own by id.
    let (seen, seen_line) = match exported_seed(dir)? {
        Some(seed) => {
            let (seen, line) = in_sample_note(&ids, |_| seed_in_sample(seed));
            (seen, format!("simulated from seed {seed}; {line}"))
        }
        None => in_sample_note(&ids, |id| {
            DEV_KITTI_FRAMES.contains(&id.as_str()).then_some("fitted to while developing the detector's rules")
        }),
    };
    if a.json {
        let out = json!({"frames": r.frames, "per_class": r.per_class, "fp_per_frame": r.fp_per_frame,
                         "operating_point": r.operating_point,
                         "ms_per_frame": r.ms_per_frame, "min_score": a.min_score, "png_dir": a.png_dir,
                         "in_sample": seen});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} frames from {}; {seen_line}", ids.len(), dir.display());
    println!("{:<12} {:>4} {:>4} {:>4} {:>10} {:>8} {:>7}", "class", "TP", "FP", "FN", "precision", "recall", "AP BEV");
    for c in &r.per_class {
        let ap = c["ap_bev"].as_f64().map_or("-".to_string(), |v| format!("{:.1}", 100.0 * v));
        println!(
            "{:<12} {:>4} {:>4} {:>4} {:>10.2} {:>8.2} {ap:>7}",
            c["class"].as_str().unwrap_or(""),
            // A JSON value's Display ignores the width: print the numbers themselves.
            c["tp"].as_u64().unwrap_or(0),
            c["fp"].as_u64().unwrap_or(0),
            c["fn"].as_u64().unwrap_or(0),
            c["precision"].as_f64().unwrap_or(0.0),
            c["recall"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "false positives per frame (in the camera's view): {:.2}; {:.1} ms per frame",
        r.fp_per_frame, r.ms_per_frame
    );
    if a.min_score < CALIBRATED_OPERATING_POINT {
        let op = &r.operating_point;
        let recall: Vec<String> = op["per_class"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let labelled = c["tp"].as_u64().unwrap_or(0) + c["fn"].as_u64().unwrap_or(0);
                let r = c["recall"].as_f64().filter(|_| labelled > 0).map_or("-".to_string(), |v| format!("{v:.2}"));
                format!("{} {r}", c["class"].as_str().unwrap_or(""))
            })
            .collect();
        println!(
            "at the calibrated operating point (score >= {CALIBRATED_OPERATING_POINT}: more likely right than wrong): \
             recall {}; {:.2} false positives per frame",
            recall.join(", "),
            op["fp_per_frame"].as_f64().unwrap_or(0.0)
        );
    }
    println!("bird's-eye views: {}", a.png_dir.display());
    println!("AP BEV: bird's-eye-view average precision at IoU 0.5 / 0.3 / 0.3, 40 recall points, over these frames");
    let reference: Vec<String> = REFERENCE_3D_AP.iter().map(|(class, ap)| format!("{class} {ap:.1}")).collect();
    println!(
        "reference (KITTI val 3D AP at IoU 0.7 / 0.5 / 0.5, moderate, PointPillars): {} \
         — a stricter measure on 3,769 frames, not comparable",
        reference.join(", ")
    );
    Ok(())
}

fn print_sim(r: &SimReport, json: bool) -> Result<()> {
    let (seen, seen_line) = in_sample_note(&r.seeds, |s| seed_in_sample(*s));
    if json {
        let mut out = r.to_json();
        out["in_sample"] = seen;
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let (rc, rt) = (r.recall, r.recall_tracked);
    println!("simulated scenes (seeds {:?}): {} visible agent-frames; {seen_line}", r.seeds, r.visible_agent_frames);
    println!("recall  vehicles (40 m) {:.3}  pedestrians (25 m) {:.3}  cyclists (25 m) {:.3}", rc[0], rc[1], rc[2]);
    println!("vehicles (40 m) with a vehicle box of their own at bird's-eye IoU >= 0.5: {:.3}", r.vehicle_recall_iou);
    println!(
        "with the class of the detection's track (as streamed): recall {:.3} / {:.3} / {:.3}, precision {:.3}",
        rt[0], rt[1], rt[2], r.precision_tracked
    );
    println!(
        "precision within 40 m {:.3}; MOTA {:.3}; id switches {} ({:.2} per track-minute)",
        r.precision, r.mota, r.switches, r.switches_per_track_minute
    );
    println!(
        "false positives: {} on evaluated agents ({} duplicates of the right class, the rest a wrong class), {} on clutter",
        r.false_positives_on_agents, r.false_positives_duplicates, r.false_positives_clutter
    );
    println!(
        "false tracks (confirmed, updated, within 40 m, on no road user): {:.2} per sweep",
        r.false_tracks_per_sweep
    );
    println!(
        "score calibration (detections within 40 m, right or counted wrong): expected calibration error {:.3}",
        r.calibration_error
    );
    for b in &r.reliability {
        println!(
            "  score {:.1}+: {} detections, mean score {:.3}, right {:.3}",
            b.from, b.detections, b.mean_score, b.share_right
        );
    }
    println!("centre error of a found road user's detection, RMS per axis (found), under 10 m / 10-20 m / beyond:");
    for (k, name) in ["vehicles", "pedestrians", "cyclists"].iter().enumerate() {
        let band = |b: usize| format!("{:.3} m ({})", r.centre_rmse_m[k][b], r.centre_count[k][b]);
        println!("  {name:<12} {} / {} / {}", band(0), band(1), band(2));
    }
    println!("{:.1} ms per {}-beam sweep", r.ms_per_sweep, r.lidar_beams);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_which_frames_and_seeds_are_in_sample() {
        let ids = vec!["000000".to_string(), "000007".to_string()];
        let (json, line) = in_sample_note(&ids, |id| DEV_KITTI_FRAMES.contains(&id.as_str()).then_some("fitted"));
        assert_eq!(json, json!([{"item": "000000", "why": "fitted"}]));
        assert_eq!(line, "partly in-sample: 000000 (fitted)");
        let (_, line) = in_sample_note(&[9001u64, 42], |s| seed_in_sample(*s));
        assert!(line.starts_with("held out"), "{line}");
        let (_, line) = in_sample_note(&[500u64, 2001], |s| seed_in_sample(*s));
        assert!(
            line.starts_with("in-sample: 500 (looked at") && line.contains("2001 (the classifier's 32-beam"),
            "{line}"
        );
        let (_, line) = in_sample_note(&[500u64, 9001], |s| seed_in_sample(*s));
        assert!(line.starts_with("partly in-sample: 500 (looked at"), "{line}");
        let (_, line) = in_sample_note(&[3001u64, 3102], |s| seed_in_sample(*s));
        assert_eq!(line, "in-sample: every one of these was the classifier's calibration scenes");
        let (_, line) = in_sample_note(&[600u64, 601], |s| seed_in_sample(*s));
        assert!(line.starts_with("in-sample: every one"), "{line}");
    }
}
