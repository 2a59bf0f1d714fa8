use super::pages::{MessagePage, Page};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What can go wrong in a page handler. The response never shows internals:
/// they go to the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Subscriptions(#[from] crate::subscriptions::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("page template failed to render: {0}")]
    Template(#[from] askama::Error),
    #[error("could not write the Atom feed: {0}")]
    Feed(#[from] atom_syndication::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        Page {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            page: MessagePage::new(
                "Something went wrong",
                &["We could not complete your request. Nothing was lost: please try again in a minute."],
            ),
        }
        .into_response()
    }
}
