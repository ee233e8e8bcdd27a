//! The error every request path returns, whatever door it came in by: a class a caller can act
//! on (bad input, unknown model, too large, overloaded, timed out, internal) and a message. The
//! HTTP face of it (status, body, `Retry-After`) is `api::error`; the WebSocket's is
//! `api::ws_infer`.

use waypoint_models::ModelError;

use super::engine::EngineError;
use super::registry::RegistryError;
use super::repository::RepositoryError;

/// A failed request, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// Overloaded: the client should retry after a moment.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    /// Logged in full; the client gets a generic message.
    #[error("internal error")]
    Internal(String),
}

impl From<RegistryError> for AppError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotLoaded(_) | RegistryError::NoVersion(..) => AppError::NotFound(e.to_string()),
            RegistryError::Repository(RepositoryError::NoSuchModel(_)) => AppError::NotFound(e.to_string()),
            RegistryError::Repository(RepositoryError::BadConfig { .. })
            | RegistryError::Instantiate { .. }
            | RegistryError::NoVersions(_) => AppError::BadRequest(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::QueueFull | EngineError::Stopped => AppError::Unavailable(e.to_string()),
            EngineError::Timeout(_) => AppError::Timeout(e.to_string()),
            EngineError::Model(ModelError::BadInput(m)) => AppError::BadRequest(m),
            EngineError::Model(other) => AppError::Internal(other.to_string()),
        }
    }
}
