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

impl Store {
    pub async fn claim_outbox(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
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
