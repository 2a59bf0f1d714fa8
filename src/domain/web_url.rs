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

/// A feed's address, which may carry the credentials of a password-protected
/// feed (`https://user:password@host/feed.xml`). Everything that prints it
/// — `Display`, `Debug`, `Serialize`, so logs, `feed list`, the API and
/// error messages — shows it masked: the password as `***`, and a user
/// name without a password (often a token) as `***` too. Only
/// [`FeedUrl::secret_url_for_fetching`] and [`FeedUrl::secret_for_storage`]
/// yield the URL as given, and relative links in the feed are read against
/// [`FeedUrl::without_credentials`], so no article link inherits them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FeedUrl(WebUrl);

impl FeedUrl {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        WebUrl::parse(raw).map(Self)
    }

    /// The URL with its credentials: for the HTTP request, nothing else.
    pub fn secret_url_for_fetching(&self) -> &url::Url {
        self.0.as_url()
    }

    /// The URL with its credentials, as the feeds table keeps it (the
    /// poller needs them back).
    pub fn secret_for_storage(&self) -> &str {
        self.0.as_str()
    }

    pub fn has_credentials(&self) -> bool {
        let url = self.0.as_url();
        !url.username().is_empty() || url.password().is_some()
    }

    /// The feed's address without `user:password@`: the base of relative
    /// links in its items, and what may be shown.
    pub fn without_credentials(&self) -> WebUrl {
        let mut url = self.0.as_url().clone();
        // Cannot fail for an http(s) URL with a host, which a WebUrl is.
        let _ = url.set_password(None);
        let _ = url.set_username("");
        WebUrl(url)
    }

    fn masked(&self) -> String {
        let url = self.0.as_url();
        if !self.has_credentials() {
            return url.as_str().to_string();
        }
        let mut masked = url.clone();
        let user = if url.password().is_some() {
            url.username()
        } else {
            "***"
        };
        let _ = masked.set_username(user);
        if url.password().is_some() {
            let _ = masked.set_password(Some("***"));
        }
        masked.to_string()
    }
}

impl TryFrom<String> for FeedUrl {
    type Error = DomainError;

    /// A stored feed URL (it was a `WebUrl` when it was added).
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl std::fmt::Display for FeedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl std::fmt::Debug for FeedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FeedUrl({:?})", self.masked())
    }
}

impl serde::Serialize for FeedUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
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

    #[test]
    fn a_feed_url_never_prints_its_credentials() {
        let feed = FeedUrl::parse("https://reader:hunter2@news.example.com/feed.xml").unwrap();
        for shown in [
            feed.to_string(),
            format!("{feed:?}"),
            serde_json::to_string(&feed).unwrap(),
            format!("{:?}", Some(&feed)),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("news.example.com/feed.xml"), "{shown}");
        }
        assert_eq!(
            feed.to_string(),
            "https://reader:***@news.example.com/feed.xml"
        );
        assert_eq!(feed.secret_url_for_fetching().password(), Some("hunter2"));
        // A user name alone is often a token: masked as well.
        let token = FeedUrl::parse("https://ghp_s3cr3t@news.example.com/f").unwrap();
        assert_eq!(token.to_string(), "https://***@news.example.com/f");
        // Percent-encoded and odd passwords are masked whole.
        let odd = FeedUrl::parse("https://u:p%40ss%3Aw@news.example.com/f").unwrap();
        assert!(!odd.to_string().contains("ss"), "{odd}");
        let plain = FeedUrl::parse("https://news.example.com/f").unwrap();
        assert_eq!(plain.to_string(), "https://news.example.com/f");
    }

    #[test]
    fn links_relative_to_a_protected_feed_do_not_inherit_its_credentials() {
        let feed = FeedUrl::parse("https://reader:hunter2@news.example.com/feeds/all.xml").unwrap();
        let base = feed.without_credentials();
        assert_eq!(base.as_str(), "https://news.example.com/feeds/all.xml");
        let link = WebUrl::parse_with_base("../2024/story", Some(&base)).unwrap();
        assert_eq!(link.as_str(), "https://news.example.com/2024/story");
    }
}
