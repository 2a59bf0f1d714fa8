use super::ApiError;
use crate::domain::feed_settings::{BackfillDays, PollInterval};
use crate::domain::web_url::FeedUrl;
use crate::domain::DomainError;
use crate::feeds::{self, Poller};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

#[derive(Debug, serde::Deserialize)]
pub struct NewFeed {
    url: String,
    /// Any JSON value: the range check below answers with the allowed
    /// range, where a typed field would only say "expected u64".
    backfill_days: Option<serde_json::Value>,
    poll_interval_secs: Option<serde_json::Value>,
}

fn bad_number(field: &str, e: DomainError) -> ApiError {
    ApiError::BadRequest(format!("{field}: {e}"))
}

/// `POST /api/feeds {"url": …, "backfill_days"?: 0–365, "poll_interval_secs"?: 60–604800}`:
/// 201 when new, 200 when already followed; 400 naming the allowed range
/// for a number out of it.
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewFeed>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let url = FeedUrl::parse(&body.url)
        .map_err(|_| ApiError::BadRequest("the feed URL must be an absolute http(s) URL".into()))?;
    let (default_interval, default_backfill) = feeds::default_settings(&state.config.feeds)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let interval = match &body.poll_interval_secs {
        Some(v) => PollInterval::from_json(v).map_err(|e| bad_number("poll_interval_secs", e))?,
        None => default_interval,
    };
    let backfill = match &body.backfill_days {
        Some(v) => BackfillDays::from_json(v).map_err(|e| bad_number("backfill_days", e))?,
        None => default_backfill,
    };
    match feeds::follow(&state.store, &url, interval, backfill).await {
        Ok((id, created)) => Ok((
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(json!({"id": id, "created": created})),
        )),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Every feed with its last poll, last error, next poll time, and the
/// items its last poll refused (`refused_items`, `last_refusal`).
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
