//! What in an article is not for the reader, judged while the markup still
//! says so. The sanitiser drops `class`, `style` and `hidden`, so
//! `clean_html` sanitises twice: a first pass keeps those three attributes
//! and normalises the markup (every attribute value double-quoted, every
//! element closed, no comments or scripts), [`drop_unseen`] walks that with
//! a tag pattern that is exact on such markup, and the second pass drops
//! the attributes. Removed entirely:
//!
//! - tracking pixels (see `images`): an `<img>` declared 0–2 px in its
//!   attributes or inline style, or served by a statistics host;
//! - hidden elements (`hidden`, `display:none`, `visibility:hidden`);
//! - share, related-posts and follow blocks marked by the classes
//!   WordPress and its common plugins give them (`sharedaddy`,
//!   `jp-relatedposts`, `addtoany…`).
//!
//! Image captions marked by class (`wp-caption-text`) become
//! `<figcaption>`, so the excerpt knows them as captions once the class
//! is gone. Furniture that only its text gives away ("Twitter Facebook",
//! "Related: …", "Follow us on …", "Photo: …") is judged by the
//! predicates below, which boilerplate removal and the excerpt share.

use super::images;
use regex_lite::Regex;
use std::sync::OnceLock;

/// One start or end tag found by [`next_tag`].
pub(super) struct Tag<'a> {
    /// Byte range of the whole tag in the input.
    pub start: usize,
    pub end: usize,
    /// The element's name, as written.
    pub name: &'a str,
    pub is_end: bool,
    /// Everything between the name and the closing `>`.
    pub attributes: &'a str,
}

/// The next start or end tag at or after `from`: a `<` followed by a
/// name (or `/` and a name), up to the first `>` outside a quoted value.
/// A `<` that starts no tag is text. Linear in the input, which matters
/// for 512 KiB of nested elements; exact on the sanitiser's output, where
/// every `<` in text is escaped.
pub(super) fn next_tag(html: &str, from: usize) -> Option<Tag<'_>> {
    let bytes = html.as_bytes();
    let mut at = from;
    while let Some(offset) = memchr::memchr(b'<', bytes.get(at..)?) {
        let start = at + offset;
        let is_end = bytes.get(start + 1) == Some(&b'/');
        let name_start = start + 1 + usize::from(is_end);
        let name_len = bytes
            .get(name_start..)
            .unwrap_or_default()
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(bytes.len() - name_start);
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
            at = start + 1;
            continue;
        }
        let name_end = name_start + name_len;
        let mut quote = None;
        let mut close = None;
        for (i, b) in bytes[name_end..].iter().enumerate() {
            match (quote, b) {
                (None, b'>') => {
                    close = Some(name_end + i);
                    break;
                }
                (None, b'"' | b'\'') => quote = Some(*b),
                (Some(q), b) if q == *b => quote = None,
                _ => {}
            }
        }
        let close = close?;
        return Some(Tag {
            start,
            end: close + 1,
            name: &html[name_start..name_end],
            is_end,
            attributes: html[name_end..close].trim_end_matches('/'),
        });
    }
    None
}

/// Every tag of `html`, in order.
pub(super) fn tags(html: &str) -> impl Iterator<Item = Tag<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let tag = next_tag(html, pos)?;
        pos = tag.end;
        Some(tag)
    })
}

fn attribute_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?"#)
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    })
}

/// A tag's attributes: lower-case names, entity-decoded values.
pub(super) fn attributes(raw: &str) -> Vec<(String, String)> {
    attribute_re()
        .captures_iter(raw)
        .filter_map(|c| {
            let name = c.get(1)?.as_str().to_ascii_lowercase();
            let value = c
                .get(2)
                .or_else(|| c.get(3))
                .or_else(|| c.get(4))
                .map_or("", |m| m.as_str());
            Some((name, html_escape::decode_html_entities(value).into_owned()))
        })
        .collect()
}

