//! New addresses in batches: many signups, one transaction (group commit).
//! Under load the commit, not the statements, is what a signup costs; the
//! web layer's `SignupWriter` gathers the signups that arrive while the
//! previous batch commits and hands them over here together.

use super::subscribers::PendingConfirmation;
use super::{Result, Store};
use crate::domain::time::Millis;

/// A signup for an address believed to be new, with owned values (it
/// travels to the writer task).
#[derive(Debug, Clone)]
pub struct NewSignup {
    pub email: String,
    /// `SubscriberEmail::key` of `email`: what "new" is judged by.
    pub email_key: String,
    pub name: Option<String>,
    pub source: String,
    pub consent_ip: Option<String>,
    pub consent_user_agent: Option<String>,
    pub now: Millis,
    pub confirmation: PendingConfirmation,
}

/// Bound parameters per signup in the SQLite script.
const SQLITE_PARAMS: usize = 11;

/// One signup's part of the SQLite script, parameters from `$o+1`: the
/// subscriber if the address is new, then its token only when that row was
/// written (`changes()` counts the statement before), then the mail where
/// that fresh token exists, returning the signup's place in the batch.
fn sqlite_part(index: usize) -> String {
    let o = index * SQLITE_PARAMS;
    let p = |k: usize| format!("${}", o + k);
    let (email, name, source, now, ip, agent, token, expires, subject, url, key) = (
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
        p(10),
        p(11),
    );
    format!(
        "INSERT INTO subscribers (email, email_key, name, status, source, created_at, consent_ip, consent_user_agent, consent_at, last_confirmation_sent_at)
VALUES ({email}, {key}, {name}, 'pending', {source}, {now}, {ip}, {agent}, {now}, {now})
ON CONFLICT DO NOTHING;
INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
SELECT {token}, id, {now}, {expires} FROM subscribers WHERE email_key = {key} AND changes() = 1;
INSERT INTO outbox (kind, subscriber_id, recipient, subject, confirm_url, status, next_attempt_at, created_at)
SELECT 'confirmation', subscriber_id, {email}, {subject}, {url}, 'queued', {now}, {now}
FROM confirmation_tokens WHERE token_hash = {token}
RETURNING {index};
"
    )
}

/// All signups of a batch in one statement: the input deduplicated by
/// address key (the first of two signups for one address wins, the second
/// is "not new"), subscribers that did not exist, their tokens and mails.
/// Subscribers are inserted in key order, so two batches committing at
/// once that share addresses wait on each other in the same order instead
/// of deadlocking.
const PG_SIGNUPS: &str = "WITH input AS (
    SELECT DISTINCT ON (email_key) * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
        $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[])
        AS t(idx, email, name, source, now, ip, agent, token, expires, subject, url, email_key)
    ORDER BY email_key, idx
), subscriber AS (
    INSERT INTO subscribers (email, email_key, name, status, source, created_at, consent_ip, consent_user_agent, consent_at, last_confirmation_sent_at)
    SELECT email, email_key, name, 'pending', source, now, ip, agent, now, now FROM input ORDER BY email_key
    ON CONFLICT DO NOTHING RETURNING id, email_key
), token AS (
    INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
    SELECT i.token, s.id, i.now, i.expires FROM subscriber s JOIN input i ON i.email_key = s.email_key
), mail AS (
    INSERT INTO outbox (kind, subscriber_id, recipient, subject, confirm_url, status, next_attempt_at, created_at)
    SELECT 'confirmation', s.id, i.email, i.subject, i.url, 'queued', i.now, i.now
    FROM subscriber s JOIN input i ON i.email_key = s.email_key
)
SELECT i.idx FROM subscriber s JOIN input i ON i.email_key = s.email_key";

impl Store {
    /// Writes each signup whose address is new (pending subscriber, token,
    /// confirmation mail) in one transaction, and says which were: `true`
    /// at a signup's place when it created the subscriber. Known addresses
    /// are left untouched for the caller's slower path.
    pub async fn insert_new_signups(&self, batch: &[NewSignup]) -> Result<Vec<bool>> {
        let mut created = vec![false; batch.len()];
        if batch.is_empty() {
            return Ok(created);
        }
        let indexes: Vec<i64> = match self {
            Store::Postgres(pool) => {
                let col = |f: fn(&NewSignup) -> Option<String>| -> Vec<Option<String>> {
                    batch.iter().map(f).collect()
                };
                sqlx::query_scalar(PG_SIGNUPS)
                    .bind((0..batch.len() as i64).collect::<Vec<i64>>())
                    .bind(col(|s| Some(s.email.clone())))
                    .bind(col(|s| s.name.clone()))
                    .bind(col(|s| Some(s.source.clone())))
                    .bind(batch.iter().map(|s| s.now).collect::<Vec<i64>>())
                    .bind(col(|s| s.consent_ip.clone()))
                    .bind(col(|s| s.consent_user_agent.clone()))
                    .bind(col(|s| Some(s.confirmation.token_hash.clone())))
                    .bind(
                        batch
                            .iter()
                            .map(|s| s.confirmation.expires_at)
                            .collect::<Vec<i64>>(),
                    )
                    .bind(col(|s| Some(s.confirmation.subject.clone())))
                    .bind(col(|s| Some(s.confirmation.confirm_url.clone())))
                    .bind(col(|s| Some(s.email_key.clone())))
                    .fetch_all(pool)
                    .await?
            }
            Store::Sqlite(pool) => {
                let mut sql = String::from("BEGIN IMMEDIATE;\n");
                for i in 0..batch.len() {
                    sql.push_str(&sqlite_part(i));
                }
                sql.push_str("COMMIT;");
                let batch = batch.to_vec();
                let mut conn = pool.acquire().await?;
                // The script must run to its COMMIT even if the caller goes
                // away: sqlx stops between statements once nobody reads the
                // results, and would hand the connection back inside the
                // transaction, holding the write lock. For the same reason a
                // connection whose script failed is closed (SQLite rolls
                // back) rather than returned to the pool.
                let ran = tokio::spawn(async move {
                    let mut q = sqlx::query_scalar::<_, i64>(&sql);
                    for s in batch {
                        q = q
                            .bind(s.email)
                            .bind(s.name)
                            .bind(s.source)
                            .bind(s.now)
                            .bind(s.consent_ip)
                            .bind(s.consent_user_agent)
                            .bind(s.confirmation.token_hash)
                            .bind(s.confirmation.expires_at)
                            .bind(s.confirmation.subject)
                            .bind(s.confirmation.confirm_url)
                            .bind(s.email_key);
                    }
                    let indexes = q.fetch_all(&mut *conn).await;
                    if indexes.is_err() {
                        conn.close_on_drop();
                    }
                    indexes
                })
                .await;
                match ran {
                    Ok(indexes) => indexes?,
                    // Only a panic in sqlx gets here; the connection went with it.
                    Err(_) => return Err(sqlx::Error::WorkerCrashed.into()),
                }
            }
        };
        for i in indexes {
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| created.get_mut(i)) {
                *slot = true;
            }
        }
        Ok(created)
    }
}
