//! `waypoint export-onnx`: a native network as an ONNX model, so that ONNX Runtime (on the CPU,
//! or on a GPU with its CUDA provider) serves the same weights.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use waypoint_server::serving::repository::{Platform, Repository};

#[derive(Debug, Args)]
pub struct ExportOnnxArgs {
    /// The model (its backend must be `trajectory_tcn`).
    pub model: String,
    /// The version to export.
    pub version: u64,
    /// The ONNX file to write.
    pub out: PathBuf,
    /// The model repository (default: the one `serve` uses).
    #[arg(long, env = "WAYPOINT_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,
}

pub fn export_onnx(a: ExportOnnxArgs) -> Result<()> {
    let root = a.model_repository.clone().unwrap_or_else(waypoint_server::config::default_model_repository);
    let repo = Repository::new(&root);
    let config = repo.config(&a.model)?;
    let backend = config.backend.as_deref().unwrap_or("");
    if config.platform != Platform::Waypoint || backend != "trajectory_tcn" {
        bail!(
            "{}: only native trajectory networks (backend \"trajectory_tcn\") can be exported; this model is {}",
            a.model,
            if config.platform == Platform::Onnx { "already ONNX".to_string() } else { format!("backend {backend:?}") }
        );
    }
    let dir = repo.version_dir(&a.model, a.version)?;
    let bytes = waypoint_models::trajectory::onnx_export::export(&dir)?;
    std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "wrote {} ({} bytes): inputs history [N, 8, 2]; outputs trajectory and sigma [N, 12, 2]; ONNX opset {}",
        a.out.display(),
        bytes.len(),
        waypoint_models::onnx::OPSET
    );
    Ok(())
}
