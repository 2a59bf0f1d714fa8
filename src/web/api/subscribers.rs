//! `GET /api/subscribers` (counts per status and a page of subscribers,
//! `?status=bounced`) and `GET /api/subscriber-events` (the newest
//! bounces, complaints and unsubscribes by mail, `?kind=complaint`).

use super::ApiError;
use crate::domain::time::format_rfc3339;
use crate::domain::SubscriberStatus;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
}

fn limit(given: Option<i64>) -> Result<i64, ApiError> {
    match given.unwrap_or(100) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::BadRequest(format!(
            "limit must be 1 to 1000, not {n}"
        ))),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = &q.status {
        if SubscriberStatus::parse(s).is_none() {
            return Err(ApiError::BadRequest(format!(
                "unknown status {s:?}: use pending, confirmed, unsubscribed or bounced"
            )));
        }
    }
    let counts: serde_json::Map<String, Value> = state
        .store
        .subscriber_counts()
        .await?
        .into_iter()
        .map(|(status, n)| (status, json!(n)))
        .collect();
    let subscribers: Vec<Value> = state
        .store
        .list_subscribers(q.status.as_deref(), limit(q.limit)?)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "email": s.email,
                "name": s.name,
                "status": s.status,
                "created_at": format_rfc3339(s.created_at),
            })
        })
        .collect();
    Ok(Json(
        json!({ "counts": counts, "subscribers": subscribers }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    kind: Option<String>,
    limit: Option<i64>,
}

pub async fn events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(k) = &q.kind {
        if crate::store::EventKind::parse(k).is_none() {
            return Err(ApiError::BadRequest(format!(
                "unknown kind {k:?}: use bounce, soft_bounce, complaint or unsubscribe"
            )));
        }
    }
    let events: Vec<Value> = state
        .store
        .recent_subscriber_events(q.kind.as_deref(), limit(q.limit)?)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "subscriber_id": e.subscriber_id,
                "email": e.email,
                "digest_id": e.digest_id,
                "kind": e.kind,
                "source": e.source,
                "detail": e.detail,
                "created_at": format_rfc3339(e.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}
