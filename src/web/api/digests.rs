use super::ApiError;
use crate::digest::{self, CreateOutcome};
use crate::domain::time::now_millis;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

/// `POST /api/digests`: create a digest now and queue it. An
/// `Idempotency-Key` header makes a retried request return the digest the
/// first one created instead of sending a second.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = match headers.get("idempotency-key") {
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                ApiError::BadRequest("Idempotency-Key must be visible ASCII".into())
            })?;
            if key.is_empty() || key.len() > 200 {
                return Err(ApiError::BadRequest(
                    "Idempotency-Key must be 1 to 200 characters".into(),
                ));
            }
            Some(key.to_string())
        }
        None => None,
    };
    let slot = digest::manual_slot(key.as_deref());
    match digest::create(&state.store, &state.config, &slot, now_millis()).await? {
        CreateOutcome::Created(id) => {
            state.wake_worker.notify_one();
            Ok((
                StatusCode::CREATED,
                Json(json!({"id": id, "created": true})),
            ))
        }
        CreateOutcome::AlreadyExists(id) => {
            Ok((StatusCode::OK, Json(json!({"id": id, "created": false}))))
        }
        CreateOutcome::NothingNew(quiet) => Ok((
            StatusCode::OK,
            Json(json!({
                "id": null,
                "created": false,
                "reason": quiet.to_string(),
                "waiting": quiet,
            })),
        )),
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "digests": state.store.recent_digests(50).await? }),
    ))
}

pub async fn status_json(state: &AppState, id: i64) -> Result<Value, ApiError> {
    let digest = state
        .store
        .digest_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("no such digest"))?;
    let counts = state.store.digest_counts(id, now_millis()).await?;
    let reports = state.store.digest_event_counts(id).await?;
    let (last_error, delivery) = state.store.delivery_problems(&digest).await?;
    let failures: Vec<Value> = state
        .store
        .failed_deliveries(id, 100)
        .await?
        .into_iter()
        .map(|(email, error)| json!({"email": email, "error": error}))
        .collect();
    Ok(json!({
        "digest": digest,
        "counts": counts,
        "reports": reports,
        "failures": failures,
        "last_error": last_error,
        "delivery": delivery,
    }))
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_json(&state, id).await?))
}

pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    if !state
        .store
        .set_digest_status(id, &["queued", "sending"], "paused")
        .await?
    {
        return Err(ApiError::Conflict(
            "only a queued or sending digest can be paused".into(),
        ));
    }
    Ok(Json(status_json(&state, id).await?))
}

pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    if !state
        .store
        .set_digest_status(id, &["paused"], "sending")
        .await?
    {
        return Err(ApiError::Conflict(
            "only a paused digest can be resumed".into(),
        ));
    }
    state.wake_worker.notify_one();
    Ok(Json(status_json(&state, id).await?))
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    match state.store.cancel_digest(id, now_millis()).await? {
        Some(unsent) => {
            let mut body = status_json(&state, id).await?;
            body["unsent"] = json!(unsent);
            Ok(Json(body))
        }
        None => Err(ApiError::Conflict(
            "only a queued, sending or paused digest can be cancelled".into(),
        )),
    }
}
