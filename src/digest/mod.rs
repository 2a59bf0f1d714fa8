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
    let oldest = up_to - i64::from(config.digest.max_article_age_days) * 86_400_000;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(i64),
    AlreadyExists(i64),
    NothingNew,
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
        return Ok(CreateOutcome::NothingNew);
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
