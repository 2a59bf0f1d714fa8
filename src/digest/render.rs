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

impl ArticleView {
    pub fn from_row(a: &ArticleRow) -> Option<Self> {
        let url = WebUrl::parse(&a.url).ok()?;
        Some(Self {
            title: ArticleTitle::cut(&a.title).or_else(|| ArticleTitle::cut("Untitled"))?,
            url,
            summary: Summary::cut(&a.summary)
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
}

#[derive(Template)]
#[template(path = "digest.txt")]
struct DigestText<'a> {
    site_name: &'a str,
    date: &'a str,
    articles: &'a [ArticleView],
    unsubscribe_url: &'a str,
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

/// Renders with the placeholder in place of the unsubscribe URL.
pub fn render(
    config: &Config,
    articles: &[ArticleView],
    date: &str,
) -> Result<RenderedDigest, askama::Error> {
    let subject = subject_for(config, articles);
    let html = DigestHtml {
        site_name: &config.site_name,
        site_url: config.site_url.as_deref(),
        subject: &subject,
        date,
        articles,
        unsubscribe_url: UNSUBSCRIBE_PLACEHOLDER,
    }
    .render()?;
    let text = DigestText {
        site_name: &config.site_name,
        date,
        articles,
        unsubscribe_url: UNSUBSCRIBE_PLACEHOLDER,
    }
    .render()?;
    Ok(RenderedDigest {
        subject,
        html,
        text,
    })
}

/// One subscriber's HTML and text: the placeholder replaced by their URL
/// (HTML-escaped in the HTML part).
pub fn personalise(html: &str, text: &str, unsubscribe_url: &str) -> (String, String) {
    let escaped = html_escape::encode_double_quoted_attribute(unsubscribe_url);
    (
        html.replace(UNSUBSCRIBE_PLACEHOLDER, &escaped),
        text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url),
    )
}
