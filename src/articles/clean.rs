//! Turning an article's HTML (from an operator or a WordPress feed) into
//! something safe and tidy to put in a digest: sanitised with ammonia,
//! WordPress shortcodes and share/related/sign-up boilerplate removed, and a
//! plain-text excerpt cut at a word boundary.

use crate::domain::text::cut_at_word;
use crate::domain::WebUrl;
use regex_lite::Regex;
use std::sync::OnceLock;

/// Longest excerpt, in characters, before the ellipsis.
pub const EXCERPT_CHARS: usize = 280;

fn shortcode_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // Known WordPress shortcodes, plus any `[name attr=…]` or
        // `[name_with_underscore …]` form; a bare "[sic]" or "[1]" in prose stays.
        Regex::new(
            r#"(?i)\[/?(?:(?:mailpoet_form|caption|gallery|embed|audio|video|playlist|wpforms|gravityform|contact-form-7|contact-form|newsletter|subscribe|sharing|jetpack_[a-z_]+|su_[a-z_]+|vc_[a-z_]+|et_pb_[a-z_]+|fusion_[a-z_]+)(?:\s[^\]]*)?|[a-z][a-z0-9-]*_[a-z0-9_-]*(?:\s[^\]]*)?|[a-z][a-z0-9_-]*\s+[a-z_-]+\s*=[^\]]*)\]"#,
        )
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    })
}

fn block_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?is)<(p|h[1-6]|li|figcaption|div|section|aside)(?:\s[^>]*)?>(.*?)</(?:p|h[1-6]|li|figcaption|div|section|aside)>")
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    })
}

fn list_after_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?is)^\s*<(ul|ol)(?:\s[^>]*)?>.*?</(?:ul|ol)>")
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    })
}

/// Text of a block that marks it as site furniture, not article content.
fn is_boilerplate(text: &str) -> bool {
    let t = text.trim().trim_end_matches(':').trim().to_lowercase();
    const EXACT: &[&str] = &[
        "related stories",
        "related posts",
        "related articles",
        "related news",
        "share this",
        "share this news",
        "share this article",
        "share this story",
        "like this",
        "to stay updated sign up now",
        "to stay updated, sign up now",
        "sign up now",
        "subscribe to our newsletter",
    ];
    EXACT.contains(&t.as_str())
        || t.starts_with("read more:")
        || (t.starts_with("the post ") && t.contains("appeared first on"))
        || t.starts_with("also read:")
        || t.starts_with("read also:")
}

fn starts_related_list(text: &str) -> bool {
    text.trim().to_lowercase().starts_with("related")
}

/// Plain text (no tags, entities decoded, whitespace collapsed) of an HTML fragment.
pub fn text_of(html: &str) -> String {
    let stripped = ammonia::Builder::empty().clean(html).to_string();
    let decoded = html_escape::decode_html_entities(&stripped);
    crate::domain::single_line(&decoded)
}

/// Operators may hand in plain text (as copied from a page): every
/// non-empty line becomes an escaped `<p>` paragraph.
pub fn text_to_html(text: &str) -> String {
    text.lines()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", html_escape::encode_text(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// True when the input has no HTML tags at all.
pub fn looks_like_plain_text(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"</?[a-zA-Z][^>]*>").unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    !re.is_match(s)
}

/// Sanitises article HTML. `base_url` makes relative links absolute;
/// `title` lets a heading or paragraph that merely repeats the title go.
pub fn clean_html(html: &str, base_url: Option<&url::Url>, title: &str) -> String {
    let without_shortcodes = shortcode_re().replace_all(html, "");
    let mut builder = ammonia::Builder::default();
    builder
        .add_generic_attributes(&["title"])
        .rm_tags(&["img"])
        .add_tags(&["img", "figure", "figcaption"])
        .add_tag_attributes("img", &["src", "alt", "width", "height"])
        .link_rel(Some("noopener noreferrer"))
        .url_schemes(["http", "https", "mailto"].into_iter().collect());
    if let Some(base) = base_url {
        builder.url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone()));
    } else {
        builder.url_relative(ammonia::UrlRelative::Deny);
    }
    // Tracking pixels: 1×1 images go. An image's source is an http(s) URL
    // or a relative one (made absolute above): `mailto:`, which links may
    // use, is no image.
    builder.attribute_filter(|element, attribute, value| {
        if element == "img"
            && (attribute == "width" || attribute == "height")
            && value.trim() == "1"
        {
            return None;
        }
        if element == "img" && attribute == "src" && !is_web_or_relative(value) {
            return None;
        }
        Some(value.into())
    });
    let sanitised = builder.clean(&without_shortcodes).to_string();
    remove_boilerplate(&sanitised, title)
}

fn is_web_or_relative(value: &str) -> bool {
    match url::Url::parse(value.trim()) {
        Ok(u) => matches!(u.scheme(), "http" | "https"),
        Err(url::ParseError::RelativeUrlWithoutBase) => true,
        Err(_) => false,
    }
}

