use super::{in_write_tx, Result, Store};
use crate::domain::time::Millis;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub digest_id: i64,
    pub subscriber_id: i64,
    pub attempts: i64,
    /// How many of the attempts met a throttling reply.
    pub throttled: i64,
    pub email: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    /// The server accepted the message; its reply is kept.
    Sent { response: String },
    /// Temporary failure: try again at `next_attempt_at`.
    Retry {
        error: String,
        next_attempt_at: Millis,
        /// The server throttled (421, 452, 4.7.x): counted apart, as it
        /// never uses up the recipient's attempts.
        is_throttled: bool,
    },
    /// Gave up: a permanent (5xx) reply, or too many temporary failures.
    /// A permanent one counts towards `bounce_threshold`.
    Failed { error: String, is_permanent: bool },
    /// The server said the recipient does not exist (5.1.1, 5.1.10, 5.2.1,
    /// a bare "550 no such user"): the address is bounced at once and the
    /// bounce recorded as an event of the digest, as a DSN's would be.
    Bounced { error: String },
    /// Not attempted (shutdown): back to the queue, the attempt not counted.
    Released,
}

impl Store {
    /// Claims up to `limit` due deliveries for `owner` until `lease_until`:
    /// queued ones whose time has come, and ones whose previous worker's
    /// lease ran out. Paused and cancelled digests are left alone.
    /// PostgreSQL skips rows other workers hold (`FOR UPDATE SKIP LOCKED`);
    /// SQLite runs it in one short immediate transaction.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
        include_expired: bool,
    ) -> Result<Vec<ClaimedDelivery>> {
        // Two claims, each an index range scan that stops at `limit`: rows
        // whose lease ran out (a crashed worker's), then due queued rows in
        // `next_attempt_at` order. A single query with an OR sorted every due
        // row on each claim, which slowed a million-recipient send down.
        // Looking for expired leases is skipped when the caller looked
        // recently (`include_expired`): leases last minutes, and the scan
        // walks the status index's entries for rows being sent right now.
        //
        // On PostgreSQL the picked rows are locked (SKIP LOCKED, so workers
        // never wait on each other) and updated by their row address
        // (`ctid`, stable while the row is locked): a TID scan, with no join
        // for the planner to get wrong. Joining the picked keys back to the
        // table, the planner hashed the whole table on every claim (10–20 ms
        // per 256 rows at 20,000 queued, most of the database's CPU during
        // a send). The digests still sending are read once (an InitPlan),
        // not joined either.
        let is_postgres = matches!(self, Store::Postgres(_));
        let claim = |condition: &str, order: &str| {
            let returning = "RETURNING deliveries.digest_id, deliveries.subscriber_id, deliveries.attempts, deliveries.throttled,
                     (SELECT s.email FROM subscribers s WHERE s.id = deliveries.subscriber_id) AS email,
                     (SELECT s.name FROM subscribers s WHERE s.id = deliveries.subscriber_id) AS name";
            if is_postgres {
                format!(
                    "UPDATE deliveries SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = deliveries.attempts + 1
                     WHERE ctid = ANY(ARRAY(
                         SELECT d.ctid FROM deliveries d
                         WHERE {condition}
                           AND d.digest_id = ANY(ARRAY(SELECT g.id FROM digests g WHERE g.status IN ('queued', 'sending')))
                         ORDER BY {order}
                         LIMIT $4
                         FOR UPDATE OF d SKIP LOCKED))
                     {returning}"
                )
            } else {
                format!(
                    "UPDATE deliveries SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1
                     WHERE (digest_id, subscriber_id) IN (
                         SELECT d.digest_id, d.subscriber_id FROM deliveries d
                         WHERE {condition}
                           AND EXISTS (SELECT 1 FROM digests g WHERE g.id = d.digest_id AND g.status IN ('queued', 'sending'))
                         ORDER BY {order}
                         LIMIT $4)
                     {returning}"
                )
            }
        };
        let expired_sql = claim(
            "d.status = 'sending' AND d.lease_until < $3",
            "d.lease_until",
        );
        let due_sql = claim(
            "d.status = 'queued' AND d.next_attempt_at <= $3",
            "d.next_attempt_at",
        );
        in_write_tx!(self, tx => {
            let mut claimed: Vec<ClaimedDelivery> = if include_expired {
                sqlx::query_as(&expired_sql)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
            } else {
                Vec::new()
            };
            let room = limit - claimed.len() as i64;
            if room > 0 {
                let due: Vec<ClaimedDelivery> = sqlx::query_as(&due_sql)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(room)
                    .fetch_all(&mut *tx)
                    .await?;
                claimed.extend(due);
            }
            if !claimed.is_empty() {
                let mut digest_ids: Vec<i64> = claimed.iter().map(|c| c.digest_id).collect();
                digest_ids.sort_unstable();
                digest_ids.dedup();
                for id in digest_ids {
                    sqlx::query("UPDATE digests SET status = 'sending' WHERE id = $1 AND status = 'queued'")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(claimed)
        })
    }

    /// Records a batch of outcomes in one transaction. Only rows this
    /// worker still holds are written: if its lease ran out and another
    /// worker took a row over, that worker's record wins.
    pub async fn record_deliveries(
        &self,
        owner: &str,
        outcomes: &[(i64, i64, DeliveryOutcome)],
        now: Millis,
        bounce_threshold: i64,
    ) -> Result<()> {
        // The common case, "sent", is written for the whole batch in one
        // set-based statement; the rest row by row.
        let sent: Vec<serde_json::Value> = outcomes
            .iter()
            .filter_map(|(d, s, o)| match o {
                DeliveryOutcome::Sent { response } => Some(
                    serde_json::json!({"digest_id": d, "subscriber_id": s, "response": response}),
                ),
                _ => None,
            })
            .collect();
        let sent_json = serde_json::Value::Array(sent).to_string();
        let sent_sql = match self {
            Store::Sqlite(_) => {
                "UPDATE deliveries SET status = 'sent', sent_at = $1, smtp_response = v.response, last_error = NULL,
                 lease_owner = NULL, lease_until = NULL
                 FROM (SELECT json_extract(value, '$.digest_id') AS digest_id,
                              json_extract(value, '$.subscriber_id') AS subscriber_id,
                              json_extract(value, '$.response') AS response
                       FROM json_each($2)) AS v
                 WHERE deliveries.digest_id = v.digest_id AND deliveries.subscriber_id = v.subscriber_id
                   -- unary + keeps SQLite on the primary key instead of the status index
                   AND +deliveries.lease_owner = $3 AND +deliveries.status = 'sending'"
            }
            // The owner and status the rows must still have come in with
            // the batch (a subquery the planner keeps whole, OFFSET 0), so
            // they are join conditions, not filters on the table. As
            // filters, statistics taken while the digest was queued (no
            // row 'sending', no owner) made the planner expect one row,
            // scan the table for it and re-read the whole batch for each
            // row it found: 20–60 ms per 256 rows. Now the table side is
            // reached by primary key or one hashed pass, whatever the
            // statistics say.
            Store::Postgres(_) => {
                "UPDATE deliveries SET status = 'sent', sent_at = $1, smtp_response = v.response, last_error = NULL,
                 lease_owner = NULL, lease_until = NULL
                 FROM (SELECT r.*, $3::TEXT AS owner, 'sending'::TEXT AS held
                       FROM json_to_recordset($2::json) AS r(digest_id BIGINT, subscriber_id BIGINT, response TEXT)
                       OFFSET 0) AS v
                 WHERE deliveries.digest_id = v.digest_id AND deliveries.subscriber_id = v.subscriber_id
                   AND deliveries.lease_owner = v.owner AND deliveries.status = v.held"
            }
        };
        // A delivered copy ends a run of ambiguous permanent failures: only
        // consecutive ones mark an address bounced.
        let reset_sql = match self {
            Store::Sqlite(_) => {
                "UPDATE subscribers SET hard_bounces = 0
                 WHERE hard_bounces > 0 AND id IN (SELECT json_extract(value, '$.subscriber_id') FROM json_each($1))"
            }
            Store::Postgres(_) => {
                "UPDATE subscribers SET hard_bounces = 0
                 WHERE hard_bounces > 0 AND id IN (SELECT r.subscriber_id FROM json_to_recordset($1::json) AS r(subscriber_id BIGINT))"
            }
        };
        in_write_tx!(self, tx => {
            if sent_json != "[]" {
                sqlx::query(sent_sql)
                    .bind(now)
                    .bind(&sent_json)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(reset_sql)
                    .bind(&sent_json)
                    .execute(&mut *tx)
                    .await?;
            }
            for (digest_id, subscriber_id, outcome) in outcomes {
                let q = match outcome {
                    DeliveryOutcome::Sent { .. } => continue,
                    DeliveryOutcome::Retry { error, next_attempt_at, is_throttled } => sqlx::query(
                        "UPDATE deliveries SET status = CASE WHEN EXISTS (SELECT 1 FROM digests g WHERE g.id = $1 AND g.status = 'cancelled')
                                                    THEN 'skipped' ELSE 'queued' END,
                         next_attempt_at = $4, last_error = $5, throttled = throttled + $6,
                         lease_owner = NULL, lease_until = NULL
                         WHERE digest_id = $1 AND subscriber_id = $2 AND lease_owner = $3 AND status = 'sending'",
                    )
                    .bind(digest_id)
                    .bind(subscriber_id)
                    .bind(owner)
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind(i64::from(*is_throttled)),
                    DeliveryOutcome::Failed { error, .. } | DeliveryOutcome::Bounced { error } => sqlx::query(
                        "UPDATE deliveries SET status = 'failed', last_error = $4, lease_owner = NULL, lease_until = NULL
                         WHERE digest_id = $1 AND subscriber_id = $2 AND lease_owner = $3 AND status = 'sending'",
                    )
                    .bind(digest_id)
                    .bind(subscriber_id)
                    .bind(owner)
                    .bind(error),
                    // A copy given back after its digest was cancelled is
                    // skipped with the rest of the digest.
                    DeliveryOutcome::Released => sqlx::query(
                        "UPDATE deliveries SET status = CASE WHEN EXISTS (SELECT 1 FROM digests g WHERE g.id = $1 AND g.status = 'cancelled')
                                                    THEN 'skipped' ELSE 'queued' END,
                         last_error = CASE WHEN EXISTS (SELECT 1 FROM digests g WHERE g.id = $1 AND g.status = 'cancelled')
                                           THEN 'digest cancelled' ELSE last_error END,
                         attempts = attempts - 1, lease_owner = NULL, lease_until = NULL
                         WHERE digest_id = $1 AND subscriber_id = $2 AND lease_owner = $3 AND status = 'sending'",
                    )
                    .bind(digest_id)
                    .bind(subscriber_id)
                    .bind(owner),
                };
                let written = q.execute(&mut *tx).await?.rows_affected();
                if written > 0 {
                    if let DeliveryOutcome::Bounced { error } = outcome {
                        sqlx::query(
                            "UPDATE subscribers SET hard_bounces = hard_bounces + 1,
                             status = CASE WHEN status = 'confirmed' THEN 'bounced' ELSE status END
                             WHERE id = $1",
                        )
                        .bind(subscriber_id)
                        .execute(&mut *tx)
                        .await?;
                        let detail = super::events::event_detail(error);
                        sqlx::query(
                            "INSERT INTO subscriber_events (subscriber_id, digest_id, kind, source, detail, reference, created_at)
                             VALUES ($1, $2, 'bounce', 'smtp', $3, $4, $5)
                             ON CONFLICT (reference, subscriber_id, kind) DO NOTHING",
                        )
                        .bind(subscriber_id)
                        .bind(digest_id)
                        .bind(&detail)
                        .bind(format!("smtp-rcpt:digest-{digest_id}"))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let DeliveryOutcome::Failed { is_permanent: true, .. } = outcome {
                        sqlx::query(
                            "UPDATE subscribers SET hard_bounces = hard_bounces + 1,
                             status = CASE WHEN hard_bounces + 1 >= $2 AND status = 'confirmed' THEN 'bounced' ELSE status END
                             WHERE id = $1",
                        )
                        .bind(subscriber_id)
                        .bind(bounce_threshold)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

impl Store {
    /// Pushes the lease of every delivery `owner` holds to `lease_until`.
    pub async fn renew_leases(&self, owner: &str, lease_until: Millis) -> Result<u64> {
        super::with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE deliveries SET lease_until = $2 WHERE status = 'sending' AND lease_owner = $1")
                .bind(owner)
                .bind(lease_until)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Sum of attempts over a digest's deliveries (every try is counted).
    pub async fn delivery_attempts(&self, digest_id: i64) -> Result<i64> {
        super::with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM deliveries WHERE digest_id = $1")
                .bind(digest_id)
                .fetch_one(pool)
                .await?)
        })
    }
}
