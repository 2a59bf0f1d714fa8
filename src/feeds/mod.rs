//! Following the site's feeds: polling each on its own interval, turning
//! new and edited items into articles, backing off from feeds that fail.
//! One failing feed never stops the others, and nothing already stored is
//! lost when a poll fails.

pub mod fetch;
pub mod parse;

use crate::articles::clean;
use crate::config::{Config, FeedsConfig};
use crate::domain::single_line;
use crate::domain::time::{now_millis, Millis};
use crate::store::{FeedRow, NewArticle, PollSuccess, Store};
use fetch::{FetchError, Fetched};
use rand::Rng;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Items read from one response at most: a runaway feed cannot flood the store.
pub const MAX_ITEMS_PER_POLL: usize = 500;
/// Longest wait after repeated failures.
pub const MAX_BACKOFF_MS: i64 = 24 * 3_600_000;
/// How long a claimed feed is reserved for one poller.
const POLL_LEASE_MS: i64 = 5 * 60_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid feed URL {0:?}: use an absolute http(s) URL")]
    InvalidUrl(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// What one poll did, for logs, the CLI and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollReport {
    pub feed_id: i64,
    pub not_modified: bool,
    pub new_articles: usize,
    pub updated_articles: usize,
    pub held_back: usize,
    pub error: Option<String>,
    pub next_poll_at: Millis,
}

