use crate::domain::time::{format_rfc3339, now_millis};
use crate::startup::AppState;
use crate::store::SmtpHealthRow;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// 503 when the database does not answer. Otherwise 200, with `status`
/// "ok", or "degraded" when delivery is stuck: an SMTP server stopped for a
/// configuration error, or failing for longer than its cool-down (with the
/// last error). Degraded stays 200: the web side works, and a restart
/// would not fix a relay.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store.backend_name();
    let servers = match state.store.smtp_health().await {
        Ok(servers) => servers,
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": database})),
            );
        }
    };
    let cooldown_ms = (state.config.delivery.cooldown_secs as i64) * 1000;
    let now = now_millis();
    let is_stuck = |s: &SmtpHealthRow| {
        s.state == "stopped" || (s.state == "failing" && now - s.since > cooldown_ms)
    };
    let status = if servers.iter().any(is_stuck) {
        "degraded"
    } else {
        "ok"
    };
    let delivery: Vec<_> = servers
        .iter()
        .map(|s| {
            json!({
                "server": s.server,
                "state": s.state,
                "since": format_rfc3339(s.since),
                "last_error": s.last_error,
                "is_degraded": is_stuck(s),
            })
        })
        .collect();
    (
        StatusCode::OK,
        Json(json!({"status": status, "database": database, "delivery": delivery})),
    )
}
