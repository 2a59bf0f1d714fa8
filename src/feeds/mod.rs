//! Following the site's feeds: polling each on its own interval, turning
//! new and edited items into articles, backing off from feeds that fail.
//! One failing feed never stops the others, and nothing already stored is
//! lost when a poll fails.

pub mod add;
pub mod fetch;
#[cfg(test)]
mod fuzz;
pub mod items;
pub mod parse;

use crate::articles::limits::{self, Refusal};
use crate::config::{Config, FeedsConfig};
use crate::domain::feed_settings::{BackfillDays, PollInterval};
use crate::domain::text::ItemGuid;
use crate::domain::time::{now_millis, Millis};
use crate::domain::web_url::FeedUrl;
use crate::domain::{DomainError, WebUrl};
use crate::store::{ArticleWrite, FeedRow, PollSuccess, Store};
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
pub(crate) const POLL_LEASE_MS: i64 = 5 * 60_000;
/// Longest the parser may take over one response (at most
/// `feeds.max_bytes`), off the async threads.
pub const PARSE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL as given, its password masked.
    #[error("invalid feed URL {0:?}: use an absolute http(s) URL")]
    InvalidUrl(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    #[error("reading the feed took longer than {} s", PARSE_TIME_LIMIT.as_secs())]
    ParseTimedOut,
    /// The key, its value, and why.
    #[error("{0} = {1} is refused: {2}; write a value in that range")]
    Setting(&'static str, u64, DomainError),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// What one poll did, for logs, the CLI and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollReport {
    pub feed_id: i64,
    pub not_modified: bool,
    /// Distinct items read from the response (at most `MAX_ITEMS_PER_POLL`).
    pub items_found: usize,
    pub new_articles: usize,
    /// Items already stored whose content changed (title, link, text, image,
    /// author, categories or stated date). An item seen again unchanged is
    /// not counted, and not written.
    pub updated_articles: usize,
    /// New items stored but kept out of digests: at the first poll, those
    /// published before the backfill window (`feed backfill` releases them).
    pub held_back: usize,
    /// Items refused (see `articles::limits::Refusal`), and the latest reason.
    pub refused_items: usize,
    pub last_refusal: Option<String>,
    pub error: Option<String>,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub next_poll_at: Millis,
}

pub fn validate_url(url: &str) -> Result<FeedUrl, Error> {
    FeedUrl::parse(url).map_err(|_| Error::InvalidUrl(crate::redact::mask_url(url)))
}

/// Follows the feed at `url` with the configured interval and backfill
/// (the feeds listed in the configuration).
pub async fn add_feed(
    store: &Store,
    config: &FeedsConfig,
    url: &str,
) -> Result<(i64, bool), Error> {
    let url = validate_url(url)?;
    let (interval, backfill) = default_settings(config)?;
    follow(store, &url, interval, backfill).await
}

/// Follows a feed; its first poll is due at once. Returns its id and
/// whether it is new.
pub async fn follow(
    store: &Store,
    url: &FeedUrl,
    interval: PollInterval,
    backfill: BackfillDays,
) -> Result<(i64, bool), Error> {
    let now = now_millis();
    Ok(store.add_feed(url, interval, backfill, now, now).await?)
}

/// The configured defaults for a feed added without its own numbers; an
/// out-of-range configuration is an error, not a wrapped number.
pub fn default_settings(config: &FeedsConfig) -> Result<(PollInterval, BackfillDays), Error> {
    Ok((
        PollInterval::from_secs(config.poll_interval_secs).map_err(|e| {
            Error::Setting("feeds.poll_interval_secs", config.poll_interval_secs, e)
        })?,
        BackfillDays::from_days(config.backfill_days)
            .map_err(|e| Error::Setting("feeds.backfill_days", config.backfill_days, e))?,
    ))
}

/// What `feed backfill` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Released {
    pub released: usize,
    /// Released, but older than `digest.max_article_age_days`: no digest
    /// takes them.
    pub too_old: usize,
    /// The feed's articles still held back (published earlier).
    pub still_held_back: i64,
}

