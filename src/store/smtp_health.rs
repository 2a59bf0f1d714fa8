//! Each SMTP server's state as the delivery workers last saw it, so that a
//! process that does not send (the web role, `herald digest status`) can
//! tell the operator why nothing goes out.

use super::{with_pool, Result, Store};
use crate::domain::time::Millis;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SmtpHealthRow {
    pub server: String,
    /// "ok", "failing" or "stopped" (`mail::ServerState`).
    pub state: String,
    pub last_error: Option<String>,
    /// When the server entered `state`.
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub since: Millis,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub updated_at: Millis,
}

impl Store {
    pub async fn record_smtp_health(
        &self,
        server: &str,
        state: &str,
        last_error: Option<&str>,
        since: Millis,
        now: Millis,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO smtp_server_health (server, state, last_error, since, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (server) DO UPDATE SET state = excluded.state, last_error = excluded.last_error,
                     since = excluded.since, updated_at = excluded.updated_at",
            )
            .bind(server)
            .bind(state)
            .bind(last_error)
            .bind(since)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Asks the workers to take a stopped server back into use (the
    /// operator fixed the account or the certificate at the relay): they
    /// see "resumed" within seconds and try it again. Returns whether the
    /// server was stopped.
    pub async fn resume_smtp_server(&self, server: &str, now: Millis) -> Result<bool> {
        with_pool!(self, pool => {
            Ok(sqlx::query(
                "UPDATE smtp_server_health SET state = 'resumed', updated_at = $2
                 WHERE server = $1 AND state = 'stopped'",
            )
            .bind(server)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected() > 0)
        })
    }

    /// Forgets servers no longer configured (renamed or removed), so an old
    /// failure does not keep /health degraded. Returns how many.
    pub async fn forget_smtp_servers_except(&self, keep: &[String]) -> Result<u64> {
        let mut forgotten = 0;
        for row in self.smtp_health().await? {
            if keep.contains(&row.server) {
                continue;
            }
            forgotten += with_pool!(self, pool => {
                sqlx::query("DELETE FROM smtp_server_health WHERE server = $1")
                    .bind(&row.server)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        Ok(forgotten)
    }

    /// Every server's last recorded state, by name.
    pub async fn smtp_health(&self) -> Result<Vec<SmtpHealthRow>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT server, state, last_error, since, updated_at FROM smtp_server_health ORDER BY server",
            )
            .fetch_all(pool)
            .await?)
        })
    }
}

impl Store {
    /// Why copies of an unfinished digest are not going out: the SMTP
    /// servers that are failing or stopped, and the error to show first (a
    /// server's, else the last one a waiting copy met).
    pub async fn delivery_problems(
        &self,
        digest: &super::DigestRow,
    ) -> Result<(Option<String>, Vec<SmtpHealthRow>)> {
        if !matches!(digest.status.as_str(), "queued" | "sending" | "paused") {
            return Ok((None, Vec::new()));
        }
        let servers: Vec<SmtpHealthRow> = self
            .smtp_health()
            .await?
            .into_iter()
            .filter(|s| matches!(s.state.as_str(), "failing" | "stopped"))
            .collect();
        let last_error = match servers.iter().find(|s| s.last_error.is_some()) {
            Some(s) => Some(format!(
                "SMTP server {} {}: {}",
                s.server,
                s.state,
                s.last_error.as_deref().unwrap_or_default()
            )),
            None => self.digest_last_error(digest.id).await?,
        };
        Ok((last_error, servers))
    }
}
