//! Adding articles by hand (CLI, API). Everything that goes in is parsed
//! into the domain's types (an http(s) `WebUrl`, capped text) and its body
//! is cleaned off the async threads within a time limit, exactly as a feed
//! item's is; see [`clean`] and [`limits`].

pub mod clean;
mod excerpt;
mod furniture;
pub mod images;
pub mod limits;

use crate::domain::text::{ArticleTitle, AuthorName, ItemGuid, Summary};
use crate::domain::time::{now_millis, Millis};
use crate::domain::{DomainError, WebUrl};
use crate::store::{ArticleWrite, NewArticle, Store};
use limits::Refusal;

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
    /// RFC 3339, like every time in herald's API (default: now).
    #[serde(default, deserialize_with = "crate::domain::time::rfc3339::de_option")]
    pub published_at: Option<Millis>,
    pub author: Option<String>,
    pub image_url: Option<String>,
    /// Defaults to the URL: adding the same URL again updates the article.
    pub guid: Option<String>,
}

/// Latest `published_at` accepted: the end of year 9999, in milliseconds.
pub const MAX_PUBLISHED_AT: Millis = 253_402_300_799_999;

/// What an article's body gives the digest: the sanitised HTML, its
/// excerpt and its first real image with the width it declares.
#[derive(Debug, Clone)]
pub struct CleanBody {
    pub html: String,
    pub summary: String,
    pub first_image: Option<WebUrl>,
    pub first_image_width: Option<u32>,
}

/// Checks the body's size and nesting, then sanitises it. Synchronous and
/// CPU-bound: call it through [`limits::off_the_async_threads`].
pub fn clean_body(raw_html: &str, base: &WebUrl, title: &str) -> Result<CleanBody, Refusal> {
    limits::check_html(raw_html)?;
    let html = clean::clean_html(raw_html, Some(base.as_url()), title);
    let summary = Summary::cut(&clean::excerpt(&html))
        .map(Summary::into_string)
        .unwrap_or_default();
    let lead = images::lead_image(&html);
    Ok(CleanBody {
        html,
        summary,
        first_image_width: lead.as_ref().and_then(|i| i.width),
        first_image: lead.map(|i| i.url),
    })
}

fn invalid(e: DomainError) -> Error {
    match e {
        DomainError::Invalid(m) => Error::Invalid(m),
    }
}

fn refusal_message(r: &Refusal) -> &'static str {
    match r {
        Refusal::TooLarge { .. } => "the article body is too large (at most 512 KiB)",
        Refusal::TooDeep => "the article body nests elements too deeply (at most 200 levels)",
        Refusal::TimedOut => "the article body took too long to clean (at most 5 s)",
        Refusal::LinkNotWeb => "the article URL must be an absolute http(s) URL",
        Refusal::Crashed => "the article body could not be cleaned",
    }
}

/// Validates, cleans and stores an article. Returns its id and whether it
/// is new (an article added again unchanged is neither new nor rewritten).
pub async fn add_article(store: &Store, input: ArticleInput) -> Result<(i64, bool), Error> {
    let title = ArticleTitle::parse(&input.title)
        .map_err(invalid)?
        .ok_or(Error::Invalid("the article needs a title"))?;
    let url = WebUrl::parse(&input.url).map_err(|_| {
        Error::Invalid("the article URL must be an absolute http(s) URL (at most 2048 bytes)")
    })?;
    let author = match input.author.as_deref() {
        Some(a) => AuthorName::parse(a).map_err(invalid)?,
        None => None,
    };
    let image_url = match input
        .image_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(raw) => Some(
            WebUrl::parse_with_base(raw, Some(&url))
                .map_err(|_| Error::Invalid("the image URL must be an http(s) URL"))?,
        ),
        None => None,
    }
    // A statistics beacon is no picture: the body's first real image
    // stands in, as for a feed item.
    .filter(|i| !images::is_statistics_url(i.as_url()));
    let now = now_millis();
    let published_at = match input.published_at {
        Some(ms) if !(0..=MAX_PUBLISHED_AT).contains(&ms) => {
            return Err(Error::Invalid(
                "published_at must be a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z",
            ))
        }
        Some(ms) => ms.min(now),
        None => now,
    };
    let guid = input
        .guid
        .as_deref()
        .and_then(ItemGuid::cut)
        .or_else(|| ItemGuid::cut(url.as_str()))
        .ok_or(Error::Invalid("the article needs a guid or a URL"))?;
    // The size is checked here as well, before the body is copied to
    // another thread.
    if input.html.len() > limits::MAX_HTML_BYTES {
        return Err(Error::Invalid(refusal_message(&Refusal::TooLarge {
            bytes: input.html.len(),
        })));
    }
    let (raw_html, base, title_text) = (input.html, url.clone(), title.to_string());
    let body = limits::off_the_async_threads(limits::CLEAN_TIME_LIMIT, move || {
        let html = if clean::looks_like_plain_text(&raw_html) {
            clean::text_to_html(&raw_html)
        } else {
            raw_html
        };
        clean_body(&html, &base, &title_text)
    })
    .await
    .and_then(|r| r)
    .map_err(|r| Error::Invalid(refusal_message(&r)))?;
    let article = NewArticle {
        feed_id: None,
        guid,
        url,
        title,
        summary: body.summary,
        html: body.html,
        image_width: match &image_url {
            Some(given) if Some(given) != body.first_image.as_ref() => None,
            _ => body.first_image_width,
        },
        image_url: image_url.or(body.first_image),
        author,
        published_at,
        // Adding the same URL again without a date keeps the stored one.
        date_stated: input.published_at.is_some(),
        url_is_own: true,
        categories: Vec::new(),
        held_back: false,
    };
    let (id, write) = store.upsert_article(&article, now).await?;
    Ok((id, write == ArticleWrite::Inserted))
}
