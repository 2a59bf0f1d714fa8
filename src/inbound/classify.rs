//! What an inbound message is, and which tokens and recipients it carries.
//! Pure: no database, so it can be tested and fuzzed on its own.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use regex_lite::Regex;
use std::sync::LazyLock;

/// What the message reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A delivery report, one entry per recipient it is about: RFC 3464
    /// (`format` "dsn") or a plain-text notice ("qmail", "exim", "postfix").
    Dsn {
        format: &'static str,
        recipients: Vec<DsnRecipient>,
    },
    /// RFC 5965: a complaint (`Feedback-Type` abuse, fraud or other).
    Complaint {
        feedback_type: String,
        /// `Original-Rcpt-To`, when the feedback loop does not redact it.
        recipients: Vec<String>,
    },
    /// An ARF report that is not a complaint (`not-spam`, `virus`).
    OtherFeedback(String),
    /// A message that asks to unsubscribe: a token in the unsubscribe
    /// address it was sent to (`unsubscribe+TOKEN@`) or in its Subject
    /// (`unsubscribe TOKEN`).
    Unsubscribe,
    /// An automatic answer (RFC 3834 `Auto-Submitted`, `X-Autoreply`,
    /// `Precedence: auto_reply`…): an out-of-office reply, a vacation
    /// notice. Never acted on, whichever address it reached.
    AutoReply(String),
    /// Not parsed: over the nesting bound, or not a message at all.
    Unparseable(String),
    /// Anything else (a reply, a mail to the bounce address that reports
    /// no failure, a report of another kind).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// Final-Recipient (else Original-Recipient), as an address.
    pub recipient: String,
    /// `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
    pub action: String,
    /// The enhanced status code, e.g. 5.1.1.
    pub status: String,
    pub diagnostic: String,
}

impl DsnRecipient {
    /// A permanent failure: action failed with a 5.x.x status.
    pub fn is_permanent(&self) -> bool {
        self.action.eq_ignore_ascii_case("failed") && self.status.starts_with('5')
    }
}

/// A classified message.
#[derive(Debug, Clone)]
pub struct Classified {
    pub report: Report,
    /// The unsubscribe tokens that may act for this report, not yet
    /// verified: for a delivery report those of the bounce address
    /// (`bounces+TOKEN@`) and of the returned copy, for a complaint those
    /// of the returned copy, for an unsubscribe those of the unsubscribe
    /// address and the Subject. A token never acts through another channel
    /// than the one it arrived by; other reports carry none.
    pub tokens: Vec<String>,
    /// Identifies the report, so that the same one arriving twice counts
    /// once: its Message-ID, else a SHA-256 of the message.
    pub reference: String,
}

const TOKEN: &str = crate::domain::token::LinkSigner::TOKEN_PATTERN;

/// `local+TOKEN@` with its local part: where a message was delivered to.
static ADDRESS_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"([A-Za-z0-9!#$%&'*/=?^_`{{|}}~.-]+)\+({TOKEN})@"))
        .expect("a valid pattern")
});
/// `local+TOKEN@` in a returned copy of herald's own message.
static PLUS_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\+({TOKEN})@")).expect("a valid pattern"));
/// The token in an unsubscribe URL of a returned List-Unsubscribe header.
static URL_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"/unsubscribe/(?:one-click/)?({TOKEN})(?:[^A-Za-z0-9_.-]|$)"
    ))
    .expect("a valid pattern")
});
/// The Subject herald writes into the mailto link: `unsubscribe TOKEN`.
static SUBJECT_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)\bunsubscribe\s+({TOKEN})(?:\s|$)")).expect("a valid pattern")
});

/// Headers that name where a message was delivered to.
const RECIPIENT_HEADERS: &[&str] = &["To", "Delivered-To", "X-Original-To", "Envelope-To"];

/// The local parts of herald's two inbound addresses (`[inbound]
/// bounce_address` and `unsubscribe_address`): a token after
/// `bounces+` arrived on the bounce channel, after `unsubscribe+` on the
/// unsubscribe channel. When both are the same address, its tokens count
/// as the bounce channel only (they never unsubscribe).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailboxes {
    pub bounce_local: Option<String>,
    pub unsubscribe_local: Option<String>,
}

