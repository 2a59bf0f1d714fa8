//! Gives subscribers stored before migration 0006 their address key
//! (`SubscriberEmail::key`), which only the application can compute (IDNA).
//!
//! Addresses that turn out to be one (`Ann@example.com` and
//! `ann@example.com`, stored as two rows by an older herald) keep one
//! subscriber: the one furthest along (confirmed, then pending, then
//! unsubscribed, then bounced; the older row on a tie) gets the key. The
//! others stay in the table with their consent record and a key that names
//! them as merged (`merged:{id}:{key}`, which no address ever has), are
//! marked unsubscribed if they were pending or confirmed, and their queued
//! digests are skipped: one mailbox gets one copy. Their unsubscribe links
//! keep working. Each merge is logged with both ids.

use super::{in_write_tx, Result, Store};
use crate::domain::email_key;
use crate::domain::time::now_millis;

/// Rows keyed per transaction.
const BATCH: i64 = 500;

fn rank(status: &str) -> u8 {
    match status {
        "confirmed" => 3,
        "pending" => 2,
        "unsubscribed" => 1,
        _ => 0,
    }
}

impl Store {
    /// Keys every subscriber without one; a no-op (one indexed query) once
    /// all rows have theirs.
    pub async fn backfill_email_keys(&self) -> Result<()> {
        let mut keyed = 0u64;
        loop {
            let done = self.backfill_batch().await?;
            if done == 0 {
                break;
            }
            keyed += done;
        }
        if keyed > 0 {
            tracing::info!(subscribers = keyed, "address keys filled in");
        }
        Ok(())
    }

    async fn backfill_batch(&self) -> Result<u64> {
        let now = now_millis();
        in_write_tx!(self, tx => {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, email, status FROM subscribers WHERE email_key IS NULL ORDER BY id LIMIT $1",
            )
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            for (id, email, status) in &rows {
                let key = email_key(email);
                let holder: Option<(i64, String)> =
                    sqlx::query_as("SELECT id, status FROM subscribers WHERE email_key = $1")
                        .bind(&key)
                        .fetch_optional(&mut *tx)
                        .await?;
                // (kept, merged) when the key is already taken.
                let merge = holder.map(|(holder_id, holder_status)| {
                    if rank(status) > rank(&holder_status) {
                        (*id, holder_id)
                    } else {
                        (holder_id, *id)
                    }
                });
                let loser = merge.map(|(_, merged)| merged);
                if let Some((kept, loser)) = merge {
                    tracing::warn!(
                        kept,
                        merged = loser,
                        "two subscribers had the same address up to case or IDNA; one is kept"
                    );
                    sqlx::query(
                        "UPDATE subscribers SET email_key = $2,
                         unsubscribed_at = CASE WHEN status IN ('pending', 'confirmed') THEN $3 ELSE unsubscribed_at END,
                         status = CASE WHEN status IN ('pending', 'confirmed') THEN 'unsubscribed' ELSE status END
                         WHERE id = $1",
                    )
                    .bind(loser)
                    .bind(format!("merged:{loser}:{key}"))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE deliveries SET status = 'skipped', last_error = 'merged with another subscriber'
                         WHERE subscriber_id = $1 AND status = 'queued'",
                    )
                    .bind(loser)
                    .execute(&mut *tx)
                    .await?;
                }
                if loser != Some(*id) {
                    sqlx::query("UPDATE subscribers SET email_key = $2 WHERE id = $1")
                        .bind(id)
                        .bind(&key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(rows.len() as u64)
        })
    }
}
