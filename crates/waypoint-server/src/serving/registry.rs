//! The registry of loaded models: which versions are served, and atomic swaps between them.
//!
//! Each served version is an `Arc<LoadedVersion>`. A request clones the `Arc` it resolves, so
//! replacing or removing the registry's entry never disturbs requests already running: they
//! finish on the version they started with, and the version's workers stop (and free the model)
//! once its last request has finished.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use waypoint_models::{Model, ModelError};

use crate::metrics::{Metrics, VersionMetrics};
use crate::serving::cache::{fingerprint, RedisTier, ResponseCache};
use crate::serving::engine::{BatchSettings, VersionEngine};
use crate::serving::onnx;
use crate::serving::repository::{ModelConfig, Platform, Repository, RepositoryError};

/// One served version.
#[derive(Debug)]
pub struct LoadedVersion {
    pub model: String,
    pub version: u64,
    pub config: Arc<ModelConfig>,
    pub engine: VersionEngine,
    /// Its counters, and where it runs (`metrics.device()`: `"cpu"` or `"cuda:<id>"`).
    pub metrics: Arc<VersionMetrics>,
    /// The version's files and configuration, hashed (the response cache keys on it).
    pub fingerprint: u64,
    /// The response cache, when the model asks for it and the server has one.
    pub cache: Option<Arc<ResponseCache>>,
}

#[derive(Debug, Clone)]
struct ModelEntry {
    config: Arc<ModelConfig>,
    versions: BTreeMap<u64, Arc<LoadedVersion>>,
}

/// Errors resolving or loading models.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("model {0:?} is not loaded")]
    NotLoaded(String),
    #[error("model {0:?} has no version {1}")]
    NoVersion(String, String),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("model {model}: {source}")]
    Instantiate { model: String, source: ModelError },
    #[error("model {0}: no version directory to serve")]
    NoVersions(String),
    #[error("cannot start workers: {0}")]
    Threads(String),
}

/// State of one model version in the repository index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    pub state: String,
    pub reason: String,
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    repository: Repository,
    models: RwLock<BTreeMap<String, ModelEntry>>,
    metrics: Arc<Metrics>,
    /// Last failure per model, for the index.
    failures: RwLock<BTreeMap<String, String>>,
    /// Batching settings changed at run time, applied over `config.toml` on every load.
    overrides: RwLock<BTreeMap<String, BatchingPatch>>,
    /// The response cache shared by the models that ask for it.
    cache: Option<Arc<ResponseCache>>,
    /// Changes made here for the other replicas of a cluster (kept once
    /// [`Registry::share_changes`] is on), and what wakes whoever sends them.
    outbox: std::sync::Mutex<Option<Vec<RepoChange>>>,
    pub changed: tokio::sync::Notify,
}

/// A change to what a replica serves, as the replicas of a cluster tell each other.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RepoChange {
    /// The model was (re)loaded from the shared repository.
    Load {
        model: String,
    },
    Unload {
        model: String,
    },
    /// The model's batching overrides are now these (merged over `config.toml`).
    Batching {
        model: String,
        overrides: BatchingPatch,
    },
}

/// Run-time changes to a model's batching knobs (control API).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_delay_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl BatchingPatch {
    fn apply(&self, c: &mut ModelConfig) {
        if let Some(v) = self.max_batch_size {
            c.max_batch_size = v;
        }
        if let Some(v) = self.max_queue_delay_us {
            c.max_queue_delay_us = v;
        }
        if let Some(v) = self.instances {
            c.instances = v;
        }
        if let Some(v) = self.queue_capacity {
            c.queue_capacity = v;
        }
        if let Some(v) = self.timeout_ms {
            c.timeout_ms = v;
        }
    }

    fn merge(&mut self, other: &BatchingPatch) {
        self.max_batch_size = other.max_batch_size.or(self.max_batch_size);
        self.max_queue_delay_us = other.max_queue_delay_us.or(self.max_queue_delay_us);
        self.instances = other.instances.or(self.instances);
        self.queue_capacity = other.queue_capacity.or(self.queue_capacity);
        self.timeout_ms = other.timeout_ms.or(self.timeout_ms);
    }
}

