//! Streaming detector throughput on one channel.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use waypoint_models::anomaly::{Detector, DetectorConfig};

fn bench(c: &mut Criterion) {
    let mut rng = waypoint_sim::rng::SimRng::new(1);
    let xs: Vec<f64> = (0..100_000).map(|i| (i as f64 * 0.01).sin() + rng.gauss(0.1)).collect();
    let mut g = c.benchmark_group("anomaly_detector");
    g.throughput(Throughput::Elements(xs.len() as u64));
    g.bench_function("one_channel_100k_samples", |b| {
        b.iter(|| {
            let mut d = Detector::new(DetectorConfig::default());
            let mut acc = 0.0;
            for x in &xs {
                acc += d.update(*x);
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
