//! Unit tests of the tracker.

use std::f64::consts::FRAC_PI_2;

use super::*;

#[test]
fn hungarian_finds_the_optimum() {
    let cost = vec![vec![4.0, 1.0, 3.0], vec![2.0, 0.0, 5.0], vec![3.0, 2.0, 2.0]];
    // Optimum: 0->1 (1), 1->0 (2), 2->2 (2) = 5.
    assert_eq!(hungarian(&cost), vec![Some(1), Some(0), Some(2)]);
    let rect = vec![vec![1.0, 9.0, 9.0], vec![9.0, 9.0, 1.0]];
    assert_eq!(hungarian(&rect), vec![Some(0), Some(2)]);
    assert_eq!(hungarian(&[vec![1e9]]), vec![None]);
}

#[test]
fn a_second_piece_of_a_tracked_car_starts_no_track() {
    let mut t = Tracker::new(TrackerConfig::default());
    for k in 0..10 {
        let x = 10.0 + k as f64;
        let mut obs = vec![Observation { x_m: x, y_m: 0.0, class: 0, yaw_rad: None, score: 1.0 }];
        if k >= 5 {
            // From frame 5 the car is seen in two pieces 2 m apart.
            obs.push(Observation { x_m: x + 2.0, y_m: 0.3, class: 0, yaw_rad: None, score: 1.0 });
        }
        // A pedestrian walking 2 m beside the car keeps a track of its own.
        obs.push(Observation { x_m: x, y_m: 2.0, class: 1, yaw_rad: None, score: 1.0 });
        t.step(1.0, &obs);
    }
    let tracks = t.tracks();
    assert_eq!(tracks.iter().filter(|s| s.class == 0).count(), 1, "{tracks:?}");
    assert_eq!(tracks.iter().filter(|s| s.class == 1).count(), 1, "{tracks:?}");
}

#[test]
fn cars_parked_side_by_side_keep_a_track_each_and_a_piece_along_a_car_starts_none() {
    // A row of three cars parked square to the road (boxes along y), 2.7 m apart along x,
    // seen for 3 s; the middle one is first seen a second later.
    let car = |x: f64| Observation { x_m: x, y_m: 8.0, class: 0, yaw_rad: Some(FRAC_PI_2), score: 1.0 };
    let mut t = Tracker::new(TrackerConfig::default());
    for k in 0..30 {
        let mut obs = vec![car(0.0), car(5.4)];
        if k >= 10 {
            obs.push(car(2.7));
        }
        t.step(0.1, &obs);
    }
    let tracks = t.tracks();
    assert_eq!(tracks.len(), 3, "{tracks:?}");
    let mut xs: Vec<f64> = tracks.iter().map(|s| s.x_m).collect();
    xs.sort_by(f64::total_cmp);
    for (x, want) in xs.iter().zip([0.0, 2.7, 5.4]) {
        assert!((x - want).abs() < 0.3, "{xs:?}");
    }
    // The same offset along a car's box is a piece of it: no second track, even when the
    // piece's own box is turned across.
    let mut t = Tracker::new(TrackerConfig::default());
    for k in 0..30 {
        let mut obs = vec![Observation { x_m: 0.0, y_m: 8.0, class: 0, yaw_rad: Some(0.0), score: 1.0 }];
        if k >= 10 {
            obs.push(Observation { x_m: 2.7, y_m: 8.0, class: 0, yaw_rad: Some(FRAC_PI_2), score: 1.0 });
        }
        t.step(0.1, &obs);
    }
    assert_eq!(t.tracks().len(), 1, "{:?}", t.tracks());
}

