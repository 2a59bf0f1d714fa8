//! What the worker tells the operator about its SMTP servers, through the
//! database (so /health, the digest API and `herald digest status` see it
//! from any process), and an operator's request to resume a stopped one.

use super::Sending;
use crate::domain::time::now_millis;
use std::time::{Duration, Instant};

/// At start: forgets servers no longer configured (renamed or removed), so
/// an old failure does not keep /health degraded.
pub(super) async fn forget_unconfigured(ctx: &Sending) {
    let configured: Vec<String> = ctx.mailer.health().into_iter().map(|h| h.name).collect();
    if let Err(e) = ctx.store.forget_smtp_servers_except(&configured).await {
        tracing::warn!(error = %e, "could not forget SMTP servers no longer configured");
    }
}

/// Writes the servers' states that changed, for /health, the digest API
/// and `herald digest status` (read by other processes too).
pub(super) async fn record_changes(ctx: &Sending) {
    let now = now_millis();
    for h in ctx.mailer.health_changes() {
        if let Err(e) = ctx
            .store
            .record_smtp_health(
                &h.name,
                h.state.as_str(),
                h.last_error.as_deref(),
                h.since,
                now,
            )
            .await
        {
            tracing::warn!(server = %h.name, error = %e, "could not record the SMTP server's state");
        }
    }
}

/// How often a worker with a stopped server looks whether an operator
/// resumed it (`Store::resume_smtp_server`).
const RESUME_CHECK_EVERY: Duration = Duration::from_secs(1);

pub(super) async fn resume_if_asked(ctx: &Sending) {
    if !ctx.mailer.is_any_stopped() {
        return;
    }
    let is_due = match ctx.resume_checked_at.lock() {
        Ok(mut at) if at.is_none_or(|t| t.elapsed() >= RESUME_CHECK_EVERY) => {
            *at = Some(Instant::now());
            true
        }
        _ => false,
    };
    if !is_due {
        return;
    }
    match ctx.store.smtp_health().await {
        Ok(rows) => {
            for row in rows.iter().filter(|r| r.state == "resumed") {
                ctx.mailer.resume(&row.server);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read whether a stopped SMTP server was resumed")
        }
    }
}
