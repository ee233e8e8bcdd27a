//! Lidar detection per sweep: ground removal, clustering, box fitting and classification with
//! the shipped classifier, on a simulated HDL-64E sweep (64 × 2048) of the default scene, and —
//! when `WAYPOINT_KITTI_BIN` names a KITTI `velodyne/*.bin` file — on that real sweep. Then the
//! tracker per sweep: on 50 sweeps of that scene's detections, and on 100 objects a sweep.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use waypoint_models::detection::model::DetectionModel;
use waypoint_models::detection::tracker::{Observation, Tracker, TrackerConfig};
use waypoint_sim::sensors::lidar::LidarConfig;
use waypoint_sim::{Scene, SceneConfig};

fn bench(c: &mut Criterion) {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/detection/6");
    let model = DetectionModel::load(std::path::Path::new(shipped)).expect("shipped detection model");
    let mut config = SceneConfig { seed: 5, ..SceneConfig::default() };
    config.sensors.lidar = LidarConfig::hdl64e();
    let mut scene = Scene::new(config).expect("scene");
    let mut sweep = None;
    for _ in 0..30 {
        if let Some(s) = scene.tick().lidar.pop() {
            sweep = Some(s);
        }
    }
    let sweep = sweep.expect("a lidar sweep");
    let mut g = c.benchmark_group("detection");
    g.sample_size(30);
    g.bench_function(format!("sim_hdl64e_sweep_{}_points", sweep.points.len()), |b| {
        b.iter(|| black_box(model.detector.detect(&sweep.points, false)))
    });
    if let Some(path) = std::env::var_os("WAYPOINT_KITTI_BIN") {
        let points = waypoint_sim::replay::read_velodyne(std::path::Path::new(&path)).expect("KITTI velodyne file");
        g.bench_function(format!("kitti_sweep_{}_points", points.len()), |b| {
            b.iter(|| black_box(model.detector.detect(&points, false)))
        });
    }
    g.finish();

    // The tracker over 50 sweeps (5 s) of the scene's detections in the world frame.
    let mut sweeps: Vec<Vec<Observation>> = Vec::new();
    while sweeps.len() < 50 {
        let Some(s) = scene.tick().lidar.pop() else { continue };
        let pose = s.world_from_sensor;
        let (sn, cs) = pose.yaw_rad.sin_cos();
        let obs = model
            .detector
            .detect(&s.points, false)
            .iter()
            .map(|d| Observation {
                x_m: pose.x_m + cs * d.bbox.x_m - sn * d.bbox.y_m,
                y_m: pose.y_m + sn * d.bbox.x_m + cs * d.bbox.y_m,
                class: d.class,
                yaw_rad: Some(d.bbox.yaw_rad + pose.yaw_rad),
                score: d.score,
            })
            .collect();
        sweeps.push(obs);
    }
    let per_sweep = sweeps.iter().map(Vec::len).sum::<usize>() / sweeps.len();
    // 100 objects a sweep: a 10 × 10 grid of pedestrians 4 m apart walking at 1.4 m/s.
    let crowd: Vec<Vec<Observation>> = (0..50)
        .map(|k| {
            (0..100)
                .map(|i| Observation {
                    x_m: 4.0 * (i % 10) as f64 + 0.14 * k as f64,
                    y_m: 4.0 * (i / 10) as f64,
                    class: 1,
                    yaw_rad: None,
                    score: 1.0,
                })
                .collect()
        })
        .collect();
    let mut g = c.benchmark_group("tracker");
    g.sample_size(30);
    for (name, seq) in
        [(format!("50_sweeps_of_{per_sweep}_detections"), &sweeps), ("50_sweeps_of_100_objects".to_string(), &crowd)]
    {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut t = Tracker::new(TrackerConfig::default());
                for obs in seq.iter() {
                    t.step(0.1, obs);
                }
                black_box(t.tracks().len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
