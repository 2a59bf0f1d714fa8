//! The public archive of sent digests: `GET /archive` (20 a page, newest
//! first), `GET /archive/{id}` (one digest as it was sent, without any
//! subscriber's links) and `GET /archive/feed.xml` (Atom). Which digests
//! count as sent is the store's `IS_SENT`. With `archive.enabled = false`
//! the routes are not there at all (`web::routes`), so all three answer the
//! ordinary 404 page.

mod document;
mod feed;

use super::pages::{page, MessagePage};
use crate::domain::time::{format_rfc3339, to_datetime, Millis};
use crate::state::AppState;
use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Digests on one page of `/archive`.
pub const PER_PAGE: i64 = 20;

/// Entries of `/archive/feed.xml`.
pub const FEED_ENTRIES: i64 = 20;

/// The Content-Security-Policy of `/archive/{id}`, instead of the one every
/// other page has. A digest is an email document styled inline on every
/// element (mail clients drop stylesheets), so it needs `'unsafe-inline'`
/// styles; its article images come from the news site, whatever host that
/// is. Still no script of any kind, no fonts, frames, objects or
/// connections (`default-src 'none'`), no `<base>` and no framing.
pub const ARCHIVED_DIGEST_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A sent digest does not change: a proxy or a browser may keep its page
/// (and the feed) for a few minutes.
const PUBLIC_CACHE: &str = "public, max-age=300";

/// What `?page=` asked for.
#[derive(Debug, PartialEq, Eq)]
enum PageRequest {
    Page(i64),
    /// Digits, but no page can have that number (0, or too large to be).
    OutOfRange,
    /// Anything but digits, or `page` given twice.
    NotANumber,
}

/// Reads `page` from the query string; other parameters are ignored. Only
/// ASCII digits are a number: `+2`, `-1`, `1.0`, `2e3` and an empty value
/// are not.
fn requested_page(query: Option<&str>) -> PageRequest {
    let mut values = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(key, _)| key == "page")
        .map(|(_, value)| value);
    let Some(value) = values.next() else {
        return PageRequest::Page(1);
    };
    if values.next().is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return PageRequest::NotANumber;
    }
    // Beyond this the offset would not fit the database's integers.
    let max_page = i64::MAX / PER_PAGE;
    match value.parse::<i64>() {
        Ok(n) if (1..=max_page).contains(&n) => PageRequest::Page(n),
        _ => PageRequest::OutOfRange,
    }
}

/// A digest id in a path: the digits of a positive 64-bit integer.
fn digest_id(segment: &str) -> Option<i64> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse::<i64>().ok().filter(|id| *id > 0)
}

/// The day a digest went out, as its mail says it (the schedule's time
/// zone; UTC if that zone does not parse, which start-up already refuses
/// when the scheduler runs).
fn date_label(state: &AppState, at: Millis) -> String {
    let format = "%A %-d %B %Y";
    match state.config.schedule.timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) => to_datetime(at)
            .with_timezone(&tz)
            .format(format)
            .to_string(),
        Err(_) => to_datetime(at).format(format).to_string(),
    }
}

struct ListEntry {
    url: String,
    subject: String,
    date: String,
    datetime: String,
}

#[derive(Template)]
#[template(path = "archive.html")]
struct ArchivePage<'a> {
    site_name: &'a str,
    page: i64,
    entries: Vec<ListEntry>,
    newer: Option<String>,
    older: Option<String>,
    feed_url: String,
    signup_url: String,
}

fn page_url(state: &AppState, n: i64) -> String {
    if n <= 1 {
        state.url("/archive")
    } else {
        state.url(&format!("/archive?page={n}"))
    }
}

fn not_a_page_number(state: &AppState) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        MessagePage::new(
            "That is not a page number",
            &["Pages of the archive are numbered 1, 2, 3 and so on; page 1 has the newest digests."],
        )
        .site(&state.config.site_name)
        .link(state.url("/archive"), "Go to the newest digests"),
    )
}

fn no_such_page(state: &AppState) -> Response {
    page(
        StatusCode::NOT_FOUND,
        MessagePage::new(
            "There is no such page",
            &["The archive does not have that many pages."],
        )
        .site(&state.config.site_name)
        .link(state.url("/archive"), "Go to the newest digests"),
    )
}

fn digest_not_found(state: &AppState) -> Response {
    page(
        StatusCode::NOT_FOUND,
        MessagePage::new(
            "Digest not found",
            &["There is no sent digest at this address."],
        )
        .site(&state.config.site_name)
        .link(state.url("/archive"), "See all past digests"),
    )
}

