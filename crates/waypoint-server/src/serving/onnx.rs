//! ONNX models, run by ONNX Runtime through `ort` with its `load-dynamic` feature: the shared
//! library is found at run time (`ORT_DYLIB_PATH`, or inside a pip-installed `onnxruntime`
//! package), never downloaded. Without it, ONNX models are refused with a message saying how to
//! install it, and every native model still runs.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorRef};
use waypoint_models::{DataType, Model, ModelError, Tensor, TensorData};

use crate::serving::repository::{DeviceSetting, ModelConfig};

/// How to get the library, for error messages.
pub const INSTALL_HINT: &str = "ONNX Runtime is not available: install it with `pip install onnxruntime` \
(Waypoint finds it in the Python packages) or point ORT_DYLIB_PATH at libonnxruntime.so";

static ENV: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();
/// Models already warned about running on the CPU in place of CUDA (one warning each).
static WARNED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

/// Logs, once per model, that a model configured for `cuda` runs on the CPU, and why.
pub fn warn_cpu_fallback(model: &str, why: &str) {
    if WARNED.lock().unwrap_or_else(|p| p.into_inner()).insert(model.to_string()) {
        tracing::warn!(model, "configured for device \"cuda\" but running on the CPU: {why}");
    }
}

fn find_in_python() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so")))
        .collect();
    libs.sort();
    libs.into_iter().next()
}

/// Path of the ONNX Runtime library, if one can be found.
pub fn library_path() -> Option<PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => find_in_python(),
    }
}

fn environment() -> Result<&'static (Environment, PathBuf), ModelError> {
    let env = ENV.get_or_init(|| {
        let path = library_path().ok_or_else(|| INSTALL_HINT.to_string())?;
        let builder =
            ort::init_from(&path).map_err(|e| format!("cannot load {}: {e}. {INSTALL_HINT}", path.display()))?;
        let env = builder.with_name("waypoint").build().map_err(|e| format!("ONNX Runtime environment: {e}"))?;
        tracing::info!(library = %path.display(), "ONNX Runtime loaded");
        Ok((env, path))
    });
    env.as_ref().map_err(|e| ModelError::Load(e.clone()))
}

/// Whether ONNX Runtime can be loaded in this process.
pub fn available() -> bool {
    environment().is_ok()
}

/// One ONNX Runtime session (one thread).
#[derive(Debug)]
pub struct OnnxModel {
    session: Session,
    inputs: Vec<String>,
    outputs: Vec<(String, DataType)>,
}

fn ort_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Internal(format!("onnx runtime: {e}"))
}

/// Where a loaded model runs: `"cpu"` or `"cuda:<id>"`.
pub type Placement = String;

/// Why the CUDA execution provider cannot be used, if it cannot (checked before a session).
fn cuda_missing(library: &Path) -> Option<String> {
    use ort::ep::ExecutionProvider;
    match ort::ep::CUDA::is_available() {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "the ONNX Runtime library {} has no CUDA execution provider (install onnxruntime-gpu in place of onnxruntime)",
            library.display()
        )),
        Err(e) => Some(format!("cannot ask ONNX Runtime for its execution providers: {e}")),
    }
}

impl OnnxModel {
    fn session(env: &Environment, path: &Path, cuda: Option<u32>) -> Result<Session, String> {
        let mut builder = Session::builder(env).map_err(|e| e.to_string())?;
        builder = builder.with_intra_threads(1).map_err(|e| e.to_string())?;
        builder = builder.with_inter_threads(1).map_err(|e| e.to_string())?;
        if let Some(id) = cuda {
            let ep = ort::ep::CUDA::default().with_device_id(id as i32).build().error_on_failure();
            builder = builder
                .with_execution_providers([ep])
                .map_err(|e| format!("the CUDA execution provider did not start: {e}"))?;
        }
        builder.commit_from_file(path).map_err(|e| e.to_string())
    }

