//! `/archive/feed.xml`: the newest sent digests as an Atom feed (RFC 4287),
//! written by `atom_syndication`. Each entry's content is the digest's body
//! as it was sent (HTML, with the signup page where each copy had its
//! unsubscribe link); its link and id are the digest's archive page.
//!
//! The written document keeps only characters XML 1.0 allows: text
//! stored before titles were cleaned where they enter (a U+FFFF in a
//! subject, a control character in an article's body) must not make the
//! whole feed unreadable until that digest leaves the newest entries.

use super::document::{split, without_subscriber_links};
use crate::domain::time::{now_millis, to_datetime, Millis};
use crate::state::AppState;
use crate::store::DigestRow;
use atom_syndication::{Content, Entry, Feed, FixedDateTime, Generator, Link, Person, Text};

fn instant(ms: Millis) -> FixedDateTime {
    to_datetime(ms).fixed_offset()
}

fn link(href: String, rel: &str, mime_type: &str) -> Link {
    Link {
        href,
        rel: rel.to_string(),
        mime_type: Some(mime_type.to_string()),
        ..Link::default()
    }
}

fn entry(state: &AppState, digest: &DigestRow) -> Entry {
    let url = state.url(&format!("/archive/{}", digest.id));
    let html = without_subscriber_links(state, digest);
    let body = split(&html).map_or(html.as_str(), |parts| parts.content);
    Entry {
        title: Text::plain(digest.subject.clone()),
        id: url.clone(),
        // A sent digest never changes: its update is its sending.
        updated: instant(digest.created_at),
        published: Some(instant(digest.created_at)),
        links: vec![link(url, "alternate", "text/html")],
        content: Some(Content {
            value: Some(body.trim().to_string()),
            content_type: Some("html".to_string()),
            ..Content::default()
        }),
        ..Entry::default()
    }
}

/// The feed document. Its `updated` is the newest entry's, so it stays the
/// same between two digests; a feed with no entry yet says now.
pub fn atom(state: &AppState, digests: &[DigestRow]) -> Result<Vec<u8>, atom_syndication::Error> {
    let site_name = &state.config.site_name;
    let updated = digests
        .iter()
        .map(|d| d.created_at)
        .max()
        .unwrap_or_else(now_millis);
    let feed = Feed {
        title: Text::plain(format!("{site_name}: past digests")),
        id: state.url("/archive/feed.xml"),
        updated: instant(updated),
        authors: vec![Person {
            name: site_name.clone(),
            uri: Some(state.url("/")),
            ..Person::default()
        }],
        links: vec![
            link(
                state.url("/archive/feed.xml"),
                "self",
                "application/atom+xml",
            ),
            link(state.url("/archive"), "alternate", "text/html"),
        ],
        generator: Some(Generator {
            value: "herald".to_string(),
            ..Generator::default()
        }),
        entries: digests.iter().map(|d| entry(state, d)).collect(),
        lang: Some("en".to_string()),
        ..Feed::default()
    };
    let written = feed.write_to(Vec::new())?;
    Ok(only_xml_chars(written))
}

/// The document without characters XML 1.0 forbids (and noncharacters).
/// Markup is ASCII, so only text loses characters.
fn only_xml_chars(written: Vec<u8>) -> Vec<u8> {
    use crate::domain::text::valid_everywhere;
    use std::borrow::Cow;
    let text = match String::from_utf8(written) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    match valid_everywhere(&text) {
        Cow::Borrowed(_) => text.into_bytes(),
        Cow::Owned(cleaned) => cleaned.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::only_xml_chars;

    #[test]
    fn the_written_feed_keeps_only_xml_characters() {
        let doc = "<title>A\u{FFFF}B\u{1}C\u{FFFE}\tD</title>"
            .as_bytes()
            .to_vec();
        assert_eq!(only_xml_chars(doc), "<title>ABC\tD</title>".as_bytes());
    }
}