/// One instance of a version, and where it runs (`"cpu"` or `"cuda:<id>"`).
pub fn instantiate(
    model: &str,
    config: &ModelConfig,
    dir: &std::path::Path,
) -> Result<(Box<dyn Model>, onnx::Placement), ModelError> {
    match config.platform {
        Platform::Waypoint => {
            // `cuda!` is refused by the configuration's validation; `cuda` falls back.
            if config.device.wants_gpu() {
                onnx::warn_cpu_fallback(
                    model,
                    "native backends have no GPU path; export the network with `waypoint export-onnx` and serve the ONNX model on CUDA",
                );
            }
            waypoint_models::native::instantiate(config.backend.as_deref().unwrap_or(""), dir)
                .map(|m| (m, "cpu".into()))
        }
        Platform::Onnx => onnx::OnnxModel::load(model, &dir.join("model.onnx"), config)
            .map(|(m, placement)| (Box::new(m) as Box<dyn Model>, placement)),
    }
}

/// The batching of an instance on `placement`: a GPU instance takes the `gpu_` settings.
pub fn batch_settings(config: &ModelConfig, placement: &str) -> BatchSettings {
    let (mut max_batch_size, mut delay_us) = (config.max_batch_size, config.max_queue_delay_us);
    if placement.starts_with("cuda") {
        max_batch_size = config.gpu_max_batch_size.unwrap_or(max_batch_size);
        delay_us = config.gpu_max_queue_delay_us.unwrap_or(delay_us);
    }
    BatchSettings {
        max_batch_size,
        max_queue_delay: Duration::from_micros(delay_us),
        queue_capacity: config.queue_capacity,
        instances: config.instances,
        timeout: Duration::from_millis(config.timeout_ms.max(1)),
    }
}

