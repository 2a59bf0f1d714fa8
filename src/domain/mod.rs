//! Types that are valid by construction. Input becomes one of these at the
//! edge (web handler, CLI); past that point nothing handles raw strings.

mod email;
pub mod feed_settings;
mod name;
pub mod text;
pub mod time;
pub mod token;
pub mod web_url;

pub use email::{email_key, masked_address, SubscriberEmail};
pub use name::SubscriberName;
pub use web_url::WebUrl;

/// Why an input was refused. The message is safe to show to the person who
/// typed the input: it names the rule, never internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(&'static str),
}

/// Lifecycle of a subscriber. Only `Confirmed` subscribers receive digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberStatus {
    Pending,
    Confirmed,
    Unsubscribed,
    Bounced,
}

impl SubscriberStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "confirmed" => Self::Confirmed,
            "unsubscribed" => Self::Unsubscribed,
            "bounced" => Self::Bounced,
            _ => return None,
        })
    }
}

/// Removes characters that must never reach a mail header or a page title:
/// every control character (CR and LF included) becomes a space, and runs of
/// whitespace collapse. Used for operator- and feed-supplied text such as
/// article titles, which are not refused but cleaned.
pub fn single_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = true;
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_removes_header_injection() {
        assert_eq!(
            single_line("Hello\r\nBcc: victim@example.com"),
            "Hello Bcc: victim@example.com"
        );
        assert_eq!(single_line("  a\t\tb \u{0} c  "), "a b c");
    }
}
