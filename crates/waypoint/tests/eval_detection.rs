//! `waypoint eval detection --sim` end to end: the binary runs a short seeded scene through
//! detection and tracking and reports per-class recall, precision, MOTA and id switches.

use std::process::Command;

fn eval_sim(extra: &[&str]) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .current_dir(root)
        .args(["eval", "detection", "--sim", "--json"])
        .args(extra)
        .output()
        .expect("run waypoint")
}

#[test]
fn a_short_simulated_scene_is_detected_and_tracked() {
    let out = eval_sim(&["--seeds", "500", "--seconds", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v} in {r}"));
    assert_eq!(r["seconds_per_scene"], 4);
    assert!(num(&r["visible_agent_frames"]) > 50.0, "{r}");
    // Vehicles near the sensor are found, and most detections are right.
    assert!(num(&r["recall_vehicle_40m"]) > 0.8, "{r}");
    assert!(num(&r["precision_within_40m"]) > 0.6, "{r}");
    assert!(num(&r["tracked_class"]["recall_vehicle_40m"]) > 0.8, "{r}");
    // By KITTI's rule too: most vehicles get a box of their own at bird's-eye IoU 0.5.
    assert!(num(&r["recall_vehicle_40m_bev_iou_0_5"]) > 0.8, "{r}");
    assert!(num(&r["mota"]) > 0.5, "{r}");
    for k in ["recall_pedestrian_25m", "recall_cyclist_25m", "id_switches_per_track_minute", "false_tracks_per_sweep"] {
        assert!(num(&r[k]) >= 0.0, "{k}: {r}");
    }
    // The reliability table holds every judged detection: its right ones are the true
    // positives, and the calibration error is a gap between shares.
    let bins = r["reliability"].as_array().expect("reliability bins");
    let total: f64 = bins.iter().map(|b| num(&b["detections"])).sum();
    let right: f64 = bins.iter().map(|b| num(&b["detections"]) * num(&b["share_right"])).sum();
    let precision = num(&r["precision_within_40m"]);
    assert!((right / total - precision).abs() < 0.02, "{right} of {total} right, precision {precision}: {r}");
    assert!((0.0..=1.0).contains(&num(&r["calibration_error"])), "{r}");
    // The centre error of found road users: per class and range band, a count and, where there
    // is one, a root mean square under a metre (a box centre off by more would not be found).
    let centre = &r["centre_rmse_m"];
    let vehicles_found: f64 = (0..3).map(|b| num(&centre["found"][0][b])).sum();
    assert!(vehicles_found > 20.0, "{centre}");
    for (k, class) in ["vehicle", "pedestrian", "cyclist"].iter().enumerate() {
        for b in 0..3 {
            if num(&centre["found"][k][b]) > 0.0 {
                let e = num(&centre[*class][b]);
                assert!(e > 0.0 && e < 1.0, "{class} band {b}: {centre}");
            } else {
                assert!(centre[*class][b].is_null(), "{class} band {b}: {centre}");
            }
        }
    }
}

#[test]
fn a_higher_minimum_score_trades_recall_for_precision() {
    let run = |min_score: &str| -> serde_json::Value {
        let out = eval_sim(&["--seeds", "501", "--seconds", "3", "--min-score", min_score]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    let (all, confident) = (run("0"), run("0.95"));
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    assert_eq!(confident["min_score"].as_f64(), Some(0.95f32 as f64));
    assert_eq!(all["visible_agent_frames"], confident["visible_agent_frames"]);
    for k in ["recall_vehicle_40m", "recall_pedestrian_25m", "recall_cyclist_25m"] {
        assert!(f(&confident, k) <= f(&all, k), "{k}: {all} vs {confident}");
    }
    let found =
        |r: &serde_json::Value| f(r, "recall_vehicle_40m") + f(r, "recall_pedestrian_25m") + f(r, "recall_cyclist_25m");
    assert!(found(&confident) < found(&all), "a 0.95 floor drops some detections: {all} vs {confident}");
    assert!(f(&confident, "false_positives_clutter") <= f(&all, "false_positives_clutter"));
}

#[test]
fn parked_vehicles_are_road_users_to_find() {
    let run = |parked: &str| -> serde_json::Value {
        let out = eval_sim(&["--seeds", "500", "--seconds", "4", "--parked", parked]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    let (none, parked) = (run("0"), run("20"));
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    // Twenty parked cars beside the arms add hundreds of visible vehicle-sweeps, and many of
    // them are found.
    assert!(f(&parked, "visible_agent_frames") > f(&none, "visible_agent_frames") + 200.0, "{none} vs {parked}");
    assert!(f(&parked, "recall_vehicle_40m") > 0.6, "{parked}");
    assert!((0.0..=1.0).contains(&f(&parked, "recall_vehicle_40m_bev_iou_0_5")), "{parked}");
}

#[test]
fn bad_arguments_are_refused() {
    for (flag, value) in [("--seconds", "0"), ("--min-score", "1.5"), ("--min-score", "nan"), ("--fleet", "trucks")] {
        let out = eval_sim(&[flag, value]);
        assert!(!out.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
    // A fleet is a simulated scene's: with KITTI frames it is refused, not ignored.
    let os = std::ffi::OsStr::new;
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .args([os("eval"), os("detection"), os("--kitti"), os("/tmp/unused"), os("--fleet"), os("mixed")])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--sim"), "{out:?}");
}

/// Runs the binary; the output, which must be a success.
fn waypoint(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint")).args(args).output().expect("run waypoint");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `eval detection --json --kitti DIR --png-dir DIR/bev`, which must succeed.
fn eval_kitti_json(dir: &std::path::Path) -> std::process::Output {
    let png_dir = dir.join("bev");
    let os = std::ffi::OsStr::new;
    waypoint(&[
        os("eval"),
        os("detection"),
        os("--json"),
        os("--kitti"),
        dir.as_os_str(),
        os("--png-dir"),
        png_dir.as_os_str(),
    ])
}

#[test]
fn simulated_sweeps_exported_as_kitti_are_read_matched_and_drawn() {
    let dir = std::env::temp_dir().join(format!("waypoint-kitti-{}", std::process::id()));
    let png_dir = dir.join("bev");
    let os = |s: &str| std::ffi::OsString::from(s);
    // Five frames a second apart of a seeded scene, seen by the HDL-64E.
    let exported = waypoint(&[&os("export-kitti"), &os("--frames"), &os("5"), &os("--out"), dir.as_os_str()]);
    let said = String::from_utf8_lossy(&exported.stdout).to_string();
    let out = eval_kitti_json(&dir);
    let labels: Vec<String> =
        (0..5).map(|f| std::fs::read_to_string(dir.join(format!("label_2/{f:06}.txt"))).unwrap()).collect();
    let png = std::fs::read(png_dir.join("000004.png")).expect("a bird's-eye view");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(&png[1..4], b"PNG");
    let labelled: Vec<usize> = ["Car", "Pedestrian", "Cyclist"]
        .iter()
        .map(|k| labels.iter().flat_map(|l| l.lines()).filter(|l| l.starts_with(&format!("{k} "))).count())
        .collect();
    assert!(labelled[0] >= 4, "vehicles in view: {labelled:?}");
    assert!(said.contains(&format!("{} vehicles", labelled[0])), "{said}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    // Seed 500 (the default) was looked at while tuning: every exported frame is in-sample by
    // its seed, not by its file name.
    let seen = r["in_sample"].as_array().expect("in_sample");
    assert_eq!(seen.len(), 5, "{r}");
    assert!(seen.iter().all(|s| s["why"].as_str().unwrap().starts_with("looked at while tuning")), "{r}");
    // Every label is found or missed, and the verdicts on the detections add up to the counts.
    let frames = r["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 5, "{r}");
    let counts =
        |k: &str, c: usize| -> usize { frames.iter().map(|f| f["counts"][k][c].as_u64().unwrap() as usize).sum() };
    for (c, n) in labelled.iter().enumerate() {
        assert_eq!(counts("tp", c) + counts("fn_", c), *n, "class {c}: {r}");
    }
    let verdicts: Vec<&str> = frames
        .iter()
        .flat_map(|f| f["detections_in_view"].as_array().unwrap())
        .map(|d| d["verdict"].as_str().unwrap())
        .collect();
    let tp: usize = (0..3).map(|c| counts("tp", c)).sum();
    let fp: usize = (0..3).map(|c| counts("fp", c)).sum();
    assert_eq!(verdicts.iter().filter(|v| **v == "right").count(), tp, "{r}");
    assert_eq!(verdicts.iter().filter(|v| **v == "wrong").count(), fp, "{r}");
    // At the calibrated operating point (score >= 0.5) the detections are a subset: no more true
    // or false positives than at every score, the same labels to find, and none of the
    // detections it drops scored 0.5 or more.
    let op = &r["operating_point"];
    assert_eq!(op["min_score"].as_f64(), Some(0.5), "{op}");
    for (c, n) in labelled.iter().enumerate() {
        let (o, a) = (&op["per_class"][c], &r["per_class"][c]);
        assert!(o["tp"].as_u64() <= a["tp"].as_u64() && o["fp"].as_u64() <= a["fp"].as_u64(), "{o} {a}");
        assert_eq!((o["tp"].as_u64().unwrap() + o["fn"].as_u64().unwrap()) as usize, *n, "{o}");
    }
    let confident_wrong = frames
        .iter()
        .flat_map(|f| f["detections_in_view"].as_array().unwrap())
        .filter(|d| d["verdict"] == "wrong" && d["score"].as_f64().unwrap() >= 0.5)
        .count() as f64;
    assert!(op["fp_per_frame"].as_f64().unwrap() <= r["fp_per_frame"].as_f64().unwrap(), "{op}");
    assert!(op["fp_per_frame"].as_f64().unwrap() * 5.0 <= confident_wrong + 1e-9, "{op}");
    // Average precision is there for every class with labels, and within [0, 1].
    for (c, n) in labelled.iter().enumerate() {
        let ap = &r["per_class"][c]["ap_bev"];
        if *n > 0 {
            assert!((0.0..=1.0).contains(&ap.as_f64().expect("an AP")), "class {c}: {r}");
        } else {
            assert!(ap.is_null(), "class {c}: {r}");
        }
    }
    // The labels land where the simulated road users are: most vehicles in view are matched
    // at a bird's-eye IoU of 0.5, which a label turned or moved by the conversion would not be.
    assert!(counts("tp", 0) * 10 >= labelled[0] * 7, "vehicles found: {} of {}: {r}", counts("tp", 0), labelled[0]);
}

#[test]
fn export_kitti_refuses_bad_arguments() {
    let file = std::env::temp_dir().join(format!("waypoint-kitti-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let run = |args: &[&std::ffi::OsStr]| Command::new(env!("CARGO_BIN_EXE_waypoint")).args(args).output().unwrap();
    let os = |s: &str| std::ffi::OsString::from(s);
    let zero = run(&[&os("export-kitti"), &os("--frames"), &os("0"), &os("--out"), &os("/tmp/unused")]);
    for tilt in ["20,0", "2", "nan,1"] {
        let bad = run(&[&os("export-kitti"), &os(&format!("--tilt-deg={tilt}")), &os("--out"), &os("/tmp/unused")]);
        assert!(
            !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("PITCH,ROLL"),
            "{tilt}: {bad:?}"
        );
    }
    let bad = run(&[&os("export-kitti"), &os("--fleet"), &os("trucks"), &os("--out"), &os("/tmp/unused")]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--fleet"), "{bad:?}");
    assert!(!std::path::Path::new("/tmp/unused").exists());
    // Training refuses a tilt range it cannot mean before it starts.
    for tilt in ["20,0", "-1,1", "1"] {
        let bad = run(&[
            &os("train"),
            &os("detection"),
            &os(&format!("--max-tilt-deg={tilt}")),
            &os("--model-repository"),
            &os("/tmp/unused"),
        ]);
        assert!(
            !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("MAX_PITCH,MAX_ROLL"),
            "{tilt}: {bad:?}"
        );
    }
    assert!(!std::path::Path::new("/tmp/unused").exists());
    let onto_file = run(&[&os("export-kitti"), &os("--frames"), &os("1"), &os("--out"), file.as_os_str()]);
    std::fs::remove_file(&file).ok();
    assert!(!zero.status.success() && String::from_utf8_lossy(&zero.stderr).contains("--frames"));
    assert!(!onto_file.status.success());
    assert!(String::from_utf8_lossy(&onto_file.stderr).contains("is not a directory"), "{onto_file:?}");
}

#[test]
fn exported_frames_are_judged_in_or_out_of_sample_by_their_seed() {
    let dir = std::env::temp_dir().join(format!("waypoint-kitti-seed-{}", std::process::id()));
    let os = |s: &str| std::ffi::OsString::from(s);
    waypoint(&[
        &os("export-kitti"),
        &os("--seed"),
        &os("9001"),
        &os("--frames"),
        &os("1"),
        &os("--out"),
        dir.as_os_str(),
    ]);
    let png_dir = dir.join("bev");
    let eval = || {
        Command::new(env!("CARGO_BIN_EXE_waypoint"))
            .args([
                os("eval"),
                os("detection"),
                os("--kitti"),
                dir.clone().into(),
                os("--png-dir"),
                png_dir.clone().into(),
            ])
            .output()
            .expect("run waypoint")
    };
    let held_out = eval();
    // A marker that does not say which scene is refused rather than read as KITTI's own frames.
    std::fs::write(dir.join("waypoint-export.json"), "{}").unwrap();
    let broken = eval();
    std::fs::remove_dir_all(&dir).ok();
    let said = String::from_utf8_lossy(&held_out.stdout);
    assert!(held_out.status.success(), "{}", String::from_utf8_lossy(&held_out.stderr));
    assert!(said.starts_with("1 frames from") && said.contains("simulated from seed 9001; held out"), "{said}");
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("no seed"), "{}", String::from_utf8_lossy(&broken.stderr));
}

#[test]
fn a_tilted_export_carries_its_tilt_and_its_vehicles_are_still_found() {
    let dir = std::env::temp_dir().join(format!("waypoint-kitti-tilt-{}", std::process::id()));
    let os = |s: &str| std::ffi::OsString::from(s);
    // The sensor pitched 1.5° nose up and rolled 1°: the road seems to fall away ahead and lean.
    waypoint(&[&os("export-kitti"), &os("--frames"), &os("5"), &os("--tilt-deg=1.5,1"), &os("--out"), dir.as_os_str()]);
    let out = eval_kitti_json(&dir);
    let marker = std::fs::read_to_string(dir.join("waypoint-export.json")).unwrap();
    let calib = std::fs::read_to_string(dir.join("calib/000000.txt")).unwrap();
    let labels = std::fs::read_to_string(dir.join("label_2/000004.txt")).unwrap();
    let points = std::fs::read(dir.join("velodyne/000004.bin")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let m: serde_json::Value = serde_json::from_str(&marker).unwrap();
    assert_eq!(m["tilt_deg"], serde_json::json!([1.5, 1.0]), "{marker}");
    // The calibration carries the tilt: its rotation is no longer a permutation of the axes.
    let tr: Vec<f64> = calib
        .lines()
        .find_map(|l| l.strip_prefix("Tr_velo_to_cam:"))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!((tr[4] + 1.5f64.to_radians().sin()).abs() < 1e-6, "{calib}");
    // In the sensor's own frame the road ahead falls away: the lowest returns 20-30 m ahead
    // lie well below the level road's 1.73 m under the sensor.
    let ahead_low = points
        .chunks_exact(16)
        .map(|c| std::array::from_fn::<f32, 3, _>(|i| f32::from_le_bytes(c[4 * i..4 * i + 4].try_into().unwrap())))
        .filter(|p| (20.0..30.0).contains(&p[0]) && p[1].abs() < 2.0)
        .map(|p| p[2])
        .fold(f32::INFINITY, f32::min);
    assert!(ahead_low < -2.1, "{ahead_low}");
    // The labels (level boxes, read through the tilted calibration) and the levelled
    // detections still meet: most vehicles are found at a bird's-eye IoU of 0.5.
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let v = &r["per_class"][0];
    let (tp, fn_) = (v["tp"].as_u64().unwrap(), v["fn"].as_u64().unwrap());
    assert!(tp + fn_ >= 4 && tp * 10 >= (tp + fn_) * 7, "{v} {labels}");
}

/// `export-kitti --fleet mixed --vehicle-glass`: the marker says so and the labels hold vans
/// and small cars beside mid-size ones (a fleet it does not know:
/// `export_kitti_refuses_bad_arguments`).
#[test]
fn a_mixed_fleet_export_labels_vehicles_of_every_body() {
    let dir = std::env::temp_dir().join(format!("waypoint-kitti-fleet-{}", std::process::id()));
    let os = |s: &str| std::ffi::OsString::from(s);
    waypoint(&[
        &os("export-kitti"),
        &os("--frames"),
        &os("10"),
        &os("--every"),
        &os("60"),
        &os("--parked"),
        &os("30"),
        &os("--fleet"),
        &os("mixed"),
        &os("--vehicle-glass"),
        &os("--out"),
        dir.as_os_str(),
    ]);
    let marker = std::fs::read_to_string(dir.join("waypoint-export.json")).unwrap();
    let mut bodies = Vec::new();
    // A minute of scene time, a frame every 6 s, with cars parked along the way.
    for f in 0..10 {
        for line in std::fs::read_to_string(dir.join("label_2").join(format!("{f:06}.txt"))).unwrap().lines() {
            let v: Vec<&str> = line.split_whitespace().collect();
            if v[0] == "Car" {
                bodies.push((v[8].parse::<f64>().unwrap(), v[10].parse::<f64>().unwrap()));
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    let m: serde_json::Value = serde_json::from_str(&marker).unwrap();
    assert_eq!((&m["fleet"], &m["vehicle_glass"]), (&serde_json::json!("mixed"), &serde_json::json!(true)), "{marker}");
    assert!(bodies.iter().any(|(h, _)| *h > 1.9), "a van: {bodies:?}");
    assert!(bodies.iter().any(|(_, l)| *l < 4.1), "a small car: {bodies:?}");
}
