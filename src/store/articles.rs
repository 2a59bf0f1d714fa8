use super::{in_write_tx, with_pool, Result, Store};
use crate::domain::text::{ArticleTitle, AuthorName, Category, ItemGuid};
use crate::domain::time::Millis;
use crate::domain::WebUrl;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ArticleRow {
    pub id: i64,
    pub feed_id: Option<i64>,
    pub guid: String,
    pub url: String,
    pub title: String,
    pub summary: String,
    pub html: String,
    pub image_url: Option<String>,
    /// The width, in pixels, the article declares for its image.
    pub image_width: Option<i64>,
    pub author: Option<String>,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub published_at: Millis,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub created_at: Millis,
    /// A JSON array of names as stored; the API shows it as an array.
    #[serde(serialize_with = "categories_array")]
    pub categories: Option<String>,
    #[serde(serialize_with = "as_bool")]
    pub held_back: i64,
}

fn categories_array<S: serde::Serializer>(
    stored: &Option<String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::Serialize;
    stored
        .as_deref()
        .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
        .unwrap_or_default()
        .serialize(s)
}

fn as_bool<S: serde::Serializer>(n: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(*n != 0)
}

/// An article whose fields were already parsed and cleaned (see
/// `articles::clean_body`): its URLs are http(s), its text capped.
#[derive(Debug, Clone)]
pub struct NewArticle {
    pub feed_id: Option<i64>,
    pub guid: ItemGuid,
    pub url: WebUrl,
    pub title: ArticleTitle,
    /// Plain text, at most `Summary::MAX_CHARS`.
    pub summary: String,
    /// Sanitised HTML.
    pub html: String,
    pub image_url: Option<WebUrl>,
    /// The width, in pixels, the article declares for `image_url`: the
    /// digest never shows the image wider.
    pub image_width: Option<u32>,
    pub author: Option<AuthorName>,
    pub published_at: Millis,
    /// Whether the source stated `published_at` (a feed item's own date, not
    /// in the future; an operator's `published_at`). When it did not, the
    /// date is the time first seen, and an update keeps the stored one: an
    /// undated item is not "changed" by being seen again later.
    pub date_stated: bool,
    /// Whether `url` is the item's own link (not the feed's site link
    /// standing in for a missing one): only an own link identifies it.
    pub url_is_own: bool,
    /// Stored as a JSON array of names.
    pub categories: Vec<Category>,
    /// Stored but never put in a digest (a feed's old items at first poll).
    /// Applies when the article is inserted; an update keeps the old flag.
    pub held_back: bool,
}

impl NewArticle {
    fn categories_json(&self) -> Option<String> {
        if self.categories.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.categories.iter().map(Category::as_str).collect();
        serde_json::to_string(&names).ok()
    }
}

/// What [`Store::upsert_article`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleWrite {
    /// A new article.
    Inserted,
    /// An article already stored whose content changed: it was rewritten.
    Updated,
    /// An article already stored with the same content: nothing written.
    Unchanged,
}

pub(crate) const ARTICLE_COLUMNS: &str =
    "id, feed_id, guid, url, title, summary, html, image_url, image_width, author, published_at, created_at, categories, held_back";

/// The same guid from the same source: the key the database enforces.
const SAME_FEED_AND_GUID: &str =
    "SELECT id FROM articles WHERE COALESCE(feed_id, 0) = COALESCE($1, 0) AND guid = $2";
/// The same link, whichever feed (or operator) brought it.
const SAME_URL: &str = "SELECT id FROM articles WHERE url = $1 ORDER BY id LIMIT 1";
/// The same globally unique guid, whichever feed brought it.
const SAME_GUID: &str = "SELECT id FROM articles WHERE guid = $1 ORDER BY id LIMIT 1";

/// A guid that is an absolute URI (`https://…/?p=42`, `urn:…`, `tag:…`) is
/// unique by construction, whichever feed carries it; a bare one such as
/// `42` identifies an item only within its feed.
fn guid_is_global(guid: &ItemGuid) -> bool {
    url::Url::parse(guid.as_str()).is_ok()
}

