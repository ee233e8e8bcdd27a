//! Lidar detection per sweep: ground removal, clustering, box fitting and classification with
//! the shipped classifier, on a simulated HDL-64E sweep (64 × 2048) of the default scene, and —
//! when `WAYPOINT_KITTI_BIN` names a KITTI `velodyne/*.bin` file — on that real sweep.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use waypoint_models::detection::model::DetectionModel;
use waypoint_sim::sensors::lidar::LidarConfig;
use waypoint_sim::{Scene, SceneConfig};

fn bench(c: &mut Criterion) {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/detection/3");
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