impl Mailboxes {
    pub fn from_config(config: &crate::config::InboundConfig) -> Self {
        let local = |a: &Option<String>| {
            a.as_deref()
                .and_then(|a| a.rsplit_once('@'))
                .map(|(local, _)| local.trim().trim_start_matches('<').to_ascii_lowercase())
                .filter(|l| !l.is_empty())
        };
        Self {
            bounce_local: local(&config.bounce_address),
            unsubscribe_local: local(&config.unsubscribe_address),
        }
    }

    fn channel_of(&self, local: &str) -> Option<Channel> {
        let is = |l: &Option<String>| l.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(local));
        if is(&self.bounce_local) {
            Some(Channel::Bounce)
        } else if is(&self.unsubscribe_local) {
            Some(Channel::Unsubscribe)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Bounce,
    Unsubscribe,
}

/// Classifies one raw message. Never panics on any input, and never hands
/// mail-parser a message nested deeper than [`super::limits`] allows.
pub fn classify(raw: &[u8], mailboxes: &Mailboxes) -> Classified {
    let reference = reference(raw);
    let unparseable = |why: String| Classified {
        report: Report::Unparseable(why),
        tokens: Vec::new(),
        reference: reference.clone(),
    };
    if let Err(refusal) = super::limits::check_nesting(raw) {
        return unparseable(refusal.to_string());
    }
    let Some(message) = MessageParser::default().parse(raw) else {
        return unparseable("not a parseable message".into());
    };
    let delivered_to: Vec<String> = RECIPIENT_HEADERS
        .iter()
        .flat_map(|h| message.header_values(*h))
        .filter_map(|v| match v {
            mail_parser::HeaderValue::Address(a) => Some(
                a.iter()
                    .filter_map(|addr| addr.address.as_deref())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            mail_parser::HeaderValue::Text(t) => Some(t.to_string()),
            _ => None,
        })
        .collect();
    let report_type = message
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);

    // The copy of herald's message a report returns: headers only
    // (text/rfc822-headers) or the whole message (message/rfc822).
    let mut returned = String::new();
    let mut status_fields = None;
    let mut feedback_fields = None;
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let full = format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase()
        );
        match full.as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                status_fields = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            "message/feedback-report" => {
                feedback_fields = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            "text/rfc822-headers" | "message/rfc822-headers" => {
                returned.push_str(&String::from_utf8_lossy(part.contents()));
            }
            "message/rfc822" | "message/global" => {
                if let PartType::Message(inner) = &part.body {
                    let raw = inner.raw_message();
                    let end = memchr::memmem::find(raw, b"\r\n\r\n")
                        .or_else(|| memchr::memmem::find(raw, b"\n\n"))
                        .unwrap_or(raw.len());
                    returned.push_str(&String::from_utf8_lossy(&raw[..end]));
                }
            }
            _ => {}
        }
    }

    // Tokens by the channel they arrived through.
    let mut bounce_tokens = Vec::new();
    let mut unsubscribe_tokens = Vec::new();
    for text in &delivered_to {
        for c in ADDRESS_TOKEN.captures_iter(text) {
            let (Some(local), Some(token)) = (c.get(1), c.get(2)) else {
                continue;
            };
            match mailboxes.channel_of(local.as_str()) {
                Some(Channel::Bounce) => bounce_tokens.push(token.as_str().to_string()),
                Some(Channel::Unsubscribe) => unsubscribe_tokens.push(token.as_str().to_string()),
                None => {}
            }
        }
    }
    if let Some(subject) = message.subject() {
        collect(&SUBJECT_TOKEN, [subject], &mut unsubscribe_tokens);
    }

    let mut tokens = Vec::new();
    let report = match (report_type.as_deref(), status_fields, feedback_fields) {
        (Some("delivery-status"), Some(fields), _) => {
            tokens.append(&mut bounce_tokens);
            collect(&PLUS_TOKEN, [returned.as_str()], &mut tokens);
            collect(&URL_TOKEN, [unfold(&returned).as_str()], &mut tokens);
            Report::Dsn {
                format: "dsn",
                recipients: dsn_recipients(&fields),
            }
        }
        (Some("feedback-report"), _, Some(fields)) => {
            collect(&PLUS_TOKEN, [returned.as_str()], &mut tokens);
            collect(&URL_TOKEN, [unfold(&returned).as_str()], &mut tokens);
            let blocks = field_blocks(&fields);
            let first = blocks.first().cloned().unwrap_or_default();
            let feedback_type = field(&first, "feedback-type")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let recipients = blocks
                .iter()
                .flat_map(|b| b.iter())
                .filter(|(name, _)| name == "original-rcpt-to")
                .map(|(_, value)| address_of(value))
                .collect();
            match feedback_type.as_str() {
                "abuse" | "fraud" | "other" => Report::Complaint {
                    feedback_type,
                    recipients,
                },
                _ => Report::OtherFeedback(feedback_type),
            }
        }
        (Some(other), _, _) => Report::Other(format!("a report of type {other}")),
        (None, _, _) => {
            let body = message.body_text(0).unwrap_or_default();
            if let Some((format, recipients)) = super::plain_bounce::recognise(&body) {
                // The notice's own returned copy follows it in the body.
                tokens.append(&mut bounce_tokens);
                collect(&PLUS_TOKEN, [body.as_ref()], &mut tokens);
                collect(&URL_TOKEN, [unfold(&body).as_str()], &mut tokens);
                Report::Dsn { format, recipients }
            } else if let Some(why) = auto_reply(&message) {
                Report::AutoReply(why)
            } else if !unsubscribe_tokens.is_empty() {
                tokens.append(&mut unsubscribe_tokens);
                Report::Unsubscribe
            } else if !bounce_tokens.is_empty() {
                Report::Other(
                    "a mail to the bounce address that reports no delivery failure".into(),
                )
            } else {
                Report::Other("no report and no unsubscribe token".into())
            }
        }
    };
    tokens.sort();
    tokens.dedup();
    Classified {
        report,
        tokens,
        reference,
    }
}

