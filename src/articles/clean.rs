//! Turning an article's HTML (from an operator or a WordPress feed) into
//! something safe and tidy to put in a digest: sanitised with ammonia,
//! tracking pixels, hidden elements and share/related/follow furniture
//! removed (see `furniture`), WordPress shortcodes and sign-up boilerplate
//! removed. The excerpt is built from the cleaned blocks (see `excerpt`),
//! the card image is the first real image (see `images`).

use super::furniture;
use super::images;
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
pub(super) fn is_boilerplate(text: &str) -> bool {
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
/// Two passes (see `furniture`): the first keeps what judging needs,
/// the second is the sanitiser proper.
pub fn clean_html(html: &str, base_url: Option<&url::Url>, title: &str) -> String {
    let without_shortcodes = shortcode_re().replace_all(html, "");
    // Without an image or one of the attributes judged there is nothing to
    // judge, and one pass does.
    let seen = if has_something_to_judge(&without_shortcodes) {
        let normalised = sanitiser(base_url, true)
            .clean(&without_shortcodes)
            .to_string();
        std::borrow::Cow::Owned(furniture::drop_unseen(&normalised))
    } else {
        without_shortcodes
    };
    let sanitised = sanitiser(base_url, false).clean(&seen).to_string();
    remove_boilerplate(&sanitised, title)
}

/// `<image>` is read as `<img>` by the HTML parser.
fn has_something_to_judge(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    ["<img", "<image", "class", "style", "hidden"]
        .iter()
        .any(|needle| memchr::memmem::find(lower.as_bytes(), needle.as_bytes()).is_some())
}

/// The sanitiser. `for_judging`: also keep `class`, `style` and `hidden`,
/// which tell pixels, hidden elements and furniture apart.
fn sanitiser(base_url: Option<&url::Url>, for_judging: bool) -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::default();
    builder
        .add_generic_attributes(&["title"])
        .rm_tags(&["img"])
        .add_tags(&["img", "figure", "figcaption"])
        .add_tag_attributes("img", &["src", "alt", "width", "height"])
        .link_rel(Some("noopener noreferrer"))
        .url_schemes(["http", "https", "mailto"].into_iter().collect());
    if for_judging {
        builder.add_generic_attributes(&["class", "style", "hidden"]);
    }
    match base_url {
        Some(base) => builder.url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone())),
        None => builder.url_relative(ammonia::UrlRelative::Deny),
    };
    // An image's source is an http(s) URL or a relative one (made
    // absolute above): `mailto:`, which links may use, is no image. Its
    // declared size stays only as a number of pixels, which the digest
    // uses to never show it wider than it is.
    builder.attribute_filter(move |element, attribute, value| {
        if element == "img" && attribute == "src" && !is_web_or_relative(value) {
            return None;
        }
        if element == "img" && (attribute == "width" || attribute == "height") && !for_judging {
            return images::declared_pixels(value).map(|px| px.to_string().into());
        }
        Some(value.into())
    });
    builder
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
        let is_furniture = is_boilerplate(&text)
            || furniture::is_share_block(&text)
            || furniture::is_related_block(&text)
            || furniture::is_follow_block(&text);
        if is_furniture || text.is_empty() && !block.contains("<img") || is_title_repeat {
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

/// A plain-text excerpt of at most [`EXCERPT_CHARS`] characters, built
/// from the article's prose blocks (see `excerpt`).
pub fn excerpt(clean_html: &str) -> String {
    excerpt_of(clean_html, EXCERPT_CHARS)
}

/// [`excerpt`] of at most `max_chars` characters.
pub fn excerpt_of(clean_html: &str, max_chars: usize) -> String {
    super::excerpt::excerpt_of(clean_html, max_chars)
}

/// The first real image in the article (an http(s) URL, no tracking
/// pixel), for the digest card.
pub fn first_image(clean_html: &str) -> Option<WebUrl> {
    images::lead_image(clean_html).map(|i| i.url)
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
        // The 1×1 image is gone, not merely its size.
        assert!(!out.contains("<img") && !out.contains("p.gif"), "{out}");
    }

    /// Each input names a way a tracking pixel is written.
    #[test]
    fn tracking_pixels_are_removed_and_never_become_the_card_image() {
        let base = url::Url::parse("https://news.example.com/2024/01/post/").unwrap();
        for (input, pixel) in [
            (
                "1x1 attributes",
                r#"<img src="/pixel.gif" width="1" height="1">"#,
            ),
            (
                "0x0 attributes",
                r#"<img src="/pixel.gif" width="0" height="0">"#,
            ),
            ("2px height only", r#"<img src="/pixel.gif" height="2px">"#),
            (
                "1px inline style",
                r#"<img src="/pixel.gif" style="width:1px;height:1px">"#,
            ),
            (
                "hidden attribute",
                r#"<img src="/big.jpg" width="600" hidden>"#,
            ),
            (
                "display none",
                r#"<img src="/big.jpg" style="display: none;">"#,
            ),
            (
                "visibility hidden",
                r#"<img src="/big.jpg" style="visibility:hidden">"#,
            ),
            (
                "jetpack stats",
                r#"<img src="https://pixel.wp.com/b.gif?host=news.example.com&#038;blog=1&#038;post=42" width="1" height="1" style="display: none;" />"#,
            ),
            (
                "wp stats, no size",
                r#"<img src="https://pixel.wp.com/b.gif?host=news.example.com">"#,
            ),
            (
                "stats.wp.com",
                r#"<img src="https://stats.wp.com/g.gif?v=1">"#,
            ),
            (
                "feedburner beacon",
                r#"<img src="http://feeds.feedburner.com/~r/NewsExample/~4/abc123" alt="">"#,
            ),
            (
                "google analytics",
                r#"<img src="https://www.google-analytics.com/collect?v=1&tid=UA-1">"#,
            ),
            (
                "inside a hidden div",
                r#"<div style="display:none"><img src="/big.jpg"></div>"#,
            ),
            (
                "image tag, 1x1",
                r#"<image src="/pixel.gif" width=1 height=1>"#,
            ),
        ] {
            let html = format!(
                r#"<p>{pixel}Text.</p><p><img src="https://news.example.com/real.jpg" width="300" height="200"></p>"#
            );
            let out = clean_html(&html, Some(&base), "");
            assert!(
                !out.contains("pixel") && !out.contains("big.jpg"),
                "{input}: {out}"
            );
            assert!(
                !out.contains("stats.wp") && !out.contains("feedburner"),
                "{input}: {out}"
            );
            assert!(!out.contains("google-analytics"), "{input}: {out}");
            assert_eq!(out.matches("<img").count(), 1, "{input}: {out}");
            let lead = images::lead_image(&out).unwrap_or_else(|| panic!("{input}: {out}"));
            assert_eq!(
                lead.url.as_str(),
                "https://news.example.com/real.jpg",
                "{input}"
            );
            assert_eq!(lead.width, Some(300), "{input}: the declared width is kept");
        }
    }

    #[test]
    fn image_sizes_are_kept_as_whole_pixels_only() {
        let out = clean_html(
            r#"<p><img src="https://e.com/a.jpg" width="320px" height="50%"></p>"#,
            None,
            "",
        );
        assert_eq!(out, r#"<p><img src="https://e.com/a.jpg" width="320"></p>"#);
    }

    /// The issue's example: a heading, a list, two kinds of caption, a
    /// credit, Jetpack's share and related blocks, a "Related:" line and a
    /// follow-us line.
    #[test]
    fn wordpress_furniture_is_removed_and_the_excerpt_keeps_the_shape() {
        let html = concat!(
            r#"<h2>What changes for residents</h2>"#,
            r#"<ul><li>Library hours extended on Sundays</li><li>Property tax unchanged</li></ul>"#,
            r#"<figure class="wp-block-image"><img src="https://e.com/hall.jpg"><figcaption class="wp-element-caption">Council chamber</figcaption></figure>"#,
            r#"<div class="wp-caption"><img src="https://e.com/mayor.jpg"><p class="wp-caption-text">The mayor at the vote</p></div>"#,
            r#"<p>Photo: Jane Doe</p>"#,
            r#"<p>The council approved the budget.</p>"#,
            r#"<div class="sharedaddy sd-sharing-enabled"><div class="sd-block"><h3 class="sd-title">Share this:</h3><div class="sd-content"><ul><li><a href="https://e.com/?share=twitter">Twitter</a></li><li><a href="https://e.com/?share=facebook">Facebook</a></li></ul></div></div></div>"#,
            r#"<div class="addtoany_share_save_container addtoany_content"><div class="a2a_kit"><a href="https://www.addtoany.com/add_to/x">X</a></div></div>"#,
            r#"<p>Twitter Facebook</p><p>Share on X</p>"#,
            r#"<p>Related: <a href="https://e.com/next">Council meets again</a></p>"#,
            r#"<div id="jp-relatedposts" class="jp-relatedposts"><h3 class="jp-relatedposts-headline"><em>Related</em></h3></div>"#,
            r#"<p>Follow us on Instagram</p>"#,
        );
        let out = clean_html(html, None, "");
        for furniture in [
            "Share",
            "Twitter",
            "Facebook",
            "addtoany",
            "Related",
            "Council meets",
            "Follow us",
            "class=",
        ] {
            assert!(!out.contains(furniture), "{furniture}: {out}");
        }
        // Captions and credits stay in the article, as captions.
        assert!(
            out.contains("<figcaption>The mayor at the vote</figcaption>"),
            "{out}"
        );
        assert!(out.contains("Photo: Jane Doe"), "{out}");
        assert_eq!(
            excerpt(&out),
            "What changes for residents. Library hours extended on Sundays. Property tax unchanged. The council approved the budget."
        );
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
