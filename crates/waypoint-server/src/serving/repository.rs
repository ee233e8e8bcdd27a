//! The model repository on disk: `<root>/<model>/config.toml` and one directory per version,
//! `<root>/<model>/<version>/`, named by a positive integer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use waypoint_models::TensorSpec;

/// Which versions of a model are served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VersionPolicy {
    /// Only the highest version.
    #[default]
    Latest,
    /// Every version on disk.
    All,
    /// These versions.
    Specific(Vec<u64>),
}

/// How a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// A native Waypoint model, selected by `backend`.
    Waypoint,
    /// An ONNX model (`model.onnx` in the version directory) run by ONNX Runtime.
    Onnx,
}

/// Where a model runs (Triton's `instance_group` kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DeviceSetting {
    /// The CPU (the default).
    #[default]
    #[serde(rename = "cpu")]
    Cpu,
    /// An NVIDIA GPU through ONNX Runtime's CUDA execution provider when it loads; otherwise the
    /// CPU, with one warning naming what is missing.
    #[serde(rename = "cuda")]
    Cuda,
    /// The GPU or nothing: the model is refused when the CUDA provider cannot run it.
    #[serde(rename = "cuda!")]
    CudaRequired,
}

impl DeviceSetting {
    pub fn wants_gpu(self) -> bool {
        self != DeviceSetting::Cpu
    }
}

/// `config.toml` of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub platform: Platform,
    /// Native backend name (platform `waypoint`).
    #[serde(default)]
    pub backend: Option<String>,
    /// Largest batch (rows along dimension 0) the model runs at once; 0 disables batching.
    #[serde(default = "default_max_batch")]
    pub max_batch_size: usize,
    /// How long the first request of a batch may wait for others, microseconds.
    #[serde(default = "default_delay")]
    pub max_queue_delay_us: u64,
    /// Worker threads, each with its own instance (Triton's `instance_group` count).
    #[serde(default = "default_instances")]
    pub instances: usize,
    /// Requests that may wait in the queue before new ones are refused with 503.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Per-request deadline, milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub version_policy: VersionPolicy,
    /// Answers are kept in the response cache under the exact request (deterministic,
    /// stateless models only).
    #[serde(default)]
    pub response_cache: bool,
    /// `"cpu"`, `"cuda"` (the GPU, or the CPU with a warning) or `"cuda!"` (the GPU or refuse).
    #[serde(default)]
    pub device: DeviceSetting,
    /// Which GPU (CUDA's numbering) for `device = "cuda"`.
    #[serde(default)]
    pub cuda_device_id: u32,
    /// On a GPU: the largest batch and the first request's wait, where bigger batches pay
    /// (unset: `max_batch_size` and `max_queue_delay_us`).
    #[serde(default)]
    pub gpu_max_batch_size: Option<usize>,
    #[serde(default)]
    pub gpu_max_queue_delay_us: Option<u64>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

fn default_max_batch() -> usize {
    256
}
fn default_delay() -> u64 {
    100
}
fn default_instances() -> usize {
    1
}
fn default_queue() -> usize {
    1024
}
fn default_timeout() -> u64 {
    5000
}

/// Problems with the repository or a model's configuration.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("no model named {0:?} in the repository")]
    NoSuchModel(String),
    #[error("model {model}: {message}")]
    BadConfig { model: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl ModelConfig {
    /// Checks the values a configuration file could get wrong.
    pub fn validate(&self, model: &str) -> Result<(), RepositoryError> {
        let bad = |m: String| Err(RepositoryError::BadConfig { model: model.into(), message: m });
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return bad("needs at least one input and one output".into());
        }
        if self.inputs.iter().all(|i| i.optional) {
            return bad("needs at least one input that is not optional".into());
        }
        if self.instances == 0 || self.instances > 64 {
            return bad("instances must be within 1..=64".into());
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be positive".into());
        }
        if self.device == DeviceSetting::CudaRequired && self.platform == Platform::Waypoint {
            return bad(
                "device \"cuda!\": native backends run on the CPU; export the network to ONNX (`waypoint export-onnx`) to serve it on a GPU, or use device \"cuda\" to fall back to the CPU"
            .into());
        }
        if self.gpu_max_batch_size.is_some_and(|b| b > 0 && self.max_batch_size == 0) {
            return bad("gpu_max_batch_size needs batching (max_batch_size > 0)".into());
        }
        if self.platform == Platform::Waypoint && self.backend.is_none() {
            return bad("platform \"waypoint\" needs a `backend`".into());
        }
        let stateful = self.backend.as_deref().is_some_and(|b| waypoint_models::native::STATEFUL.contains(&b));
        if stateful && self.response_cache {
            return bad(format!(
                "backend {:?} keeps state per sequence, so its answer to a request depends on the requests before it: response_cache cannot be used",
                self.backend.as_deref().unwrap_or_default()
            ));
        }
        if stateful && (self.instances != 1 || self.max_batch_size != 0) {
            return bad(format!(
                "backend {:?} keeps state per sequence: it needs instances = 1 and max_batch_size = 0",
                self.backend.as_deref().unwrap_or_default()
            ));
        }
        let mut names = BTreeSet::new();
        for t in self.inputs.iter().chain(&self.outputs) {
            if !names.insert(&t.name) {
                return bad(format!("tensor name {:?} is used twice", t.name));
            }
            if t.dims.is_empty() || t.dims.iter().any(|d| *d == 0 || *d < -1) {
                return bad(format!("tensor {:?}: dims must be positive or -1", t.name));
            }
            if self.max_batch_size > 0 && t.dims[0] != -1 {
                return bad(format!("tensor {:?}: a batching model's first dimension must be -1", t.name));
            }
        }
        Ok(())
    }
}

