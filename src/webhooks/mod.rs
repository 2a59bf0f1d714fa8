//! Relay webhooks: the bounces and spam complaints that the relay sending
//! herald's mail reports over HTTP, for the relays self-hosters use most.
//! `POST /webhooks/ses` (Amazon SES through an Amazon SNS subscription),
//! `POST /webhooks/sendgrid` (SendGrid's Signed Event Webhook) and `POST
//! /webhooks/postmark` (Postmark's bounce and spam-complaint webhooks).
//!
//! Each request is proven first, by the provider's own means (an RSA
//! signature over the SNS message, an ECDSA signature over SendGrid's
//! timestamp and body, basic auth for Postmark); one that does not prove
//! itself changes nothing. Then its events become [`Item`]s, and [`apply`]
//! records each through the same [`Store::record_subscriber_event`] that
//! inbound mail uses: a permanent bounce counts towards
//! `delivery.bounce_threshold`, a transient one is recorded, a complaint
//! unsubscribes at once. Every event carries the provider's own id as its
//! reference, so a retried delivery counts once.
//!
//! A relay names recipients by address, and its word is trusted once the
//! request is proven: each address goes through [`SubscriberEmail::parse`]
//! and is matched by its key, exactly as a signup would be. An address that
//! is not a subscriber, that does not parse, or an event herald does not act
//! on (deliveries, opens, clicks) is logged and counted as ignored, and the
//! answer is still 200, so the provider does not retry it forever.
//!
//! The answer to a proven request is the same whatever it changed: the
//! [`Summary`] of what was recorded goes to the log, never to the sender,
//! so a webhook cannot be used to learn who subscribes (the signup form is
//! as careful).
//!
//! Nothing is read before what can be checked without the body is checked
//! (Postmark's credentials; SendGrid's signature and timestamp headers and
//! the timestamp's age; SNS's message-type and topic headers). Bodies whose
//! signature can be checked only once they are read (SES, SendGrid) then
//! share one [`BodyBudget`] of bytes (`webhooks.unverified_body_budget_bytes`):
//! when it is spent a request answers 503 with Retry-After, unread, so
//! unauthenticated clients together hold at most that much memory.
//!
//! Verifying is microseconds of work (one RSA or ECDSA check) and a body is
//! at most [`MAX_BODY_BYTES`], so handlers do it inline; only fetching an
//! SNS signing certificate waits on the network, and it is fetched once.
//!
//! [`Store::record_subscriber_event`]: crate::store::Store::record_subscriber_event

#[cfg(test)]
mod fuzz;
pub mod postmark;
pub mod sendgrid;
pub mod ses;
pub mod sns;

use crate::config::WebhooksConfig;
use crate::domain::time::now_millis;
use crate::domain::SubscriberEmail;
use crate::state::AppState;
use crate::store::{EventKind, NewEvent};
use axum::http::HeaderMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest webhook body read (a SendGrid batch of a few thousand events).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest detail kept with an event (the relay's diagnostic text).
const MAX_DETAIL_CHARS: usize = 500;

/// Why a webhook request was refused or could not be handled. The web layer
/// decides the status code from the variant; nothing here is shown beyond
/// its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider is not configured: the route answers 404.
    #[error("{0} webhooks are not enabled")]
    NotConfigured(&'static str),
    /// Missing or wrong signature or credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A SendGrid or SNS timestamp too far from now (a replay).
    #[error(
        "the signed timestamp is {age_secs} s from now, more than the {max_age_secs} s allowed"
    )]
    Stale { age_secs: u64, max_age_secs: u64 },
    /// An SNS message from a topic outside `webhooks.ses.topic_arns`.
    #[error("the topic is not one herald accepts (webhooks.ses.topic_arns)")]
    TopicNotAllowed,
    /// The body is not what the provider sends.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The SNS signing certificate could not be had now; the provider retries.
    #[error("the signing certificate could not be fetched: {0}")]
    Certificate(String),
    /// Visiting an SNS SubscribeURL failed; the provider retries.
    #[error("the subscription could not be confirmed: {0}")]
    Confirm(String),
    /// The body would be larger than [`MAX_BODY_BYTES`].
    #[error("a webhook body may be at most {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The budget for unverified bodies is spent: 503 with Retry-After.
    #[error("too many webhook bodies are being read; try again shortly")]
    Busy,
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// A setting that cannot work, found at start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("webhooks.ses.certificate_file {path}: {message}")]
    SesCertificate { path: String, message: String },
    #[error("webhooks.sendgrid.public_key: {0}")]
    SendGridKey(String),
    #[error("webhooks.postmark needs both username and password (or neither)")]
    PostmarkCredentials,
    #[error(
        "webhooks.ses.enabled needs webhooks.ses.topic_arns: the ARNs of the SNS topics your SES \
         notifications go to (for example topic_arns = [\"arn:aws:sns:eu-west-1:123456789012:herald-bounces\"], \
         or HERALD_WEBHOOKS__SES__TOPIC_ARNS='[\"arn:…\"]'); SNS signs every topic's messages alike, \
         so without them anyone's topic could report on your readers"
    )]
    SesTopicArnsRequired,
    #[error("webhooks.ses.topic_arns: {0}")]
    SesTopicArn(String),
    #[error(
        "webhooks.unverified_body_budget_bytes is {0}: it must hold at least one whole body ({MAX_BODY_BYTES} bytes)"
    )]
    BodyBudget(usize),
    #[error("webhooks: could not build the HTTP client: {0}")]
    Http(String),
}