/// Why `message` is an automatic answer, if it is one (RFC 3834 and the
/// headers common auto-responders write instead).
fn auto_reply(message: &mail_parser::Message<'_>) -> Option<String> {
    let text = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    // `auto-generated` alone (a machine acting for a person, e.g. a
    // List-Unsubscribe agent) is not an answer: only `auto-replied` is.
    if let Some(v) = text("Auto-Submitted").filter(|v| v.starts_with("auto-replied")) {
        return Some(format!(
            "an automatic reply (Auto-Submitted: {})",
            crate::domain::single_line(&v)
        ));
    }
    if let Some(v) = text("Precedence").filter(|v| v.starts_with("auto_reply")) {
        return Some(format!(
            "an automatic reply (Precedence: {})",
            crate::domain::single_line(&v)
        ));
    }
    for name in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Vacation",
    ] {
        if message.header_raw(name).is_some() {
            return Some(format!("an automatic reply ({name})"));
        }
    }
    if text("X-Autogenerated").is_some_and(|v| v.starts_with("reply")) {
        return Some("an automatic reply (X-Autogenerated: reply)".into());
    }
    None
}

fn collect<'a>(re: &Regex, texts: impl IntoIterator<Item = &'a str>, out: &mut Vec<String>) {
    for text in texts {
        for c in re.captures_iter(text) {
            if let Some(m) = c.get(1) {
                out.push(m.as_str().to_string());
            }
        }
    }
}