/// A repository root.
#[derive(Debug, Clone)]
pub struct Repository {
    pub root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RepositoryError + '_ {
    move |source| RepositoryError::Io { path: path.display().to_string(), source }
}

/// A model name must be a plain directory name.
pub fn valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !name.starts_with('.')
}

impl Repository {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Names of the models in the repository (directories with a `config.toml`), sorted.
    pub fn models(&self) -> Result<Vec<String>, RepositoryError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if valid_model_name(&name) && entry.path().join("config.toml").is_file() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn model_dir(&self, model: &str) -> Result<PathBuf, RepositoryError> {
        if !valid_model_name(model) {
            return Err(RepositoryError::NoSuchModel(model.into()));
        }
        let dir = self.root.join(model);
        if dir.join("config.toml").is_file() {
            Ok(dir)
        } else {
            Err(RepositoryError::NoSuchModel(model.into()))
        }
    }

    /// Reads and validates a model's configuration.
    pub fn config(&self, model: &str) -> Result<ModelConfig, RepositoryError> {
        let path = self.model_dir(model)?.join("config.toml");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        let cfg: ModelConfig = toml::from_str(&text)
            .map_err(|e| RepositoryError::BadConfig { model: model.into(), message: e.to_string() })?;
        cfg.validate(model)?;
        Ok(cfg)
    }

    /// Version numbers present on disk, ascending.
    pub fn versions_on_disk(&self, model: &str) -> Result<Vec<u64>, RepositoryError> {
        let dir = self.model_dir(model)?;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if entry.path().is_dir() {
                if let Ok(v) = entry.file_name().to_string_lossy().parse::<u64>() {
                    if v > 0 {
                        out.push(v);
                    }
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Versions the policy selects among those on disk.
    pub fn versions_to_serve(&self, model: &str, policy: &VersionPolicy) -> Result<Vec<u64>, RepositoryError> {
        let on_disk = self.versions_on_disk(model)?;
        Ok(match policy {
            VersionPolicy::Latest => on_disk.last().copied().into_iter().collect(),
            VersionPolicy::All => on_disk,
            VersionPolicy::Specific(v) => on_disk.into_iter().filter(|x| v.contains(x)).collect(),
        })
    }

    pub fn version_dir(&self, model: &str, version: u64) -> Result<PathBuf, RepositoryError> {
        Ok(self.model_dir(model)?.join(version.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates_a_config() {
        let text = r#"
platform = "waypoint"
backend = "constant_velocity"
max_batch_size = 64
version_policy = { specific = [1, 3] }
[[inputs]]
name = "history"
datatype = "FP32"
dims = [-1, 8, 2]
[[outputs]]
name = "trajectory"
datatype = "FP32"
dims = [-1, 12, 2]
"#;
        let cfg: ModelConfig = toml::from_str(text).unwrap();
        cfg.validate("m").unwrap();
        assert_eq!(cfg.version_policy, VersionPolicy::Specific(vec![1, 3]));
        assert_eq!(cfg.instances, 1);
        let mut bad = cfg.clone();
        bad.inputs[0].dims = vec![8, 2];
        assert!(bad.validate("m").is_err());
        assert!(!valid_model_name("../etc"));
        // A stateful backend on two instances would split a sequence between two states.
        let mut stateful = cfg.clone();
        stateful.backend = Some("sensor_health".into());
        stateful.max_batch_size = 0;
        stateful.inputs[0].dims = vec![8, 2];
        stateful.outputs[0].dims = vec![12, 2];
        stateful.validate("m").unwrap();
        stateful.instances = 2;
        assert!(stateful.validate("m").unwrap_err().to_string().contains("instances = 1"));
        stateful.instances = 1;
        stateful.response_cache = true;
        assert!(stateful.validate("m").unwrap_err().to_string().contains("response_cache cannot be used"));
        assert!(valid_model_name("trajectory_cv"));
    }

    #[test]
    fn device_settings_parse_and_a_native_model_cannot_require_a_gpu() {
        let base = r#"
platform = "onnx"
[[inputs]]
name = "x"
datatype = "FP32"
dims = [-1, 2]
[[outputs]]
name = "y"
datatype = "FP32"
dims = [-1, 2]
"#;
        let parse = |extra: &str| toml::from_str::<ModelConfig>(&format!("{extra}\n{base}"));
        assert_eq!(parse("").unwrap().device, DeviceSetting::Cpu);
        assert_eq!(parse(r#"device = "cuda""#).unwrap().device, DeviceSetting::Cuda);
        let required = parse("device = \"cuda!\"\ncuda_device_id = 1\ngpu_max_queue_delay_us = 2000").unwrap();
        assert_eq!((required.device, required.cuda_device_id), (DeviceSetting::CudaRequired, 1));
        required.validate("m").unwrap();
        assert!(parse(r#"device = "gpu""#).is_err());
        let mut native = required.clone();
        native.platform = Platform::Waypoint;
        native.backend = Some("constant_velocity".into());
        assert!(native.validate("m").unwrap_err().to_string().contains("export-onnx"));
        native.device = DeviceSetting::Cuda;
        native.validate("m").unwrap();
        native.max_batch_size = 0;
        native.gpu_max_batch_size = Some(1024);
        native.inputs[0].dims = vec![2];
        native.outputs[0].dims = vec![2];
        assert!(native.validate("m").unwrap_err().to_string().contains("gpu_max_batch_size"));
    }
}