impl Registry {
    pub fn new(repository: Repository, metrics: Arc<Metrics>) -> Self {
        Self {
            repository,
            models: RwLock::new(BTreeMap::new()),
            metrics,
            failures: RwLock::new(BTreeMap::new()),
            overrides: RwLock::new(BTreeMap::new()),
            cache: None,
            outbox: std::sync::Mutex::new(None),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Starts keeping the changes made here (loads, unloads, batching) for
    /// [`Registry::take_changes`].
    pub fn share_changes(&self) {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Vec::new);
    }

    /// The changes made here since the last call.
    pub fn take_changes(&self) -> Vec<RepoChange> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner()).as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn record(&self, change: RepoChange) {
        if let Some(out) = self.outbox.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            out.push(change);
            self.changed.notify_one();
        }
    }

    /// Shares every batching override again (the cluster's store lost them).
    pub fn reshare(&self) {
        let overrides = self.overrides.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (model, overrides) in overrides {
            self.record(RepoChange::Batching { model, overrides });
        }
    }

    /// Applies another replica's change, without sharing it again.
    pub fn apply_peer(&self, change: &RepoChange) -> Result<(), RegistryError> {
        match change {
            RepoChange::Load { model } => {
                // Nothing to do when this replica already serves what the repository holds.
                let served = self.versions(model);
                let unchanged = served.as_ref().is_some_and(|(config, versions)| {
                    self.repository.versions_to_serve(model, &config.version_policy).is_ok_and(|d| d == *versions)
                });
                if unchanged {
                    Ok(())
                } else {
                    self.load_here(model).map(|_| ())
                }
            }
            RepoChange::Unload { model } => match self.unload_here(model) {
                Err(RegistryError::NotLoaded(_)) => Ok(()),
                r => r,
            },
            RepoChange::Batching { model, overrides } => {
                if self.overrides.read().unwrap_or_else(|p| p.into_inner()).get(model) == Some(overrides) {
                    return Ok(());
                }
                self.overrides.write().unwrap_or_else(|p| p.into_inner()).insert(model.clone(), overrides.clone());
                self.load_here(model).map(|_| ())
            }
        }
    }

    /// Gives the registry a response cache of `bytes` (0: no local tier) and, optionally, a
    /// Redis tier, for models that ask for one.
    pub fn with_cache(mut self, bytes: usize, redis: Option<RedisTier>) -> Self {
        self.cache = (bytes > 0 || redis.is_some()).then(|| Arc::new(ResponseCache::new(bytes, redis)));
        self
    }

    /// The response cache, if the server has one.
    pub fn cache(&self) -> Option<&Arc<ResponseCache>> {
        self.cache.as_ref()
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// Resolves a request to a version: the one asked for, or the highest served.
    pub fn get(&self, model: &str, version: Option<&str>) -> Result<Arc<LoadedVersion>, RegistryError> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        let entry = models.get(model).ok_or_else(|| RegistryError::NotLoaded(model.into()))?;
        match version {
            None | Some("") => {
                entry.versions.values().next_back().cloned().ok_or_else(|| RegistryError::NotLoaded(model.into()))
            }
            Some(v) => v
                .parse::<u64>()
                .ok()
                .and_then(|n| entry.versions.get(&n).cloned())
                .ok_or_else(|| RegistryError::NoVersion(model.into(), v.into())),
        }
    }

    /// Versions served for a model, ascending.
    pub fn versions(&self, model: &str) -> Option<(Arc<ModelConfig>, Vec<u64>)> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.get(model).map(|e| (e.config.clone(), e.versions.keys().copied().collect()))
    }

    /// Names of loaded models.
    pub fn loaded(&self) -> Vec<String> {
        self.models.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Builds the versions the model's policy selects and swaps them in atomically. Blocking
    /// (instantiates models): call it from a blocking thread. In a cluster, the other replicas
    /// load it too.
    pub fn load(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        let versions = self.load_here(model)?;
        self.record(RepoChange::Load { model: model.to_string() });
        Ok(versions)
    }

    fn load_here(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        let started = Instant::now();
        let result = self.build(model);
        match &result {
            Ok(entry) => {
                let versions: Vec<u64> = entry.versions.keys().copied().collect();
                self.models.write().unwrap_or_else(|p| p.into_inner()).insert(model.to_string(), entry.clone());
                self.failures.write().unwrap_or_else(|p| p.into_inner()).remove(model);
                self.metrics.model_event(model, "load", "ok", Some(started.elapsed()));
                tracing::info!(model, ?versions, took_ms = started.elapsed().as_millis() as u64, "model loaded");
                Ok(versions)
            }
            Err(e) => {
                self.failures.write().unwrap_or_else(|p| p.into_inner()).insert(model.to_string(), e.to_string());
                self.metrics.model_event(model, "load", "error", None);
                tracing::warn!(model, error = %e, "model load failed");
                Err(result.err().unwrap_or(RegistryError::NoVersions(model.into())))
            }
        }
    }

    /// Changes a loaded model's batching knobs: validates the result, rebuilds its versions
    /// with it and swaps them in (running requests finish on the old engines).
    pub fn reconfigure(&self, model: &str, patch: &BatchingPatch) -> Result<Arc<ModelConfig>, RegistryError> {
        if self.versions(model).is_none() {
            return Err(RegistryError::NotLoaded(model.into()));
        }
        let previous = self.overrides.read().unwrap_or_else(|p| p.into_inner()).get(model).cloned();
        let mut merged = previous.clone().unwrap_or_default();
        merged.merge(patch);
        self.overrides.write().unwrap_or_else(|p| p.into_inner()).insert(model.into(), merged.clone());
        match self.load_here(model) {
            Ok(_) => {
                self.record(RepoChange::Batching { model: model.to_string(), overrides: merged });
                Ok(self.versions(model).map(|(c, _)| c).ok_or_else(|| RegistryError::NotLoaded(model.into()))?)
            }
            Err(e) => {
                let mut o = self.overrides.write().unwrap_or_else(|p| p.into_inner());
                match previous {
                    Some(p) => o.insert(model.into(), p),
                    None => o.remove(model),
                };
                Err(e)
            }
        }
    }

    fn build(&self, model: &str) -> Result<ModelEntry, RegistryError> {
        let mut config = self.repository.config(model)?;
        if let Some(patch) = self.overrides.read().unwrap_or_else(|p| p.into_inner()).get(model) {
            patch.apply(&mut config);
            config.validate(model)?;
        }
        let config = Arc::new(config);
        let versions = self.repository.versions_to_serve(model, &config.version_policy)?;
        if versions.is_empty() {
            return Err(RegistryError::NoVersions(model.into()));
        }
        let mut out = BTreeMap::new();
        for v in versions {
            let dir = self.repository.version_dir(model, v)?;
            let (instances, placements): (Vec<_>, Vec<_>) = (0..config.instances)
                .map(|_| instantiate(model, &config, &dir))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| RegistryError::Instantiate { model: model.into(), source })?
                .into_iter()
                .unzip();
            // Every instance asks for the same device; the first says where they landed.
            let placement = placements.into_iter().next().unwrap_or_else(|| "cpu".into());
            let settings = batch_settings(&config, &placement);
            let metrics = self.metrics.version(model, v);
            metrics.set_device(&placement);
            let engine = VersionEngine::start(&format!("{model}-{v}"), instances, settings, metrics.clone())
                .map_err(|e| RegistryError::Threads(e.to_string()))?;
            out.insert(
                v,
                Arc::new(LoadedVersion {
                    model: model.into(),
                    version: v,
                    config: config.clone(),
                    engine,
                    metrics,
                    fingerprint: fingerprint(&*config, &dir),
                    cache: self.cache.clone().filter(|_| config.response_cache),
                }),
            );
        }
        Ok(ModelEntry { config, versions: out })
    }

    /// Drops the metric series of a version that will not be served again.
    pub fn drop_series(&self, model: &str, version: u64) {
        self.metrics.remove_version(model, version);
    }

    /// Stops serving a model. Requests already running finish. In a cluster, the other replicas
    /// stop too.
    pub fn unload(&self, model: &str) -> Result<(), RegistryError> {
        self.unload_here(model)?;
        self.record(RepoChange::Unload { model: model.to_string() });
        Ok(())
    }

    fn unload_here(&self, model: &str) -> Result<(), RegistryError> {
        let removed = self.models.write().unwrap_or_else(|p| p.into_inner()).remove(model);
        match removed {
            Some(_) => {
                self.metrics.model_event(model, "unload", "ok", None);
                tracing::info!(model, "model unloaded");
                Ok(())
            }
            None => Err(RegistryError::NotLoaded(model.into())),
        }
    }

    /// Every model in the repository with the state of each version.
    pub fn index(&self, ready_only: bool) -> Result<Vec<IndexEntry>, RegistryError> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner()).clone();
        let failures = self.failures.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::new();
        for name in self.repository.models()? {
            match models.get(&name) {
                Some(entry) => {
                    for v in entry.versions.keys() {
                        out.push(IndexEntry {
                            name: name.clone(),
                            version: v.to_string(),
                            state: "READY".into(),
                            reason: String::new(),
                        });
                    }
                }
                None if !ready_only => out.push(IndexEntry {
                    name: name.clone(),
                    version: String::new(),
                    state: "UNAVAILABLE".into(),
                    reason: failures.get(&name).cloned().unwrap_or_else(|| "unloaded".into()),
                }),
                None => {}
            }
        }
        Ok(out)
    }

    /// Reloads every loaded model whose versions on disk changed (for directory polling).
    pub fn poll(&self) {
        for name in self.loaded() {
            let Some((config, served)) = self.versions(&name) else { continue };
            match self.repository.versions_to_serve(&name, &config.version_policy) {
                Ok(on_disk) if on_disk != served && !on_disk.is_empty() => {
                    tracing::info!(model = %name, ?served, ?on_disk, "repository changed; reloading");
                    // Every replica polls for itself: nothing to tell the others.
                    let _ = self.load_here(&name);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_instance_takes_the_gpu_batching_and_a_cpu_one_does_not() {
        let config: ModelConfig = toml::from_str(
            r#"
platform = "onnx"
device = "cuda"
max_batch_size = 256
max_queue_delay_us = 100
gpu_max_batch_size = 131072
gpu_max_queue_delay_us = 2000
[[inputs]]
name = "x"
datatype = "FP32"
dims = [-1, 2]
[[outputs]]
name = "y"
datatype = "FP32"
dims = [-1, 2]
"#,
        )
        .unwrap();
        let gpu = batch_settings(&config, "cuda:0");
        assert_eq!((gpu.max_batch_size, gpu.max_queue_delay), (131_072, Duration::from_micros(2000)));
        // Fallen back to the CPU: the CPU's batching.
        let cpu = batch_settings(&config, "cpu");
        assert_eq!((cpu.max_batch_size, cpu.max_queue_delay), (256, Duration::from_micros(100)));
    }
}
