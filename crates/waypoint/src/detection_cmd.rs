//! `waypoint train detection` and `waypoint eval detection`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use waypoint_models::detection::boxfit::bev_iou;
use waypoint_models::detection::classifier::{self, Classifier, CLASSES};
use waypoint_models::detection::kitti::{self, Counts};
use waypoint_models::detection::model::CLASSIFIER_FILE;
use waypoint_models::detection::segment::SegmentConfig;
use waypoint_models::detection::tracker::{hungarian, Observation, Tracker, TrackerConfig};
use waypoint_models::detection::{simdata, Detection, LidarDetector};
use waypoint_models::detection::{HDL64E_AZIMUTH_STEP_RAD, HDL64E_RING_SPACING_RAD};
use waypoint_sim::frame::AgentTruth;
use waypoint_sim::geometry::Vec2;
use waypoint_sim::sensors::LidarConfig;
use waypoint_sim::{Scene, SceneConfig};

use crate::plot::{Canvas, COLORS, FG, GRID};

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
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
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
    pub lidar: crate::cli::LidarPreset,
    /// Vehicles parked beside the north and south arms of each simulated scene, in rows square
    /// to the road or along it (a scene has 20 to 52 spaces; beyond that every space is taken).
    #[arg(long, default_value_t = 0)]
    pub parked: usize,
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

pub const DETECTION_CONFIG: &str = r#"# Lidar object detection: ground removal, clustering, box fitting, trained classifier.
platform = "waypoint"
backend = "lidar_detection"
max_batch_size = 0
instances = 1
queue_capacity = 64
timeout_ms = 5000

[[inputs]]
name = "points"
datatype = "FP32"
dims = [-1, 4]      # x, y, z (m, sensor frame: x forward, y left, z up), intensity

[[inputs]]
name = "ring_spacing_deg"
datatype = "FP32"
dims = [1]          # optional: vertical angle between the lidar's adjacent beams, default 0.43 (HDL-64E)
optional = true

[[inputs]]
name = "azimuth_step_deg"
datatype = "FP32"
dims = [1]          # optional: horizontal angle between the lidar's successive firings, default 0.18 (HDL-64E)
optional = true

[[outputs]]
name = "boxes"
datatype = "FP32"
dims = [-1, 7]      # x, y, z bottom, length, width, height (m), yaw (rad)

[[outputs]]
name = "classes"
datatype = "INT32"
dims = [-1]         # 0 vehicle, 1 pedestrian, 2 cyclist

[[outputs]]
name = "scores"
datatype = "FP32"
dims = [-1]
"#;

fn parse_probability(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability in [0, 1]")),
    }
}

/// The detector's output at an operating point: detections scored at least `min_score`.
fn detect_at(det: &LidarDetector, points: &[[f32; 4]], min_score: f32) -> Vec<Detection> {
    let mut dets = det.detect(points, false);
    dets.retain(|d| d.score >= min_score);
    dets
}

fn latest(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok()).max()
}

