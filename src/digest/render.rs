//! Rendering a digest. The body is rendered once per digest, and the
//! renderer records where each subscriber's unsubscribe URL and the
//! digest's archive URL go (`slots.rs`); a copy for one subscriber puts
//! its URL in at those positions, not a second render.

use super::slots::{Slot, SlottedBodies, SlottedBody};
use crate::config::Config;
use crate::domain::text::{cut_at_word, ArticleTitle, AuthorName, Category, Summary};
use crate::domain::WebUrl;
use crate::store::ArticleRow;
use askama::Template;

/// The markers one render writes where the unsubscribe URL and the
/// archive URL go, and around what only a mail shows, and cuts out again
/// before the output leaves `render`. Each carries 128 random bits drawn
/// after the articles were fixed, so no article text, link or image URL
/// can hold one: a feed that writes any string herald might use is still
/// only text.
struct Markers {
    unsubscribe: String,
    archive: String,
    mail_only_start: String,
    mail_only_end: String,
}

impl Markers {
    fn new() -> Self {
        use rand::RngCore;
        let mut rng = rand::rng();
        let nonce = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        Self {
            unsubscribe: format!("herald-unsubscribe-{nonce}"),
            archive: format!("herald-archive-{nonce}"),
            mail_only_start: format!("herald-mail-only-start-{nonce}"),
            mail_only_end: format!("herald-mail-only-end-{nonce}"),
        }
    }

