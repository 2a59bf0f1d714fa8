//! Adding articles by hand (CLI, API). Everything that goes in is cleaned
//! first; see [`clean`].

pub mod clean;

use crate::domain::single_line;
use crate::domain::time::{now_millis, Millis};
use crate::store::{NewArticle, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// An article as an operator submits it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ArticleInput {
    pub title: String,
    pub url: String,
    /// HTML, or plain text with blank lines between paragraphs.
    #[serde(default)]
    pub html: String,
    pub published_at: Option<Millis>,
    pub author: Option<String>,
    pub image_url: Option<String>,
    /// Defaults to the URL: adding the same URL again updates the article.
    pub guid: Option<String>,
}

pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_HTML_BYTES: usize = 2 * 1024 * 1024;

/// Validates, cleans and stores an article. Returns its id and whether it is new.
pub async fn add_article(store: &Store, input: ArticleInput) -> Result<(i64, bool), Error> {
    let title = single_line(&input.title);
    if title.is_empty() {
        return Err(Error::Invalid("the article needs a title"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::Invalid(
            "the title is too long (at most 500 characters)",
        ));
    }
    let url = url::Url::parse(input.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or(Error::Invalid(
            "the article URL must be an absolute http(s) URL",
        ))?;
    if input.html.len() > MAX_HTML_BYTES {
        return Err(Error::Invalid(
            "the article body is too large (at most 2 MiB)",
        ));
    }
    let html_in = if clean::looks_like_plain_text(&input.html) {
        clean::text_to_html(&input.html)
    } else {
        input.html.clone()
    };
    let html = clean::clean_html(&html_in, Some(&url), &title);
    let summary = clean::excerpt(&html);
    let image_url = match input
        .image_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(raw) => Some(
            url.join(raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or(Error::Invalid("the image URL must be an http(s) URL"))?
                .to_string(),
        ),
        None => clean::first_image(&html),
    };
    let now = now_millis();
    let article = NewArticle {
        feed_id: None,
        guid: input
            .guid
            .map(|g| single_line(&g))
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| url.to_string()),
        url: url.to_string(),
        title,
        summary,
        html,
        image_url,
        author: input
            .author
            .map(|a| single_line(&a))
            .filter(|a| !a.is_empty()),
        published_at: input.published_at.unwrap_or(now).min(now),
        categories: None,
        held_back: false,
    };
    Ok(store.upsert_article(&article, now).await?)
}