#[test]
fn a_younger_track_on_the_same_object_is_retired() {
    let mut t = Tracker::new(TrackerConfig::default());
    // Two detections 6 m apart moving alike, then, from frame 5, 0.5 m apart: one object
    // seen twice (a vehicle and its own reflection, a split cluster).
    let mut first_id = None;
    for k in 0..20 {
        let x = 10.0 + k as f64;
        let gap = if k < 5 { 6.0 } else { 0.5 };
        t.step(
            1.0,
            &[
                Observation { x_m: x, y_m: 0.0, class: 0, yaw_rad: None, score: 1.0 },
                Observation { x_m: x + gap, y_m: 0.2, class: 0, yaw_rad: None, score: 1.0 },
            ],
        );
        if k == 4 {
            assert_eq!(t.tracks().len(), 2);
            first_id = t.tracks().iter().map(|s| s.id).min();
        }
    }
    let tracks = t.tracks();
    assert_eq!(tracks.len(), 1, "{tracks:?}");
    assert_eq!(Some(tracks[0].id), first_id, "the older track keeps the object");
}

/// Two walkers on one line, 12 m apart, walking at each other at 1.3 m/s; while they are
/// closer than 0.7 m the lidar sees one cluster between them. Returns the ids of the tracks
/// on the first walker (starting at x = -6 m, walking towards +x) and on the second, 0.6 s
/// before and 1.5 s after they pass (they meet at 4.6 s).
fn walkers_passing(config: TrackerConfig) -> ([u32; 2], [Option<u32>; 2]) {
    let mut t = Tracker::new(config);
    let ped = |x: f64| Observation { x_m: x, y_m: 5.5, class: 1, yaw_rad: None, score: 1.0 };
    let at = |k: usize| (-6.0 + 0.13 * k as f64, 6.0 - 0.13 * k as f64);
    let id_near = |t: &Tracker, x: f64| t.tracks().iter().find(|s| (s.x_m - x).abs() < 0.5).map(|s| s.id);
    let mut before = [0; 2];
    for k in 0..62 {
        let (a, b) = at(k);
        let obs = if (a - b).abs() < 0.7 { vec![ped(0.5 * (a + b))] } else { vec![ped(a), ped(b)] };
        t.step(0.1, &obs);
        if k == 40 {
            before = [id_near(&t, a).unwrap(), id_near(&t, b).unwrap()];
        }
    }
    let (a, b) = at(61);
    (before, [id_near(&t, a), id_near(&t, b)])
}

#[test]
fn walkers_passing_each_other_keep_their_ids() {
    let (before, after) = walkers_passing(TrackerConfig::default());
    assert_eq!(after, before.map(Some));
    // Retiring an established track at the first frame it sits close to another and
    // moves alike loses one walker's id when the merged cluster drags the velocities
    // together.
    let eager = TrackerConfig { duplicate_frames: 1, handover_max_hits: 1000, ..TrackerConfig::default() };
    let (before, after) = walkers_passing(eager);
    assert_ne!(after, before.map(Some), "{before:?} {after:?}");
}

#[test]
fn only_a_confident_detection_starts_a_track_and_any_keeps_one() {
    let mut t = Tracker::new(TrackerConfig::default());
    let obs = |x: f64, y: f64, score: f32| Observation { x_m: x, y_m: y, class: 1, yaw_rad: None, score };
    // A walker seen at 0.95, then at 0.6 (partly hidden); a stray cluster at 0.6 all along.
    for k in 0..20 {
        let walker = obs(0.13 * k as f64, 0.0, if k < 5 { 0.95 } else { 0.6 });
        t.step(0.1, &[walker, obs(5.0, 8.0, 0.6)]);
    }
    let tracks = t.tracks();
    assert_eq!(tracks.len(), 1, "{tracks:?}");
    assert_eq!((tracks[0].hits, tracks[0].misses), (20, 0), "{tracks:?}");
    // With every detection allowed to start a track, the stray cluster has one too.
    let mut t = Tracker::new(TrackerConfig { birth_min_score: 0.0, ..TrackerConfig::default() });
    for _ in 0..3 {
        t.step(0.1, &[obs(5.0, 8.0, 0.6)]);
    }
    assert_eq!(t.tracks().len(), 1);
}

