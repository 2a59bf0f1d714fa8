//! Rendering a digest. The body is rendered once per digest with a
//! placeholder where each subscriber's unsubscribe URL goes; a copy for one
//! subscriber is a string replacement, not a second render.

use crate::config::Config;
use crate::domain::text::{cut_at_word, ArticleTitle, AuthorName, Summary};
use crate::domain::WebUrl;
use crate::store::ArticleRow;
use askama::Template;

/// Stands in for the subscriber's unsubscribe URL in a rendered digest body.
pub const UNSUBSCRIBE_PLACEHOLDER: &str = "%%HERALD_UNSUBSCRIBE_URL%%";

/// Stands in for the digest's archive page URL ("view this digest in your
/// browser"): the digest's id is known only once it is stored, so the
/// worker puts the URL in once per digest, before any copy is made.
pub const ARCHIVE_PLACEHOLDER: &str = "%%HERALD_ARCHIVE_URL%%";

/// Largest digest message herald builds, bodies and headers together.
/// Gmail clips messages over 102 KB and hides what follows, the unsubscribe
/// footer included; articles that do not fit wait for the next digest.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1000;

/// Room left in [`MAX_MESSAGE_BYTES`] for headers and MIME structure.
const HEADER_ROOM: usize = 4 * 1000;

/// An article as a digest shows it. Built from a stored row at digest time,
/// through the same types the article went in through, so a row stored
/// before a rule existed (a `javascript:` link, a 2 MB title) is held to it
/// too: a link that is not http(s) leaves the article out, a bad image URL
/// leaves the image out, text is cut to its cap.
#[derive(Debug, Clone)]
pub struct ArticleView {
    pub title: ArticleTitle,
    pub url: WebUrl,
    pub summary: String,
    pub image_url: Option<WebUrl>,
    pub author: Option<AuthorName>,
}

/// A digest of at most this many articles shows a longer excerpt of each
/// ([`LONG_EXCERPT_CHARS`]): a digest of one story and its picture reads
/// as a newsletter, not as an image with a caption (which is also what
/// spam filters' image-to-text rules look for).
pub const FEW_ARTICLES: usize = 3;
pub const LONG_EXCERPT_CHARS: usize = Summary::MAX_CHARS;

impl ArticleView {
    pub fn from_row(a: &ArticleRow) -> Option<Self> {
        Self::with_excerpt(a, false)
    }

    /// `long`: an excerpt of up to [`LONG_EXCERPT_CHARS`] taken from the
    /// article's (cleaned) body instead of its stored summary.
    pub fn with_excerpt(a: &ArticleRow, long: bool) -> Option<Self> {
        let url = WebUrl::parse(&a.url).ok()?;
        let long_excerpt = long
            .then(|| crate::articles::clean::excerpt_of(&a.html, LONG_EXCERPT_CHARS))
            .filter(|e| e.chars().count() > a.summary.chars().count());
        Some(Self {
            title: ArticleTitle::cut(&a.title).or_else(|| ArticleTitle::cut("Untitled"))?,
            url,
            summary: Summary::cut(long_excerpt.as_deref().unwrap_or(&a.summary))
                .map(Summary::into_string)
                .unwrap_or_default(),
            image_url: a.image_url.as_deref().and_then(|u| WebUrl::parse(u).ok()),
            author: a.author.as_deref().and_then(AuthorName::cut),
        })
    }
}

#[derive(Template)]
#[template(path = "digest.html")]
struct DigestHtml<'a> {
    site_name: &'a str,
    site_url: Option<&'a str>,
    subject: &'a str,
    date: &'a str,
    articles: &'a [ArticleView],
    unsubscribe_url: &'a str,
    /// Hidden text mail clients show after the subject: the first summary.
    preheader: Option<&'a str>,
    archive_url: Option<&'a str>,
    /// Articles left for the next digest, and where to read them now.
    more: usize,
    more_url: Option<&'a str>,
    postal_address: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "digest.txt")]
