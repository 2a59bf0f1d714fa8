//! `GET /unsubscribe/{token}` shows a button; its POST, and a bare RFC 8058
//! POST to `/unsubscribe/one-click/{token}`, unsubscribe at once.

use super::pages::{page, MessagePage};
use crate::domain::masked_address;
use crate::state::AppState;
use crate::subscriptions::{self, UnsubscribeOutcome, PAGE_UNSUBSCRIBED};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

fn invalid(state: &AppState) -> Response {
    page(
        StatusCode::NOT_FOUND,
        MessagePage::new(
            "This link is not valid",
            &["The unsubscribe link is incomplete or was not issued by us. Copy the whole link from the digest and try again."],
        )
        .site(&state.config.site_name),
    )
}

/// Which address a page is about, masked (`a•••@example.org`).
fn for_address(email: &str) -> String {
    format!("This is for {}.", masked_address(email))
}

fn done(state: &AppState, email: &str) -> Response {
    page(
        StatusCode::OK,
        MessagePage::new(
            PAGE_UNSUBSCRIBED,
            &["You will not receive any more digests from us. If this was a mistake, you can sign up again at any time."],
        )
        .paragraph(for_address(email))
        .site(&state.config.site_name)
        .link(state.url("/"), "Sign up again")
        .ways_back(state, None),
    )
}

pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, super::Error> {
    let Some(subscriber) = subscriptions::subscriber_for_unsubscribe_token(&state, &token).await?
    else {
        return Ok(invalid(&state));
    };
    if subscriber.status == "unsubscribed" {
        return Ok(done(&state, &subscriber.email));
    }
    Ok(page(
        StatusCode::OK,
        MessagePage::new(
            "Unsubscribe from the digest?",
            &["Press the button and we will stop sending the digest to this address at once."],
        )
        .paragraph(for_address(&subscriber.email))
        .site(&state.config.site_name)
        .action(state.url(&format!("/unsubscribe/{token}")), "Unsubscribe"),
    ))
}

pub async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, super::Error> {
    Ok(match subscriptions::unsubscribe(&state, &token).await? {
        UnsubscribeOutcome::InvalidToken => invalid(&state),
        UnsubscribeOutcome::Unsubscribed(email)
        | UnsubscribeOutcome::AlreadyUnsubscribed(email) => done(&state, &email),
    })
}

/// RFC 8058: mail clients POST `List-Unsubscribe=One-Click` here, without
/// cookies or JavaScript. Whatever the body, a valid token unsubscribes.
pub async fn one_click(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, super::Error> {
    Ok(match subscriptions::unsubscribe(&state, &token).await? {
        UnsubscribeOutcome::InvalidToken => {
            (StatusCode::NOT_FOUND, "unknown unsubscribe link\n").into_response()
        }
        UnsubscribeOutcome::Unsubscribed(_) | UnsubscribeOutcome::AlreadyUnsubscribed(_) => {
            (StatusCode::OK, "unsubscribed\n").into_response()
        }
    })
}