impl Store {
    /// Inserts the article, or updates the one with the same guid from the
    /// same source (an edited article is updated, never duplicated), or
    /// leaves it alone when nothing the reader sees changed. What happened
    /// is the database's answer: the insert returns a row only when it
    /// inserted, the update only when a stored column differed (`IS
    /// DISTINCT FROM` over the content columns, on both backends), so an
    /// unchanged item is neither written nor reported as updated.
    ///
    /// Two polls of one feed at once (the poller and `POST
    /// /api/feeds/{id}/poll`, or two herald processes on PostgreSQL) may
    /// both find no row; the insert then does nothing for the second one,
    /// which updates the row the first one wrote only if its content differs.
    pub async fn upsert_article(&self, a: &NewArticle, now: Millis) -> Result<(i64, ArticleWrite)> {
        // One statement: a row is written (and returned) only when one of
        // the content columns differs. `published_at` is replaced only by a
        // date the source stated ($8 is NULL otherwise: the first-seen
        // date stays). Neither the poll time nor `held_back` counts. A
        // removed article is not rewritten: the feed that still carries it
        // does not bring it back.
        const UPDATE_IF_CHANGED: &str = "UPDATE articles SET url = $2, title = $3, summary = $4, html = $5, image_url = $6,
             author = $7, published_at = COALESCE($8, published_at), categories = $9, updated_at = $10,
             image_width = $11
             WHERE id = $1
               AND removed_at IS NULL
               AND (url, title, summary, html, image_url, author, published_at, categories, image_width)
                   IS DISTINCT FROM ($2, $3, $4, $5, $6, $7, COALESCE($8, published_at), $9, $11)
             RETURNING id";
        // An article found through a feed that was removed since belongs
        // to the feed that carries it now (unless that feed already has
        // another article under the same guid).
        const ADOPT: &str = "UPDATE articles SET feed_id = $2
             WHERE id = $1 AND feed_id IS NOT NULL AND feed_id <> $2
               AND NOT EXISTS (SELECT 1 FROM feeds f WHERE f.id = articles.feed_id)
               AND NOT EXISTS (SELECT 1 FROM articles b WHERE b.feed_id = $2 AND b.guid = articles.guid)";
        let (guid, url, title) = (a.guid.as_str(), a.url.as_str(), a.title.as_str());
        let image_url = a.image_url.as_ref().map(WebUrl::as_str);
        let image_width = a.image_width.map(i64::from);
        let author = a.author.as_ref().map(AuthorName::as_str);
        let categories = a.categories_json();
        let stated_date = a.date_stated.then_some(a.published_at);
        in_write_tx!(self, tx => {
            // How an article is recognised, in order: its guid within its
            // source; its own link anywhere (not a site link standing in for
            // a missing one); its guid anywhere when that is an absolute URI.
            // So a feed removed and added again, or two feeds of one site,
            // store each article once.
            let mut existing: Option<i64> = sqlx::query_scalar(SAME_FEED_AND_GUID)
                .bind(a.feed_id)
                .bind(guid)
                .fetch_optional(&mut *tx)
                .await?;
            if existing.is_none() && a.url_is_own {
                existing = sqlx::query_scalar(SAME_URL).bind(url).fetch_optional(&mut *tx).await?;
            }
            if existing.is_none() && guid_is_global(&a.guid) {
                existing = sqlx::query_scalar(SAME_GUID).bind(guid).fetch_optional(&mut *tx).await?;
            }
            let id: i64 = match existing {
                Some(id) => id,
                None => {
                    let inserted: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO articles (feed_id, guid, url, title, summary, html, image_url, author, published_at, created_at, updated_at, categories, held_back, image_width)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13)
                         ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(a.feed_id)
                    .bind(guid)
                    .bind(url)
                    .bind(title)
                    .bind(&a.summary)
                    .bind(&a.html)
                    .bind(image_url)
                    .bind(author)
                    .bind(a.published_at)
                    .bind(now)
                    .bind(&categories)
                    .bind(i64::from(a.held_back))
                    .bind(image_width)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match inserted {
                        Some(id) => {
                            tx.commit().await?;
                            return Ok((id, ArticleWrite::Inserted));
                        }
                        // Written by a concurrent poll since our lookup.
                        None => sqlx::query_scalar(SAME_FEED_AND_GUID)
                            .bind(a.feed_id)
                            .bind(guid)
                            .fetch_one(&mut *tx)
                            .await?,
                    }
                }
            };
            match a.feed_id {
                Some(feed_id) => {
                    sqlx::query(ADOPT).bind(id).bind(feed_id).execute(&mut *tx).await?;
                }
                // The operator adding it again brings a removed article back.
                None => {
                    sqlx::query("UPDATE articles SET removed_at = NULL WHERE id = $1 AND removed_at IS NOT NULL")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let updated: Option<i64> = sqlx::query_scalar(UPDATE_IF_CHANGED)
                .bind(id)
                .bind(url)
                .bind(title)
                .bind(&a.summary)
                .bind(&a.html)
                .bind(image_url)
                .bind(author)
                .bind(stated_date)
                .bind(&categories)
                .bind(now)
                .bind(image_width)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((id, if updated.is_some() { ArticleWrite::Updated } else { ArticleWrite::Unchanged }))
        })
    }

    pub async fn list_articles(&self, limit: i64) -> Result<Vec<ArticleRow>> {
        let sql = format!(
            "SELECT {ARTICLE_COLUMNS} FROM articles WHERE removed_at IS NULL ORDER BY published_at DESC, id DESC LIMIT $1"
        );
        with_pool!(self, pool => {
            Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
        })
    }

    /// The articles the next digest would carry: published in the window
    /// (not older than `oldest`, not in the future of `up_to`) and not yet in
    /// any digest that was not cancelled. Newest first, at most `limit`.
    pub async fn articles_for_next_digest(
        &self,
        oldest: Millis,
        up_to: Millis,
        limit: i64,
    ) -> Result<Vec<ArticleRow>> {
        let sql = format!(
            "SELECT {ARTICLE_COLUMNS} FROM articles a
             WHERE a.published_at > $1 AND a.published_at <= $2 AND a.held_back = 0 AND a.removed_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM digest_articles da JOIN digests d ON d.id = da.digest_id
                               WHERE da.article_id = a.id AND d.status <> 'cancelled')
             ORDER BY a.published_at DESC, a.id DESC LIMIT $3"
        );
        with_pool!(self, pool => {
            Ok(sqlx::query_as(&sql).bind(oldest).bind(up_to).bind(limit).fetch_all(pool).await?)
        })
    }
}

