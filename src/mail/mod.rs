//! Building messages and handing them to a transport: SMTP (one or more
//! servers, each with its own pool of connections) or, with no SMTP server
//! configured, .eml files in the outbox directory. No SMTP code lives outside this module.

mod build;
pub mod dkim;
pub mod pool;
pub mod servers;
mod seven_bit;
mod target;
mod template;
mod tls;
mod transaction;

pub use build::{confirmation_bodies, confirmation_message};
pub use template::{
    sample_digest, sample_digest_bodies, slotted, time_body_hash, time_per_copy,
    time_per_signed_copy, DigestTemplate, SAMPLE_UNSUBSCRIBE_MARKER,
};
pub use transaction::names_an_unknown_recipient;

use crate::config::{Config, SmtpServerConfig};
use lettre::address::Envelope;
use lettre::message::Mailbox;
use pool::{SmtpPool, SmtpTarget};
pub use servers::RateLimit;
use servers::{HealthPolicy, Picked, Server, Servers};
pub use servers::{ServerHealth, ServerState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid SMTP URL: {0}")]
    SmtpUrl(String),
    #[error("invalid SMTP server configuration: {0}")]
    SmtpServers(String),
    /// The setting, its value, and why.
    #[error("{0} = {1:?} is not an email address ({2}); write one such as \"Newsletter <news@example.com>\" for from, or \"bounces@example.com\" for an [inbound] address")]
    From(&'static str, String, String),
    #[error("could not create the outbox directory {0}: {1}")]
    OutboxDir(PathBuf, std::io::Error),
    #[error("could not build the message: {0}")]
    Build(String),
    #[error(transparent)]
    Dkim(#[from] dkim::DkimError),
}

/// Why a send did not go through, as delivery needs to know it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// A 4xx reply about this message or recipient: worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: 5xx reply.
    #[error("{0}")]
    Permanent(String),
    /// The server asks herald to slow down: 421, 452 or 4.7.x. Not the
    /// recipient's fault; the server is paused and the copy tried again.
    #[error("{0}")]
    Throttled(String),
    /// No message was under way: the connection could not be opened or
    /// set up (refused, no greeting, TLS or AUTH failed).
    #[error("{0}")]
    Unreachable(String),
    /// The connection broke or timed out while the message was under way;
    /// the server may or may not have taken it.
    #[error("{0}")]
    Broken(String),
    /// The server refused for a reason that is not about the recipient: a
    /// 5xx at MAIL, DATA or the end of data, or a capability it lacks
    /// (SMTPUTF8 for a non-ASCII address). Retried, never counted as a
    /// bounce.
    #[error("{0}")]
    Refused(String),
    /// The server cannot be used as configured: credentials refused, its
    /// certificate not trusted, STARTTLS required but not offered, AUTH
    /// that would go unencrypted. No message was under way; herald stops
    /// using the server until an operator resumes it, or herald restarts
    /// with a corrected configuration.
    #[error("{0}")]
    Config(String),
}

/// A 7bit form of a message, made only for a server that does not
/// announce 8BITMIME.
pub type SevenBit<'a> = &'a (dyn Fn() -> Result<Vec<u8>, Error> + Sync);

/// A message as herald sends it.
pub struct Outgoing<'a> {
    pub envelope: &'a Envelope,
    /// As rendered: 8bit bodies for a digest.
    pub message: &'a [u8],
    pub seven_bit: Option<SevenBit<'a>>,
}

#[derive(Clone)]
enum Transport {
    Smtp(Arc<Servers>),
    File(PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    pub from: Mailbox,
    /// Signs every message when DKIM keys are configured.
    pub dkim: Option<Arc<dkim::Dkim>>,
    /// `[inbound] unsubscribe_address`, split at the @.
    unsubscribe_address: Option<(String, String)>,
    /// `[inbound] bounce_address`, split at the @.
    bounce_address: Option<(String, String)>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer({}, from {})", self.describe(), self.from)
    }
}

/// Where one message goes: a server picked for it, or the outbox directory.
pub enum Route {
    Smtp(Picked),
    File(PathBuf),
}