fn remove_boilerplate(html: &str, title: &str) -> String {
    let title = title.trim().to_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(m) = block_re().find(rest) {
        out.push_str(&rest[..m.start()]);
        let block = m.as_str();
        let text = text_of(block);
        let is_title_repeat =
            !title.is_empty() && text.to_lowercase() == title && out.trim().is_empty();
        if is_boilerplate(&text) || text.is_empty() && !block.contains("<img") || is_title_repeat {
            rest = &rest[m.end()..];
            if starts_related_list(&text) {
                if let Some(list) = list_after_re().find(rest) {
                    rest = &rest[list.end()..];
                }
            }
        } else {
            out.push_str(block);
            rest = &rest[m.end()..];
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// A plain-text excerpt of at most [`EXCERPT_CHARS`] characters, cut at a
/// word boundary. Captions ("Image source: …") are not article text.
pub fn excerpt(clean_html: &str) -> String {
    excerpt_of(clean_html, EXCERPT_CHARS)
}

/// [`excerpt`] of at most `max_chars` characters.
pub fn excerpt_of(clean_html: &str, max_chars: usize) -> String {
    let mut text = String::new();
    for m in block_re().find_iter(clean_html) {
        if m.as_str().starts_with("<figcaption") {
            continue;
        }
        let t = text_of(m.as_str());
        let lower = t.to_lowercase();
        if t.is_empty()
            || lower.starts_with("image source")
            || lower.starts_with("image:")
            || lower.starts_with("photo:")
        {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&t);
        if text.chars().count() > max_chars {
            break;
        }
    }
    if text.is_empty() {
        text = text_of(clean_html);
    }
    cut_at_word(&text, max_chars)
}

/// The first image in the article that is an http(s) URL, if any, for the
/// digest card.
pub fn first_image(clean_html: &str) -> Option<WebUrl> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r#"(?i)<img[^>]*\ssrc="([^"]+)""#)
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    re.captures_iter(clean_html)
        .filter_map(|c| c.get(1))
        .find_map(|m| WebUrl::parse(&html_escape::decode_html_entities(m.as_str())).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_scripts_styles_iframes_and_handlers() {
        let html = r#"<p onclick="x()">Hi<script>alert(1)</script></p><style>p{}</style><iframe src="https://e.com"></iframe><img src="https://e.com/p.gif" width="1" height="1">"#;
        let out = clean_html(html, None, "");
        assert!(!out.contains("script") && !out.contains("onclick") && !out.contains("iframe"));
        assert!(!out.contains("style"));
        assert!(out.contains("<p>Hi</p>"));
        assert!(!out.contains("width=\"1\""));
    }

    #[test]
    fn strips_shortcodes_but_keeps_prose_brackets() {
        let html = r#"<p>Before [sic] and [1]</p><p>[mailpoet_form id="1"]</p>[gallery ids="1,2"]<p>[caption id="a"]Text[/caption]</p>"#;
        let out = clean_html(html, None, "");
        assert!(out.contains("[sic]") && out.contains("[1]"));
        assert!(!out.contains("mailpoet") && !out.contains("gallery") && !out.contains("caption"));
        assert!(out.contains("Text"));
        assert!(!out.contains("<p></p>"));
    }

    #[test]
    fn removes_share_related_and_signup_boilerplate() {
        let html = "<h1>Title</h1><p>Body text.</p><p>Read more: <a href=\"/x\">Other</a></p><h3>Related Stories</h3><ul><li>One</li></ul><p>Share this news</p><p>To Stay Updated Sign up Now</p>";
        let out = clean_html(html, None, "Title");
        assert_eq!(out, "<p>Body text.</p>");
    }

    #[test]
    fn makes_relative_links_absolute() {
        let base = url::Url::parse("https://news.example.com/2024/01/post/").unwrap();
        let out = clean_html(
            r#"<p><a href="/about">a</a><img src="img.jpg"></p>"#,
            Some(&base),
            "",
        );
        assert!(
            out.contains(r#"href="https://news.example.com/about""#),
            "{out}"
        );
        assert!(
            out.contains(r#"src="https://news.example.com/2024/01/post/img.jpg""#),
            "{out}"
        );
    }

    #[test]
    fn images_that_are_not_http_never_become_the_card_image() {
        let html = r#"<p><img src="mailto:a@example.com"><img src="javascript:alert(1)"><img src="data:image/png;base64,AAAA"><img src="vbscript:x"></p><p><img src="https://e.com/real.jpg"></p>"#;
        let base = url::Url::parse("https://e.com/post/").unwrap();
        let out = clean_html(html, Some(&base), "");
        for bad in ["mailto:", "javascript:", "data:", "vbscript:"] {
            assert!(!out.contains(bad), "{bad} kept: {out}");
        }
        assert_eq!(
            first_image(&out).map(|u| u.to_string()).as_deref(),
            Some("https://e.com/real.jpg")
        );
        // Even HTML that did not pass the sanitiser yields no such image.
        assert_eq!(first_image(r#"<img src="mailto:a@example.com">"#), None);
    }

    #[test]
    fn excerpt_cuts_at_a_word_boundary() {
        let long = format!("<p>{}</p>", "word ".repeat(200));
        let e = excerpt(&long);
        assert!(e.ends_with("word…"), "{e}");
        assert!(e.chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(excerpt("<p>Short &amp; sweet.</p>"), "Short & sweet.");
    }
}
