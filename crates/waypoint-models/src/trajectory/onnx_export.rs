//! The served trajectory model as one ONNX graph: `history` FP32 `[N, 8, 2]` to `trajectory`
//! and `sigma` FP32 `[N, 12, 2]`, the same function as [`super::model::TrajectoryModel`] — the
//! agent frame (heading from the last step, or the last four, or none), the scaled
//! displacements, the two convolutions and two dense layers, and the decoding (constant
//! velocity plus the correction, back to the world; clamped log sigmas) — in standard operators
//! of opset 17, so that ONNX Runtime serves the same weights on the CPU or a GPU.

use std::path::Path;

use super::fast_tcn::FastTcn;
use super::tcn::{Arch, CH, HIDDEN, IN1, OUT, STEPS_IN, VEL_SCALE_M};
use super::{OBS_STEPS, PRED_STEPS};
use crate::onnx::{Attr, Dim, Elem, GraphBuilder};
use crate::ModelError;

/// The network of a version directory (its `model.safetensors`) as a serialised ONNX model.
pub fn export(version_dir: &Path) -> Result<Vec<u8>, ModelError> {
    let net = FastTcn::load(&version_dir.join(super::model::WEIGHTS_FILE))?;
    if net.arch() != Arch::PLAIN {
        return Err(ModelError::BadInput(format!(
            "{}: only networks of one future without neighbours can be exported to ONNX; this one has {} futures{}",
            version_dir.display(),
            net.arch().modes,
            if net.arch().social { " and reads neighbours" } else { "" }
        )));
    }
    Ok(graph(&net))
}

