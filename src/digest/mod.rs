//! Choosing the articles of the next digest and creating it.

pub mod render;
pub mod slots;

use crate::config::Config;
use crate::domain::time::{now_millis, to_datetime, Millis};
use crate::store::{DigestCreated, NewDigest, Store};
use render::ArticleView;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("could not render the digest: {0}")]
    Render(#[from] askama::Error),
    #[error("invalid timezone {0:?}")]
    Timezone(String),
}

/// What would go out next, rendered, without creating anything.
pub struct Preview {
    pub article_ids: Vec<i64>,
    pub window_start: Millis,
    pub rendered: render::RenderedDigest,
}

fn date_label(config: &Config, at: Millis) -> Result<String, Error> {
    let tz: chrono_tz::Tz = config
        .schedule
        .timezone
        .parse()
        .map_err(|_| Error::Timezone(config.schedule.timezone.clone()))?;
    Ok(to_datetime(at)
        .with_timezone(&tz)
        .format("%A %-d %B %Y")
        .to_string())
}

/// Renders the digest that a send at `up_to` would create, or None when no
/// article was published since the previous digest.
pub async fn preview(
    store: &Store,
    config: &Config,
    up_to: Millis,
) -> Result<Option<Preview>, Error> {
    let oldest = oldest_article(config, up_to);
    let articles = store
        .articles_for_next_digest(oldest, up_to, i64::from(config.digest.max_articles))
        .await?;
    if articles.is_empty() {
        return Ok(None);
    }
    let mut article_ids = Vec::with_capacity(articles.len());
    let mut views = Vec::with_capacity(articles.len());
    for a in &articles {
        // The newest article that can be shown leads the digest.
        let excerpt = if views.is_empty() {
            render::Excerpt::Lead
        } else {
            render::Excerpt::Brief
        };
        match ArticleView::with_excerpt(a, excerpt) {
            Some(view) => {
                article_ids.push(a.id);
                views.push(view);
            }
            None => tracing::warn!(
                article_id = a.id,
                "article left out of the digest: its link is not an http(s) URL"
            ),
        }
    }
    if views.is_empty() {
        return Ok(None);
    }
    let window_start = store.last_window_end().await?.unwrap_or(oldest);
    let (rendered, fitting) = render::render(config, &views, &date_label(config, up_to)?)?;
    if fitting < views.len() {
        tracing::info!(
            articles = views.len(),
            fitting,
            "digest would be over the size limit: the oldest articles wait for the next digest"
        );
        // Only the articles shown count as sent; the rest stay eligible.
        article_ids.truncate(fitting);
    }
    Ok(Some(Preview {
        article_ids,
        window_start,
        rendered,
    }))
}

/// Why a digest at `up_to` would carry nothing (see [`Quiet`]).
pub async fn quiet(store: &Store, config: &Config, up_to: Millis) -> Result<Quiet, Error> {
    Quiet::find(store, config, oldest_article(config, up_to)).await
}

/// The oldest publication time a digest at `up_to` takes.
fn oldest_article(config: &Config, up_to: Millis) -> Millis {
    up_to - i64::from(config.digest.max_article_age_days) * 86_400_000
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(i64),
    AlreadyExists(i64),
    /// No article is waiting; [`Quiet`] says why.
    NothingNew(Quiet),
}

/// Why no article is waiting for a digest, in what the operator reads
/// instead of one (`digest send`, `digest preview`, `POST /api/digests`,
/// the scheduler's log): whether a digest was ever sent, and what is
/// stored but kept out (held back at a feed's first poll, or too old).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quiet {
    /// When the newest digest that was not cancelled was made.
    pub last_digest_at: Option<Millis>,
    /// Articles stored (not removed), sent or not.
    pub stored_articles: i64,
    /// Held-back articles in no digest, and the feeds that hold them.
    pub held_back: i64,
    pub held_back_feeds: Vec<i64>,
    /// Articles in no digest that are older than `max_article_age_days`.
    pub too_old: i64,
    pub max_article_age_days: u32,
}

