//! Keeping secrets out of errors and logs: passwords in URLs, tokens in
//! request paths, and the values of secret-bearing settings.

/// Setting names whose values may hold a secret: never printed.
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    last == "secret"
        || last.contains("token")
        || last.contains("password")
        || last == "url"
        || last.ends_with("_url")
        || last == "smtp_servers"
}

/// `url` with its password, if any, replaced by `***`; what cannot be
/// parsed as a URL has everything between `://` and the last `@` of its
/// authority masked instead, so a malformed URL cannot leak a password
/// either.
///
/// A password holding an unencoded `/`, `?` or `#` ends the authority
/// early for a parser (`smtp://u:pa/ss@host`): when an `@` follows the
/// authority, everything up to the last `@` counts as user and password.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let is_stray_at = !rest[..authority_end].contains('@') && rest[authority_end..].contains('@');
    if !is_stray_at {
        if let Ok(mut parsed) = url::Url::parse(url) {
            if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
                return parsed.to_string();
            }
            if parsed.password().is_none() {
                return url.to_string();
            }
        }
    }
    let userinfo_end = if is_stray_at {
        rest.rfind('@')
    } else {
        rest[..authority_end].rfind('@')
    };
    match userinfo_end {
        Some(at) => {
            let (userinfo, host_and_tail) = (&rest[..at], &rest[at + 1..]);
            let user = userinfo.split([':', '/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{user}:***@{host_and_tail}")
        }
        None => url.to_string(),
    }
}

/// `text` with every occurrence of the password of `url` replaced by
/// `***`: for error messages of libraries that may quote the URL they
/// were given.
pub fn scrub_url_password(text: &str, url: &str) -> String {
    let password = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
        .or_else(|| {
            let rest = url.split_once("://")?.1;
            let userinfo = rest.rsplit_once('@')?.0;
            userinfo.split_once(':').map(|(_, p)| p.to_string())
        });
    match password {
        Some(p) if !p.is_empty() => {
            let decoded = percent_encoding::percent_decode_str(&p)
                .decode_utf8_lossy()
                .into_owned();
            text.replace(&p, "***").replace(&decoded, "***")
        }
        _ => text.to_string(),
    }
}

/// The request path with every token segment replaced by `…`: confirmation
/// and unsubscribe links carry a credential in their path, and request logs
/// must not keep it.
pub fn path_for_log(path: &str) -> String {
    const TOKEN_AFTER: &[&str] = &["confirm", "unsubscribe", "one-click"];
    let mut out = String::with_capacity(path.len());
    let mut previous = "";
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if TOKEN_AFTER.contains(&previous) && !segment.is_empty() && segment != "one-click" {
            out.push('…');
        } else {
            out.push_str(segment);
        }
        previous = segment;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            mask_url("mysql://admin:hunter2@db.example.com/x"),
            "mysql://admin:***@db.example.com/x"
        );
        assert_eq!(
            mask_url("postgres://u:p%40ss@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(mask_url("smtp://relay:25"), "smtp://relay:25");
        // Not a URL the parser accepts: still masked.
        assert_eq!(
            mask_url("weird://us er:hunter2@[bad/x"),
            "weird://us er:***@[bad/x"
        );
        // An unencoded / ? or # in the password: masked up to the last @.
        for raw in [
            "smtp://user:pa/ss@relay:587",
            "smtp://user:12/ss@relay:587",
            "smtp://user:p?a#ss@relay:587?tls=required",
        ] {
            let shown = mask_url(raw);
            assert!(shown.starts_with("smtp://user:***@relay:587"), "{shown}");
            assert!(!shown.contains("ss"), "{shown}");
        }
        assert_eq!(
            scrub_url_password(
                "cannot connect to mysql://admin:hunter2@h (hunter2)",
                "mysql://admin:hunter2@h"
            ),
            "cannot connect to mysql://admin:***@h (***)"
        );
    }

    #[test]
    fn token_path_segments_are_redacted() {
        assert_eq!(path_for_log("/confirm/abc123"), "/confirm/…");
        assert_eq!(path_for_log("/confirm/abc123/resend"), "/confirm/…/resend");
        assert_eq!(path_for_log("/unsubscribe/7.sig"), "/unsubscribe/…");
        assert_eq!(
            path_for_log("/newsletter/unsubscribe/one-click/7.sig"),
            "/newsletter/unsubscribe/one-click/…"
        );
        assert_eq!(path_for_log("/api/digests/3"), "/api/digests/3");
        assert_eq!(path_for_log("/"), "/");
    }

    #[test]
    fn secret_keys_are_recognised() {
        for key in [
            "secret",
            "api_token",
            "database_url",
            "smtp_url",
            "smtp_servers",
            "inbound.token",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["site_name", "delivery.concurrency", "bind"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
