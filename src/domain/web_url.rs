//! `WebUrl`: the one type for a URL that herald puts on a page or in a mail
//! (an article's link, its image, a feed's site link). Whatever the source
//! (the API, the CLI, a feed item's link, a JSON Feed `url`, a channel link,
//! an enclosure, the first `<img>` of an article), only an absolute http(s)
//! URL with a host gets through: `javascript:`, `data:`, `vbscript:`,
//! `mailto:` and relative URLs without a base never reach a digest.

use super::DomainError;

/// Longest URL kept. Longer ones are refused: no reader clicks a 2 KB link,
/// and a mail line must stay under 998 octets.
pub const MAX_URL_BYTES: usize = 2048;

const NOT_WEB: DomainError = DomainError::Invalid("the URL must be an absolute http(s) URL");
const TOO_LONG: DomainError = DomainError::Invalid("the URL is too long (at most 2048 bytes)");

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct WebUrl(url::Url);

impl WebUrl {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::parse_with_base(raw, None)
    }

    /// `raw` read against `base`, as a relative link in a feed item or an
    /// article is; the result must still be http(s).
    pub fn parse_with_base(raw: &str, base: Option<&WebUrl>) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if raw.len() > MAX_URL_BYTES {
            return Err(TOO_LONG);
        }
        let url = match base {
            Some(base) => base.0.join(raw),
            None => url::Url::parse(raw),
        }
        .map_err(|_| NOT_WEB)?;
        Self::from_url(url)
    }

    fn from_url(url: url::Url) -> Result<Self, DomainError> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(NOT_WEB);
        }
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(TOO_LONG);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }
}

impl std::fmt::Display for WebUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl AsRef<str> for WebUrl {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_with_a_host_are_web_urls() {
        for good in [
            "https://news.example.com/a?b=c#d",
            "http://127.0.0.1:8080/x",
            "  https://e.com/padded  ",
        ] {
            assert!(WebUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "vbscript:msgbox(1)",
            "mailto:a@example.com",
            "file:///etc/passwd",
            "ftp://e.com/x",
            "/relative",
            "//e.com/no-scheme",
            "http://",
            "",
        ] {
            assert!(WebUrl::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("https://e.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(WebUrl::parse(&long).is_err());
    }

    #[test]
    fn relative_links_are_read_against_the_base_and_still_checked() {
        let base = WebUrl::parse("https://news.example.com/2024/post/").unwrap();
        let rel = WebUrl::parse_with_base("img.jpg", Some(&base)).unwrap();
        assert_eq!(rel.as_str(), "https://news.example.com/2024/post/img.jpg");
        for bad in [
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "mailto:x@e.com",
        ] {
            assert!(WebUrl::parse_with_base(bad, Some(&base)).is_err(), "{bad}");
        }
    }
}
