//! An SMTP server as its URL names it: where it is, how the connection is
//! secured, which certificates are trusted, and the credentials.
//!
//! `smtp://host:port` plain; `smtp://host?tls=required` STARTTLS required;
//! `smtp://host?tls=opportunistic` STARTTLS when offered; `smtps://host`
//! implicit TLS. Further parameters: `ca_file=/path/ca.pem` (certificates
//! trusted for this server besides the public and system roots),
//! `tls_pin=/path/relay.pem` (only the relay's own certificate is trusted) and
//! `allow_plain_auth=true` (AUTH over an unencrypted connection; loopback
//! relays only). Unknown parameters are an error, so a typo cannot weaken
//! the connection unnoticed.
//!
//! The password never goes out unencrypted unless the operator says so:
//! credentials without `tls=` mean STARTTLS required, and `tls=none` or
//! `tls=opportunistic` with credentials send AUTH only over TLS (or with
//! `allow_plain_auth=true` to a loopback host).

use lettre::transport::smtp::authentication::Credentials;
use std::net::IpAddr;
use std::path::PathBuf;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    None,
    Opportunistic,
    StartTlsRequired,
    Implicit,
}

#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub(super) credentials: Option<Credentials>,
    /// PEM certificates trusted for this server, besides the public and
    /// system roots.
    pub ca_file: Option<PathBuf>,
    /// The relay's own certificate(s), PEM: the only ones trusted.
    pub tls_pin: Option<PathBuf>,
    /// AUTH may go over an unencrypted connection (a loopback relay only).
    pub allow_plain_auth: bool,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} ({:?}{})",
            self.host,
            self.port,
            self.security,
            if self.credentials.is_some() {
                ", auth"
            } else {
                ""
            }
        )
    }
}

const KNOWN_PARAMETERS: [&str; 4] = ["tls", "ca_file", "tls_pin", "allow_plain_auth"];

impl SmtpTarget {
    /// Errors name the URL with its password masked, what is wrong, and
    /// what to write.
    pub fn parse(raw: &str) -> Result<Self, super::Error> {
        let shown = crate::redact::mask_url(raw);
        let bad = |why: &str| {
            super::Error::SmtpUrl(format!("{shown:?}: {why} (expected smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://user:pass@host)"))
        };
        if has_unencoded_userinfo(raw) {
            return Err(bad(
                "the user name or password holds a character that must be percent-encoded: write / as %2F, ? as %3F, # as %23, @ as %40 (and : in the user name as %3A)",
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
        let host = url
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let mut tls = None;
        let mut ca_file = None;
        let mut tls_pin = None;
        let mut allow_plain_auth = false;
        for (key, value) in url.query_pairs() {
            let repeated = match key.as_ref() {
                "tls" => tls.replace(value.into_owned()).is_some(),
                "ca_file" => ca_file.replace(PathBuf::from(value.as_ref())).is_some(),
                "tls_pin" => tls_pin.replace(PathBuf::from(value.as_ref())).is_some(),
                "allow_plain_auth" => {
                    allow_plain_auth = match value.as_ref() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("allow_plain_auth= must be true or false")),
                    };
                    false
                }
                other => {
                    return Err(bad(&format!(
                        "unknown parameter {other:?}; known: {}",
                        KNOWN_PARAMETERS.join(", ")
                    )))
                }
            };
            if repeated {
                return Err(bad(&format!("parameter {key:?} given twice")));
            }
        }
        let credentials = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some(Credentials::new(
                decode(url.username()),
                decode(url.password().unwrap_or("")),
            ))
        };
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => (Security::Implicit, 465),
            ("smtps", Some(_)) => return Err(bad("smtps:// is implicit TLS: drop tls=")),
            ("smtp", Some("required")) => (Security::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic, 25),
            ("smtp", Some("none")) => (Security::None, 25),
            // Credentials are never sent in the clear by default.
            ("smtp", None) if credentials.is_some() => (Security::StartTlsRequired, 25),
            ("smtp", None) => (Security::None, 25),
            ("smtp", Some(_)) => return Err(bad("tls= must be required, opportunistic or none")),
            _ => return Err(bad("unknown scheme")),
        };
        if security == Security::None && (ca_file.is_some() || tls_pin.is_some()) {
            return Err(bad(
                "ca_file= and tls_pin= need TLS: add tls=required (STARTTLS) or use smtps://",
            ));
        }
        if ca_file.is_some() && tls_pin.is_some() {
            return Err(bad(
                "ca_file= and tls_pin= together: give one (tls_pin= trusts only the relay's own certificate; ca_file= adds a CA to the public ones)",
            ));
        }
        if allow_plain_auth && !is_loopback(&host) {
            return Err(bad(
                "allow_plain_auth=true is only accepted for a loopback host (127.0.0.1, ::1, localhost)",
            ));
        }
        if credentials.is_some() && security == Security::None && !allow_plain_auth {
            return Err(bad(
                "credentials with tls=none would send the password unencrypted: use tls=required, smtps://, or allow_plain_auth=true for a loopback relay",
            ));
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
            ca_file,
            tls_pin,
            allow_plain_auth,
        })
    }
}

