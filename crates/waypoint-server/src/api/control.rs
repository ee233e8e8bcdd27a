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
use std::sync::atomic::Ordering;
use waypoint_protocol::Command;

use crate::api::oip::body_bytes;
use crate::live::scene_runner::CommandError;
use crate::serving::error::AppError;
use crate::serving::registry::BatchingPatch;
use crate::state::AppState;

/// The `/api` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/scene", get(scene))
        .route("/api/v1/scene/commands", post(command))
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/{model}/config", get(model_config).patch(patch_config))
        .route("/api/v1/models/{model}/history", get(history))
        .route("/api/v1/models/{model}/routing", get(get_routing).put(put_routing))
        .route("/api/v1/routing", get(all_routing))
        .route("/api/v1/models/{model}/train", post(train))
        .route("/api/v1/learning", get(learning))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/map", get(map))
        .route("/api/v1/dashboard", get(dashboard))
}

async fn get_routing(State(s): State<AppState>, Path(model): Path<String>) -> Result<Json<Value>, AppError> {
    if s.registry.versions(&model).is_none() {
        return Err(AppError::NotFound(format!("model {model:?} is not loaded")));
    }
    Ok(Json(s.router.describe(&model)))
}

/// Sets a model's routing policy: `{"policy": "newest" | "fixed" | "split" | "shadow" | "canary", ...}`.
async fn put_routing(
    State(s): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let spec: crate::lifecycle::routing::PolicySpec = parse_json(body)?;
    match s.router.set(&model, spec, &s.registry, &s.online) {
        Ok(v) => Ok(Json(v)),
        Err(e @ crate::lifecycle::routing::RoutingError::NotLoaded(_)) => Err(AppError::NotFound(e.to_string())),
        Err(e) => Err(AppError::BadRequest(e.to_string())),
    }
}

/// Starts a continuous-learning round of `trajectory` or `trajectory_road`: `{"epochs": n,
/// "canary": bool}`, all optional. Answers 202 with the round; its progress is at
/// `/api/v1/learning?model=...`.
async fn train(
    State(s): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    use crate::lifecycle::learner::{LEARNED_MODEL, LEARNED_ROAD_MODEL};
    if model != LEARNED_MODEL && model != LEARNED_ROAD_MODEL {
        return Err(AppError::BadRequest(format!(
            "continuous learning trains {LEARNED_MODEL:?} and {LEARNED_ROAD_MODEL:?} only"
        )));
    }
    let learner = s.learner_for(&model).ok_or_else(|| AppError::Unavailable("no learner on this server".into()))?;
    if let Some(c) = s.cluster.as_ref().filter(|c| !c.is_leader()) {
        // The windows it learns from are the scene's, and only the leader runs the scene.
        return Err(AppError::Unavailable(format!(
            "training runs on the cluster's leader ({}); send the request to it",
            c.describe()["leader"].as_str().unwrap_or("none yet")
        )));
    }
    let body = body_bytes(body)?;
    let req: crate::lifecycle::learner::RoundRequest = if body.is_empty() {
        Default::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(format!("invalid body: {e}")))?
    };
    let round = learner.start_round(req).map_err(AppError::Unavailable)?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(serde_json::to_value(round).map_err(|e| AppError::Internal(e.to_string()))?),
    ))
}

/// Which learner `/api/v1/learning` describes.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LearningQuery {
    /// `trajectory` (default) or `trajectory_road`.
    model: Option<String>,
}

async fn learning(
    State(s): State<AppState>,
    query: Result<axum::extract::Query<LearningQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let axum::extract::Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let model = q.model.as_deref().unwrap_or(crate::lifecycle::learner::LEARNED_MODEL);
    let learner = s.learner_for(model).ok_or_else(|| {
        if s.learner.is_none() {
            AppError::Unavailable("no learner on this server".into())
        } else {
            AppError::NotFound(format!("no continuous learner for {model:?}"))
        }
    })?;
    Ok(Json(learner.describe()))
}

/// This replica, the leader and the replicas seen, and whether Redis answers (`"off"` and this
/// replica alone outside a cluster).
async fn cluster(State(s): State<AppState>) -> Json<Value> {
    Json(match &s.cluster {
        Some(c) => c.describe(),
        None => {
            json!({"replica": "standalone", "leader": "standalone", "leading": true, "replicas": [], "redis": "off"})
        }
    })
}

async fn all_routing(State(s): State<AppState>) -> Json<Value> {
    Json(s.router.describe_all())
}

