//! The control API under `/api/v1`, for what OIP does not cover: the scene and model
//! configuration. Described by the OpenAPI document at `/api/openapi.json`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use waypoint_protocol::Command;

use crate::error::AppError;
use crate::oip::body_bytes;
use crate::registry::BatchingPatch;
use crate::scene_runner::CommandError;
use crate::AppState;

/// The `/api` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/scene", get(scene))
        .route("/api/v1/scene/commands", post(command))
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/{model}/config", get(model_config).patch(patch_config))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../static/openapi.json"))
}

async fn scene(State(s): State<AppState>) -> Result<Json<Value>, AppError> {
    let last =
        s.scene.last_scene().ok_or_else(|| AppError::Unavailable("the scene has not produced a frame yet".into()))?;
    Ok(Json(serde_json::to_value(last).map_err(|e| AppError::Internal(e.to_string()))?))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, AppError> {
    let body = body_bytes(body)?;
    serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(format!("invalid body: {e}")))
}

async fn command(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, AppError> {
    let cmd: Command = parse_json(body)?;
    match s.scene.command(cmd).await {
        Ok(reply) => Ok(Json(serde_json::to_value(reply).map_err(|e| AppError::Internal(e.to_string()))?)),
        Err(e @ CommandError::Refused(_)) => Err(AppError::BadRequest(e.to_string())),
        Err(e @ CommandError::Busy) => Err(AppError::Unavailable(e.to_string())),
        Err(e @ CommandError::Gone) => Err(AppError::Internal(e.to_string())),
    }
}

async fn models(State(s): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = s
        .registry
        .loaded()
        .into_iter()
        .filter_map(|name| {
            let (config, versions) = s.registry.versions(&name)?;
            Some(json!({"name": name, "versions": versions, "config": *config}))
        })
        .collect();
    Json(json!({ "models": list }))
}

async fn model_config(State(s): State<AppState>, Path(model): Path<String>) -> Result<Json<Value>, AppError> {
    let (config, _) =
        s.registry.versions(&model).ok_or_else(|| AppError::NotFound(format!("model {model:?} is not loaded")))?;
    Ok(Json(serde_json::to_value(&*config).map_err(|e| AppError::Internal(e.to_string()))?))
}

async fn patch_config(
    State(s): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let patch: BatchingPatch = parse_json(body)?;
    let registry = s.registry.clone();
    let config = tokio::task::spawn_blocking(move || registry.reconfigure(&model, &patch))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(Json(serde_json::to_value(&*config).map_err(|e| AppError::Internal(e.to_string()))?))
}