#[test]
fn an_established_track_coasts_through_a_long_occlusion() {
    let run = |config: TrackerConfig| {
        let mut t = Tracker::new(config);
        let ped = |k: usize| Observation { x_m: 0.13 * k as f64, y_m: 5.5, class: 1, yaw_rad: None, score: 1.0 };
        for k in 0..60 {
            t.step(0.1, &[ped(k)]);
        }
        let id = t.tracks()[0].id;
        // Hidden for 1.5 s (behind a parked van), then seen again where it walked to.
        for _ in 60..75 {
            t.step(0.1, &[]);
        }
        for k in 75..80 {
            t.step(0.1, &[ped(k)]);
        }
        (id, t.tracks().iter().map(|s| s.id).collect::<Vec<_>>())
    };
    let (id, ids) = run(TrackerConfig::default());
    assert_eq!(ids, vec![id]);
    // A track with 10 misses' grace dies behind the van; the walker comes back under a new id.
    let (id, ids) =
        run(TrackerConfig { established_max_misses: TrackerConfig::default().max_misses, ..TrackerConfig::default() });
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], id);
}

#[test]
fn a_coasting_track_hands_its_id_to_the_young_track_beside_it() {
    let tracked = |config: TrackerConfig| {
        let mut t = Tracker::new(config);
        let ped = |x: f64, y: f64| Observation { x_m: x, y_m: y, class: 1, yaw_rad: None, score: 1.0 };
        for _ in 0..5 {
            t.step(0.1, &[ped(0.0, 0.0)]);
        }
        let id = t.tracks()[0].id;
        // A stray detection takes the track while the pedestrian, 1.2 m off, starts a
        // young track; then only the pedestrian is seen and the old track misses.
        t.step(0.1, &[ped(0.0, -0.3), ped(0.0, 1.2)]);
        t.step(0.1, &[ped(0.0, 1.2)]);
        (id, t.tracks())
    };
    let (id, tracks) = tracked(TrackerConfig::default());
    assert_eq!(tracks.len(), 1, "{tracks:?}");
    assert_eq!(tracks[0].id, id, "the old id continues on the pedestrian");
    assert!((tracks[0].y_m - 1.2).abs() < 0.2, "{tracks:?}");
    // Without the hand-over the pedestrian goes on under a new id beside the old track.
    let (id, tracks) = tracked(TrackerConfig { handover_radius_m: [0.0; 4], ..TrackerConfig::default() });
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert!(tracks.iter().any(|t| t.id != id && (t.y_m - 1.2).abs() < 0.2), "{tracks:?}");
}

#[test]
fn a_vehicle_track_turns_with_its_box() {
    // A car at 7 m/s drives 10 m east, a quarter circle of radius 12 m, then north; its
    // detections carry the box's yaw (the direction of travel).
    let (speed, radius, dt) = (7.0, 12.0, 0.1);
    let arc = radius * std::f64::consts::FRAC_PI_2;
    let pose = |s: f64| {
        if s < 10.0 {
            (s, 0.0, 0.0)
        } else if s < 10.0 + arc {
            let a = (s - 10.0) / radius;
            (10.0 + radius * a.sin(), radius * (1.0 - a.cos()), a)
        } else {
            (10.0 + radius, radius + s - 10.0 - arc, std::f64::consts::FRAC_PI_2)
        }
    };
    let run = |config: TrackerConfig| {
        let mut t = Tracker::new(config);
        let mut errors = Vec::new();
        for k in 0..60 {
            let s = speed * dt * k as f64;
            let (x, y, yaw) = pose(s);
            t.step(dt, &[Observation { x_m: x, y_m: y, class: 0, yaw_rad: Some(yaw), score: 1.0 }]);
            if k >= 20 {
                // Where the track expects the car a sweep later, against where it will be.
                let car = t.tracks()[0];
                let (nx, ny, _) = pose(s + speed * dt);
                errors.push((car.x_m + dt * car.vx_mps - nx).hypot(car.y_m + dt * car.vy_mps - ny));
            }
        }
        errors.iter().sum::<f64>() / errors.len() as f64
    };
    let with_heading = run(TrackerConfig::default());
    let without = run(TrackerConfig { heading_sigma_mps: f64::INFINITY, ..TrackerConfig::default() });
    assert!(
        with_heading < 0.5 * without,
        "mean prediction error {with_heading:.2} m with the box's yaw, {without:.2} m without"
    );
}

