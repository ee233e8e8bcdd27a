//! `waypoint record` then `waypoint eval replay` end to end: a short drive recorded, played
//! through the live stack again, each version's online error reported beside the baselines
//! scored on the same tracks.

use std::process::Command;

#[test]
fn a_recorded_drive_replays_with_the_version_and_the_baselines_scored() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("waypoint-eval-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("drive.mcap");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_waypoint")).current_dir(&root).args(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    // Long enough for 8 observed steps and a 4.8 s horizon to pass.
    run(&["record", file.to_str().unwrap(), "--duration", "14"]);
    let out = run(&["eval", "replay", file.to_str().unwrap(), "--model", "trajectory", "--versions", "3", "--json"]);
    let _ = std::fs::remove_dir_all(&dir);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let v = &r["versions"][0];
    assert_eq!(v["version"], "3", "{r}");
    let samples = |m: &serde_json::Value| m["ade_m"]["samples"].as_u64().unwrap_or(0);
    assert!(samples(&v["metrics"]) > 0, "the version was scored: {r}");
    // The baselines are scored on every track of each round, so on at least as many as the
    // version (which gets the tracks routed to it).
    for b in ["constant_velocity", "kalman"] {
        let m = &v["baselines"][b];
        assert!(samples(m) >= samples(&v["metrics"]), "{b}: {r}");
        assert!(m["ade_m"]["value"].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{b}: {r}");
    }
}