const VOID: &[&str] = &[
    "area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
];

/// Class names (or their starts) of share, related-posts and follow blocks.
const FURNITURE_CLASSES: &[&str] = &[
    "sharedaddy",
    "sd-sharing",
    "sd-like",
    "jp-relatedposts",
    "addtoany",
    "a2a_kit",
    "wp-block-social-links",
    "yarpp-related",
    "crp_related",
    "sharethis",
    "share-buttons",
    "social-share",
];

/// Class names of image captions and credits.
const CAPTION_CLASSES: &[&str] = &[
    "wp-caption-text",
    "wp-element-caption",
    "gallery-caption",
    "blocks-gallery-caption",
    "image-credit",
    "photo-credit",
];

enum Verdict {
    Keep,
    /// The element and everything in it go.
    Drop,
    /// Kept, as a `<figcaption>`.
    Caption,
}

fn judge(name: &str, attrs: &[(String, String)]) -> Verdict {
    let get = |n: &str| attrs.iter().find(|(a, _)| a == n).map(|(_, v)| v.as_str());
    let style = get("style").unwrap_or("");
    if get("hidden").is_some() || images::style_hides(style) {
        return Verdict::Drop;
    }
    if name == "img" {
        let (style_width, style_height) = images::style_size(style);
        let width = get("width")
            .and_then(images::declared_pixels)
            .or(style_width);
        let height = get("height")
            .and_then(images::declared_pixels)
            .or(style_height);
        let from_statistics = get("src")
            .and_then(|s| url::Url::parse(s.trim()).ok())
            .is_some_and(|u| images::is_statistics_url(&u));
        if images::is_pixel_size(width, height) || from_statistics {
            return Verdict::Drop;
        }
        return Verdict::Keep;
    }
    let classes: Vec<String> = get("class")
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    if classes
        .iter()
        .any(|c| FURNITURE_CLASSES.iter().any(|f| c.starts_with(f)))
    {
        return Verdict::Drop;
    }
    if name != "figcaption"
        && classes
            .iter()
            .any(|c| CAPTION_CLASSES.contains(&c.as_str()))
    {
        return Verdict::Caption;
    }
    Verdict::Keep
}

/// Removes pixels, hidden elements and class-marked furniture from HTML
/// the first sanitising pass produced (see the module comment).
pub(super) fn drop_unseen(normalised: &str) -> String {
    let mut out = String::with_capacity(normalised.len());
    // Open elements, and whether each was renamed to a figcaption.
    let mut open: Vec<(String, bool)> = Vec::new();
    let mut pos = 0;
    while let Some(tag) = next_tag(normalised, pos) {
        out.push_str(&normalised[pos..tag.start]);
        pos = tag.end;
        let whole = &normalised[tag.start..tag.end];
        let name = tag.name.to_ascii_lowercase();
        let is_void = VOID.contains(&name.as_str());
        if tag.is_end {
            // An end tag closes the innermost element of its name.
            match open.iter().rposition(|(n, _)| *n == name) {
                Some(i) => {
                    let (_, renamed) = open.remove(i);
                    out.push_str(if renamed { "</figcaption>" } else { whole });
                }
                None => out.push_str(whole),
            }
            continue;
        }
        // Most tags carry nothing to judge.
        let verdict = if name == "img" || !tag.attributes.trim().is_empty() {
            judge(&name, &attributes(tag.attributes))
        } else {
            Verdict::Keep
        };
        match verdict {
            Verdict::Keep => {
                out.push_str(whole);
                if !is_void {
                    open.push((name, false));
                }
            }
            Verdict::Caption => {
                out.push_str("<figcaption>");
                open.push((name, true));
            }
            Verdict::Drop if is_void => {}
            Verdict::Drop => pos = end_of_element(normalised, pos, &name),
        }
    }
    out.push_str(&normalised[pos..]);
    out
}

