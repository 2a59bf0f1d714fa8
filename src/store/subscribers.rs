use super::signups::NewSignup;
use super::{in_write_tx, with_pool, Result, Store};
use crate::domain::time::Millis;
use crate::domain::{SubscriberEmail, SubscriberName};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriberRow {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub source: String,
    pub created_at: Millis,
    pub confirmed_at: Option<Millis>,
    pub unsubscribed_at: Option<Millis>,
}

/// Everything a signup writes besides the subscriber row: the hashed token
/// and, for the outbox, the confirmation mail's subject and link (the mail
/// is rendered when it is sent). The store decides whether it is used (new
/// or returning address, resend interval passed).
#[derive(Debug, Clone)]
pub struct PendingConfirmation {
    pub token_hash: String,
    pub expires_at: Millis,
    pub subject: String,
    pub confirm_url: String,
}

#[derive(Debug, Clone)]
pub struct SignupRequest<'a> {
    pub email: &'a SubscriberEmail,
    pub name: Option<&'a SubscriberName>,
    pub source: &'a str,
    pub consent_ip: Option<&'a str>,
    pub consent_user_agent: Option<&'a str>,
    pub now: Millis,
    pub resend_interval_ms: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A new address: pending, confirmation queued.
    Created,
    /// Still pending: a new confirmation was queued.
    Resent,
    /// Pending, and a confirmation went to this address, or to its mailbox
    /// under another spelling (`+tag`, Gmail's dots), moments ago: nothing
    /// queued.
    RateLimited,
    /// Already confirmed: nothing changes.
    AlreadyConfirmed,
    /// Had unsubscribed or bounced: pending again, needs a new confirmation.
    Resubscribed,
}

const SUBSCRIBER_COLUMNS: &str =
    "id, email, name, status, source, created_at, confirmed_at, unsubscribed_at";

impl Store {
    /// Upserts the subscriber as pending and, when a confirmation is due,
    /// writes the token and the outbox row — one transaction, so a crash
    /// leaves either all of it or none.
    pub async fn signup(
        &self,
        req: &SignupRequest<'_>,
        confirmation: &PendingConfirmation,
    ) -> Result<SignupOutcome> {
        if self.signup_new_address(req, confirmation).await? {
            return Ok(SignupOutcome::Created);
        }
        self.signup_known_address(req, confirmation).await
    }

    /// The common case, a new address, in one statement (one script on
    /// SQLite). Returns false, having written nothing, when the address is
    /// already known.
    async fn signup_new_address(
        &self,
        req: &SignupRequest<'_>,
        confirmation: &PendingConfirmation,
    ) -> Result<bool> {
        let signup = NewSignup {
            email: req.email.as_str().to_owned(),
            email_key: req.email.key(),
            mailbox_key: req.email.mailbox_key(),
            resend_interval_ms: req.resend_interval_ms,
            name: req.name.map(|n| n.as_str().to_owned()),
            source: req.source.to_owned(),
            consent_ip: req.consent_ip.map(str::to_owned),
            consent_user_agent: req.consent_user_agent.map(str::to_owned),
            now: req.now,
            confirmation: confirmation.clone(),
        };
        Ok(self.insert_new_signups(&[signup]).await?[0])
    }

