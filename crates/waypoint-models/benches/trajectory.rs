//! The served trajectory model, each shipped version in the same run: one agent from its history
//! alone, and one round of a 40-agent scene (every agent with the others as its neighbours; and
//! the same declared noisy, as the live stack's tracks are); and the road model on 40 simulated road users with their others, class and scene time.
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use waypoint_models::trajectory::model::TrajectoryModel;
use waypoint_models::trajectory::road::{sim_windows, RoadClass};
use waypoint_models::trajectory::road_model::RoadModel;
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
        let mut inputs = vec![history, neighbours];
        group.bench_with_input(BenchmarkId::new("round_of_40_with_neighbours", version), &inputs, |b, i| {
            b.iter(|| black_box(model.infer(black_box(i)).expect("infer")))
        });
        // As the live stack sends its tracks: declared noisy, so each history is smoothed first.
        inputs.push(Tensor::new("history_sigma", vec![40, 1], TensorData::F32(vec![0.3; 40])).expect("sigma"));
        group.bench_with_input(BenchmarkId::new("round_of_40_tracks_smoothed", version), &inputs, |b, i| {
            b.iter(|| black_box(model.infer(black_box(i)).expect("infer")))
        });
    }
    // The road model: 40 windows of a simulated scene, each with its own others (NaN-padded),
    // class and scene time, in one request.
    let windows: Vec<_> = sim_windows(5, 60.0).into_iter().take(40).collect();
    let n = windows.len();
    let m = windows.iter().map(|w| w.others.len()).max().unwrap_or(0).max(1);
    let history: Vec<f32> = windows.iter().flat_map(|w| w.obs.iter().flatten().copied()).collect();
    let mut others = Vec::with_capacity(n * m * 4);
    for w in &windows {
        others.extend(w.others.iter().flatten());
        others.extend(std::iter::repeat_n(f32::NAN, (m - w.others.len()) * 4));
    }
    let class: Vec<f32> = windows.iter().map(|w| if w.class == RoadClass::Cyclist { 2.0 } else { 0.0 }).collect();
    let time: Vec<f32> = windows.iter().map(|w| w.t_secs as f32).collect();
    let inputs = [
        Tensor::new("history", vec![n, 8, 2], TensorData::F32(history)).expect("history"),
        Tensor::new("neighbours", vec![n, m, 4], TensorData::F32(others)).expect("neighbours"),
        Tensor::new("agent_class", vec![n, 1], TensorData::F32(class)).expect("class"),
        Tensor::new("scene_time", vec![n, 1], TensorData::F32(time)).expect("time"),
    ];
    // Version 1 (lane following alone) and 2 (each future corrected by the learned network).
    for version in ["1", "2"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/trajectory_road").join(version);
        let mut road = RoadModel::load(&dir).expect("road model");
        group.bench_with_input(BenchmarkId::new("road_round_of_40_with_others", version), &inputs, |b, i| {
            b.iter(|| black_box(road.infer(black_box(i)).expect("infer")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
