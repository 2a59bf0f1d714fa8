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

use super::SendError;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How the connection is secured, from the URL: `smtp://` plain (STARTTLS
/// when the server offers it and `?tls=opportunistic`), `smtp://…?tls=required`
/// STARTTLS required, `smtps://` implicit TLS.
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
    credentials: Option<Credentials>,
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

impl SmtpTarget {
    pub fn parse(raw: &str) -> Result<Self, super::Error> {
        let bad = |why: &str| {
            super::Error::SmtpUrl(format!("{why} (expected smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://user:pass@host)"))
        };
        let url = url::Url::parse(raw).map_err(|_| bad("not a URL"))?;
        let host = url
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtps", _) => (Security::Implicit, 465),
            ("smtp", Some("required")) => (Security::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic, 25),
            ("smtp", None | Some("none")) => (Security::None, 25),
            ("smtp", Some(_)) => return Err(bad("tls= must be required, opportunistic or none")),
            _ => return Err(bad("unknown scheme")),
        };
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
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
        })
    }
}

/// A TLS stream lettre can drive (implicit TLS, opened by herald).
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, SendError> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SendError::Transient(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

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
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
}

impl SmtpPool {
    pub fn new(target: SmtpTarget, size: u32, timeout: Duration) -> Self {
        Self {
            target,
            hello: ClientId::default(),
            timeout,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1) as usize),
        }
    }

    pub fn target(&self) -> &SmtpTarget {
        &self.target
    }

    fn transient(e: impl std::fmt::Display) -> SendError {
        SendError::Transient(e.to_string())
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
                .map_err(Self::transient)?;
            let tls = tokio::time::timeout(self.timeout, tls_connector()?.connect(name, tcp))
                .await
                .map_err(|_| Self::transient("TLS handshake timed out"))?
                .map_err(|e| Self::transient(format!("TLS handshake: {e}")))?;
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
        let wants_tls = match t.security {
            Security::StartTlsRequired => true,
            Security::Opportunistic => conn.can_starttls(),
            Security::None | Security::Implicit => false,
        };
        if wants_tls {
            let params = TlsParameters::new(t.host.clone()).map_err(Self::transient)?;
            conn.starttls(params, &self.hello)
                .await
                .map_err(classify_error)?;
        }
        // lettre keeps only the EHLO keywords it uses itself; PIPELINING is
        // not one of them, so herald asks again (before AUTH, which a new
        // EHLO could reset).
        let ehlo = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(classify_error)?;
        let can_pipeline = ehlo.message().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
        });
        if let Some(credentials) = &t.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(classify_error)?;
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
        // about the message: the server is unreachable (or misconfigured).
        let (conn, can_pipeline) = self.connect().await.map_err(|e| match e {
            SendError::Throttled(m) => SendError::Throttled(m),
            other => SendError::Unreachable(other.to_string()),
        })?;
        Ok(Idle {
            conn,
            can_pipeline,
            created: now,
            last_used: now,
        })
    }

    /// Sends one message over a pooled connection; at most `size` at once.
    /// Returns the server's final reply, e.g. "250 2.0.0 Ok: queued".
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<String, SendError> {
        let _permit = self.permits.acquire().await.map_err(Self::transient)?;
        let mut idle = self.checkout().await?;
        let result = tokio::time::timeout(
            self.timeout,
            transact(&mut idle.conn, idle.can_pipeline, envelope, message),
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
            // The connection is closed after any failed command.
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SendError::Broken(format!(
                "no reply within {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

/// One mail transaction: MAIL, RCPT, DATA, the message.
///
/// This is lettre's `AsyncSmtpConnection::send` with two differences, both
/// through lettre's public `command` (write a string, read one reply) and
/// `read_response`:
/// - when the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go
///   out in one write and their replies are read in order: two round trips
///   per message instead of four;
/// - lettre dot-stuffs the message one byte at a time (the largest item in
///   a profile of the worker) and writes the end-of-data marker separately;
///   herald finds the lines to stuff with memchr and sends the message and
///   the marker in one write.
async fn transact(
    conn: &mut AsyncSmtpConnection,
    can_pipeline: bool,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Response, SendError> {
    let Ok(text) = std::str::from_utf8(message) else {
        // Never built by herald; lettre's own path copes with any bytes.
        return conn.send(envelope, message).await.map_err(classify_error);
    };
    let info = conn.server_info();
    let mut options = Vec::new();
    let is_non_ascii = |a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii();
    if envelope.from().is_some_and(is_non_ascii) || envelope.to().iter().any(is_non_ascii) {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Permanent(
                "the address is not ASCII and the server does not support SMTPUTF8".into(),
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(SendError::Permanent(
                "the message is 8bit and the server does not support 8BITMIME".into(),
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
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
            conn.command(Raw(&commands)).await?;
            for _ in envelope.to() {
                conn.read_response().await?;
            }
            conn.read_response().await?;
        } else {
            conn.command(mail).await?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), Vec::new())).await?;
            }
            conn.command(Data).await?;
        }
        conn.command(DataBody(&dot_stuffed(text))).await
    };
    match steps.await {
        Ok(response) => Ok(response),
        Err(e) => {
            // As lettre does after a failed command: QUIT and close.
            conn.abort().await;
            Err(classify_error(e))
        }
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
        let t = SmtpTarget::parse("smtps://u:p@relay.example.com").unwrap();
        assert_eq!((t.port, t.security), (465, Security::Implicit));
        for bad in ["http://x", "smtp://", "relay:25", "smtp://x?tls=maybe"] {
            assert!(SmtpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
