//! The HTTP surface. The module tree mirrors the URL space: a reader who
//! sees a URL knows which file answers it.

pub mod api;
mod confirm;
mod error;
mod health;
mod pages;
pub mod rate_limit;
mod subscribe;
mod unsubscribe;

pub use error::Error;

use crate::startup::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
