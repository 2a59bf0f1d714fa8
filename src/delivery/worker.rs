//! The delivery pipeline. Four loops run side by side so the SMTP
//! connections never wait on the database:
//!
//! - the claimer takes batches of due deliveries (with a lease) and queues
//!   them, claiming the next batch while the previous one is being sent;
//! - the sender renders each subscriber's copy and sends it, `concurrency`
//!   at a time;
//! - the recorder writes outcomes in batches, one transaction each;
//! - a renewer pushes the leases of everything this worker holds forward,
//!   so copies waiting on a slow, throttling or rate-limited server are not
//!   taken over by another worker.
//!
//! Which server gets a copy, and when, is the sending policy: weights,
//! cool-downs and throttling in `mail::servers`, rate limits shared through
//! the database in `delivery::rate`. Before each claim of digest copies the
//! claimer sends what waits in the outbox (confirmations; `worker/outbox.rs`).
//!
//! Killed at any moment, a worker loses nothing: unrecorded rows go back to
//! the queue when their lease runs out. Only messages the server accepted
//! but that were not yet recorded can go out twice; there are at most
//! `concurrency + 2 × batch_size` of those: in flight or waiting to hand
//! over their outcome, in the outcome queue, and in the recorder's batch.

mod outbox;
mod server_health;

use super::rate::RateLimiter;
use super::retry_delay_ms;
use crate::config::Config;
use crate::digest::slots::SlottedBodies;
use crate::domain::time::now_millis;
use crate::domain::token::LinkSigner;
use crate::mail::{DigestTemplate, Mailer, Outgoing, SendError};
use crate::store::{ClaimedDelivery, DeliveryOutcome, Store};
use lettre::address::Envelope;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
    rate: RateLimiter,
    /// When claims last looked for rows whose lease ran out.
    expired_checked_at: Mutex<Option<Instant>>,
    /// When the claimer last looked whether a stopped server was resumed.
    resume_checked_at: Mutex<Option<Instant>>,
}

/// How often claims look for rows whose lease ran out (a crashed worker's).
/// Leases last `delivery.lease_secs` (minutes by default), so this adds
/// little to the time such rows wait.
const EXPIRED_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Finished digests are marked done after a recorded batch when no more
/// outcomes are waiting, and at least this often while they keep coming.
const FINISH_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Sending {
    /// Whether this claim should look for expired leases, noting that it does.
    fn expired_check_due(&self) -> bool {
        let Ok(mut at) = self.expired_checked_at.lock() else {
            return true;
        };
        match *at {
            Some(t) if t.elapsed() < EXPIRED_CHECK_EVERY => false,
            _ => {
                *at = Some(Instant::now());
                true
            }
        }
    }
}

/// A digest as the worker keeps it while sending: the message built once,
/// each copy spliced from it.
struct PreparedDigest {
    id: i64,
    /// Err: the digest's message could not be built (kept to fail its copies
    /// with the reason).
    template: Result<Arc<DigestTemplate>, String>,
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
                rate: RateLimiter::default(),
                expired_checked_at: Mutex::new(None),
                resume_checked_at: Mutex::new(None),
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
        server_health::forget_unconfigured(&ctx).await;
        let (job_tx, job_rx) = mpsc::channel::<Job>(batch * 2);
        // Room for a whole batch, so senders never wait while the recorder
        // writes the previous one.
        let (outcome_tx, outcome_rx) = mpsc::channel::<Outcome>(batch);
        let recorder = tokio::spawn(record_loop(ctx.clone(), outcome_rx, batch));
        // Leases are renewed until the recorder is done, so work that waits
        // (a slow or throttling server, a rate limit) is not taken over.
        let renewing = CancellationToken::new();
        let renewer = tokio::spawn(renew_loop(ctx.clone(), renewing.clone()));
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
        renewing.cancel();
        let _ = renewer.await;
        tracing::info!(owner = %ctx.owner, "delivery worker stopped");
    }
}

fn lease_until(ctx: &Sending, now: i64) -> i64 {
    now + (ctx.config.delivery.lease_secs as i64) * 1000
}

