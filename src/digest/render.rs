//! Rendering a digest. The body is rendered once per digest with a
//! placeholder where each subscriber's unsubscribe URL goes; a copy for one
//! subscriber is a string replacement, not a second render.

use crate::config::Config;
use crate::store::ArticleRow;
use askama::Template;

/// Stands in for the subscriber's unsubscribe URL in a rendered digest body.
pub const UNSUBSCRIBE_PLACEHOLDER: &str = "%%HERALD_UNSUBSCRIBE_URL%%";

#[derive(Debug, Clone)]
pub struct ArticleView {
    pub title: String,
    pub url: String,
    pub summary: String,
    pub image_url: Option<String>,
    pub author: Option<String>,
}

impl From<&ArticleRow> for ArticleView {
    fn from(a: &ArticleRow) -> Self {
        Self {
            title: a.title.clone(),
            url: a.url.clone(),
            summary: a.summary.clone(),
            image_url: a.image_url.clone(),
            author: a.author.clone(),
        }
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

pub fn subject_for(config: &Config, articles: &[ArticleView]) -> String {
    let first = articles
        .first()
        .map(|a| a.title.as_str())
        .unwrap_or("New articles");
    let subject = match articles.len() {
        0 | 1 => format!("{}: {first}", config.site_name),
        n => format!("{}: {first} and {} more", config.site_name, n - 1),
    };
    crate::domain::single_line(&subject)
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
