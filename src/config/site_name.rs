//! The name pages and mail call the site by when `site_name` is not set:
//! the news site's own host name (`site_url`, without `www.`), else
//! herald's public host name, else "the newsletter" — never "herald",
//! which is the name of the software, not of anybody's newsletter.

use super::Config;

/// What an unset `site_name` becomes.
pub const LAST_RESORT: &str = "the newsletter";

pub(super) fn fallback(config: &Config) -> String {
    let host_of = |raw: &str| {
        url::Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| u.host_str().map(str::to_owned))
    };
    let public = |host: &str| {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare != "localhost"
            && !bare.ends_with(".localhost")
            && bare.parse::<std::net::IpAddr>().is_err()
    };
    config
        .site_url
        .as_deref()
        .and_then(host_of)
        .or_else(|| host_of(&config.base_url()).filter(|h| public(h)))
        .map(|h| h.strip_prefix("www.").map(str::to_owned).unwrap_or(h))
        .unwrap_or_else(|| LAST_RESORT.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_site_name_is_the_sites_host_never_herald() {
        let named = |site_url: Option<&str>, base_url: Option<&str>| {
            let mut c = Config {
                site_name: String::new(),
                site_url: site_url.map(str::to_owned),
                base_url: base_url.map(|b| super::super::BaseUrl::parse(b).unwrap()),
                ..Config::default()
            };
            c.name_the_site();
            c.site_name
        };
        assert_eq!(
            named(Some("https://www.dailynews.example/"), None),
            "dailynews.example"
        );
        assert_eq!(
            named(None, Some("https://newsletter.dailynews.example")),
            "newsletter.dailynews.example"
        );
        assert_eq!(named(None, None), LAST_RESORT);
        assert_eq!(named(None, Some("http://127.0.0.1:8080")), LAST_RESORT);
        assert_eq!(named(None, Some("http://localhost:8080")), LAST_RESORT);
        assert_eq!(named(Some("not a url"), None), LAST_RESORT);
        let mut given = Config {
            site_name: "  The Daily News ".into(),
            ..Config::default()
        };
        given.name_the_site();
        assert_eq!(given.site_name, "  The Daily News ");
        assert!(!given.site_name_derived);
    }
}