fn reference(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let header_end = memchr::memmem::find(raw, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(raw, b"\n\n"))
        .unwrap_or(raw.len());
    let message_id = MessageParser::default()
        .parse_headers(&raw[..header_end])
        .and_then(|m| {
            m.message_id()
                .map(|id| id.chars().take(500).collect::<String>())
        });
    match message_id {
        Some(id) if !id.is_empty() => format!("message-id:{id}"),
        _ => {
            let hash = Sha256::digest(raw);
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
    }
}

fn unfold(headers: &str) -> String {
    headers
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ")
        .replace("\n ", " ")
        .replace("\n\t", " ")
}

/// Groups of `name: value` fields separated by blank lines, names lower-cased.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field(block: &[(String, String)], name: &str) -> Option<String> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// `rfc822; user@example.com` or `<user@example.com>`: the address.
fn address_of(value: &str) -> String {
    let value = value
        .split_once(';')
        .map_or(value, |(_, address)| address)
        .trim();
    value
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// The per-recipient blocks of a delivery-status part (the first block is
/// about the message and names no recipient).
fn dsn_recipients(fields: &str) -> Vec<DsnRecipient> {
    field_blocks(fields)
        .iter()
        .filter_map(|block| {
            let recipient = field(block, "final-recipient")
                .or_else(|| field(block, "original-recipient"))
                .map(|v| address_of(&v))?;
            Some(DsnRecipient {
                recipient,
                action: field(block, "action")
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                status: field(block, "status")
                    .unwrap_or_default()
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
                diagnostic: field(block, "diagnostic-code")
                    .unwrap_or_default()
                    .chars()
                    .take(500)
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "42.AAAAAAAAAAAAAAAAAAAAAA";

    fn mailboxes() -> Mailboxes {
        Mailboxes {
            bounce_local: Some("bounces".into()),
            unsubscribe_local: Some("unsubscribe".into()),
        }
    }

    fn classify(raw: &[u8]) -> Classified {
        super::classify(raw, &mailboxes())
    }

    fn dsn(action: &str, status: &str, to: &str, returned: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail\r\nMessage-ID: <dsn-1@mx.example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; reader@example.com\r\nAction: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{returned}\r\n--B--\r\n"
        )
    }

    #[test]
    fn a_dsn_gives_its_recipients_and_the_token_of_the_returned_headers() {
        let returned = format!(
            "From: news@herald.test\r\nList-Unsubscribe: <https://news.example/unsubscribe/one-click/{T}>,\r\n <mailto:news@herald.test?subject=unsubscribe%20{T}>"
        );
        let c = classify(dsn("failed", "5.1.1", "news@herald.test", &returned).as_bytes());
        let Report::Dsn { recipients, .. } = &c.report else {
            panic!("{:?}", c.report)
        };
        assert_eq!(recipients.len(), 1);
        assert_eq!(recipients[0].recipient, "reader@example.com");
        assert!(recipients[0].is_permanent());
        assert_eq!(c.tokens, [T]);
        assert_eq!(c.reference, "message-id:dsn-1@mx.example.net");
    }

    #[test]
    fn a_dsn_to_a_verp_address_carries_its_token() {
        let c =
            classify(dsn("delayed", "4.4.1", &format!("bounces+{T}@herald.test"), "").as_bytes());
        let Report::Dsn { recipients, .. } = &c.report else {
            panic!("{:?}", c.report)
        };
        assert!(!recipients[0].is_permanent());
        assert_eq!(c.tokens, [T]);
    }

    #[test]
    fn an_unsubscribe_mail_is_recognised_by_address_or_subject_only() {
        let by_subject = format!("From: a@example.com\r\nTo: news@herald.test\r\nSubject: unsubscribe {T}\r\n\r\nbye\r\n");
        let c = classify(by_subject.as_bytes());
        assert_eq!(c.report, Report::Unsubscribe);
        assert_eq!(c.tokens, [T]);
        let by_address = format!(
            "From: a@example.com\r\nTo: <unsubscribe+{T}@herald.test>\r\nSubject: hello\r\n\r\n"
        );
        assert_eq!(classify(by_address.as_bytes()).tokens, [T]);
        // A reply quoting the digest's footer is not an unsubscribe.
        let reply = format!("From: a@example.com\r\nTo: news@herald.test\r\nSubject: Re: Today's news\r\n\r\n> https://news.example/unsubscribe/{T}\r\n");
        let c = classify(reply.as_bytes());
        assert!(matches!(c.report, Report::Other(_)), "{:?}", c.report);
        assert!(c.tokens.is_empty());
    }

    #[test]
    fn garbage_is_other_and_never_panics() {
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"Content-Type: multipart/report\r\n\r\n--",
            &[0xff; 64],
        ] {
            let c = classify(raw);
            assert!(c.tokens.is_empty());
            assert!(!c.reference.is_empty());
        }
    }
}