    fn cut(&self, body: &str) -> SlottedBody {
        SlottedBody::cut_at_markers(
            body,
            &[
                (&self.unsubscribe, Slot::Unsubscribe),
                (&self.archive, Slot::Archive),
                (&self.mail_only_start, Slot::MailOnlyStart),
                (&self.mail_only_end, Slot::MailOnlyEnd),
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
    /// The excerpt: whole sentences, longer for the lead story.
    pub summary: String,
    pub image_url: Option<WebUrl>,
    /// The width, in pixels, the article declares for its image: the
    /// lead image is never shown wider.
    pub image_width: Option<u32>,
    pub author: Option<AuthorName>,
    /// The article's first categories, at most [`SHOWN_CATEGORIES`].
    pub categories: Vec<Category>,
}

/// How much of an article a digest shows: the lead story (the newest) a
/// few sentences under its picture, every other story two or three lines
/// beside a thumbnail. Both are cut at a sentence's end
/// (`articles::clean::excerpt_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excerpt {
    Lead,
    Brief,
}

impl Excerpt {
    /// The longest excerpt, in characters: about four sentences for the
    /// lead, two or three lines of a compact story.
    pub fn max_chars(self) -> usize {
        match self {
            Self::Lead => 480,
            Self::Brief => 160,
        }
    }
}

/// Categories shown above a story's title.
pub const SHOWN_CATEGORIES: usize = 2;

/// Longest category name shown, in characters (a feed may send 100).
const CATEGORY_LABEL_CHARS: usize = 40;

/// Width of the digest's card image (the lead story's), in pixels: the
/// template's column.
pub const CARD_WIDTH: u32 = 544;

/// A compact story's thumbnail width, in pixels (88 on a phone).
pub const THUMBNAIL_WIDTH: u32 = 120;

/// The stored categories (a JSON array of names, as `store::articles`
/// writes them) as a digest shows them: the first [`SHOWN_CATEGORIES`],
/// each cut to a short label. Anything else stored shows none.
fn shown_categories(stored: Option<&str>) -> Vec<Category> {
    // Herald writes at most 20 names of 100 characters.
    const MAX_STORED_BYTES: usize = 64 * 1024;
    stored
        .filter(|json| json.len() <= MAX_STORED_BYTES)
        .and_then(|json| serde_json::from_str::<Vec<String>>(json).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|name| Category::cut(&cut_at_word(name, CATEGORY_LABEL_CHARS)))
        .take(SHOWN_CATEGORIES)
        .collect()
}

impl ArticleView {
    pub fn from_row(a: &ArticleRow) -> Option<Self> {
        Self::with_excerpt(a, Excerpt::Brief)
    }

    /// The article with an excerpt of its (cleaned) body as long as
    /// `excerpt` allows; its stored summary when the body has no text.
    pub fn with_excerpt(a: &ArticleRow, excerpt: Excerpt) -> Option<Self> {
        let url = WebUrl::parse(&a.url).ok()?;
        let from_body = crate::articles::clean::excerpt_of(&a.html, excerpt.max_chars());
        let text = if from_body.trim().is_empty() {
            cut_at_word(&a.summary, excerpt.max_chars())
        } else {
            from_body
        };
        Some(Self {
            title: ArticleTitle::cut(&a.title).or_else(|| ArticleTitle::cut("Untitled"))?,
            url,
            summary: Summary::cut(&text)
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
            categories: shown_categories(a.categories.as_deref()),
        })
    }

    /// The categories as one label, "World · Politics"; None without any.
    pub fn category_label(&self) -> Option<String> {
        (!self.categories.is_empty()).then(|| {
            self.categories
                .iter()
                .map(Category::as_str)
                .collect::<Vec<_>>()
                .join(" · ")
        })
    }

    /// How wide the card shows the image: its declared width when that is
    /// smaller than the card (never scaled up), else the card's.
    pub fn card_image_width(&self) -> u32 {
        self.image_width.map_or(CARD_WIDTH, |w| w.min(CARD_WIDTH))
    }

    /// The thumbnail's width beside a compact story: [`THUMBNAIL_WIDTH`],
    /// or the picture's declared width when that is smaller (a picture is
    /// never scaled up).
    pub fn thumbnail_width(&self) -> u32 {
        self.image_width
            .map_or(THUMBNAIL_WIDTH, |w| w.clamp(1, THUMBNAIL_WIDTH))
    }
}

#[derive(Template)]
#[template(path = "digest.html")]
struct DigestHtml<'a> {
    site_name: &'a str,
    site_url: Option<&'a str>,
    subject: &'a str,
    date: &'a str,
    /// The first article, shown large with its picture.
    lead: Option<&'a ArticleView>,
    /// The rest, compact.
    others: &'a [ArticleView],
    story_count: usize,
    thumbnail_width: u32,
    unsubscribe_url: &'a str,
    /// Hidden text mail clients show after the subject: the first summary.
    preheader: Option<&'a str>,
    archive_url: Option<&'a str>,
    /// Written around the "view this digest in your browser" line.
    mail_only_start: &'a str,
    mail_only_end: &'a str,
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
    story_count: usize,
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
        // markers counted here are 50 to 60; the mail-only ones stand for
        // nothing).
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
    let (lead, others) = match shown.split_first() {
        Some((lead, others)) => (Some(lead), others),
        None => (None, shown),
    };
    let html = DigestHtml {
        site_name: &config.site_name,
        site_url: config.site_url.as_deref(),
        subject: &subject,
        date,
        lead,
        others,
        story_count: shown.len(),
        thumbnail_width: THUMBNAIL_WIDTH,
        unsubscribe_url: &markers.unsubscribe,
        preheader,
        archive_url,
        mail_only_start: &markers.mail_only_start,
        mail_only_end: &markers.mail_only_end,
        more: rest.len(),
        more_url,
        postal_address,
    }
    .render()?;
    let text = DigestText {
        site_name: &config.site_name,
        date,
        articles: shown,
        story_count: shown.len(),
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
    use super::{render, ArticleView, Excerpt, Slot, CARD_WIDTH, THUMBNAIL_WIDTH};
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
            categories: crate::domain::text::categories([hostile]),
        };
        let config = crate::config::Config::default();
        let (rendered, _) = render(&config, &[view.clone(), view], "Monday").unwrap();
        for body in [&rendered.bodies.html, &rendered.bodies.text] {
            // The footer's unsubscribe link and the "view in your browser" link.
            assert_eq!(body.count(Slot::Unsubscribe), 1, "{body:?}");
            assert_eq!(body.count(Slot::Archive), 1, "{body:?}");
            let filled = body.fill(|s| match s {
                Slot::Unsubscribe | Slot::Archive => "FILLED",
                Slot::MailOnlyStart | Slot::MailOnlyEnd => "",
            });
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

    fn story_row(n: usize, categories: Option<&str>) -> crate::store::ArticleRow {
        crate::store::ArticleRow {
            id: n as i64,
            feed_id: None,
            guid: format!("g{n}"),
            url: format!("https://news.example/{n}"),
            title: format!("Story {n}"),
            summary: "A summary.".into(),
            html: "<p>One sentence here. Another sentence there. A third one.</p>".into(),
            image_url: Some(format!("https://news.example/{n}.jpg")),
            image_width: None,
            author: None,
            published_at: 0,
            created_at: 0,
            categories: categories.map(str::to_string),
            held_back: 0,
        }
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
    fn the_first_categories_are_shown_and_anything_else_stored_shows_none() {
        let view = |c| {
            ArticleView::from_row(&story_row(1, c))
                .unwrap()
                .category_label()
        };
        assert_eq!(
            view(Some(r#"["World","Politics","Europe"]"#)).as_deref(),
            Some("World · Politics")
        );
        assert_eq!(view(Some(r#"["Sport"]"#)).as_deref(), Some("Sport"));
        for nothing in [
            None,
            Some("[]"),
            Some("not json"),
            Some(r#"{"a":1}"#),
            Some(r#"["  "]"#),
        ] {
            assert_eq!(view(nothing), None, "{nothing:?}");
        }
        let long = format!(r#"["{} tail"]"#, "word ".repeat(30));
        assert!(view(Some(&long)).unwrap().chars().count() <= 41);
    }

    /// The lead's picture is full width (or its declared width), the
    /// others' are thumbnails beside their titles; the "view in your
    /// browser" line sits between the marks of what only a mail shows.
    #[test]
    fn the_first_story_leads_and_the_rest_are_compact() {
        let rows: Vec<_> = (0..3).map(|n| story_row(n, Some(r#"["City"]"#))).collect();
        let mut views: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let excerpt = if i == 0 {
                    Excerpt::Lead
                } else {
                    Excerpt::Brief
                };
                ArticleView::with_excerpt(r, excerpt).unwrap()
            })
            .collect();
        views[0].image_width = Some(300);
        assert_eq!(views[0].card_image_width(), 300);
        assert_eq!(views[1].card_image_width(), CARD_WIDTH);
        // A thumbnail is never wider than its picture declares either.
        let mut small = views[1].clone();
        for (declared, shown) in [
            (Some(80), 80),
            (Some(300), THUMBNAIL_WIDTH),
            (None, THUMBNAIL_WIDTH),
        ] {
            small.image_width = declared;
            assert_eq!(small.thumbnail_width(), shown, "{declared:?}");
        }
        let config = crate::config::Config::default();
        let (rendered, n) = render(&config, &views, "Monday").unwrap();
        assert_eq!(n, 3);
        let html = rendered.bodies.html.fill(|s| match s {
            Slot::MailOnlyStart => "[",
            Slot::MailOnlyEnd => "]",
            _ => "URL",
        });
        assert!(html.contains(r#"src="https://news.example/0.jpg" alt="Story 0" width="300""#));
        for n in [1, 2] {
            assert!(html.contains(&format!(
                r#"src="https://news.example/{n}.jpg" alt="Story {n}" width="{THUMBNAIL_WIDTH}""#
            )));
        }
        assert_eq!(html.matches(">City</p>").count(), 3);
        assert_eq!(html.matches("aria-label=\"Read more: Story").count(), 3);
        assert!(html.contains("3 stories"));
        let line = &html[html.find('[').unwrap()..html.find(']').unwrap()];
        assert!(line.contains("View this digest in your browser"), "{line}");
        // Each copy is spliced from one template, not built again.
        let from = "herald <news@herald.example>".parse().unwrap();
        let template = crate::mail::DigestTemplate::prepare(
            &from,
            &rendered.subject,
            "<digest.herald.example>",
            &rendered
                .bodies
                .with_archive_url("https://herald.example/archive/1"),
        )
        .unwrap();
        assert!(template.is_spliceable());
        let text = rendered.bodies.text.fill(|_| "URL");
        let order: Vec<usize> = [
            "CITY\nStory 0",
            "Read more: https://news.example/0",
            "CITY\nStory 1",
            "Read more: https://news.example/1",
        ]
        .iter()
        .map(|t| text.find(t).unwrap_or_else(|| panic!("{t} in {text}")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
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
