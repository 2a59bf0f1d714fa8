//! `POST /inbound`: one raw RFC 5322 message, from a relay that forwards
//! inbound mail over HTTP, with its own bearer token (`inbound.token`). The
//! same handling as `herald inbound` on stdin.

use super::api::{bearer_token, token_matches};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn receive(State(state): State<AppState>, request: Request<Body>) -> Response {
    let Some(expected) = state
        .config
        .inbound
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "inbound mail is not enabled (inbound.token)"})),
        )
            .into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    if !given.is_some_and(|g| token_matches(g, expected)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({"error": "unauthorized"})),
        )
            .into_response();
    }
    let raw = match axum::body::to_bytes(request.into_body(), crate::inbound::MAX_MESSAGE_BYTES).await
    {
        Ok(raw) => raw,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(serde_json::json!({
                    "error": format!("a message may be at most {} bytes", crate::inbound::MAX_MESSAGE_BYTES)
                })),
            )
                .into_response()
        }
    };
    match crate::inbound::handle(&state, raw.to_vec(), "http").await {
        Ok(handled) => (StatusCode::OK, Json(handled)).into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "inbound message could not be handled");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"error": "could not handle the message now; try again"})),
            )
                .into_response()
        }
    }
}