/// Why no article is waiting for the next digest, in numbers: what
/// `digest::Quiet` says to the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WaitingArticles {
    /// Articles stored and not removed, sent or not.
    pub stored: i64,
    /// Held back and in no digest, per feed (feed id, count), most first.
    pub held_back: Vec<(Option<i64>, i64)>,
    /// Neither held back nor in a digest, but published before `oldest`
    /// (older than `digest.max_article_age_days`).
    pub too_old: i64,
}

/// Why an article cannot be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    NotFound,
    /// It is in this digest (not cancelled): the digest went out, or is
    /// going out, with it.
    InDigest {
        digest_id: i64,
        status: String,
    },
}

impl Store {
    /// The numbers behind "nothing new": see [`WaitingArticles`].
    pub async fn waiting_articles(&self, oldest: Millis) -> Result<WaitingArticles> {
        const NOT_IN_A_DIGEST: &str =
            "NOT EXISTS (SELECT 1 FROM digest_articles da JOIN digests d ON d.id = da.digest_id
                                  WHERE da.article_id = a.id AND d.status <> 'cancelled')";
        with_pool!(self, pool => {
            let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM articles WHERE removed_at IS NULL")
                .fetch_one(pool)
                .await?;
            let held_back: Vec<(Option<i64>, i64)> = sqlx::query_as(&format!(
                "SELECT a.feed_id, COUNT(*) FROM articles a
                 WHERE a.held_back = 1 AND a.removed_at IS NULL AND {NOT_IN_A_DIGEST}
                 GROUP BY a.feed_id ORDER BY COUNT(*) DESC, a.feed_id"
            ))
            .fetch_all(pool)
            .await?;
            let too_old: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM articles a
                 WHERE a.held_back = 0 AND a.removed_at IS NULL AND a.published_at <= $1 AND {NOT_IN_A_DIGEST}"
            ))
            .bind(oldest)
            .fetch_one(pool)
            .await?;
            Ok(WaitingArticles { stored, held_back, too_old })
        })
    }

    /// Held-back articles per feed (not removed, in no digest).
    pub async fn held_back_by_feed(&self) -> Result<std::collections::HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT feed_id, COUNT(*) FROM articles
                 WHERE held_back = 1 AND removed_at IS NULL AND feed_id IS NOT NULL GROUP BY feed_id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Lets the feed's held-back articles published at or after `since` go
    /// into the next digest. Returns the publication times of those released.
    pub async fn release_held_back(
        &self,
        feed_id: i64,
        since: Millis,
        now: Millis,
    ) -> Result<Vec<Millis>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar(
                "UPDATE articles SET held_back = 0, updated_at = $3
                 WHERE feed_id = $1 AND held_back = 1 AND removed_at IS NULL AND published_at >= $2
                 RETURNING published_at",
            )
            .bind(feed_id)
            .bind(since)
            .bind(now)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Removes an article that is in no digest (a cancelled one aside). The
    /// row stays, marked, so that its feed does not bring it back; a digest
    /// that carried it keeps it, and so does the archive.
    pub async fn remove_article(&self, id: i64, now: Millis) -> Result<Removal> {
        in_write_tx!(self, tx => {
            let found: Option<i64> = sqlx::query_scalar("SELECT id FROM articles WHERE id = $1 AND removed_at IS NULL")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Ok(Removal::NotFound);
            }
            let digest: Option<(i64, String)> = sqlx::query_as(
                "SELECT d.id, d.status FROM digest_articles da JOIN digests d ON d.id = da.digest_id
                 WHERE da.article_id = $1 AND d.status <> 'cancelled' ORDER BY d.id LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((digest_id, status)) = digest {
                return Ok(Removal::InDigest { digest_id, status });
            }
            sqlx::query("UPDATE articles SET removed_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Removal::Removed)
        })
    }
}
