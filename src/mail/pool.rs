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
//!
//! Setting a connection up follows the server's URL (target.rs): STARTTLS
//! when required (or offered, with `tls=opportunistic`), with the server's
//! own trusted certificates (tls.rs), and AUTH only over an encrypted
//! connection unless `allow_plain_auth=true` (loopback only). What fails
//! because of the configuration (credentials refused, certificate not
//! trusted, STARTTLS missing) is `SendError::Config`, and the server is
//! stopped; anything else before a message is under way is `Unreachable`.

use super::target::Security;
pub use super::target::SmtpTarget;
use super::tls::{certificate_error, explain_certificate_error, TlsStream, Trust};
use super::transaction::{classify_error, transact};
use super::{Outgoing, SendError};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
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

/// What to do when no connection can be opened.
const CHECK_THE_ADDRESS: &str = "check the host and port in the server's URL, and that the relay runs and accepts connections from this machine";

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
            None => Trust::new(
                &self.target.host,
                self.target.ca_file.as_deref(),
                self.target.tls_pin.as_deref(),
            )
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
                SendError::Transient(format!(
                    "connecting to {}:{} timed out; {CHECK_THE_ADDRESS}",
                    t.host, t.port
                ))
            })?
            .map_err(|e| {
                SendError::Transient(format!(
                    "connecting to {}:{}: {e}; {CHECK_THE_ADDRESS}",
                    t.host, t.port
                ))
            })?;
        tcp.set_nodelay(true).map_err(Self::transient)?;
        let stream: Box<dyn AsyncTokioStream> = if t.security == Security::Implicit {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(t.host.clone())
                .map_err(|e| SendError::Config(format!("TLS: host {:?}: {e}", t.host)))?;
            let trust = self.trust()?;
            let tls = tokio::time::timeout(self.timeout, trust.implicit().connect(name, tcp))
                .await
                .map_err(|_| Self::transient("TLS handshake timed out"))?
                .map_err(|e| match certificate_error(&e) {
                    Some(c) => SendError::Config(explain_certificate_error(t, &c)),
                    None => Self::transient(format!(
                        "TLS handshake with {}:{} failed: {e}; smtps:// is implicit TLS (usually port 465): if this port speaks STARTTLS (587, 25), write smtp://{}:{}?tls=required",
                        t.host, t.port, t.host, t.port
                    )),
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
                    "{}:{} does not offer STARTTLS, which its URL requires (tls=required, or credentials without tls=); herald will not send mail or a password unencrypted: enable STARTTLS on the relay, or write smtps:// if the port speaks implicit TLS (usually 465)",
                    t.host, t.port
                )));
            }
            let trust = self.trust()?;
            conn.starttls(trust.starttls(), &self.hello).await.map_err(
                |e| match certificate_error(&e) {
                    Some(c) => SendError::Config(explain_certificate_error(t, &c)),
                    None => classify_error(e),
                },
            )?;
            // With ca_file= or tls_pin=, herald checks the certificate
            // itself, before AUTH or any message (tls.rs says why).
            if trust.checks_after_starttls() {
                let checked = conn
                    .certificate_chain()
                    .map_err(|e| {
                        rustls_general(format!("no certificate chain after STARTTLS: {e}"))
                    })
                    .and_then(|chain| trust.check_after_starttls(&t.host, &chain));
                if let Err(e) = checked {
                    conn.abort().await;
                    return Err(SendError::Config(explain_certificate_error(t, &e)));
                }
            }
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
                        "{}:{} refused the credentials: {e}; check the user name and password in the server's URL (special characters percent-encoded), or the account at the relay",
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

    /// Opens a connection as a send would (TLS, AUTH), then says QUIT:
    /// whether the server can be used as configured. Returns what it
    /// offered, for the operator.
    pub async fn check(&self) -> Result<String, SendError> {
        let (mut conn, can_pipeline) = self.connect().await?;
        let is_encrypted = conn.is_encrypted() || self.target.security == Security::Implicit;
        let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
        Ok(format!(
            "connected{}{}{}",
            if is_encrypted {
                ", TLS"
            } else {
                ", not encrypted"
            },
            if self.target.credentials.is_some() {
                ", AUTH accepted"
            } else {
                ""
            },
            if can_pipeline { ", PIPELINING" } else { "" }
        ))
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

fn rustls_general(why: String) -> tokio_rustls::rustls::Error {
    tokio_rustls::rustls::Error::General(why)
}
