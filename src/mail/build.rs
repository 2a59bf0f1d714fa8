use super::Error;
use crate::digest::slots::{SlottedBodies, SlottedBody};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use rand::RngCore;

/// `<32 hex digits@from's domain>`, fresh for every copy.
pub(super) fn message_id(from: &Mailbox) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let domain = from.email.domain();
    let mut id = String::with_capacity(35 + domain.len());
    id.push('<');
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    id.push('@');
    id.push_str(domain);
    id.push('>');
    id
}

/// RFC 2369 List-Unsubscribe with the RFC 8058 one-click URL first.
pub(super) fn list_unsubscribe_header(
    one_click_url: &str,
    unsubscribe_mailto: &str,
) -> HeaderValue {
    HeaderValue::new(
        HeaderName::new_from_ascii_str("List-Unsubscribe"),
        format!("<{one_click_url}>, <{unsubscribe_mailto}>"),
    )
}

/// RFC 5322's limit on a line, CRLF excluded.
pub(super) const MAX_HEADER_LINE: usize = 998;

/// Longest Subject or display name herald writes, in characters. lettre
/// folds a header at spaces and inside RFC 2047 words, but never inside a
/// long ASCII word: at most 900 characters keeps even one such word (with
/// "Subject: " before it) within [`MAX_HEADER_LINE`] octets, whatever the
/// caller passes in.
pub(super) const MAX_HEADER_TEXT_CHARS: usize = 900;

/// Longest display name in a To header, in characters: quoting may double
/// it, and the address (at most 254 octets) shares its line.
const MAX_NAME_CHARS: usize = 200;

/// A Subject cut to [`MAX_HEADER_TEXT_CHARS`]; the usual short text is
/// borrowed as it is.
pub(super) fn within_header_line(text: &str) -> std::borrow::Cow<'_, str> {
    cut_chars(text, MAX_HEADER_TEXT_CHARS)
}

fn cut_chars(text: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max_chars {
        return std::borrow::Cow::Borrowed(text);
    }
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => std::borrow::Cow::Owned(text[..end].to_string()),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// The first header line longer than [`MAX_HEADER_LINE`] octets in a
/// formatted message, if any.
pub(super) fn overlong_header_line(message: &[u8]) -> Option<usize> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    message[..end]
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
        .find(|len| *len > MAX_HEADER_LINE)
}

pub(super) fn recipient(email: &str, name: Option<&str>) -> Result<Mailbox, Error> {
    let address = email.parse().map_err(|e: lettre::address::AddressError| {
        Error::Build(format!("recipient {email:?}: {e}"))
    })?;
    Ok(Mailbox::new(
        name.map(|n| cut_chars(n, MAX_NAME_CHARS).into_owned()),
        address,
    ))
}

#[derive(askama::Template)]
#[template(path = "confirm.html")]
struct ConfirmHtml<'a> {
    site_name: &'a str,
    confirm_url: &'a str,
    ttl_hours: u64,
}

#[derive(askama::Template)]
#[template(path = "confirm.txt")]
struct ConfirmText<'a> {
    site_name: &'a str,
    confirm_url: &'a str,
    ttl_hours: u64,
}

/// The confirmation mail's HTML and text bodies, for its link.
pub fn confirmation_bodies(
    site_name: &str,
    confirm_url: &str,
    ttl_hours: u64,
) -> Result<(String, String), Error> {
    use askama::Template;
    let render = |e: askama::Error| Error::Build(format!("the confirmation mail: {e}"));
    let html = ConfirmHtml {
        site_name,
        confirm_url,
        ttl_hours,
    }
    .render()
    .map_err(render)?;
    let text = ConfirmText {
        site_name,
        confirm_url,
        ttl_hours,
    }
    .render()
    .map_err(render)?;
    Ok((html, text))
}