#[test]
fn a_track_prefers_a_detection_of_its_own_class() {
    let mut t = Tracker::new(TrackerConfig::default());
    let obs = |x: f64, y: f64, class: usize| Observation { x_m: x, y_m: y, class, yaw_rad: None, score: 1.0 };
    for k in 0..10 {
        t.step(0.1, &[obs(10.0 + 0.5 * k as f64, 0.0, 0)]);
    }
    let car = t.tracks()[0].id;
    // The car is missed once and taken for a pedestrian once: its track stays a vehicle.
    t.step(0.1, &[obs(15.0, 0.0, 1)]);
    assert_eq!(t.tracks()[0].class, 0, "{:?}", t.tracks());
    // A pedestrian steps out 0.6 m ahead of where the car is expected, the car's own
    // detection lies 1.0 m behind it: the car's track takes the vehicle detection.
    t.step(0.1, &[obs(16.1, 0.0, 1), obs(14.5, 0.0, 0)]);
    let tracks = t.tracks();
    let car_track = tracks.iter().find(|s| s.id == car).unwrap();
    assert_eq!(car_track.observation, Some(1), "{tracks:?}");
    assert_eq!(car_track.class, 0);
}

#[test]
fn a_cyclist_that_stops_stays_a_cyclist() {
    let run = |config: TrackerConfig| {
        let mut t = Tracker::new(config);
        let obs = |x: f64, y: f64, class: usize| Observation { x_m: x, y_m: y, class, yaw_rad: None, score: 1.0 };
        // A cyclist rides at 5 m/s for 3 s, then waits at a crossing seen end-on, where
        // every sweep takes it for a pedestrian; a pedestrian walks at 1.5 m/s beside it.
        for k in 0..80 {
            let x = 5.0 * 0.1 * (k.min(30) as f64);
            t.step(0.1, &[obs(x, 0.0, if k < 30 { 2 } else { 1 }), obs(0.15 * k as f64, 8.0, 1)]);
        }
        let tracks = t.tracks();
        let class_at = |y: f64| tracks.iter().find(|s| (s.y_m - y).abs() < 1.0).map(|s| s.class);
        (class_at(0.0), class_at(8.0))
    };
    assert_eq!(run(TrackerConfig::default()), (Some(2), Some(1)));
    // Without the speed rule the waiting cyclist becomes a pedestrian.
    assert_eq!(
        run(TrackerConfig { pedestrian_max_speed_mps: f64::INFINITY, ..TrackerConfig::default() }),
        (Some(1), Some(1))
    );
}

#[test]
fn keeps_ids_through_a_one_frame_miss() {
    let mut t = Tracker::new(TrackerConfig::default());
    let frame = |k: usize| {
        vec![
            Observation { x_m: 10.0 + k as f64, y_m: 0.0, class: 0, yaw_rad: None, score: 1.0 },
            Observation { x_m: -5.0, y_m: 3.0 + 0.1 * k as f64, class: 1, yaw_rad: None, score: 1.0 },
        ]
    };
    for k in 0..5 {
        t.step(0.1 * 10.0, &frame(k));
    }
    let ids: Vec<u32> = t.tracks().iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 2);
    // Frame 5: the first object is not seen.
    t.step(1.0, &frame(5)[1..]);
    for k in 6..9 {
        t.step(1.0, &frame(k));
    }
    let after: Vec<u32> = t.tracks().iter().map(|s| s.id).collect();
    assert_eq!(after, ids, "ids must survive a one-frame miss");
    let car = t.tracks().into_iter().find(|s| s.class == 0).unwrap();
    assert!((car.vx_mps - 1.0).abs() < 0.2, "{car:?}");
}