pub fn train(a: TrainDetectionArgs) -> Result<()> {
    let started = Instant::now();
    let seg = SegmentConfig::default();
    let mut samples = simdata::generate(1000, a.scenes, 300, 5, &seg, &LidarConfig::hdl64e(), a.parked);
    samples.extend(simdata::generate(2000, a.scenes_hdl32e, 300, 5, &seg, &LidarConfig::default(), a.parked));
    eprintln!(
        "{} clusters from {} + {} simulated scenes (64 + 32 beams, {:.0} s)",
        samples.len(),
        a.scenes,
        a.scenes_hdl32e,
        started.elapsed().as_secs_f64()
    );
    let dir = a.model_repository.join(&a.model);
    let version = latest(&dir).unwrap_or(0) + 1;
    let vdir = dir.join(version.to_string());
    std::fs::create_dir_all(&vdir)?;
    let weights = vdir.join(CLASSIFIER_FILE);
    let report = classifier::train(&samples, a.seed, 600, &weights)?;
    // Calibration: Platt scaling of the detections' scores, fitted on scenes of its own (seeds
    // 3000-3003 on the HDL-64E, 3100-3103 on the 32-beam lidar): whether each detection is
    // right, as `eval detection --sim` judges it, against its score.
    let mut judged = Vec::new();
    for (seeds, lidar) in
        [([3000, 3001, 3002, 3003], LidarConfig::hdl64e()), ([3100, 3101, 3102, 3103], LidarConfig::default())]
    {
        let det = LidarDetector {
            segment: seg,
            classifier: Classifier::load(&weights)?,
            merge_fragments: true,
            ring_spacing_rad: lidar.ring_spacing_rad(),
            azimuth_step_rad: lidar.azimuth_step_rad(),
        };
        judged.extend(eval_sim(&det, &lidar, &seeds, CALIBRATION_SECONDS, 0, 0.0, Report::Quiet)?);
    }
    let platt = classifier::fit_platt(&judged).context("calibration scenes gave no right and wrong detections")?;
    classifier::save_platt(&weights, platt)?;
    let calibrated = Classifier::load(&weights)?;
    let ece_of =
        |f: &dyn Fn(f32) -> f32| calibration_error(&judged.iter().map(|(s, r)| (f(*s), *r)).collect::<Vec<_>>());
    let (ece_raw, ece_cal) = (ece_of(&|s| s), ece_of(&|s| calibrated.calibrated(s)));
    eprintln!("calibration on {} detections: expected calibration error {ece_raw:.3} -> {ece_cal:.3}", judged.len());
    std::fs::write(
        vdir.join("train.json"),
        serde_json::to_string_pretty(&json!({
            "scenes": a.scenes, "scenes_hdl32e": a.scenes_hdl32e, "report": report,
            "calibration": {"detections": judged.len(), "platt": platt, "ece_before": ece_raw, "ece_after": ece_cal},
        }))?,
    )?;
    std::fs::write(
        vdir.join("version.toml"),
        format!(
            "description = \"classifier trained on {} simulated clusters, validation accuracy {:.3}; \
             scores calibrated on {} detections, expected calibration error {:.3} -> {:.3}\"\n",
            report.samples,
            report.val_accuracy,
            judged.len(),
            ece_raw,
            ece_cal
        ),
    )?;
    if !dir.join("config.toml").exists() {
        std::fs::write(dir.join("config.toml"), DETECTION_CONFIG)?;
    }
    println!(
        "wrote {} — validation accuracy {:.3}, per class {:?}, confusion {:?}",
        vdir.display(),
        report.val_accuracy,
        report.per_class,
        report.confusion
    );
    Ok(())
}

fn detector(weights: &Option<PathBuf>) -> Result<LidarDetector> {
    let path = match weights {
        Some(p) => p.clone(),
        None => {
            let dir = waypoint_server::config::default_model_repository().join("detection");
            let v = latest(&dir).context("no trained detection version; run `waypoint train detection`")?;
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
            let report = if a.json { Report::Json } else { Report::Text };
            eval_sim(&det, &lidar, &a.seeds, a.seconds, a.parked, a.min_score, report).map(|_| ())
        }
        _ => bail!("give --kitti DIR or --sim"),
    }
}

