//! The trajectory network served by Waypoint (plain Rust over the trained weights) against the
//! same network exported to ONNX and run by ONNX Runtime, one thread each, batch 1 and 1024.
//!
//! python3 scripts/export_trajectory_onnx.py models/trajectory/1/model.safetensors /tmp/tcn.onnx
//! WAYPOINT_TCN_ONNX=/tmp/tcn.onnx cargo bench -p waypoint-server --bench trajectory_vs_ort

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use waypoint_models::trajectory::tcn::FastTcn;
use waypoint_models::{DataType, Model, Tensor, TensorData, TensorSpec};

fn features(n: usize) -> Vec<[f32; 14]> {
    (0..n)
        .map(|i| {
            std::array::from_fn(|k| if k < 7 { 2.4 + 0.01 * ((i + k) % 5) as f32 } else { 0.02 * ((i * k) % 3) as f32 })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/trajectory/1/model.safetensors");
    let net = FastTcn::load(&root).expect("shipped weights");
    let mut group = c.benchmark_group("trajectory_network");
    for batch in [1usize, 1024] {
        let feats = features(batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("waypoint", batch), &feats, |b, f| {
            b.iter(|| {
                if f.len() == 1 {
                    black_box(net.forward(black_box(&f[0])));
                } else {
                    black_box(net.forward_batch(black_box(f)));
                }
            })
        });
        let onnx = std::env::var("WAYPOINT_TCN_ONNX").ok().map(PathBuf::from);
        let Some(path) = onnx.filter(|p| p.is_file()) else {
            eprintln!("WAYPOINT_TCN_ONNX not set: skipping ONNX Runtime");
            continue;
        };
        let config: waypoint_server::serving::repository::ModelConfig = toml::from_str(
            r#"platform = "onnx"
max_batch_size = 1024
[[inputs]]
name = "x"
datatype = "FP32"
dims = [-1, 2, 7]
[[outputs]]
name = "y"
datatype = "FP32"
dims = [-1, 48]
"#,
        )
        .expect("config");
        let _ = TensorSpec::new("x", DataType::F32, &[-1, 2, 7]);
        let (mut ort, _) =
            waypoint_server::serving::onnx::OnnxModel::load("tcn", &path, &config).expect("onnx runtime");
        let input = Tensor::new("x", vec![batch, 2, 7], TensorData::F32(feats.iter().flatten().copied().collect()))
            .expect("tensor");
        group.bench_with_input(BenchmarkId::new("onnxruntime", batch), &input, |b, x| {
            b.iter(|| black_box(ort.infer(std::slice::from_ref(x)).expect("run")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
