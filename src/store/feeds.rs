use super::{with_pool, Result, Store};
use crate::domain::feed_settings::{BackfillDays, PollInterval};
use crate::domain::time::Millis;
use crate::domain::web_url::FeedUrl;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct FeedRow {
    pub id: i64,
    /// Masked wherever it is printed or serialised (see `FeedUrl`).
    #[sqlx(try_from = "String")]
    pub url: FeedUrl,
    pub title: Option<String>,
    pub site_url: Option<String>,
    #[serde(skip)]
    pub etag: Option<String>,
    #[serde(skip)]
    pub last_modified: Option<String>,
    pub poll_interval_secs: i64,
    pub backfill_days: i64,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub created_at: Millis,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser_option")]
    pub first_polled_at: Option<Millis>,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser_option")]
    pub last_polled_at: Option<Millis>,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser_option")]
    pub last_success_at: Option<Millis>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub next_poll_at: Millis,
    /// Items the last poll that read the feed refused (too large, nested
    /// too deep, too slow to clean, a link that is not http(s)).
    pub refused_items: i64,
    /// The latest refusal: which item and why.
    pub last_refusal: Option<String>,
}

const FEED_COLUMNS: &str = "id, url, title, site_url, etag, last_modified, poll_interval_secs, backfill_days, created_at, first_polled_at, last_polled_at, last_success_at, last_status, last_error, consecutive_failures, next_poll_at, refused_items, last_refusal";

/// What a successful poll learned.
#[derive(Debug, Clone)]
pub struct PollSuccess<'a> {
    pub status: &'a str,
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    pub title: Option<&'a str>,
    pub site_url: Option<&'a str>,
    pub next_poll_at: Millis,
}

impl Store {
    /// Adds a feed whose first poll is due at `next_poll_at`. Returns its
    /// id and whether it was new.
    pub async fn add_feed(
        &self,
        url: &FeedUrl,
        poll_interval: PollInterval,
        backfill: BackfillDays,
        now: Millis,
        next_poll_at: Millis,
    ) -> Result<(i64, bool)> {
        let url = url.secret_for_storage();
        with_pool!(self, pool => {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO feeds (url, poll_interval_secs, backfill_days, created_at, next_poll_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (url) DO NOTHING RETURNING id",
            )
            .bind(url)
            .bind(poll_interval.secs())
            .bind(backfill.days())
            .bind(now)
            .bind(next_poll_at)
            .fetch_optional(pool)
            .await?;
            match inserted {
                Some(id) => Ok((id, true)),
                None => {
                    let id: i64 = sqlx::query_scalar("SELECT id FROM feeds WHERE url = $1")
                        .bind(url)
                        .fetch_one(pool)
                        .await?;
                    Ok((id, false))
                }
            }
        })
    }

    pub async fn list_feeds(&self) -> Result<Vec<FeedRow>> {
        let sql = format!("SELECT {FEED_COLUMNS} FROM feeds ORDER BY id");
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).fetch_all(pool).await?))
    }

    /// The feed following `url` (stored form, password included), if any.
    pub async fn feed_id_by_url(&self, url: &FeedUrl) -> Result<Option<i64>> {
        let url = url.secret_for_storage();
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT id FROM feeds WHERE url = $1").bind(url).fetch_optional(pool).await?)
        })
    }

    pub async fn feed_by_id(&self, id: i64) -> Result<Option<FeedRow>> {
        let sql = format!("SELECT {FEED_COLUMNS} FROM feeds WHERE id = $1");
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// Stops following a feed. Its articles stay (they may be in digests).
    pub async fn remove_feed(&self, id: i64) -> Result<bool> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM feeds WHERE id = $1").bind(id).execute(pool).await?.rows_affected() > 0)
        })
    }

    /// Takes the next due feed for this poller by moving its next poll to
    /// `lease_until`; another process sees it as not due. None when no feed
    /// is due.
    pub async fn claim_due_feed(
        &self,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<FeedRow>> {
        for _ in 0..5 {
            let due: Option<i64> = with_pool!(self, pool => {
                sqlx::query_scalar("SELECT id FROM feeds WHERE next_poll_at <= $1 ORDER BY next_poll_at, id LIMIT 1")
                    .bind(now)
                    .fetch_optional(pool)
                    .await?
            });
            let Some(id) = due else { return Ok(None) };
            let claimed = with_pool!(self, pool => {
                sqlx::query("UPDATE feeds SET next_poll_at = $2 WHERE id = $1 AND next_poll_at <= $3")
                    .bind(id)
                    .bind(lease_until)
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if claimed == 1 {
                return self.feed_by_id(id).await;
            }
        }
        Ok(None)
    }

    pub async fn record_poll_success(
        &self,
        id: i64,
        s: &PollSuccess<'_>,
        now: Millis,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE feeds SET last_status = $2, etag = COALESCE($3, etag), last_modified = COALESCE($4, last_modified),
                 title = COALESCE($5, title), site_url = COALESCE($6, site_url), next_poll_at = $7,
                 last_polled_at = $8, last_success_at = $8, first_polled_at = COALESCE(first_polled_at, $8),
                 last_error = NULL, consecutive_failures = 0
                 WHERE id = $1",
            )
            .bind(id)
            .bind(s.status)
            .bind(s.etag)
            .bind(s.last_modified)
            .bind(s.title)
            .bind(s.site_url)
            .bind(s.next_poll_at)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// What the last poll that read the feed's items refused: `count`
    /// items, the latest for `last` (kept when this poll refused none, so
    /// an operator still sees why an item is missing).
    pub async fn record_refusals(&self, id: i64, count: i64, last: Option<&str>) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE feeds SET refused_items = $2, last_refusal = COALESCE($3, last_refusal) WHERE id = $1",
            )
            .bind(id)
            .bind(count)
            .bind(last)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn record_poll_failure(
        &self,
        id: i64,
        error: &str,
        next_poll_at: Millis,
        now: Millis,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE feeds SET last_error = $2, last_status = 'error', next_poll_at = $3, last_polled_at = $4,
                 consecutive_failures = consecutive_failures + 1 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(next_poll_at)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn articles_of_feed(&self, feed_id: i64) -> Result<Vec<super::ArticleRow>> {
        let sql = format!(
            "SELECT {} FROM articles WHERE feed_id = $1 ORDER BY published_at DESC, id DESC",
            super::articles::ARTICLE_COLUMNS
        );
        with_pool!(self, pool => Ok(sqlx::query_as(&sql).bind(feed_id).fetch_all(pool).await?))
    }
}
