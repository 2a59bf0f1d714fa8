//! The only place with SQL. One `Store` over SQLite and PostgreSQL; the same
//! statement text serves both wherever the dialects agree (`$n` parameters
//! work in both), and the few places that differ say so.

mod articles;
mod confirmations;
mod deliveries;
mod digests;
mod email_keys;
mod events;
mod feeds;
mod outbox;
mod pacing;
mod settings;
mod signups;
mod smtp_health;
mod sqlite_rebuild;
mod subscribers;

pub use articles::{ArticleRow, ArticleWrite, NewArticle, Removal, WaitingArticles};
pub use confirmations::{ConfirmOutcome, TokenLookup};
pub use deliveries::{ClaimedDelivery, DeliveryOutcome};
pub use digests::{ArchivedDigest, DigestCounts, DigestCreated, DigestRow, NewDigest};
pub use events::{DigestEventCounts, EventKind, EventOutcome, NewEvent, SubscriberEventRow};
pub use feeds::{FeedRow, PollSuccess};
pub use outbox::{OutboxMessage, OutboxOutcome};
pub use pacing::{SlotGrant, WindowLimit};
pub use signups::NewSignup;
pub use smtp_health::SmtpHealthRow;
pub use subscribers::{PendingConfirmation, SignupOutcome, SignupRequest, SubscriberRow};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A state transition found its row in another state than the one it
    /// read; the transaction was rolled back.
    #[error("{0} found the subscriber changed under it; nothing was written")]
    Changed(&'static str),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// Opening the database failed; the message has the URL's password
    /// masked.
    #[error("could not open the database {url}: {message}")]
    Connect { url: String, message: String },
    /// A command other than `serve` and `migrate` found no database: it
    /// never creates one (nor a link secret) where an operator's
    /// configuration pointed somewhere unexpected.
    #[error("no database at {0}: run `herald migrate` or `herald serve` first")]
    NoDatabase(String),
    #[error("could not create the SQLite file or its directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool the store holds. The body is
/// compiled once per backend, so the statement text must suit both.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Runs `body` in a write transaction named `tx`, once per backend; the body
/// commits. On SQLite it is `BEGIN IMMEDIATE`: a deferred transaction that
/// reads and then writes fails with "database is locked" if another
/// connection committed in between, and busy_timeout does not help.
macro_rules! in_write_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                $body
            }
            $crate::store::Store::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                $body
            }
        }
    };
}
pub(crate) use in_write_tx;

impl Store {
    /// Opens a pool, creating the SQLite file (and its directory) when it
    /// is missing: for `serve` and `migrate` only. No error from here shows
    /// the URL's password.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_masked(url, true).await
    }

    /// Opens a database that `serve` or `migrate` created before: a
    /// missing SQLite file, or a database (either backend) without herald's
    /// migrations, is [`Error::NoDatabase`] and nothing is created.
    pub async fn open_existing(url: &str) -> Result<Self> {
        let store = Self::connect_masked(url, false).await?;
        let migrated: std::result::Result<i64, sqlx::Error> = with_pool!(&store, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(pool)
                .await
        });
        match migrated {
            Ok(n) if n > 0 => Ok(store),
            _ => {
                store.close().await;
                Err(Error::NoDatabase(crate::redact::mask_url(url)))
            }
        }
    }

    async fn connect_masked(url: &str, create: bool) -> Result<Self> {
        Self::connect_unmasked(url, create)
            .await
            .map_err(|e| match e {
                Error::UnsupportedUrl(_) => Error::UnsupportedUrl(crate::redact::mask_url(url)),
                Error::CreateDir { .. } | Error::NoDatabase(_) => e,
                other => Error::Connect {
                    url: crate::redact::mask_url(url),
                    message: crate::redact::scrub_url_password(&other.to_string(), url),
                },
            })
    }

    async fn connect_unmasked(url: &str, create: bool) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Store::Postgres(pool))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            let file = std::path::Path::new(path);
            let in_memory = path == ":memory:" || path.is_empty();
            if !create && !in_memory && !file.is_file() {
                return Err(Error::NoDatabase(file.display().to_string()));
            }
            if let Some(parent) = file.parent().filter(|_| create) {
                crate::private_files::create_private_dir(parent).map_err(|source| {
                    Error::CreateDir {
                        path: parent.display().to_string(),
                        source,
                    }
                })?;
            }
            if !in_memory {
                crate::private_files::ensure_private_sqlite_file(file).map_err(|source| {
                    Error::CreateDir {
                        path: file.display().to_string(),
                        source,
                    }
                })?;
            }
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(create)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Store::Sqlite(pool))
        } else {
            Err(Error::UnsupportedUrl(url.to_string()))
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(pool) => {
                sqlx::migrate!("migrations/sqlite").run(pool).await?;
                sqlite_rebuild::drop_address_constraint(pool).await?;
            }
            Store::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        self.backfill_email_keys().await?;
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip for /health.
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}
