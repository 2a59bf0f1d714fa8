//! Adding a feed: one fetch before anything is stored, so that a 404, an
//! HTML page, an unreachable server or a broken feed is refused with its
//! reason at once instead of failing at every poll from then on. The fetch
//! is the poller's own (the same client, outgoing guard, time and size
//! limits), and when it reads as a feed it is the feed's first poll: its
//! items are stored at once (those published before the backfill window
//! held back) and the next poll is one interval later.
//!
//! `herald feed add` and `POST /api/feeds` both call [`add`].

use super::fetch::{FetchError, Fetched};
use super::{parse, Error, PollReport, Poller, PARSE_TIME_LIMIT, POLL_LEASE_MS};
use crate::articles::limits::{self, Refusal};
use crate::domain::feed_settings::{BackfillDays, PollInterval};
use crate::domain::time::now_millis;
use crate::domain::web_url::FeedUrl;
use crate::domain::WebUrl;
use crate::store::Store;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, StartTag, TagToken, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use std::cell::RefCell;

/// What the operator asked for.
pub struct NewFeed<'a> {
    pub url: &'a FeedUrl,
    pub interval: PollInterval,
    pub backfill: BackfillDays,
    /// Follow it even when the check finds a problem.
    pub force: bool,
}

/// Why a URL is not (yet) a feed herald can follow. The text is what the
/// operator reads after "refused: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the server answered {}", status_text(*.0))]
    Status(u16),
    #[error("this is an HTML page, not a feed; its feed may be at {0}")]
    HtmlPageNaming(String),
    #[error("this is an HTML page, not a feed, and it names no feed (no <link rel=\"alternate\"> of type RSS, Atom or JSON Feed)")]
    HtmlPage,
    #[error("could not fetch it: {0}")]
    Unreachable(String),
    #[error("{0}")]
    NotAFeed(String),
}

fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// Nothing was stored.
    #[error("refused: {0}")]
    Refused(Problem),
    #[error(transparent)]
    Feeds(#[from] Error),
}

impl From<crate::store::Error> for AddError {
    fn from(e: crate::store::Error) -> Self {
        Self::Feeds(Error::Store(e))
    }
}

/// What [`add`] did.
#[derive(Debug, Clone)]
pub struct Added {
    pub id: i64,
    /// False when the URL was already followed: nothing was fetched.
    pub created: bool,
    pub title: Option<String>,
    pub backfill_days: i64,
    /// The first poll, when the check read a feed.
    pub report: Option<PollReport>,
    /// The problem the check found, when `force` added it anyway; its
    /// first poll is due at once and will meet the same problem.
    pub forced_past: Option<Problem>,
}

/// Checks the feed with one fetch, then follows it and stores what that
/// fetch found; refuses it with the reason (storing nothing) unless
/// `force`. A URL already followed is left as it is.
pub async fn add(store: &Store, poller: &Poller, new: &NewFeed<'_>) -> Result<Added, AddError> {
    if let Some(id) = store.feed_id_by_url(new.url).await? {
        let title = store.feed_by_id(id).await?.and_then(|f| f.title);
        return Ok(Added {
            id,
            created: false,
            title,
            backfill_days: new.backfill.days(),
            report: None,
            forced_past: None,
        });
    }
    let fetched = poller.fetch_once(new.url).await;
    let checked = check(new.url, fetched).await;
    let (body, problem) = match checked {
        Ok(body) => (Some(body), None),
        Err(problem) if new.force => (None, Some(problem)),
        Err(problem) => return Err(AddError::Refused(problem)),
    };
    let now = now_millis();
    // A feed about to be polled here is leased as a poller would lease it,
    // so a running poller does not poll it at the same time.
    let next_poll_at = if body.is_some() {
        now + POLL_LEASE_MS
    } else {
        now
    };
    let (id, created) = store
        .add_feed(new.url, new.interval, new.backfill, now, next_poll_at)
        .await?;
    let mut added = Added {
        id,
        created,
        title: None,
        backfill_days: new.backfill.days(),
        report: None,
        forced_past: problem,
    };
    if let (true, Some(body), Some(feed)) = (created, body, store.feed_by_id(id).await?) {
        added.report = Some(poller.poll_with(&feed, Ok(body)).await?);
    }
    added.title = store.feed_by_id(id).await?.and_then(|f| f.title);
    Ok(added)
}