    /// Opens `path` on the device the configuration asks for (or on the CPU when `cuda` cannot
    /// be had; `cuda!` refuses instead) and checks that the graph's inputs and outputs are the
    /// configured ones. Returns the model and where it runs.
    pub fn load(model: &str, path: &Path, config: &ModelConfig) -> Result<(Self, Placement), ModelError> {
        let (env, library) = environment()?;
        if !path.is_file() {
            return Err(ModelError::Load(format!("{model}: {} not found", path.display())));
        }
        let mut placement = "cpu".to_string();
        let mut session = None;
        if config.device.wants_gpu() {
            let id = config.cuda_device_id;
            let attempt = match cuda_missing(library) {
                Some(why) => Err(why),
                None => Self::session(env, path, Some(id)).map_err(|e| {
                    format!("{e} (the CUDA and cuDNN libraries of the nvidia-*-cu12 wheels must be on LD_LIBRARY_PATH, and a GPU {id} present)")
                }),
            };
            match attempt {
                Ok(s) => {
                    session = Some(s);
                    placement = format!("cuda:{id}");
                }
                Err(why) if config.device == DeviceSetting::CudaRequired => {
                    return Err(ModelError::Load(format!("{model}: device \"cuda!\" and no GPU: {why}")));
                }
                Err(why) => warn_cpu_fallback(model, &why),
            }
        }
        let session = match session {
            Some(s) => s,
            None => Self::session(env, path, None).map_err(|e| ModelError::Load(format!("{model}: {e}")))?,
        };
        let graph_inputs: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let graph_outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        for spec in &config.inputs {
            if !graph_inputs.contains(&spec.name.as_str()) {
                return Err(ModelError::Load(format!(
                    "{model}: graph has no input {:?} (has {graph_inputs:?})",
                    spec.name
                )));
            }
        }
        for spec in &config.outputs {
            if !graph_outputs.contains(&spec.name.as_str()) {
                return Err(ModelError::Load(format!(
                    "{model}: graph has no output {:?} (has {graph_outputs:?})",
                    spec.name
                )));
            }
        }
        let loaded = Self {
            inputs: config.inputs.iter().map(|s| s.name.clone()).collect(),
            outputs: config.outputs.iter().map(|s| (s.name.clone(), s.datatype)).collect(),
            session,
        };
        Ok((loaded, placement))
    }
}

/// The tensor as an ONNX Runtime input that borrows its data (no copy).
fn to_value(t: &Tensor) -> Result<SessionInputValue<'_>, ModelError> {
    let shape: Vec<i64> = t.shape.iter().map(|d| *d as i64).collect();
    macro_rules! view {
        ($v:expr) => {
            SessionInputValue::from(TensorRef::from_array_view((shape, $v.as_slice())).map_err(ort_err)?.into_dyn())
        };
    }
    Ok(match &t.data {
        TensorData::F32(v) => view!(v),
        TensorData::F64(v) => view!(v),
        TensorData::I32(v) => view!(v),
        TensorData::I64(v) => view!(v),
        TensorData::U8(v) => view!(v),
        TensorData::Bool(v) => view!(v),
    })
}

fn from_value(name: &str, dt: DataType, v: &DynValue) -> Result<Tensor, ModelError> {
    macro_rules! extract {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = v.try_extract_tensor::<$t>().map_err(ort_err)?;
            (shape.iter().map(|d| (*d).max(0) as usize).collect::<Vec<_>>(), TensorData::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match dt {
        DataType::F32 => extract!(f32, F32),
        DataType::F64 => extract!(f64, F64),
        DataType::I32 => extract!(i32, I32),
        DataType::I64 => extract!(i64, I64),
        DataType::U8 => extract!(u8, U8),
        DataType::Bool => extract!(bool, Bool),
    };
    Tensor::new(name, shape, data)
}

impl Model for OnnxModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let mut feed: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        // By name: an optional input left out must not shift the others.
        for name in &self.inputs {
            if let Some(t) = inputs.iter().find(|t| &t.name == name) {
                feed.push((Cow::Owned(name.clone()), to_value(t)?));
            }
        }
        let outputs = self.session.run(feed).map_err(ort_err)?;
        self.outputs
            .iter()
            .map(|(name, dt)| {
                let v = outputs.get(name).ok_or_else(|| ModelError::Internal(format!("graph produced no {name:?}")))?;
                from_value(name, *dt, v)
            })
            .collect()
    }
}
