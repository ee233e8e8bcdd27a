//! The one HTTP error boundary: every failure becomes a status and `{"error": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::EngineError;
use crate::registry::RegistryError;
use crate::repository::RepositoryError;
use waypoint_models::ModelError;

/// An error answered over HTTP.
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

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            AppError::Internal(detail) => {
                tracing::error!(detail, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut resp = (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
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
