//! A small pool of SMTP connections whose sockets herald opens itself.
//!
//! Why not lettre's pooled transport: lettre 0.11.23 writes the message body
//! and the end-of-data marker in two writes without TCP_NODELAY, so every
//! message waits ~40 ms for a delayed ACK (23 msg/s on one connection).
//! herald opens the TCP socket with `set_nodelay(true)` (wrapping it in TLS
//! itself for implicit TLS) and hands it to lettre's
//! `AsyncSmtpConnection::connect_with_transport`, which still does EHLO,
//! STARTTLS, AUTH and the SMTP dialogue. Upstream merged a nodelay fix
//! (PR #1159); when a lettre release carries it, drop this module and go
//! back to `AsyncSmtpTransport` with its pool.

use super::target::Security;
pub use super::target::SmtpTarget;
use super::tls::{is_certificate_error, TlsStream, Trust};
use super::{Outgoing, SendError};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

struct Idle {
    conn: AsyncSmtpConnection,
    /// The server offers PIPELINING (RFC 2920).
    can_pipeline: bool,
    created: Instant,
    last_used: Instant,
}

/// Connections are reused for at most this long.
const MAX_AGE: Duration = Duration::from_secs(120);
/// An idle connection older than this is checked with NOOP before reuse.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);

pub struct SmtpPool {
    target: SmtpTarget,
    /// Built when the mailer is; `None` (the benchmark's plain pool): built
    /// at each TLS connection.
    trust: Option<Trust>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
}

