//! `return_to`: the page of the news site a reader signed up from (an
//! embedded form says so in a hidden field), so that "Check your inbox"
//! and "You are subscribed" lead back to the article instead of ending
//! nowhere. It travels in the confirmation link's query, so nothing about
//! it is stored; every page that reads it checks it again. Only a page of
//! the news site itself (`site_url`'s host) or of herald (`base_url`'s
//! host) is accepted, `www.` or not: anything else is dropped without a
//! word, so a link to herald cannot be made to send a reader elsewhere.

use crate::config::Config;
use crate::domain::WebUrl;

/// The longest `return_to` kept, in bytes: a confirmation link must stay
/// a link a reader can copy.
pub const MAX_BYTES: usize = 1024;

fn bare(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// `raw` when it is an http(s) page of the site or of herald.
pub fn own_page(config: &Config, raw: Option<&str>) -> Option<WebUrl> {
    let raw = raw?.trim();
    if raw.is_empty() || raw.len() > MAX_BYTES {
        return None;
    }
    let url = WebUrl::parse(raw).ok()?;
    let host = url.as_url().host_str()?.to_ascii_lowercase();
    let own = |other: &str| {
        url::Url::parse(other.trim())
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .is_some_and(|h| bare(&h) == bare(&host))
    };
    (config.site_url.as_deref().is_some_and(own) || own(&config.base_url())).then_some(url)
}

/// `?return_to=…` for a link, or nothing.
pub fn query(page: Option<&WebUrl>) -> String {
    page.map(|p| {
        format!(
            "?return_to={}",
            url::form_urlencoded::byte_serialize(p.as_str().as_bytes()).collect::<String>()
        )
    })
    .unwrap_or_default()
}

/// The first `return_to` of a request's query, if it is one of the site's
/// pages. Read leniently: a query that does not parse, or names the field
/// twice, is no reason to refuse a page.
pub fn from_query(config: &Config, query: Option<&str>) -> Option<WebUrl> {
    let raw = url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned());
    own_page(config, raw.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pages_of_the_site_or_of_herald_are_kept() {
        let config = Config {
            site_url: Some("https://www.dailynews.example/".into()),
            base_url: Some(
                crate::config::BaseUrl::parse("https://letters.dailynews.example").unwrap(),
            ),
            ..Config::default()
        };
        let kept = |raw: &str| own_page(&config, Some(raw)).map(|u| u.to_string());
        assert_eq!(
            kept("https://dailynews.example/2026/12/iran-azerbaijan/").as_deref(),
            Some("https://dailynews.example/2026/12/iran-azerbaijan/")
        );
        assert!(kept("https://www.dailynews.example/world").is_some());
        assert!(kept("https://letters.dailynews.example/archive").is_some());
        // Inputs tried: another site, a look-alike host, a script URL,
        // protocol-relative and relative forms, credentials on another
        // host, an empty value, an over-long one.
        for bad in [
            "https://evil.example/",
            "https://dailynews.example.evil.example/",
            "javascript:alert(1)",
            "//evil.example/",
            "/2026/12/article",
            "https://dailynews.example@evil.example/",
            "",
        ] {
            assert_eq!(kept(bad), None, "{bad}");
        }
        let long = format!("https://dailynews.example/{}", "a".repeat(MAX_BYTES));
        assert_eq!(kept(&long), None);
        assert_eq!(
            query(own_page(&config, Some("https://dailynews.example/a?b=c&d=é")).as_ref()),
            "?return_to=https%3A%2F%2Fdailynews.example%2Fa%3Fb%3Dc%26d%3D%25C3%25A9"
        );
    }
}