/// Releases the feed's held-back articles published in the last `days`
/// days into the next digest. None when there is no such feed.
pub async fn release_held_back(
    store: &Store,
    config: &Config,
    feed_id: i64,
    days: i64,
    now: Millis,
) -> Result<Option<Released>, Error> {
    if store.feed_by_id(feed_id).await?.is_none() {
        return Ok(None);
    }
    let since = now.saturating_sub(days.saturating_mul(86_400_000));
    let published = store.release_held_back(feed_id, since, now).await?;
    let oldest_in_a_digest = now - i64::from(config.digest.max_article_age_days) * 86_400_000;
    let too_old = published
        .iter()
        .filter(|p| **p <= oldest_in_a_digest)
        .count();
    let still_held_back = store
        .held_back_by_feed()
        .await?
        .get(&feed_id)
        .copied()
        .unwrap_or(0);
    tracing::info!(
        feed_id,
        days,
        released = published.len(),
        still_held_back,
        "held-back articles released"
    );
    Ok(Some(Released {
        released: published.len(),
        too_old,
        still_held_back,
    }))
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
    // A server's Retry-After is honoured up to the longest backoff.
    let floor = retry_after_secs
        .map(|s| s.min(MAX_BACKOFF_MS as u64 / 1000) as i64 * 1000)
        .unwrap_or(0);
    backoff.max(floor)
}

pub struct Poller {
    store: Store,
    http: crate::outgoing::GuardedClient,
    config: Arc<Config>,
}

impl Poller {
    pub fn new(store: Store, config: Arc<Config>) -> Result<Self, Error> {
        let http = fetch::client(&config)?;
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
        let fetched = fetch::fetch(
            &self.http,
            &self.config.feeds,
            &feed.url,
            feed.etag.as_deref(),
            feed.last_modified.as_deref(),
        )
        .await;
        self.take_response(feed, fetched).await
    }

    /// One unconditional fetch of `url`, as a poll makes it (the same
    /// client, guard, time and size limits): what `feeds::add` checks.
    pub async fn fetch_once(&self, url: &FeedUrl) -> Result<Fetched, FetchError> {
        fetch::fetch(&self.http, &self.config.feeds, url, None, None).await
    }

    /// Polls `feed` with a response already fetched (the one `feeds::add`
    /// checked): stores its items and records the poll, so the next poll
    /// is one interval away.
    pub async fn poll_with(
        &self,
        feed: &FeedRow,
        fetched: Result<Fetched, FetchError>,
    ) -> Result<PollReport, crate::store::Error> {
        let span = tracing::info_span!("feed_poll", feed_id = feed.id, url = %feed.url);
        self.take_response(feed, fetched).instrument(span).await
    }

