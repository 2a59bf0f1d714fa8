use super::ApiError;
use crate::domain::feed_settings::{BackfillDays, PollInterval};
use crate::domain::time::now_millis;
use crate::domain::web_url::FeedUrl;
use crate::domain::DomainError;
use crate::feeds::{self, add, Poller};
use crate::state::AppState;
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
    /// Follow it even when the first fetch finds a problem.
    #[serde(default)]
    force: bool,
}

fn bad_number(field: &str, e: DomainError) -> ApiError {
    ApiError::BadRequest(format!("{field}: {e}"))
}

/// `POST /api/feeds {"url": …, "backfill_days"?: 0–365, "poll_interval_secs"?: 60–604800, "force"?: bool}`:
/// herald fetches the feed once (`feeds::add`). 201 when new, with the
/// first poll's `report` (items found, new, held back); 200 when already
/// followed; 422 with the reason (`error`) when the URL is not a feed herald
/// can read and `force` is not set (nothing is stored); 400 naming the
/// allowed range for a number out of it.
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
    let poller = Poller::new(state.store.clone(), state.config.clone())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let request = add::NewFeed {
        url: &url,
        interval,
        backfill,
        force: body.force,
    };
    match add::add(&state.store, &poller, &request).await {
        Ok(added) => Ok((
            if added.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(json!({
                "id": added.id,
                "created": added.created,
                "title": added.title,
                "report": added.report,
                "forced_past": added.forced_past.map(|p| p.to_string()),
            })),
        )),
        Err(add::AddError::Refused(problem)) => Err(ApiError::Unprocessable(format!(
            "not added: {problem}; send \"force\": true to add it anyway"
        ))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Every feed with its last poll, last error, next poll time, and the
/// items its last poll refused (`refused_items`, `last_refusal`).
/// Each also has `held_back_articles`: stored at its first poll but kept
/// out of digests until `POST /api/feeds/{id}/backfill` releases them.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let held_back = state.store.held_back_by_feed().await?;
    let feeds: Vec<Value> = state
        .store
        .list_feeds()
        .await?
        .into_iter()
        .map(|f| {
            let n = held_back.get(&f.id).copied().unwrap_or(0);
            let mut v = json!(f);
            v["held_back_articles"] = json!(n);
            v
        })
        .collect();
    Ok(Json(json!({ "feeds": feeds })))
}

#[derive(Debug, serde::Deserialize)]
pub struct Backfill {
    days: i64,
}

/// `POST /api/feeds/{id}/backfill {"days": 1–3650}`: releases the feed's
/// held-back articles published in the last `days` days into the next
/// digest; answers how many (`released`), how many of those are too old
/// for a digest (`too_old`) and how many stay held back.
pub async fn backfill(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<Backfill>,
) -> Result<Json<Value>, ApiError> {
    if !(1..=3650).contains(&body.days) {
        return Err(ApiError::BadRequest(
            "days: a whole number of days from 1 to 3650".into(),
        ));
    }
    let released =
        feeds::release_held_back(&state.store, &state.config, id, body.days, now_millis())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or(ApiError::NotFound("no such feed"))?;
    Ok(Json(json!(released)))
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
