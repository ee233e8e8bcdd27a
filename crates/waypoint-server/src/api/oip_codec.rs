//! Open Inference Protocol request and response bodies: JSON, and the binary tensor data
//! extension (a JSON header of `Inference-Header-Content-Length` bytes followed by raw
//! little-endian tensors). Pure functions, fuzzed by property tests.

use serde::Deserialize;
use serde_json::{Map, Value};
use waypoint_models::{DataType, Tensor, TensorData};

/// Most elements one request may carry in all its tensors.
pub const MAX_ELEMENTS: usize = 64 << 20;

/// A requested output.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    pub binary: bool,
}

/// A decoded inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// Empty means all outputs.
    pub outputs: Vec<RequestedOutput>,
    /// `parameters.binary_data_output`: outputs not listed default to binary.
    pub binary_output: bool,
}

#[derive(Deserialize)]
struct JsonRequest {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<JsonInput>,
    #[serde(default)]
    outputs: Option<Vec<JsonOutput>>,
}

#[derive(Deserialize)]
struct JsonInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct JsonOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

fn flatten(v: &Value, out: &mut Vec<Value>, budget: usize) -> Result<(), String> {
    match v {
        Value::Array(a) => {
            for x in a {
                flatten(x, out, budget)?;
            }
        }
        other => {
            if out.len() >= budget {
                return Err("too many elements".into());
            }
            out.push(other.clone());
        }
    }
    Ok(())
}

fn json_data(name: &str, dt: DataType, data: &Value, n: usize) -> Result<TensorData, String> {
    let mut flat = Vec::with_capacity(n.min(1 << 20));
    flatten(data, &mut flat, n.saturating_add(1))?;
    if flat.len() != n {
        return Err(format!("input {name:?}: shape needs {n} elements, data has {}", flat.len()));
    }
    let bad = |i: usize| format!("input {name:?}: element {i} is not a valid {}", dt.as_str());
    macro_rules! conv {
        ($variant:ident, $f:expr) => {
            TensorData::$variant(
                flat.iter().enumerate().map(|(i, v)| $f(v).ok_or_else(|| bad(i))).collect::<Result<_, _>>()?,
            )
        };
    }
    Ok(match dt {
        DataType::Bool => conv!(Bool, |v: &Value| v.as_bool()),
        DataType::U8 => conv!(U8, |v: &Value| v.as_u64().and_then(|x| u8::try_from(x).ok())),
        DataType::I32 => conv!(I32, |v: &Value| v.as_i64().and_then(|x| i32::try_from(x).ok())),
        DataType::I64 => conv!(I64, |v: &Value| v.as_i64()),
        DataType::F32 => conv!(F32, |v: &Value| v.as_f64().map(|x| x as f32)),
        DataType::F64 => conv!(F64, |v: &Value| v.as_f64()),
    })
}

fn param_bool(p: &Option<Map<String, Value>>, key: &str) -> bool {
    p.as_ref().and_then(|m| m.get(key)).and_then(Value::as_bool).unwrap_or(false)
}

