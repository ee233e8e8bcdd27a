//! Unit tests of the health monitor: its helpers against hand-made data, and alarms on faults
//! injected into simulated scenes.

use super::camera::{camera_radar_offsets, edge_second_differences};
use super::gps::stepwise_slope;
use super::radar::extend_chains;
use super::stats::median_mad;
use super::*;
use waypoint_sim::fault::{FaultKind, FaultSpec};
use waypoint_sim::frame::{CameraBox, RadarTarget};
use waypoint_sim::{AgentKind, Scene, SceneConfig};

fn target(range_m: f64, azimuth_rad: f64, range_rate_mps: f64) -> RadarTarget {
    RadarTarget { range_m, azimuth_rad, range_rate_mps, rcs_dbsm: 10.0, truth_agent_id: None }
}

/// Chains over two seconds of a target closing at 5 m/s, with the range biased by
/// `bias_rate` m/s; the median chain slope.
fn chain_slope(bias_rate: f64) -> f64 {
    let mut chains = Vec::new();
    for k in 0..40 {
        let t = f64::from(k) * 0.05;
        // A second target moving away, and alternating ±0.2 m of range noise.
        let noise = if k % 2 == 0 { 0.2 } else { -0.2 };
        let scan = [
            target(40.0 - 5.0 * t + bias_rate * t + noise, 0.1, -5.0),
            target(20.0 + 2.0 * t + bias_rate * t - noise, -0.4, 2.0),
        ];
        extend_chains(&mut chains, t, &scan);
    }
    assert_eq!(chains.len(), 2, "each target keeps one chain");
    let slopes: Vec<f64> = chains.iter().filter_map(RangeChain::slope).collect();
    median_mad(&slopes).unwrap().0
}

#[test]
fn a_growing_range_bias_is_the_slope_of_range_less_integrated_rate() {
    assert!(chain_slope(0.0).abs() < 0.05, "{}", chain_slope(0.0));
    assert!((chain_slope(0.5) - 0.5).abs() < 0.05, "{}", chain_slope(0.5));
    assert!((chain_slope(-0.5) + 0.5).abs() < 0.05, "{}", chain_slope(-0.5));
}

#[test]
fn a_camera_box_is_measured_against_the_radar_target_it_shows() {
    let camera = CameraConfig::default();
    let radar_forward = 2.2;
    // A target 30 m ahead of the radar, slightly left.
    let (range, az): (f64, f64) = (30.0, 0.05);
    let (x, y) = (range * az.cos() + radar_forward - camera.mount_forward_m, range * az.sin());
    let (cx, cy) = (f64::from(camera.width_px) / 2.0, f64::from(camera.height_px) / 2.0);
    let u = cx - camera.focal_px * y / x;
    let bottom = cy + camera.focal_px * camera.mount_height_m / x;
    let shown = |shift: f64| CameraBox {
        class: AgentKind::Vehicle,
        left_px: u - 30.0 + shift,
        top_px: bottom - 40.0,
        right_px: u + 30.0 + shift,
        bottom_px: bottom,
        occlusion: 0.0,
        truth_agent_id: None,
    };
    for shift in [0.0, 25.0, -40.0] {
        let offsets = camera_radar_offsets(&camera, radar_forward, &[(range, az)], &[shown(shift)]);
        assert_eq!(offsets.len(), 1);
        assert!((offsets[0] - shift).abs() < 1e-6, "{offsets:?} for {shift}");
    }
    // A box standing at another distance (its bottom elsewhere) does not show the target.
    let mut far = shown(0.0);
    far.bottom_px = cy + (bottom - cy) / 2.0;
    assert!(camera_radar_offsets(&camera, radar_forward, &[(range, az)], &[far]).is_empty());
}

/// GPS residuals at 10 Hz for `secs`: white noise of 0.5 m, a slope of `drift` m/s on
/// both axes, and a 6 m multipath step from `step_from` to `step_to` seconds.
fn gps_residuals(secs: f64, drift: f64, step_from: f64, step_to: f64) -> VecDeque<(f64, [f64; 2])> {
    let mut rng = waypoint_sim::rng::SimRng::new(7);
    (0..(secs * 10.0) as usize)
        .map(|i| {
            let t = i as f64 / 10.0;
            let step = if (step_from..step_to).contains(&t) { 6.0 } else { 0.0 };
            (t, [drift * t + step + rng.gauss(0.5), drift * t - step + rng.gauss(0.5)])
        })
        .collect()
}

