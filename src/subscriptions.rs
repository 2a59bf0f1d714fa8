//! Signing up, confirming and unsubscribing: the application layer the web
//! handlers call. Nothing here waits on SMTP: mail goes through the outbox.

use crate::domain::time::now_millis;
use crate::domain::token::{hash_token, new_confirmation_token, LinkSigner};
use crate::domain::{SubscriberEmail, SubscriberName};
use crate::startup::AppState;
use crate::store::{
    ConfirmOutcome, NewSignup, PendingConfirmation, SignupOutcome, SignupRequest, SubscriberRow,
    TokenLookup,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// Where the signup came from and who agreed (kept as the consent record).
pub struct Consent<'a> {
    pub source: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn subscribe(
    state: &AppState,
    email: &SubscriberEmail,
    name: Option<&SubscriberName>,
    consent: &Consent<'_>,
) -> Result<SignupOutcome, Error> {
    let config = &state.config;
    let token = new_confirmation_token();
    let confirm_url = format!("{}/confirm/{token}", state.base_url);
    let ttl_hours = config.confirmation.token_ttl_hours;
    let now = now_millis();
    let pending = PendingConfirmation {
        token_hash: hash_token(&token),
        expires_at: now + (ttl_hours as i64) * 3_600_000,
        subject: crate::domain::single_line(&format!(
            "Confirm your subscription to {}",
            config.site_name
        )),
        confirm_url,
    };
    let request = SignupRequest {
        email,
        name,
        source: consent.source,
        consent_ip: consent.ip,
        consent_user_agent: consent.user_agent,
        now,
        resend_interval_ms: (config.confirmation.resend_interval_secs as i64) * 1000,
    };
    // A new address goes through the batching writer; a known one (or a
    // failed batch) takes the transaction that reads the address's state.
    let signup = NewSignup {
        email: email.as_str().to_owned(),
        name: name.map(|n| n.as_str().to_owned()),
        source: consent.source.to_owned(),
        consent_ip: consent.ip.map(str::to_owned),
        consent_user_agent: consent.user_agent.map(str::to_owned),
        now,
        confirmation: pending.clone(),
    };
    let outcome = match state.signups.insert_new(signup).await {
        Ok(true) => SignupOutcome::Created,
        Ok(false) | Err(_) => state.store.signup_known_address(&request, &pending).await?,
    };
    tracing::info!(?outcome, source = consent.source, "signup");
    state.wake_worker.notify_one();
    Ok(outcome)
}

pub async fn lookup_confirmation(state: &AppState, token: &str) -> Result<TokenLookup, Error> {
    Ok(state
        .store
        .lookup_confirmation_token(&hash_token(token), now_millis())
        .await?)
}

pub async fn confirm(state: &AppState, token: &str) -> Result<ConfirmOutcome, Error> {
    let outcome = state
        .store
        .confirm(&hash_token(token), now_millis())
        .await?;
    tracing::info!(?outcome, "confirmation");
    Ok(outcome)
}

/// Sends a fresh confirmation link for the address an (expired) token was
/// issued to. Rate-limited like any resend.
pub async fn resend_confirmation(
    state: &AppState,
    token: &str,
) -> Result<Option<SignupOutcome>, Error> {
    let email = match lookup_confirmation(state, token).await? {
        TokenLookup::Expired { email } | TokenLookup::Valid { email } => email,
        TokenLookup::Used | TokenLookup::Unknown => return Ok(None),
    };
    let email = SubscriberEmail::from_trusted(email);
    let consent = Consent {
        source: "resend",
        ip: None,
        user_agent: None,
    };
    Ok(Some(subscribe(state, &email, None, &consent).await?))
}

/// The subscriber an unsubscribe token was issued for, if its signature holds.
pub async fn subscriber_for_unsubscribe_token(
    state: &AppState,
    token: &str,
) -> Result<Option<SubscriberRow>, Error> {
    let Some(id) = LinkSigner::claimed_id(token) else {
        return Ok(None);
    };
    let Some(subscriber) = state.store.subscriber_by_id(id).await? else {
        return Ok(None);
    };
    if state.signer.verify(token, subscriber.id, &subscriber.email) {
        Ok(Some(subscriber))
    } else {
        Ok(None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeOutcome {
    Unsubscribed,
    AlreadyUnsubscribed,
    InvalidToken,
}

/// Idempotent; effective for every digest not yet sent to the subscriber.
pub async fn unsubscribe(state: &AppState, token: &str) -> Result<UnsubscribeOutcome, Error> {
    let Some(subscriber) = subscriber_for_unsubscribe_token(state, token).await? else {
        return Ok(UnsubscribeOutcome::InvalidToken);
    };
    let changed = state.store.unsubscribe(subscriber.id, now_millis()).await?;
    tracing::info!(subscriber_id = subscriber.id, changed, "unsubscribe");
    Ok(if changed {
        UnsubscribeOutcome::Unsubscribed
    } else {
        UnsubscribeOutcome::AlreadyUnsubscribed
    })
}