/// Decodes a request body. `header_len` is the `Inference-Header-Content-Length` header, if any.
pub fn parse_infer(body: &[u8], header_len: Option<usize>) -> Result<InferRequest, String> {
    let json_len = header_len.unwrap_or(body.len());
    if json_len > body.len() {
        return Err(format!("Inference-Header-Content-Length {json_len} exceeds the body's {} bytes", body.len()));
    }
    let (head, mut binary) = body.split_at(json_len);
    let req: JsonRequest = serde_json::from_slice(head).map_err(|e| format!("malformed inference request: {e}"))?;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    let mut total = 0usize;
    for input in &req.inputs {
        let dt = DataType::parse(&input.datatype)
            .ok_or_else(|| format!("input {:?}: unsupported datatype {:?}", input.name, input.datatype))?;
        if input.shape.iter().any(|d| *d < 0) {
            return Err(format!("input {:?}: negative dimension in shape {:?}", input.name, input.shape));
        }
        let shape: Vec<usize> = input.shape.iter().map(|d| *d as usize).collect();
        let n = shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .filter(|n| *n <= MAX_ELEMENTS)
            .ok_or_else(|| format!("input {:?}: shape {:?} is too large", input.name, input.shape))?;
        total = total.saturating_add(n);
        if total > MAX_ELEMENTS {
            return Err("request carries too many elements".into());
        }
        let binary_size = input.parameters.as_ref().and_then(|p| p.get("binary_data_size")).and_then(Value::as_u64);
        let data = match (binary_size, &input.data) {
            (Some(size), _) => {
                let size = size as usize;
                if size > binary.len() {
                    return Err(format!(
                        "input {:?}: binary_data_size {size} but only {} bytes remain in the body",
                        input.name,
                        binary.len()
                    ));
                }
                if size != n * dt.size_bytes() {
                    return Err(format!(
                        "input {:?}: binary_data_size {size} does not match shape {:?} of {}",
                        input.name,
                        input.shape,
                        dt.as_str()
                    ));
                }
                let (chunk, rest) = binary.split_at(size);
                binary = rest;
                TensorData::from_le_bytes(dt, chunk).map_err(|e| e.to_string())?
            }
            (None, Some(data)) => json_data(&input.name, dt, data, n)?,
            (None, None) => return Err(format!("input {:?} has neither data nor binary_data_size", input.name)),
        };
        inputs.push(Tensor::new(input.name.clone(), shape, data).map_err(|e| e.to_string())?);
    }
    if !binary.is_empty() {
        return Err(format!("{} bytes of binary data were not claimed by any input", binary.len()));
    }
    let binary_output = param_bool(&req.parameters, "binary_data_output");
    let outputs = req
        .outputs
        .unwrap_or_default()
        .into_iter()
        .map(|o| RequestedOutput {
            binary: o
                .parameters
                .as_ref()
                .and_then(|p| p.get("binary_data"))
                .and_then(Value::as_bool)
                .unwrap_or(binary_output),
            name: o.name,
        })
        .collect();
    let id = match req.id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    Ok(InferRequest { id, inputs, outputs, binary_output })
}

fn json_values(d: &TensorData) -> Value {
    match d {
        TensorData::Bool(v) => Value::from(v.clone()),
        TensorData::U8(v) => Value::from(v.clone()),
        TensorData::I32(v) => Value::from(v.clone()),
        TensorData::I64(v) => Value::from(v.clone()),
        TensorData::F32(v) => Value::Array(
            v.iter().map(|x| if x.is_finite() { Value::from(f64::from(*x)) } else { Value::Null }).collect(),
        ),
        TensorData::F64(v) => {
            Value::Array(v.iter().map(|x| if x.is_finite() { Value::from(*x) } else { Value::Null }).collect())
        }
    }
}

