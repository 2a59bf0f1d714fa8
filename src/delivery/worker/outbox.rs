//! Transactional mail (confirmations) from the outbox: claimed a batch at a
//! time before each round of digest copies, sent through the same servers
//! and rate limits, and recorded one row at a time. A confirmation is
//! rendered here from the link its row keeps. At most
//! `signup.confirmations_per_minute` go out per minute, across workers;
//! the rest wait their turn in the outbox.

use super::{lease_until, retry_base_ms, send_routed, Routed, Sending};
use crate::delivery::retry_delay_ms;
use crate::domain::time::now_millis;
use crate::mail::{self, SendError};
use crate::store::{OutboxMessage, OutboxOutcome};
use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

/// Outbox messages claimed per round.
const OUTBOX_BATCH: i64 = 50;

pub(super) async fn outbox_round(
    ctx: &Sending,
    cancel: &CancellationToken,
) -> Result<usize, crate::store::Error> {
    let now = now_millis();
    let claimed = ctx
        .store
        .claim_outbox(
            now,
            lease_until(ctx, now),
            OUTBOX_BATCH,
            ctx.config.signup.confirmations_per_minute,
        )
        .await?;
    let n = claimed.len();
    if n == 0 {
        return Ok(0);
    }
    let concurrency = ctx.config.delivery.concurrency.max(1) as usize;
    let results: Vec<(i64, OutboxOutcome)> = stream::iter(claimed)
        .map(|m| async move {
            if cancel.is_cancelled() {
                return (m.id, OutboxOutcome::Released);
            }
            let outcome = send_outbox(ctx, &m, cancel).await;
            (m.id, outcome)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let now = now_millis();
    for (id, outcome) in results {
        ctx.store.record_outbox(id, &outcome, now).await?;
    }
    Ok(n)
}

async fn send_outbox(
    ctx: &Sending,
    m: &OutboxMessage,
    cancel: &CancellationToken,
) -> OutboxOutcome {
    let bodies = match (&m.body_html, &m.body_text, &m.confirm_url) {
        (Some(html), Some(text), _) => Ok((html.clone(), text.clone())),
        (_, _, Some(url)) if m.kind == "confirmation" => mail::confirmation_bodies(
            &ctx.config.site_name,
            url,
            ctx.config.confirmation.token_ttl_hours,
        )
        .map_err(|e| e.to_string()),
        _ => Err("message body missing".to_string()),
    };
    let (html, text) = match bodies {
        Ok(bodies) => bodies,
        Err(error) => return OutboxOutcome::Failed { error },
    };
    let message =
        match mail::confirmation_message(&ctx.mailer.from, &m.recipient, &m.subject, html, text) {
            Ok(msg) => msg,
            Err(e) => {
                return OutboxOutcome::Failed {
                    error: e.to_string(),
                }
            }
        };
    let formatted = match &ctx.mailer.dkim {
        Some(dkim) => match dkim.sign_message(&message.formatted()) {
            Ok(signed) => signed,
            Err(e) => {
                return OutboxOutcome::Failed {
                    error: e.to_string(),
                }
            }
        },
        None => message.formatted(),
    };
    let out = mail::Outgoing {
        envelope: message.envelope(),
        message: &formatted,
        seven_bit: None,
    };
    let routed = send_routed(ctx, &out, cancel, None, false).await;
    match routed {
        Routed::Sent(_) => {
            tracing::info!(outbox_id = m.id, kind = %m.kind, "transactional mail sent");
            OutboxOutcome::Sent
        }
        Routed::NotAttempted => OutboxOutcome::Released,
        Routed::Failed(SendError::Permanent(error)) => {
            tracing::warn!(outbox_id = m.id, %error, "transactional mail rejected");
            OutboxOutcome::Failed { error }
        }
        Routed::Failed(e) if m.attempts < i64::from(ctx.config.delivery.max_attempts) => {
            let error = e.to_string();
            tracing::warn!(outbox_id = m.id, %error, attempts = m.attempts, "transactional mail failed; will retry");
            OutboxOutcome::Retry {
                next_attempt_at: now_millis() + retry_delay_ms(retry_base_ms(ctx), m.attempts),
                error,
            }
        }
        Routed::Failed(e) => OutboxOutcome::Failed {
            error: e.to_string(),
        },
    }
}
