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
    /// `SubscriberEmail::mailbox_key` of `email`: what the resend limit
    /// counts per. A new address whose mailbox got a confirmation less than
    /// `resend_interval_ms` ago is stored, and gets none.
    pub mailbox_key: String,
    pub resend_interval_ms: Millis,
    pub name: Option<String>,
    pub source: String,
    pub consent_ip: Option<String>,
    pub consent_user_agent: Option<String>,
    pub now: Millis,
    pub confirmation: PendingConfirmation,
}

/// Bound parameters per signup in the SQLite script.
const SQLITE_PARAMS: usize = 13;

/// One signup's part of the SQLite script, parameters from `$o+1`: the
/// subscriber if the address is new, then (only when that row was written:
/// `changes()` counts the statement before) its mailbox's time of the last
/// confirmation, only when that was longer ago than the resend interval,
/// then its token only when the mailbox's time was written, then the mail
/// where that fresh token exists, returning the signup's place in the batch.
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
    let (mailbox, since) = (p(12), p(13));
    format!(
        "INSERT INTO subscribers (email, email_key, name, status, source, created_at, consent_ip, consent_user_agent, consent_at, last_confirmation_sent_at)
VALUES ({email}, {key}, {name}, 'pending', {source}, {now}, {ip}, {agent}, {now}, {now})
ON CONFLICT DO NOTHING;
INSERT INTO confirmation_mailboxes (mailbox_key, last_sent_at) SELECT {mailbox}, {now} WHERE changes() = 1
ON CONFLICT (mailbox_key) DO UPDATE SET last_sent_at = excluded.last_sent_at
WHERE confirmation_mailboxes.last_sent_at <= {since};
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
/// is "not new"), subscribers that did not exist, then per mailbox (the
/// first new address of a mailbox in the batch) the time of its last
/// confirmation where that was longer ago than the resend interval ($14),
/// and for those their tokens and mails. Subscribers are inserted in key
/// order and mailboxes in mailbox order, so two batches committing at once
/// that share addresses wait on each other in the same order instead of
/// deadlocking.
const PG_SIGNUPS: &str = "WITH input AS (
    SELECT DISTINCT ON (email_key) * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
        $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[])
        AS t(idx, email, name, source, now, ip, agent, token, expires, subject, url, email_key, mailbox_key)
    ORDER BY email_key, idx
), subscriber AS (
    INSERT INTO subscribers (email, email_key, name, status, source, created_at, consent_ip, consent_user_agent, consent_at, last_confirmation_sent_at)
    SELECT email, email_key, name, 'pending', source, now, ip, agent, now, now FROM input ORDER BY email_key
    ON CONFLICT DO NOTHING RETURNING id, email_key
), fresh AS (
    SELECT DISTINCT ON (i.mailbox_key) i.*, s.id AS subscriber_id
    FROM subscriber s JOIN input i ON i.email_key = s.email_key
    ORDER BY i.mailbox_key, i.idx
), mailbox AS (
    INSERT INTO confirmation_mailboxes (mailbox_key, last_sent_at)
    SELECT mailbox_key, now FROM fresh ORDER BY mailbox_key
    ON CONFLICT (mailbox_key) DO UPDATE SET last_sent_at = EXCLUDED.last_sent_at
    WHERE confirmation_mailboxes.last_sent_at <= EXCLUDED.last_sent_at - $14::bigint
    RETURNING mailbox_key
), mailed AS (
    SELECT f.* FROM fresh f JOIN mailbox m ON m.mailbox_key = f.mailbox_key
), token AS (
    INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
    SELECT token, subscriber_id, now, expires FROM mailed
), mail AS (
    INSERT INTO outbox (kind, subscriber_id, recipient, subject, confirm_url, status, next_attempt_at, created_at)
    SELECT 'confirmation', subscriber_id, email, subject, url, 'queued', now, now FROM mailed
)
SELECT idx FROM mailed";

impl Store {
    /// Writes each signup whose address is new (pending subscriber, and
    /// token and confirmation mail unless its mailbox had one within the
    /// resend interval) in one transaction, and says which were: `true` at
    /// a signup's place when it created the subscriber and queued its mail.
    /// Known addresses are left untouched, and a new one whose mailbox had
    /// its mail is left pending without one, for the caller's slower path
    /// (which finds it rate-limited).
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
                    .bind(col(|s| Some(s.mailbox_key.clone())))
                    .bind(
                        batch
                            .iter()
                            .map(|s| s.resend_interval_ms)
                            .max()
                            .unwrap_or(0),
                    )
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
                            .bind(s.email_key)
                            .bind(s.mailbox_key)
                            .bind(s.now - s.resend_interval_ms);
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
