//! `GET /confirm/{token}` shows a button; only its POST confirms, so a mail
//! scanner that opens every link confirms nobody.

use super::pages::{page, MessagePage};
use super::return_to;
use crate::state::AppState;
use crate::store::{ConfirmOutcome, SignupOutcome, TokenLookup};
use crate::subscriptions::{
    self, PAGE_ALREADY_CONFIRMED, PAGE_EXPIRED, PAGE_NOT_SUBSCRIBED, PAGE_REPLACED, PAGE_SUBSCRIBED,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

fn invalid_link(state: &AppState) -> Response {
    page(
        StatusCode::NOT_FOUND,
        MessagePage::new(
            "This link is not valid",
            &["The confirmation link is incomplete or was never issued. Copy the whole link from the message, or sign up again."],
        )
        .site(&state.config.site_name)
        .link(state.url("/"), "Sign up again"),
    )
}

fn expired(state: &AppState, token: &str, back: &str) -> Response {
    page(
        StatusCode::GONE,
        MessagePage::new(
            PAGE_EXPIRED,
            &["Confirmation links work for a limited time. We can send you a fresh one."],
        )
        .site(&state.config.site_name)
        .action(
            state.url(&format!("/confirm/{token}/resend{back}")),
            "Send me a new link",
        ),
    )
}

fn already(state: &AppState, article: Option<&crate::domain::WebUrl>) -> Response {
    page(
        StatusCode::OK,
        MessagePage::new(
            PAGE_ALREADY_CONFIRMED,
            &["This link was already used: your subscription is confirmed. There is nothing more to do."],
        )
        .site(&state.config.site_name)
        .ways_back(state, article),
    )
}

fn replaced(state: &AppState) -> Response {
    page(
        StatusCode::GONE,
        MessagePage::new(
            PAGE_REPLACED,
            &["A newer confirmation link was sent to this address since this one. Use the link in the latest message, or sign up again to get a new one."],
        )
        .site(&state.config.site_name)
        .link(state.url("/"), "Sign up again"),
    )
}

fn not_subscribed(state: &AppState, why: &'static str) -> Response {
    page(
        StatusCode::GONE,
        MessagePage::new(
            PAGE_NOT_SUBSCRIBED,
            &[
                why,
                "To receive the digest, sign up again: we will send you a new link.",
            ],
        )
        .site(&state.config.site_name)
        .link(state.url("/"), "Sign up again"),
    )
}

/// The page for every link that does not (or no longer) confirm.
fn not_confirmable(
    state: &AppState,
    token: &str,
    lookup: TokenLookup,
    article: Option<&crate::domain::WebUrl>,
) -> Response {
    match lookup {
        TokenLookup::AlreadyConfirmed => already(state, article),
        TokenLookup::Expired { .. } => expired(state, token, &return_to::query(article)),
        TokenLookup::Superseded => replaced(state),
        TokenLookup::Unsubscribed => not_subscribed(
            state,
            "This address was unsubscribed after the link was sent, so the link no longer confirms anything.",
        ),
        TokenLookup::Bounced => not_subscribed(
            state,
            "Our mail to this address bounced after the link was sent, so the link no longer confirms anything.",
        ),
        TokenLookup::Unknown | TokenLookup::Valid { .. } => invalid_link(state),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, super::Error> {
    let state = &state;
    let token = token.as_str();
    let article = return_to::from_query(&state.config, query.as_deref());
    Ok(
        match subscriptions::lookup_confirmation(state, token).await? {
            TokenLookup::Valid { .. } => page(
                StatusCode::OK,
                MessagePage::new(
                    "Confirm your subscription",
                    &["One more step: press the button to start receiving the digest."],
                )
                .site(&state.config.site_name)
                .action(
                    state.url(&format!(
                        "/confirm/{token}{}",
                        return_to::query(article.as_ref())
                    )),
                    "Confirm subscription",
                ),
            ),
            other => not_confirmable(state, token, other, article.as_ref()),
        },
    )
}

pub async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, super::Error> {
    let article = return_to::from_query(&state.config, query.as_deref());
    Ok(match subscriptions::confirm(&state, &token).await? {
        ConfirmOutcome::Confirmed => page(
            StatusCode::OK,
            MessagePage::new(
                PAGE_SUBSCRIBED,
                &["Thank you for confirming. The next digest will reach you at this address; every digest has a one-click unsubscribe link."],
            )
            .site(&state.config.site_name)
            .ways_back(&state, article.as_ref()),
        ),
        ConfirmOutcome::NotConfirmed(lookup) => {
            not_confirmable(&state, &token, lookup, article.as_ref())
        }
    })
}

pub async fn resend(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, super::Error> {
    let article = return_to::from_query(&state.config, query.as_deref());
    let article = article.as_ref();
    Ok(match subscriptions::resend_confirmation(&state, &token, article).await? {
        Err(lookup) => not_confirmable(&state, &token, lookup, article),
        Ok(SignupOutcome::AlreadyConfirmed) => already(&state, article),
        Ok(_) => page(
            StatusCode::OK,
            MessagePage::new(
                subscriptions::PAGE_CHECK_INBOX,
                &["If a new link can be sent, it is on its way. It may take a few minutes to arrive."],
            )
            .site(&state.config.site_name)
            .ways_back(&state, article),
        ),
    })
}
