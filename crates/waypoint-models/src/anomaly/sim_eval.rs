//! Scores the [`HealthMonitor`] against the simulator's fault ground truth.
//!
//! Each seeded scene drives for a warm-up, then a stretch of clean driving (false alarms are
//! counted there and in the quiet gaps between faults), then every fault kind on every sensor in
//! turn, each for [`FAULT_SECS`] with [`GAP_SECS`] of quiet after it. A fault is detected when its
//! sensor alarms between its start and one second after its end; the delay is from the fault's
//! start to the first alarm. An alarm onset (a sensor's alarm switching on) outside every fault
//! window of that sensor, and not in the recovery second after one, is a false alarm.

use std::collections::BTreeMap;

use waypoint_sim::fault::{FaultKind, FaultSpec, Sensor};
use waypoint_sim::{Scene, SceneConfig};

use super::health::HealthMonitor;

pub const WARMUP_SECS: f64 = 30.0;
pub const CLEAN_SECS: f64 = 120.0;
pub const FAULT_SECS: f64 = 5.0;
pub const GAP_SECS: f64 = 15.0;
/// After a fault ends, this long is neither a detection nor a false alarm.
pub const RECOVERY_SECS: f64 = 5.0;

/// Results for one fault kind.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct KindResult {
    pub faults: usize,
    pub detected: usize,
    /// Alarm onsets during faults of this kind: on the faulted sensor, and on another one.
    pub onsets_on_sensor: usize,
    pub onsets_elsewhere: usize,
    pub mean_delay_secs: Option<f64>,
    pub recall: f64,
    pub precision: f64,
    #[serde(skip)]
    delays: Vec<f64>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SimEvaluation {
    pub seeds: Vec<u64>,
    pub by_kind: BTreeMap<String, KindResult>,
    /// Per sensor: faults detected / faults.
    pub by_sensor: BTreeMap<String, (usize, usize)>,
    pub clean_secs: f64,
    pub false_alarms: usize,
    pub false_alarms_per_10min: f64,
    /// False alarms by `sensor/feature` that raised them.
    pub false_alarm_causes: BTreeMap<String, usize>,
    /// Faults never detected, as `sensor/kind`.
    pub missed: Vec<String>,
    pub threshold: f64,
}

