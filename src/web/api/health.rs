//! `GET /api/health`: the health report with its details, for the
//! operator only (the public `/health` says ok, degraded or unavailable).

use crate::state::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;

pub async fn show(State(state): State<AppState>) -> impl IntoResponse {
    let (code, report) = crate::web::health::report(&state).await;
    (code, Json(report))
}