impl Mailer {
    /// SMTP as configured (`smtp_servers`, or the one `smtp_url`), else the
    /// outbox directory.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let mut mailer = Self::transport_from_config(config)?;
        mailer.dkim = load_dkim(config, &mailer.from)?;
        mailer.unsubscribe_address = config
            .inbound
            .unsubscribe_address
            .as_deref()
            .map(|a| split_address("inbound.unsubscribe_address", a))
            .transpose()?;
        mailer.bounce_address = config
            .inbound
            .bounce_address
            .as_deref()
            .map(|a| split_address("inbound.bounce_address", a))
            .transpose()?;
        Ok(mailer)
    }

    /// A copy's List-Unsubscribe mailto: `unsubscribe+TOKEN@…` when an
    /// unsubscribe address is configured, else the From address; the
    /// subject names the token either way.
    pub fn unsubscribe_mailto(&self, token: &str) -> String {
        match &self.unsubscribe_address {
            Some((local, domain)) => {
                format!("mailto:{local}+{token}@{domain}?subject=unsubscribe%20{token}")
            }
            None => format!("mailto:{}?subject=unsubscribe%20{token}", self.from.email),
        }
    }

    /// The domain of the envelope sender: the bounce address's, else From's.
    pub fn return_path_domain(&self) -> &str {
        self.bounce_address
            .as_ref()
            .map_or(self.from.email.domain(), |(_, domain)| domain.as_str())
    }

    /// A copy's envelope sender (VERP) when a bounce address is configured.
    pub fn bounce_sender(&self, token: &str) -> Option<lettre::Address> {
        let (local, domain) = self.bounce_address.as_ref()?;
        lettre::Address::new(format!("{local}+{token}"), domain).ok()
    }

    fn transport_from_config(config: &Config) -> Result<Self, Error> {
        let d = &config.delivery;
        let specs = server_specs(config)?;
        if specs.is_empty() {
            return Self::outbox(config.outbox_dir(), &config.from);
        }
        let policy = HealthPolicy {
            failures_before_cooldown: d.failures_before_cooldown,
            cooldown: Duration::from_secs(d.cooldown_secs),
            throttle_max_pause: Duration::from_secs(d.throttle_max_pause_secs.max(1)),
        };
        let timeout = Duration::from_secs(d.smtp_timeout_secs.max(1));
        let size = d.concurrency.max(1);
        let mut servers = Vec::with_capacity(specs.len());
        for (name, target, spec) in specs {
            if spec.weight == 0 {
                return Err(Error::SmtpServers(format!(
                    "server {name}: weight must be at least 1"
                )));
            }
            let rate = rate_limit(&name, &spec, timeout)?;
            let pool = pool_for(&name, &target, size, timeout)?;
            servers.push(Arc::new(Server::new(
                name,
                pool,
                size as usize,
                spec.weight,
                rate,
                policy,
            )));
        }
        Ok(Self {
            transport: Transport::Smtp(Arc::new(Servers::new(servers))),
            from: parse_from(&config.from)?,
            dkim: None,
            unsubscribe_address: None,
            bounce_address: None,
        })
    }

    pub fn outbox(dir: PathBuf, from: &str) -> Result<Self, Error> {
        crate::private_files::create_private_dir(&dir)
            .map_err(|e| Error::OutboxDir(dir.clone(), e))?;
        Ok(Self {
            transport: Transport::File(dir),
            from: parse_from(from)?,
            dkim: None,
            unsubscribe_address: None,
            bounce_address: None,
        })
    }

    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(servers) => {
                let list: Vec<String> = servers.list().iter().map(|s| format!("{s:?}")).collect();
                format!("SMTP {}", list.join(", "))
            }
            Transport::File(dir) => format!("outbox directory {}", dir.display()),
        }
    }

    /// Where the next message goes. Err: no server can take one now (all
    /// cooling down, throttled or busy); ask again after the duration.
    pub fn route(&self) -> Result<Route, Duration> {
        match &self.transport {
            Transport::Smtp(servers) => servers.pick().map(Route::Smtp),
            Transport::File(dir) => Ok(Route::File(dir.clone())),
        }
    }

    /// None unless every server is cooling down or paused; else how long
    /// until one is not. No new work should be claimed meanwhile.
    pub fn blocked_for(&self) -> Option<Duration> {
        match &self.transport {
            Transport::Smtp(servers) => servers.blocked_for(),
            Transport::File(..) => None,
        }
    }

    /// Whether every server was stopped for a configuration error: nothing
    /// can be sent until one is resumed, or herald restarts.
    pub fn is_stopped(&self) -> bool {
        match &self.transport {
            Transport::Smtp(servers) => servers.are_all_stopped(),
            Transport::File(..) => false,
        }
    }

    /// Whether any server was stopped for a configuration error.
    pub fn is_any_stopped(&self) -> bool {
        match &self.transport {
            Transport::Smtp(servers) => servers.is_any_stopped(),
            Transport::File(..) => false,
        }
    }

    /// Takes the stopped server `name` back into use; whether it was stopped.
    pub fn resume(&self, name: &str) -> bool {
        match &self.transport {
            Transport::Smtp(servers) => servers.resume(name),
            Transport::File(..) => false,
        }
    }

    /// Every server's state, as it stands.
    pub fn health(&self) -> Vec<ServerHealth> {
        match &self.transport {
            Transport::Smtp(servers) => servers.health(false),
            Transport::File(..) => Vec::new(),
        }
    }

    /// The servers whose state changed since the last call.
    pub fn health_changes(&self) -> Vec<ServerHealth> {
        match &self.transport {
            Transport::Smtp(servers) => servers.health(true),
            Transport::File(..) => Vec::new(),
        }
    }
}