/// The confirmation (double opt-in) mail, already rendered.
pub fn confirmation_message(
    from: &Mailbox,
    to: &str,
    subject: &str,
    html: String,
    text: String,
) -> Result<Message, Error> {
    Message::builder()
        .from(from.clone())
        .to(recipient(to, None)?)
        .subject(within_header_line(subject))
        .date_now()
        .message_id(Some(message_id(from)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| Error::Build(e.to_string()))
}

/// A digest's two bodies, prepared once per digest: line endings made CRLF
/// and checked to be 8bit-safe, so a subscriber's copy only needs its
/// unsubscribe URL put in, not a fresh transfer encoding of 20 KB.
///
/// `DigestTemplate` (template.rs) supersedes `DigestBodies::personalise` +
/// `digest_message` in the worker; both stay, as the template's fallback for
/// digests that are not 8bit-safe and as the one place the digest's headers
/// are decided. `DigestCopy` can become `pub(super)` once the worker renders
/// through `DigestTemplate`.
#[derive(Debug, Clone)]
pub struct DigestBodies {
    html: SlottedBody,
    text: SlottedBody,
    is_eight_bit_safe: bool,
}

/// Leaves room on a line for the unsubscribe URL that goes into its slot,
/// within SMTP's 998-octet line limit.
const MAX_TEMPLATE_LINE: usize = 700;

fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

impl DigestBodies {
    /// `bodies` with only unsubscribe slots left.
    pub fn prepare(bodies: &SlottedBodies) -> Self {
        let html = bodies.html.map_segments(crlf);
        let text = bodies.text.map_segments(crlf);
        let is_eight_bit_safe = [&html, &text].iter().all(|b| {
            let joined = b.fill(|_| "");
            !joined.contains('\0')
                && joined
                    .split("\r\n")
                    .all(|line| line.len() <= MAX_TEMPLATE_LINE)
        });
        Self {
            html,
            text,
            is_eight_bit_safe,
        }
    }

    pub(super) fn is_eight_bit_safe(&self) -> bool {
        self.is_eight_bit_safe
    }

    /// The HTML body with CRLF line endings, cut at its unsubscribe slots.
    pub(super) fn html(&self) -> &SlottedBody {
        &self.html
    }

    /// The text body with CRLF line endings, cut at its unsubscribe slots.
    pub(super) fn text(&self) -> &SlottedBody {
        &self.text
    }

    /// The two bodies for one subscriber. The URL is HTML-escaped in the HTML part.
    pub fn personalise(&self, unsubscribe_url: &str) -> (Body, Body) {
        let escaped = html_escape::encode_double_quoted_attribute(unsubscribe_url);
        let html = self.html.fill(|_| escaped.as_ref());
        let text = self.text.fill(|_| unsubscribe_url);
        if self.is_eight_bit_safe && unsubscribe_url.len() < 250 {
            (
                Body::dangerous_pre_encoded(html.into_bytes(), ContentTransferEncoding::EightBit),
                Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::EightBit),
            )
        } else {
            (Body::new(html), Body::new(text))
        }
    }
}

/// One subscriber's copy of a digest.
pub struct DigestCopy<'a> {
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    pub subject: &'a str,
    pub html: Body,
    pub text: Body,
    /// RFC 8058 one-click URL (https in production).
    pub one_click_url: &'a str,
    /// mailto: fallback for List-Unsubscribe.
    pub unsubscribe_mailto: String,
    /// `<digest.site.example>` style List-Id.
    pub list_id: &'a str,
}

pub fn digest_message(from: &Mailbox, copy: DigestCopy<'_>) -> Result<Message, Error> {
    Message::builder()
        .from(from.clone())
        .to(recipient(copy.to_email, copy.to_name)?)
        .subject(within_header_line(copy.subject))
        .date_now()
        .message_id(Some(message_id(from)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Id"),
            copy.list_id.to_string(),
        ))
        .raw_header(list_unsubscribe_header(
            copy.one_click_url,
            &copy.unsubscribe_mailto,
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Precedence"),
            "bulk".to_string(),
        ))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(copy.text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(copy.html),
                ),
        )
        .map_err(|e| Error::Build(e.to_string()))
}
