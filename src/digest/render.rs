//! Rendering a digest. The body is rendered once per digest, and the
//! renderer records where each subscriber's unsubscribe URL and the
//! digest's archive URL go (`slots.rs`); a copy for one subscriber puts
//! its URL in at those positions, not a second render.

use super::slots::{Slot, SlottedBodies, SlottedBody};
use crate::config::Config;
use crate::domain::text::{cut_at_word, ArticleTitle, AuthorName, Summary};
use crate::domain::WebUrl;
use crate::store::ArticleRow;
use askama::Template;

/// The markers one render writes where the unsubscribe URL and the
/// archive URL go, and cuts out again before the output leaves `render`.
/// Each carries 128 random bits drawn after the articles were fixed, so no
/// article text, link or image URL can hold one: a feed that writes any
/// string herald might use is still only text.
struct Markers {
    unsubscribe: String,
    archive: String,
}

impl Markers {
    fn new() -> Self {
        use rand::RngCore;
        let mut rng = rand::rng();
        let nonce = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        Self {
            unsubscribe: format!("herald-unsubscribe-{nonce}"),
            archive: format!("herald-archive-{nonce}"),
        }
    }

    fn cut(&self, body: &str) -> SlottedBody {
        SlottedBody::cut_at_markers(
            body,
            &[
                (&self.unsubscribe, Slot::Unsubscribe),
                (&self.archive, Slot::Archive),
            ],
        )
    }
}

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
    /// The width, in pixels, the article declares for its image.
    pub image_width: Option<u32>,
    pub author: Option<AuthorName>,
}

