//! The served trajectory model, each shipped version in the same run: one agent from its history
//! alone, and one round of a 40-agent scene (every agent with the others as its neighbours).
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use waypoint_models::trajectory::model::TrajectoryModel;
use waypoint_models::{Model, Tensor, TensorData};

/// 40 agents walking in a 30 × 30 m square, 0.4 s apart, and every other agent as neighbours.
fn scene(n: usize) -> (Tensor, Tensor) {
    let at = |a: usize, k: usize| {
        let (x0, y0) = ((a * 7 % 30) as f32, (a * 13 % 30) as f32);
        let heading = a as f32 * 0.7;
        [x0 + heading.cos() * 0.5 * k as f32, y0 + heading.sin() * 0.5 * k as f32]
    };
    let history: Vec<f32> = (0..n).flat_map(|a| (0..8).flat_map(move |k| at(a, k))).collect();
    let mut neighbours = Vec::with_capacity(n * (n - 1) * 4);
    for a in 0..n {
        for b in (0..n).filter(|b| *b != a) {
            let (p, q) = (at(b, 6), at(b, 7));
            neighbours.extend([p[0], p[1], q[0], q[1]]);
        }
    }
    (
        Tensor::new("history", vec![n, 8, 2], TensorData::F32(history)).expect("history"),
        Tensor::new("neighbours", vec![n, n - 1, 4], TensorData::F32(neighbours)).expect("neighbours"),
    )
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/trajectory");
    let mut group = c.benchmark_group("trajectory_served");
    for version in ["2", "3"] {
        let mut model = TrajectoryModel::load(&root.join(version)).expect("shipped version");
        let (one, _) = scene(2);
        let one = Tensor::new("history", vec![1, 8, 2], TensorData::F32(one.as_f32().expect("f32")[..16].to_vec()))
            .expect("one");
        group.bench_with_input(BenchmarkId::new("one_agent_history_only", version), &one, |b, h| {
            b.iter(|| black_box(model.infer(black_box(std::slice::from_ref(h))).expect("infer")))
        });
        let (history, neighbours) = scene(40);
        let inputs = [history, neighbours];
        group.bench_with_input(BenchmarkId::new("round_of_40_with_neighbours", version), &inputs, |b, i| {
            b.iter(|| black_box(model.infer(black_box(i)).expect("infer")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