struct DigestText<'a> {
    site_name: &'a str,
    date: &'a str,
    articles: &'a [ArticleView],
    unsubscribe_url: &'a str,
    archive_url: Option<&'a str>,
    more: usize,
    more_url: Option<&'a str>,
    postal_address: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct RenderedDigest {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Longest digest Subject, in characters: the first title is shortened to
/// fit, so "and N more" is never cut off.
pub const MAX_SUBJECT_CHARS: usize = 200;

pub fn subject_for(config: &Config, articles: &[ArticleView]) -> String {
    let first = articles
        .first()
        .map(|a| a.title.as_str())
        .unwrap_or("New articles");
    let site = cut_at_word(&crate::domain::single_line(&config.site_name), 60);
    let more = match articles.len() {
        0 | 1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let room = MAX_SUBJECT_CHARS.saturating_sub(site.chars().count() + 2 + more.chars().count());
    let first = cut_at_word(&crate::domain::single_line(first), room.max(1));
    crate::domain::single_line(&format!("{site}: {first}{more}"))
}

/// Renders as many of `articles` (newest first) as fit in
/// [`MAX_MESSAGE_BYTES`], at least one, with the placeholders in place of
/// the unsubscribe and archive URLs. Returns how many went in; the rest
/// are counted in a "more in the next digest" line.
pub fn render(
    config: &Config,
    articles: &[ArticleView],
    date: &str,
) -> Result<(RenderedDigest, usize), askama::Error> {
    let mut count = articles.len();
    loop {
        let rendered = render_some(config, articles, count, date)?;
        // A URL put in per copy is a few hundred bytes at most.
        let size = rendered.html.len() + rendered.text.len() + HEADER_ROOM;
        if size <= MAX_MESSAGE_BYTES || count <= 1 {
            return Ok((rendered, count));
        }
        // Shrink in proportion, then one at a time near the limit.
        let fitting = count * MAX_MESSAGE_BYTES / size;
        count = fitting.clamp(1, count - 1);
    }
}

fn render_some(
    config: &Config,
    articles: &[ArticleView],
    count: usize,
    date: &str,
) -> Result<RenderedDigest, askama::Error> {
    let (shown, rest) = articles.split_at(count.min(articles.len()));
    let subject = subject_for(config, shown);
    let archive = config
        .archive
        .enabled
        .then(|| format!("{}/archive", config.base_url()));
    let archive_url = config.archive.enabled.then_some(ARCHIVE_PLACEHOLDER);
    let more_url = archive.as_deref().or(config.site_url.as_deref());
    let postal_address = config
        .postal_address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let preheader = shown
        .first()
        .map(|a| a.summary.as_str())
        .filter(|s| !s.is_empty());
    let html = DigestHtml {
        site_name: &config.site_name,
        site_url: config.site_url.as_deref(),
        subject: &subject,
        date,
        articles: shown,
        unsubscribe_url: UNSUBSCRIBE_PLACEHOLDER,
        preheader,
        archive_url,
        more: rest.len(),
        more_url,
        postal_address,
    }
    .render()?;
    let text = DigestText {
        site_name: &config.site_name,
        date,
        articles: shown,
        unsubscribe_url: UNSUBSCRIBE_PLACEHOLDER,
        archive_url,
        more: rest.len(),
        more_url,
        postal_address,
    }
    .render()?;
    Ok(RenderedDigest {
        subject,
        html: fold_long_lines(&html),
        text: fold_long_lines(&text),
    })
}

/// Longest body line herald writes, in bytes, leaving room for the
/// unsubscribe URL within RFC 5322's 998: copies of a digest with short
/// lines go out 8bit, spliced, instead of each being re-encoded.
const FOLD_AT: usize = 600;

/// Breaks every line longer than [`FOLD_AT`] bytes at spaces. In HTML a
/// line break between words is a space (herald's digests have no `<pre>`,
/// and URLs, the only attribute values without spaces, are never split);
/// in text it is where a mail client would wrap anyway.
fn fold_long_lines(body: &str) -> String {
    if body.lines().all(|l| l.len() <= FOLD_AT) {
        return body.to_string();
    }
    let mut out = String::with_capacity(body.len() + body.len() / FOLD_AT);
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut rest = line;
        while rest.len() > FOLD_AT {
            // The last space within the limit, else the first after it.
            let cut = rest[..FOLD_AT]
                .rfind(' ')
                .or_else(|| rest[FOLD_AT..].find(' ').map(|i| i + FOLD_AT));
            match cut {
                Some(at) if at > 0 => {
                    out.push_str(&rest[..at]);
                    out.push('\n');
                    rest = &rest[at + 1..];
                }
                _ => break,
            }
        }
        out.push_str(rest);
    }
    out
}

/// One subscriber's HTML and text: the placeholder replaced by their URL
/// (HTML-escaped in the HTML part). For previews; sending splices copies
/// from `mail::DigestTemplate`.
pub fn personalise(html: &str, text: &str, unsubscribe_url: &str) -> (String, String) {
    let escaped = html_escape::encode_double_quoted_attribute(unsubscribe_url);
    (
        html.replace(UNSUBSCRIBE_PLACEHOLDER, &escaped),
        text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url),
    )
}

/// The bodies with the archive placeholder replaced by `archive_url`.
pub fn with_archive_url(html: &str, text: &str, archive_url: &str) -> (String, String) {
    let escaped = html_escape::encode_double_quoted_attribute(archive_url);
    (
        html.replace(ARCHIVE_PLACEHOLDER, &escaped),
        text.replace(ARCHIVE_PLACEHOLDER, archive_url),
    )
}

#[cfg(test)]
mod tests {
    use super::fold_long_lines;

    #[test]
    fn long_lines_are_folded_at_spaces_and_nothing_else_changes() {
        let words = "word ".repeat(400);
        let body = format!(
            "short\n<p style=\"a: b\">{words}</p>\n<a href=\"https://x.example/{}\">x</a>",
            "u".repeat(700)
        );
        let folded = fold_long_lines(&body);
        assert_eq!(folded.replace('\n', " "), body.replace('\n', " "));
        for line in folded.lines() {
            assert!(
                line.len() <= 600 || !line.contains(' ') || line.starts_with("<a href"),
                "{}",
                line.len()
            );
        }
        assert!(folded.contains(&"u".repeat(700)), "a URL is never split");
    }
}