/// The configured providers, each with what it verifies with, built once
/// at start so that a bad key or certificate stops herald there.
pub struct Webhooks {
    pub ses: Option<ses::Ses>,
    pub sendgrid: Option<sendgrid::SendGrid>,
    pub postmark: Option<postmark::Postmark>,
    /// Shared by the SES and SendGrid bodies read before their signature.
    pub unverified_bodies: BodyBudget,
}

impl std::fmt::Debug for Webhooks {
    // No key material or password in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("ses", &self.ses.is_some())
            .field("sendgrid", &self.sendgrid.is_some())
            .field("postmark", &self.postmark.is_some())
            .finish()
    }
}

impl Webhooks {
    pub fn from_config(config: &WebhooksConfig) -> Result<Self, ConfigError> {
        if config.unverified_body_budget_bytes < MAX_BODY_BYTES {
            return Err(ConfigError::BodyBudget(config.unverified_body_budget_bytes));
        }
        Ok(Self {
            ses: ses::Ses::from_config(&config.ses)?,
            sendgrid: sendgrid::SendGrid::from_config(&config.sendgrid)?,
            postmark: postmark::Postmark::from_config(&config.postmark)?,
            unverified_bodies: BodyBudget::new(config.unverified_body_budget_bytes),
        })
    }
}

/// The bytes that bodies not yet proven may hold together, in permits of
/// [`BodyBudget::UNIT`] bytes: a request takes its share before a byte of
/// its body is read and gives it back when it is answered.
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

impl BodyBudget {
    pub const UNIT: usize = 1024;

    pub fn new(bytes: usize) -> Self {
        let permits = (bytes / Self::UNIT).min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Room for a body of `declared` bytes (its Content-Length), or of
    /// [`MAX_BODY_BYTES`] when it declares none. [`Error::TooLarge`] for a
    /// body declared larger than that; [`Error::Busy`] when the budget is
    /// spent (never waits: a waiting request would hold its connection).
    pub fn reserve(&self, declared: Option<u64>) -> Result<OwnedSemaphorePermit, Error> {
        let bytes = match declared {
            Some(n) if n > MAX_BODY_BYTES as u64 => return Err(Error::TooLarge),
            // Fits in usize: at most MAX_BODY_BYTES.
            Some(n) => n as usize,
            None => MAX_BODY_BYTES,
        };
        let units = bytes.div_ceil(Self::UNIT).max(1);
        let units = u32::try_from(units).map_err(|_| Error::TooLarge)?;
        self.permits
            .clone()
            .try_acquire_many_owned(units)
            .map_err(|_| Error::Busy)
    }
}

/// A header's text, trimmed, when it is there, is text and is not empty.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Seconds since the epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One recipient's report, as the provider stated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayEvent {
    /// The address as the provider gave it; parsed in [`apply`].
    pub recipient: String,
    pub kind: EventKind,
    /// The provider's id of the event: the same id twice is one event.
    pub reference: String,
    pub detail: String,
}

/// What one entry of a payload asks of herald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Act(RelayEvent),
    /// Nothing herald acts on (a delivery, an open), and why.
    Ignore(String),
}

