//! The delivery pipeline. Three loops run side by side so the SMTP
//! connections never wait on the database:
//!
//! - the claimer takes batches of due deliveries (with a lease) and queues
//!   them, claiming the next batch while the previous one is being sent;
//! - the sender renders each subscriber's copy and sends it, `concurrency`
//!   at a time;
//! - the recorder writes outcomes in batches, one transaction each.
//!
//! Killed at any moment, a worker loses nothing: unrecorded rows go back to
//! the queue when their lease runs out. Only messages the server accepted
//! but that were not yet recorded can go out twice; there are at most
//! `concurrency + 2 × batch_size` of those: in flight or waiting to hand
//! over their outcome, in the outcome queue, and in the recorder's batch.

use super::retry_delay_ms;
use crate::config::Config;
use crate::domain::time::now_millis;
use crate::domain::token::LinkSigner;
use crate::mail::{self, DigestBodies, DigestCopy, Mailer, SendError};
use crate::store::{
    ClaimedDelivery, DeliveryOutcome, DigestRow, OutboxMessage, OutboxOutcome, Store,
};
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Outbox messages claimed per round.
const OUTBOX_BATCH: i64 = 50;
/// The recorder waits at most this long to fill a batch of outcomes.
const RECORD_LINGER: Duration = Duration::from_millis(25);

/// Everything needed to send a copy, shared by the pipeline's tasks.
struct Sending {
    store: Store,
    mailer: Mailer,
    config: Arc<Config>,
    signer: LinkSigner,
    base_url: String,
    list_id: String,
    owner: String,
}

/// A digest as the worker keeps it while sending: bodies prepared once.
struct PreparedDigest {
    id: i64,
    subject: String,
    bodies: DigestBodies,
    /// Whether the digest may still be sent (not paused or cancelled), as
    /// last read from the database, and when: queued copies of a digest
    /// that was paused meanwhile are released, not sent.
    is_sendable: AtomicBool,
    checked_at: Mutex<Instant>,
}

/// How stale the sender's view of a digest's status may get: a pause takes
/// effect within this time, for copies already claimed too.
const STATUS_RECHECK: Duration = Duration::from_millis(250);

impl PreparedDigest {
    async fn still_sendable(&self, store: &Store) -> bool {
        let due = match self.checked_at.lock() {
            Ok(mut at) if at.elapsed() >= STATUS_RECHECK => {
                *at = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            if let Ok(Some(d)) = store.digest_by_id(self.id).await {
                self.is_sendable.store(
                    matches!(d.status.as_str(), "queued" | "sending"),
                    Ordering::Relaxed,
                );
            }
        }
        self.is_sendable.load(Ordering::Relaxed)
    }
}

struct Job {
    delivery: ClaimedDelivery,
    digest: Option<Arc<PreparedDigest>>,
}

type Outcome = (i64, i64, DeliveryOutcome);

pub struct Worker {
    ctx: Arc<Sending>,
    wake: Arc<Notify>,
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
            ctx: Arc::new(Sending {
                list_id: list_id(&config, &base_url),
                store,
                mailer,
                config,
                signer,
                base_url,
                owner,
            }),
            wake,
        }
    }

    /// Runs until `cancel` fires. Messages in flight finish and are
    /// recorded; claimed work not yet started is released for the next worker.
    pub async fn run(self, cancel: CancellationToken) {
        let ctx = self.ctx;
        let batch = ctx.config.delivery.batch_size.max(1) as usize;
        let concurrency = ctx.config.delivery.concurrency.max(1) as usize;
        tracing::info!(owner = %ctx.owner, transport = %ctx.mailer.describe(), concurrency, batch, "delivery worker started");
        let (job_tx, job_rx) = mpsc::channel::<Job>(batch * 2);
        // Room for a whole batch, so senders never wait while the recorder
        // writes the previous one.
        let (outcome_tx, outcome_rx) = mpsc::channel::<Outcome>(batch);
        let recorder = tokio::spawn(record_loop(ctx.clone(), outcome_rx, batch));
        let sender = tokio::spawn(send_loop(
            ctx.clone(),
            job_rx,
            outcome_tx,
            concurrency,
            cancel.clone(),
        ));
        claim_loop(ctx.clone(), job_tx, batch, self.wake, cancel).await;
        // The claimer has stopped: the sender drains (releasing what it
        // has not started), then the recorder writes what is left.
        if let Err(e) = sender.await {
            tracing::error!(error = %e, "sender task failed");
        }
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "recorder task failed");
        }
        tracing::info!(owner = %ctx.owner, "delivery worker stopped");
    }
}

fn lease_until(ctx: &Sending, now: i64) -> i64 {
    now + (ctx.config.delivery.lease_secs as i64) * 1000
}