/// A bird's-eye view of a KITTI frame: the points, the camera's field of view (dotted), the
/// labels, and each detection with its class, score and verdict (TP, FP; nothing for one
/// not counted).
fn bev_png(
    path: &Path,
    points: &[[f32; 4]],
    labels: &[kitti::Label],
    dets: &[Detection],
    verdicts: &[kitti::Verdict],
    calib: &kitti::Calib,
) -> Result<()> {
    // 0..60 m ahead, ±30 m to the side, 10 px per metre; x forward is up.
    let (w, h, s) = (600usize, 600usize, 10.0);
    let mut c = Canvas::new(w, h);
    let to_px = |x: f64, y: f64| ((w as f64 / 2.0) - y * s, h as f64 - x * s);
    for m in (0..=60).step_by(10) {
        let (_, py) = to_px(f64::from(m), 0.0);
        c.line(0.0, py, w as f64, py, GRID);
        c.text(4, py as i64 - 10, &format!("{m} M"), FG, 1);
    }
    // The edges of the camera's view, found by walking out along each bearing on the ground.
    for r in (20..600).step_by(4) {
        let r = f64::from(r) / 10.0;
        let inside = |deg: i32| {
            let a = f64::from(deg).to_radians() / 4.0;
            calib.in_fov(nalgebra::Vector3::new(r * a.cos(), r * a.sin(), -1.7)).is_some()
        };
        for deg in -360..360 {
            if inside(deg) != inside(deg + 1) {
                let a = f64::from(deg).to_radians() / 4.0;
                let (px, py) = to_px(r * a.cos(), r * a.sin());
                c.set(px as i64, py as i64, FG);
            }
        }
    }
    for p in points {
        let (px, py) = to_px(f64::from(p[0]), f64::from(p[1]));
        let g = (60.0 + 160.0 * f64::from(p[3]).clamp(0.0, 1.0)) as u8;
        c.set(px as i64, py as i64, [g, g, g]);
    }
    let draw = |c: &mut Canvas, b: &waypoint_models::detection::boxfit::FittedBox, col: [u8; 3]| {
        let (sn, cs) = b.yaw_rad.sin_cos();
        let corners: Vec<(f64, f64)> = [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)]
            .iter()
            .map(|(du, dv)| {
                let (u, v) = (du * b.length_m / 2.0, dv * b.width_m / 2.0);
                to_px(b.x_m + cs * u - sn * v, b.y_m + sn * u + cs * v)
            })
            .collect();
        for i in 0..4 {
            let (p, q) = (corners[i], corners[(i + 1) % 4]);
            c.line(p.0, p.1, q.0, q.1, col);
        }
    };
    for l in labels {
        if let Some(b) = &l.bbox {
            draw(&mut c, b, COLORS[3]);
        }
    }
    for (d, v) in dets.iter().zip(verdicts) {
        draw(&mut c, &d.bbox, COLORS[d.class.min(2)]);
        let (px, py) = to_px(d.bbox.x_m, d.bbox.y_m);
        let verdict = match v {
            kitti::Verdict::Right => " TP",
            kitti::Verdict::Wrong => " FP",
            _ => "",
        };
        c.text(
            px as i64 + 6,
            py as i64,
            &format!("{} {:.2}{verdict}", CLASSES[d.class].to_uppercase(), d.score),
            COLORS[d.class.min(2)],
            1,
        );
    }
    c.text(8, 8, "GREEN: LABELS  BLUE: VEHICLE  YELLOW: PEDESTRIAN  RED: CYCLIST", FG, 1);
    c.text(8, 22, "DOTS: CAMERA VIEW  TP/FP: COUNTED RIGHT/WRONG", FG, 1);
    c.save(path)
}

fn eval_kitti(det: &LidarDetector, dir: &Path, a: &EvalDetectionArgs) -> Result<()> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("velodyne"))
        .with_context(|| format!("{}/velodyne", dir.display()))?
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? == "bin" {
                Some(p.file_stem()?.to_string_lossy().to_string())
            } else {
                None
            }
        })
        .collect();
    ids.sort();
    let mut total = Counts::default();
    let mut scored: [Vec<(f32, bool)>; 3] = Default::default();
    let mut frames = Vec::new();
    let mut ms = Vec::new();
    for id in &ids {
        let points = waypoint_sim::replay::read_velodyne(&dir.join("velodyne").join(format!("{id}.bin")))?;
        let (calib, labels) = kitti::read_frame(dir, id)?;
        let t = Instant::now();
        let dets = detect_at(det, &points, a.min_score);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        let (c, verdicts) = kitti::judge_frame(&dets, &labels, &calib);
        for (d, v) in dets.iter().zip(&verdicts) {
            if matches!(v, kitti::Verdict::Right | kitti::Verdict::Wrong) {
                scored[d.class].push((d.score, *v == kitti::Verdict::Right));
            }
        }
        for k in 0..3 {
            total.tp[k] += c.tp[k];
            total.fp[k] += c.fp[k];
            total.fn_[k] += c.fn_[k];
        }
        std::fs::create_dir_all(&a.png_dir)?;
        bev_png(&a.png_dir.join(format!("{id}.png")), &points, &labels, &dets, &verdicts, &calib)?;
        let in_view: Vec<_> = dets
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| **v != kitti::Verdict::OutOfView)
            .map(|(d, v)| json!({"class": CLASSES[d.class], "verdict": v, "score": d.score, "points": d.points, "x_m": d.bbox.x_m, "y_m": d.bbox.y_m, "z_m": d.bbox.z_m, "length_m": d.bbox.length_m, "width_m": d.bbox.width_m, "height_m": d.bbox.height_m, "yaw_rad": d.bbox.yaw_rad}))
            .collect();
        frames.push(
            json!({"frame": id, "points": points.len(), "counts": c, "detections_in_view": in_view, "ms": ms.last()}),
        );
    }
    let n = ids.len().max(1) as f64;
    let per_class: Vec<_> = (0..3)
        .map(|k| {
            let p = total.tp[k] as f64 / (total.tp[k] + total.fp[k]).max(1) as f64;
            let r = total.tp[k] as f64 / (total.tp[k] + total.fn_[k]).max(1) as f64;
            let ap = kitti::average_precision(&scored[k], total.tp[k] + total.fn_[k]);
            json!({"class": CLASSES[k], "tp": total.tp[k], "fp": total.fp[k], "fn": total.fn_[k], "precision": p, "recall": r, "ap_bev": ap})
        })
        .collect();
    let fp_per_frame = total.fp.iter().sum::<usize>() as f64 / n;
    let mean_ms = ms.iter().sum::<f64>() / n;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"frames": frames, "per_class": per_class, "fp_per_frame": fp_per_frame, "ms_per_frame": mean_ms, "min_score": a.min_score, "png_dir": a.png_dir})
            )?
        );
        return Ok(());
    }
    println!("{} frames from {}", ids.len(), dir.display());
    println!("{:<12} {:>4} {:>4} {:>4} {:>10} {:>8} {:>7}", "class", "TP", "FP", "FN", "precision", "recall", "AP BEV");
    for c in &per_class {
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
    println!("false positives per frame (in the camera's view): {fp_per_frame:.2}; {mean_ms:.1} ms per frame");
    println!("bird's-eye views: {}", a.png_dir.display());
    println!("AP BEV: bird's-eye-view average precision at IoU 0.5 / 0.3 / 0.3, 40 recall points, over these frames");
    println!(
        "reference (KITTI val 3D AP at IoU 0.7 / 0.5 / 0.5, moderate, PointPillars): Car 77.3, Pedestrian 52.3, \
         Cyclist 62.7 — a stricter measure on 3,769 frames, not comparable"
    );
    Ok(())
}