/// What herald did with a webhook request. For the log only: the answer
/// is the same whatever it holds (it would tell who subscribes), bar the
/// `note` of an SNS confirmation, which does not depend on any reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events recorded for a subscriber (first time seen).
    pub recorded: u32,
    /// Of those, how many changed a subscriber's status.
    pub status_changed: u32,
    /// Events seen before (same reference): nothing changed.
    pub duplicates: u32,
    /// Entries not acted on: other event kinds, unknown or unparseable addresses.
    pub ignored: u32,
    /// For messages that are not reports (an SNS subscription confirmation).
    pub note: Option<String>,
}

impl Summary {
    pub fn note(note: impl Into<String>) -> Self {
        Self {
            note: Some(note.into()),
            ..Self::default()
        }
    }
}

/// Records each event for the subscriber its address names. `source` is
/// the provider ("ses", "sendgrid", "postmark"). A store error stops at
/// that event and is returned: the provider retries, and what was already
/// recorded counts once.
pub async fn apply(
    state: &AppState,
    source: &'static str,
    items: Vec<Item>,
) -> Result<Summary, crate::store::Error> {
    let threshold = i64::from(state.config.delivery.bounce_threshold.max(1));
    let mut summary = Summary::default();
    for item in items {
        let event = match item {
            Item::Act(event) => event,
            Item::Ignore(why) => {
                // Deliveries and opens arrive by the thousand: debug, not info.
                tracing::debug!(source, why = %why, "webhook event ignored");
                summary.ignored += 1;
                continue;
            }
        };
        // Addresses are not logged; the provider's reference finds the event.
        let email = match SubscriberEmail::parse(bare_address(&event.recipient)) {
            Ok(email) => email,
            Err(e) => {
                tracing::info!(source, reference = %event.reference, why = %e, "webhook event ignored: the recipient is not an address herald accepts");
                summary.ignored += 1;
                continue;
            }
        };
        let Some(subscriber) = state.store.subscriber_by_email(&email).await? else {
            tracing::info!(source, reference = %event.reference, kind = event.kind.as_str(), "webhook event ignored: the recipient is not a subscriber");
            summary.ignored += 1;
            continue;
        };
        let outcome = state
            .store
            .record_subscriber_event(
                &NewEvent {
                    subscriber_id: subscriber.id,
                    kind: event.kind,
                    source,
                    detail: &event.detail,
                    reference: &event.reference,
                    now: now_millis(),
                },
                threshold,
            )
            .await?;
        if outcome.recorded {
            summary.recorded += 1;
            summary.status_changed += u32::from(outcome.status_changed);
        } else {
            summary.duplicates += 1;
        }
        tracing::info!(
            source,
            subscriber_id = subscriber.id,
            kind = event.kind.as_str(),
            reference = %event.reference,
            duplicate = !outcome.recorded,
            status_changed = outcome.status_changed,
            "webhook event"
        );
    }
    Ok(summary)
}

/// The address inside `Name <address>`, else the text itself: relays
/// sometimes quote the recipient as the message's header had it.
fn bare_address(recipient: &str) -> &str {
    let trimmed = recipient.trim();
    match (trimmed.rfind('<'), trimmed.ends_with('>')) {
        (Some(open), true) => &trimmed[open + 1..trimmed.len() - 1],
        _ => trimmed,
    }
}

/// `parts` joined by spaces, empty ones left out, cut to
/// [`MAX_DETAIL_CHARS`] characters.
fn detail(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    joined.chars().take(MAX_DETAIL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_recipient_is_read_as_its_address() {
        assert_eq!(bare_address(" jane@example.com "), "jane@example.com");
        assert_eq!(
            bare_address("\"Jane Doe\" <jane@example.com>"),
            "jane@example.com"
        );
        assert_eq!(bare_address("<jane@example.com>"), "jane@example.com");
        assert_eq!(bare_address("jane@example.com>"), "jane@example.com>");
    }

    #[test]
    fn details_are_joined_and_capped() {
        assert_eq!(detail(&["Permanent", "", " 5.1.1 "]), "Permanent 5.1.1");
        let long = "é".repeat(2 * MAX_DETAIL_CHARS);
        assert_eq!(detail(&[&long]).chars().count(), MAX_DETAIL_CHARS);
    }
}
