//! The doors' access rules: a mutating call (control-API `PUT`/`POST`/`PATCH`/`DELETE`,
//! repository load and unload) needs the API token, inference the inference token when one is
//! set, as `Authorization: Bearer <token>`; otherwise 401. Scene commands over REST are limited
//! per client (its `x-waypoint-client` name, else the first `X-Forwarded-For` hop, else its
//! address): 429 with `Retry-After`. The WebSocket applies the same rules per connection
//! (`api::ws`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::state::AppState;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Open,
    Control,
    Infer,
}

/// The class of a request by its method and path.
pub fn classify(method: &Method, path: &str) -> Need {
    let writes = matches!(*method, Method::PUT | Method::POST | Method::PATCH | Method::DELETE);
    if writes && path.starts_with("/api/v1/") {
        return Need::Control;
    }
    if *method == Method::POST && path.starts_with("/v2/repository/models/") {
        return Need::Control;
    }
    if *method == Method::POST && path.starts_with("/v2/models/") && path.ends_with("/infer") {
        return Need::Infer;
    }
    Need::Open
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Who a REST caller is, for rate limits.
fn client_key(req: &Request) -> String {
    let h = req.headers();
    if let Some(c) = h.get(crate::api::oip::CLIENT_HEADER).and_then(|v| v.to_str().ok()).filter(|c| !c.is_empty()) {
        return format!("name:{}", &c[..c.len().min(128)]);
    }
    if let Some(f) = h.get("x-forwarded-for").and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()) {
        return format!("ip:{}", f.trim());
    }
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
        None => "unknown".into(),
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The middleware in front of every route.
pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let need = classify(req.method(), req.uri().path());
    if need != Need::Open {
        let rights = state.access.tokens.rights(bearer(req.headers()));
        let allowed = match need {
            Need::Control => rights.control,
            Need::Infer => rights.infer,
            Need::Open => true,
        };
        if !allowed {
            let what = if need == Need::Control { "the API token" } else { "the inference token" };
            let mut resp =
                refuse(StatusCode::UNAUTHORIZED, format!("this call needs {what}: Authorization: Bearer <token>"));
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    if req.method() == Method::POST && req.uri().path() == "/api/v1/scene/commands" {
        if let Err(wait) = state.access.scene_commands.check(&client_key(&req)) {
            let mut resp = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many scene commands; retry after {:.2} s", wait.as_secs_f64()),
            );
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classed_by_method_and_path() {
        assert_eq!(classify(&Method::PUT, "/api/v1/models/m/routing"), Need::Control);
        assert_eq!(classify(&Method::PATCH, "/api/v1/models/m/config"), Need::Control);
        assert_eq!(classify(&Method::POST, "/api/v1/scene/commands"), Need::Control);
        assert_eq!(classify(&Method::GET, "/api/v1/models/m/routing"), Need::Open);
        assert_eq!(classify(&Method::POST, "/v2/repository/models/m/load"), Need::Control);
        assert_eq!(classify(&Method::POST, "/v2/repository/index"), Need::Open);
        assert_eq!(classify(&Method::POST, "/v2/models/m/infer"), Need::Infer);
        assert_eq!(classify(&Method::POST, "/v2/models/m/versions/2/infer"), Need::Infer);
        assert_eq!(classify(&Method::GET, "/metrics"), Need::Open);
    }

    #[test]
    fn the_bearer_token_is_read_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
