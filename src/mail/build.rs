use super::Error;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use rand::RngCore;

fn message_id(from: &Mailbox) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{}>", from.email.domain())
}

fn recipient(email: &str, name: Option<&str>) -> Result<Mailbox, Error> {
    let address = email.parse().map_err(|e: lettre::address::AddressError| {
        Error::Build(format!("recipient {email:?}: {e}"))
    })?;
    Ok(Mailbox::new(name.map(str::to_string), address))
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
        .subject(subject)
        .date_now()
        .message_id(Some(message_id(from)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| Error::Build(e.to_string()))
}

/// A digest's two bodies, prepared once per digest: line endings made CRLF
/// and checked to be 8bit-safe, so a subscriber's copy only needs its
/// unsubscribe URL put in, not a fresh transfer encoding of 20 KB.
#[derive(Debug, Clone)]
pub struct DigestBodies {
    html: String,
    text: String,
    is_eight_bit_safe: bool,
}

/// Leaves room on a line for the unsubscribe URL that replaces the
/// placeholder, within SMTP's 998-octet line limit.
const MAX_TEMPLATE_LINE: usize = 700;

fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

impl DigestBodies {
    /// `html` and `text` carry `digest::render::UNSUBSCRIBE_PLACEHOLDER`.
    pub fn prepare(html: &str, text: &str) -> Self {
        let html = crlf(html);
        let text = crlf(text);
        let is_eight_bit_safe = [&html, &text].iter().all(|b| {
            !b.contains('\0') && b.split("\r\n").all(|line| line.len() <= MAX_TEMPLATE_LINE)
        });
        Self {
            html,
            text,
            is_eight_bit_safe,
        }
    }

    /// The two bodies for one subscriber. The URL is HTML-escaped in the HTML part.
    pub fn personalise(&self, unsubscribe_url: &str) -> (Body, Body) {
        let (html, text) =
            crate::digest::render::personalise(&self.html, &self.text, unsubscribe_url);
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
    let list_unsubscribe = format!("<{}>, <{}>", copy.one_click_url, copy.unsubscribe_mailto);
    Message::builder()
        .from(from.clone())
        .to(recipient(copy.to_email, copy.to_name)?)
        .subject(copy.subject)
        .date_now()
        .message_id(Some(message_id(from)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Id"),
            copy.list_id.to_string(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            list_unsubscribe,
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