/// Encodes a response. Returns the body and, when binary outputs follow the JSON, the JSON
/// header's length for `Inference-Header-Content-Length`.
pub fn encode_response(
    model: &str,
    version: u64,
    id: Option<&str>,
    outputs: &[(Tensor, bool)],
) -> (Vec<u8>, Option<usize>) {
    let mut binary = Vec::new();
    let outs: Vec<Value> = outputs
        .iter()
        .map(|(t, as_binary)| {
            let mut o = serde_json::json!({
                "name": t.name,
                "datatype": t.data.datatype().as_str(),
                "shape": t.shape,
            });
            if *as_binary {
                let bytes = t.data.to_le_bytes();
                o["parameters"] = serde_json::json!({ "binary_data_size": bytes.len() });
                binary.extend_from_slice(&bytes);
            } else {
                o["data"] = json_values(&t.data);
            }
            o
        })
        .collect();
    let mut resp = serde_json::json!({
        "model_name": model,
        "model_version": version.to_string(),
        "outputs": outs,
    });
    if let Some(id) = id {
        resp["id"] = Value::from(id);
    }
    let mut body = serde_json::to_vec(&resp).unwrap_or_default();
    if outputs.iter().any(|(_, b)| *b) {
        let json_len = body.len();
        body.extend_from_slice(&binary);
        (body, Some(json_len))
    } else {
        (body, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binary_body(values: &[f32]) -> (Vec<u8>, usize) {
        let header = serde_json::json!({
            "id": "r1",
            "inputs": [{"name": "x", "shape": [values.len()], "datatype": "FP32", "parameters": {"binary_data_size": values.len() * 4}}],
            "parameters": {"binary_data_output": true}
        });
        let mut body = serde_json::to_vec(&header).unwrap();
        let n = body.len();
        for v in values {
            body.extend_from_slice(&v.to_le_bytes());
        }
        (body, n)
    }

    #[test]
    fn parses_json_and_binary() {
        let j =
            br#"{"id": 5, "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]}]}"#;
        let r = parse_infer(j, None).unwrap();
        assert_eq!(r.id.as_deref(), Some("5"));
        assert_eq!(r.inputs[0].data, TensorData::F32(vec![1.0, 2.0, 3.0, 4.5]));
        let (body, n) = binary_body(&[1.0, -2.0]);
        let r = parse_infer(&body, Some(n)).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::F32(vec![1.0, -2.0]));
        assert!(r.binary_output);
        // Truncated binary body, and extra bytes.
        assert!(parse_infer(&body[..body.len() - 1], Some(n)).unwrap_err().contains("remain"));
        let mut extra = body.clone();
        extra.push(0);
        assert!(parse_infer(&extra, Some(n)).unwrap_err().contains("not claimed"));
        assert!(parse_infer(&body, Some(body.len() + 1)).is_err());
        let wrong = br#"{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}"#;
        assert!(parse_infer(wrong, None).unwrap_err().contains("needs 3"));
        let bad_type = br#"{"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1.5]}]}"#;
        assert!(parse_infer(bad_type, None).is_err());
        let huge = br#"{"inputs": [{"name": "x", "shape": [4294967296, 4294967296], "datatype": "FP32", "data": []}]}"#;
        assert!(parse_infer(huge, None).unwrap_err().contains("too large"));
    }

    #[test]
    fn encodes_binary_outputs_after_the_json() {
        let t = Tensor::new("y", vec![2], TensorData::F32(vec![1.0, 2.0])).unwrap();
        let (body, n) = encode_response("m", 3, Some("a"), &[(t.clone(), true)]);
        let n = n.unwrap();
        let head: Value = serde_json::from_slice(&body[..n]).unwrap();
        assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert_eq!(&body[n..], &t.data.to_le_bytes()[..]);
        let (body, n) = encode_response("m", 3, None, &[(t, false)]);
        assert!(n.is_none());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["outputs"][0]["data"], serde_json::json!([1.0, 2.0]));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Arbitrary bytes with an arbitrary header length never panic.
        #[test]
        fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512), len in proptest::option::of(0usize..600)) {
            let _ = parse_infer(&body, len);
        }

        /// A valid binary request, cut or corrupted anywhere, is either parsed or refused.
        #[test]
        fn corrupted_binary_requests_are_refused_cleanly(values in proptest::collection::vec(any::<f32>(), 0..64), cut in 0usize..2000, flip in 0usize..2000, byte in any::<u8>()) {
            let (mut body, n) = binary_body(&values);
            let flip = flip % body.len();
            body[flip] = byte;
            let cut = cut.min(body.len());
            let _ = parse_infer(&body[..cut], Some(n));
            let (body, n) = binary_body(&values);
            let r = parse_infer(&body, Some(n)).unwrap();
            prop_assert_eq!(r.inputs[0].data.len(), values.len());
        }
    }
}