/// The response, when it reads as a feed; else what is wrong with it.
async fn check(url: &FeedUrl, fetched: Result<Fetched, FetchError>) -> Result<Fetched, Problem> {
    let (bytes, etag, last_modified) = match fetched {
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        }) => (bytes, etag, last_modified),
        // Only a conditional request is answered 304; this one was not.
        Ok(Fetched::NotModified) => return Err(Problem::Status(304)),
        Err(FetchError::Status { status, .. }) => return Err(Problem::Status(status)),
        Err(e) => return Err(Problem::Unreachable(e.to_string())),
    };
    let page_url = url.without_credentials();
    let (bytes, verdict) = limits::off_the_async_threads(PARSE_TIME_LIMIT, move || {
        let verdict = read_as_feed(&bytes, &page_url);
        (bytes, verdict)
    })
    .await
    .map_err(|r| match r {
        Refusal::TimedOut => Problem::NotAFeed(Error::ParseTimedOut.to_string()),
        other => Problem::NotAFeed(parse::ParseError::refused(&other).to_string()),
    })?;
    verdict.map(|()| Fetched::Body {
        bytes,
        etag,
        last_modified,
    })
}

/// Parses the body as the poller will; a body that does not parse and
/// looks like HTML is a page, and the feed it names (if any) is said.
fn read_as_feed(bytes: &[u8], page_url: &WebUrl) -> Result<(), Problem> {
    let error = match parse::parse(bytes, page_url.as_str()) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    if !looks_like_html(bytes) {
        return Err(Problem::NotAFeed(error.to_string()));
    }
    let html = String::from_utf8_lossy(bytes);
    match alternate_feed_link(&html, page_url) {
        Some(feed) => Err(Problem::HtmlPageNaming(feed.to_string())),
        None => Err(Problem::HtmlPage),
    }
}

/// Whether the start of the body is an HTML document's.
fn looks_like_html(bytes: &[u8]) -> bool {
    let start = &bytes[..bytes.len().min(2048)];
    let start = String::from_utf8_lossy(start).to_ascii_lowercase();
    start.contains("<!doctype html") || start.contains("<html")
}

/// The first `<link rel="alternate" type="application/rss+xml|atom+xml|feed+json" href=…>`
/// of a page, resolved against the page's address; only an http(s) URL.
/// html5ever's tokenizer reads the page once, linearly, without building
/// a tree.
pub fn alternate_feed_link(html: &str, page_url: &WebUrl) -> Option<WebUrl> {
    let sink = LinkSink {
        found: RefCell::new(None),
    };
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let href = tokenizer.sink.found.borrow_mut().take()?;
    WebUrl::parse_with_base(&href, Some(page_url)).ok()
}

struct LinkSink {
    found: RefCell<Option<String>>,
}

impl TokenSink for LinkSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        let TagToken(tag) = token else {
            return TokenSinkResult::Continue;
        };
        if tag.kind != StartTag || &*tag.name != "link" || self.found.borrow().is_some() {
            return TokenSinkResult::Continue;
        }
        let attr = |name: &str| {
            tag.attrs
                .iter()
                .find(|a| &*a.name.local == name)
                .map(|a| a.value.to_string())
        };
        let is_alternate = attr("rel").is_some_and(|rel| {
            rel.split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case("alternate"))
        });
        let is_feed = attr("type").is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t.starts_with("application/rss+xml")
                || t.starts_with("application/atom+xml")
                || t.starts_with("application/feed+json")
        });
        if let (true, true, Some(href)) = (is_alternate, is_feed, attr("href")) {
            *self.found.borrow_mut() = Some(href);
        }
        TokenSinkResult::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> WebUrl {
        WebUrl::parse("https://news.example.com/blog/").unwrap()
    }

    #[test]
    fn a_page_names_its_feed_with_a_link_alternate() {
        let html = r#"<!DOCTYPE html><html><head>
            <link rel="stylesheet" href="/s.css">
            <link rel="alternate" type="text/html" href="/other">
            <link rel="Alternate" type="application/rss+xml; charset=utf-8" href="../feed/">
            <link rel="alternate" type="application/atom+xml" href="/atom.xml">
            </head><body></body></html>"#;
        let found = alternate_feed_link(html, &page()).unwrap();
        assert_eq!(found.as_str(), "https://news.example.com/feed/");
    }

    #[test]
    fn a_page_without_a_feed_link_names_none() {
        let html = "<html><head><link rel=alternate type=application/rss+xml href='javascript:alert(1)'></head></html>";
        assert_eq!(alternate_feed_link(html, &page()), None);
        assert_eq!(alternate_feed_link("<p>hello", &page()), None);
    }

    #[test]
    fn an_html_page_is_told_apart_from_broken_xml() {
        assert_eq!(
            read_as_feed(b"<!doctype html><title>x</title>", &page()),
            Err(Problem::HtmlPage)
        );
        let broken = read_as_feed(b"<?xml version=\"1.0\"?><rss><channel><item>", &page());
        assert!(
            matches!(&broken, Err(Problem::NotAFeed(m)) if m.starts_with("not a feed")),
            "{broken:?}"
        );
    }

    #[test]
    fn statuses_are_said_with_their_reason() {
        assert_eq!(
            Problem::Status(404).to_string(),
            "the server answered 404 Not Found"
        );
        assert_eq!(
            Problem::Status(599).to_string(),
            "the server answered HTTP 599"
        );
    }
}
