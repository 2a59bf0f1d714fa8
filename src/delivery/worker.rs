use super::retry_delay_ms;
use crate::config::Config;
use crate::digest::render::personalise;
use crate::domain::time::now_millis;
use crate::domain::token::LinkSigner;
use crate::mail::{self, DigestCopy, Mailer, SendError};
use crate::store::{
    ClaimedDelivery, DeliveryOutcome, DigestRow, OutboxMessage, OutboxOutcome, Store,
};
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Outbox messages claimed per round.
const OUTBOX_BATCH: i64 = 50;

pub struct Worker {
    store: Store,
    mailer: Mailer,
    config: Arc<Config>,
    signer: LinkSigner,
    base_url: String,
    /// Identifies this worker's leases.
    owner: String,
    wake: Arc<Notify>,
    digests: HashMap<i64, Arc<DigestRow>>,
}

impl Worker {
    pub fn new(
        store: Store,
        mailer: Mailer,
        config: Arc<Config>,
        signer: LinkSigner,
        base_url: String,
        wake: Arc<Notify>,
    ) -> Self {
        let owner = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            crate::domain::token::new_secret()
                .get(..8)
                .unwrap_or("worker")
        );
        Self {
            store,
            mailer,
            config,
            signer,
            base_url,
            owner,
            wake,
            digests: HashMap::new(),
        }
    }

    /// Runs until `cancel` fires. In-flight sends finish; claimed work not
    /// yet started is released for the next worker.
    pub async fn run(mut self, cancel: CancellationToken) {
        tracing::info!(owner = %self.owner, transport = %self.mailer.describe(), "delivery worker started");
        let poll = Duration::from_millis(self.config.delivery.poll_interval_ms.max(10));
        while !cancel.is_cancelled() {
            let did_work = match self.round(&cancel).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::error!(error = %e, "delivery round failed; retrying shortly");
                    false
                }
            };
            if !did_work {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(poll) => {}
                    _ = self.wake.notified() => {}
                }
            }
        }
        tracing::info!(owner = %self.owner, "delivery worker stopped");
    }

    /// One round: the outbox first (confirmations are time-sensitive), then
    /// a batch of digest deliveries. Returns how many messages it handled.
    pub async fn round(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<usize, crate::store::Error> {
        let mut handled = self.outbox_round(cancel).await?;
        handled += self.delivery_round(cancel).await?;
        Ok(handled)
    }

    fn lease_until(&self, now: i64) -> i64 {
        now + (self.config.delivery.lease_secs as i64) * 1000
    }

    async fn outbox_round(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<usize, crate::store::Error> {
        let now = now_millis();
        let claimed = self
            .store
            .claim_outbox(now, self.lease_until(now), OUTBOX_BATCH)
            .await?;
        let n = claimed.len();
        let concurrency = self.config.delivery.concurrency.max(1) as usize;
        let this = &*self;
        let results: Vec<(i64, OutboxOutcome)> = stream::iter(claimed)
            .map(|m| async move {
                if cancel.is_cancelled() {
                    return (m.id, OutboxOutcome::Released);
                }
                let outcome = this.send_outbox(&m).await;
                (m.id, outcome)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let now = now_millis();
        for (id, outcome) in results {
            self.store.record_outbox(id, &outcome, now).await?;
        }
        Ok(n)
    }

    async fn send_outbox(&self, m: &OutboxMessage) -> OutboxOutcome {
        let (Some(html), Some(text)) = (m.body_html.clone(), m.body_text.clone()) else {
            return OutboxOutcome::Failed {
                error: "message body missing".into(),
            };
        };
        let message = match mail::confirmation_message(
            &self.mailer.from,
            &m.recipient,
            &m.subject,
            html,
            text,
        ) {
            Ok(msg) => msg,
            Err(e) => {
                return OutboxOutcome::Failed {
                    error: e.to_string(),
                }
            }
        };
        match self.mailer.send(message).await {
            Ok(_) => {
                tracing::info!(outbox_id = m.id, kind = %m.kind, "transactional mail sent");
                OutboxOutcome::Sent
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(outbox_id = m.id, %error, "transactional mail rejected");
                OutboxOutcome::Failed { error }
            }
            Err(SendError::Transient(error))
                if m.attempts < i64::from(self.config.delivery.max_attempts) =>
            {
                tracing::warn!(outbox_id = m.id, %error, attempts = m.attempts, "transactional mail failed; will retry");
                OutboxOutcome::Retry {
                    next_attempt_at: now_millis()
                        + retry_delay_ms(self.retry_base_ms(), m.attempts),
                    error,
                }
            }
            Err(SendError::Transient(error)) => OutboxOutcome::Failed { error },
        }
    }

    fn retry_base_ms(&self) -> i64 {
        (self.config.delivery.retry_base_ms as i64).max(1)
    }

    async fn digest(&mut self, id: i64) -> Result<Option<Arc<DigestRow>>, crate::store::Error> {
        if let Some(d) = self.digests.get(&id) {
            return Ok(Some(d.clone()));
        }
        let Some(row) = self.store.digest_by_id(id).await? else {
            return Ok(None);
        };
        let row = Arc::new(row);
        self.digests.insert(id, row.clone());
        Ok(Some(row))
    }

    async fn delivery_round(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<usize, crate::store::Error> {
        let now = now_millis();
        let batch = i64::from(self.config.delivery.batch_size.max(1));
        let claimed = self
            .store
            .claim_deliveries(&self.owner, now, self.lease_until(now), batch)
            .await?;
        if claimed.is_empty() {
            self.store.finish_digests(now).await?;
            return Ok(0);
        }
        let n = claimed.len();
        let mut jobs = Vec::with_capacity(n);
        for c in claimed {
            let digest = self.digest(c.digest_id).await?;
            jobs.push((c, digest));
        }
        let span = tracing::info_span!("delivery_batch", owner = %self.owner, size = n);
        let concurrency = self.config.delivery.concurrency.max(1) as usize;
        let this = &*self;
        let outcomes: Vec<(i64, i64, DeliveryOutcome)> = stream::iter(jobs)
            .map(|(c, digest)| async move {
                let outcome = if cancel.is_cancelled() {
                    DeliveryOutcome::Released
                } else {
                    match digest {
                        Some(d) => this.send_digest_copy(&c, &d).await,
                        None => DeliveryOutcome::Failed {
                            error: "digest no longer exists".into(),
                            is_permanent: false,
                        },
                    }
                };
                (c.digest_id, c.subscriber_id, outcome)
            })
            .buffer_unordered(concurrency)
            .collect()
            .instrument(span)
            .await;
        let now = now_millis();
        self.store
            .record_deliveries(
                &self.owner,
                &outcomes,
                now,
                i64::from(self.config.delivery.bounce_threshold.max(1)),
            )
            .await?;
        self.store.finish_digests(now).await?;
        Ok(n)
    }

    async fn send_digest_copy(&self, c: &ClaimedDelivery, d: &DigestRow) -> DeliveryOutcome {
        let token = self.signer.unsubscribe_token(c.subscriber_id, &c.email);
        let page_url = format!("{}/unsubscribe/{token}", self.base_url);
        let one_click_url = format!("{}/unsubscribe/one-click/{token}", self.base_url);
        let (html, text) = personalise(&d.body_html, &d.body_text, &page_url);
        let copy = DigestCopy {
            to_email: &c.email,
            to_name: c.name.as_deref(),
            subject: &d.subject,
            html,
            text,
            one_click_url: &one_click_url,
            unsubscribe_mailto: format!(
                "mailto:{}?subject=unsubscribe%20{token}",
                self.mailer.from.email
            ),
            list_id: &list_id(&self.config, &self.base_url),
        };
        let message = match mail::digest_message(&self.mailer.from, copy) {
            Ok(m) => m,
            Err(e) => {
                return DeliveryOutcome::Failed {
                    error: e.to_string(),
                    is_permanent: false,
                }
            }
        };
        match self.mailer.send(message).await {
            Ok(response) => DeliveryOutcome::Sent { response },
            Err(SendError::Permanent(error)) => {
                tracing::warn!(digest_id = c.digest_id, subscriber_id = c.subscriber_id, %error, "recipient rejected permanently");
                DeliveryOutcome::Failed {
                    error,
                    is_permanent: true,
                }
            }
            Err(SendError::Transient(error))
                if c.attempts < i64::from(self.config.delivery.max_attempts) =>
            {
                tracing::info!(digest_id = c.digest_id, subscriber_id = c.subscriber_id, attempts = c.attempts, %error, "temporary failure; will retry");
                DeliveryOutcome::Retry {
                    next_attempt_at: now_millis()
                        + retry_delay_ms(self.retry_base_ms(), c.attempts),
                    error,
                }
            }
            Err(SendError::Transient(error)) => DeliveryOutcome::Failed {
                error: format!("gave up after {} attempts: {error}", c.attempts),
                is_permanent: false,
            },
        }
    }
}

/// `List-Id: site name <digest.host>` (RFC 2919).
pub fn list_id(config: &Config, base_url: &str) -> String {
    let host = url::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    let label: String = config
        .site_name
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '"' | '\\') && !c.is_control())
        .collect();
    format!("\"{}\" <digest.{host}>", label.trim())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "herald".into())
}
