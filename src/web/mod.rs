//! The HTTP surface. The module tree mirrors the URL space: a reader who
//! sees a URL knows which file answers it.

pub mod api;
mod confirm;
mod error;
mod health;
mod pages;
pub mod server;
mod subscribe;
mod unsubscribe;

pub use error::Error;

use crate::startup::AppState;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request};
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Largest public form or JSON body accepted (a signup is a few hundred bytes).
pub const PUBLIC_BODY_LIMIT: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(subscribe::form))
        .route("/subscribe", post(subscribe::submit))
        .route("/thanks", get(subscribe::thanks))
        .route("/confirm/{token}", get(confirm::show).post(confirm::submit))
        .route("/confirm/{token}/resend", post(confirm::resend))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::show).post(unsubscribe::submit),
        )
        .route(
            "/unsubscribe/one-click/{token}",
            post(unsubscribe::one_click),
        )
        .route("/health", get(health::health))
        .layer(DefaultBodyLimit::max(PUBLIC_BODY_LIMIT))
        .nest("/api", api::router(state.clone()))
        .fallback(pages::not_found)
        // Security headers on every response, JSON and errors included; a
        // handler that sets one itself keeps its own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The request span names the path with its token segments redacted
/// (confirmation and unsubscribe links are credentials), and no query.
fn request_span(request: &Request<Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %crate::redact::path_for_log(request.uri().path()),
    )
}

/// The Content-Security-Policy every response carries: pages load nothing
/// but their own stylesheet, run no script, post forms only to herald, and
/// cannot be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