fn retry_base_ms(ctx: &Sending) -> i64 {
    (ctx.config.delivery.retry_base_ms as i64).max(1)
}

async fn claim_loop(
    ctx: Arc<Sending>,
    jobs: mpsc::Sender<Job>,
    batch: usize,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let poll = Duration::from_millis(ctx.config.delivery.poll_interval_ms.max(10));
    let mut digests: HashMap<i64, Arc<PreparedDigest>> = HashMap::new();
    while !cancel.is_cancelled() {
        let claimed = match claim_round(&ctx, &jobs, batch, &mut digests, &cancel).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "claiming work failed; retrying shortly");
                0
            }
        };
        if claimed == 0 {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
                _ = wake.notified() => {}
            }
        }
    }
}

/// The outbox first (confirmations are time-sensitive), then one batch of
/// deliveries, claimed only when the queue has room for all of it.
async fn claim_round(
    ctx: &Sending,
    jobs: &mpsc::Sender<Job>,
    batch: usize,
    digests: &mut HashMap<i64, Arc<PreparedDigest>>,
    cancel: &CancellationToken,
) -> Result<usize, crate::store::Error> {
    let mut handled = outbox_round(ctx, cancel).await?;
    let Ok(permits) = jobs.reserve_many(batch).await else {
        return Ok(handled);
    };
    let now = now_millis();
    let started = std::time::Instant::now();
    let claimed = ctx
        .store
        .claim_deliveries(&ctx.owner, now, lease_until(ctx, now), batch as i64)
        .await?;
    tracing::debug!(
        rows = claimed.len(),
        ms = started.elapsed().as_millis() as u64,
        "claim"
    );
    if claimed.is_empty() {
        ctx.store.finish_digests(now).await?;
        return Ok(handled);
    }
    handled += claimed.len();
    tracing::debug!(owner = %ctx.owner, size = claimed.len(), "claimed a delivery batch");
    for (delivery, permit) in claimed.into_iter().zip(permits) {
        let digest = prepared_digest(ctx, digests, delivery.digest_id).await?;
        permit.send(Job { delivery, digest });
    }
    Ok(handled)
}

async fn prepared_digest(
    ctx: &Sending,
    cache: &mut HashMap<i64, Arc<PreparedDigest>>,
    id: i64,
) -> Result<Option<Arc<PreparedDigest>>, crate::store::Error> {
    if let Some(d) = cache.get(&id) {
        return Ok(Some(d.clone()));
    }
    let Some(row) = ctx.store.digest_by_id(id).await? else {
        return Ok(None);
    };
    let DigestRow {
        subject,
        body_html,
        body_text,
        ..
    } = row;
    let prepared = Arc::new(PreparedDigest {
        id,
        subject,
        bodies: DigestBodies::prepare(&body_html, &body_text),
        is_sendable: AtomicBool::new(true),
        checked_at: Mutex::new(Instant::now()),
    });
    cache.insert(id, prepared.clone());
    Ok(Some(prepared))
}