/// Whether the part between `://` and the host's `@` holds a `/`, `?` or
/// `#`: a URL parser would end the host there and read the rest of the
/// password as a path, a query or a fragment (or as the host itself).
fn has_unencoded_userinfo(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("://") else {
        return false;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    !rest[..authority_end].contains('@') && rest[authority_end..].contains('@')
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms() {
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.security),
            ("127.0.0.1", 2525, Security::None)
        );
        assert!(t.credentials.is_none());
        let t = SmtpTarget::parse("smtp://user%40x:p%3Ass@relay.example.com?tls=required").unwrap();
        assert_eq!((t.port, t.security), (587, Security::StartTlsRequired));
        assert!(t.credentials.is_some());
        let t =
            SmtpTarget::parse("smtps://u:p@relay.example.com?ca_file=/etc/relay-ca.pem").unwrap();
        assert_eq!((t.port, t.security), (465, Security::Implicit));
        assert_eq!(t.ca_file, Some(PathBuf::from("/etc/relay-ca.pem")));
        for bad in ["http://x", "smtp://", "relay:25", "smtp://x?tls=maybe"] {
            assert!(SmtpTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unencoded_slash_in_the_password_is_named_and_the_password_masked() {
        for (raw, password) in [
            ("smtp://news:pa/ss@relay.example.com:587", "pa/ss"),
            ("smtp://news:12/ss@relay.example.com:587", "12/ss"),
            ("smtps://news:p?ss@relay.example.com", "p?ss"),
            ("smtps://news:p#ss@relay.example.com", "p#ss"),
        ] {
            let err = SmtpTarget::parse(raw).expect_err(raw).to_string();
            assert!(err.contains("news:***@relay.example.com"), "{err}");
            assert!(err.contains("/ as %2F"), "{err}");
            assert!(!err.contains(password), "{err}");
        }
        let t = SmtpTarget::parse("smtp://news:pa%2Fss@relay.example.com:587").unwrap();
        assert!(t.credentials.is_some());
    }

    #[test]
    fn a_pin_is_a_file_needing_tls_and_not_with_a_ca_file() {
        let t = SmtpTarget::parse("smtp://relay.example.com?tls=required&tls_pin=/etc/relay.pem")
            .unwrap();
        assert_eq!(t.tls_pin, Some(PathBuf::from("/etc/relay.pem")));
        for (url, why) in [
            (
                "smtp://relay.example.com?tls_pin=/etc/relay.pem",
                "need TLS",
            ),
            (
                "smtps://relay.example.com?tls_pin=/a.pem&ca_file=/b.pem",
                "together",
            ),
        ] {
            let err = SmtpTarget::parse(url).expect_err(url).to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn credentials_without_tls_mean_starttls_required() {
        let t = SmtpTarget::parse("smtp://u:p@relay.example.com:587").unwrap();
        assert_eq!(t.security, Security::StartTlsRequired);
        assert!(!t.allow_plain_auth);
    }

    #[test]
    fn unknown_or_unsafe_parameters_are_refused_with_the_reason() {
        let cases = [
            ("smtp://relay.example.com?tsl=required", "unknown parameter"),
            ("smtp://relay.example.com?tls=required&tls=none", "twice"),
            ("smtps://relay.example.com?tls=required", "implicit TLS"),
            ("smtp://u:p@relay.example.com?tls=none", "unencrypted"),
            (
                "smtp://u:p@relay.example.com?tls=none&allow_plain_auth=true",
                "loopback",
            ),
            ("smtp://127.0.0.1?allow_plain_auth=yes", "true or false"),
        ];
        for (url, why) in cases {
            let err = SmtpTarget::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains(":p@"), "the password is never shown: {err}");
        }
        let t =
            SmtpTarget::parse("smtp://u:p@127.0.0.1:2525?tls=none&allow_plain_auth=true").unwrap();
        assert!(t.tls_pin.is_none());
        assert_eq!(t.security, Security::None);
        assert!(t.allow_plain_auth);
    }
}