pub fn validate_url(url: &str) -> Result<String, Error> {
    url::Url::parse(url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .map(|u| u.to_string())
        .ok_or_else(|| Error::InvalidUrl(url.to_string()))
}

pub async fn add_feed(
    store: &Store,
    config: &FeedsConfig,
    url: &str,
) -> Result<(i64, bool), Error> {
    let url = validate_url(url)?;
    Ok(store
        .add_feed(
            &url,
            config.poll_interval_secs as i64,
            config.backfill_days as i64,
            now_millis(),
        )
        .await?)
}

fn jittered(ms: i64) -> i64 {
    let factor = rand::rng().random_range(0.9..1.1);
    ((ms as f64) * factor) as i64
}

/// Next poll after a failure: the interval doubled per consecutive failure,
/// capped at a day, and never sooner than the server's Retry-After.
pub fn backoff_ms(
    interval_ms: i64,
    consecutive_failures: i64,
    retry_after_secs: Option<u64>,
) -> i64 {
    let exp = consecutive_failures.clamp(0, 20);
    let backoff = jittered(interval_ms.saturating_mul(1i64 << exp).min(MAX_BACKOFF_MS));
    let floor = retry_after_secs
        .map(|s| (s as i64).saturating_mul(1000))
        .unwrap_or(0);
    backoff.max(floor)
}

pub struct Poller {
    store: Store,
    http: reqwest::Client,
    config: Arc<Config>,
}

impl Poller {
    pub fn new(store: Store, config: Arc<Config>) -> Result<Self, Error> {
        let http = fetch::client(&config.feeds)?;
        Ok(Self {
            store,
            http,
            config,
        })
    }

    /// Polls one feed and records the outcome on it. Errors are recorded
    /// (and returned in the report), not propagated: the caller goes on
    /// with the next feed.
    pub async fn poll(&self, feed: &FeedRow) -> Result<PollReport, crate::store::Error> {
        let span = tracing::info_span!("feed_poll", feed_id = feed.id, url = %feed.url);
        self.poll_in_span(feed).instrument(span).await
    }

    async fn poll_in_span(&self, feed: &FeedRow) -> Result<PollReport, crate::store::Error> {
        let now = now_millis();
        let interval_ms = feed.poll_interval_secs.max(1) * 1000;
        let mut report = PollReport {
            feed_id: feed.id,
            ..PollReport::default()
        };
        let fetched = fetch::fetch(
            &self.http,
            &self.config.feeds,
            &feed.url,
            feed.etag.as_deref(),
            feed.last_modified.as_deref(),
        )
        .await;
        let outcome = match fetched {
            Ok(Fetched::NotModified) => {
                report.not_modified = true;
                Ok((None, None, None, None))
            }
            Ok(Fetched::Body {
                bytes,
                etag,
                last_modified,
            }) => match parse::parse(&bytes, &feed.url) {
                Ok(parsed) => {
                    self.store_items(feed, &parsed, now, &mut report).await?;
                    Ok((etag, last_modified, parsed.title, parsed.site_url))
                }
                Err(e) => Err((Error::from(e), None)),
            },
            Err(e) => {
                let retry_after = match &e {
                    FetchError::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                Err((Error::from(e), retry_after))
            }
        };
        match outcome {
            Ok((etag, last_modified, title, site_url)) => {
                report.next_poll_at = now + jittered(interval_ms);
                let title = title.map(|t| single_line(&clean::text_of(&t)));
                self.store
                    .record_poll_success(
                        feed.id,
                        &PollSuccess {
                            status: if report.not_modified {
                                "not modified"
                            } else {
                                "ok"
                            },
                            etag: etag.as_deref(),
                            last_modified: last_modified.as_deref(),
                            title: title.as_deref(),
                            site_url: site_url.as_deref(),
                            next_poll_at: report.next_poll_at,
                        },
                        now,
                    )
                    .await?;
                tracing::info!(
                    not_modified = report.not_modified,
                    new = report.new_articles,
                    updated = report.updated_articles,
                    held_back = report.held_back,
                    "feed polled"
                );
            }
            Err((error, retry_after)) => {
                report.next_poll_at =
                    now + backoff_ms(interval_ms, feed.consecutive_failures + 1, retry_after);
                let message = error.to_string();
                tracing::warn!(error = %message, next_poll_at = report.next_poll_at, "feed poll failed; backing off");
                self.store
                    .record_poll_failure(feed.id, &message, report.next_poll_at, now)
                    .await?;
                report.error = Some(message);
            }
        }
        Ok(report)
    }

    async fn store_items(
        &self,
        feed: &FeedRow,
        parsed: &parse::ParsedFeed,
        now: Millis,
        report: &mut PollReport,
    ) -> Result<(), crate::store::Error> {
        let is_first_poll = feed.first_polled_at.is_none();
        let backfill_from = now - feed.backfill_days.max(0) * 86_400_000;
        let fallback_link = parsed.site_url.clone().unwrap_or_else(|| feed.url.clone());
        let mut seen = HashSet::new();
        for item in parsed.items.iter().take(MAX_ITEMS_PER_POLL) {
            let link = item.link.clone().unwrap_or_else(|| fallback_link.clone());
            let guid = if item.guid.is_empty() {
                link.clone()
            } else {
                item.guid.clone()
            };
            // A feed that lists the same guid twice: the first one counts.
            if !seen.insert(guid.clone()) {
                continue;
            }
            // Missing date: first seen now. Future date: clamped to now.
            let published = item
                .published
                .map(|d| d.timestamp_millis())
                .unwrap_or(now)
                .min(now);
            // At the first poll, what the feed already carried (older than
            // the backfill window, or undated) is stored but held back.
            let held_back =
                is_first_poll && (item.published.is_none() || published < backfill_from);
            let article = article_from_item(item, guid, &link, published, feed.id, held_back);
            let (_, created) = self.store.upsert_article(&article, now).await?;
            match (created, held_back) {
                (true, true) => report.held_back += 1,
                (true, false) => report.new_articles += 1,
                (false, _) => report.updated_articles += 1,
            }
        }
        Ok(())
    }

    /// Polls every due feed, one after another; returns the reports.
    pub async fn poll_due(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Vec<PollReport>, crate::store::Error> {
        let mut reports = Vec::new();
        while !cancel.is_cancelled() {
            let now = now_millis();
            let Some(feed) = self.store.claim_due_feed(now, now + POLL_LEASE_MS).await? else {
                break;
            };
            reports.push(self.poll(&feed).await?);
        }
        Ok(reports)
    }

    /// Polls every feed now, due or not (`herald feed poll --now`).
    pub async fn poll_all(&self) -> Result<Vec<PollReport>, crate::store::Error> {
        let mut reports = Vec::new();
        for feed in self.store.list_feeds().await? {
            reports.push(self.poll(&feed).await?);
        }
        Ok(reports)
    }

    pub async fn run(self, cancel: CancellationToken) {
        let tick = Duration::from_secs(self.config.feeds.tick_secs.max(1));
        tracing::info!("feed poller started");
        // The first look is one tick after start, not at start, so that a
        // process that is only starting (or a test driving polls through
        // the API) is not racing the poller for the same feed.
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
            if let Err(e) = self.poll_due(&cancel).await {
                tracing::error!(error = %e, "feed polling failed; retrying shortly");
            }
        }
        tracing::info!("feed poller stopped");
    }
}

fn article_from_item(
    item: &parse::FeedItem,
    guid: String,
    link: &str,
    published: Millis,
    feed_id: i64,
    held_back: bool,
) -> NewArticle {
    let base = url::Url::parse(link).ok();
    let raw_title = item
        .title
        .as_deref()
        .map(|t| single_line(&clean::text_of(t)))
        .unwrap_or_default();
    let html = clean::clean_html(&item.html, base.as_ref(), &raw_title);
    let summary = clean::excerpt(&html);
    let title = if raw_title.is_empty() {
        // No title: the first words of the text stand in.
        let words = clean::cut_at_word(&summary, 80);
        if words.is_empty() {
            "Untitled".to_string()
        } else {
            words
        }
    } else {
        raw_title
    };
    let image_url = item
        .image_url
        .as_deref()
        .and_then(|i| {
            base.as_ref()
                .and_then(|b| b.join(i).ok())
                .or_else(|| url::Url::parse(i).ok())
        })
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.to_string())
        .or_else(|| clean::first_image(&html));
    let categories = if item.categories.is_empty() {
        None
    } else {
        let cleaned: Vec<String> = item.categories.iter().map(|c| single_line(c)).collect();
        serde_json::to_string(&cleaned).ok()
    };
    NewArticle {
        feed_id: Some(feed_id),
        guid: single_line(&guid),
        url: link.to_string(),
        title,
        summary,
        html,
        image_url,
        author: item
            .author
            .as_deref()
            .map(single_line)
            .filter(|a| !a.is_empty()),
        published_at: published,
        categories,
        held_back,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let interval = 60_000;
        let first = backoff_ms(interval, 1, None);
        assert!((108_000..=132_000).contains(&first), "{first}");
        assert!(backoff_ms(interval, 30, None) <= MAX_BACKOFF_MS * 11 / 10);
        assert!(backoff_ms(interval, 1, Some(3600)) >= 3_600_000);
    }

    #[test]
    fn feed_urls_must_be_http() {
        assert!(validate_url("https://news.example.com/feed/").is_ok());
        for bad in ["ftp://x/feed", "feed", "javascript:alert(1)", "http://"] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }
}