/// False positives among one sweep's detections within 40 m of the sensor.
struct FalsePositives {
    /// On an evaluated agent: a duplicate (`duplicates` of them of the agent's class) or a
    /// wrong class.
    near: usize,
    duplicates: usize,
    /// On no agent.
    clutter: usize,
    /// Which detections were counted.
    counted: Vec<bool>,
}

/// Counts the detections not matched to an agent (`matched`), by what they lie on, with the
/// given class for each detection. One on an agent out of the evaluated range or barely visible
/// is not counted.
fn false_positives(
    dets: &[Detection],
    world: &[Vec2],
    classes: &[usize],
    matched: &[bool],
    agents: &[AgentTruth],
    evaluated: &[bool],
) -> FalsePositives {
    let mut out = FalsePositives { near: 0, duplicates: 0, clutter: 0, counted: vec![false; dets.len()] };
    for (i, w) in world.iter().enumerate() {
        if matched[i] || dets[i].bbox.x_m.hypot(dets[i].bbox.y_m) > 40.0 {
            continue;
        }
        match agents.iter().enumerate().find(|(_, a)| Vec2::new(a.x_m, a.y_m).dist(*w) < a.length_m.max(1.0)) {
            Some((ai, a)) if evaluated[ai] => {
                out.near += 1;
                out.counted[i] = true;
                if classes[i] == simdata::class_of(a.kind) {
                    out.duplicates += 1;
                }
            }
            Some(_) => {}
            None => {
                out.clutter += 1;
                out.counted[i] = true;
            }
        }
    }
    out
}

/// Simulated seconds of each calibration scene.
const CALIBRATION_SECONDS: u32 = 30;

/// (detections, right, sum of scores) per score bin of (score, right) pairs.
fn reliability(judged: &[(f32, bool)]) -> [(usize, usize, f64); RELIABILITY_BINS] {
    let mut bins = [(0usize, 0usize, 0.0f64); RELIABILITY_BINS];
    for &(score, right) in judged {
        let b = ((score * RELIABILITY_BINS as f32) as usize).min(RELIABILITY_BINS - 1);
        bins[b].0 += 1;
        bins[b].1 += usize::from(right);
        bins[b].2 += f64::from(score);
    }
    bins
}

/// Expected calibration error: the gap between the mean score and the share right, per bin,
/// weighted by the bin's share of the pairs.
fn calibration_error(judged: &[(f32, bool)]) -> f64 {
    reliability(judged)
        .iter()
        .filter(|b| b.0 > 0)
        .map(|b| b.0 as f64 / judged.len() as f64 * (b.1 as f64 / b.0 as f64 - b.2 / b.0 as f64).abs())
        .sum()
}

