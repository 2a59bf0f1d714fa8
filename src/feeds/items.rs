//! One feed item becomes one article, or a refusal with its reason. This is
//! everything the poller does to an item's content, synchronously, so that
//! it runs on the blocking pool within a time limit (see
//! `articles::limits`) and the fuzz tests drive exactly what the poller does.
//!
//! Every URL goes through `WebUrl` (only absolute http(s)), every text field
//! through its capped type (`domain::text`).

use super::parse::{FeedItem, ParsedFeed};
use crate::articles::limits::{self, Refusal};
use crate::articles::{clean, images};
use crate::domain::text::{self, ArticleTitle, AuthorName, FeedTitle, ItemGuid};
use crate::domain::time::Millis;
use crate::domain::WebUrl;
use crate::store::NewArticle;

/// A title is text, not a document: only its start is read.
const MAX_TITLE_SOURCE_BYTES: usize = 64 * 1024;

/// What every item of one poll shares.
#[derive(Debug, Clone)]
pub struct PollContext {
    pub feed_id: i64,
    pub feed_url: WebUrl,
    /// The channel's own link, when it is an http(s) URL: the link of an
    /// item that has none.
    pub site_url: Option<WebUrl>,
    pub now: Millis,
    pub is_first_poll: bool,
    /// At the first poll, items published before this are held back.
    pub backfill_from: Millis,
}

/// The feed's title and site link, each through its domain type.
pub fn feed_meta(parsed: &ParsedFeed) -> (Option<FeedTitle>, Option<WebUrl>) {
    let title = parsed.title.as_deref().and_then(plain_title::<FeedTitle>);
    let site_url = parsed
        .site_url
        .as_deref()
        .and_then(|u| WebUrl::parse(u).ok());
    (title, site_url)
}

/// Capped plain text of a title that may carry HTML (Atom `type="html"`).
fn plain_title<T: CutText>(raw: &str) -> Option<T> {
    let source = match raw
        .char_indices()
        .find(|(i, _)| *i >= MAX_TITLE_SOURCE_BYTES)
    {
        Some((i, _)) => &raw[..i],
        None => raw,
    };
    let plain = if limits::check_html(source).is_ok() {
        clean::text_of(source)
    } else {
        // Too deep to sanitise: the tags go without a parser.
        strip_tags(source)
    };
    T::cut_text(&plain)
}

trait CutText: Sized {
    fn cut_text(raw: &str) -> Option<Self>;
}

impl CutText for ArticleTitle {
    fn cut_text(raw: &str) -> Option<Self> {
        ArticleTitle::cut(raw)
    }
}

impl CutText for FeedTitle {
    fn cut_text(raw: &str) -> Option<Self> {
        FeedTitle::cut(raw)
    }
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The item's identity within the feed: its guid, else its link. Cheap, so
/// the poller can skip repeated items before any cleaning.
pub fn item_guid(item: &FeedItem, ctx: &PollContext) -> Option<ItemGuid> {
    ItemGuid::cut(&item.guid)
        .or_else(|| item.link.as_deref().and_then(ItemGuid::cut))
        .or_else(|| ItemGuid::cut(link_fallback(ctx).as_str()))
}

fn link_fallback(ctx: &PollContext) -> &WebUrl {
    ctx.site_url.as_ref().unwrap_or(&ctx.feed_url)
}

/// The article for one item, or why it is refused. CPU-bound: the poller
/// runs it through `limits::off_the_async_threads`.
pub fn article_from_item(
    item: &FeedItem,
    guid: ItemGuid,
    ctx: &PollContext,
) -> Result<NewArticle, Refusal> {
    let (link, url_is_own) = match item.link.as_deref() {
        Some(raw) => (
            WebUrl::parse_with_base(raw, Some(&ctx.feed_url)).map_err(|_| Refusal::LinkNotWeb)?,
            true,
        ),
        None => (link_fallback(ctx).clone(), false),
    };
    let raw_title = item.title.as_deref().and_then(plain_title::<ArticleTitle>);
    let title_text = raw_title.as_ref().map(ArticleTitle::as_str).unwrap_or("");
    let body = crate::articles::clean_body(&item.html, &link, title_text)?;
    let title = match raw_title {
        Some(t) => t,
        // No title: the first words of the text stand in.
        None => ArticleTitle::cut(&text::cut_at_word(&body.summary, 80))
            .or_else(|| ArticleTitle::cut("Untitled"))
            .ok_or(Refusal::Crashed)?,
    };
    // The item's own image, unless it is a statistics beacon; else the
    // body's first real image. Its width is the one declared for it.
    let own_image = item
        .image_url
        .as_deref()
        .and_then(|i| WebUrl::parse_with_base(i, Some(&link)).ok())
        .filter(|i| !images::is_statistics_url(i.as_url()));
    let image_width = match &own_image {
        Some(own) if Some(own) == body.first_image.as_ref() => {
            item.image_width.or(body.first_image_width)
        }
        Some(_) => item.image_width,
        None => body.first_image_width,
    }
    .filter(|w| *w > 0);
    let image_url = own_image.or(body.first_image);
    // Missing date: first seen now. Future date: clamped to now. Either
    // way the date is not the item's own, and a later poll keeps the stored one.
    let stated = item
        .published
        .map(|d| d.timestamp_millis())
        .filter(|ms| *ms <= ctx.now);
    let published_at = stated.unwrap_or(ctx.now);
    // At the first poll, what the feed already carried (older than the
    // backfill window, or undated) is stored but held back.
    let held_back =
        ctx.is_first_poll && (item.published.is_none() || published_at < ctx.backfill_from);
    Ok(NewArticle {
        feed_id: Some(ctx.feed_id),
        guid,
        url: link,
        title,
        summary: body.summary,
        html: body.html,
        image_url,
        image_width,
        author: item.author.as_deref().and_then(AuthorName::cut),
        published_at,
        date_stated: stated.is_some(),
        url_is_own,
        categories: text::categories(item.categories.iter().map(String::as_str)),
        held_back,
    })
}