/// Where the element whose start tag ends at `from` ends (after its end
/// tag), counting nested elements of the same name; the end of the input
/// when it is not closed.
fn end_of_element(html: &str, from: usize, name: &str) -> usize {
    let mut depth = 1usize;
    let mut pos = from;
    while let Some(tag) = next_tag(html, pos) {
        pos = tag.end;
        if !tag.name.eq_ignore_ascii_case(name) {
            continue;
        }
        if tag.is_end {
            depth -= 1;
            if depth == 0 {
                return pos;
            }
        } else {
            depth += 1;
        }
    }
    html.len()
}

/// Longest text, in words, that the text predicates below judge: a longer
/// block is prose whatever it starts with.
const MAX_FURNITURE_WORDS: usize = 16;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '|' || c == '·' || c == '•')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// A row of share buttons: "Share", "Twitter Facebook", "Share on X",
/// "Click to share on LinkedIn (Opens in new window)".
pub fn is_share_block(text: &str) -> bool {
    const NETWORKS: &[&str] = &[
        "share",
        "sharing",
        "tweet",
        "twitter",
        "facebook",
        "linkedin",
        "whatsapp",
        "reddit",
        "pinterest",
        "telegram",
        "tumblr",
        "mastodon",
        "bluesky",
        "threads",
        "email",
        "print",
        "x",
        "pocket",
        "flipboard",
        "messenger",
    ];
    const GLUE: &[&str] = &[
        "this", "on", "via", "to", "click", "opens", "in", "new", "window", "article", "story",
        "post", "page", "more", "like", "loading", "by", "a", "friend", "copy", "link",
    ];
    let w = words(text);
    !w.is_empty()
        && w.len() <= MAX_FURNITURE_WORDS
        && w.iter().any(|w| NETWORKS.contains(&w.as_str()))
        && w.iter()
            .all(|w| NETWORKS.contains(&w.as_str()) || GLUE.contains(&w.as_str()))
}

/// "Related: …", "Related stories", "You may also like", "Read more: …".
pub fn is_related_block(text: &str) -> bool {
    let t = text.trim().to_lowercase();
    const STARTS: &[&str] = &[
        "related:",
        "related stories",
        "related posts",
        "related articles",
        "related news",
        "related reading",
        "related coverage",
        "related content",
        "related links",
        "you may also like",
        "you might also like",
        "read more:",
        "also read:",
        "read also:",
        "see also:",
    ];
    words(&t).len() <= MAX_FURNITURE_WORDS * 2 && STARTS.iter().any(|s| t.starts_with(s))
}

/// "Follow us on Instagram", "Follow News Example on X and Threads".
pub fn is_follow_block(text: &str) -> bool {
    const PLACES: &[&str] = &[
        "us",
        "twitter",
        "x",
        "facebook",
        "instagram",
        "threads",
        "bluesky",
        "mastodon",
        "linkedin",
        "tiktok",
        "youtube",
        "social",
        "telegram",
        "whatsapp",
    ];
    let w = words(text);
    w.len() <= MAX_FURNITURE_WORDS
        && w.first().is_some_and(|f| f == "follow")
        && w.iter().any(|w| PLACES.contains(&w.as_str()))
}

