use super::Error;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
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

/// One subscriber's copy of a digest.
pub struct DigestCopy<'a> {
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    pub subject: &'a str,
    pub html: String,
    pub text: String,
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
        .multipart(MultiPart::alternative_plain_html(copy.text, copy.html))
        .map_err(|e| Error::Build(e.to_string()))
}
