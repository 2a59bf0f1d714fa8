use super::{ApiError, ApiJson};
use crate::feeds::{self, Poller};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

#[derive(Debug, serde::Deserialize)]
pub struct NewFeed {
    url: String,
    backfill_days: Option<u64>,
    poll_interval_secs: Option<u64>,
}

/// `POST /api/feeds {"url": …, "backfill_days"?: n, "poll_interval_secs"?: n}`:
/// 201 when new, 200 when already followed.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewFeed>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut settings = state.config.feeds.clone();
    settings.backfill_days = body.backfill_days.unwrap_or(settings.backfill_days);
    settings.poll_interval_secs = body
        .poll_interval_secs
        .unwrap_or(settings.poll_interval_secs)
        .max(60);
    match feeds::add_feed(&state.store, &settings, &body.url).await {
        Ok((id, created)) => Ok((
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(json!({"id": id, "created": created})),
        )),
        Err(feeds::Error::InvalidUrl(_)) => Err(ApiError::BadRequest(
            "the feed URL must be an absolute http(s) URL".into(),
        )),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Every feed with its last poll, last error and next poll time.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "feeds": state.store.list_feeds().await? })))
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let feed = state
        .store
        .feed_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("no such feed"))?;
    Ok(Json(json!({ "feed": feed })))
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if state.store.remove_feed(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such feed"))
    }
}

/// Polls the feed now and says what it found.
pub async fn poll(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let feed = state
        .store
        .feed_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("no such feed"))?;
    let poller = Poller::new(state.store.clone(), state.config.clone())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let report = poller.poll(&feed).await?;
    Ok(Json(json!({ "report": report })))
}