/// A photo caption's credit line: "Photo: …", "Image: …", "Credit: …",
/// "(Photo by …)", "Image source: …".
pub fn is_credit_line(text: &str) -> bool {
    let t = text
        .trim()
        .trim_start_matches(['(', '['])
        .trim()
        .to_lowercase();
    const STARTS: &[&str] = &[
        "photo:",
        "photos:",
        "image:",
        "images:",
        "picture:",
        "illustration:",
        "credit:",
        "credits:",
        "image source",
        "image credit",
        "photo credit",
        "photo by ",
        "photograph by ",
        "photo courtesy",
        "image courtesy",
        "courtesy photo",
    ];
    words(&t).len() <= MAX_FURNITURE_WORDS && STARTS.iter().any(|s| t.starts_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_hidden_elements_and_wordpress_share_blocks_go() {
        let html = concat!(
            r#"<p>Before.<img src="https://news.example.com/pixel.gif" width="1" height="1"></p>"#,
            r#"<p><img src="https://pixel.wp.com/b.gif?host=news.example.com"></p>"#,
            r#"<p><img src="https://news.example.com/s.gif" style="width:1px;height:1px"></p>"#,
            r#"<p><img src="https://news.example.com/h.jpg" hidden=""></p>"#,
            r#"<div style="display:none"><p>Hidden text</p></div>"#,
            r#"<div class="sharedaddy sd-sharing-enabled"><div class="robots-nocontent"><h3>Share this:</h3><div><ul><li>Twitter</li></ul></div></div></div>"#,
            r#"<div class="jp-relatedposts" id="jp-relatedposts"><h3>Related</h3></div>"#,
            r#"<div class="addtoany_share_save_container"><a href="https://www.addtoany.com/share">Share</a></div>"#,
            r#"<p>After.<img src="https://news.example.com/real.jpg" width="300"></p>"#,
        );
        let out = drop_unseen(html);
        assert_eq!(
            out,
            r#"<p>Before.</p><p></p><p></p><p></p><p>After.<img src="https://news.example.com/real.jpg" width="300"></p>"#
        );
    }

    #[test]
    fn tags_are_found_past_quoted_brackets_and_stray_less_thans() {
        let html = r#"a <3 b<img alt="x > y" src='z'><p class="c">t</p ><br/>"#;
        let found: Vec<(&str, bool, &str)> = tags(html)
            .map(|t| (t.name, t.is_end, t.attributes.trim()))
            .collect();
        assert_eq!(
            found,
            [
                ("img", false, r#"alt="x > y" src='z'"#),
                ("p", false, r#"class="c""#),
                ("p", true, ""),
                ("br", false, ""),
            ]
        );
        assert!(tags("<p unclosed").next().is_none());
    }

    #[test]
    fn a_wp_caption_text_paragraph_becomes_a_figcaption() {
        let html = r#"<div class="wp-caption"><img src="https://e.com/a.jpg"><p class="wp-caption-text">The new <em>library</em> wing</p></div><p>Text.</p>"#;
        assert_eq!(
            drop_unseen(html),
            r#"<div class="wp-caption"><img src="https://e.com/a.jpg"><figcaption>The new <em>library</em> wing</figcaption></div><p>Text.</p>"#
        );
    }

    #[test]
    fn furniture_by_its_text() {
        for share in [
            "Share",
            "Share this:",
            "Twitter Facebook",
            "Share on X",
            "Click to share on LinkedIn (Opens in new window)",
            "Facebook | Twitter | Email",
        ] {
            assert!(is_share_block(share), "{share}");
        }
        for prose in [
            "Twitter said on Monday it would change its rules.",
            "Residents can share their views at the meeting.",
            "",
        ] {
            assert!(!is_share_block(prose), "{prose}");
        }
        assert!(is_related_block("Related: Council meets on Monday"));
        assert!(is_related_block("Related stories"));
        assert!(!is_related_block("Relatedly, the mayor spoke."));
        assert!(is_follow_block("Follow us on Instagram"));
        assert!(is_follow_block("Follow News Example on X and Threads"));
        assert!(!is_follow_block("Follow the river north for two miles."));
        assert!(!is_follow_block("Follow the signs on foot."));
        for credit in [
            "Photo: Jane Doe",
            "Image: City of Example",
            "Credit: Reuters",
            "(Photo by Jane Doe/Example Press)",
            "Image source: Wikimedia",
        ] {
            assert!(is_credit_line(credit), "{credit}");
        }
        assert!(!is_credit_line("Photographers gathered at the gate."));
    }
}