impl Quiet {
    async fn find(store: &Store, config: &Config, oldest: Millis) -> Result<Self, Error> {
        let waiting = store.waiting_articles(oldest).await?;
        Ok(Quiet {
            last_digest_at: store.last_digest_created_at().await?,
            stored_articles: waiting.stored,
            held_back: waiting.held_back.iter().map(|(_, n)| n).sum(),
            held_back_feeds: waiting.held_back.iter().filter_map(|(f, _)| *f).collect(),
            too_old: waiting.too_old,
            max_article_age_days: config.digest.max_article_age_days,
        })
    }
}

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.last_digest_at {
            None if self.stored_articles == 0 => {
                return f.write_str(
                    "no digest has been sent yet and there are no articles: follow a feed (`herald feed add URL`) or add an article (`herald article add`)",
                )
            }
            None => f.write_str("no digest has been sent yet and no article is waiting for one")?,
            Some(at) => write!(
                f,
                "no new articles since the last digest on {}",
                crate::domain::time::format_rfc3339(at)
            )?,
        }
        if self.held_back > 0 {
            let release = match self.held_back_feeds.as_slice() {
                [one] => format!("`herald feed backfill {one} --days N`"),
                feeds => format!(
                    "`herald feed backfill ID --days N` (feeds {})",
                    feeds
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            write!(
                f,
                "; {} {} held back (already in the feed when herald first read it, published before the backfill window): release them with {release}",
                self.held_back,
                if self.held_back == 1 { "article is" } else { "articles are" },
            )?;
        }
        if self.too_old > 0 {
            write!(
                f,
                "; {} unsent {} older than digest.max_article_age_days ({})",
                self.too_old,
                if self.too_old == 1 {
                    "article is"
                } else {
                    "articles are"
                },
                self.max_article_age_days
            )?;
        }
        Ok(())
    }
}

/// Creates the digest for `slot` covering articles published up to `up_to`
/// and queues its deliveries. Idempotent per slot.
pub async fn create(
    store: &Store,
    config: &Config,
    slot: &str,
    up_to: Millis,
) -> Result<CreateOutcome, Error> {
    if let Some(existing) = store.digest_by_slot(slot).await? {
        return Ok(CreateOutcome::AlreadyExists(existing.id));
    }
    let Some(preview) = preview(store, config, up_to).await? else {
        return Ok(CreateOutcome::NothingNew(
            quiet(store, config, up_to).await?,
        ));
    };
    let stored = preview.rendered.bodies.to_stored();
    let digest = NewDigest {
        slot: slot.to_string(),
        window_start: preview.window_start,
        window_end: up_to,
        subject: preview.rendered.subject,
        body_html: stored.html,
        body_text: stored.text,
        body_slots: stored.slots,
        article_ids: preview.article_ids,
    };
    let outcome = match store.create_digest(&digest, now_millis()).await? {
        DigestCreated::Created(id) => {
            tracing::info!(digest_id = id, slot, "digest created and queued");
            CreateOutcome::Created(id)
        }
        DigestCreated::AlreadyExists(id) => CreateOutcome::AlreadyExists(id),
    };
    Ok(outcome)
}

/// Slot name for a manual send: the idempotency key when given, else unique.
pub fn manual_slot(idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(key) => format!("manual:{key}"),
        None => format!("manual:{}", crate::domain::token::new_confirmation_token()),
    }
}

#[cfg(test)]
mod tests {
    use super::Quiet;

    fn quiet() -> Quiet {
        Quiet {
            last_digest_at: None,
            stored_articles: 0,
            held_back: 0,
            held_back_feeds: vec![],
            too_old: 0,
            max_article_age_days: 7,
        }
    }

    #[test]
    fn nothing_to_send_says_what_is_true() {
        assert!(quiet()
            .to_string()
            .starts_with("no digest has been sent yet and there are no articles"));
        let held = Quiet {
            stored_articles: 3,
            held_back: 3,
            held_back_feeds: vec![4],
            ..quiet()
        };
        assert_eq!(
            held.to_string(),
            "no digest has been sent yet and no article is waiting for one; 3 articles are held back (already in the feed when herald first read it, published before the backfill window): release them with `herald feed backfill 4 --days N`"
        );
        let two_feeds = Quiet {
            held_back_feeds: vec![4, 9],
            ..held
        };
        assert!(two_feeds
            .to_string()
            .ends_with("`herald feed backfill ID --days N` (feeds 4, 9)"));
        let sent = Quiet {
            last_digest_at: Some(1_764_500_000_000),
            stored_articles: 5,
            too_old: 1,
            ..quiet()
        };
        assert_eq!(
            sent.to_string(),
            "no new articles since the last digest on 2025-11-30T10:53:20Z; 1 unsent article is older than digest.max_article_age_days (7)"
        );
    }
}
