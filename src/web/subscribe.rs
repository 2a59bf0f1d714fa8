//! `GET /` (the signup form), `POST /subscribe`, `GET /thanks`.

use super::pages::{page, IndexPage, MessagePage};
use super::return_to;
use crate::domain::{DomainError, SubscriberEmail, SubscriberName};
use crate::state::AppState;
use crate::subscriptions::{self, Consent};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub async fn form(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    page(
        StatusCode::OK,
        IndexPage {
            site_name: &state.config.site_name,
            base_url: &state.base_url,
            site_url: state.config.site_url.as_deref(),
            error: None,
            email: "",
            name: "",
            return_to: return_to::from_query(&state.config, query.as_deref())
                .map(|u| u.to_string()),
        },
    )
}

pub async fn thanks(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let article = return_to::from_query(&state.config, query.as_deref());
    page(
        StatusCode::OK,
        MessagePage::new(
            crate::subscriptions::PAGE_CHECK_INBOX,
            &[
                "We have sent a link to confirm your subscription to this address, unless it is already subscribed or we sent one a moment ago.",
                "If nothing arrives within a few minutes, look in your spam folder, or sign up again a little later to get a new link.",
            ],
        )
        .site(&state.config.site_name)
        .ways_back(&state, article.as_ref()),
    )
}

#[derive(Debug, Default, serde::Deserialize)]
struct SubscribeBody {
    #[serde(default)]
    email: String,
    name: Option<String>,
    /// The page of the news site the form was on (`web::return_to`).
    return_to: Option<String>,
    /// The honeypot: a field people never see (the form hides it with a
    /// class in the page's stylesheet) and form-filling bots fill in.
    website: Option<String>,
}

impl SubscribeBody {
    fn is_from_a_bot(&self) -> bool {
        self.website
            .as_deref()
            .is_some_and(|w| !w.trim().is_empty())
    }
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
                    "website" => body.website = Some(value.into_owned()),
                    "return_to" => body.return_to = Some(value.into_owned()),
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

/// Keeps the untrusted proxy for `herald doctor` (in the background: the
/// signup does not wait for it, and a failure is only logged).
fn remember_untrusted_forwarder(state: &AppState, proxy: std::net::IpAddr) {
    let store = state.store.clone();
    let value = format!(
        "{proxy} at {}",
        crate::domain::time::format_rfc3339(crate::domain::time::now_millis())
    );
    tokio::spawn(async move {
        if let Err(e) = store
            .set_setting(super::rate_limit::UNTRUSTED_FORWARDING_SETTING, &value)
            .await
        {
            tracing::warn!(error = %e, "could not record the untrusted proxy for herald doctor");
        }
    });
}

/// Form posts get a 303 to the thanks page, JSON gets 202. The answer is
/// the same for new, pending and confirmed addresses, so the form cannot be
/// used to find out who subscribes; and the same when the honeypot field is
/// filled, so a bot cannot tell it was caught (nothing is stored or sent).
/// A client over its rate limit gets 429 before its body is read.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let kind = content_kind(&headers);
    if let Some(proxy) = state
        .signup_limiter
        .first_untrusted_forwarder(peer.ip(), &headers)
    {
        remember_untrusted_forwarder(&state, proxy);
    }
    let client = state.signup_limiter.client_ip(peer.ip(), &headers);
    if let Err(wait) = state.signup_limiter.check(client) {
        return too_many(&state, kind.unwrap_or(Kind::Form), wait);
    }
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
    let article = return_to::own_page(&state.config, body.return_to.as_deref());
    if body.is_from_a_bot() {
        tracing::debug!("a signup filled the honeypot field; nothing stored or sent");
    } else if let Err(refused) =
        sign_up(&state, kind, &body, client, &headers, article.as_ref()).await
    {
        return refused;
    }
    match kind {
        Kind::Form => {
            Redirect::to(&state.url(&format!("/thanks{}", return_to::query(article.as_ref()))))
                .into_response()
        }
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

/// Validates the fields and signs the reader up; `Err` is the page (or
/// JSON) that says why not.
async fn sign_up(
    state: &AppState,
    kind: Kind,
    body: &SubscribeBody,
    client: IpAddr,
    headers: &HeaderMap,
    article: Option<&crate::domain::WebUrl>,
) -> Result<(), Response> {
    let (email, name) = match validate(body) {
        Ok(v) => v,
        Err(DomainError::Invalid(message)) => {
            let status = match kind {
                Kind::Form => StatusCode::BAD_REQUEST,
                Kind::Json => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return Err(refuse(state, kind, status, message, body));
        }
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect::<String>());
    let ip = client.to_string();
    let consent = Consent {
        source: match kind {
            Kind::Form => "form",
            Kind::Json => "api",
        },
        ip: Some(&ip),
        user_agent: user_agent.as_deref(),
        came_from: article,
    };
    subscriptions::subscribe(state, &email, name.as_ref(), &consent)
        .await
        .map(drop)
        .map_err(|e| super::Error::from(e).into_response())
}

/// 429 with Retry-After (whole seconds, at least one).
fn too_many(state: &AppState, kind: Kind, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let message = format!(
        "There were too many signups from your network in the last minute. Please try again in {secs} seconds."
    );
    let mut response = match kind {
        Kind::Json => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({ "error": message })),
        )
            .into_response(),
        Kind::Form => page(
            StatusCode::TOO_MANY_REQUESTS,
            MessagePage::new("Please wait a moment", &[&message])
                .site(&state.config.site_name)
                .link(state.url("/"), "Back to the form"),
        ),
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
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
                    return_to: return_to::own_page(&state.config, body.return_to.as_deref())
                        .map(|u| u.to_string()),
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(256)
    }

    /// Whatever a body holds, the parse the handler uses answers with a
    /// body or a message, and every body either validates or is refused
    /// with a message a person can read.
    fn parse_and_validate(kind: Kind, bytes: &[u8]) -> Result<(), TestCaseError> {
        match parse_body(kind, bytes) {
            Err(BodyError::Malformed(m)) => prop_assert!(!m.is_empty()),
            Err(BodyError::TooLarge | BodyError::UnsupportedType) => {
                prop_assert!(false, "parse_body never judges size or type")
            }
            Ok(body) => match validate(&body) {
                Ok((email, name)) => {
                    prop_assert!(SubscriberEmail::parse(email.as_str()).is_ok());
                    prop_assert!(name.is_none_or(|n| !n.as_str().contains(['\r', '\n'])));
                }
                Err(DomainError::Invalid(m)) => prop_assert!(!m.is_empty()),
            },
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn signup_form_parser_never_panics_on_arbitrary_bodies(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            parse_and_validate(Kind::Form, &bytes)?;
            parse_and_validate(Kind::Json, &bytes)?;
        }

        #[test]
        fn signup_form_parser_never_panics_on_arbitrary_fields(
            email in "\\PC{0,60}|[a-zA-Z0-9.@\\[\\]\u{202E}-]{0,30}",
            name in "\\PC{0,30}|.{0,10}",
            website in prop::option::of("\\PC{0,5}"),
        ) {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("email", &email).append_pair("name", &name);
            if let Some(w) = &website {
                form.append_pair("website", w);
            }
            parse_and_validate(Kind::Form, form.finish().as_bytes())?;
            let json = serde_json::json!({"email": email, "name": name, "website": website});
            parse_and_validate(Kind::Json, json.to_string().as_bytes())?;
        }
    }
}