#[test]
fn a_multipath_step_does_not_read_as_a_gps_drift() {
    let t = |s: Option<[f64; 2]>| s.map(|[a, b]| a.hypot(b)).unwrap();
    // Still: a small slope in standard errors, with or without a step in the window.
    assert!(t(stepwise_slope(&gps_residuals(4.65, 0.0, 99.0, 99.0))) < 4.0);
    assert!(t(stepwise_slope(&gps_residuals(4.65, 0.0, 2.0, 3.5))) < 4.0);
    // A plain least-squares fit takes the step for a slope.
    let plain = gps_residuals(4.65, 0.0, 2.0, 99.0);
    let n = plain.len() as f64;
    let mt = plain.iter().map(|s| s.0).sum::<f64>() / n;
    let mx = plain.iter().map(|s| s.1[0]).sum::<f64>() / n;
    let sxy: f64 = plain.iter().map(|s| (s.0 - mt) * (s.1[0] - mx)).sum();
    let sxx: f64 = plain.iter().map(|s| (s.0 - mt).powi(2)).sum();
    assert!(sxy / sxx > 1.0, "{}", sxy / sxx);
    assert!(t(stepwise_slope(&plain)) < 4.0);
    // Drifting at 1 m/s: far beyond, through a step too.
    assert!(t(stepwise_slope(&gps_residuals(4.65, 1.0, 99.0, 99.0))) > 8.0);
    assert!(t(stepwise_slope(&gps_residuals(4.65, 1.0, 2.0, 3.5))) > 6.0);
}

#[test]
fn box_edges_moving_smoothly_have_no_second_difference() {
    // Two road users: one sliding left at a steady 12 px a frame, one growing as it nears.
    let frame = |k: f64| {
        vec![
            [500.0 - 12.0 * k, 300.0, 560.0 - 12.0 * k, 340.0],
            [800.0, 300.0 - 2.0 * k, 900.0 + 4.0 * k, 380.0 + 2.0 * k],
        ]
    };
    let d = edge_second_differences(&frame(0.0), &frame(1.0), &frame(2.0));
    assert_eq!(d.len(), 8, "each box followed back two frames");
    assert!(d.iter().all(|x| x.abs() < 1e-9), "{d:?}");
    // One box jolted by 10 px; a box with nothing near it before is not followed.
    let mut last = frame(2.0);
    last[0][0] += 10.0;
    last.push([100.0, 100.0, 120.0, 140.0]);
    let d = edge_second_differences(&frame(0.0), &frame(1.0), &last);
    assert_eq!(d.len(), 8);
    assert!((d[0] - 10.0).abs() < 1e-9, "{d:?}");
}

/// Alarm onsets of one sensor while a scene with one fault runs to `end_secs`.
fn alarms(seed: u64, sensor: Sensor, kind: FaultKind, start_secs: f64, end_secs: f64) -> Vec<(f64, &'static str)> {
    let fault = FaultSpec { sensor, kind, start_secs: Some(start_secs), duration_secs: 5.0, magnitude: None };
    let mut scene = Scene::new(SceneConfig { seed, faults: vec![fault], ..SceneConfig::default() }).unwrap();
    let mut monitor = HealthMonitor::new();
    let i = Sensor::ALL.iter().position(|s| *s == sensor).unwrap();
    let (mut out, mut was) = (Vec::new(), false);
    while scene.t_secs() < end_secs {
        let frame = scene.tick();
        let h = monitor.update(&frame, [true; 5])[i];
        if h.alarm && !was && frame.t_secs > 30.0 {
            out.push((frame.t_secs, h.cause));
        }
        was = h.alarm;
    }
    out
}

#[test]
fn noise_bursts_alarm_in_a_simulated_scene() {
    for (sensor, cause) in [(Sensor::Lidar, "surface_noise"), (Sensor::Camera, "box_roughness")] {
        let onsets = alarms(2, sensor, FaultKind::NoiseBurst, 100.0, 106.0);
        assert!(onsets.iter().all(|(t, _)| *t >= 100.0), "false alarm before the fault: {onsets:?}");
        assert!(onsets.iter().any(|(_, c)| *c == cause), "{sensor:?}: {onsets:?}");
    }
}

#[test]
fn gps_drift_alarms_in_a_simulated_scene() {
    let onsets = alarms(2, Sensor::Gps, FaultKind::Drift, 100.0, 107.0);
    assert!(onsets.iter().all(|(t, _)| *t >= 100.0), "false alarm before the fault: {onsets:?}");
    assert!(onsets.iter().any(|(t, cause)| *t <= 106.0 && *cause == "fix_drift"), "{onsets:?}");
}

#[test]
fn radar_range_drift_alarms_in_a_simulated_scene() {
    let onsets = alarms(2, Sensor::Radar, FaultKind::Drift, 100.0, 107.0);
    assert!(onsets.iter().all(|(t, _)| *t >= 100.0), "false alarm before the fault: {onsets:?}");
    assert!(onsets.iter().any(|(t, cause)| *t <= 106.0 && *cause == "range_drift"), "{onsets:?}");
}
