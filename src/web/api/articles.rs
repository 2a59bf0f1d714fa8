use super::ApiError;
use crate::articles::{self, ArticleInput};
use crate::startup::AppState;
use axum::extract::State;
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
