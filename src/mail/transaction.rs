//! One mail transaction on an open connection (MAIL, RCPT, DATA, the
//! message), and how a failed command is sorted: which replies are about
//! the recipient, which about the server, and which ask herald to slow down.

use super::{Outgoing, SendError};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

/// Where in the transaction a reply came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Mail,
    Rcpt,
    Data,
    Body,
}

/// One mail transaction: MAIL, RCPT, DATA, the message. On failure, the
/// error and whether the connection may be used again (nothing was sent).
///
/// This is lettre's `AsyncSmtpConnection::send` with differences, all
/// through lettre's public `command` (write a string, read one reply) and
/// `read_response`:
/// - when the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go
///   out in one write and their replies are read in order: two round trips
///   per message instead of four;
/// - lettre dot-stuffs the message one byte at a time (the largest item in
///   a profile of the worker) and writes the end-of-data marker separately;
///   herald finds the lines to stuff with memchr and sends the message and
///   the marker in one write;
/// - an 8bit message to a server that does not announce 8BITMIME goes in
///   its 7bit form (quoted-printable bodies) when the caller has one;
/// - only a 5xx at RCPT is about the recipient (`Permanent`); a 5xx
///   elsewhere, or a capability the server lacks, is `Refused`.
pub(super) async fn transact(
    conn: &mut AsyncSmtpConnection,
    can_pipeline: bool,
    out: &Outgoing<'_>,
) -> Result<Response, (SendError, bool)> {
    let envelope = out.envelope;
    let info = conn.server_info();
    let mut options = Vec::new();
    let is_non_ascii = |a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii();
    if envelope.from().is_some_and(is_non_ascii) || envelope.to().iter().any(is_non_ascii) {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err((
                SendError::Refused(
                    "the address is not ASCII and the server does not announce SMTPUTF8".into(),
                ),
                true,
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    let seven_bit;
    let mut message = out.message;
    if !message.is_ascii() {
        if info.supports_feature(Extension::EightBitMime) {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        } else {
            match out.seven_bit.map(|f| f()) {
                Some(Ok(bytes)) if bytes.is_ascii() => {
                    seven_bit = bytes;
                    message = &seven_bit;
                }
                Some(Err(e)) => {
                    return Err((
                        SendError::Refused(format!(
                            "the server does not announce 8BITMIME and the 7bit form failed: {e}"
                        )),
                        true,
                    ))
                }
                _ => {
                    return Err((
                        SendError::Refused(
                            "the message is 8bit and the server does not announce 8BITMIME".into(),
                        ),
                        true,
                    ))
                }
            }
        }
    }
    let Ok(text) = std::str::from_utf8(message) else {
        // Never built by herald; lettre's own path copes with any bytes.
        return conn
            .send(envelope, message)
            .await
            .map_err(|e| (classify_at(Stage::Body, e), false));
    };
    let mail = Mail::new(envelope.from().cloned(), options);
    let steps = async {
        if can_pipeline {
            let mut commands = mail.to_string();
            for to in envelope.to() {
                commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
            }
            commands.push_str(&Data.to_string());
            // The reply to MAIL, then one per RCPT, then DATA's 354. On a
            // refusal the connection is aborted, so unread replies do not
            // matter (a DATA accepted after a refused RCPT ends with the
            // connection, and its message is discarded).
            conn.command(Raw(&commands))
                .await
                .map_err(|e| (Stage::Mail, e))?;
            for _ in envelope.to() {
                conn.read_response().await.map_err(|e| (Stage::Rcpt, e))?;
            }
            conn.read_response().await.map_err(|e| (Stage::Data, e))?;
        } else {
            conn.command(mail).await.map_err(|e| (Stage::Mail, e))?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), Vec::new()))
                    .await
                    .map_err(|e| (Stage::Rcpt, e))?;
            }
            conn.command(Data).await.map_err(|e| (Stage::Data, e))?;
        }
        conn.command(DataBody(&dot_stuffed(text)))
            .await
            .map_err(|e| (Stage::Body, e))
    };
    match steps.await {
        Ok(response) => Ok(response),
        Err((stage, e)) => {
            // As lettre does after a failed command: QUIT and close.
            conn.abort().await;
            Err((classify_at(stage, e), false))
        }
    }
}

