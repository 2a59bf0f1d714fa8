//! Signing up, confirming and unsubscribing: the application layer the web
//! handlers call. Nothing here waits on SMTP: mail goes through the outbox.
//!
//! Every change of a subscriber's state is one of [`TRANSITIONS`]; each is
//! made by an UPDATE that names the state it expects (`WHERE status = …`)
//! and checks the rows it changed, and the page shown says what is now
//! true. `tests/subscriber_transitions.rs` drives every row of the table
//! through the HTTP routes on both databases.

use crate::domain::time::now_millis;
use crate::domain::token::{hash_token, new_confirmation_token, LinkSigner};
use crate::domain::{SubscriberEmail, SubscriberName};
use crate::state::AppState;
use crate::store::{
    ConfirmOutcome, NewSignup, PendingConfirmation, SignupOutcome, SignupRequest, SubscriberRow,
    TokenLookup,
};

/// What a reader (or their mail client) does to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Posts the signup form (the resend interval has passed).
    Signup,
    /// Presses the button of the latest confirmation link, unused and in time.
    ConfirmLatest,
    /// … of a link that is unused but past its time.
    ConfirmExpired,
    /// … of a link that was already used (for an earlier subscription).
    ConfirmSpent,
    /// … of an unused link issued before the subscriber last unsubscribed.
    ConfirmStale,
    /// Presses the button of a (validly signed) unsubscribe link, or its
    /// mail client posts the one-click unsubscribe.
    Unsubscribe,
    /// Presses "Send me a new link" on the page of an expired link.
    ResendExpired,
}

/// One cell of the state table: from-state × action → to-state, the title of
/// the page shown, and whether a confirmation mail is queued.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub from: &'static str,
    pub action: Action,
    pub to: &'static str,
    pub page: &'static str,
    pub mails: bool,
}

const fn t(
    from: &'static str,
    action: Action,
    to: &'static str,
    page: &'static str,
    mails: bool,
) -> Transition {
    Transition {
        from,
        action,
        to,
        page,
        mails,
    }
}

pub const PAGE_CHECK_INBOX: &str = "Check your inbox";
pub const PAGE_SUBSCRIBED: &str = "You are subscribed";
pub const PAGE_ALREADY_CONFIRMED: &str = "Already confirmed";
pub const PAGE_EXPIRED: &str = "This link has expired";
pub const PAGE_REPLACED: &str = "This link was replaced";
pub const PAGE_NOT_SUBSCRIBED: &str = "You are not subscribed";
pub const PAGE_UNSUBSCRIBED: &str = "You are unsubscribed";

/// Every state × action. The signup page is the same for every state (the
/// form must not tell who subscribes); a bounce (the delivery worker) is the
/// only transition not started by the reader: confirmed → bounced.
#[rustfmt::skip]
pub const TRANSITIONS: &[Transition] = {
    use Action::*;
    &[
        t("pending", Signup, "pending", PAGE_CHECK_INBOX, true),
        t("pending", ConfirmLatest, "confirmed", PAGE_SUBSCRIBED, false),
        t("pending", ConfirmExpired, "pending", PAGE_EXPIRED, false),
        t("pending", ConfirmSpent, "pending", PAGE_REPLACED, false),
        t("pending", ConfirmStale, "pending", PAGE_REPLACED, false),
        t("pending", Unsubscribe, "unsubscribed", PAGE_UNSUBSCRIBED, false),
        t("pending", ResendExpired, "pending", PAGE_CHECK_INBOX, true),
        t("confirmed", Signup, "confirmed", PAGE_CHECK_INBOX, false),
        t("confirmed", ConfirmLatest, "confirmed", PAGE_ALREADY_CONFIRMED, false),
        t("confirmed", ConfirmExpired, "confirmed", PAGE_ALREADY_CONFIRMED, false),
        t("confirmed", ConfirmSpent, "confirmed", PAGE_ALREADY_CONFIRMED, false),
        t("confirmed", ConfirmStale, "confirmed", PAGE_ALREADY_CONFIRMED, false),
        t("confirmed", Unsubscribe, "unsubscribed", PAGE_UNSUBSCRIBED, false),
        t("confirmed", ResendExpired, "confirmed", PAGE_ALREADY_CONFIRMED, false),
        t("unsubscribed", Signup, "pending", PAGE_CHECK_INBOX, true),
        t("unsubscribed", ConfirmLatest, "unsubscribed", PAGE_NOT_SUBSCRIBED, false),
        t("unsubscribed", ConfirmExpired, "unsubscribed", PAGE_NOT_SUBSCRIBED, false),
        t("unsubscribed", ConfirmSpent, "unsubscribed", PAGE_NOT_SUBSCRIBED, false),
        t("unsubscribed", ConfirmStale, "unsubscribed", PAGE_NOT_SUBSCRIBED, false),
        t("unsubscribed", Unsubscribe, "unsubscribed", PAGE_UNSUBSCRIBED, false),
        t("unsubscribed", ResendExpired, "unsubscribed", PAGE_NOT_SUBSCRIBED, false),
        t("bounced", Signup, "pending", PAGE_CHECK_INBOX, true),
        t("bounced", ConfirmLatest, "bounced", PAGE_NOT_SUBSCRIBED, false),
        t("bounced", ConfirmExpired, "bounced", PAGE_NOT_SUBSCRIBED, false),
        t("bounced", ConfirmSpent, "bounced", PAGE_NOT_SUBSCRIBED, false),
        t("bounced", ConfirmStale, "bounced", PAGE_NOT_SUBSCRIBED, false),
        t("bounced", Unsubscribe, "unsubscribed", PAGE_UNSUBSCRIBED, false),
        t("bounced", ResendExpired, "bounced", PAGE_NOT_SUBSCRIBED, false),
    ]
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
    /// The site's page the reader signed up on: the confirmation link
    /// carries it, so "You are subscribed" leads back there.
    pub came_from: Option<&'a crate::domain::WebUrl>,
}

pub async fn subscribe(
    state: &AppState,
    email: &SubscriberEmail,
    name: Option<&SubscriberName>,
    consent: &Consent<'_>,
) -> Result<SignupOutcome, Error> {
    let config = &state.config;
    let token = new_confirmation_token();
    let confirm_url = format!(
        "{}/confirm/{token}{}",
        state.base_url,
        crate::web::return_to::query(consent.came_from)
    );
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
        email_key: email.key(),
        mailbox_key: email.mailbox_key(),
        resend_interval_ms: request.resend_interval_ms,
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
/// issued to, while that address is still pending. Rate-limited like any
/// resend. `Ok(Err(lookup))`: nothing sent, and why.
pub async fn resend_confirmation(
    state: &AppState,
    token: &str,
    came_from: Option<&crate::domain::WebUrl>,
) -> Result<Result<SignupOutcome, TokenLookup>, Error> {
    let email = match lookup_confirmation(state, token).await? {
        TokenLookup::Expired { email } | TokenLookup::Valid { email } => email,
        other => return Ok(Err(other)),
    };
    let email = SubscriberEmail::from_trusted(email);
    let consent = Consent {
        source: "resend",
        ip: None,
        user_agent: None,
        came_from,
    };
    Ok(Ok(subscribe(state, &email, None, &consent).await?))
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

/// What an unsubscribe did, and for which address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsubscribeOutcome {
    Unsubscribed(String),
    AlreadyUnsubscribed(String),
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
        UnsubscribeOutcome::Unsubscribed(subscriber.email)
    } else {
        UnsubscribeOutcome::AlreadyUnsubscribed(subscriber.email)
    })
}
