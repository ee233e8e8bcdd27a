//! Integration tests of the simulator: determinism, sensor geometry, faults, replay.

use waypoint_sim::fault::{FaultKind, FaultSpec, Sensor};
use waypoint_sim::frame::{AgentTruth, Frame};
use waypoint_sim::geometry::{OrientedBox, Vec2};
use waypoint_sim::map::ClutterPart;
use waypoint_sim::{AgentKind, Scene, SceneConfig};

fn scene(seed: u64) -> Scene {
    Scene::new(SceneConfig { seed, ..SceneConfig::default() }).unwrap()
}

fn run(scene: &mut Scene, ticks: usize) -> Vec<Frame> {
    (0..ticks).map(|_| scene.tick()).collect()
}

fn bbox(a: &AgentTruth) -> OrientedBox {
    OrientedBox {
        center: Vec2::new(a.x_m, a.y_m),
        z_bottom_m: 0.0,
        length_m: a.length_m,
        width_m: a.width_m,
        height_m: a.height_m,
        yaw_rad: a.yaw_rad,
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

mod determinism {
    use super::*;

    #[test]
    fn same_seed_gives_identical_bytes_and_other_seeds_differ() {
        let a = serde_json::to_vec(&run(&mut scene(7), 40)).unwrap();
        let b = serde_json::to_vec(&run(&mut scene(7), 40)).unwrap();
        let c = serde_json::to_vec(&run(&mut scene(8), 40)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn snapshot_of_a_seeded_scene() {
        let mut s = scene(42);
        let frames = run(&mut s, 30);
        let last = frames.last().unwrap();
        let summary = serde_json::json!({
            "t_secs": round(last.t_secs),
            "agents": last.truth.agents.iter().map(|a| serde_json::json!({
                "id": a.id, "kind": a.kind, "x_m": round(a.x_m), "y_m": round(a.y_m),
                "yaw_rad": round(a.yaw_rad), "speed_mps": round(a.vx_mps.hypot(a.vy_mps)),
            })).collect::<Vec<_>>(),
            "ego": [round(last.truth.ego.x_m), round(last.truth.ego.y_m)],
            "counts": frames.iter().map(|f| [f.lidar.len(), f.radar.len(), f.camera.len(), f.imu.len(), f.gps.len()]).fold([0; 5], |acc, c| [acc[0] + c[0], acc[1] + c[1], acc[2] + c[2], acc[3] + c[3], acc[4] + c[4]]),
            "lidar_points": last.lidar.first().map(|l| l.points.len()),
            "first_points": last.lidar.first().map(|l| l.points.iter().take(3).map(|p| p.map(|v| round(f64::from(v)))).collect::<Vec<_>>()),
        });
        insta::assert_json_snapshot!(summary);
    }

    #[test]
    fn sensors_fire_at_their_rates() {
        let frames = run(&mut scene(1), 30);
        let count = |f: fn(&Frame) -> usize| frames.iter().map(f).sum::<usize>();
        // 3 s of data: 10 Hz lidar and gps, 20 Hz radar, 15 Hz camera, 100 Hz imu.
        assert_eq!(count(|f| f.lidar.len()), 30);
        assert_eq!(count(|f| f.gps.len()), 30);
        assert_eq!(count(|f| f.radar.len()), 60);
        assert!((44..=46).contains(&count(|f| f.camera.len())));
        assert_eq!(count(|f| f.imu.len()), 300);
    }
}

mod geometry {
    use super::*;

    #[test]
    fn every_lidar_return_lies_on_a_surface() {
        let mut s = scene(3);
        let map = s.map().clone();
        assert!(!map.clutter.is_empty(), "the scene has street clutter");
        let (solid, porous): (Vec<&ClutterPart>, Vec<&ClutterPart>) =
            map.clutter.iter().partition(|c| c.density_per_m.is_infinite());
        let mut in_foliage = 0;
        let noise = s.config().sensors.lidar.range_noise_m;
        let mut checked = 0;
        for _ in 0..20 {
            let f = s.tick();
            for sweep in &f.lidar {
                assert!((sweep.t_secs - f.truth.t_secs).abs() < 1e-6, "sweep taken at the tick end");
                // A road user's surface is that of its body parts, inside its bounding box.
                let boxes: Vec<OrientedBox> = f
                    .truth
                    .agents
                    .iter()
                    .flat_map(|a| waypoint_sim::sensors::lidar::body_parts(a.kind, &bbox(a)))
                    .chain(map.obstacles.iter().copied())
                    .chain(solid.iter().map(|c| c.bbox))
                    .collect();
                let p0 = &sweep.world_from_sensor;
                for p in &sweep.points {
                    let local = Vec2::new(f64::from(p[0]), f64::from(p[1]));
                    let w = Vec2::new(p0.x_m, p0.y_m) + local.rotate(p0.yaw_rad);
                    let z = p0.z_m + f64::from(p[2]);
                    let d_ground = z.abs();
                    let d_box = boxes.iter().map(|b| b.surface_distance([w.x, w.y, z])).fold(f64::INFINITY, f64::min);
                    // A porous part (foliage, a fence) returns from anywhere inside it.
                    let d_porous = porous
                        .iter()
                        .map(|c| {
                            let b = c.bbox;
                            let inside = (w - b.center).rotate(-b.yaw_rad);
                            if inside.x.abs() <= b.length_m / 2.0
                                && inside.y.abs() <= b.width_m / 2.0
                                && z >= b.z_bottom_m
                                && z <= b.z_bottom_m + b.height_m
                            {
                                0.0
                            } else {
                                b.surface_distance([w.x, w.y, z])
                            }
                        })
                        .fold(f64::INFINITY, f64::min);
                    if d_porous == 0.0 && d_box.min(d_ground) > 6.0 * noise {
                        in_foliage += 1;
                    }
                    let d = d_ground.min(d_box).min(d_porous);
                    assert!(d < 6.0 * noise, "point {p:?} is {d} m from every surface");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000, "only {checked} points checked");
        assert!(in_foliage > 1000, "only {in_foliage} returns from inside foliage");
    }

    #[test]
    fn radar_range_and_range_rate_match_truth() {
        let mut s = scene(4);
        let cfg = s.config().sensors.radar.clone();
        let mut checked = 0;
        for _ in 0..40 {
            let f = s.tick();
            let ego = f.truth.ego;
            // The radar's own velocity: the ego's plus the swing of the bumper in a turn.
            let side = Vec2::new(-ego.yaw_rad.sin(), ego.yaw_rad.cos());
            let ego_v = Vec2::new(ego.vx_mps, ego.vy_mps) + side.scale(ego.yaw_rate_rps * cfg.mount_forward_m);
            for scan in f.radar.iter().filter(|r| (r.t_secs - f.truth.t_secs).abs() < 1e-6) {
                let mount = Vec2::new(scan.world_from_sensor.x_m, scan.world_from_sensor.y_m);
                for t in &scan.targets {
                    let Some(id) = t.truth_agent_id else { continue };
                    let a = f.truth.agents.iter().find(|a| a.id == id).unwrap();
                    let rel = Vec2::new(a.x_m, a.y_m) - mount;
                    let dir = rel.scale(1.0 / rel.norm());
                    // Radial projection of the relative velocity.
                    let expected_rate = (Vec2::new(a.vx_mps, a.vy_mps) - ego_v).dot(dir);
                    assert!(
                        (t.range_rate_mps - expected_rate).abs() < 6.0 * cfg.range_rate_noise_mps,
                        "{} vs {}",
                        t.range_rate_mps,
                        expected_rate
                    );
                    assert!((t.range_m - rel.norm()).abs() < 6.0 * cfg.range_noise_m);
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} targets checked");
    }

    #[test]
    fn camera_boxes_contain_the_projected_centre() {
        let mut s = scene(5);
        let cfg = s.config().sensors.camera.clone();
        let mut checked = 0;
        for _ in 0..60 {
            let f = s.tick();
            let ego = f.truth.ego;
            for frame in f.camera.iter().filter(|c| (c.t_secs - f.truth.t_secs).abs() < 1e-6) {
                for b in &frame.boxes {
                    let a = f.truth.agents.iter().find(|a| Some(a.id) == b.truth_agent_id).unwrap();
                    assert_eq!(b.class, a.kind);
                    // Independent pinhole projection: camera 1.5 m ahead of the ego centre,
                    // 1.6 m up, looking along the ego heading; u right, v down.
                    let cam = Vec2::new(ego.x_m, ego.y_m) + Vec2::from_angle(ego.yaw_rad).scale(cfg.mount_forward_m);
                    let rel = (Vec2::new(a.x_m, a.y_m) - cam).rotate(-ego.yaw_rad);
                    let u = f64::from(cfg.width_px) / 2.0 - cfg.focal_px * rel.y / rel.x;
                    let v =
                        f64::from(cfg.height_px) / 2.0 - cfg.focal_px * (a.height_m / 2.0 - cfg.mount_height_m) / rel.x;
                    if u < 0.0 || v < 0.0 || u > f64::from(cfg.width_px) || v > f64::from(cfg.height_px) {
                        continue;
                    }
                    let tol = 6.0 * cfg.box_noise_px;
                    assert!(b.left_px - tol <= u && u <= b.right_px + tol, "u {u} outside {b:?}");
                    assert!(b.top_px - tol <= v && v <= b.bottom_px + tol, "v {v} outside {b:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} boxes checked");
    }
}

mod faults {
    use super::*;

    #[test]
    fn dropout_silences_the_sensor_for_its_duration_and_is_in_the_truth() {
        let mut s = scene(6);
        run(&mut s, 5);
        let rec = s
            .inject_fault(FaultSpec {
                sensor: Sensor::Gps,
                kind: FaultKind::Dropout,
                start_secs: None,
                duration_secs: 1.0,
                magnitude: None,
            })
            .unwrap();
        let during = run(&mut s, 10);
        let fixes: Vec<f64> = during.iter().flat_map(|f| f.gps.iter().map(|g| g.t_secs)).collect();
        assert!(fixes.iter().all(|t| !rec.active_at(*t)), "gps data during dropout {rec:?}: {fixes:?}");
        assert!(fixes.len() <= 1, "at most the fix at the fault's end: {fixes:?}");
        assert!(during.iter().all(|f| !f.imu.is_empty() && !f.lidar.is_empty()), "other sensors unaffected");
        assert!(during.iter().all(|f| f.truth.faults.iter().any(|x| x.id == rec.id)));
        let after = run(&mut s, 3);
        assert!(after.iter().skip(1).all(|f| !f.gps.is_empty()), "gps resumes");
        assert!(after.iter().skip(1).all(|f| f.truth.faults.is_empty()));
        assert!((rec.end_secs - rec.start_secs - 1.0).abs() < 1e-9);
    }

    #[test]
    fn stuck_repeats_and_latency_delays() {
        let mut s = scene(6);
        run(&mut s, 3);
        s.inject_fault(FaultSpec {
            sensor: Sensor::Lidar,
            kind: FaultKind::Stuck,
            start_secs: None,
            duration_secs: 0.5,
            magnitude: None,
        })
        .unwrap();
        let frames = run(&mut s, 4);
        let first = &frames[0].lidar[0].points;
        assert!(frames.iter().all(|f| &f.lidar[0].points == first));
        s.inject_fault(FaultSpec {
            sensor: Sensor::Imu,
            kind: FaultKind::Latency,
            start_secs: None,
            duration_secs: 2.0,
            magnitude: Some(0.3),
        })
        .unwrap();
        let f = run(&mut s, 5);
        // Everything measured from the fault's start arrives 0.3 s later.
        assert!(f[..3].iter().all(|f| f.imu.is_empty()));
        assert!(f[3..].iter().all(|f| f.imu.len() == 10));
        let late = f.iter().flat_map(|f| f.imu.iter().map(move |i| f.t_secs - i.t_secs)).fold(0.0, f64::max);
        assert!(late > 0.25, "samples should arrive ~0.3 s late, got {late}");
    }

    #[test]
    fn drift_and_noise_change_gps_error() {
        let error = |kind: Option<FaultKind>| {
            let mut s = scene(9);
            if let Some(kind) = kind {
                s.inject_fault(FaultSpec {
                    sensor: Sensor::Gps,
                    kind,
                    start_secs: None,
                    duration_secs: 100.0,
                    magnitude: None,
                })
                .unwrap();
            }
            let frames = run(&mut s, 50);
            frames
                .iter()
                .flat_map(|f| f.gps.iter().map(move |g| (g.x_m - f.truth.ego.x_m).hypot(g.y_m - f.truth.ego.y_m)))
                .sum::<f64>()
                / 50.0
        };
        let clean = error(None);
        assert!(error(Some(FaultKind::Drift)) > clean + 1.0);
        assert!(error(Some(FaultKind::NoiseBurst)) > 3.0 * clean);
    }

    #[test]
    fn bad_fault_specs_are_refused() {
        let mut s = scene(1);
        let bad = FaultSpec {
            sensor: Sensor::Gps,
            kind: FaultKind::Drift,
            start_secs: None,
            duration_secs: f64::NAN,
            magnitude: None,
        };
        assert!(s.inject_fault(bad).is_err());
        assert!(s.inject_fault(FaultSpec { duration_secs: 1.0, magnitude: Some(-1.0), ..bad }).is_err());
    }

    #[test]
    fn scheduled_faults_are_bounded_in_number_and_lead() {
        use waypoint_sim::scene::{MAX_FAULT_LEAD_SECS, MAX_KEPT_FAULTS, MAX_SCHEDULED_FAULTS};
        let mut s = scene(1);
        let spec = |start: f64, duration: f64| FaultSpec {
            sensor: Sensor::Gps,
            kind: FaultKind::Drift,
            start_secs: Some(start),
            duration_secs: duration,
            magnitude: None,
        };
        let far = s.inject_fault(spec(MAX_FAULT_LEAD_SECS + 1.0, 1.0)).unwrap_err().to_string();
        assert!(far.contains("at most"), "{far}");
        for k in 0..MAX_SCHEDULED_FAULTS {
            s.inject_fault(spec(100.0 + k as f64, 1.0)).unwrap();
        }
        let full = s.inject_fault(spec(10.0, 1.0)).unwrap_err().to_string();
        assert!(full.contains("active or pending"), "{full}");
        s.clear_faults();
        // Short faults that end at once, injected far more often than the bound: the records stay
        // bounded.
        for _ in 0..(3 * MAX_KEPT_FAULTS) {
            s.inject_fault(spec(s.t_secs(), 0.001)).unwrap();
            s.tick();
        }
        assert!(s.faults().len() <= MAX_KEPT_FAULTS, "{} records", s.faults().len());
    }
}

mod agents {
    use super::*;

    #[test]
    fn agents_can_be_added_removed_and_cleared() {
        let mut s = scene(2);
        let n = s.agents().len();
        assert_eq!(n, 12);
        let id = s.add_agent(AgentKind::Cyclist).unwrap();
        assert_eq!(s.tick().truth.agents.len(), n + 1);
        // The truth now (a paused scene's view) follows at once, without a tick.
        let t = s.t_secs();
        let now = s.truth_now();
        assert_eq!((now.t_secs, now.agents.len()), (t, n + 1));
        s.remove_agent(id).unwrap();
        let now = s.truth_now();
        assert_eq!(now.agents.len(), n);
        assert!(!now.agents.iter().any(|a| a.id == id));
        assert_eq!(s.t_secs(), t, "truth_now does not advance the scene");
        assert!(s.remove_agent(id).is_err());
        s.clear();
        assert!(s.tick().truth.agents.is_empty());
    }

    #[test]
    fn vehicles_never_overlap_over_two_minutes() {
        let mut s = scene(11);
        for _ in 0..1200 {
            let f = s.tick();
            let vehicles: Vec<_> = f
                .truth
                .agents
                .iter()
                .chain(std::iter::once(&f.truth.ego))
                .filter(|a| a.kind == AgentKind::Vehicle)
                .collect();
            for (i, a) in vehicles.iter().enumerate() {
                for b in &vehicles[i + 1..] {
                    assert!(!bbox(a).overlaps(&bbox(b)), "vehicles {} and {} overlap at t={}", a.id, b.id, f.t_secs);
                }
            }
        }
    }

    #[test]
    fn pedestrians_stay_on_sidewalks_and_crosswalks() {
        let mut s = scene(12);
        for _ in 0..600 {
            let f = s.tick();
            for p in f.truth.agents.iter().filter(|a| a.kind == AgentKind::Pedestrian) {
                let on_sidewalk = p.x_m.abs().min(p.y_m.abs()) >= 3.9;
                let on_crosswalk = (p.x_m.abs() - 5.5).abs() < 0.5 || (p.y_m.abs() - 5.5).abs() < 0.5;
                assert!(on_sidewalk || on_crosswalk, "pedestrian {} at ({}, {})", p.id, p.x_m, p.y_m);
            }
        }
    }

    #[test]
    fn replayed_tracks_drive_agents() {
        let rows = waypoint_sim::replay::parse_tracks("0 1 0 0\n10 1 1 0\n20 1 2 0\n30 1 3 0\n").unwrap();
        let tracks = waypoint_sim::replay::tracks_from_rows(&rows, waypoint_sim::replay::ETH_UCY_SECS_PER_FRAME_ID);
        let mut s = scene(1);
        s.replay_tracks(tracks, Vec2::new(10.0, 20.0));
        let f = s.tick();
        assert_eq!(f.truth.agents.len(), 1);
        let a = f.truth.agents[0];
        assert!((a.x_m - 10.25).abs() < 1e-6 && (a.y_m - 20.0).abs() < 1e-9 && (a.vx_mps - 2.5).abs() < 1e-6);
        run(&mut s, 12);
        assert!(s.agents().is_empty(), "agent leaves when its track ends");
    }
}

mod parking {
    use super::*;

    #[test]
    fn parked_vehicles_stand_still_beside_the_arms_and_leave_the_rest_of_the_scene_as_it_was() {
        let config = |parked| SceneConfig { seed: 11, parked, ..SceneConfig::default() };
        let with: Vec<Frame> = run(&mut Scene::new(config(15)).unwrap(), 100);
        let without: Vec<Frame> = run(&mut Scene::new(config(0)).unwrap(), 100);
        let first = &with[0].truth.agents;
        let parked: Vec<&AgentTruth> = first.iter().filter(|a| a.x_m.abs() > 7.5 && a.y_m.abs() > 32.0).collect();
        assert_eq!(parked.len(), 15);
        for (fw, fo) in with.iter().zip(&without) {
            for p in &parked {
                let now = fw.truth.agents.iter().find(|a| a.id == p.id).expect("a parked vehicle stays in the scene");
                assert_eq!(now.kind, AgentKind::Vehicle);
                assert_eq!(
                    (now.x_m, now.y_m, now.yaw_rad, now.vx_mps, now.vy_mps),
                    (p.x_m, p.y_m, p.yaw_rad, 0.0, 0.0)
                );
            }
            // Everyone else, and the ego, move as in the scene without parked vehicles.
            let moving: Vec<&AgentTruth> =
                fw.truth.agents.iter().filter(|a| !parked.iter().any(|p| p.id == a.id)).collect();
            assert_eq!(moving.len(), fo.truth.agents.len());
            for (a, b) in moving.iter().zip(&fo.truth.agents) {
                assert_eq!((a.id, a.x_m, a.y_m), (b.id, b.x_m, b.y_m));
            }
            assert_eq!((fw.truth.ego.x_m, fw.truth.ego.y_m), (fo.truth.ego.x_m, fo.truth.ego.y_m));
        }
        // More than there are spaces: every space taken, no more.
        let full = Scene::new(config(1000)).unwrap().tick();
        let n = full.truth.agents.iter().filter(|a| a.x_m.abs() > 7.5 && a.y_m.abs() > 32.0).count();
        assert!((20..100).contains(&n), "{n} parked");
    }
}

mod fleet {
    use super::*;
    use waypoint_sim::Fleet;

    /// A mixed fleet gives vehicles, moving and parked, bodies from small cars to vans;
    /// pedestrians, and the scene without the option, are untouched (cyclists share the lanes,
    /// so where they find room depends on the vehicles' lengths).
    #[test]
    fn a_mixed_fleet_varies_the_vehicles_bodies_and_leaves_pedestrians_as_they_were() {
        let config = |fleet| SceneConfig { seed: 12, vehicles: 12, parked: 30, fleet, ..SceneConfig::default() };
        let mixed = Scene::new(config(Fleet::Mixed)).unwrap().tick();
        let sedans = Scene::new(config(Fleet::Sedans)).unwrap().tick();
        let default =
            Scene::new(SceneConfig { seed: 12, vehicles: 12, parked: 30, ..SceneConfig::default() }).unwrap().tick();
        assert_eq!(format!("{sedans:?}"), format!("{default:?}"));
        let bodies = |f: &Frame| -> Vec<(f64, f64)> {
            f.truth.agents.iter().filter(|a| a.kind == AgentKind::Vehicle).map(|a| (a.length_m, a.height_m)).collect()
        };
        let (m, s) = (bodies(&mixed), bodies(&sedans));
        assert!(m.len() >= 20 && s.len() >= 20, "{} and {} vehicles", m.len(), s.len());
        assert!(s.iter().all(|(l, h)| (4.1..5.0).contains(l) && (1.48..1.64).contains(h)), "{s:?}");
        assert!(m.iter().any(|(l, _)| *l < 4.1), "a small car: {m:?}");
        assert!(m.iter().any(|(_, h)| *h > 1.9), "a van: {m:?}");
        assert!(m.iter().all(|(l, h)| (3.6..=5.6).contains(l) && (1.4..=2.5).contains(h)), "{m:?}");
        let people = |f: &Frame| -> Vec<(u32, f64, f64, f64)> {
            f.truth
                .agents
                .iter()
                .filter(|a| a.kind == AgentKind::Pedestrian)
                .map(|a| (a.id, a.x_m, a.y_m, a.height_m))
                .collect()
        };
        assert_eq!(people(&mixed), people(&sedans));
    }
}