/// A 5xx is about the recipient only at RCPT; elsewhere (MAIL, DATA, the
/// end of data) it is about the server, the sender or the message. Even at
/// RCPT, a reply whose enhanced status is not about the address or the
/// mailbox ("554 5.7.1 Relay access denied": the relay's configuration;
/// "500 5.3.0": the mail system) is the server's, or a relay that refuses to
/// relay would mark the whole list bounced.
fn classify_at(stage: Stage, e: lettre::transport::smtp::Error) -> SendError {
    match classify_error(e) {
        SendError::Permanent(m) if stage != Stage::Rcpt || !is_about_the_recipient(&m) => {
            SendError::Refused(m)
        }
        other => other,
    }
}

/// Whether a permanent reply to RCPT names a problem of this recipient:
/// RFC 3463 enhanced status 5.1.x (the address) or 5.2.x (the mailbox);
/// without an enhanced status, 550, 551 or 553 (RFC 5321's mailbox
/// replies). `text` is lettre's "permanent error (550): 5.1.1 …".
fn is_about_the_recipient(text: &str) -> bool {
    let Some((head, reply)) = text.split_once("): ") else {
        return true;
    };
    let code = head.rsplit('(').next().unwrap_or("");
    let enhanced = reply.split_whitespace().next().unwrap_or("");
    let mut parts = enhanced.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("5"), Some(subject), Some(detail))
            if subject.chars().all(|c| c.is_ascii_digit())
                && !subject.is_empty()
                && !detail.is_empty()
                && detail.chars().all(|c| c.is_ascii_digit()) =>
        {
            subject == "1" || subject == "2"
        }
        _ => matches!(code, "550" | "551" | "553"),
    }
}

/// Whether a permanent reply to RCPT says the recipient does not exist or
/// takes no mail at all, beyond doubt: enhanced status 5.1.1 (no such
/// mailbox), 5.1.10 (null MX) or 5.2.1 (mailbox disabled), or a bare 550
/// whose text says there is no such user. Such an address is bounced at
/// once; any other permanent reply about the recipient (a full mailbox, a
/// 5.1.x or 5.2.x of another kind, "550 mailbox unavailable", which servers
/// also say for policy reasons) only counts towards `bounce_threshold`.
/// `text` is lettre's "permanent error (550): 5.1.1 …".
pub fn names_an_unknown_recipient(text: &str) -> bool {
    let Some((head, reply)) = text.split_once("): ") else {
        return false;
    };
    let code = head.rsplit('(').next().unwrap_or("");
    let enhanced = reply.split_whitespace().next().unwrap_or("");
    let has_enhanced = enhanced.split('.').count() == 3
        && enhanced
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if has_enhanced {
        return matches!(enhanced, "5.1.1" | "5.1.10" | "5.2.1");
    }
    let reply = reply.to_ascii_lowercase();
    code == "550"
        && [
            "no such user",
            "user unknown",
            "unknown user",
            "no such mailbox",
            "no such recipient",
            "recipient unknown",
            "unknown recipient",
            "does not exist",
        ]
        .iter()
        .any(|phrase| reply.contains(phrase))
}

/// Commands already formatted, CRLF included.
struct Raw<'a>(&'a str);

impl std::fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The message, dot-stuffed, followed by the end-of-data marker.
struct DataBody<'a>(&'a str);

impl std::fmt::Display for DataBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        f.write_str("\r\n.\r\n")
    }
}

