//! `POST /webhooks/ses`, `/webhooks/sendgrid`, `/webhooks/postmark`: the
//! relays' bounce and complaint reports (`crate::webhooks`). Each proves
//! itself by its provider's own means; a provider that is not configured
//! answers 404. Bodies are read up to `webhooks::MAX_BODY_BYTES`.

use crate::startup::AppState;
use crate::webhooks::{self, Error, Summary};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn ses(State(state): State<AppState>, request: Request<Body>) -> Response {
    if state.webhooks.ses.is_none() {
        return not_configured("Amazon SES webhooks are not enabled (webhooks.ses.enabled)");
    }
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    respond("ses", webhooks::ses::receive(&state, &body).await)
}

pub async fn sendgrid(State(state): State<AppState>, request: Request<Body>) -> Response {
    if state.webhooks.sendgrid.is_none() {
        return not_configured("SendGrid webhooks are not enabled (webhooks.sendgrid.public_key)");
    }
    let headers = request.headers().clone();
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    respond(
        "sendgrid",
        webhooks::sendgrid::receive(&state, &headers, &body).await,
    )
}

pub async fn postmark(State(state): State<AppState>, request: Request<Body>) -> Response {
    if state.webhooks.postmark.is_none() {
        return not_configured(
            "Postmark webhooks are not enabled (webhooks.postmark.username and password)",
        );
    }
    let headers = request.headers().clone();
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    respond(
        "postmark",
        webhooks::postmark::receive(&state, &headers, &body).await,
    )
}

fn not_configured(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

async fn read_body(request: Request<Body>) -> Result<Bytes, Response> {
    axum::body::to_bytes(request.into_body(), webhooks::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(serde_json::json!({
                    "error": format!("a webhook body may be at most {} bytes", webhooks::MAX_BODY_BYTES)
                })),
            )
                .into_response()
        })
}

/// The summary as JSON, or the error's status with a short message;
/// internals go to the log only.
fn respond(provider: &'static str, result: Result<Summary, Error>) -> Response {
    let error = match result {
        Ok(summary) => return (StatusCode::OK, Json(summary)).into_response(),
        Err(error) => error,
    };
    let (status, message) = match &error {
        Error::NotConfigured(_) => (StatusCode::NOT_FOUND, error.to_string()),
        Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized".to_string()),
        Error::Stale { .. } | Error::TopicNotAllowed => (StatusCode::FORBIDDEN, error.to_string()),
        Error::Malformed(_) => (StatusCode::BAD_REQUEST, error.to_string()),
        Error::Certificate(_) | Error::Confirm(_) | Error::Store(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "could not handle the webhook now; try again".to_string(),
        ),
    };
    if status.is_server_error() {
        tracing::error!(provider, error = %error, "webhook could not be handled");
    } else {
        tracing::warn!(provider, status = status.as_u16(), error = %error, "webhook refused");
    }
    let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED && provider == "postmark" {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"herald webhooks\""),
        );
    }
    response
}
