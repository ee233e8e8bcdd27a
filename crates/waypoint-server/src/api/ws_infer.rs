//! Inference over the WebSocket: `infer` and `batch` messages, run through the same engine as
//! OIP requests.

use futures_util::future::join_all;
use waypoint_models::{DataType, Tensor, TensorData};
use waypoint_protocol::{BatchItem, Bulk, Codec, ErrorBody, ErrorCode, InferRequest, InferResult, WireTensor};

use crate::lifecycle::routing;
use crate::serving::error::AppError;
use crate::serving::inference;
use crate::state::AppState;

fn error_body(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody { code, message: message.into() }
}

/// Converts a wire tensor to a model tensor, checking its datatype, shape and data length.
pub fn from_wire(t: &WireTensor) -> Result<Tensor, ErrorBody> {
    let dt = DataType::parse(&t.datatype).ok_or_else(|| {
        error_body(ErrorCode::BadInput, format!("input {:?}: unsupported datatype {:?}", t.name, t.datatype))
    })?;
    let shape: Vec<usize> = t.shape.iter().map(|d| usize::try_from(*d).unwrap_or(usize::MAX)).collect();
    let n = shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .filter(|n| *n <= crate::api::oip_codec::MAX_ELEMENTS)
        .ok_or_else(|| {
            error_body(ErrorCode::BadInput, format!("input {:?}: shape {:?} is too large", t.name, t.shape))
        })?;
    let data = match &t.data {
        Bulk::Bytes(b) => {
            TensorData::from_le_bytes(dt, b).map_err(|e| error_body(ErrorCode::BadInput, e.to_string()))?
        }
        Bulk::Numbers(v) => numbers(dt, v).ok_or_else(|| {
            error_body(ErrorCode::BadInput, format!("input {:?}: values do not fit {}", t.name, dt.as_str()))
        })?,
        Bulk::F32(v) => TensorData::F32(v.clone()),
        Bulk::I16(_) => return Err(error_body(ErrorCode::BadInput, "i16 data is not a tensor datatype")),
    };
    if data.len() != n {
        return Err(error_body(
            ErrorCode::BadInput,
            format!("input {:?}: shape {:?} needs {n} elements, data has {}", t.name, t.shape, data.len()),
        ));
    }
    Tensor::new(t.name.clone(), shape, data).map_err(|e| error_body(ErrorCode::BadInput, e.to_string()))
}

fn numbers(dt: DataType, v: &[f64]) -> Option<TensorData> {
    let int = |x: &f64| (x.fract() == 0.0).then_some(*x);
    Some(match dt {
        DataType::F32 => TensorData::F32(v.iter().map(|x| *x as f32).collect()),
        DataType::F64 => TensorData::F64(v.to_vec()),
        DataType::I32 => TensorData::I32(
            v.iter().map(|x| int(x).filter(|x| x.abs() <= 2.147e9).map(|x| x as i32)).collect::<Option<_>>()?,
        ),
        DataType::I64 => TensorData::I64(v.iter().map(|x| int(x).map(|x| x as i64)).collect::<Option<_>>()?),
        DataType::U8 => TensorData::U8(
            v.iter().map(|x| int(x).filter(|x| (0.0..=255.0).contains(x)).map(|x| x as u8)).collect::<Option<_>>()?,
        ),
        DataType::Bool => TensorData::Bool(v.iter().map(|x| *x != 0.0).collect()),
    })
}

/// Converts a model output for the wire.
pub fn to_wire(t: &Tensor, codec: Codec) -> WireTensor {
    let data = match codec {
        Codec::MsgPack => Bulk::Bytes(t.data.to_le_bytes()),
        Codec::Json => Bulk::Numbers(match &t.data {
            TensorData::Bool(v) => v.iter().map(|b| f64::from(u8::from(*b))).collect(),
            TensorData::U8(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::I32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::I64(v) => v.iter().map(|x| *x as f64).collect(),
            TensorData::F32(v) => v.iter().map(|x| if x.is_finite() { f64::from(*x) } else { 0.0 }).collect(),
            TensorData::F64(v) => v.iter().map(|x| if x.is_finite() { *x } else { 0.0 }).collect(),
        }),
    };
    WireTensor {
        name: t.name.clone(),
        datatype: t.data.datatype().as_str().into(),
        shape: t.shape.iter().map(|d| *d as u64).collect(),
        data,
    }
}

fn code_of(e: &AppError) -> ErrorCode {
    match e {
        AppError::BadRequest(_) => ErrorCode::BadInput,
        AppError::NotFound(_) => ErrorCode::NotFound,
        AppError::TooLarge(_) => ErrorCode::TooLarge,
        AppError::Unavailable(_) => ErrorCode::Overloaded,
        AppError::Timeout(_) => ErrorCode::Timeout,
        AppError::Internal(_) => ErrorCode::Internal,
    }
}

/// Runs one request.
pub async fn run(state: &AppState, req: &InferRequest, codec: Codec, client: &str) -> Result<InferResult, ErrorBody> {
    let inputs = req.inputs.iter().map(from_wire).collect::<Result<Vec<_>, _>>()?;
    let to_body = |e: AppError| error_body(code_of(&e), e.to_string());
    let (loaded, shadow) = routing::resolve(&state.registry, &state.router, &req.model, req.version.as_deref(), client)
        .map_err(to_body)?;
    routing::shadow_copy(shadow, &inputs);
    let out = inference::infer_on(&loaded, inputs).await.map_err(to_body)?;
    if let Some(names) = &req.outputs {
        if let Some(missing) = names.iter().find(|n| !out.outputs.iter().any(|t| &t.name == *n)) {
            return Err(error_body(ErrorCode::BadInput, format!("model {:?} has no output {missing:?}", req.model)));
        }
    }
    let outputs = out
        .outputs
        .iter()
        .filter(|t| req.outputs.as_ref().is_none_or(|names| names.contains(&t.name)))
        .map(|t| to_wire(t, codec))
        .collect();
    Ok(InferResult { model: loaded.model.clone(), version: loaded.version.to_string(), outputs })
}

/// Runs every request of a batch concurrently (so the engine can batch them together) and
/// returns their results in order.
pub async fn run_batch(state: &AppState, requests: &[InferRequest], codec: Codec, client: &str) -> Vec<BatchItem> {
    join_all(requests.iter().map(|r| async move {
        match run(state, r, codec, client).await {
            Ok(result) => BatchItem { result: Some(result), error: None },
            Err(e) => BatchItem { result: None, error: Some(e) },
        }
    }))
    .await
}