/// Pushes this worker's leases forward every third of `lease_secs`.
async fn renew_loop(ctx: Arc<Sending>, stop: CancellationToken) {
    let every = Duration::from_millis((ctx.config.delivery.lease_secs.max(1) * 1000 / 3).max(100));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = now_millis();
        match ctx
            .store
            .renew_leases(&ctx.owner, lease_until(&ctx, now))
            .await
        {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "leases renewed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not renew leases"),
        }
    }
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
    server_health::resume_if_asked(ctx).await;
    server_health::record_changes(ctx).await;
    // While every SMTP server is cooling down or paused, claim nothing:
    // the rows stay queued instead of piling up here.
    if let Some(wait) = ctx.mailer.blocked_for() {
        tracing::debug!(
            wait_ms = wait.as_millis() as u64,
            "no SMTP server available; not claiming"
        );
        return Ok(0);
    }
    let mut handled = outbox::outbox_round(ctx, cancel).await?;
    let Ok(permits) = jobs.reserve_many(batch).await else {
        return Ok(handled);
    };
    let now = now_millis();
    let started = std::time::Instant::now();
    let include_expired = ctx.expired_check_due();
    let claimed = ctx
        .store
        .claim_deliveries(
            &ctx.owner,
            now,
            lease_until(ctx, now),
            batch as i64,
            include_expired,
        )
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
    let template = SlottedBodies::of_digest(&row)
        .map_err(|e| crate::mail::Error::Build(e.to_string()))
        .and_then(|bodies| {
            let bodies = bodies.with_archive_url(&format!("{}/archive/{id}", ctx.base_url));
            DigestTemplate::prepare(&ctx.mailer.from, &row.subject, &ctx.list_id, &bodies)
        })
        .map(|t| Arc::new(t.with_dkim(ctx.mailer.dkim.clone())))
        .map_err(|e| {
            tracing::error!(digest_id = id, error = %e, "could not build the digest's message");
            e.to_string()
        });
    let prepared = Arc::new(PreparedDigest {
        id,
        template,
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
            let outcome = match &job.digest {
                Some(digest) => send_digest_copy(&ctx, d, digest, &cancel).await,
                None => DeliveryOutcome::Failed {
                    error: "digest no longer exists".into(),
                    is_permanent: false,
                },
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
    let mut finish_checked_at = std::time::Instant::now();
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
        // Whether a digest is finished is a scan of its open rows: done when
        // the outcomes pause (as at the end of a send), not after every batch.
        if outcomes.is_empty() || finish_checked_at.elapsed() >= FINISH_CHECK_EVERY {
            finish_checked_at = std::time::Instant::now();
            if let Err(e) = ctx.store.finish_digests(now).await {
                tracing::warn!(error = %e, "could not mark finished digests");
            }
        }
    }
}

/// What came of handing a message to the mailer.
enum Routed {
    Sent(String),
    Failed(SendError),
    /// Not sent and not attempted: shutting down, the digest was paused or
    /// cancelled, or (for impatient callers) no server could take it.
    NotAttempted,
}

/// Sends through whichever server can take the message, within its rate
/// limit. A server that cannot be reached has not seen the message, so the
/// next server (or the same one, once it is back) gets it; `is_patient`
/// callers wait for that, others give the message back at once. Everybody
/// waits for a server that is merely busy.
async fn send_routed(
    ctx: &Sending,
    out: &Outgoing<'_>,
    cancel: &CancellationToken,
    digest: Option<&PreparedDigest>,
    is_patient: bool,
) -> Routed {
    loop {
        if cancel.is_cancelled() {
            return Routed::NotAttempted;
        }
        if let Some(d) = digest {
            if !d.still_sendable(&ctx.store).await {
                return Routed::NotAttempted;
            }
        }
        let route = match ctx.mailer.route() {
            Ok(route) => route,
            // Every server was stopped for a configuration error: nothing
            // goes out until one is resumed; the copy goes back to the queue.
            Err(_) if ctx.mailer.is_stopped() => return Routed::NotAttempted,
            // Impatient callers wait for a busy server, not for one that
            // is cooling down or paused.
            Err(_) if !is_patient && ctx.mailer.blocked_for().is_some() => {
                return Routed::NotAttempted
            }
            Err(wait) => {
                tokio::select! {
                    _ = cancel.cancelled() => return Routed::NotAttempted,
                    _ = tokio::time::sleep(wait.min(STATUS_RECHECK)) => continue,
                }
            }
        };
        // Held until the send is done: a window limit counts the send from
        // then, as the server does.
        let mut ticket = None;
        if let Some((server, limit)) = route.rate_limit() {
            tokio::select! {
                _ = cancel.cancelled() => return Routed::NotAttempted,
                turn = ctx.rate.wait_turn(&ctx.store, server, limit) => match turn {
                    Ok(t) => ticket = Some(t),
                    Err(e) => {
                        tracing::warn!(%server, error = %e, "could not reserve a send slot; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
        }
        let sent = route.send(out).await;
        drop(ticket);
        match sent {
            Ok(reply) => return Routed::Sent(reply),
            Err(SendError::Unreachable(error) | SendError::Config(error)) => {
                tracing::debug!(%error, "SMTP server unreachable; the message goes elsewhere or waits");
                if !is_patient {
                    return Routed::NotAttempted;
                }
            }
            Err(e) => return Routed::Failed(e),
        }
    }
}

async fn send_digest_copy(
    ctx: &Sending,
    c: &ClaimedDelivery,
    d: &PreparedDigest,
    cancel: &CancellationToken,
) -> DeliveryOutcome {
    let token = ctx.signer.unsubscribe_token(c.subscriber_id, &c.email);
    let page_url = format!("{}/unsubscribe/{token}", ctx.base_url);
    let one_click_url = format!("{}/unsubscribe/one-click/{token}", ctx.base_url);
    let mailto = ctx.mailer.unsubscribe_mailto(&token);
    let template = match &d.template {
        Ok(template) => template,
        Err(e) => {
            return DeliveryOutcome::Failed {
                error: e.clone(),
                is_permanent: false,
            }
        }
    };
    let rendered = if template.signs_slowly() {
        // An RSA signature (~0.5 ms) is made on the blocking pool, so
        // signing uses every core while the runtime's threads (one in a
        // worker process) keep the connections moving.
        let (template, email, name) = (template.clone(), c.email.clone(), c.name.clone());
        let urls = (page_url.clone(), one_click_url.clone(), mailto.clone());
        tokio::task::spawn_blocking(move || {
            template.render(&email, name.as_deref(), &urls.0, &urls.1, &urls.2)
        })
        .await
        .unwrap_or_else(|e| Err(crate::mail::Error::Build(format!("signing stopped: {e}"))))
    } else {
        template.render(
            &c.email,
            c.name.as_deref(),
            &page_url,
            &one_click_url,
            &mailto,
        )
    };
    let (envelope, message) = match rendered {
        // VERP: a bounce to this sender names the subscriber by its token.
        Ok((envelope, message)) => match ctx.mailer.bounce_sender(&token) {
            Some(sender) => match Envelope::new(Some(sender), envelope.to().to_vec()) {
                Ok(envelope) => (envelope, message),
                Err(e) => {
                    return DeliveryOutcome::Failed {
                        error: format!("envelope: {e}"),
                        is_permanent: false,
                    }
                }
            },
            None => (envelope, message),
        },
        Err(e) => {
            return DeliveryOutcome::Failed {
                error: e.to_string(),
                is_permanent: false,
            }
        }
    };
    // Made only for a server that does not announce 8BITMIME.
    let seven_bit = || {
        template
            .render_seven_bit(
                &c.email,
                c.name.as_deref(),
                &page_url,
                &one_click_url,
                &mailto,
            )
            .map(|(_, bytes)| bytes)
    };
    let out = Outgoing {
        envelope: &envelope,
        message: &message,
        seven_bit: Some(&seven_bit),
    };
    let routed = send_routed(ctx, &out, cancel, Some(d), true).await;
    // Throttling replies are attempts, but not the recipient's fault: they
    // never use up `max_attempts`.
    let counted_attempts = c.attempts - c.throttled;
    match routed {
        Routed::Sent(response) => DeliveryOutcome::Sent { response },
        Routed::NotAttempted => DeliveryOutcome::Released,
        Routed::Failed(SendError::Permanent(error)) => {
            tracing::warn!(digest_id = c.digest_id, subscriber_id = c.subscriber_id, %error, "recipient rejected permanently");
            if crate::mail::names_an_unknown_recipient(&error) {
                DeliveryOutcome::Bounced { error }
            } else {
                DeliveryOutcome::Failed {
                    error,
                    is_permanent: true,
                }
            }
        }
        Routed::Failed(SendError::Throttled(error)) => DeliveryOutcome::Retry {
            next_attempt_at: now_millis()
                + ctx
                    .mailer
                    .blocked_for()
                    .map_or(1000, |w| w.as_millis() as i64),
            error,
            is_throttled: true,
        },
        Routed::Failed(e) if counted_attempts < i64::from(ctx.config.delivery.max_attempts) => {
            let error = e.to_string();
            tracing::info!(digest_id = c.digest_id, subscriber_id = c.subscriber_id, attempts = c.attempts, %error, "temporary failure; will retry");
            DeliveryOutcome::Retry {
                next_attempt_at: now_millis()
                    + retry_delay_ms(retry_base_ms(ctx), counted_attempts),
                error,
                is_throttled: false,
            }
        }
        Routed::Failed(e) => DeliveryOutcome::Failed {
            error: format!("gave up after {counted_attempts} attempts: {e}"),
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
