//! Fetching a feed over HTTP the way the web needs: conditional GET, a
//! whole-request timeout, a cap on the body size, a bounded number of
//! redirects, gzip and brotli; and only from addresses the outgoing guard
//! allows, the feed's own and each redirect's (see `outgoing.rs`).

use crate::config::{Config, FeedsConfig};
use crate::domain::web_url::FeedUrl;
use crate::outgoing::{ClientSettings, Guard, GuardedClient};
use reqwest::header::{ACCEPT, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RETRY_AFTER};
use reqwest::StatusCode;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("the response is larger than {0} bytes")]
    TooLarge(u64),
    #[error("too many redirects (a redirect loop?)")]
    Redirects,
    #[error("HTTP {status}")]
    Status {
        status: u16,
        /// Seconds the server asked us to wait (429/503 Retry-After).
        retry_after: Option<u64>,
    },
    /// The feed or a redirect points at a private or reserved address.
    #[error(transparent)]
    Refused(#[from] crate::outgoing::Refused),
    /// The text of reqwest's error and its causes, without the URL (which
    /// may carry the feed's password).
    #[error("could not reach the server: {0}")]
    Network(String),
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// The feed reader's client, behind the outgoing guard with the
/// operator's `network.allow_private`.
pub fn client(config: &Config) -> Result<GuardedClient, FetchError> {
    let feeds = &config.feeds;
    Guard::new(&config.network.allow_private)
        .client(&ClientSettings {
            timeout: Duration::from_secs(feeds.timeout_secs.max(1)),
            connect_timeout: Duration::from_secs(feeds.timeout_secs.clamp(1, 10)),
            max_redirects: feeds.max_redirects,
            user_agent: concat!(
                "herald/",
                env!("CARGO_PKG_VERSION"),
                " (newsletter feed reader)"
            ),
        })
        .map_err(|e| FetchError::Client(e.to_string()))
}

/// reqwest's error as the operator may see it: why the request failed,
/// with each cause, and no URL (the feed's may hold a password, a
/// redirect's anything).
fn network_error(e: reqwest::Error) -> FetchError {
    if let Some(refused) = crate::outgoing::refusal_in(&e) {
        return FetchError::Refused(refused.clone());
    }
    if crate::outgoing::too_many_redirects(&e) {
        return FetchError::Redirects;
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    FetchError::Network(text)
}

fn header_string(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Seconds from a Retry-After header: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

pub async fn fetch(
    client: &GuardedClient,
    config: &FeedsConfig,
    url: &FeedUrl,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> Result<Fetched, FetchError> {
    let mut request = client.get(url.secret_url_for_fetching())?.header(
        ACCEPT,
        "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
    );
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    if let Some(lm) = last_modified {
        request = request.header(IF_MODIFIED_SINCE, lm);
    }
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            FetchError::Timeout(config.timeout_secs)
        } else {
            network_error(e)
        }
    };
    let mut resp = request.send().await.map_err(classify)?;
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        return Err(FetchError::Status {
            status: status.as_u16(),
            retry_after,
        });
    }
    if resp.content_length().is_some_and(|n| n > config.max_bytes) {
        return Err(FetchError::TooLarge(config.max_bytes));
    }
    let etag = header_string(&resp, ETAG);
    let last_modified = header_string(&resp, LAST_MODIFIED);
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if (bytes.len() + chunk.len()) as u64 > config.max_bytes {
            return Err(FetchError::TooLarge(config.max_bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body {
        bytes,
        etag,
        last_modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(120));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        let secs = parse_retry_after(&later).unwrap();
        assert!((3590..=3600).contains(&secs), "{secs}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
