//! `waypoint eval fusion --synthetic`: every kind of motion scored for the three filters, and
//! the seeds the IMM's settings were chosen on named as in-sample.

use std::process::Command;

fn eval(seeds: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .args(["eval", "fusion", "--synthetic", "--seeds", seeds, "--json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn simulated_logs_are_scored_per_kind_and_tuning_seeds_are_named_in_sample() {
    let held = eval("101-102");
    assert_eq!(held["in_sample_seeds"], serde_json::json!([]));
    let kinds = held["rmse"].as_object().unwrap();
    assert_eq!(kinds.len(), 5, "{held}");
    for (kind, r) in kinds {
        for filter in ["ukf", "ekf", "imm"] {
            let v: Vec<f64> = r[filter].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(v.len() == 4 && v.iter().all(|x| x.is_finite() && *x > 0.0), "{kind} {filter}: {v:?}");
        }
    }
    let mixed = eval("9-11");
    assert_eq!(mixed["in_sample_seeds"], serde_json::json!([9, 10]));
    // --udacity and --synthetic exclude each other; one is needed.
    for args in [&["eval", "fusion"][..], &["eval", "fusion", "--synthetic", "--udacity", "x.txt"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_waypoint")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
    }
}
