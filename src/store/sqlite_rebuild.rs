//! Dropping the address's own UNIQUE constraint on SQLite.
//!
//! The address key (migration 0006) is a subscriber's identity; the
//! address's UNIQUE constraint from 0001 became one index too many on the
//! signup path (PostgreSQL drops it in 0006). SQLite cannot drop a column
//! constraint, so the table is rebuilt the way SQLite documents ("making
//! other kinds of table schema changes"), with foreign keys off so that
//! dropping the old table cascades to nothing: tokens and outbox rows keep
//! pointing at the same ids. sqlx runs every SQLite migration inside a
//! transaction, where foreign keys cannot be turned off, hence this step in
//! Rust after the migrations. It runs once: afterwards the table has no
//! such constraint and this is a single look at the schema. The rebuilt
//! table gets every index the migrations give `subscribers` (0013's
//! included), since on a new database they ran before this step.

use super::Result;
use sqlx::SqlitePool;

const REBUILD: &str = "BEGIN IMMEDIATE;
CREATE TABLE subscribers_rebuilt (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    email                     TEXT NOT NULL,
    name                      TEXT,
    status                    TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    source                    TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
    confirmed_at              BIGINT,
    unsubscribed_at           BIGINT,
    consent_ip                TEXT,
    consent_user_agent        TEXT,
    consent_at                BIGINT,
    last_confirmation_sent_at BIGINT,
    hard_bounces              BIGINT NOT NULL DEFAULT 0,
    email_key                 TEXT
);
INSERT INTO subscribers_rebuilt (id, email, name, status, source, created_at, confirmed_at,
    unsubscribed_at, consent_ip, consent_user_agent, consent_at, last_confirmation_sent_at,
    hard_bounces, email_key)
SELECT id, email, name, status, source, created_at, confirmed_at,
    unsubscribed_at, consent_ip, consent_user_agent, consent_at, last_confirmation_sent_at,
    hard_bounces, email_key
FROM subscribers;
DROP TABLE subscribers;
ALTER TABLE subscribers_rebuilt RENAME TO subscribers;
CREATE INDEX subscribers_status_id ON subscribers (status, id);
CREATE UNIQUE INDEX subscribers_identity ON subscribers (email_key);
CREATE INDEX subscribers_with_hard_bounces ON subscribers (id) WHERE hard_bounces > 0;
COMMIT;";

/// Rebuilds `subscribers` without the address's UNIQUE constraint, if it
/// still has it.
pub(super) async fn drop_address_constraint(pool: &SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let has_constraint: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master
         WHERE type = 'index' AND tbl_name = 'subscribers' AND name LIKE 'sqlite_autoindex_subscribers_%'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if has_constraint.is_none() {
        return Ok(());
    }
    tracing::info!(
        "rebuilding the subscribers table once: the address key is now its only unique identity"
    );
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    let rebuilt = sqlx::raw_sql(REBUILD).execute(&mut *conn).await;
    if rebuilt.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    let restored = sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await;
    rebuilt?;
    restored?;
    Ok(())
}