/// Each copy is rendered and sent in a task of its own, so the work
/// spreads over every core; a semaphore keeps `concurrency` in flight.
async fn send_loop(
    ctx: Arc<Sending>,
    mut jobs: mpsc::Receiver<Job>,
    outcomes: mpsc::Sender<Outcome>,
    concurrency: usize,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    while let Some(job) = jobs.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (ctx, outcomes, cancel) = (ctx.clone(), outcomes.clone(), cancel.clone());
        tasks.spawn(async move {
            let d = &job.delivery;
            let outcome = if cancel.is_cancelled() {
                DeliveryOutcome::Released
            } else {
                match &job.digest {
                    Some(digest) if !digest.still_sendable(&ctx.store).await => {
                        DeliveryOutcome::Released
                    }
                    Some(digest) => send_digest_copy(&ctx, d, digest).await,
                    None => DeliveryOutcome::Failed {
                        error: "digest no longer exists".into(),
                        is_permanent: false,
                    },
                }
            };
            // The slot is held until the recorder has the outcome, so sent
            // but unrecorded messages never exceed the bound above.
            if outcomes
                .send((d.digest_id, d.subscriber_id, outcome))
                .await
                .is_err()
            {
                tracing::error!("the recorder stopped; an outcome is left to lease expiry");
            }
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn record_loop(ctx: Arc<Sending>, mut outcomes: mpsc::Receiver<Outcome>, batch: usize) {
    let bounce_threshold = i64::from(ctx.config.delivery.bounce_threshold.max(1));
    let mut buffer = Vec::with_capacity(batch);
    while let Some(first) = outcomes.recv().await {
        buffer.push(first);
        while buffer.len() < batch {
            match tokio::time::timeout(RECORD_LINGER, outcomes.recv()).await {
                Ok(Some(more)) => buffer.push(more),
                Ok(None) | Err(_) => break,
            }
        }
        let now = now_millis();
        let started = std::time::Instant::now();
        // A database hiccup must not lose outcomes: retry a few times; after
        // that the rows' leases expire and they are sent again.
        let mut attempt = 0;
        loop {
            match ctx
                .store
                .record_deliveries(&ctx.owner, &buffer, now, bounce_threshold)
                .await
            {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "recording outcomes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, lost = buffer.len(), "could not record outcomes; those rows will be retried after their lease");
                    break;
                }
            }
        }
        tracing::debug!(
            rows = buffer.len(),
            ms = started.elapsed().as_millis() as u64,
            "record"
        );
        buffer.clear();
        if let Err(e) = ctx.store.finish_digests(now).await {
            tracing::warn!(error = %e, "could not mark finished digests");
        }
    }
}

async fn outbox_round(
    ctx: &Sending,
    cancel: &CancellationToken,
) -> Result<usize, crate::store::Error> {
    let now = now_millis();
    let claimed = ctx
        .store
        .claim_outbox(now, lease_until(ctx, now), OUTBOX_BATCH)
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
            let outcome = send_outbox(ctx, &m).await;
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

async fn send_outbox(ctx: &Sending, m: &OutboxMessage) -> OutboxOutcome {
    let (Some(html), Some(text)) = (m.body_html.clone(), m.body_text.clone()) else {
        return OutboxOutcome::Failed {
            error: "message body missing".into(),
        };
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
    match ctx.mailer.send(message).await {
        Ok(_) => {
            tracing::info!(outbox_id = m.id, kind = %m.kind, "transactional mail sent");
            OutboxOutcome::Sent
        }
        Err(SendError::Permanent(error)) => {
            tracing::warn!(outbox_id = m.id, %error, "transactional mail rejected");
            OutboxOutcome::Failed { error }
        }
        Err(SendError::Transient(error))
            if m.attempts < i64::from(ctx.config.delivery.max_attempts) =>
        {
            tracing::warn!(outbox_id = m.id, %error, attempts = m.attempts, "transactional mail failed; will retry");
            OutboxOutcome::Retry {
                next_attempt_at: now_millis() + retry_delay_ms(retry_base_ms(ctx), m.attempts),
                error,
            }
        }
        Err(SendError::Transient(error)) => OutboxOutcome::Failed { error },
    }
}

async fn send_digest_copy(
    ctx: &Sending,
    c: &ClaimedDelivery,
    d: &PreparedDigest,
) -> DeliveryOutcome {
    let token = ctx.signer.unsubscribe_token(c.subscriber_id, &c.email);
    let page_url = format!("{}/unsubscribe/{token}", ctx.base_url);
    let one_click_url = format!("{}/unsubscribe/one-click/{token}", ctx.base_url);
    let (html, text) = d.bodies.personalise(&page_url);
    let copy = DigestCopy {
        to_email: &c.email,
        to_name: c.name.as_deref(),
        subject: &d.subject,
        html,
        text,
        one_click_url: &one_click_url,
        unsubscribe_mailto: format!(
            "mailto:{}?subject=unsubscribe%20{token}",
            ctx.mailer.from.email
        ),
        list_id: &ctx.list_id,
    };
    let message = match mail::digest_message(&ctx.mailer.from, copy) {
        Ok(m) => m,
        Err(e) => {
            return DeliveryOutcome::Failed {
                error: e.to_string(),
                is_permanent: false,
            }
        }
    };
    match ctx.mailer.send(message).await {
        Ok(response) => DeliveryOutcome::Sent { response },
        Err(SendError::Permanent(error)) => {
            tracing::warn!(digest_id = c.digest_id, subscriber_id = c.subscriber_id, %error, "recipient rejected permanently");
            DeliveryOutcome::Failed {
                error,
                is_permanent: true,
            }
        }
        Err(SendError::Transient(error))
            if c.attempts < i64::from(ctx.config.delivery.max_attempts) =>
        {
            tracing::info!(digest_id = c.digest_id, subscriber_id = c.subscriber_id, attempts = c.attempts, %error, "temporary failure; will retry");
            DeliveryOutcome::Retry {
                next_attempt_at: now_millis() + retry_delay_ms(retry_base_ms(ctx), c.attempts),
                error,
            }
        }
        Err(SendError::Transient(error)) => DeliveryOutcome::Failed {
            error: format!("gave up after {} attempts: {error}", c.attempts),
            is_permanent: false,
        },
    }
}

/// `List-Id: "site name" <digest.host>` (RFC 2919).
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
