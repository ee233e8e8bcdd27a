//! Open Inference Protocol v2 (KServe v2 / Triton HTTP) routes.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api::oip_codec::{encode_response, parse_infer};
use crate::lifecycle::routing;
use crate::serving::error::AppError;
use crate::serving::inference;
use crate::state::AppState;

/// Header carrying the JSON part's length in binary-extension bodies.
pub const HEADER_LEN: &str = "inference-header-content-length";

/// Header naming an OIP caller, for sticky routing (split and canary policies).
pub const CLIENT_HEADER: &str = "x-waypoint-client";

/// The `/v2` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata_v))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready_v))
        .route("/v2/models/{model}/config", get(model_config))
        .route("/v2/models/{model}/versions/{version}/config", get(model_config_v))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_v))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/models/{model}/stats", get(model_stats))
        .route("/v2/models/{model}/versions/{version}/stats", get(model_stats_v))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(load))
        .route("/v2/repository/models/{model}/unload", post(unload))
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "waypoint",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_repository", "statistics", "model_configuration"],
    }))
}

fn metadata(state: &AppState, model: &str, version: Option<&str>) -> Result<Json<Value>, AppError> {
    let loaded = state.registry.get(model, version)?;
    let versions = state.registry.versions(model).map(|(_, v)| v).unwrap_or_default();
    let spec =
        |s: &waypoint_models::TensorSpec| json!({"name": s.name, "datatype": s.datatype.as_str(), "shape": s.dims});
    Ok(Json(json!({
        "name": model,
        "versions": versions.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        "platform": match loaded.config.platform {
            crate::serving::repository::Platform::Waypoint => "waypoint",
            crate::serving::repository::Platform::Onnx => "onnxruntime_onnx",
        },
        "inputs": loaded.config.inputs.iter().map(spec).collect::<Vec<_>>(),
        "outputs": loaded.config.outputs.iter().map(spec).collect::<Vec<_>>(),
        "device": loaded.metrics.device(),
    })))
}

async fn model_metadata(State(s): State<AppState>, Path(model): Path<String>) -> Result<Json<Value>, AppError> {
    metadata(&s, &model, None)
}

async fn model_metadata_v(
    State(s): State<AppState>,
    Path((model, v)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    metadata(&s, &model, Some(&v))
}

async fn model_ready(State(s): State<AppState>, Path(model): Path<String>) -> StatusCode {
    if s.registry.get(&model, None).is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn model_ready_v(State(s): State<AppState>, Path((model, v)): Path<(String, String)>) -> StatusCode {
    if s.registry.get(&model, Some(&v)).is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

fn config_json(s: &AppState, model: &str, version: Option<&str>) -> Result<Json<Value>, AppError> {
    let loaded = s.registry.get(model, version)?;
    let mut v = serde_json::to_value(&*loaded.config).map_err(|e| AppError::Internal(e.to_string()))?;
    v["name"] = Value::from(model);
    Ok(Json(v))
}

async fn model_config(State(s): State<AppState>, Path(model): Path<String>) -> Result<Json<Value>, AppError> {
    config_json(&s, &model, None)
}

async fn model_config_v(
    State(s): State<AppState>,
    Path((model, v)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    config_json(&s, &model, Some(&v))
}

async fn infer(
    State(s): State<AppState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    run_infer(s, model, None, headers, body).await
}

async fn infer_v(
    State(s): State<AppState>,
    Path((model, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    run_infer(s, model, Some(v), headers, body).await
}

/// Reads a request body, telling an over-limit body (413) from a broken one (400).
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, AppError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(format!("request body too large: {}", r.body_text()))
        } else {
            AppError::BadRequest(format!("cannot read the request body: {}", r.body_text()))
        }
    })
}

async fn run_infer(
    s: AppState,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body_bytes(body)?;
    let header_len = match headers.get(HEADER_LEN) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse::<usize>().ok())
                .ok_or_else(|| AppError::BadRequest(format!("bad {HEADER_LEN} header")))?,
        ),
        None => None,
    };
    let req = if body.len() > 256 << 10 {
        tokio::task::spawn_blocking(move || parse_infer(&body, header_len))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
    } else {
        parse_infer(&body, header_len)
    };
    let req = req.map_err(AppError::BadRequest)?;
    // Resolve (by the routing policy, unless a version was named) and check requested outputs
    // before running anything.
    // A named caller sticks to its version; a request without a name is a caller of its own.
    let client = match headers.get(CLIENT_HEADER).and_then(|h| h.to_str().ok()).filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => routing::anonymous_key(),
    };
    let (loaded, shadow) = routing::resolve(&s.registry, &s.router, &model, version.as_deref(), &client)?;
    for o in &req.outputs {
        if !loaded.config.outputs.iter().any(|spec| spec.name == o.name) {
            loaded.metrics.bad_request.fetch_add(1, Ordering::Relaxed);
            return Err(AppError::BadRequest(format!("model {model:?} has no output {:?}", o.name)));
        }
    }
    routing::shadow_copy(shadow, &req.inputs);
    let out = inference::infer_on(&loaded, req.inputs).await?;
    let selected: Vec<(waypoint_models::Tensor, bool)> = if req.outputs.is_empty() {
        out.outputs.into_iter().map(|t| (t, req.binary_output)).collect()
    } else {
        req.outputs
            .iter()
            .filter_map(|o| out.outputs.iter().find(|t| t.name == o.name).map(|t| (t.clone(), o.binary)))
            .collect()
    };
    let (bytes, json_len) = encode_response(&model, loaded.version, req.id.as_deref(), &selected);
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    match json_len {
        Some(n) => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            h.insert(HEADER_LEN, HeaderValue::from(n));
        }
        None => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    Ok(resp)
}

