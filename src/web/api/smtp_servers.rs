//! `GET /api/smtp-servers` and `POST /api/smtp-servers/{name}/resume`.

use super::ApiError;
use crate::delivery::servers;
use crate::domain::time::format_rfc3339;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rows = servers::list(&state.store).await?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|s| {
            json!({
                "server": s.server,
                "state": s.state,
                "since": format_rfc3339(s.since),
                "last_error": s.last_error,
            })
        })
        .collect();
    Ok(Json(json!({ "servers": list })))
}

/// 200 when the server was stopped and is now taken back into use, with
/// a note that the workers keep the configuration they started with; 404
/// for a server herald has no state of; 409 when it was not stopped
/// (nothing to resume).
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if servers::resume(&state.store, &name).await? {
        return Ok(Json(json!({
            "server": name,
            "resumed": true,
            "configuration": "not re-read: the delivery workers try the server again with the configuration they were started with; a changed URL, password, ca_file or tls_pin takes effect when herald is restarted",
        })));
    }
    match servers::list(&state.store)
        .await?
        .into_iter()
        .find(|s| s.server == name)
    {
        None => Err(ApiError::NotFound(
            "no SMTP server of that name; GET /api/smtp-servers lists them",
        )),
        Some(s) => Err(ApiError::Conflict(format!(
            "SMTP server {name:?} is {}, not stopped: nothing to resume",
            s.state
        ))),
    }
}
