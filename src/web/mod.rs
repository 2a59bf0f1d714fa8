//! The HTTP surface. The module tree mirrors the URL space: a reader who
//! sees a URL knows which file answers it.

pub mod api;
mod archive;
mod confirm;
mod error;
mod health;
mod inbound;
mod pages;
pub mod rate_limit;
pub mod return_to;
pub mod server;
mod subscribe;
mod unsubscribe;
mod webhooks;

pub use error::Error;

use crate::state::AppState;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

/// Largest public form or JSON body accepted (a signup is a few hundred bytes).
pub const PUBLIC_BODY_LIMIT: usize = 16 * 1024;

/// herald's routes, at the root and, when `base_url` has a path
/// (`https://news.example.com/newsletter`), under that path too: a proxy
/// that passes the path through and one that strips it both work.
pub fn router(state: AppState) -> Router {
    let routes = routes(state.clone());
    let app = match base_path(&state.base_url) {
        Some(prefix) => Router::new()
            .nest(&prefix, routes.clone())
            // `nest` serves `/newsletter`; the signup page is also at `/newsletter/`.
            .route(&format!("{prefix}/"), get(subscribe::form))
            .merge(routes),
        None => routes,
    };
    app.fallback(pages::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The path of `base_url` without its trailing slash, if it has one.
fn base_path(base_url: &str) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    let path = url.path().trim_end_matches('/');
    (!path.is_empty()).then(|| path.to_string())
}

fn routes(state: AppState) -> Router<AppState> {
    let public = Router::new()
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
        .route("/health", get(health::health));
    // Disabled, the archive is not there: its URLs get the 404 page.
    let public = if state.config.archive.enabled {
        public
            .route("/archive", get(archive::list))
            .route("/archive/feed.xml", get(archive::feed))
            .route("/archive/{id}", get(archive::show))
    } else {
        public
    };
    public
        .layer(DefaultBodyLimit::max(PUBLIC_BODY_LIMIT))
        // Its own token and its own body limit (inbound::MAX_MESSAGE_BYTES).
        .route(
            "/inbound",
            post(inbound::receive).layer(DefaultBodyLimit::disable()),
        )
        // Relay webhooks: each its own authentication and body limit
        // (crate::webhooks::MAX_BODY_BYTES).
        .route(
            "/webhooks/ses",
            post(webhooks::ses).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/webhooks/sendgrid",
            post(webhooks::sendgrid).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/webhooks/postmark",
            post(webhooks::postmark).layer(DefaultBodyLimit::disable()),
        )
        .nest("/api", api::router(state))
}

/// Security headers on every response, JSON and errors included; a
/// handler that sets one itself keeps its own. One layer for all four:
/// each layer is a future wrapped around every request.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    response
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
pub const CONTENT_SECURITY_POLICY: &str = concat!(
    "default-src 'none'; style-src 'sha256-",
    "uUWSPEhpcA8dTS9yl4XN6oSn1P/1nzur3Hbt3t1m2qU=",
    "'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
);

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_policy_allows_exactly_the_pages_stylesheet() {
        let hash = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(pages::STYLESHEET.as_bytes()));
        assert!(
            CONTENT_SECURITY_POLICY.contains(&format!("'sha256-{hash}'")),
            "the stylesheet changed: put 'sha256-{hash}' in CONTENT_SECURITY_POLICY"
        );
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    }

    #[test]
    fn the_base_path_is_read_from_the_base_url() {
        assert_eq!(base_path("https://news.example.com"), None);
        assert_eq!(base_path("https://news.example.com/"), None);
        assert_eq!(
            base_path("https://news.example.com/newsletter/"),
            Some("/newsletter".into())
        );
    }
}