/// The graph of `net`.
pub fn graph(net: &FastTcn) -> Vec<u8> {
    debug_assert_eq!(net.arch(), Arch::PLAIN, "only plain networks have a graph");
    let (obs, pred) = (OBS_STEPS as i64, PRED_STEPS as i64);
    let mut g = GraphBuilder::new();
    let h = g.input("history", Elem::F32, &[Dim::Named("N"), Dim::Fixed(obs), Dim::Fixed(2)]);

    // Agent frame: origin at the last position, heading from the last step when it moved more
    // than 2 cm, else from the last four steps when they moved more than 5 cm, else along x.
    let last = g.slice(&h, 1, obs - 1, obs); // [N, 1, 2]
    let prev1 = g.slice(&h, 1, obs - 2, obs - 1);
    let prev4 = g.slice(&h, 1, obs - 5, obs - 4);
    let d1 = g.node("Sub", &[&last, &prev1], &[]);
    let d4 = g.node("Sub", &[&last, &prev4], &[]);
    let axis2 = g.i64s("axes", &[2]);
    let norm = |g: &mut GraphBuilder, v: &str| {
        let sq = g.node("Mul", &[v, v], &[]);
        let sum = g.node("ReduceSum", &[&sq, &axis2], &[Attr::Int("keepdims", 1)]);
        g.node("Sqrt", &[&sum], &[]) // [N, 1, 1]
    };
    let n1 = norm(&mut g, &d1);
    let n4 = norm(&mut g, &d4);
    let t1 = g.f32s("moved1", &[], &[0.02]);
    let t4 = g.f32s("moved4", &[], &[0.05]);
    let c1 = g.node("Greater", &[&n1, &t1], &[]);
    let c4 = g.node("Greater", &[&n4, &t4], &[]);
    let x_axis = g.f32s("x_axis", &[1, 1, 2], &[1.0, 0.0]);
    let inner = g.node("Where", &[&c4, &d4, &x_axis], &[]);
    let dir = g.node("Where", &[&c1, &d1, &inner], &[]);
    let n = norm(&mut g, &dir);
    let unit = g.node("Div", &[&dir, &n], &[]);
    let cos = g.slice(&unit, 2, 0, 1); // [N, 1, 1]
    let sin = g.slice(&unit, 2, 1, 2);

    // History in the agent frame: x' = cos x + sin y, y' = cos y - sin x.
    let rel = g.node("Sub", &[&h, &last], &[]); // [N, 8, 2]
    let x = g.slice(&rel, 2, 0, 1);
    let y = g.slice(&rel, 2, 1, 2);
    let cx = g.node("Mul", &[&cos, &x], &[]);
    let sy = g.node("Mul", &[&sin, &y], &[]);
    let cy = g.node("Mul", &[&cos, &y], &[]);
    let sx = g.node("Mul", &[&sin, &x], &[]);
    let lx = g.node("Add", &[&cx, &sy], &[]);
    let ly = g.node("Sub", &[&cy, &sx], &[]);
    let local = g.node("Concat", &[&lx, &ly], &[Attr::Int("axis", 2)]); // [N, 8, 2]

    // Features: displacements over the velocity scale, channel-major [N, 2, 7].
    let later = g.slice(&local, 1, 1, obs);
    let earlier = g.slice(&local, 1, 0, obs - 1);
    let disp = g.node("Sub", &[&later, &earlier], &[]); // [N, 7, 2]
    let scale = g.f32s("vel_scale", &[], &[VEL_SCALE_M]);
    let feat = g.node("Div", &[&disp, &scale], &[]);
    let feat_t = g.node("Transpose", &[&feat], &[Attr::Ints("perm", vec![0, 2, 1])]);

    // The network.
    let (ch, hidden, in1, out) = (CH as i64, HIDDEN as i64, IN1 as i64, OUT as i64);
    let w1 = g.f32s("c1_w", &[ch, 2, 3], &net.c1_w);
    let b1 = g.f32s("c1_b", &[ch], &net.c1_b);
    let w2 = g.f32s("c2_w", &[ch, ch, 3], &net.c2_w);
    let b2 = g.f32s("c2_b", &[ch], &net.c2_b);
    let conv1 = g.node("Conv", &[&feat_t, &w1, &b1], &[Attr::Ints("kernel_shape", vec![3])]);
    let h1 = g.node("Relu", &[&conv1], &[]);
    let conv2 = g.node("Conv", &[&h1, &w2, &b2], &[Attr::Ints("kernel_shape", vec![3])]);
    let h2 = g.node("Relu", &[&conv2], &[]);
    let flat = g.node("Flatten", &[&h2], &[Attr::Int("axis", 1)]);
    let feat_flat = g.node("Flatten", &[&feat_t], &[Attr::Int("axis", 1)]);
    let z = g.node("Concat", &[&flat, &feat_flat], &[Attr::Int("axis", 1)]); // [N, IN1]
    let f1w = g.f32s("f1_w", &[hidden, in1], &net.f1_w);
    let f1b = g.f32s("f1_b", &[hidden], &net.f1_b);
    let f2w = g.f32s("f2_w", &[out, hidden], &net.f2_w);
    let f2b = g.f32s("f2_b", &[out], &net.f2_b);
    let dense1 = g.node("Gemm", &[&z, &f1w, &f1b], &[Attr::Int("transB", 1)]);
    let hid = g.node("Relu", &[&dense1], &[]);
    let raw = g.node("Gemm", &[&hid, &f2w, &f2b], &[Attr::Int("transB", 1)]); // [N, OUT]

    // Decoding: positions are k times the last displacement plus the correction.
    let shape = g.i64s("shape", &[-1, pred, 2]);
    let corr_flat = g.slice(&raw, 1, 0, 2 * pred);
    let corr = g.node("Reshape", &[&corr_flat, &shape], &[]);
    let logsig_flat = g.slice(&raw, 1, 2 * pred, 4 * pred);
    let logsig = g.node("Reshape", &[&logsig_flat, &shape], &[]);
    let lo = g.f32s("log_sigma_min", &[], &[super::tcn::LOG_SIGMA_RANGE.0]);
    let hi = g.f32s("log_sigma_max", &[], &[super::tcn::LOG_SIGMA_RANGE.1]);
    let clipped = g.node("Clip", &[&logsig, &lo, &hi], &[]);
    let sigma = g.node_named("Exp", &[&clipped], &[], Some("sigma"));
    let last_feat = g.slice(&feat, 1, STEPS_IN as i64 - 1, STEPS_IN as i64); // [N, 1, 2]
    let v = g.node("Mul", &[&last_feat, &scale], &[]);
    let steps: Vec<f32> = (1..=PRED_STEPS).map(|k| k as f32).collect();
    let ks = g.f32s("steps", &[1, pred, 1], &steps);
    let kv = g.node("Mul", &[&ks, &v], &[]);
    let pos = g.node("Add", &[&kv, &corr], &[]); // [N, 12, 2]

    // Back to the world: x = x0 + cos px - sin py, y = y0 + sin px + cos py.
    let px = g.slice(&pos, 2, 0, 1);
    let py = g.slice(&pos, 2, 1, 2);
    let x0 = g.slice(&last, 2, 0, 1);
    let y0 = g.slice(&last, 2, 1, 2);
    let cpx = g.node("Mul", &[&cos, &px], &[]);
    let spy = g.node("Mul", &[&sin, &py], &[]);
    let spx = g.node("Mul", &[&sin, &px], &[]);
    let cpy = g.node("Mul", &[&cos, &py], &[]);
    let wx0 = g.node("Add", &[&x0, &cpx], &[]);
    let wx = g.node("Sub", &[&wx0, &spy], &[]);
    let wy0 = g.node("Add", &[&y0, &spx], &[]);
    let wy = g.node("Add", &[&wy0, &cpy], &[]);
    let traj = g.node_named("Concat", &[&wx, &wy], &[Attr::Int("axis", 2)], Some("trajectory"));

    let dims = [Dim::Named("N"), Dim::Fixed(pred), Dim::Fixed(2)];
    g.output(&traj, Elem::F32, &dims);
    g.output(&sigma, Elem::F32, &dims);
    g.finish(
        "waypoint_trajectory_tcn",
        "Waypoint trajectory model: history [N, 8, 2] metres, 0.4 s apart, to trajectory [N, 12, 2] \
         and sigma [N, 12, 2] (one sigma along and across the heading, metres)",
    )
}
