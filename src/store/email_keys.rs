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
use std::collections::{HashMap, HashSet};

/// Rows keyed per transaction.
const BATCH: i64 = 5000;

/// Any fixed number: names the PostgreSQL lock taken while keying.
const BACKFILL_LOCK: i64 = 0x6865_7261_6c65;

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
        // Batches walk the primary key (`id > after`), so each reads its
        // rows by the index instead of sorting every unkeyed row again.
        let mut after = 0i64;
        loop {
            let (done, last) = self.backfill_batch(after).await?;
            if done == 0 {
                break;
            }
            keyed += done;
            after = last;
        }
        if keyed > 0 {
            tracing::info!(subscribers = keyed, "address keys filled in");
        }
        Ok(())
    }

    /// One batch: the keys are computed here (IDNA), then every row whose
    /// key is new and comes once in the batch is written by one set-based
    /// statement; only the rows whose key is already taken, or comes twice
    /// (two spellings of one address: rare), go one by one, in id order,
    /// through the merge below.
    async fn backfill_batch(&self, after: i64) -> Result<(u64, i64)> {
        let now = now_millis();
        let is_postgres = matches!(self, Store::Postgres(_));
        let (held_sql, bulk_sql) = if is_postgres {
            (
                "SELECT email_key FROM subscribers
                 WHERE email_key IN (SELECT jsonb_array_elements_text($1::jsonb))",
                "UPDATE subscribers s SET email_key = v.k
                 FROM jsonb_to_recordset($1::jsonb) AS v(id BIGINT, k TEXT) WHERE s.id = v.id",
            )
        } else {
            (
                "SELECT email_key FROM subscribers WHERE email_key IN (SELECT value FROM json_each($1))",
                "UPDATE subscribers SET email_key = json_extract(j.value, '$.k')
                 FROM json_each($1) AS j WHERE subscribers.id = json_extract(j.value, '$.id')",
            )
        };
        in_write_tx!(self, tx => {
            // Processes starting together take turns (SQLite's BEGIN
            // IMMEDIATE already makes them), so two never merge one pair.
            if is_postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(BACKFILL_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, email, status FROM subscribers WHERE id > $2 AND email_key IS NULL ORDER BY id LIMIT $1",
            )
            .bind(BATCH)
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            let keyed: Vec<(i64, String, String, String)> = rows
                .into_iter()
                .map(|(id, email, status)| {
                    let key = email_key(&email);
                    (id, email, status, key)
                })
                .collect();
            let mut seen: HashMap<&str, usize> = HashMap::with_capacity(keyed.len());
            for (_, _, _, key) in &keyed {
                *seen.entry(key.as_str()).or_default() += 1;
            }
            let keys: Vec<&str> = seen.keys().copied().collect();
            let held: HashSet<String> = sqlx::query_scalar(held_sql)
                .bind(json_text(&keys))
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            let (lone, merging): (Vec<_>, Vec<_>) = keyed
                .iter()
                .partition(|(_, _, _, key)| seen[key.as_str()] == 1 && !held.contains(key));
            if !lone.is_empty() {
                let pairs: Vec<serde_json::Value> = lone
                    .iter()
                    .map(|(id, _, _, key)| serde_json::json!({"id": id, "k": key}))
                    .collect();
                sqlx::query(bulk_sql)
                    .bind(serde_json::Value::Array(pairs).to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            for (id, _email, status, key) in merging {
                let holder: Option<(i64, String)> =
                    sqlx::query_as("SELECT id, status FROM subscribers WHERE email_key = $1")
                        .bind(key)
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
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            let last = keyed.last().map_or(after, |(id, ..)| *id);
            Ok((keyed.len() as u64, last))
        })
    }
}

/// `items` as a JSON array of strings, for the statements above.
fn json_text(items: &[&str]) -> String {
    serde_json::Value::Array(items.iter().map(|k| serde_json::Value::from(*k)).collect())
        .to_string()
}

impl Store {
    /// `herald bench keys`: every subscriber back to "stored before address
    /// keys" (no key).
    pub async fn forget_email_keys_for_bench(&self) -> Result<u64> {
        super::with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE subscribers SET email_key = NULL")
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// `herald bench keys`' baseline: the same rows keyed by one statement
    /// in the database (`lower(email)`, no IDNA): the floor any keying of
    /// these rows could reach.
    pub async fn key_by_lowercase_for_bench(&self) -> Result<u64> {
        super::with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE subscribers SET email_key = lower(email) WHERE email_key IS NULL")
                .execute(pool)
                .await?
                .rows_affected())
        })
    }
}
