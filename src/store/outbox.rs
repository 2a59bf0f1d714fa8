use super::{in_write_tx, with_pool, Result, Store};
use crate::domain::time::Millis;

/// A transactional message (confirmation) waiting to be sent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxMessage {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    /// Rendered bodies: only rows queued before confirmations kept their
    /// link instead (migration 0004).
    pub body_html: Option<String>,
    pub body_text: Option<String>,
    /// A confirmation's link; the mail is rendered from it when sent.
    pub confirm_url: Option<String>,
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub enum OutboxOutcome {
    Sent,
    Retry {
        error: String,
        next_attempt_at: Millis,
    },
    Failed {
        error: String,
    },
    Released,
}

/// Any fixed number: names the lock that makes PostgreSQL workers take
/// turns at counting and claiming capped confirmations.
const OUTBOX_CAP_LOCK: i64 = 0x6865_7261_6c64;

impl Store {
    /// Claims up to `limit` due messages. With `confirmations_per_minute`
    /// above zero, no more than the cap leaves: the confirmations sent in
    /// the last 60 s and those being sent count against it, and the rest
    /// stay queued for a later round (nothing is dropped). Counting and
    /// claiming are one transaction that workers take in turn (BEGIN
    /// IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so together
    /// they keep to the cap.
    pub async fn claim_outbox(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
        confirmations_per_minute: u32,
    ) -> Result<Vec<OutboxMessage>> {
        let is_postgres = matches!(self, Store::Postgres(_));
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE outbox SET status = 'sending', lease_until = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE (status = 'queued' AND next_attempt_at <= $2)
                             OR (status = 'sending' AND lease_until < $2)
                          ORDER BY id LIMIT $3{lock})
             RETURNING id, kind, recipient, subject, body_html, body_text, confirm_url, attempts"
        );
        in_write_tx!(self, tx => {
            let mut limit = limit;
            if confirmations_per_minute > 0 {
                if is_postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(OUTBOX_CAP_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                // Sent in the last minute (the partial index
                // outbox_confirmations_sent), plus those being sent now.
                let in_last_minute: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM outbox WHERE kind = 'confirmation'
                             AND sent_at IS NOT NULL AND sent_at > $1)
                          + (SELECT COUNT(*) FROM outbox WHERE kind = 'confirmation' AND status = 'sending')",
                )
                .bind(now - 60_000)
                .fetch_one(&mut *tx)
                .await?;
                limit = limit.min(i64::from(confirmations_per_minute) - in_last_minute);
                if limit <= 0 {
                    return Ok(Vec::new());
                }
            }
            let claimed = sqlx::query_as(&sql)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(claimed)
        })
    }

    /// Records what happened to an outbox message. A sent or failed
    /// message's link and bodies are dropped: they held the only copy of the
    /// raw confirmation token.
    pub async fn record_outbox(&self, id: i64, outcome: &OutboxOutcome, now: Millis) -> Result<()> {
        // One autocommit UPDATE: no read-then-write, so no immediate
        // transaction is needed on SQLite.
        with_pool!(self, pool => {
            let q = match outcome {
                OutboxOutcome::Sent => sqlx::query(
                    "UPDATE outbox SET status = 'sent', sent_at = $2, body_html = NULL, body_text = NULL, confirm_url = NULL, last_error = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(now),
                OutboxOutcome::Retry { error, next_attempt_at } => sqlx::query(
                    "UPDATE outbox SET status = 'queued', next_attempt_at = $2, last_error = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(next_attempt_at)
                .bind(error),
                OutboxOutcome::Failed { error } => sqlx::query(
                    "UPDATE outbox SET status = 'failed', last_error = $2, body_html = NULL, body_text = NULL, confirm_url = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(error),
                OutboxOutcome::Released => sqlx::query(
                    "UPDATE outbox SET status = 'queued', attempts = attempts - 1 WHERE id = $1",
                )
                .bind(id),
            };
            q.execute(pool).await?;
        });
        Ok(())
    }
}