/// How [`eval_sim`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Report {
    Text,
    Json,
    Quiet,
}

/// Score bins of the reliability table.
const RELIABILITY_BINS: usize = 10;
/// The cost of a pair that may not be matched, in the evaluation's assignments.
const UNMATCHED: f64 = 1e9;

/// Detections (world positions, classes) matched to road users: each road user to at most one
/// detection of its class within its length of its centre, each detection to at most one road
/// user, as many pairs as can be and the nearest (a first-come match lets one car take its
/// neighbour's detection in a row of parked cars).
fn match_to_agents(agents: &[&AgentTruth], world: &[Vec2], classes: &[usize]) -> Vec<Option<usize>> {
    if world.is_empty() {
        return vec![None; agents.len()];
    }
    let cost: Vec<Vec<f64>> = agents
        .iter()
        .map(|a| {
            let pos = Vec2::new(a.x_m, a.y_m);
            world
                .iter()
                .zip(classes)
                .map(|(w, c)| {
                    let d = w.dist(pos);
                    if *c == simdata::class_of(a.kind) && d < a.length_m.max(1.0) {
                        d
                    } else {
                        UNMATCHED
                    }
                })
                .collect()
        })
        .collect();
    hungarian(&cost).into_iter().enumerate().map(|(row, col)| col.filter(|i| cost[row][*i] < UNMATCHED)).collect()
}