    /// A known address (or one that is not known any more): read its state
    /// and decide, in a write transaction.
    pub async fn signup_known_address(
        &self,
        req: &SignupRequest<'_>,
        confirmation: &PendingConfirmation,
    ) -> Result<SignupOutcome> {
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR UPDATE",
        };
        let select = format!(
            "SELECT id, status, last_confirmation_sent_at FROM subscribers WHERE email_key = $1{lock}"
        );
        let name = req.name.map(|n| n.as_str());
        let key = req.email.key();
        in_write_tx!(self, tx => {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO subscribers (email, name, status, source, created_at, consent_ip, consent_user_agent, consent_at, email_key)
                 VALUES ($1, $2, 'pending', $3, $4, $5, $6, $4, $7)
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(req.email.as_str())
            .bind(name)
            .bind(req.source)
            .bind(req.now)
            .bind(req.consent_ip)
            .bind(req.consent_user_agent)
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let (id, outcome) = match inserted {
                Some(id) => (id, SignupOutcome::Created),
                None => {
                    let (id, status, last_sent): (i64, String, Option<Millis>) =
                        sqlx::query_as(&select)
                            .bind(&key)
                            .fetch_one(&mut *tx)
                            .await?;
                    let outcome = match status.as_str() {
                        "confirmed" => SignupOutcome::AlreadyConfirmed,
                        "pending" => match last_sent {
                            Some(at) if req.now - at < req.resend_interval_ms => {
                                SignupOutcome::RateLimited
                            }
                            _ => SignupOutcome::Resent,
                        },
                        _ => SignupOutcome::Resubscribed,
                    };
                    if outcome == SignupOutcome::Resubscribed {
                        let changed = sqlx::query(
                            "UPDATE subscribers SET status = 'pending', name = COALESCE($2, name),
                             consent_ip = $3, consent_user_agent = $4, consent_at = $5, source = $6
                             WHERE id = $1 AND status IN ('unsubscribed', 'bounced')",
                        )
                        .bind(id)
                        .bind(name)
                        .bind(req.consent_ip)
                        .bind(req.consent_user_agent)
                        .bind(req.now)
                        .bind(req.source)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if changed != 1 {
                            return Err(super::Error::Changed("a signup"));
                        }
                    }
                    (id, outcome)
                }
            };
            // The resend limit per mailbox: one confirmation mail per
            // interval to all the spellings of one mailbox together. A
            // reader coming back after unsubscribing (which took a link
            // from that mailbox) gets theirs whatever the interval, as
            // before; the mailbox's time is set all the same.
            let mut outcome = outcome;
            if matches!(
                outcome,
                SignupOutcome::Created | SignupOutcome::Resent | SignupOutcome::Resubscribed
            ) {
                let since = if outcome == SignupOutcome::Resubscribed {
                    Millis::MAX
                } else {
                    req.now - req.resend_interval_ms
                };
                let mailbox_free = sqlx::query(
                    "INSERT INTO confirmation_mailboxes (mailbox_key, last_sent_at) VALUES ($1, $2)
                     ON CONFLICT (mailbox_key) DO UPDATE SET last_sent_at = excluded.last_sent_at
                     WHERE confirmation_mailboxes.last_sent_at <= $3",
                )
                .bind(req.email.mailbox_key())
                .bind(req.now)
                .bind(since)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !mailbox_free {
                    outcome = SignupOutcome::RateLimited;
                }
            }
            if matches!(
                outcome,
                SignupOutcome::Created | SignupOutcome::Resent | SignupOutcome::Resubscribed
            ) {
                sqlx::query(
                    "INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&confirmation.token_hash)
                .bind(id)
                .bind(req.now)
                .bind(confirmation.expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO outbox (kind, subscriber_id, recipient, subject, confirm_url, status, next_attempt_at, created_at)
                     VALUES ('confirmation', $1, $2, $3, $4, 'queued', $5, $5)",
                )
                .bind(id)
                .bind(req.email.as_str())
                .bind(&confirmation.subject)
                .bind(&confirmation.confirm_url)
                .bind(req.now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE subscribers SET last_confirmation_sent_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(req.now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(outcome)
        })
    }

    pub async fn subscriber_by_id(&self, id: i64) -> Result<Option<SubscriberRow>> {
        let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1");
        with_pool!(self, pool => {
            Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
        })
    }

    pub async fn subscriber_by_email(
        &self,
        email: &SubscriberEmail,
    ) -> Result<Option<SubscriberRow>> {
        let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE email_key = $1");
        with_pool!(self, pool => {
            Ok(sqlx::query_as(&sql).bind(email.key()).fetch_optional(pool).await?)
        })
    }

    pub async fn list_subscribers(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SubscriberRow>> {
        let sql = format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE ($1 IS NULL OR status = $1) ORDER BY id LIMIT $2"
        );
        with_pool!(self, pool => {
            Ok(sqlx::query_as(&sql).bind(status).bind(limit).fetch_all(pool).await?)
        })
    }

    /// Unsubscribes at once (from pending, confirmed or bounced) and skips
    /// every delivery still queued for the subscriber. Idempotent: returns
    /// false when the subscriber was already unsubscribed.
    pub async fn unsubscribe(&self, subscriber_id: i64, now: Millis) -> Result<bool> {
        in_write_tx!(self, tx => {
            let changed = sqlx::query(
                "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = $2
                 WHERE id = $1 AND status IN ('pending', 'confirmed', 'bounced')",
            )
            .bind(subscriber_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE deliveries SET status = 'skipped', last_error = 'unsubscribed'
                 WHERE subscriber_id = $1 AND status = 'queued'",
            )
            .bind(subscriber_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(changed > 0)
        })
    }

    /// Counts per status, for `herald subscribers list` and the API.
    pub async fn subscriber_counts(&self) -> Result<Vec<(String, i64)>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as("SELECT status, COUNT(*) FROM subscribers GROUP BY status ORDER BY status")
                .fetch_all(pool)
                .await?)
        })
    }
}

impl Store {
    /// Adds already-confirmed subscribers (an import from another tool, or
    /// test and benchmark seeding) in one transaction; existing addresses
    /// are left as they are. Returns how many were added.
    pub async fn import_confirmed(
        &self,
        emails: &[SubscriberEmail],
        source: &str,
        now: Millis,
    ) -> Result<u64> {
        in_write_tx!(self, tx => {
            let mut added = 0;
            for email in emails {
                added += sqlx::query(
                    "INSERT INTO subscribers (email, status, source, created_at, confirmed_at, email_key)
                     VALUES ($1, 'confirmed', $2, $3, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(email.as_str())
                .bind(source)
                .bind(now)
                .bind(email.key())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(added)
        })
    }
}

impl Store {
    /// Benchmark seeding: `count` confirmed subscribers
    /// `bench{n}@example.com`, generated inside the database in one
    /// statement (no round trip per row).
    pub async fn seed_bench_subscribers(&self, count: i64, now: Millis) -> Result<u64> {
        let added = match self {
            Store::Sqlite(pool) => sqlx::query(
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1)
                 INSERT INTO subscribers (email, email_key, status, source, created_at, confirmed_at)
                 SELECT 'bench' || n || '@example.com', 'bench' || n || '@example.com', 'confirmed', 'bench', $2, $2 FROM seq
                 WHERE true ON CONFLICT DO NOTHING",
            )
            .bind(count)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
            Store::Postgres(pool) => sqlx::query(
                "INSERT INTO subscribers (email, email_key, status, source, created_at, confirmed_at)
                 SELECT 'bench' || n || '@example.com', 'bench' || n || '@example.com', 'confirmed', 'bench', $2, $2
                 FROM generate_series(1, $1::BIGINT) AS n ON CONFLICT DO NOTHING",
            )
            .bind(count)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(added)
    }
}
