//! Which images of an article a reader sees. A tracking pixel (an image
//! declared 0–2 px wide or high, or served by a statistics host) is no
//! picture: it is removed from the cleaned HTML (see `furniture`), never
//! becomes the digest's card image, and a feed's own image (media:content,
//! enclosure) or an operator's `image_url` is held to the same judgement.
//!
//! The card image keeps the width the article declares for it, so the
//! digest never shows a small image wider than it is.

use crate::domain::WebUrl;

/// Hosts (and, where the host also serves real content, path prefixes)
/// that serve statistics beacons, not pictures. A subdomain of a listed
/// host counts too.
const STATISTICS: &[(&str, &str)] = &[
    // WordPress.com / Jetpack stats.
    ("pixel.wp.com", "/"),
    ("stats.wp.com", "/"),
    // FeedBurner's per-item beacon: feeds.feedburner.com/~r/<feed>/~4/<id>.
    ("feeds.feedburner.com", "/~r/"),
    ("google-analytics.com", "/"),
    ("googletagmanager.com", "/"),
    ("scorecardresearch.com", "/"),
    ("pixel.quantserve.com", "/"),
    ("www.facebook.com", "/tr"),
    ("bat.bing.com", "/"),
];

/// An image served by a statistics host.
pub fn is_statistics_url(url: &url::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    STATISTICS.iter().any(|(h, path)| {
        let host_matches = host == *h
            || host
                .strip_suffix(*h)
                .is_some_and(|rest| rest.ends_with('.'));
        host_matches && url.path().starts_with(path)
    })
}

/// Largest declared width or height, in pixels, of a tracking pixel.
pub const PIXEL_MAX: u32 = 2;

/// A declared dimension ("1", "1px", " 2 ") in whole pixels, if it is one.
/// A percentage or an em size is no pixel count.
pub fn declared_pixels(value: &str) -> Option<u32> {
    let v = value.trim();
    let v = v.strip_suffix("px").unwrap_or(v).trim_end();
    let whole = v.split_once('.').map_or(v, |(w, _)| w);
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A number too long for u32 is certainly no pixel.
    Some(whole.parse().unwrap_or(u32::MAX))
}

/// True when a declared width or height makes the image a tracking pixel.
pub fn is_pixel_size(width: Option<u32>, height: Option<u32>) -> bool {
    width.is_some_and(|w| w <= PIXEL_MAX) || height.is_some_and(|h| h <= PIXEL_MAX)
}

/// The width and height an inline style declares in pixels
/// (`width: 1px; height:1px`).
pub fn style_size(style: &str) -> (Option<u32>, Option<u32>) {
    let (mut width, mut height) = (None, None);
    for declaration in style.split(';') {
        let Some((property, value)) = declaration.split_once(':') else {
            continue;
        };
        let value = value.trim().trim_end_matches("!important").trim();
        match property.trim().to_ascii_lowercase().as_str() {
            "width" | "max-width" => width = declared_pixels(value).or(width),
            "height" | "max-height" => height = declared_pixels(value).or(height),
            _ => {}
        }
    }
    (width, height)
}

/// An inline style that hides its element (`display:none`,
/// `visibility:hidden`).
pub fn style_hides(style: &str) -> bool {
    let compact: String = style
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    compact
        .split(';')
        .any(|d| d.starts_with("display:none") || d.starts_with("visibility:hidden"))
}

/// The article's card image and the width it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadImage {
    pub url: WebUrl,
    pub width: Option<u32>,
}

/// The first real image of the article (an http(s) URL, no tracking pixel
/// by size or host), with its declared width. HTML stored before pixels
/// were removed is judged here too.
pub fn lead_image(clean_html: &str) -> Option<LeadImage> {
    super::furniture::tags(clean_html).find_map(|tag| {
        if tag.is_end || !tag.name.eq_ignore_ascii_case("img") {
            return None;
        }
        let attrs = super::furniture::attributes(tag.attributes);
        let get = |name: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let width = get("width").and_then(declared_pixels);
        let height = get("height").and_then(declared_pixels);
        if is_pixel_size(width, height) {
            return None;
        }
        let url = WebUrl::parse(get("src")?).ok()?;
        if is_statistics_url(url.as_url()) {
            return None;
        }
        Some(LeadImage {
            url,
            width: width.filter(|w| *w > 0),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn statistics_hosts_by_host_and_path() {
        for beacon in [
            "https://pixel.wp.com/b.gif?host=news.example.com&blog=1",
            "https://stats.wp.com/g.gif",
            "http://feeds.feedburner.com/~r/Example/~4/abc123",
            "https://www.google-analytics.com/collect?v=1",
            "https://ssl.google-analytics.com/__utm.gif",
            "https://sb.scorecardresearch.com/p?c1=2",
            "https://www.facebook.com/tr?id=1&ev=PageView",
            "https://PIXEL.WP.COM./b.gif",
        ] {
            assert!(is_statistics_url(&url(beacon)), "{beacon}");
        }
        for picture in [
            "https://i0.wp.com/news.example.com/photo.jpg",
            "https://feeds.feedburner.com/Example",
            "https://www.facebook.com/photo.php?fbid=1",
            "https://notpixel.wp.com.example.org/b.gif",
            "https://news.example.com/pixel.wp.com.jpg",
        ] {
            assert!(!is_statistics_url(&url(picture)), "{picture}");
        }
    }

    #[test]
    fn declared_sizes_in_attributes_and_styles() {
        assert_eq!(declared_pixels("1"), Some(1));
        assert_eq!(declared_pixels(" 2px "), Some(2));
        assert_eq!(declared_pixels("0"), Some(0));
        assert_eq!(declared_pixels("300.5"), Some(300));
        assert_eq!(declared_pixels("100%"), None);
        assert_eq!(declared_pixels("auto"), None);
        assert_eq!(declared_pixels("99999999999"), Some(u32::MAX));
        assert_eq!(style_size("width:1px;height:1px"), (Some(1), Some(1)));
        assert_eq!(
            style_size("border:0; WIDTH: 2px !important"),
            (Some(2), None)
        );
        assert_eq!(style_size("width:100%"), (None, None));
        assert!(style_hides("display: none"));
        assert!(style_hides("color:red; visibility : hidden"));
        assert!(!style_hides("display:block"));
        assert!(is_pixel_size(Some(1), None));
        assert!(is_pixel_size(Some(600), Some(0)));
        assert!(!is_pixel_size(Some(3), Some(3)));
        assert!(!is_pixel_size(None, None));
    }

    #[test]
    fn lead_image_skips_pixels_in_stored_html_and_keeps_the_declared_width() {
        let html = r#"<p><img src="https://news.example.com/pixel.gif" width="1" height="1"></p><p><img src="https://pixel.wp.com/b.gif?host=x"></p><figure><img src="https://news.example.com/real.jpg" alt="A real picture" width="300" height="200"></figure>"#;
        assert_eq!(
            lead_image(html),
            Some(LeadImage {
                url: WebUrl::parse("https://news.example.com/real.jpg").unwrap(),
                width: Some(300),
            })
        );
        let undeclared = r#"<img src="https://news.example.com/a.jpg">"#;
        assert_eq!(lead_image(undeclared).unwrap().width, None);
        assert_eq!(
            lead_image(r#"<img src="https://pixel.wp.com/b.gif">"#),
            None
        );
    }
}
