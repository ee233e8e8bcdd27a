#!/usr/bin/env python3
"""Exports the trajectory TCN's network (features [B, 2, 7] -> raw outputs [B, 48]) from a
Waypoint safetensors weight file to ONNX, for the speed comparison against ONNX Runtime in
docs/BENCHMARKS.md. Needs numpy and onnx.

    python3 scripts/export_trajectory_onnx.py models/trajectory/1/model.safetensors /tmp/tcn.onnx
"""

import json
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", meta
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(meta["shape"])
    return out


def main(src, dst):
    w = read_safetensors(src)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits.append(numpy_helper.from_array(np.array([-1, 14], dtype=np.int64), "flat_in"))
    nodes = [
        helper.make_node("Conv", ["x", "c1.weight", "c1.bias"], ["h1"], kernel_shape=[3]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2.weight", "c2.bias"], ["h2"], kernel_shape=[3]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f2"], axis=1),
        helper.make_node("Reshape", ["x", "flat_in"], ["fx"]),
        helper.make_node("Concat", ["f2", "fx"], ["z"], axis=1),
        helper.make_node("Gemm", ["z", "f1.weight", "f1.bias"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "f2.weight", "f2.bias"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "trajectory_tcn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 48])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
