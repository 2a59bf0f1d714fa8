//! Reading RSS 0.9x/1.0/2.0, Atom and JSON Feed (feed-rs) into the fields
//! herald keeps. Cleaning happens later, in `articles::clean`.

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Link};

#[derive(Debug, thiserror::Error)]
#[error("not a feed herald can read: {0}")]
pub struct ParseError(String);

impl ParseError {
    /// The parser did not finish (see `articles::limits`).
    pub fn refused(why: &crate::articles::limits::Refusal) -> Self {
        Self(why.to_string())
    }
}

#[derive(Debug, Clone, Default)]
pub struct FeedItem {
    /// guid / id, falling back to the link (never to the title, which editors change).
    pub guid: String,
    pub link: Option<String>,
    pub title: Option<String>,
    /// `content:encoded` / Atom content when present, else description / summary.
    pub html: String,
    /// enclosure / media:content / media:thumbnail that is an image.
    pub image_url: Option<String>,
    /// The width media:content or media:thumbnail declares for it.
    pub image_width: Option<u32>,
    pub author: Option<String>,
    pub categories: Vec<String>,
    pub published: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    pub title: Option<String>,
    pub site_url: Option<String>,
    pub items: Vec<FeedItem>,
}

fn page_link(links: &[Link]) -> Option<String> {
    links
        .iter()
        .find(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .or_else(|| {
            links
                .iter()
                .find(|l| l.rel.as_deref() != Some("self") && l.rel.as_deref() != Some("enclosure"))
        })
        .map(|l| l.href.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The item's own image and the width it declares: the first
/// media:content that is an image, else a media:thumbnail, else an image
/// enclosure. One declared 0–2 px wide or high, or served by a statistics
/// host, is a tracking pixel and is passed over (see `articles::images`).
fn image_of(entry: &Entry) -> Option<(String, Option<u32>)> {
    use crate::articles::images;
    let is_beacon = |u: &str| url::Url::parse(u).is_ok_and(|u| images::is_statistics_url(&u));
    for media in &entry.media {
        for content in &media.content {
            let is_image = content
                .content_type
                .as_ref()
                .map(|m| m.to_string().starts_with("image/"))
                .unwrap_or_else(|| {
                    content.url.as_ref().is_some_and(|u| {
                        let p = u.path().to_ascii_lowercase();
                        [".jpg", ".jpeg", ".png", ".gif", ".webp"]
                            .iter()
                            .any(|ext| p.ends_with(ext))
                    })
                });
            if !is_image || images::is_pixel_size(content.width, content.height) {
                continue;
            }
            if let Some(url) = content
                .url
                .as_ref()
                .filter(|u| !images::is_statistics_url(u))
            {
                return Some((url.to_string(), content.width));
            }
        }
        if let Some(thumb) = media.thumbnails.iter().find(|t| {
            !images::is_pixel_size(t.image.width, t.image.height) && !is_beacon(&t.image.uri)
        }) {
            return Some((thumb.image.uri.clone(), thumb.image.width));
        }
    }
    entry
        .links
        .iter()
        .find(|l| {
            l.rel.as_deref() == Some("enclosure")
                && l.media_type
                    .as_deref()
                    .is_some_and(|m| m.starts_with("image/"))
                && !is_beacon(&l.href)
        })
        .map(|l| (l.href.clone(), None))
}

/// Deepest XML element nesting handed to feed-rs and quick-xml. Without a
/// bound, 100,000 nested `<media:group>` in an item make quick-xml's
/// nesting counter overflow (a panic in a debug build, a wrapped count in
/// a release one) and feed-rs recurse once per nested Media RSS element; a
/// real feed nests fewer than 20 (Atom XHTML content included). JSON Feed
/// needs no bound here: serde_json stops at 128 levels.
pub const MAX_XML_DEPTH: usize = 512;

/// Parses the raw bytes (feed-rs reads the XML prolog's encoding itself, so
/// ISO-8859-1 and Windows-1252 feeds decode correctly).
pub fn parse(bytes: &[u8], feed_url: &str) -> Result<ParsedFeed, ParseError> {
    let is_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !is_json && xml_depth(bytes, MAX_XML_DEPTH) > MAX_XML_DEPTH {
        return Err(ParseError(format!(
            "its XML nests elements more than {MAX_XML_DEPTH} deep"
        )));
    }
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(feed_url))
        .id_generator(|links, title, _uri| {
            // Without a guid the item is known by its link.
            match links.first() {
                Some(l) => l.href.clone(),
                None => title
                    .as_ref()
                    .map(|t| format!("title:{}", t.content))
                    .unwrap_or_default(),
            }
        })
        .build();
    let feed = parser.parse(bytes).map_err(|e| ParseError(e.to_string()))?;
    let items = feed
        .entries
        .iter()
        .map(|entry| {
            let link = page_link(&entry.links);
            let guid = if entry.id.trim().is_empty() {
                link.clone().unwrap_or_default()
            } else {
                entry.id.trim().to_string()
            };
            let image = image_of(entry);
            let html = entry
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .filter(|b| !b.trim().is_empty())
                .or_else(|| entry.summary.as_ref().map(|s| s.content.clone()))
                .unwrap_or_default();
            FeedItem {
                guid,
                link,
                title: entry
                    .title
                    .as_ref()
                    .map(|t| t.content.clone())
                    .filter(|t| !t.trim().is_empty()),
                html,
                image_url: image.as_ref().map(|(u, _)| u.clone()),
                image_width: image.and_then(|(_, w)| w),
                author: entry
                    .authors
                    .first()
                    .map(|a| a.name.clone())
                    .filter(|n| !n.trim().is_empty()),
                categories: entry
                    .categories
                    .iter()
                    .map(|c| c.label.clone().unwrap_or_else(|| c.term.clone()))
                    .filter(|c| !c.trim().is_empty())
                    .collect(),
                published: entry.published.or(entry.updated),
            }
        })
        .collect();
    Ok(ParsedFeed {
        title: feed.title.map(|t| t.content),
        site_url: page_link(&feed.links),
        items,
    })
}

/// An upper bound of the element nesting of `xml`, counting up to
/// `stop_after` + 1. Linear, without recursion: start tags open, end tags
/// and `/>` close; comments, CDATA sections, processing instructions and
/// declarations are skipped; quoted attribute values may hold `>` or `/>`.
fn xml_depth(xml: &[u8], stop_after: usize) -> usize {
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    let skip_to = |from: usize, end: &[u8]| {
        memchr::memmem::find(&xml[from..], end).map_or(xml.len(), |at| from + at + end.len())
    };
    while let Some(at) = memchr::memchr(b'<', &xml[i..]) {
        let start = i + at;
        let rest = &xml[start..];
        if rest.starts_with(b"<!--") {
            i = skip_to(start + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to(start + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_to(start + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            i = skip_to(start + 2, b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_to(start + 2, b">");
        } else {
            // A start tag: find its end outside quoted values.
            let (mut j, mut quote, mut closed) = (start + 1, None, false);
            while j < xml.len() {
                let b = xml[j];
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == b'>' => {
                        closed = j > start + 1 && xml[j - 1] == b'/';
                        break;
                    }
                    None => {}
                }
                j += 1;
            }
            if !closed {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > stop_after {
                    return deepest;
                }
            }
            i = (j + 1).min(xml.len());
        }
        if i >= xml.len() {
            break;
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feeds_own_image_that_is_a_pixel_is_passed_over() {
        // Inputs tried: a 1×1 media:content on the site's own host, a
        // stats.wp.com media:content with no size, then the real picture
        // (640 wide); an item whose only image is a statistics enclosure.
        let rss = r#"<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>
            <item><title>a</title><link>https://news.example.com/a/</link>
              <media:content url="https://news.example.com/p.gif" medium="image" type="image/gif" width="1" height="1"/>
              <media:content url="https://stats.wp.com/g.gif" medium="image" type="image/gif"/>
              <media:content url="https://news.example.com/real.jpg" medium="image" type="image/jpeg" width="640" height="480"/>
            </item>
            <item><title>b</title><link>https://news.example.com/b/</link>
              <enclosure url="https://pixel.wp.com/b.gif" type="image/gif" length="43"/>
            </item></channel></rss>"#;
        let feed = parse(rss.as_bytes(), "https://news.example.com/feed/").unwrap();
        assert_eq!(
            feed.items[0].image_url.as_deref(),
            Some("https://news.example.com/real.jpg")
        );
        assert_eq!(feed.items[0].image_width, Some(640));
        assert_eq!(feed.items[1].image_url, None);
    }

    #[test]
    fn deeply_nested_xml_is_refused_before_feed_rs_recurses() {
        // Inputs tried: 100,000 nested <media:group> (quick-xml's counter
        // overflowed before: a panic in debug builds), the same hidden
        // behind "/>" inside quoted attributes, and a real feed's depth with
        // comments, CDATA and self-closing tags.
        let deep = format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\"><channel><title>t</title><item><title>x</title>{}</item></channel></rss>",
            "<media:group>".repeat(100_000)
        );
        let err = parse(deep.as_bytes(), "https://f.example/feed.xml").unwrap_err();
        assert!(err.to_string().contains("nests elements"), "{err}");
        let quoted = "<media:group a=\"/>\" b='>'>".repeat(1_000);
        assert!(xml_depth(quoted.as_bytes(), MAX_XML_DEPTH) > MAX_XML_DEPTH);
        let shallow = "<a><!-- <b><b> --><![CDATA[<c><c>]]><d/><e x='/>'></e><?pi <f>?></a>";
        assert_eq!(xml_depth(shallow.as_bytes(), MAX_XML_DEPTH), 2);
        assert!(parse(RSS.as_bytes(), "https://news.example.com/feed/").is_ok());
    }

    const RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>News</title><link>https://news.example.com/</link>
<item><title>With content</title><link>https://news.example.com/a/</link><guid isPermaLink="false">https://news.example.com/?p=1</guid>
<dc:creator>Jane Writer</dc:creator><category>World</category><category>Politics</category>
<pubDate>Tue, 12 Oct 2021 09:30:00 +0200</pubDate>
<description>Short summary</description><content:encoded><![CDATA[<p>Full <b>body</b></p>]]></content:encoded>
<enclosure url="https://news.example.com/a.jpg" length="1" type="image/jpeg"/></item>
<item><title>No guid</title><link>https://news.example.com/b/</link><description>Only a description</description></item>
</channel></rss>"#;

    #[test]
    fn reads_a_wordpress_style_rss_item() {
        let feed = parse(RSS.as_bytes(), "https://news.example.com/feed/").unwrap();
        assert_eq!(feed.title.as_deref(), Some("News"));
        assert_eq!(feed.site_url.as_deref(), Some("https://news.example.com/"));
        let a = &feed.items[0];
        assert_eq!(a.guid, "https://news.example.com/?p=1");
        assert_eq!(a.link.as_deref(), Some("https://news.example.com/a/"));
        assert_eq!(
            a.html, "<p>Full <b>body</b></p>",
            "content:encoded wins over description"
        );
        assert_eq!(
            a.image_url.as_deref(),
            Some("https://news.example.com/a.jpg")
        );
        assert_eq!(a.author.as_deref(), Some("Jane Writer"));
        assert_eq!(a.categories, vec!["World", "Politics"]);
        // RFC 822 with an offset: the instant is kept.
        assert_eq!(
            a.published.unwrap().to_rfc3339(),
            "2021-10-12T07:30:00+00:00"
        );
        let b = &feed.items[1];
        assert_eq!(
            b.guid, "https://news.example.com/b/",
            "no guid: known by its link"
        );
        assert_eq!(b.html, "Only a description");
        assert!(b.published.is_none());
    }

    #[test]
    fn decodes_declared_latin1_and_windows_1252() {
        let mut latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss version=\"2.0\"><channel><title>Caf".to_vec();
        latin1.push(0xE9); // é
        latin1.extend_from_slice(b"</title><item><title>Na");
        latin1.push(0xEF); // ï
        latin1.extend_from_slice(b"ve</title><link>https://e.com/1</link></item></channel></rss>");
        let feed = parse(&latin1, "https://e.com/feed").unwrap();
        assert_eq!(feed.title.as_deref(), Some("Café"));
        assert_eq!(feed.items[0].title.as_deref(), Some("Naïve"));

        let mut cp1252 = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><rss version=\"2.0\"><channel><title>t</title><item><title>".to_vec();
        cp1252.extend_from_slice(&[0x93, b'Q', 0x94, b' ', 0x96, b' ', 0x80]); // “Q” – €
        cp1252.extend_from_slice(b"</title><link>https://e.com/2</link></item></channel></rss>");
        let feed = parse(&cp1252, "https://e.com/feed").unwrap();
        assert_eq!(
            feed.items[0].title.as_deref(),
            Some("\u{201c}Q\u{201d} \u{2013} \u{20ac}")
        );
    }

    #[test]
    fn refuses_what_is_not_a_feed() {
        for bad in [
            &b"this is not xml at all"[..],
            b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>cut",
            b"<!doctype html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
            b"",
        ] {
            assert!(
                parse(bad, "https://e.com/feed").is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn reads_atom_and_json_feed() {
        let atom = r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
<link href="https://a.example/"/><id>urn:a</id><updated>2024-01-01T00:00:00Z</updated>
<entry><title type="html">Hello &lt;em&gt;world&lt;/em&gt;</title><link rel="alternate" href="https://a.example/1"/><id>urn:a:1</id>
<published>2024-01-01T10:00:00+05:30</published><updated>2024-01-02T00:00:00Z</updated><author><name>Ann</name></author>
<summary>Sum</summary><content type="html">&lt;p&gt;Body&lt;/p&gt;</content></entry></feed>"#;
        let feed = parse(atom.as_bytes(), "https://a.example/feed.atom").unwrap();
        let e = &feed.items[0];
        assert_eq!(e.guid, "urn:a:1");
        assert_eq!(e.link.as_deref(), Some("https://a.example/1"));
        assert_eq!(e.html, "<p>Body</p>");
        assert_eq!(
            e.published.unwrap().to_rfc3339(),
            "2024-01-01T04:30:00+00:00"
        );
        assert_eq!(e.author.as_deref(), Some("Ann"));

        let json = r#"{"version": "https://jsonfeed.org/version/1.1", "title": "J", "home_page_url": "https://j.example/",
            "items": [{"id": "j1", "url": "https://j.example/1", "title": "One", "content_html": "<p>One</p>",
                       "image": "https://j.example/1.png", "date_published": "2024-02-03T04:05:06Z"}]}"#;
        let feed = parse(json.as_bytes(), "https://j.example/feed.json").unwrap();
        let e = &feed.items[0];
        assert_eq!(e.guid, "j1");
        assert_eq!(e.html, "<p>One</p>");
        assert_eq!(e.title.as_deref(), Some("One"));
        assert_eq!(
            e.published.unwrap().to_rfc3339(),
            "2024-02-03T04:05:06+00:00"
        );
    }
}