/// Runs the evaluation on `seeds` with the given alarm threshold.
pub fn evaluate(seeds: &[u64], threshold: f64) -> SimEvaluation {
    let mut eval = SimEvaluation { seeds: seeds.to_vec(), threshold, ..Default::default() };
    // WAYPOINT_HEALTH_DEBUG=1 prints each feature's largest score (and largest deviation, `z:`)
    // per fault and in clean time.
    let debug = std::env::var_os("WAYPOINT_HEALTH_DEBUG").is_some();
    let mut diag: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for &seed in seeds {
        let mut faults = Vec::new();
        let mut t = WARMUP_SECS + CLEAN_SECS;
        for kind in FaultKind::ALL {
            for sensor in Sensor::ALL {
                faults.push(FaultSpec {
                    sensor,
                    kind,
                    start_secs: Some(t),
                    duration_secs: FAULT_SECS,
                    magnitude: None,
                });
                t += FAULT_SECS + GAP_SECS;
            }
        }
        let end = t;
        let config = SceneConfig { seed, faults: faults.clone(), ..SceneConfig::default() };
        let Ok(mut scene) = Scene::new(config) else { continue };
        let mut monitor = HealthMonitor::for_sensors(&scene.config().sensors);
        monitor.threshold = threshold;
        let mut was_alarm = [false; 5];
        let mut first_alarm: Vec<Option<f64>> = vec![None; faults.len()];
        let mut onsets: Vec<(usize, f64, &'static str)> = Vec::new();
        while scene.t_secs() < end {
            let frame = scene.tick();
            let t = frame.t_secs;
            let health = monitor.update(&frame, [true; 5]);
            if t < WARMUP_SECS {
                continue;
            }
            if debug {
                for (i, _) in health.iter().enumerate() {
                    let during = faults.iter().position(|f| {
                        let s = f.start_secs.unwrap_or(0.0);
                        t >= s && t <= s + f.duration_secs + RECOVERY_SECS
                    });
                    let key = match during {
                        Some(k) if faults[k].sensor == Sensor::ALL[i] => {
                            format!("{}/{}", Sensor::ALL[i].name(), kind_name(faults[k].kind))
                        }
                        Some(_) => continue,
                        None => format!("{}/clean", Sensor::ALL[i].name()),
                    };
                    let e = diag.entry(key).or_default();
                    for (name, s) in monitor.feature_scores(i) {
                        let v = e.entry(name.to_string()).or_insert(0.0);
                        *v = f64::max(*v, s);
                    }
                    for (name, z) in monitor.feature_z(i) {
                        let v = e.entry(format!("z:{name}")).or_insert(0.0);
                        *v = f64::max(*v, z);
                    }
                }
            }
            for (i, h) in health.iter().enumerate() {
                if h.alarm && !was_alarm[i] {
                    onsets.push((i, t, h.cause));
                }
                was_alarm[i] = h.alarm;
                if h.alarm {
                    for (k, f) in faults.iter().enumerate() {
                        let start = f.start_secs.unwrap_or(0.0);
                        if f.sensor == Sensor::ALL[i]
                            && t >= start
                            && t <= start + f.duration_secs + 1.0
                            && first_alarm[k].is_none()
                        {
                            first_alarm[k] = Some(t - start);
                        }
                    }
                }
            }
        }
        for (k, f) in faults.iter().enumerate() {
            let r = eval.by_kind.entry(kind_name(f.kind).to_string()).or_default();
            r.faults += 1;
            let s = eval.by_sensor.entry(f.sensor.name().to_string()).or_default();
            s.1 += 1;
            if let Some(d) = first_alarm[k] {
                r.detected += 1;
                r.delays.push(d);
                s.0 += 1;
            } else {
                eval.missed.push(format!("{}/{}", f.sensor.name(), kind_name(f.kind)));
            }
        }
        // Attribute every onset: to a fault window (any sensor) or to clean time.
        for (i, t, cause) in onsets {
            let during = faults.iter().find(|f| {
                let start = f.start_secs.unwrap_or(0.0);
                t >= start && t <= start + f.duration_secs + RECOVERY_SECS
            });
            match during {
                Some(f) => {
                    let r = eval.by_kind.entry(kind_name(f.kind).to_string()).or_default();
                    if f.sensor == Sensor::ALL[i] {
                        r.onsets_on_sensor += 1;
                    } else {
                        r.onsets_elsewhere += 1;
                    }
                }
                None => {
                    eval.false_alarms += 1;
                    *eval.false_alarm_causes.entry(format!("{}/{cause}", Sensor::ALL[i].name())).or_default() += 1;
                }
            }
        }
        eval.clean_secs += CLEAN_SECS + faults.len() as f64 * (GAP_SECS - RECOVERY_SECS);
    }
    for (k, v) in &diag {
        let cells: Vec<String> = v.iter().map(|(n, s)| format!("{n} {s:.2}")).collect();
        eprintln!("{k:<22} {}", cells.join("  "));
    }
    for r in eval.by_kind.values_mut() {
        r.recall = r.detected as f64 / r.faults.max(1) as f64;
        let onsets = r.onsets_on_sensor + r.onsets_elsewhere;
        r.precision = if onsets == 0 { 0.0 } else { r.onsets_on_sensor as f64 / onsets as f64 };
        if !r.delays.is_empty() {
            r.mean_delay_secs = Some(r.delays.iter().sum::<f64>() / r.delays.len() as f64);
        }
    }
    eval.false_alarms_per_10min = eval.false_alarms as f64 / eval.clean_secs.max(1e-9) * 600.0;
    eval
}

pub fn kind_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Dropout => "dropout",
        FaultKind::Stuck => "stuck",
        FaultKind::Spike => "spike",
        FaultKind::Drift => "drift",
        FaultKind::NoiseBurst => "noise_burst",
        FaultKind::Latency => "latency",
    }
}
