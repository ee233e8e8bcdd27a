//! The path every inference request takes, whatever door it came in by (OIP over HTTP, the
//! WebSocket, the scene stream): resolve the version, check the inputs against the model's
//! declaration, queue on its engine, record metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use waypoint_models::Tensor;

use crate::serving::cache::Tier;
use crate::serving::engine::{EngineError, InferOutput};
use crate::serving::error::AppError;
use crate::serving::registry::{LoadedVersion, Registry};
use crate::serving::repository::ModelConfig;

/// Orders inputs as declared and checks names, datatypes, shapes and batch size. Returns the
/// inputs and the number of rows (the batch dimension, or 1 for models that do not batch).
/// `max_rows` is the instance's largest batch (`max_batch_size`, or `gpu_max_batch_size` on a
/// GPU).
pub fn validate_inputs(
    model: &str,
    config: &ModelConfig,
    max_rows: usize,
    mut inputs: Vec<Tensor>,
) -> Result<(Vec<Tensor>, usize), String> {
    for t in &inputs {
        if !config.inputs.iter().any(|s| s.name == t.name) {
            return Err(format!(
                "model {model:?} has no input {:?}; inputs are {:?}",
                t.name,
                config.inputs.iter().map(|s| &s.name).collect::<Vec<_>>()
            ));
        }
    }
    let mut ordered = Vec::with_capacity(config.inputs.len());
    for spec in &config.inputs {
        let Some(pos) = inputs.iter().position(|t| t.name == spec.name) else {
            if spec.optional {
                continue;
            }
            return Err(format!("missing input {:?} for model {model:?}", spec.name));
        };
        let t = inputs.swap_remove(pos);
        if inputs.iter().any(|o| o.name == spec.name) {
            return Err(format!("input {:?} given twice", spec.name));
        }
        if t.data.datatype() != spec.datatype {
            return Err(format!(
                "input {:?} has datatype {}, model expects {}",
                spec.name,
                t.data.datatype().as_str(),
                spec.datatype.as_str()
            ));
        }
        if !spec.accepts(&t.shape) {
            return Err(format!("input {:?} has shape {:?}, model expects {:?}", spec.name, t.shape, spec.dims));
        }
        ordered.push(t);
    }
    let rows = if config.max_batch_size > 0 {
        let rows = ordered.first().ok_or_else(|| format!("model {model:?} got no input"))?.rows();
        if ordered.iter().any(|t| t.rows() != rows) {
            return Err("inputs disagree on the batch dimension".into());
        }
        if rows == 0 {
            return Err("empty batch".into());
        }
        if rows > max_rows {
            return Err(format!("batch of {rows} exceeds the model's max_batch_size {max_rows}"));
        }
        rows
    } else {
        1
    };
    Ok((ordered, rows))
}

/// Runs one request through the engine of the resolved version.
pub async fn infer(
    registry: &Registry,
    model: &str,
    version: Option<&str>,
    inputs: Vec<Tensor>,
) -> Result<(Arc<LoadedVersion>, InferOutput), AppError> {
    let loaded = registry.get(model, version)?;
    let result = infer_on(&loaded, inputs).await;
    result.map(|out| (loaded, out))
}

/// Runs one request on a given version, recording its metrics.
pub async fn infer_on(loaded: &LoadedVersion, inputs: Vec<Tensor>) -> Result<InferOutput, AppError> {
    let started = Instant::now();
    let m = &loaded.metrics;
    let (inputs, rows) =
        match validate_inputs(&loaded.model, &loaded.config, loaded.engine.settings().max_batch_size, inputs) {
            Ok(v) => v,
            Err(e) => {
                m.bad_request.fetch_add(1, Ordering::Relaxed);
                return Err(AppError::BadRequest(e));
            }
        };
    // A deterministic model's answer to this exact request, if it was kept.
    let cache_key =
        loaded.cache.as_ref().map(|c| (c, crate::serving::cache::key(&loaded.model, loaded.fingerprint, &inputs)));
    if let Some((cache, key)) = &cache_key {
        if let Some((outputs, tier)) = cache.lookup(key).await {
            let hits = if tier == Tier::Local { &m.cache_hits } else { &m.cache_hits_redis };
            hits.fetch_add(1, Ordering::Relaxed);
            m.ok.fetch_add(1, Ordering::Relaxed);
            m.request.observe_duration(started.elapsed());
            let outputs = Vec::clone(&outputs);
            return Ok(InferOutput { outputs, queue: Duration::ZERO, compute: Duration::ZERO, batch_rows: rows });
        }
        m.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
    m.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = loaded.engine.infer(inputs, rows).await;
    m.in_flight.fetch_sub(1, Ordering::Relaxed);
    match &result {
        Ok(out) => {
            m.ok.fetch_add(1, Ordering::Relaxed);
            m.queue.observe_duration(out.queue);
            if let Some((cache, key)) = cache_key {
                cache.store(key, &out.outputs).await;
            }
        }
        Err(EngineError::QueueFull) => {
            m.rejected.fetch_add(1, Ordering::Relaxed);
        }
        Err(EngineError::Model(waypoint_models::ModelError::BadInput(_))) => {
            m.bad_request.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            m.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    m.request.observe_duration(started.elapsed());
    Ok(result?)
}