fn version_stats(v: &crate::serving::registry::LoadedVersion) -> Value {
    let m = &v.metrics;
    let ns = |h: &crate::metrics::Histogram| json!({"count": h.count()});
    json!({
        "name": v.model,
        "version": v.version.to_string(),
        "last_inference": m.last_inference_ms.load(Ordering::Relaxed),
        "inference_count": m.rows.load(Ordering::Relaxed),
        "execution_count": m.batches.load(Ordering::Relaxed),
        "inference_stats": {
            "success": {"count": m.ok.load(Ordering::Relaxed)},
            "fail": {"count": m.failed.load(Ordering::Relaxed) + m.bad_request.load(Ordering::Relaxed) + m.rejected.load(Ordering::Relaxed)},
            "queue": ns(&m.queue),
            "compute_infer": ns(&m.compute),
        },
        "queue_depth": v.engine.queue_depth(),
    })
}

fn stats(s: &AppState, model: &str, version: Option<&str>) -> Result<Json<Value>, AppError> {
    let loaded = match version {
        Some(v) => vec![s.registry.get(model, Some(v))?],
        None => {
            let (_, versions) = s
                .registry
                .versions(model)
                .ok_or_else(|| AppError::NotFound(format!("model {model:?} is not loaded")))?;
            versions.iter().filter_map(|v| s.registry.get(model, Some(&v.to_string())).ok()).collect()
        }
    };
    Ok(Json(json!({ "model_stats": loaded.iter().map(|v| version_stats(v)).collect::<Vec<_>>() })))
}

async fn all_stats(State(s): State<AppState>) -> Result<Json<Value>, AppError> {
    let mut all = Vec::new();
    for m in s.registry.loaded() {
        if let Ok(Json(v)) = stats(&s, &m, None) {
            if let Some(a) = v["model_stats"].as_array() {
                all.extend(a.iter().cloned());
            }
        }
    }
    Ok(Json(json!({ "model_stats": all })))
}

async fn model_stats(State(s): State<AppState>, Path(model): Path<String>) -> Result<Json<Value>, AppError> {
    stats(&s, &model, None)
}

async fn model_stats_v(
    State(s): State<AppState>,
    Path((model, v)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    stats(&s, &model, Some(&v))
}

async fn repository_index(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body_bytes(body)?;
    let ready_only = if body.is_empty() {
        false
    } else {
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
        v.get("ready").and_then(Value::as_bool).unwrap_or(false)
    };
    let index = s.registry.index(ready_only)?;
    Ok(Json(serde_json::to_value(index).map_err(|e| AppError::Internal(e.to_string()))?))
}

async fn load(
    State(s): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    body_bytes(body)?;
    let registry = s.registry.clone();
    let m = model.clone();
    tokio::task::spawn_blocking(move || registry.load(&m)).await.map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(Json(json!({})))
}

async fn unload(
    State(s): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    body_bytes(body)?;
    s.registry.unload(&model)?;
    Ok(Json(json!({})))
}