    /// Reads a response (or its failure) into articles and records the
    /// outcome on the feed.
    async fn take_response(
        &self,
        feed: &FeedRow,
        fetched: Result<Fetched, FetchError>,
    ) -> Result<PollReport, crate::store::Error> {
        let now = now_millis();
        let interval_ms = PollInterval::from_stored(feed.poll_interval_secs).millis();
        let mut report = PollReport {
            feed_id: feed.id,
            ..PollReport::default()
        };
        let outcome = match fetched {
            Ok(Fetched::NotModified) => {
                report.not_modified = true;
                Ok((None, None, None, None))
            }
            Ok(Fetched::Body {
                bytes,
                etag,
                last_modified,
            }) => match self.read_feed(bytes, feed).await {
                Ok((parsed, ctx)) => {
                    let (title, site_url) = (
                        parsed.title.clone().map(|t| t.into_string()),
                        parsed.site_url.clone().map(|u| u.to_string()),
                    );
                    self.store_items(feed, parsed.items, &ctx, &mut report)
                        .await?;
                    Ok((etag, last_modified, title, site_url))
                }
                Err(e) => Err((e, None)),
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
                    refused = report.refused_items,
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

    /// Parses the response on the blocking pool, within a time limit.
    async fn read_feed(
        &self,
        bytes: Vec<u8>,
        feed: &FeedRow,
    ) -> Result<(ReadFeed, items::PollContext), Error> {
        // Relative links are read against the address without its
        // credentials: no article link may carry the feed's password.
        let feed_url = feed.url.without_credentials();
        let now = now_millis();
        let mut ctx = items::PollContext {
            feed_id: feed.id,
            feed_url,
            site_url: None,
            now,
            is_first_poll: feed.first_polled_at.is_none(),
            backfill_from: now - BackfillDays::from_stored(feed.backfill_days).millis(),
        };
        let mut parse_ctx = ctx.clone();
        let read = limits::off_the_async_threads(PARSE_TIME_LIMIT, move || {
            let parsed = parse::parse(&bytes, parse_ctx.feed_url.as_str())?;
            let (title, site_url) = items::feed_meta(&parsed);
            parse_ctx.site_url = site_url.clone();
            // Guids too are read here: a feed may make them megabytes long.
            let items = parsed
                .items
                .into_iter()
                .take(MAX_ITEMS_PER_POLL)
                .filter_map(|item| items::item_guid(&item, &parse_ctx).map(|g| (g, item)))
                .collect();
            Ok::<_, parse::ParseError>(ReadFeed {
                title,
                site_url,
                items,
            })
        })
        .await
        .map_err(|r| match r {
            Refusal::TimedOut => Error::ParseTimedOut,
            other => Error::Parse(parse::ParseError::refused(&other)),
        })??;
        ctx.site_url = read.site_url.clone();
        Ok((read, ctx))
    }

    /// Stores each item as an article, or counts it as refused (and logs
    /// why, with the feed and the item's guid).
    async fn store_items(
        &self,
        feed: &FeedRow,
        items: Vec<(ItemGuid, parse::FeedItem)>,
        ctx: &items::PollContext,
        report: &mut PollReport,
    ) -> Result<(), crate::store::Error> {
        let mut seen = HashSet::new();
        for (guid, item) in items {
            // A feed that lists the same guid twice: the first one counts.
            if !seen.insert(guid.clone()) {
                continue;
            }
            report.items_found += 1;
            let (item_ctx, item_guid) = (ctx.clone(), guid.clone());
            let outcome = limits::off_the_async_threads(limits::CLEAN_TIME_LIMIT, move || {
                items::article_from_item(&item, item_guid, &item_ctx)
            })
            .await
            .and_then(|r| r);
            let article = match outcome {
                Ok(article) => article,
                Err(refusal) => {
                    self.refuse(feed, &guid, &refusal, report);
                    continue;
                }
            };
            // The counts are what the store did: an item seen again
            // unchanged is neither written nor counted.
            let (_, write) = self.store.upsert_article(&article, ctx.now).await?;
            match (write, article.held_back) {
                (ArticleWrite::Inserted, true) => report.held_back += 1,
                (ArticleWrite::Inserted, false) => report.new_articles += 1,
                (ArticleWrite::Updated, _) => report.updated_articles += 1,
                (ArticleWrite::Unchanged, _) => {}
            }
        }
        self.store
            .record_refusals(
                feed.id,
                report.refused_items as i64,
                report.last_refusal.as_deref(),
            )
            .await
    }

    fn refuse(&self, feed: &FeedRow, guid: &ItemGuid, refusal: &Refusal, report: &mut PollReport) {
        tracing::warn!(
            feed_id = feed.id,
            guid = guid.as_str(),
            reason = %refusal,
            "feed item refused"
        );
        report.refused_items += 1;
        report.last_refusal = Some(format!("item {:?} refused: {refusal}", guid.as_str()));
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

/// A parsed response, its title and site link already through their types.
struct ReadFeed {
    title: Option<crate::domain::text::FeedTitle>,
    site_url: Option<WebUrl>,
    /// At most `MAX_ITEMS_PER_POLL`, each with its guid.
    items: Vec<(ItemGuid, parse::FeedItem)>,
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
        // A Retry-After of u64::MAX is a day, not a wrapped negative number.
        let longest = backoff_ms(interval, 1, Some(u64::MAX));
        assert_eq!(longest, MAX_BACKOFF_MS);
    }

    #[test]
    fn feed_urls_must_be_http() {
        assert!(validate_url("https://news.example.com/feed/").is_ok());
        for bad in ["ftp://x/feed", "feed", "javascript:alert(1)", "http://"] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        // The refusal quotes the URL, never its password.
        let e = validate_url("http://reader:hunter2@").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
