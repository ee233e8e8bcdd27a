//! Writing ONNX models: the protobuf messages of `onnx.proto` that a graph of standard operators
//! needs (model, graph, node, attribute, tensor, value info), encoded by hand, and a builder that
//! names each node's output. Used to export the native networks so that ONNX Runtime (and its
//! CUDA execution provider) can serve the same weights.

/// ONNX element types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32 = 1,
    I64 = 7,
}

/// The IR version and the default-domain opset the exported graphs declare.
pub const IR_VERSION: u64 = 8;
pub const OPSET: u64 = 17;

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

fn put_int(buf: &mut Vec<u8>, field: u32, v: i64) {
    key(buf, field, 0);
    // Negative int64 values are ten-byte two's-complement varints in protobuf.
    varint(buf, v as u64);
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(buf, field, 2);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_f32(buf: &mut Vec<u8>, field: u32, v: f32) {
    key(buf, field, 5);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A node attribute.
#[derive(Debug, Clone)]
pub enum Attr {
    Int(&'static str, i64),
    Float(&'static str, f32),
    Ints(&'static str, Vec<i64>),
}

impl Attr {
    fn encode(&self) -> Vec<u8> {
        // AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7).
        let mut b = Vec::new();
        match self {
            Attr::Int(name, v) => {
                put_bytes(&mut b, 1, name.as_bytes());
                put_int(&mut b, 3, *v);
                put_int(&mut b, 20, 2);
            }
            Attr::Float(name, v) => {
                put_bytes(&mut b, 1, name.as_bytes());
                put_f32(&mut b, 2, *v);
                put_int(&mut b, 20, 1);
            }
            Attr::Ints(name, vs) => {
                put_bytes(&mut b, 1, name.as_bytes());
                for v in vs {
                    put_int(&mut b, 8, *v);
                }
                put_int(&mut b, 20, 7);
            }
        }
        b
    }
}

/// A dimension of a graph input or output: fixed, or named (symbolic, e.g. the batch).
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

fn value_info(name: &str, elem: Elem, dims: &[Dim]) -> Vec<u8> {
    // TensorShapeProto.Dimension: dim_value 1, dim_param 2.
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(v) => put_int(&mut dim, 1, *v),
            Dim::Named(p) => put_bytes(&mut dim, 2, p.as_bytes()),
        }
        put_bytes(&mut shape, 1, &dim);
    }
    // TypeProto.Tensor: elem_type 1, shape 2; TypeProto: tensor_type 1; ValueInfoProto: name 1,
    // type 2.
    let mut tensor = Vec::new();
    put_int(&mut tensor, 1, elem as i64);
    put_bytes(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    put_bytes(&mut ty, 1, &tensor);
    let mut vi = Vec::new();
    put_bytes(&mut vi, 1, name.as_bytes());
    put_bytes(&mut vi, 2, &ty);
    vi
}

fn tensor(name: &str, elem: Elem, dims: &[i64], raw: &[u8]) -> Vec<u8> {
    // TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian).
    let mut b = Vec::new();
    for d in dims {
        put_int(&mut b, 1, *d);
    }
    put_int(&mut b, 2, elem as i64);
    put_bytes(&mut b, 8, name.as_bytes());
    put_bytes(&mut b, 9, raw);
    b
}

/// Builds one graph: every node has one output, named after its operator and a counter.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<Vec<u8>>,
    initializers: Vec<Vec<u8>>,
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
    count: usize,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.count += 1;
        format!("{hint}_{}", self.count)
    }

    /// A graph input.
    pub fn input(&mut self, name: &str, elem: Elem, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Declares `name` (some node's output) a graph output.
    pub fn output(&mut self, name: &str, elem: Elem, dims: &[Dim]) {
        self.outputs.push(value_info(name, elem, dims));
    }

    /// An FP32 constant (an initializer); `dims` empty for a scalar.
    pub fn f32s(&mut self, hint: &str, dims: &[i64], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, data.len());
        let name = self.fresh(hint);
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(tensor(&name, Elem::F32, dims, &raw));
        name
    }

    /// A one-dimensional INT64 constant.
    pub fn i64s(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(tensor(&name, Elem::I64, &[data.len() as i64], &raw));
        name
    }

    /// A node of the default domain; returns its output's name (`out`, or a fresh one).
    pub fn node_named(&mut self, op: &str, inputs: &[&str], attrs: &[Attr], out: Option<&str>) -> String {
        let output = match out {
            Some(o) => o.to_string(),
            None => self.fresh(&op.to_lowercase()),
        };
        // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
        let mut b = Vec::new();
        for i in inputs {
            put_bytes(&mut b, 1, i.as_bytes());
        }
        put_bytes(&mut b, 2, output.as_bytes());
        put_bytes(&mut b, 3, format!("{output}_node").as_bytes());
        put_bytes(&mut b, 4, op.as_bytes());
        for a in attrs {
            put_bytes(&mut b, 5, &a.encode());
        }
        self.nodes.push(b);
        output
    }

    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.node_named(op, inputs, attrs, None)
    }

    /// `data[..., start..end, ...]` along `axis`.
    pub fn slice(&mut self, data: &str, axis: i64, start: i64, end: i64) -> String {
        let s = self.i64s("start", &[start]);
        let e = self.i64s("end", &[end]);
        let a = self.i64s("axis", &[axis]);
        self.node("Slice", &[data, &s, &e, &a], &[])
    }

    /// The serialised ModelProto.
    pub fn finish(self, graph_name: &str, doc: &str) -> Vec<u8> {
        // GraphProto: node 1, name 2, initializer 5, doc_string 10, input 11, output 12.
        let mut g = Vec::new();
        for n in &self.nodes {
            put_bytes(&mut g, 1, n);
        }
        put_bytes(&mut g, 2, graph_name.as_bytes());
        for t in &self.initializers {
            put_bytes(&mut g, 5, t);
        }
        put_bytes(&mut g, 10, doc.as_bytes());
        for i in &self.inputs {
            put_bytes(&mut g, 11, i);
        }
        for o in &self.outputs {
            put_bytes(&mut g, 12, o);
        }
        // ModelProto: ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8
        // (OperatorSetIdProto: domain 1, version 2).
        let mut m = Vec::new();
        put_int(&mut m, 1, IR_VERSION as i64);
        put_bytes(&mut m, 2, b"waypoint");
        put_bytes(&mut m, 3, env!("CARGO_PKG_VERSION").as_bytes());
        put_bytes(&mut m, 7, &g);
        let mut opset = Vec::new();
        put_bytes(&mut opset, 1, b"");
        put_int(&mut opset, 2, OPSET as i64);
        put_bytes(&mut m, 8, &opset);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_protobuf_encoding() {
        let mut b = Vec::new();
        varint(&mut b, 300);
        assert_eq!(b, [0xAC, 0x02]);
        let mut b = Vec::new();
        put_int(&mut b, 1, -1);
        // Key 0x08, then ten bytes of two's complement.
        assert_eq!(b.len(), 11);
        assert_eq!(b[0], 0x08);
        assert_eq!(b[10], 0x01);
    }

    #[test]
    fn a_graph_serialises_its_parts_in_order() {
        let mut g = GraphBuilder::new();
        let x = g.input("x", Elem::F32, &[Dim::Named("N"), Dim::Fixed(2)]);
        let c = g.f32s("two", &[], &[2.0]);
        let y = g.node_named("Mul", &[&x, &c], &[], Some("y"));
        g.output(&y, Elem::F32, &[Dim::Named("N"), Dim::Fixed(2)]);
        let bytes = g.finish("g", "doc");
        // ir_version first, then the graph (field 7) and the opset (field 8).
        assert_eq!(&bytes[..2], &[0x08, IR_VERSION as u8]);
        let text = String::from_utf8_lossy(&bytes);
        for needle in ["waypoint", "Mul", "two_1", "y_node"] {
            assert!(text.contains(needle), "{needle} missing");
        }
    }
}
