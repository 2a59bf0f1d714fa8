use super::{in_write_tx, with_pool, Error, Result, Store};
use crate::domain::time::Millis;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DigestRow {
    pub id: i64,
    pub slot: String,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub window_start: Millis,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub window_end: Millis,
    pub subject: String,
    #[serde(skip)]
    pub body_html: String,
    #[serde(skip)]
    pub body_text: String,
    /// Where the bodies' per-copy and per-digest links go (JSON, see
    /// `digest::slots`); None for a digest stored before herald recorded them.
    #[serde(skip)]
    pub body_slots: Option<String>,
    pub status: String,
    pub recipients: i64,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub created_at: Millis,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser_option")]
    pub finished_at: Option<Millis>,
}

#[derive(Debug, Clone)]
pub struct NewDigest {
    pub slot: String,
    pub window_start: Millis,
    pub window_end: Millis,
    pub subject: String,
    pub body_html: String,
    pub body_text: String,
    /// `digest::slots::StoredBodies::slots`.
    pub body_slots: String,
    pub article_ids: Vec<i64>,
}

/// Where the deliveries of one digest stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DigestCounts {
    pub queued: i64,
    /// Queued again after a temporary failure.
    pub retrying: i64,
    pub in_flight: i64,
    /// Claimed by a worker whose lease ran out (it will be taken over).
    pub stuck: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
}

const DIGEST_COLUMNS: &str = "id, slot, window_start, window_end, subject, body_html, body_text, body_slots, status, recipients, created_at, finished_at";

/// A sent digest as the archive lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArchivedDigest {
    pub id: i64,
    pub subject: String,
    pub created_at: Millis,
}

/// Which digests the public archive shows: those readers have received. A
/// digest that is sending or done and that at least one copy of was
/// accepted by the relay (so a "view in your browser" link works from the
/// first copy on). Never a queued or paused digest (paused is how an
/// operator holds back a digest gone wrong), a cancelled one (even if some
/// copies went out), or one no copy of was delivered (every copy failed, or
/// nobody was subscribed). The subquery walks the primary key
/// (digest_id, subscriber_id) of one digest and stops at its first sent
/// row: `status || ''` keeps SQLite off the status index, which would
/// visit every sent row of every digest.
const IS_SENT: &str = "status IN ('sending', 'done')
    AND EXISTS (SELECT 1 FROM deliveries d WHERE d.digest_id = digests.id AND (d.status || '') = 'sent')";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCreated {
    Created(i64),
    /// The slot already has a digest (another instance, or a retried request).
    AlreadyExists(i64),
}

