//! Bounces that are not RFC 3464 reports: the plain-text notices qmail,
//! Exim and Postfix (without DSN support, or with its own templates) send
//! to the envelope sender. Each names the failed addresses in a fixed
//! layout and says whether it has given up (a failure) or is still trying
//! (a delay warning):
//!
//! - qmail: `Hi. This is the qmail-send program at HOST.`, then per
//!   address `<addr>:` and the remote server's reply; "This is a permanent
//!   error; I've given up" against a delay notice's "still trying".
//! - Exim: `This message was created automatically by mail delivery
//!   software.`, the failed (or not yet delivered) addresses indented on
//!   lines of their own, each followed by the reply, e.g. `SMTP error from
//!   remote mail server after RCPT TO:<addr>: 550 …`; a delay warning says
//!   "has not yet been delivered" and "Delay reason".
//! - Postfix: `This is the mail system at host HOST.`, then `<addr>: host
//!   … said: 550 …`; a delay notice says "THIS IS A WARNING ONLY".
//!
//! Only the text before the returned copy of the message is read, and at
//! most [`MAX_READ`] bytes of it. A failure is permanent for an address
//! only when its reply is a 5xx (or no reply is quoted and the notice says
//! it gave up); a failure with a 4xx reply (a queue lifetime reached) and
//! every delay are transient.

use super::classify::DsnRecipient;
use regex_lite::Regex;
use std::sync::LazyLock;

/// Bytes of the notice read.
const MAX_READ: usize = 64 * 1024;
/// Addresses read from one notice.
const MAX_RECIPIENTS: usize = 50;

const RETURNED_COPY: &[&str] = &[
    "--- Below this line is a copy of the message",
    "--- Below the next line is a copy of the message",
    "--- Below this line is a copy of the mail header",
    "------ This is a copy of the message",
    "------ This is a copy of the body of the message",
];

const DELAY_MARKERS: &[&str] = &[
    "THIS IS A WARNING ONLY",
    "has not yet been delivered",
    "Delay reason",
    "I'm still trying",
    "still trying to deliver",
    "This is a warning message only",
    "will be retried until",
];

/// `<addr>:` at the start of a line (qmail, Postfix).
static BRACKETED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^<([^<>\s@]+@[^<>\s@]+)>:").expect("a valid pattern"));
/// An address alone on an indented line (Exim).
static INDENTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s+<?([^<>\s@]+@[^<>\s@]+?)>?\s*$").expect("a valid pattern"));
/// An enhanced status code, e.g. `5.1.1` or qmail's `(#5.1.1)`.
static ENHANCED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9.])([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[^0-9.]|$)")
        .expect("a valid pattern")
});
/// A basic SMTP reply code followed by a space or a dash.
static BASIC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^0-9.])([245])[0-9]{2}[ -]").expect("a valid pattern"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mta {
    Qmail,
    Exim,
    Postfix,
}

impl Mta {
    fn name(self) -> &'static str {
        match self {
            Mta::Qmail => "qmail",
            Mta::Exim => "exim",
            Mta::Postfix => "postfix",
        }
    }
}

/// The MTA's name and the addresses a plain-text notice reports, or `None`
/// when `body` is not one of the known notices.
pub fn recognise(body: &str) -> Option<(&'static str, Vec<DsnRecipient>)> {
    let mut end = body.len().min(MAX_READ);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let mut notice = &body[..end];
    for marker in RETURNED_COPY {
        if let Some(at) = notice.find(marker) {
            notice = &notice[..at];
        }
    }
    let mta = if notice.contains("This is the qmail-send program") {
        Mta::Qmail
    } else if notice.contains("This message was created automatically by mail delivery software") {
        Mta::Exim
    } else if notice.contains("This is the mail system at host") {
        Mta::Postfix
    } else {
        return None;
    };
    let is_delay = DELAY_MARKERS.iter().any(|m| notice.contains(m));
    let lines: Vec<&str> = notice.lines().collect();
    let mut recipients = Vec::new();
    let mut i = 0;
    while i < lines.len() && recipients.len() < MAX_RECIPIENTS {
        let Some(address) = address_line(mta, lines[i]) else {
            i += 1;
            continue;
        };
        // The address's paragraph: up to a blank line or the next address.
        let mut paragraph = vec![lines[i]];
        let mut j = i + 1;
        while j < lines.len()
            && !lines[j].trim().is_empty()
            && address_line(mta, lines[j]).is_none()
        {
            paragraph.push(lines[j].trim());
            j += 1;
        }
        let text = paragraph.join(" ");
        recipients.push(recipient(address, &text, is_delay));
        i = j;
    }
    if recipients.is_empty() {
        return None;
    }
    Some((mta.name(), recipients))
}

fn address_line(mta: Mta, line: &str) -> Option<String> {
    let re = match mta {
        Mta::Qmail | Mta::Postfix => &*BRACKETED,
        Mta::Exim => &*INDENTED,
    };
    re.captures(line)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

fn recipient(address: String, text: &str, is_delay: bool) -> DsnRecipient {
    let status = ENHANCED
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .or_else(|| {
            BASIC
                .captures(text)
                .and_then(|c| c.get(1))
                .map(|m| format!("{}.0.0", m.as_str()))
        })
        .unwrap_or_else(|| if is_delay { "4.0.0" } else { "5.0.0" }.to_string());
    DsnRecipient {
        recipient: address,
        action: if is_delay { "delayed" } else { "failed" }.to_string(),
        status,
        diagnostic: crate::domain::single_line(text).chars().take(500).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_the_reply_not_from_addresses_or_hosts() {
        let r = recipient(
            "a@example.com".into(),
            "<a@example.com>: host mx.example.com[203.0.113.250] said: 550 5.1.1 unknown",
            false,
        );
        assert_eq!((r.status.as_str(), r.is_permanent()), ("5.1.1", true));
        let r = recipient(
            "a@example.com".into(),
            "Sorry, no mailbox here by that name. (#5.1.1)",
            false,
        );
        assert_eq!(r.status, "5.1.1");
        let r = recipient(
            "a@example.com".into(),
            "10.2.1.5 said: 451 try later",
            false,
        );
        assert_eq!((r.status.as_str(), r.is_permanent()), ("4.0.0", false));
        let r = recipient("a@example.com".into(), "550 5.1.1 gone", true);
        assert!(!r.is_permanent(), "a delay notice is never permanent");
    }

    #[test]
    fn text_that_is_not_a_notice_is_not_a_bounce() {
        assert_eq!(recognise("<a@example.com>: 550 hello"), None);
        assert_eq!(recognise("I am out of the office until Monday."), None);
    }
}