fn eval_sim(
    det: &LidarDetector,
    lidar: &LidarConfig,
    seeds: &[u64],
    seconds: u32,
    parked: usize,
    min_score: f32,
    report: Report,
) -> Result<Vec<(f32, bool)>> {
    // Recall within range per class, precision, and tracking (MOTA, id switches) on seeded scenes.
    let ranges = [40.0, 25.0, 25.0];
    let (mut found, mut present, mut fp, mut tp_all) = ([0usize; 3], [0usize; 3], 0usize, 0usize);
    // Found with the class of the track the detection updated (what the `tracks` stream reports).
    let (mut found_tracked, mut tp_tracked, mut fp_tracked) = ([0usize; 3], 0usize, 0usize);
    let (mut misses, mut switches, mut gt_total, mut track_secs) = (0usize, 0usize, 0usize, 0.0f64);
    let (mut fp_near, mut fp_far, mut fp_duplicate) = (0usize, 0usize, 0usize);
    let (mut false_tracks, mut sweeps) = (0usize, 0usize);
    // Vehicles with a vehicle box of their own at bird's-eye IoU 0.5 or more (KITTI's rule).
    let mut boxed_vehicles = 0usize;
    let mut judged: Vec<(f32, bool)> = Vec::new();
    let mut ms = Vec::new();
    for &seed in seeds {
        let mut cfg = SceneConfig { seed, vehicles: 8, pedestrians: 8, cyclists: 5, parked, ..SceneConfig::default() };
        cfg.sensors.lidar = lidar.clone();
        let mut scene = Scene::new(cfg)?;
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut last_track_of: std::collections::BTreeMap<u32, u32> = Default::default();
        // Where each agent was on the previous tick: a driver at the end of its route re-enters
        // elsewhere under the same id, which is a new object, not an id switch.
        let mut last_pos: std::collections::BTreeMap<u32, Vec2> = Default::default();
        // One lidar sweep a tick.
        let tick = scene.config().tick_secs;
        for _ in 0..(f64::from(seconds) / tick).round() as usize {
            let frame = scene.tick();
            let Some(sweep) = frame.lidar.last() else { continue };
            let t = Instant::now();
            let dets = detect_at(det, &sweep.points, min_score);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            let pose = sweep.world_from_sensor;
            let origin = Vec2::new(pose.x_m, pose.y_m);
            let world: Vec<Vec2> =
                dets.iter().map(|d| origin + Vec2::new(d.bbox.x_m, d.bbox.y_m).rotate(pose.yaw_rad)).collect();
            let obs: Vec<Observation> = dets
                .iter()
                .zip(&world)
                .map(|(d, w)| Observation {
                    x_m: w.x,
                    y_m: w.y,
                    class: d.class,
                    yaw_rad: Some(d.bbox.yaw_rad + pose.yaw_rad),
                    score: d.score,
                })
                .collect();
            tracker.step(tick, &obs);
            let det_class: Vec<usize> = dets.iter().map(|d| d.class).collect();
            let mut tracked_class = det_class.clone();
            for t in tracker.tracks() {
                if let Some(i) = t.observation {
                    tracked_class[i] = t.class;
                }
            }
            let mut matched_det = vec![false; dets.len()];
            let mut boxed = vec![false; dets.len()];
            let mut matched_tracked = vec![false; dets.len()];
            let mut evaluated_agent = vec![false; frame.truth.agents.len()];
            for (ai, a) in frame.truth.agents.iter().enumerate() {
                let k = simdata::class_of(a.kind);
                let pos = Vec2::new(a.x_m, a.y_m);
                if last_pos.insert(a.id, pos).is_some_and(|p| p.dist(pos) > 8.0) {
                    last_track_of.remove(&a.id);
                }
                if pos.dist(origin) > ranges[k] {
                    continue;
                }
                // Only agents the sensor can see: at least a few lidar points on them.
                let rel_pts = sweep.points.iter().filter(|p| {
                    let w = origin + Vec2::new(f64::from(p[0]), f64::from(p[1])).rotate(pose.yaw_rad);
                    let r = (w - pos).rotate(-a.yaw_rad);
                    r.x.abs() < a.length_m / 2.0 + 0.2 && r.y.abs() < a.width_m / 2.0 + 0.2 && f64::from(p[2]) > -1.5
                });
                let on_agent = rel_pts.count();
                if on_agent < 10 {
                    continue;
                }
                evaluated_agent[ai] = true;
                present[k] += 1;
                gt_total += 1;
                if k == 0 {
                    // Its box in the sensor frame, against the vehicle boxes not yet taken (in the
                    // order of the scene's agents).
                    let truth = simdata::sensor_box(a, &pose);
                    let best = (0..dets.len())
                        .filter(|i| !boxed[*i] && dets[*i].class == 0)
                        .map(|i| (bev_iou(&dets[i].bbox, &truth), i))
                        .max_by(|x, y| x.0.total_cmp(&y.0));
                    if let Some((_, i)) = best.filter(|(iou, _)| *iou >= 0.5) {
                        boxed[i] = true;
                        boxed_vehicles += 1;
                    }
                }
                track_secs += tick;
            }
            // Detections found on the evaluated road users (`match_to_agents`), with each
            // detection's own class and with its track's.
            let agents: Vec<&AgentTruth> =
                frame.truth.agents.iter().zip(&evaluated_agent).filter(|(_, e)| **e).map(|(a, _)| a).collect();
            for (per_sweep, classes, matched, found) in [
                (true, &det_class, &mut matched_det, &mut found),
                (false, &tracked_class, &mut matched_tracked, &mut found_tracked),
            ] {
                let assigned = match_to_agents(&agents, &world, classes);
                for (a, col) in agents.iter().zip(assigned) {
                    if let Some(i) = col {
                        matched[i] = true;
                        found[simdata::class_of(a.kind)] += 1;
                    } else if per_sweep {
                        // The nearest detection is only looked for when debug logging is on.
                        let pos = Vec2::new(a.x_m, a.y_m);
                        tracing::debug!(
                            seed, t = frame.truth.t_secs, agent = a.id, kind = ?a.kind, x = a.x_m, y = a.y_m,
                            range = pos.dist(origin),
                            nearest = ?world
                                .iter()
                                .enumerate()
                                .min_by(|a, b| a.1.dist(pos).total_cmp(&b.1.dist(pos)))
                                .map(|(i, w)| (classes[i], w.dist(pos), dets[i].points, dets[i].bbox.height_m)),
                            "missed"
                        );
                    }
                }
            }
            // Tracking, by the CLEAR MOT procedure: an agent keeps last frame's track while that
            // track is still within 2 m; the others are matched one-to-one to the remaining
            // confirmed tracks within 2 m (Hungarian, on distance). A match to a track other than
            // the agent's last one is an id switch; an evaluated agent left without one, a miss.
            let tracks = tracker.tracks();
            // A false track: confirmed, updated this sweep, within 40 m, and not within 2 m of
            // any road user (seen or not).
            false_tracks += tracks
                .iter()
                .filter(|t| t.observation.is_some())
                .map(|t| Vec2::new(t.x_m, t.y_m))
                .filter(|p| p.dist(origin) <= ranges[0])
                .filter(|p| !frame.truth.agents.iter().any(|a| Vec2::new(a.x_m, a.y_m).dist(*p) < 2.0))
                .count();
            sweeps += 1;
            let evaluated: Vec<usize> = (0..frame.truth.agents.len()).filter(|ai| evaluated_agent[*ai]).collect();
            let agent_pos = |ai: usize| Vec2::new(frame.truth.agents[ai].x_m, frame.truth.agents[ai].y_m);
            let track_pos = |ti: usize| Vec2::new(tracks[ti].x_m, tracks[ti].y_m);
            let mut track_taken = vec![false; tracks.len()];
            let mut matched: Vec<Option<usize>> = vec![None; evaluated.len()];
            for (k, ai) in evaluated.iter().enumerate() {
                let Some(prev) = last_track_of.get(&frame.truth.agents[*ai].id) else { continue };
                if let Some(ti) = tracks.iter().position(|t| t.id == *prev) {
                    if !track_taken[ti] && track_pos(ti).dist(agent_pos(*ai)) < 2.0 {
                        track_taken[ti] = true;
                        matched[k] = Some(ti);
                    }
                }
            }
            let open_agents: Vec<usize> = (0..evaluated.len()).filter(|k| matched[*k].is_none()).collect();
            let open_tracks: Vec<usize> = (0..tracks.len()).filter(|ti| !track_taken[*ti]).collect();
            let cost: Vec<Vec<f64>> = open_agents
                .iter()
                .map(|k| {
                    open_tracks
                        .iter()
                        .map(|ti| {
                            let d = track_pos(*ti).dist(agent_pos(evaluated[*k]));
                            if d < 2.0 {
                                d
                            } else {
                                UNMATCHED
                            }
                        })
                        .collect()
                })
                .collect();
            for (row, col) in hungarian(&cost).into_iter().enumerate() {
                if let Some(c) = col {
                    matched[open_agents[row]] = Some(open_tracks[c]);
                }
            }
            for (k, ai) in evaluated.iter().enumerate() {
                let a = &frame.truth.agents[*ai];
                match matched[k] {
                    Some(ti) => {
                        let id = tracks[ti].id;
                        if let Some(prev) = last_track_of.insert(a.id, id).filter(|prev| *prev != id) {
                            switches += 1;
                            tracing::debug!(
                                seed, t = frame.truth.t_secs, agent = a.id, kind = ?a.kind, x = a.x_m, y = a.y_m,
                                prev, now = id, "id switch"
                            );
                        }
                    }
                    None => misses += 1,
                }
            }
            tp_all += matched_det.iter().filter(|m| **m).count();
            let f = false_positives(&dets, &world, &det_class, &matched_det, &frame.truth.agents, &evaluated_agent);
            // Reliability: each detection within 40 m that is right (matched) or counted wrong,
            // by its score.
            for (i, d) in dets.iter().enumerate() {
                if matched_det[i] || f.counted[i] {
                    judged.push((d.score, matched_det[i]));
                }
            }
            fp += f.near + f.clutter;
            fp_near += f.near;
            fp_duplicate += f.duplicates;
            fp_far += f.clutter;
            tp_tracked += matched_tracked.iter().filter(|m| **m).count();
            let f =
                false_positives(&dets, &world, &tracked_class, &matched_tracked, &frame.truth.agents, &evaluated_agent);
            fp_tracked += f.near + f.clutter;
        }
    }
    let recall: Vec<f64> = (0..3).map(|k| found[k] as f64 / present[k].max(1) as f64).collect();
    let recall_tracked: Vec<f64> = (0..3).map(|k| found_tracked[k] as f64 / present[k].max(1) as f64).collect();
    let mota = 1.0 - (misses + switches + fp) as f64 / gt_total.max(1) as f64;
    let switches_per_track_minute = switches as f64 / (track_secs / 60.0).max(1e-9);
    let precision = tp_all as f64 / (tp_all + fp).max(1) as f64;
    let vehicle_recall_iou = boxed_vehicles as f64 / present[0].max(1) as f64;
    let precision_tracked = tp_tracked as f64 / (tp_tracked + fp_tracked).max(1) as f64;
    let mean_ms = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    let false_tracks_per_sweep = false_tracks as f64 / sweeps.max(1) as f64;
    let ece = calibration_error(&judged);
    let bins: Vec<serde_json::Value> = reliability(&judged)
        .iter()
        .enumerate()
        .filter(|(_, b)| b.0 > 0)
        .map(|(k, b)| {
            json!({"from": k as f64 / RELIABILITY_BINS as f64, "detections": b.0,
                   "mean_score": b.2 / b.0 as f64, "share_right": b.1 as f64 / b.0 as f64})
        })
        .collect();
    let out = json!({
        "recall_vehicle_40m": recall[0], "recall_pedestrian_25m": recall[1], "recall_cyclist_25m": recall[2],
        "recall_vehicle_40m_bev_iou_0_5": vehicle_recall_iou,
        "tracked_class": {
            "recall_vehicle_40m": recall_tracked[0], "recall_pedestrian_25m": recall_tracked[1], "recall_cyclist_25m": recall_tracked[2],
            "precision_within_40m": precision_tracked,
        },
        "precision_within_40m": precision, "mota": mota, "id_switches": switches, "id_switches_per_track_minute": switches_per_track_minute,
        "ms_per_sweep": mean_ms, "lidar_beams": lidar.beams, "visible_agent_frames": gt_total, "seeds": seeds, "seconds_per_scene": seconds, "min_score": min_score,
        "false_tracks_per_sweep": false_tracks_per_sweep,
        "calibration_error": ece, "reliability": bins,
        "false_positives_on_agents": fp_near, "false_positives_duplicates": fp_duplicate, "false_positives_clutter": fp_far,
    });
    if report == Report::Json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if report == Report::Text {
        println!("simulated scenes (seeds {seeds:?}): {gt_total} visible agent-frames");
        println!(
            "recall  vehicles (40 m) {:.3}  pedestrians (25 m) {:.3}  cyclists (25 m) {:.3}",
            recall[0], recall[1], recall[2]
        );
        println!("vehicles (40 m) with a vehicle box of their own at bird's-eye IoU >= 0.5: {vehicle_recall_iou:.3}");
        println!(
            "with the class of the detection's track (as streamed): recall {:.3} / {:.3} / {:.3}, precision {precision_tracked:.3}",
            recall_tracked[0], recall_tracked[1], recall_tracked[2]
        );
        println!("precision within 40 m {precision:.3}; MOTA {mota:.3}; id switches {switches} ({switches_per_track_minute:.2} per track-minute)");
        println!("false positives: {fp_near} on evaluated agents ({fp_duplicate} duplicates of the right class, the rest a wrong class), {fp_far} on clutter");
        println!(
            "false tracks (confirmed, updated, within 40 m, on no road user): {false_tracks_per_sweep:.2} per sweep"
        );
        println!(
            "score calibration (detections within 40 m, right or counted wrong): expected calibration error {ece:.3}"
        );
        for b in &bins {
            println!(
                "  score {:.1}+: {:>6} detections, mean score {:.3}, right {:.3}",
                b["from"].as_f64().unwrap_or(0.0),
                b["detections"],
                b["mean_score"].as_f64().unwrap_or(0.0),
                b["share_right"].as_f64().unwrap_or(0.0)
            );
        }
        println!("{mean_ms:.1} ms per {}-beam sweep", lidar.beams);
    }
    Ok(judged)
}

