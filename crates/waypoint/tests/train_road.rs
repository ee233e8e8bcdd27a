//! `waypoint train trajectory-road --sim` then `waypoint eval trajectory-road --tracks` end to
//! end: short drives through perception, a correction trained on their tracks and written as a
//! new version, which the evaluation then scores beside the baselines on other drives.

use std::process::Command;

fn waypoint(args: &[&str]) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_waypoint")).current_dir(&root).args(args).output().expect("run")
}

#[test]
fn a_correction_trained_on_simulated_tracks_becomes_a_version_that_is_scored() {
    let dir = std::env::temp_dir().join(format!("waypoint-train-road-{}", std::process::id()));
    let repo = dir.join("models");
    std::fs::create_dir_all(repo.join("trajectory_road/1")).unwrap();
    let cache = dir.join("windows.jsonl");
    let (repo_s, cache_s) = (repo.to_str().unwrap(), cache.to_str().unwrap());
    let ok = |args: &[&str]| {
        let out = waypoint(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let train = [
        "train",
        "trajectory-road",
        "--sim",
        "--seeds",
        "1",
        "--val-seeds",
        "2",
        "--secs",
        "40",
        "--epochs",
        "2",
        "--model-repository",
        repo_s,
        "--windows",
        cache_s,
    ];
    ok(&train);
    let v2 = repo.join("trajectory_road/2");
    for f in ["correction.safetensors", "train.json", "version.toml"] {
        assert!(v2.join(f).is_file(), "{f} written");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(v2.join("train.json")).unwrap()).unwrap();
    assert!(report["report"]["train_rows"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["report"]["epochs"].as_array().unwrap().len(), 2, "{report}");
    // The drives were kept: a second run reads them and writes version 3.
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert_eq!(cached.lines().count(), 2);
    ok(&train);
    assert!(repo.join("trajectory_road/3/correction.safetensors").is_file());
    let out = ok(&[
        "eval",
        "trajectory-road",
        "--tracks",
        "--fit-seeds",
        "1",
        "--seeds",
        "3",
        "--secs",
        "40",
        "--model-repository",
        repo_s,
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["correction_version"], 3, "{r}");
    let v = &r["held_out"]["vehicle"];
    assert!(v["windows"].as_u64().unwrap() > 0, "{r}");
    for m in ["constant_velocity", "kalman", "road", "road_corrected"] {
        assert!(v[m][0].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{m}: {r}");
    }
    // Overlapping seeds, a drive too short, and a report on the drives the correction was
    // validated on are refused.
    for bad in [
        &["eval", "trajectory-road", "--tracks", "--fit-seeds", "5", "--seeds", "2", "--model-repository", repo_s][..],
        &["train", "trajectory-road", "--sim", "--seeds", "1-3", "--val-seeds", "3", "--model-repository", repo_s][..],
        &["train", "trajectory-road", "--sim", "--secs", "5", "--model-repository", repo_s][..],
        &["train", "trajectory-road", "--model-repository", repo_s][..],
    ] {
        let out = waypoint(bad);
        assert!(!out.status.success(), "{bad:?} refused");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