/// `GET /archive?page=N`.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, super::Error> {
    let n = match requested_page(query.as_deref()) {
        PageRequest::Page(n) => n,
        PageRequest::OutOfRange => return Ok(no_such_page(&state)),
        PageRequest::NotANumber => return Ok(not_a_page_number(&state)),
    };
    // One more than a page: whether there is an older page, without a count.
    let mut digests = state
        .store
        .sent_digests((n - 1) * PER_PAGE, PER_PAGE + 1)
        .await?;
    let has_older = digests.len() as i64 > PER_PAGE;
    digests.truncate(PER_PAGE as usize);
    if digests.is_empty() && n > 1 {
        return Ok(no_such_page(&state));
    }
    let entries = digests
        .into_iter()
        .map(|d| ListEntry {
            url: state.url(&format!("/archive/{}", d.id)),
            date: date_label(&state, d.created_at),
            datetime: format_rfc3339(d.created_at),
            subject: d.subject,
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        ArchivePage {
            site_name: &state.config.site_name,
            page: n,
            entries,
            newer: (n > 1).then(|| page_url(&state, n - 1)),
            older: has_older.then(|| page_url(&state, n + 1)),
            feed_url: state.url("/archive/feed.xml"),
            signup_url: state.url("/"),
        },
    ))
}

/// `GET /archive/{id}`: the digest as it was sent, inside a herald header
/// and footer, under its own policy (`ARCHIVED_DIGEST_POLICY`).
pub async fn show(
    State(state): State<AppState>,
    segment: Result<Path<String>, PathRejection>,
) -> Result<Response, super::Error> {
    // A segment that is not UTF-8 once decoded is no digest either.
    let Some(id) = segment.ok().and_then(|Path(s)| digest_id(&s)) else {
        return Ok(digest_not_found(&state));
    };
    let Some(digest) = state.store.sent_digest_by_id(id).await? else {
        return Ok(digest_not_found(&state));
    };
    let html = document::render(&state, &digest, &date_label(&state, digest.created_at))?;
    Ok((
        [
            (header::CONTENT_SECURITY_POLICY, ARCHIVED_DIGEST_POLICY),
            (header::CACHE_CONTROL, PUBLIC_CACHE),
        ],
        Html(html),
    )
        .into_response())
}

/// `GET /archive/feed.xml`: the newest sent digests as Atom.
pub async fn feed(State(state): State<AppState>) -> Result<Response, super::Error> {
    let digests = state.store.newest_sent_digests(FEED_ENTRIES).await?;
    let xml = feed::atom(&state, &digests)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/atom+xml; charset=utf-8"),
            (header::CACHE_CONTROL, PUBLIC_CACHE),
        ],
        xml,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_are_plain_digits_within_range() {
        use PageRequest::*;
        assert_eq!(requested_page(None), Page(1));
        assert_eq!(requested_page(Some("")), Page(1));
        assert_eq!(requested_page(Some("utm_source=mail")), Page(1));
        assert_eq!(requested_page(Some("page=1")), Page(1));
        assert_eq!(requested_page(Some("page=007")), Page(7));
        assert_eq!(requested_page(Some("x=1&page=3")), Page(3));
        for bad in [
            "page=",
            "page=abc",
            "page=-1",
            "page=+2",
            "page=1.0",
            "page=2e3",
            "page=%201",
            "page=1&page=2",
            "page=%FF",
            "page=%EF%BC%91", // a fullwidth digit one
        ] {
            assert_eq!(requested_page(Some(bad)), NotANumber, "{bad}");
        }
        for out in [
            "page=0",
            "page=99999999999999999999999",
            "page=461168601842738791",
        ] {
            assert_eq!(requested_page(Some(out)), OutOfRange, "{out}");
        }
        let last = i64::MAX / PER_PAGE;
        assert_eq!(requested_page(Some(&format!("page={last}"))), Page(last));
        assert!((last - 1).checked_mul(PER_PAGE).is_some());
    }

    #[test]
    fn digest_ids_are_positive_integers() {
        assert_eq!(digest_id("42"), Some(42));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.0",
            "abc",
            "1 ",
            "99999999999999999999",
            "feed",
        ] {
            assert_eq!(digest_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_archived_digest_policy_allows_no_script() {
        let p = ARCHIVED_DIGEST_POLICY;
        assert!(p.starts_with("default-src 'none';"));
        assert!(!p.contains("script-src"));
        assert!(!p.contains("unsafe-eval"));
        for needed in [
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ] {
            assert!(p.contains(needed), "{needed}");
        }
    }
}