/// Width of the digest's card image, in pixels: the template's column.
pub const CARD_WIDTH: u32 = 544;

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
            // A row stored before pixels were judged may name a
            // statistics beacon: no image then.
            image_url: a
                .image_url
                .as_deref()
                .and_then(|u| WebUrl::parse(u).ok())
                .filter(|u| !crate::articles::images::is_statistics_url(u.as_url())),
            image_width: a
                .image_width
                .and_then(|w| u32::try_from(w).ok())
                .filter(|w| *w > 0),
            author: a.author.as_deref().and_then(AuthorName::cut),
        })
    }

    /// How wide the card shows the image: its declared width when that is
    /// smaller than the card (never scaled up), else the card's.
    pub fn card_image_width(&self) -> u32 {
        self.image_width.map_or(CARD_WIDTH, |w| w.min(CARD_WIDTH))
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
    /// The bodies, with the positions of the unsubscribe and archive URLs.
    pub bodies: SlottedBodies,
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
/// [`MAX_MESSAGE_BYTES`], at least one, with slots for the unsubscribe and
/// archive URLs. Returns how many went in; the rest
/// are counted in a "more in the next digest" line.
pub fn render(
    config: &Config,
    articles: &[ArticleView],
    date: &str,
) -> Result<(RenderedDigest, usize), askama::Error> {
    let mut count = articles.len();
    loop {
        let rendered = render_some(config, articles, count, date)?;
        // A URL put in per copy is a few hundred bytes at most (the
        // markers counted here are 50).
        let size = rendered.size + HEADER_ROOM;
        if size <= MAX_MESSAGE_BYTES || count <= 1 {
            return Ok((rendered.digest, count));
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
) -> Result<Measured, askama::Error> {
    let markers = Markers::new();
    let (shown, rest) = articles.split_at(count.min(articles.len()));
    let subject = subject_for(config, shown);
    let archive = config
        .archive
        .enabled
        .then(|| format!("{}/archive", config.base_url()));
    let archive_url = config.archive.enabled.then_some(markers.archive.as_str());
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
        unsubscribe_url: &markers.unsubscribe,
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
        unsubscribe_url: &markers.unsubscribe,
        archive_url,
        more: rest.len(),
        more_url,
        postal_address,
    }
    .render()?;
    let (html, text) = (fold_long_lines(&html), fold_long_lines(&text));
    Ok(Measured {
        size: html.len() + text.len(),
        digest: RenderedDigest {
            subject,
            bodies: SlottedBodies {
                html: markers.cut(&html),
                text: markers.cut(&text),
            },
        },
    })
}

/// A render and its size in bytes, markers counted.
struct Measured {
    digest: RenderedDigest,
    size: usize,
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
            // The limit is a byte count: it is moved back to the start of
            // the character it falls in, so a line of non-ASCII text (a
            // Greek or Persian title) is never cut inside a character.
            let mut limit = FOLD_AT;
            while !rest.is_char_boundary(limit) {
                limit -= 1;
            }
            let cut = rest[..limit]
                .rfind(' ')
                .or_else(|| rest[limit..].find(' ').map(|i| i + limit));
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

#[cfg(test)]
mod tests {
    use super::fold_long_lines;
    use super::{render, ArticleView, Slot};
    use crate::domain::text::{ArticleTitle, AuthorName};
    use crate::domain::WebUrl;

    /// Tried in every text and URL field of an article: herald's old
    /// placeholders, and strings shaped like the markers a render writes.
    #[test]
    fn slots_are_where_the_template_puts_links_whatever_the_articles_hold() {
        let hostile = "%%HERALD_UNSUBSCRIBE_URL%% %%HERALD_ARCHIVE_URL%% herald-unsubscribe-0123456789abcdef0123456789abcdef herald-archive-0";
        let view = ArticleView {
            title: ArticleTitle::cut(hostile).unwrap(),
            url: WebUrl::parse("https://evil.example/s?u=%%HERALD_UNSUBSCRIBE_URL%%").unwrap(),
            summary: hostile.to_string(),
            image_url: Some(
                WebUrl::parse("https://evil.example/t.gif?t=%%HERALD_UNSUBSCRIBE_URL%%").unwrap(),
            ),
            image_width: None,
            author: AuthorName::cut(hostile),
        };
        let config = crate::config::Config::default();
        let (rendered, _) = render(&config, &[view.clone(), view], "Monday").unwrap();
        for body in [&rendered.bodies.html, &rendered.bodies.text] {
            // The footer's unsubscribe link and the "view in your browser" link.
            assert_eq!(body.count(Slot::Unsubscribe), 1, "{body:?}");
            assert_eq!(body.count(Slot::Archive), 1, "{body:?}");
            let filled = body.fill(|_| "FILLED");
            assert_eq!(filled.matches("FILLED").count(), 2);
            assert!(filled.contains("%%HERALD_UNSUBSCRIBE_URL%%"));
            assert!(!filled.contains("herald-unsubscribe-") || filled.contains("0123456789abcdef"));
        }
        // The footer's link comes after every article.
        let html = &rendered.bodies.html;
        let last_article = html.fill(|_| "").rfind("evil.example").unwrap();
        let first_unsubscribe = html.segments()[..=html
            .slots()
            .iter()
            .position(|s| *s == Slot::Unsubscribe)
            .unwrap()]
            .iter()
            .map(String::len)
            .sum::<usize>();
        assert!(first_unsubscribe > last_article);
    }

    fn row(image_url: &str, image_width: Option<i64>) -> crate::store::ArticleRow {
        crate::store::ArticleRow {
            id: 1,
            feed_id: None,
            guid: "g".into(),
            url: "https://news.example.com/a/".into(),
            title: "A story".into(),
            summary: "Text.".into(),
            html: "<p>Text.</p>".into(),
            image_url: Some(image_url.into()),
            image_width,
            author: None,
            published_at: 0,
            created_at: 0,
            categories: None,
            held_back: 0,
        }
    }

    #[test]
    fn the_card_never_shows_an_image_wider_than_declared() {
        let width = |w| {
            ArticleView::from_row(&row("https://news.example.com/a.jpg", w))
                .unwrap()
                .card_image_width()
        };
        assert_eq!(width(Some(300)), 300);
        assert_eq!(width(Some(2000)), 544);
        assert_eq!(width(None), 544);
        assert_eq!(width(Some(0)), 544);
        assert_eq!(width(Some(-5)), 544);
        let (rendered, _) = render(
            &crate::config::Config::default(),
            &[ArticleView::from_row(&row("https://news.example.com/a.jpg", Some(300))).unwrap()],
            "Monday",
        )
        .unwrap();
        let html = rendered.bodies.html.fill(|_| "");
        assert!(
            html.contains(r#"width="300""#) && html.contains("max-width:300px"),
            "{html}"
        );
    }

    #[test]
    fn a_stored_statistics_beacon_is_no_card_image() {
        // A row stored before pixels were judged.
        let view = ArticleView::from_row(&row("https://pixel.wp.com/b.gif?host=x", None)).unwrap();
        assert_eq!(view.image_url, None);
    }

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

    /// Inputs tried: lines of two-, three- and four-byte characters whose
    /// 600th byte falls inside a character, with and without spaces.
    #[test]
    fn long_lines_of_non_ascii_text_fold_without_cutting_a_character() {
        for unit in [
            "\u{e9}",
            "\u{3b1}\u{3b2} ",
            "\u{627}\u{644}\u{62e} ",
            "\u{1f4f0}",
            "a\u{e9} ",
        ] {
            for shift in 0..4 {
                let body = format!("{}{}", "x".repeat(shift), unit.repeat(700));
                let folded = fold_long_lines(&body);
                assert_eq!(
                    folded.replace('\n', " "),
                    body.replace('\n', " "),
                    "{unit:?} {shift}"
                );
            }
        }
    }
}
