//! `base_url`: the public address every link in mail and pages starts
//! with. Checked once, when the configuration is read, so that no command
//! runs with a value that would break every link: `news.example.com` (no
//! scheme), `ftp://…`, a query or a fragment (herald appends its own
//! paths, `/confirm/…`, `/unsubscribe/…`, to it), a user name or password
//! (every reader would see it) and an empty value are refused with a
//! message that names the key, the value and what to write instead.

use crate::domain::WebUrl;
use std::net::{IpAddr, SocketAddr};

/// An absolute http(s) URL with a host and no query, fragment or
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BaseUrl(WebUrl);

/// Why a `base_url` value is refused; the text completes "base_url = "…"
/// is refused: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("it is empty")]
    Empty,
    #[error("it has no scheme: links need http:// or https:// in front")]
    NoScheme,
    #[error("it is a {0}: URL, which a reader's browser does not open as a page; links need http:// or https://")]
    NotWeb(String),
    #[error("it is not an absolute http(s) URL with a host name")]
    NotAbsolute,
    #[error("it carries a user name or password, which every reader would see in every link")]
    Credentials,
    #[error("it has a query (?{0}), but herald appends its own paths (/confirm/…, /unsubscribe/…) to base_url")]
    Query(String),
    #[error("it has a fragment (#{0}), but herald appends its own paths (/confirm/…, /unsubscribe/…) to base_url")]
    Fragment(String),
}

impl BaseUrl {
    pub fn parse(raw: &str) -> Result<Self, BaseUrlError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(BaseUrlError::Empty);
        }
        // `news.example.com` is a relative URL and `localhost:8080` parses
        // as the scheme `localhost`: neither was meant as a scheme.
        if !raw.contains("://") {
            return Err(BaseUrlError::NoScheme);
        }
        let parsed = url::Url::parse(raw).map_err(|_| BaseUrlError::NotAbsolute)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(BaseUrlError::NotWeb(parsed.scheme().to_string()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(BaseUrlError::Credentials);
        }
        if let Some(query) = parsed.query() {
            return Err(BaseUrlError::Query(query.to_string()));
        }
        if let Some(fragment) = parsed.fragment() {
            return Err(BaseUrlError::Fragment(fragment.to_string()));
        }
        WebUrl::parse(raw)
            .map(Self)
            .map_err(|_| BaseUrlError::NotAbsolute)
    }

    /// `http://ADDR`: what herald is reached at when `base_url` is unset.
    pub fn http(addr: SocketAddr) -> Self {
        // An IP address and a port always make an http URL with a host.
        match WebUrl::parse(&format!("http://{addr}")) {
            Ok(url) => Self(url),
            Err(_) => unreachable!("http://{addr} is a web URL"),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_https(&self) -> bool {
        self.0.as_url().scheme() == "https"
    }

    /// On this machine only (127.0.0.0/8, ::1, `localhost`): plain http
    /// is fine there, nobody else follows the links.
    pub fn is_loopback(&self) -> bool {
        match self.0.as_url().host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            None => false,
        }
    }
}

impl BaseUrlError {
    /// What to write instead of `raw`: the same address made usable where
    /// that is clear (a scheme added, `ftp` made `https`, the query,
    /// fragment and credentials dropped), otherwise an example.
    pub fn suggestion(&self, raw: &str) -> String {
        const EXAMPLE: &str = "https://news.example.com/newsletter";
        let raw = raw.trim();
        if raw.is_empty() {
            return EXAMPLE.into();
        }
        let candidate = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("https://{raw}")
        };
        let Ok(mut url) = url::Url::parse(&candidate) else {
            return EXAMPLE.into();
        };
        if !matches!(url.scheme(), "http" | "https") && url.set_scheme("https").is_err() {
            return EXAMPLE.into();
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        match BaseUrl::parse(url.as_str()) {
            Ok(fixed) => fixed.as_str().trim_end_matches('/').to_string(),
            Err(_) => EXAMPLE.into(),
        }
    }
}

impl TryFrom<String> for BaseUrl {
    type Error = BaseUrlError;

    fn try_from(s: String) -> Result<Self, BaseUrlError> {
        Self::parse(&s)
    }
}

impl std::str::FromStr for BaseUrl {
    type Err = BaseUrlError;

    fn from_str(s: &str) -> Result<Self, BaseUrlError> {
        Self::parse(s)
    }
}

impl From<BaseUrl> for String {
    fn from(u: BaseUrl) -> String {
        u.as_str().to_string()
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