impl Store {
    /// Creates the digest for its slot and queues one delivery per confirmed
    /// subscriber in a single `INSERT … SELECT`. At most one digest per slot:
    /// the UNIQUE(slot) constraint is the guard, so two herald processes
    /// racing for the same slot create one digest between them.
    pub async fn create_digest(&self, d: &NewDigest, now: Millis) -> Result<DigestCreated> {
        let created: DigestCreated = in_write_tx!(self, tx => {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO digests (slot, window_start, window_end, subject, body_html, body_text, body_slots, status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8) ON CONFLICT (slot) DO NOTHING RETURNING id",
            )
            .bind(&d.slot)
            .bind(d.window_start)
            .bind(d.window_end)
            .bind(&d.subject)
            .bind(&d.body_html)
            .bind(&d.body_text)
            .bind(&d.body_slots)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else {
                let existing: i64 = sqlx::query_scalar("SELECT id FROM digests WHERE slot = $1")
                    .bind(&d.slot)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.rollback().await?;
                return Ok(DigestCreated::AlreadyExists(existing));
            };
            for (position, article_id) in d.article_ids.iter().enumerate() {
                sqlx::query("INSERT INTO digest_articles (digest_id, article_id, position) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(article_id)
                    .bind(position as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            let recipients = sqlx::query(
                "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, next_attempt_at)
                 SELECT $1, id, 'queued', 0, $2 FROM subscribers WHERE status = 'confirmed'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE digests SET recipients = $2 WHERE id = $1")
                .bind(id)
                .bind(recipients as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, Error>(DigestCreated::Created(id))
        })?;
        if let (Store::Postgres(pool), DigestCreated::Created(_)) = (self, created) {
            // The table just grew by a whole list: fresh statistics keep
            // the planner on the primary key while the digest is sent.
            sqlx::query("ANALYZE digests, deliveries")
                .execute(pool)
                .await?;
        }
        Ok(created)
    }

    pub async fn digest_by_id(&self, id: i64) -> Result<Option<DigestRow>> {
        let sql = format!("SELECT {DIGEST_COLUMNS} FROM digests WHERE id = $1");
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn digest_by_slot(&self, slot: &str) -> Result<Option<DigestRow>> {
        let sql = format!("SELECT {DIGEST_COLUMNS} FROM digests WHERE slot = $1");
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(slot).fetch_optional(pool).await?))
    }

    pub async fn recent_digests(&self, limit: i64) -> Result<Vec<DigestRow>> {
        let sql = format!("SELECT {DIGEST_COLUMNS} FROM digests ORDER BY id DESC LIMIT $1");
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?))
    }

    /// Sent digests for the public archive, newest first: `offset` and
    /// `limit` page through them. Only the columns a listing shows: a
    /// digest's body is some 20 KB.
    pub async fn sent_digests(&self, offset: i64, limit: i64) -> Result<Vec<ArchivedDigest>> {
        let sql = format!(
            "SELECT id, subject, created_at FROM digests WHERE {IS_SENT} ORDER BY id DESC LIMIT $1 OFFSET $2"
        );
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(pool).await?))
    }

    /// The newest sent digests with their bodies (the archive's feed).
    pub async fn newest_sent_digests(&self, limit: i64) -> Result<Vec<DigestRow>> {
        let sql = format!(
            "SELECT {DIGEST_COLUMNS} FROM digests WHERE {IS_SENT} ORDER BY id DESC LIMIT $1"
        );
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?))
    }

    /// A digest by id if it was sent (`IS_SENT`); None for an unknown id
    /// and for one that readers never received.
    pub async fn sent_digest_by_id(&self, id: i64) -> Result<Option<DigestRow>> {
        let sql = format!("SELECT {DIGEST_COLUMNS} FROM digests WHERE id = $1 AND {IS_SENT}");
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// End of the newest digest's window that was not cancelled.
    /// When the newest digest that was not cancelled was made.
    pub async fn last_digest_created_at(&self) -> Result<Option<Millis>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT MAX(created_at) FROM digests WHERE status <> 'cancelled'")
                .fetch_one(pool)
                .await?)
        })
    }

    pub async fn last_window_end(&self) -> Result<Option<Millis>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT MAX(window_end) FROM digests WHERE status <> 'cancelled'")
                .fetch_one(pool)
                .await?)
        })
    }

    pub async fn digest_article_ids(&self, digest_id: i64) -> Result<Vec<i64>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT article_id FROM digest_articles WHERE digest_id = $1 ORDER BY position")
                .bind(digest_id)
                .fetch_all(pool)
                .await?)
        })
    }

    pub async fn digest_counts(&self, digest_id: i64, now: Millis) -> Result<DigestCounts> {
        let rows: Vec<(String, i64, i64, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT status,
                        COUNT(*),
                        SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END),
                        SUM(CASE WHEN lease_until < $2 THEN 1 ELSE 0 END)
                 FROM deliveries WHERE digest_id = $1 GROUP BY status",
            )
            .bind(digest_id)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        let mut c = DigestCounts::default();
        for (status, n, retried, expired) in rows {
            match status.as_str() {
                "queued" => {
                    c.queued = n;
                    c.retrying = retried;
                }
                "sending" => {
                    c.in_flight = n - expired;
                    c.stuck = expired;
                }
                "sent" => c.sent = n,
                "failed" => c.failed = n,
                "skipped" => c.skipped = n,
                _ => {}
            }
        }
        Ok(c)
    }

    /// The recipients that failed for good, with the server's reply.
    pub async fn failed_deliveries(
        &self,
        digest_id: i64,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>)>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT s.email, d.last_error FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                 WHERE d.digest_id = $1 AND d.status = 'failed' ORDER BY s.email LIMIT $2",
            )
            .bind(digest_id)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The last error of a copy still waiting to go out (queued again
    /// after a failure, or in flight), if any.
    pub async fn digest_last_error(&self, digest_id: i64) -> Result<Option<String>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar(
                "SELECT last_error FROM deliveries
                 WHERE digest_id = $1 AND status IN ('queued', 'sending') AND last_error IS NOT NULL
                 ORDER BY next_attempt_at DESC LIMIT 1",
            )
            .bind(digest_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Moves a digest between states; `from` lists the states it may leave.
    /// Returns false when the digest was in none of them.
    pub async fn set_digest_status(&self, id: i64, from: &[&str], to: &str) -> Result<bool> {
        // At most a handful of states: spell them out as parameters.
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE digests SET status = $2 WHERE id = $1 AND status IN ({})",
            placeholders.join(", ")
        );
        with_pool!(self, pool => {
            let mut q = sqlx::query(&sql).bind(id).bind(to);
            for s in from {
                q = q.bind(*s);
            }
            Ok(q.execute(pool).await?.rows_affected() > 0)
        })
    }

    /// Cancels a digest: deliveries not yet sent are skipped. Returns how
    /// many were left unsent, or None if the digest could not be cancelled.
    pub async fn cancel_digest(&self, id: i64, now: Millis) -> Result<Option<u64>> {
        in_write_tx!(self, tx => {
            let changed = sqlx::query(
                "UPDATE digests SET status = 'cancelled', finished_at = $2
                 WHERE id = $1 AND status IN ('queued', 'sending', 'paused')",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let skipped = sqlx::query(
                "UPDATE deliveries SET status = 'skipped', last_error = 'digest cancelled'
                 WHERE digest_id = $1 AND status = 'queued'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Some(skipped))
        })
    }

    /// Marks digests done once nothing is left queued or in flight.
    pub async fn finish_digests(&self, now: Millis) -> Result<u64> {
        with_pool!(self, pool => {
            Ok(sqlx::query(
                "UPDATE digests SET status = 'done', finished_at = $1
                 WHERE status IN ('queued', 'sending')
                   AND NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.digest_id = digests.id AND d.status IN ('queued', 'sending'))",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected())
        })
    }
}