#[cfg(test)]
mod tests {
    use waypoint_sim::AgentKind;

    use super::*;

    fn car(x_m: f64) -> AgentTruth {
        AgentTruth {
            id: 0,
            kind: AgentKind::Vehicle,
            x_m,
            y_m: 0.0,
            length_m: 4.5,
            width_m: 1.8,
            height_m: 1.5,
            yaw_rad: 0.0,
            vx_mps: 0.0,
            vy_mps: 0.0,
            yaw_rate_rps: 0.0,
        }
    }

    #[test]
    fn detections_go_to_road_users_one_to_one_as_many_as_can_be() {
        // Two cars 2.7 m apart and two vehicle detections: one 0.1 m from the second car (and
        // 2.6 m from the first), one 3 m behind the first (5.7 m from the second). The first
        // car taking the nearer detection, first come, would leave the second car with none.
        let (a, b) = (car(0.0), car(2.7));
        let world = [Vec2::new(2.6, 0.0), Vec2::new(-3.0, 0.0)];
        assert_eq!(match_to_agents(&[&a, &b], &world, &[0, 0]), vec![Some(1), Some(0)]);
        // A detection of another class, or beyond a road user's length, matches nothing.
        assert_eq!(match_to_agents(&[&a, &b], &world, &[1, 0]), vec![Some(1), None]);
        assert_eq!(match_to_agents(&[&a], &[Vec2::new(4.6, 0.0)], &[0]), vec![None]);
        assert_eq!(match_to_agents(&[&a], &[], &[]), vec![None]);
    }
}
