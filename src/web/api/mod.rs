//! The operator API: JSON, bearer token from config, compared in constant
//! time. Without a configured token every request is refused.

mod articles;
mod digests;
mod feeds;
mod health;
mod smtp_servers;
mod subscribers;

use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Article bodies can be large; everything else in the API is small.
pub const API_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/articles", post(articles::create).get(articles::list))
        .route("/articles/{id}", axum::routing::delete(articles::remove))
        .route("/digests", post(digests::create).get(digests::list))
        .route("/feeds", post(feeds::create).get(feeds::list))
        .route(
            "/feeds/{id}",
            axum::routing::delete(feeds::remove).get(feeds::show),
        )
        .route("/feeds/{id}/poll", post(feeds::poll))
        .route("/feeds/{id}/backfill", post(feeds::backfill))
        .route("/digests/{id}", get(digests::show))
        .route("/digests/{id}/pause", post(digests::pause))
        .route("/digests/{id}/resume", post(digests::resume))
        .route("/digests/{id}/cancel", post(digests::cancel))
        .route("/health", get(health::show))
        .route("/smtp-servers", get(smtp_servers::list))
        .route("/subscribers", get(subscribers::list))
        .route("/subscriber-events", get(subscribers::events))
        .route("/smtp-servers/{name}/resume", post(smtp_servers::resume))
        .fallback(|| async { ApiError::NotFound("no such endpoint").into_response() })
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state, require_token))
        .layer(middleware::map_response(errors_as_json))
}

/// Every API error answers JSON, whichever layer produced it: a path or
/// query that does not parse (`/api/digests/abc`), a body over the limit,
/// a wrong method. Handlers' own JSON errors pass untouched.
async fn errors_as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are a line or two; a longer body is cut, not read.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_ascii_lowercase()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    (parts, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The credentials of `Authorization: Bearer TOKEN`; the scheme is
/// case-insensitive (RFC 7235), and spaces around the token are allowed.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn token_matches(given: &str, expected: &str) -> bool {
    // Hash both so the comparison takes the same time whatever the lengths.
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match (given, state.config.api_token.as_deref()) {
        (Some(given), Some(expected)) if !expected.is_empty() && token_matches(given, expected) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({"error": "unauthorized"})),
        )
            .into_response(),
    }
}

/// API errors: a status and a short message; internals go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A well-formed request herald will not act on, with the reason.
    #[error("{0}")]
    Unprocessable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::digest::Error> for ApiError {
    fn from(e: crate::digest::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.to_string()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_string(),
                )
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k  "] {
            assert_eq!(bearer_token(header), Some("t0k"), "{header:?}");
        }
        for header in ["Basic t0k", "Bearer", "Bearer ", "t0k", "Bearert0k"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