impl SmtpPool {
    pub fn new(target: SmtpTarget, size: u32, timeout: Duration) -> Self {
        Self {
            target,
            trust: None,
            hello: ClientId::default(),
            timeout,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1) as usize),
        }
    }

    /// The certificates trusted for this server, read once.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    pub fn target(&self) -> &SmtpTarget {
        &self.target
    }

    fn transient(e: impl std::fmt::Display) -> SendError {
        SendError::Transient(e.to_string())
    }

    fn trust(&self) -> Result<Trust, SendError> {
        match &self.trust {
            Some(t) => Ok(t.clone()),
            None => Trust::new(&self.target.host, self.target.ca_file.as_deref())
                .map_err(|e| SendError::Config(e.to_string())),
        }
    }

    /// A new connection, set up (TLS, AUTH), and whether the server offers
    /// PIPELINING.
    async fn connect(&self) -> Result<(AsyncSmtpConnection, bool), SendError> {
        let t = &self.target;
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect((t.host.as_str(), t.port)))
            .await
            .map_err(|_| {
                SendError::Transient(format!("connecting to {}:{} timed out", t.host, t.port))
            })?
            .map_err(|e| {
                SendError::Transient(format!("connecting to {}:{}: {e}", t.host, t.port))
            })?;
        tcp.set_nodelay(true).map_err(Self::transient)?;
        let stream: Box<dyn AsyncTokioStream> = if t.security == Security::Implicit {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(t.host.clone())
                .map_err(|e| SendError::Config(format!("TLS: host {:?}: {e}", t.host)))?;
            let trust = self.trust()?;
            let tls = tokio::time::timeout(self.timeout, trust.implicit().connect(name, tcp))
                .await
                .map_err(|_| Self::transient("TLS handshake timed out"))?
                .map_err(|e| {
                    if is_certificate_error(&e) {
                        certificate_error(t, &e)
                    } else {
                        Self::transient(format!("TLS handshake: {e}"))
                    }
                })?;
            Box::new(TlsStream(tls))
        } else {
            Box::new(tcp)
        };
        let mut conn = tokio::time::timeout(
            self.timeout,
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
        )
        .await
        .map_err(|_| Self::transient("no SMTP greeting in time"))?
        .map_err(classify_error)?;
        let mut is_encrypted = t.security == Security::Implicit;
        let wants_tls = match t.security {
            Security::StartTlsRequired => true,
            Security::Opportunistic => conn.can_starttls(),
            Security::None | Security::Implicit => false,
        };
        if wants_tls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(SendError::Config(format!(
                    "{}:{} does not offer STARTTLS, which its URL requires (tls=required, or credentials without tls=); herald will not send mail or a password unencrypted",
                    t.host, t.port
                )));
            }
            conn.starttls(self.trust()?.starttls(), &self.hello)
                .await
                .map_err(|e| {
                    if is_certificate_error(&e) {
                        certificate_error(t, &e)
                    } else {
                        classify_error(e)
                    }
                })?;
            is_encrypted = true;
        }
        // lettre keeps only the EHLO keywords it uses itself; PIPELINING is
        // not one of them, so herald asks again, once per connection (before
        // AUTH, which a new EHLO could reset). A server that refuses a
        // second EHLO (503 from Python's smtpd and other minimal servers)
        // is still in the state the first one left it in: it gets mail
        // without pipelining.
        let can_pipeline = match conn.command(Ehlo::new(self.hello.clone())).await {
            Ok(ehlo) => ehlo.message().any(|line| {
                line.split_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
            }),
            Err(e) if e.is_permanent() => {
                tracing::debug!(server = %format!("{}:{}", t.host, t.port), error = %e, "second EHLO refused; sending without pipelining");
                false
            }
            Err(e) => return Err(classify_error(e)),
        };
        if let Some(credentials) = &t.credentials {
            if !is_encrypted && !t.allow_plain_auth {
                conn.abort().await;
                return Err(SendError::Config(format!(
                    "{}:{} did not offer STARTTLS, so the connection is not encrypted; herald does not send the password in the clear (use tls=required or smtps://, or allow_plain_auth=true for a loopback relay)",
                    t.host, t.port
                )));
            }
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| match e.status() {
                    Some(code) if code.to_string().starts_with('5') => SendError::Config(format!(
                        "{}:{} refused the credentials: {e}",
                        t.host, t.port
                    )),
                    None if e.is_client() => {
                        SendError::Config(format!("{}:{}: AUTH not possible: {e}", t.host, t.port))
                    }
                    _ => classify_error(e),
                })?;
        }
        Ok((conn, can_pipeline))
    }

    async fn checkout(&self) -> Result<Idle, SendError> {
        loop {
            let candidate = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
            let Some(mut idle) = candidate else { break };
            if idle.created.elapsed() > MAX_AGE || idle.conn.has_broken() {
                let _ = tokio::time::timeout(Duration::from_secs(1), idle.conn.quit()).await;
                continue;
            }
            if idle.last_used.elapsed() > CHECK_AFTER_IDLE
                && !tokio::time::timeout(self.timeout, idle.conn.test_connected())
                    .await
                    .unwrap_or(false)
            {
                continue;
            }
            return Ok(idle);
        }
        let now = Instant::now();
        // Whatever goes wrong before a message is under way says nothing
        // about the message: the server is unreachable, or misconfigured.
        let (conn, can_pipeline) = self.connect().await.map_err(|e| match e {
            e @ (SendError::Throttled(_) | SendError::Config(_)) => e,
            other => SendError::Unreachable(other.to_string()),
        })?;
        Ok(Idle {
            conn,
            can_pipeline,
            created: now,
            last_used: now,
        })
    }

    /// Sends one prebuilt message (no 7bit form: a server without 8BITMIME
    /// refuses it if it is 8bit).
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<String, SendError> {
        self.send_outgoing(&Outgoing {
            envelope,
            message,
            seven_bit: None,
        })
        .await
    }

    /// Sends one message over a pooled connection; at most `size` at once.
    /// Returns the server's final reply, e.g. "250 2.0.0 Ok: queued".
    pub async fn send_outgoing(&self, out: &Outgoing<'_>) -> Result<String, SendError> {
        let _permit = self.permits.acquire().await.map_err(Self::transient)?;
        let mut idle = self.checkout().await?;
        let result = tokio::time::timeout(
            self.timeout,
            transact(&mut idle.conn, idle.can_pipeline, out),
        )
        .await;
        match result {
            Ok(Ok(response)) => {
                let text: Vec<&str> = response.message().collect();
                let reply = format!("{} {}", response.code(), text.join(" "));
                idle.last_used = Instant::now();
                if let Ok(mut pool) = self.idle.lock() {
                    pool.push(idle);
                }
                Ok(reply)
            }
            Ok(Err((e, is_reusable))) => {
                if is_reusable {
                    idle.last_used = Instant::now();
                    if let Ok(mut pool) = self.idle.lock() {
                        pool.push(idle);
                    }
                }
                Err(e)
            }
            Err(_) => Err(SendError::Broken(format!(
                "no reply within {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

fn certificate_error(t: &SmtpTarget, e: &dyn std::fmt::Display) -> SendError {
    SendError::Config(format!(
        "TLS certificate of {}:{} not trusted: {e} (give its CA with ca_file=/path/ca.pem in the server's URL)",
        t.host, t.port
    ))
}

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
async fn transact(
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
/// end of data) it is about the server, the sender or the message.
fn classify_at(stage: Stage, e: lettre::transport::smtp::Error) -> SendError {
    match classify_error(e) {
        SendError::Permanent(m) if stage != Stage::Rcpt => SendError::Refused(m),
        other => other,
    }
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
fn classify_error(e: lettre::transport::smtp::Error) -> SendError {
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
    use super::*;

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
