use super::ApiError;
use crate::articles::{self, ArticleInput};
use crate::domain::time::now_millis;
use crate::state::AppState;
use crate::store::Removal;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

/// `POST /api/articles`: 201 for a new article, 200 when the URL (guid)
/// was known and the article was updated.
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<ArticleInput>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    match articles::add_article(&state.store, input).await {
        Ok((id, created)) => Ok((
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(serde_json::json!({"id": id, "created": created})),
        )),
        Err(articles::Error::Invalid(m)) => Err(ApiError::BadRequest(m.to_string())),
        Err(articles::Error::Store(e)) => Err(e.into()),
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let articles = state.store.list_articles(100).await?;
    Ok(Json(serde_json::json!({ "articles": articles })))
}

/// `DELETE /api/articles/{id}`: 204 when removed (no digest will carry
/// it, and its feed does not bring it back); 409 when a digest that was
/// not cancelled carries it (the digest and the archive keep it).
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    match state.store.remove_article(id, now_millis()).await? {
        Removal::Removed => Ok(StatusCode::NO_CONTENT),
        Removal::NotFound => Err(ApiError::NotFound("no such article")),
        Removal::InDigest { digest_id, status } => Err(ApiError::Conflict(format!(
            "the article is in digest {digest_id} ({status}), which keeps it"
        ))),
    }
}