impl Route {
    /// The server's name and its rate limits, if it has any.
    pub fn rate_limit(&self) -> Option<(&str, &RateLimit)> {
        match self {
            Route::Smtp(p) => p
                .server()
                .rate
                .as_ref()
                .map(|r| (p.server().name.as_str(), r)),
            Route::File(..) => None,
        }
    }

    /// Sends one message; on success returns the server's reply (or the
    /// .eml file written).
    pub async fn send(self, out: &Outgoing<'_>) -> Result<String, SendError> {
        match self {
            Route::Smtp(picked) => picked.send(out).await,
            Route::File(dir) => {
                // The message holds live links: readable by herald's user
                // only, from the moment the file exists.
                let path = dir.join(format!("{:032x}.eml", rand::random::<u128>()));
                let bytes = out.message.to_vec();
                let target = path.clone();
                let written = tokio::task::spawn_blocking(move || {
                    crate::private_files::write_new(&target, &bytes)
                })
                .await;
                match written {
                    Ok(Ok(())) => {
                        tracing::info!(path = %path.display(), "no SMTP server configured: message written to the outbox");
                        Ok(format!("written to {}", path.display()))
                    }
                    Ok(Err(e)) => Err(SendError::Transient(format!(
                        "writing {}: {e}",
                        path.display()
                    ))),
                    Err(e) => Err(SendError::Transient(e.to_string())),
                }
            }
        }
    }
}

fn rate_limit(
    name: &str,
    spec: &SmtpServerConfig,
    timeout: Duration,
) -> Result<Option<RateLimit>, Error> {
    if let Some(r) = spec.max_per_second {
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::SmtpServers(format!(
                "server {name}: max_per_second must be a positive number"
            )));
        }
    }
    let per_window = match spec.max_per_window {
        Some(0) => {
            return Err(Error::SmtpServers(format!(
                "server {name}: max_per_window must be at least 1"
            )))
        }
        Some(n) if spec.window_secs == 0 => {
            return Err(Error::SmtpServers(format!(
                "server {name}: window_secs must be at least 1 with max_per_window {n}"
            )))
        }
        Some(n) => Some((n, Duration::from_secs(spec.window_secs))),
        None => None,
    };
    Ok(match (spec.max_per_second, per_window) {
        (None, None) => None,
        (per_second, per_window) => Some(RateLimit {
            per_second,
            per_window,
            // Each step of a send has its own timeout: TCP, TLS, greeting,
            // STARTTLS, EHLO, AUTH, the check of an idle connection and the
            // transaction.
            send_timeout: timeout * 8,
        }),
    })
}

/// An operator's address, as local part and domain.
fn split_address(setting: &'static str, address: &str) -> Result<(String, String), Error> {
    let parsed: lettre::Address = address
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            Error::From(setting, address.to_string(), e.to_string())
        })?;
    Ok((parsed.user().to_string(), parsed.domain().to_string()))
}

/// The configured SMTP servers (`smtp_servers`, or the one `smtp_url`),
/// each with its name (`name`, default `host:port`) and parsed URL. Empty:
/// mail goes to the outbox directory.
fn server_specs(config: &Config) -> Result<Vec<(String, SmtpTarget, SmtpServerConfig)>, Error> {
    let mut specs = config.smtp_servers.clone();
    match (&config.smtp_url, specs.is_empty()) {
        (Some(_), false) => {
            return Err(Error::SmtpServers(
                "smtp_url and smtp_servers are both set: keep one (smtp_servers for several servers, smtp_url for one)".into(),
            ))
        }
        (Some(url), true) => specs.push(SmtpServerConfig {
            url: url.clone(),
            ..SmtpServerConfig::default()
        }),
        (None, _) => {}
    }
    specs
        .into_iter()
        .map(|spec| {
            let target = SmtpTarget::parse(&spec.url)?;
            let name = spec
                .name
                .clone()
                .unwrap_or_else(|| format!("{}:{}", target.host, target.port));
            Ok((name, target, spec))
        })
        .collect()
}

