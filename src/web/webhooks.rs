//! `POST /webhooks/ses`, `/webhooks/sendgrid`, `/webhooks/postmark`: the
//! relays' bounce and complaint reports (`crate::webhooks`). Each proves
//! itself by its provider's own means; a provider that is not configured
//! answers 404.
//!
//! Each handler checks what the headers can prove before it reads the body
//! (so a client without credentials is answered without sending it), then
//! reads at most `webhooks::MAX_BODY_BYTES`: SES and SendGrid bodies,
//! unproven until read, within the shared `BodyBudget`. A proven request is
//! answered `{"status":"received"}` whatever it changed (see
//! `crate::webhooks`).

use crate::state::AppState;
use crate::webhooks::{self, BodyBudget, Error, Summary};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use tokio::sync::OwnedSemaphorePermit;

/// Seconds a client is asked to wait when the budget of unverified bodies
/// is spent.
const BUSY_RETRY_AFTER_SECS: &str = "5";

pub async fn ses(State(state): State<AppState>, request: Request<Body>) -> Response {
    let Some(ses) = state.webhooks.ses.as_ref() else {
        return not_configured("Amazon SES webhooks are not enabled (webhooks.ses.enabled)");
    };
    if let Err(error) = ses.check_headers(request.headers()) {
        return unread("ses", error);
    }
    let headers = request.headers().clone();
    let (body, _permit) = match read_body(request, Some(&state.webhooks.unverified_bodies)).await {
        Ok(read) => read,
        Err(error) => return unread("ses", error),
    };
    respond("ses", webhooks::ses::receive(&state, &headers, &body).await)
}

pub async fn sendgrid(State(state): State<AppState>, request: Request<Body>) -> Response {
    let Some(sendgrid) = state.webhooks.sendgrid.as_ref() else {
        return not_configured("SendGrid webhooks are not enabled (webhooks.sendgrid.public_key)");
    };
    if let Err(error) = sendgrid.check_headers(request.headers(), webhooks::now_secs()) {
        return unread("sendgrid", error);
    }
    let headers = request.headers().clone();
    let (body, _permit) = match read_body(request, Some(&state.webhooks.unverified_bodies)).await {
        Ok(read) => read,
        Err(error) => return unread("sendgrid", error),
    };
    respond(
        "sendgrid",
        webhooks::sendgrid::receive(&state, &headers, &body).await,
    )
}

pub async fn postmark(State(state): State<AppState>, request: Request<Body>) -> Response {
    let Some(postmark) = state.webhooks.postmark.as_ref() else {
        return not_configured(
            "Postmark webhooks are not enabled (webhooks.postmark.username and password)",
        );
    };
    if let Err(error) = postmark.authorize(request.headers()) {
        return unread("postmark", error);
    }
    let headers = request.headers().clone();
    // Authenticated: its body is not counted against the unverified budget.
    let (body, _) = match read_body(request, None).await {
        Ok(read) => read,
        Err(error) => return unread("postmark", error),
    };
    respond(
        "postmark",
        webhooks::postmark::receive(&state, &headers, &body).await,
    )
}

/// The answer to a request refused before its body was read (or while it
/// was): the connection closes after it, so the client does not send the
/// next request on a connection still holding this one's body.
fn unread(provider: &'static str, error: Error) -> Response {
    let mut response = respond(provider, Err(error));
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

fn not_configured(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// The body, refused unread when its Content-Length is over the limit or
/// (with a `budget`) when the budget has no room for it; the permit
/// returned holds its room until the request is answered.
async fn read_body(
    request: Request<Body>,
    budget: Option<&BodyBudget>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Error> {
    let declared = content_length(request.headers())?;
    let permit = match budget {
        Some(budget) => Some(budget.reserve(declared)?),
        None if declared.is_some_and(|n| n > webhooks::MAX_BODY_BYTES as u64) => {
            return Err(Error::TooLarge)
        }
        None => None,
    };
    // At most MAX_BODY_BYTES, which fits a usize.
    let limit = declared.map_or(webhooks::MAX_BODY_BYTES, |n| {
        usize::try_from(n).unwrap_or(webhooks::MAX_BODY_BYTES)
    });
    let mut body = Vec::with_capacity(limit.min(64 * 1024));
    let mut chunks = request.into_body().into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| Error::Malformed(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(Error::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((Bytes::from(body), permit))
}

/// The declared Content-Length; a value that is not a number is refused.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| Error::Malformed("Content-Length is not a number".into()))
        })
        .transpose()
}

/// `{"status":"received"}` (with the note of an SNS confirmation) for a
/// proven request, whatever it changed; the summary goes to the log. An
/// error's status with a short message; internals go to the log only.
fn respond(provider: &'static str, result: Result<Summary, Error>) -> Response {
    let error = match result {
        Ok(summary) => {
            tracing::info!(
                provider,
                recorded = summary.recorded,
                status_changed = summary.status_changed,
                duplicates = summary.duplicates,
                ignored = summary.ignored,
                "webhook handled"
            );
            let mut answer = serde_json::json!({ "status": "received" });
            if let Some(note) = summary.note {
                answer["note"] = note.into();
            }
            return (StatusCode::OK, Json(answer)).into_response();
        }
        Err(error) => error,
    };
    let (status, message) = match &error {
        Error::NotConfigured(_) => (StatusCode::NOT_FOUND, error.to_string()),
        Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized".to_string()),
        Error::Stale { .. } | Error::TopicNotAllowed => (StatusCode::FORBIDDEN, error.to_string()),
        Error::Malformed(_) => (StatusCode::BAD_REQUEST, error.to_string()),
        Error::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
        Error::Busy => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        Error::Certificate(_) | Error::Confirm(_) | Error::Store(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "could not handle the webhook now; try again".to_string(),
        ),
    };
    // A spent budget is a flood, not a fault: warned of, like a refusal.
    if status.is_server_error() && !matches!(error, Error::Busy) {
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
    if matches!(error, Error::Busy) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(BUSY_RETRY_AFTER_SECS),
        );
    }
    response
}