/// RFC 5321 4.5.2: a line that starts with "." gets one more, exactly as
/// lettre's codec does it (a "." at the very start, or after CRLF).
fn dot_stuffed(text: &str) -> std::borrow::Cow<'_, str> {
    let finder = memchr::memmem::Finder::new(b"\r\n.");
    let bytes = text.as_bytes();
    if !text.starts_with('.') && finder.find(bytes).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    if text.starts_with('.') {
        out.push('.');
    }
    let mut from = 0;
    for at in finder.find_iter(bytes) {
        // Up to and including the CRLF, then the extra dot.
        out.push_str(&text[from..at + 2]);
        out.push('.');
        from = at + 2;
    }
    out.push_str(&text[from..]);
    std::borrow::Cow::Owned(out)
}

/// Sorts a failed SMTP command: a throttling reply (421, 452, or an
/// enhanced status 4.7.x), another 4xx, a 5xx, or a connection that broke
/// (no reply at all).
pub(super) fn classify_error(e: lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    let Some(code) = e.status() else {
        return SendError::Broken(text);
    };
    let code = code.to_string();
    // lettre's text reads "transient error (451): 4.7.1 Try again later".
    let reply = text.split_once("): ").map_or("", |(_, r)| r);
    if code == "421" || code == "452" || (code.starts_with('4') && reply.starts_with("4.7.")) {
        SendError::Throttled(text)
    } else if e.is_permanent() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}

#[cfg(test)]
mod tests {
    /// Tried: each definitive form with and without an enhanced status,
    /// and replies that are about the recipient but not beyond doubt, or
    /// not about the recipient at all.
    #[test]
    fn only_replies_beyond_doubt_name_an_unknown_recipient() {
        for yes in [
            "permanent error (550): 5.1.1 <a@x.example>: Recipient address rejected: User unknown",
            "permanent error (550): 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found",
            "permanent error (550): 5.2.1 The email account that you tried to reach is disabled",
            "permanent error (550): No such user here",
            "permanent error (550): <a@x.example>: User unknown in virtual mailbox table",
            "permanent error (550): Requested action not taken: mailbox does not exist",
        ] {
            assert!(super::names_an_unknown_recipient(yes), "{yes}");
        }
        for no in [
            "permanent error (552): 5.2.2 Mailbox full",
            "permanent error (550): 5.1.2 Bad destination system address",
            "permanent error (550): Requested action not taken: mailbox unavailable",
            "permanent error (554): 5.7.1 Relay access denied",
            "permanent error (553): sorry, that domain isn't in my list of allowed rcpthosts",
            "permanent error (550): 5.7.1 No such user here? Policy says no",
            "no parenthesis at all: user unknown",
        ] {
            assert!(!super::names_an_unknown_recipient(no), "{no}");
        }
    }

    use super::*;

    #[test]
    fn only_replies_about_the_address_or_mailbox_count_against_a_recipient() {
        for recipient in [
            "permanent error (550): 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
            "permanent error (552): 5.2.2 Mailbox full",
            "permanent error (550): Requested action not taken: mailbox unavailable",
            "permanent error (553): mailbox name not allowed",
        ] {
            assert!(is_about_the_recipient(recipient), "{recipient}");
        }
        for server in [
            "permanent error (554): 5.7.1 <a@example.com>: Relay access denied",
            "permanent error (500): 5.3.0 Error: command failed",
            "permanent error (530): 5.7.0 Authentication required",
            "permanent error (550): 5.7.1 Client host rejected",
            "permanent error (554): Transaction failed",
            "permanent error (552): Too many recipients",
        ] {
            assert!(!is_about_the_recipient(server), "{server}");
        }
    }

    #[test]
    fn dot_stuffing_matches_smtp() {
        assert!(matches!(
            dot_stuffed("no dots\r\nhere"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(dot_stuffed(".start\r\n."), "..start\r\n..");
        assert_eq!(
            dot_stuffed("a\r\n.b\r\n..c\r\nd.e\r\n"),
            "a\r\n..b\r\n...c\r\nd.e\r\n"
        );
        // A bare LF does not start a line for SMTP's purposes here, as in lettre.
        assert_eq!(dot_stuffed("a\n.b"), "a\n.b");
        assert_eq!(
            DataBody("x\r\n").to_string(),
            "x\r\n\r\n.\r\n",
            "the end-of-data marker follows"
        );
    }
}