/// `e` said of the server `name`.
/// The connection pool of server `name`, with the TLS trust its URL asks
/// for (`ca_file`, `tls_pin`) read now, so a bad file stops herald at start
/// and `herald smtp check` tries exactly what a send would.
fn pool_for(
    name: &str,
    target: &SmtpTarget,
    size: u32,
    timeout: Duration,
) -> Result<SmtpPool, Error> {
    let pool = SmtpPool::new(target.clone(), size, timeout);
    if target.security == target::Security::None {
        return Ok(pool);
    }
    let trust = tls::Trust::new(
        &target.host,
        target.ca_file.as_deref(),
        target.tls_pin.as_deref(),
    )
    .map_err(|e| for_server(name, e))?;
    Ok(pool.with_trust(trust))
}

fn for_server(name: &str, e: Error) -> Error {
    match e {
        Error::SmtpServers(m) => Error::SmtpServers(format!("server {name}: {m}")),
        other => other,
    }
}

/// The names of the configured SMTP servers, as `herald smtp list` and
/// the logs show them.
pub fn server_names(config: &Config) -> Result<Vec<String>, Error> {
    Ok(server_specs(config)?
        .into_iter()
        .map(|(name, ..)| name)
        .collect())
}

/// Each configured SMTP server (or the one named `only`), tried once as a
/// send would be (TCP, TLS, AUTH, then QUIT): its name and what it offered,
/// or why it cannot be used. Nothing is sent and nothing is stored.
pub async fn check_servers(
    config: &Config,
    only: Option<&str>,
) -> Result<Vec<(String, Result<String, SendError>)>, Error> {
    let timeout = Duration::from_secs(config.delivery.smtp_timeout_secs.max(1));
    let mut checked = Vec::new();
    for (name, target, _) in server_specs(config)? {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let pool = pool_for(&name, &target, 1, timeout)?;
        let result = pool.check().await;
        checked.push((name, result));
    }
    Ok(checked)
}

/// The configured DKIM keys, read once at start so a bad key stops herald.
fn load_dkim(config: &Config, from: &Mailbox) -> Result<Option<Arc<dkim::Dkim>>, Error> {
    if config.dkim.keys.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(config.dkim.keys.len());
    for k in &config.dkim.keys {
        let domain = k.domain.as_deref().unwrap_or(from.email.domain());
        keys.push(dkim::DkimKey::load(
            &k.private_key_file,
            &k.selector,
            domain,
        )?);
    }
    Ok(Some(Arc::new(dkim::Dkim::new(keys))))
}

pub fn parse_from(from: &str) -> Result<Mailbox, Error> {
    from.parse::<Mailbox>()
        .map_err(|e| Error::From("from", from.to_string(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_servers(servers: Vec<SmtpServerConfig>) -> Config {
        Config {
            smtp_servers: servers,
            ..Config::default()
        }
    }

    fn server(url: &str) -> SmtpServerConfig {
        SmtpServerConfig {
            url: url.into(),
            ..SmtpServerConfig::default()
        }
    }

    #[test]
    fn bad_server_lists_are_refused_with_the_reason() {
        let mut both = with_servers(vec![server("smtp://a:25")]);
        both.smtp_url = Some("smtp://b:25".into());
        let cases = [
            (both, "are both set"),
            (
                with_servers(vec![SmtpServerConfig {
                    weight: 0,
                    ..server("smtp://a:25")
                }]),
                "weight",
            ),
            (
                with_servers(vec![SmtpServerConfig {
                    max_per_second: Some(-1.0),
                    ..server("smtp://a:25")
                }]),
                "max_per_second",
            ),
            (
                with_servers(vec![SmtpServerConfig {
                    max_per_window: Some(0),
                    ..server("smtp://a:25")
                }]),
                "max_per_window",
            ),
            (with_servers(vec![server("http://a")]), "URL"),
            // A ca_file that is missing or holds no certificate stops
            // herald at start, not at the first message.
            (
                with_servers(vec![server(
                    "smtp://a:25?tls=required&ca_file=/nonexistent/ca.pem",
                )]),
                "ca_file=/nonexistent/ca.pem",
            ),
            (
                with_servers(vec![server("smtps://a?ca_file=/etc/hostname")]),
                "ca_file=/etc/hostname",
            ),
        ];
        for (config, why) in cases {
            let err = Mailer::from_config(&config).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn servers_are_named_by_host_and_port_unless_named() {
        let config = with_servers(vec![
            server("smtp://relay-a.example.com:2525"),
            SmtpServerConfig {
                name: Some("b".into()),
                max_per_second: Some(5.0),
                ..server("smtp://relay-b.example.com")
            },
        ]);
        let mailer = Mailer::from_config(&config).unwrap();
        let described = mailer.describe();
        assert!(
            described.contains("relay-a.example.com:2525"),
            "{described}"
        );
        assert!(
            described.contains("b relay-b.example.com:25"),
            "{described}"
        );
    }
}
