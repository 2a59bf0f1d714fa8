//! `GET /` (the signup form), `POST /subscribe`, `GET /thanks`.

use super::pages::{page, IndexPage, MessagePage};
use crate::domain::{DomainError, SubscriberEmail, SubscriberName};
use crate::startup::AppState;
use crate::subscriptions::{self, Consent};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use std::net::SocketAddr;

pub async fn form(State(state): State<AppState>) -> Response {
    page(
        StatusCode::OK,
        IndexPage {
            site_name: &state.config.site_name,
            base_url: &state.base_url,
            site_url: state.config.site_url.as_deref(),
            error: None,
            email: "",
            name: "",
        },
    )
}

pub async fn thanks(State(state): State<AppState>) -> Response {
    page(
        StatusCode::OK,
        MessagePage::new(
            crate::subscriptions::PAGE_CHECK_INBOX,
            &[
                "We have sent a link to confirm your subscription to this address, unless it is already subscribed or we sent one a moment ago.",
                "If nothing arrives within a few minutes, look in your spam folder, or sign up again a little later to get a new link.",
            ],
        )
        .site(&state.config.site_name),
    )
}

#[derive(Debug, Default, serde::Deserialize)]
struct SubscribeBody {
    #[serde(default)]
    email: String,
    name: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Form,
    Json,
}

/// Why a body was refused before any validation of its fields.
enum BodyError {
    TooLarge,
    UnsupportedType,
    Malformed(&'static str),
}

fn content_kind(headers: &HeaderMap) -> Option<Kind> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Some(Kind::Form),
        "application/json" => Some(Kind::Json),
        _ => None,
    }
}

fn parse_body(kind: Kind, bytes: &[u8]) -> Result<SubscribeBody, BodyError> {
    match kind {
        Kind::Json => serde_json::from_slice(bytes).map_err(|_| {
            BodyError::Malformed(
                "The request body is not valid JSON of the form {\"email\": …, \"name\": …}.",
            )
        }),
        Kind::Form => {
            if std::str::from_utf8(bytes).is_err() {
                return Err(BodyError::Malformed("The form data is not valid UTF-8."));
            }
            let mut body = SubscribeBody::default();
            for (key, value) in form_urlencoded::parse(bytes) {
                // Percent-encoded bytes that are not UTF-8 decode to U+FFFD.
                if value.contains('\u{FFFD}') {
                    return Err(BodyError::Malformed("The form data is not valid UTF-8."));
                }
                match key.as_ref() {
                    "email" => body.email = value.into_owned(),
                    "name" => body.name = Some(value.into_owned()),
                    _ => {}
                }
            }
            Ok(body)
        }
    }
}

fn validate(
    body: &SubscribeBody,
) -> Result<(SubscriberEmail, Option<SubscriberName>), DomainError> {
    let email = SubscriberEmail::parse(&body.email)?;
    let name = SubscriberName::parse_optional(body.name.as_deref())?;
    Ok((email, name))
}

/// Form posts get a 303 to the thanks page, JSON gets 202. The answer is
/// the same for new, pending and confirmed addresses, so the form cannot be
/// used to find out who subscribes.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let kind = content_kind(&headers);
    let parsed = match (kind, body) {
        (_, Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(BodyError::TooLarge)
        }
        (_, Err(_)) => Err(BodyError::Malformed("The request body could not be read.")),
        (None, Ok(_)) => Err(BodyError::UnsupportedType),
        (Some(kind), Ok(bytes)) => parse_body(kind, &bytes),
    };
    let kind = kind.unwrap_or(Kind::Form);
    let body = match parsed {
        Ok(body) => body,
        Err(e) => {
            let (status, message) = match e {
                BodyError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "The request is too large."),
                BodyError::UnsupportedType => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Send the form as application/x-www-form-urlencoded or application/json.",
                ),
                BodyError::Malformed(m) => (StatusCode::BAD_REQUEST, m),
            };
            return refuse(&state, kind, status, message, &SubscribeBody::default());
        }
    };
    let (email, name) = match validate(&body) {
        Ok(v) => v,
        Err(DomainError::Invalid(message)) => {
            let status = match kind {
                Kind::Form => StatusCode::BAD_REQUEST,
                Kind::Json => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return refuse(&state, kind, status, message, &body);
        }
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect::<String>());
    let ip = peer.ip().to_string();
    let consent = Consent {
        source: match kind {
            Kind::Form => "form",
            Kind::Json => "api",
        },
        ip: Some(&ip),
        user_agent: user_agent.as_deref(),
    };
    if let Err(e) = subscriptions::subscribe(&state, &email, name.as_ref(), &consent).await {
        return super::Error::from(e).into_response();
    }
    match kind {
        Kind::Form => Redirect::to(&state.url("/thanks")).into_response(),
        Kind::Json => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "status": "accepted",
                "message": "Check your inbox for a link to confirm your subscription."
            })),
        )
            .into_response(),
    }
}

fn refuse(
    state: &AppState,
    kind: Kind,
    status: StatusCode,
    message: &str,
    body: &SubscribeBody,
) -> Response {
    match kind {
        Kind::Json => (status, Json(serde_json::json!({ "error": message }))).into_response(),
        Kind::Form => {
            // Echo what was typed (escaped by the template), capped in length.
            let email: String = body.email.chars().take(254).collect();
            let name: String = body
                .name
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect();
            page(
                status,
                IndexPage {
                    site_name: &state.config.site_name,
                    base_url: &state.base_url,
                    site_url: state.config.site_url.as_deref(),
                    error: Some(message.to_string()),
                    email: &email,
                    name: &name,
                },
            )
        }
    }
}