/// What the dashboard needs to start: the server's version and, for the dashboard's own pages
/// only, the chart renderer's licence. A browser marks a request from the server's own page with
/// `Sec-Fetch-Site: same-origin` (on HTTPS and loopback) or with a `Referer` on this host (plain
/// HTTP elsewhere); a request with neither gets no licence.
async fn dashboard(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Json<Value> {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let referer_host = headers
        .get(axum::http::header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""));
    let same_origin =
        headers.get("sec-fetch-site").is_some_and(|v| v == "same-origin") || (host.is_some() && referer_host == host);
    Json(json!({
        "server": concat!("waypoint ", env!("CARGO_PKG_VERSION")),
        "lcjs_license": s.config.lcjs_license.as_ref().filter(|_| same_origin).map(|k| k.expose()),
        "lcjs_module": s.config.lcjs_module.is_some(),
        "lcjs_license_information": s.config.lcjs_license_information.as_ref().filter(|_| same_origin),
    }))
}

/// The static map of the scene (roads, sidewalks, crosswalks, buildings and poles), metres.
async fn map() -> Json<Value> {
    use waypoint_sim::map::{self, Map};
    let m = Map::intersection();
    let obstacles: Vec<Value> = m
        .obstacles
        .iter()
        .map(|o| {
            json!({"x_m": o.center.x, "y_m": o.center.y, "length_m": o.length_m, "width_m": o.width_m,
                   "height_m": o.height_m, "yaw_rad": o.yaw_rad})
        })
        .collect();
    let crosswalks: Vec<Value> = m
        .walk_edges
        .iter()
        .filter(|e| e.crosswalk)
        .map(|e| {
            let (a, b) = (m.walk_nodes[e.a].pos, m.walk_nodes[e.b].pos);
            json!([a.x, a.y, b.x, b.y])
        })
        .collect();
    Json(json!({
        "road_half_width_m": map::ROAD_HALF_WIDTH_M,
        "lane_offset_m": map::LANE_OFFSET_M,
        "sidewalk_outer_m": map::SIDEWALK_OUTER_M,
        "arm_length_m": map::ARM_LENGTH_M,
        "stop_line_m": map::STOP_LINE_M,
        "obstacles": obstacles,
        "crosswalks": crosswalks,
    }))
}

/// Serving statistics per model version: request counts, latency percentiles (from the
/// histograms), batch sizes, queue depth; and each model's loaded versions and online error.
async fn stats(State(s): State<AppState>) -> Json<Value> {
    let ms = |v: Option<f64>| v.map(|x| x * 1e3);
    let versions: Vec<Value> = s
        .metrics
        .all_versions()
        .into_iter()
        .map(|((model, version), m)| {
            let online = s.online.summary(&model, &version.to_string()).map(|(m, _)| m);
            json!({
                "model": model,
                "version": version.to_string(),
                "device": m.device(),
                "ok": m.ok.load(Ordering::Relaxed),
                "failed": m.failed.load(Ordering::Relaxed) + m.bad_request.load(Ordering::Relaxed),
                "rejected": m.rejected.load(Ordering::Relaxed),
                "rows": m.rows.load(Ordering::Relaxed),
                "batches": m.batches.load(Ordering::Relaxed),
                "in_flight": m.in_flight.load(Ordering::Relaxed),
                "queue_depth": m.queue_depth.load(Ordering::Relaxed),
                "latency_ms": {"p50": ms(m.request.quantile(0.5)), "p90": ms(m.request.quantile(0.9)),
                               "p99": ms(m.request.quantile(0.99)), "mean": ms(m.request.mean())},
                "batch_size": {"mean": m.batch.mean(), "p99": m.batch.quantile(0.99)},
                "online": online,
            })
        })
        .collect();
    let models: Vec<Value> = s
        .registry
        .loaded()
        .into_iter()
        .filter_map(|name| {
            let (_, versions) = s.registry.versions(&name)?;
            Some(json!({"name": name, "versions": versions}))
        })
        .collect();
    Json(json!({"t_secs": s.scene.t_secs(), "models": models, "versions": versions}))
}

/// The versions of a model on disk with their training reports (`train.json`), for the
/// dashboard's learning panel.
async fn history(State(s): State<AppState>, Path(model): Path<String>) -> Result<Json<Value>, AppError> {
    let repo = s.registry.repository();
    let on_disk = repo.versions_on_disk(&model).map_err(|e| AppError::NotFound(e.to_string()))?;
    let loaded = s.registry.versions(&model).map(|(_, v)| v).unwrap_or_default();
    let mut out = Vec::new();
    for v in on_disk {
        let report = repo
            .version_dir(&model, v)
            .ok()
            .and_then(|d| std::fs::read(d.join("train.json")).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let online = s.online.summary(&model, &v.to_string()).map(|(m, _)| m);
        out.push(json!({"version": v.to_string(), "loaded": loaded.contains(&v), "train": report, "online": online}));
    }
    Ok(Json(json!({"model": model, "versions": out})))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../../static/openapi.json"))
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
