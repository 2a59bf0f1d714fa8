//! `GET /health`: what a load balancer needs, and nothing an outsider
//! could use. The SMTP servers' names, states and last errors (a relay's
//! host and port, its replies) are for the operator: `GET /api/health`,
//! `GET /api/smtp-servers` and `herald smtp list`.

use crate::domain::time::{format_rfc3339, now_millis};
use crate::state::AppState;
use crate::store::SmtpHealthRow;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// 503 when the database does not answer. Otherwise 200, with `status`
/// "ok", or "degraded" when delivery is stuck. Degraded stays 200: the
/// web side works, and a restart would not fix a relay.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (code, report) = report(&state).await;
    (
        code,
        Json(json!({"status": report["status"], "database": report["database"]})),
    )
}

/// The whole report, for `GET /api/health`: the status as `/health`
/// gives it, and each SMTP server's state, since when, its last error,
/// and whether it is what makes the status degraded: an SMTP server
/// stopped for a configuration error, or failing for longer than its
/// cool-down.
pub async fn report(state: &AppState) -> (StatusCode, Value) {
    let database = state.store.backend_name();
    let servers = match state.store.smtp_health().await {
        Ok(servers) => servers,
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable", "database": database}),
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
        json!({"status": status, "database": database, "delivery": delivery}),
    )
}
