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
    /// Still pending and a confirmation went out moments ago: nothing queued.
    RateLimited,
    /// Already confirmed: nothing changes.
    AlreadyConfirmed,
    /// Had unsubscribed or bounced: pending again, needs a new confirmation.
    Resubscribed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLookup {
    Valid { email: String },
    Used,
    Expired { email: String },
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed,
    AlreadyConfirmed,
    Expired,
    Unknown,
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
            "SELECT id, status, last_confirmation_sent_at FROM subscribers WHERE email = $1{lock}"
        );
        let name = req.name.map(|n| n.as_str());
        in_write_tx!(self, tx => {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO subscribers (email, name, status, source, created_at, consent_ip, consent_user_agent, consent_at)
                 VALUES ($1, $2, 'pending', $3, $4, $5, $6, $4)
                 ON CONFLICT (email) DO NOTHING RETURNING id",
            )
            .bind(req.email.as_str())
            .bind(name)
            .bind(req.source)
            .bind(req.now)
            .bind(req.consent_ip)
            .bind(req.consent_user_agent)
            .fetch_optional(&mut *tx)
            .await?;
            let (id, outcome) = match inserted {
                Some(id) => (id, SignupOutcome::Created),
                None => {
                    let (id, status, last_sent): (i64, String, Option<Millis>) =
                        sqlx::query_as(&select)
                            .bind(req.email.as_str())
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
                        sqlx::query(
                            "UPDATE subscribers SET status = 'pending', name = COALESCE($2, name),
                             consent_ip = $3, consent_user_agent = $4, consent_at = $5, source = $6
                             WHERE id = $1",
                        )
                        .bind(id)
                        .bind(name)
                        .bind(req.consent_ip)
                        .bind(req.consent_user_agent)
                        .bind(req.now)
                        .bind(req.source)
                        .execute(&mut *tx)
                        .await?;
                    }
                    (id, outcome)
                }
            };
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

    /// What a confirmation link points at, without using it up (the GET).
    pub async fn lookup_confirmation_token(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<TokenLookup> {
        let row: Option<(String, Option<Millis>, Millis, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT s.email, t.used_at, t.expires_at, s.status FROM confirmation_tokens t
                 JOIN subscribers s ON s.id = t.subscriber_id WHERE t.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(match row {
            None => TokenLookup::Unknown,
            Some((_, Some(_), _, _)) => TokenLookup::Used,
            Some((_, None, _, status)) if status == "confirmed" => TokenLookup::Used,
            Some((email, None, expires_at, _)) if expires_at <= now => {
                TokenLookup::Expired { email }
            }
            Some((email, None, _, _)) => TokenLookup::Valid { email },
        })
    }

    /// Uses the token up and confirms its subscriber (the POST).
    pub async fn confirm(&self, token_hash: &str, now: Millis) -> Result<ConfirmOutcome> {
        in_write_tx!(self, tx => {
            let row: Option<(i64, Option<Millis>, Millis, String)> = sqlx::query_as(
                "SELECT t.subscriber_id, t.used_at, t.expires_at, s.status FROM confirmation_tokens t
                 JOIN subscribers s ON s.id = t.subscriber_id WHERE t.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = match row {
                None => ConfirmOutcome::Unknown,
                Some((_, Some(_), _, _)) => ConfirmOutcome::AlreadyConfirmed,
                Some((_, None, _, status)) if status == "confirmed" => ConfirmOutcome::AlreadyConfirmed,
                Some((_, None, expires_at, _)) if expires_at <= now => ConfirmOutcome::Expired,
                Some((subscriber_id, None, _, _)) => {
                    let used = sqlx::query(
                        "UPDATE confirmation_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
                    )
                    .bind(token_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if used == 0 {
                        ConfirmOutcome::AlreadyConfirmed
                    } else {
                        sqlx::query(
                            "UPDATE subscribers SET status = 'confirmed', confirmed_at = $2, hard_bounces = 0
                             WHERE id = $1 AND status = 'pending'",
                        )
                        .bind(subscriber_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        ConfirmOutcome::Confirmed
                    }
                }
            };
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
        let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE email = $1");
        with_pool!(self, pool => {
            Ok(sqlx::query_as(&sql).bind(email.as_str()).fetch_optional(pool).await?)
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

    /// Unsubscribes at once and skips every delivery still queued for the
    /// subscriber. Idempotent: returns false when there was nothing to change.
    pub async fn unsubscribe(&self, subscriber_id: i64, now: Millis) -> Result<bool> {
        in_write_tx!(self, tx => {
            let changed = sqlx::query(
                "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = $2
                 WHERE id = $1 AND status IN ('pending', 'confirmed')",
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
                    "INSERT INTO subscribers (email, status, source, created_at, confirmed_at)
                     VALUES ($1, 'confirmed', $2, $3, $3) ON CONFLICT (email) DO NOTHING",
                )
                .bind(email.as_str())
                .bind(source)
                .bind(now)
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
                 INSERT INTO subscribers (email, status, source, created_at, confirmed_at)
                 SELECT 'bench' || n || '@example.com', 'confirmed', 'bench', $2, $2 FROM seq
                 WHERE true ON CONFLICT (email) DO NOTHING",
            )
            .bind(count)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
            Store::Postgres(pool) => sqlx::query(
                "INSERT INTO subscribers (email, status, source, created_at, confirmed_at)
                 SELECT 'bench' || n || '@example.com', 'confirmed', 'bench', $2, $2
                 FROM generate_series(1, $1::BIGINT) AS n ON CONFLICT (email) DO NOTHING",
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
