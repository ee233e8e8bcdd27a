//! One full simulator tick (100 ms of scene time, all five sensors) for the default scene,
//! and for the 64-beam HDL-64E lidar preset.

use criterion::{criterion_group, criterion_main, Criterion};
use waypoint_sim::sensors::LidarConfig;
use waypoint_sim::{Scene, SceneConfig};

fn tick(c: &mut Criterion) {
    let mut scene = Scene::new(SceneConfig::default()).expect("default scene");
    // Warm up into a representative state (agents spread over the map).
    for _ in 0..50 {
        scene.tick();
    }
    c.bench_function("sim_tick_default_32x1024", |b| b.iter(|| scene.tick()));

    let mut cfg = SceneConfig::default();
    cfg.sensors.lidar = LidarConfig::hdl64e();
    let mut scene = Scene::new(cfg).expect("hdl64 scene");
    for _ in 0..50 {
        scene.tick();
    }
    c.bench_function("sim_tick_hdl64e_64x2048", |b| b.iter(|| scene.tick()));
}

criterion_group!(benches, tick);
criterion_main!(benches);
