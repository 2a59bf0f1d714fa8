//! Configuration: defaults < herald.toml < HERALD_* environment < command-line
//! flags. Nested keys use a double underscore in the environment, e.g.
//! `HERALD_DELIVERY__CONCURRENCY=16` sets `delivery.concurrency`.

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod base_url;
pub mod mail_look;
pub mod site_name;
pub use base_url::{BaseUrl, BaseUrlError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where herald keeps its SQLite file, outbox and other state.
    pub data_dir: PathBuf,
    /// `sqlite://path` or `postgres://…`; default: `sqlite://{data_dir}/herald.db`.
    pub database_url: Option<String>,
    /// Address the web server listens on.
    pub bind: String,
    /// Public URL of this herald, used in every link in mail and pages;
    /// default: `http://{bind}`. Absolute http(s), without query or
    /// fragment: anything else stops every command at start.
    pub base_url: Option<BaseUrl>,
    /// Shown on pages and in mail. Unset: the news site's host name (see
    /// `config::site_name`), and `serve` warns.
    pub site_name: String,
    /// Whether `site_name` was not set and was derived (`name_the_site`).
    #[serde(skip)]
    pub site_name_derived: bool,
    /// Link back to the news site, shown in mail and pages.
    pub site_url: Option<String>,
    /// The sender's postal address, shown in every digest's footer (the
    /// US CAN-SPAM Act requires one). herald warns at start when unset.
    pub postal_address: Option<String>,
    /// From: of every message.
    pub from: String,
    /// `smtp://host:port`, `smtp://host:port?tls=required` (STARTTLS),
    /// `smtps://user:pass@host` (implicit TLS). Unset: messages go to the outbox dir.
    pub smtp_url: Option<String>,
    /// Several SMTP servers, each with a weight and optional rate limits
    /// (instead of `smtp_url`; setting both is an error).
    pub smtp_servers: Vec<SmtpServerConfig>,
    /// Where messages are written as .eml files when no SMTP server is set;
    /// default: `{data_dir}/outbox`.
    pub outbox_dir: Option<PathBuf>,
    /// Signs unsubscribe links. Unset: generated once and kept in the database.
    pub secret: Option<String>,
    /// Bearer token for /api. Unset: the API answers 401 to everybody.
    pub api_token: Option<String>,
    /// Seconds a graceful shutdown may take before in-flight work is left
    /// to lease expiry.
    pub shutdown_timeout_secs: u64,
    pub schedule: ScheduleConfig,
    pub digest: DigestConfig,
    pub delivery: DeliveryConfig,
    pub confirmation: ConfirmationConfig,
    pub feeds: FeedsConfig,
    pub http: HttpConfig,
    pub signup: SignupConfig,
    pub dkim: DkimConfig,
    pub inbound: InboundConfig,
    pub archive: ArchiveConfig,
    pub doctor: DoctorConfig,
    pub webhooks: WebhooksConfig,
    pub network: NetworkConfig,
}

/// Outgoing requests (feeds, SNS certificates and subscription links):
/// herald refuses to connect to loopback, private, link-local, CGNAT,
/// cloud metadata and other reserved addresses, after DNS and at every
/// redirect, so a URL from outside cannot reach the network herald runs in
/// (see `outgoing.rs`). Environment proxies (`HTTP_PROXY`) are not used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Private or reserved addresses and ranges herald may fetch feeds
    /// from anyway, e.g. `["127.0.0.2", "10.1.0.0/16"]` for a feed served
    /// on the same host or network. Empty (the default): none. SNS
    /// fetches go to AWS only and never use this list.
    pub allow_private: Vec<crate::outgoing::AllowedRange>,
}

/// `herald doctor`'s DNS questions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoctorConfig {
    /// `IP:PORT` of the resolver to ask; unset: the system's (/etc/resolv.conf).
    pub resolver: Option<String>,
    /// Seconds to wait for each answer.
    pub timeout_secs: u64,
}

impl Default for DoctorConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            timeout_secs: 3,
        }
    }
}

/// The public archive of sent digests (`/archive`, `/archive/{id}`,
/// `/archive/feed.xml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// false: the three routes answer 404, as if herald had no archive, and
    /// digests carry no "view in your browser" link.
    pub enabled: bool,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Mail that comes back: bounces, complaints, unsubscribes by mail (`herald
/// inbound`, `POST /inbound`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundConfig {
    /// The List-Unsubscribe mailto address. Each copy's is
    /// `local+TOKEN@domain?subject=unsubscribe%20TOKEN`. Default: the From
    /// address, with the token in the subject only.
    pub unsubscribe_address: Option<String>,
    /// Envelope sender (Return-Path) of digests, per copy
    /// `local+TOKEN@domain` (VERP), so a bounce names its subscriber even
    /// when it does not return the message's headers. Default: the From address.
    pub bounce_address: Option<String>,
    /// Bearer token of `POST /inbound`. Unset: `/inbound` answers 404.
    pub token: Option<String>,
}

/// Relay webhooks: bounces and complaints reported over HTTP by the relay
/// that sends herald's mail (`POST /webhooks/{ses,sendgrid,postmark}`).
/// Each provider is off until configured; an unconfigured one answers 404.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    pub ses: SesWebhookConfig,
    pub sendgrid: SendGridWebhookConfig,
    pub postmark: PostmarkWebhookConfig,
    /// Bytes that the SES and SendGrid bodies being read before their
    /// signature is checked may hold together (a body counts for its
    /// Content-Length, or 1 MiB without one). A request beyond it answers
    /// 503 with Retry-After, unread; the relays retry. At least 1 MiB (one
    /// whole body). Postmark's bodies are read only after its credentials
    /// and do not count.
    pub unverified_body_budget_bytes: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            ses: SesWebhookConfig::default(),
            sendgrid: SendGridWebhookConfig::default(),
            postmark: PostmarkWebhookConfig::default(),
            unverified_body_budget_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Amazon SES notifications delivered by an Amazon SNS HTTPS subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SesWebhookConfig {
    /// On: `topic_arns` must name the topics, or herald does not start.
    pub enabled: bool,
    /// PEM certificate whose key every SNS message must be signed with.
    /// Unset: the certificate is fetched from the message's `SigningCertURL`,
    /// only when that is `https://sns.<region>.amazonaws.com[.cn]/….pem`, and kept.
    pub certificate_file: Option<PathBuf>,
    /// The only topics whose messages are accepted and whose subscription
    /// herald confirms. Required when enabled: SNS signs every topic's
    /// messages with the same certificate, so a signature alone does not
    /// say the message is about herald's mail.
    pub topic_arns: Vec<String>,
    /// A message whose SNS `Timestamp` is further than this from now is
    /// refused (403), so a signed message cannot be replayed later. SNS
    /// keeps a message's Timestamp through its retries: its default
    /// delivery policy retries for under a minute; 3600 (the default)
    /// leaves room for a custom policy retrying for up to an hour.
    pub max_age_secs: u64,
}

impl Default for SesWebhookConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            certificate_file: None,
            topic_arns: Vec::new(),
            max_age_secs: 3600,
        }
    }
}

/// SendGrid's Signed Event Webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendGridWebhookConfig {
    /// The verification key SendGrid shows for the signed webhook: base64
    /// of an ECDSA P-256 public key (SubjectPublicKeyInfo). Unset: off.
    pub public_key: Option<String>,
    /// A post whose signed timestamp is further than this from now is
    /// refused (a replayed request).
    pub max_age_secs: u64,
}

impl Default for SendGridWebhookConfig {
    fn default() -> Self {
        Self {
            public_key: None,
            max_age_secs: 600,
        }
    }
}

/// Postmark's bounce and spam-complaint webhooks, with HTTP basic auth in
/// the webhook URL (`https://user:password@…/webhooks/postmark`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostmarkWebhookConfig {
    /// Both set: on. One without the other is refused at start.
    pub username: Option<String>,
    pub password: Option<String>,
}

/// DKIM signing: every message gets one signature per key. Two keys (one
/// RSA, one Ed25519) sign every message twice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkimConfig {
    pub keys: Vec<DkimKeyConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// The record is published at `{selector}._domainkey.{domain}`.
    pub selector: String,
    /// Default: the From address's domain.
    pub domain: Option<String>,
    /// PEM private key, RSA (2048 bits or more) or Ed25519: what `herald
    /// dkim generate` writes. A relative path is taken from the
    /// configuration file's directory (from the working directory when set
    /// in the environment).
    pub private_key_file: PathBuf,
}

/// Limits of the web server toward its clients: none of them can hold a
/// connection, a file descriptor or the shutdown for longer than these.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A request's line and headers must arrive within this many seconds;
    /// it also closes a keep-alive connection idle for that long.
    pub header_timeout_secs: u64,
    /// A request's body must arrive within this many seconds.
    pub body_timeout_secs: u64,
    /// A response that the client stops reading is cut off when no byte
    /// of it could be written for this many seconds.
    pub send_timeout_secs: u64,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            send_timeout_secs: 30,
            max_connections: 512,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedsConfig {
    /// Feeds to follow; added at start if missing (more can be added with
    /// `herald feed add` or the API).
    pub urls: Vec<String>,
    /// Default seconds between two polls of a feed (each poll is jittered ±10%).
    pub poll_interval_secs: u64,
    /// Whole-request timeout.
    pub timeout_secs: u64,
    /// Largest response body read; a bigger feed is refused.
    pub max_bytes: u64,
    pub max_redirects: usize,
    /// At a feed's first poll, items published at most this many days
    /// earlier go into the next digest; older ones are stored but held back.
    pub backfill_days: u64,
    /// How often the poller looks for due feeds.
    pub tick_secs: u64,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            poll_interval_secs: 900,
            timeout_secs: 20,
            max_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
            backfill_days: 0,
            tick_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub enabled: bool,
    /// Five-field cron expression (minute hour day month weekday).
    pub cron: String,
    /// IANA time zone the cron expression is read in.
    pub timezone: String,
    /// A slot missed by at most this many seconds (herald was down) still fires.
    pub catch_up_secs: u64,
    pub tick_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigestConfig {
    /// At most this many articles in one digest (newest first); keeps the
    /// HTML part well under Gmail's clipping size.
    pub max_articles: u32,
    /// Articles published longer ago than this are never put in a digest.
    pub max_article_age_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Messages in flight at once (also the SMTP pool size).
    pub concurrency: u32,
    pub batch_size: u32,
    /// How long a claimed delivery is reserved for a worker; after that
    /// another worker takes it over (a crashed worker loses nothing).
    pub lease_secs: u64,
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter,
    /// capped at 6 h.
    pub retry_base_ms: u64,
    pub poll_interval_ms: u64,
    /// Permanent (5xx) failures after which a subscriber is marked bounced.
    pub bounce_threshold: u32,
    pub smtp_timeout_secs: u64,
    /// Failures in a row to open a connection (refused, no greeting, TLS or
    /// AUTH failed) after which a server is left alone for `cooldown_secs`.
    pub failures_before_cooldown: u32,
    pub cooldown_secs: u64,
    /// Longest pause of a server that answers 421, 452 or 4.7.x; the pause
    /// starts at one second and doubles while the server keeps throttling.
    pub throttle_max_pause_secs: u64,
}

/// One SMTP server of `smtp_servers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpServerConfig {
    /// Same forms as `smtp_url`.
    pub url: String,
    /// Names the server in logs and in the shared rate-limit state; default
    /// `host:port`. Workers sharing a database share a name's limits.
    pub name: Option<String>,
    /// Share of the messages this server gets among the available ones.
    pub weight: u32,
    /// At most this many messages per second, across all workers.
    pub max_per_second: Option<f64>,
    /// At most this many messages in any `window_secs`, across all workers.
    pub max_per_window: Option<u64>,
    pub window_secs: u64,
}

impl Default for SmtpServerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            name: None,
            weight: 1,
            max_per_second: None,
            max_per_window: None,
            window_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfirmationConfig {
    pub token_ttl_hours: u64,
    /// A pending address gets at most one new confirmation mail per this
    /// many seconds, however often the form is submitted.
    pub resend_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            bind: "127.0.0.1:8080".into(),
            base_url: None,
            site_name: String::new(),
            site_name_derived: false,
            site_url: None,
            postal_address: None,
            from: "herald <herald@localhost>".into(),
            smtp_url: None,
            smtp_servers: Vec::new(),
            outbox_dir: None,
            secret: None,
            api_token: None,
            shutdown_timeout_secs: 30,
            schedule: ScheduleConfig::default(),
            digest: DigestConfig::default(),
            delivery: DeliveryConfig::default(),
            confirmation: ConfirmationConfig::default(),
            feeds: FeedsConfig::default(),
            http: HttpConfig::default(),
            signup: SignupConfig::default(),
            dkim: DkimConfig::default(),
            inbound: InboundConfig::default(),
            archive: ArchiveConfig::default(),
            doctor: DoctorConfig::default(),
            webhooks: WebhooksConfig::default(),
            network: NetworkConfig::default(),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cron: "0 7 * * *".into(),
            timezone: "UTC".into(),
            catch_up_secs: 3600,
            tick_secs: 20,
        }
    }
}

impl Default for DigestConfig {
    fn default() -> Self {
        Self {
            max_articles: 20,
            max_article_age_days: 7,
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            batch_size: 200,
            lease_secs: 120,
            max_attempts: 8,
            retry_base_ms: 60_000,
            poll_interval_ms: 1000,
            bounce_threshold: 3,
            smtp_timeout_secs: 30,
            failures_before_cooldown: 3,
            cooldown_secs: 60,
            throttle_max_pause_secs: 300,
        }
    }
}

impl Default for ConfirmationConfig {
    fn default() -> Self {
        Self {
            token_ttl_hours: 48,
            resend_interval_secs: 600,
        }
    }
}

/// Why the configuration could not be loaded: each problem names the key
/// (as written in herald.toml, or the HERALD_* variable or flag that set
/// it), where it was set, what is wrong and what to write. The value is
/// left out wherever the key may hold a secret (a password in a URL, a
/// token), so the message can be printed and logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(String);

impl LoadError {
    fn from_figment(error: figment::Error, figment: &Figment) -> Self {
        let messages: Vec<String> = error
            .into_iter()
            .map(|e| describe_load_error(&e, figment))
            .collect();
        Self(messages.join("; "))
    }
}

/// One problem of the configuration, in words (see `LoadError`).
fn describe_load_error(e: &figment::Error, figment: &Figment) -> String {
    use figment::error::Kind;
    let mut path = e.path.clone();
    if let Kind::UnknownField(field, _) = &e.kind {
        if path.last() != Some(field) {
            path.push(field.clone());
        }
    }
    let key = key_name(&path);
    let source = where_set(&path, figment, e.metadata.as_ref());
    // Anything under a secret key too: `smtp_servers[0]` holds a URL.
    let is_secret = path.iter().any(|part| crate::redact::is_secret_key(part));
    match &e.kind {
        Kind::UnknownField(field, known) => {
            let section = match path.len() {
                0 | 1 => "at the top level".to_string(),
                n => format!("in `{}`", key_name(&path[..n - 1])),
            };
            let closest = known
                .iter()
                .map(|k| (strsim::jaro_winkler(field, k), *k))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            format!(
                "unknown key `{key}`{source}: herald has no such setting{closest}; the keys {section} are {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) if is_secret => format!(
            "`{key}`{source} is refused: expected {expected} (the value is not shown: this key can hold a secret)"
        ),
        Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => format!(
            "`{key}`{source} is refused: found {found}, expected {expected}; write {}",
            in_words(expected)
        ),
        Kind::MissingField(field) => {
            let table = if key.is_empty() {
                "the configuration".to_string()
            } else {
                format!("`{key}`")
            };
            format!("{table}{source} lacks the key `{field}`: add it")
        }
        _ if is_secret => format!(
            "`{key}`{source} is refused (the value and the reason are not shown: they may hold a secret)"
        ),
        other => format!("`{key}`{source} is refused: {other}"),
    }
}

/// `smtp_servers[0].weight` for the path `smtp_servers`, `0`, `weight`.
fn key_name(path: &[String]) -> String {
    let mut key = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    key
}

/// What serde expected, as an operator would write it.
fn in_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        other => other.to_string(),
    }
}

/// " in /etc/herald/herald.toml", " from HERALD_DELIVERY__CONCURRENCY" or
/// " from --base-url": where the value at `path` was set.
fn where_set(path: &[String], figment: &Figment, fallback: Option<&figment::Metadata>) -> String {
    let found = (1..=path.len())
        .rev()
        .find_map(|n| figment.find_metadata(&path[..n].join(".")));
    let Some(metadata) = found.or(fallback) else {
        return String::new();
    };
    match &metadata.source {
        Some(figment::Source::File(file)) => format!(" in {}", file.display()),
        _ if metadata.name.contains("environment") => {
            format!(" from HERALD_{}", path.join("__").to_ascii_uppercase())
        }
        _ if metadata.name.ends_with("::Config") => String::new(),
        _ => format!(
            " from --{}",
            path.first()
                .map(|k| k.replace('_', "-"))
                .unwrap_or_default()
        ),
    }
}

impl Config {
    /// Layers the sources. `config_file` defaults to `herald.toml` in the
    /// working directory; a missing default file is fine, a missing named file
    /// is an error. `overrides` are the command-line flags that were given.
    pub fn load(config_file: Option<&Path>, overrides: Figment) -> Result<Self, LoadError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match config_file {
            Some(path) => {
                if !path.exists() {
                    return Err(LoadError(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("herald.toml")),
        }
        let figment = figment
            .merge(crate::config_env::TextEnv::new())
            .merge(overrides);
        check_base_url(&figment)?;
        let mut config: Config = figment
            .extract_lossy()
            .map_err(|e| LoadError::from_figment(e, &figment))?;
        config.resolve_paths_from_files(&figment);
        config.name_the_site();
        config.warn_if_links_are_plain_http();
        Ok(config)
    }

    /// Links sent over plain http to readers elsewhere can be read and
    /// changed on the way, and mailbox providers distrust http unsubscribe
    /// links. Loopback (the default `http://127.0.0.1:8080`) is fine.
    fn warn_if_links_are_plain_http(&self) {
        let effective = match &self.base_url {
            Some(url) => url.clone(),
            None => match BaseUrl::parse(&self.base_url()) {
                Ok(url) => url,
                Err(_) => return,
            },
        };
        if effective.is_https() || effective.is_loopback() {
            return;
        }
        if self.base_url.is_some() {
            tracing::warn!(
                base_url = %effective,
                "base_url is not https: readers' links to confirm and unsubscribe go over plain http; serve herald over https and write base_url = \"https://…\""
            );
        } else {
            tracing::warn!(
                base_url = %effective,
                "base_url is not set, so every link in mail and pages starts with http://{}; write base_url = \"https://…\" with herald's public address",
                self.bind
            );
        }
    }

    /// A relative path written in a configuration file is relative to that
    /// file, not to whatever directory herald was started in (a mail
    /// server's pipe, cron, systemd): `data_dir`, `outbox_dir`, a
    /// `sqlite://` `database_url`, each `dkim.keys` `private_key_file` and
    /// `webhooks.ses.certificate_file`. Paths from the environment and flags
    /// stay relative to the working directory.
    fn resolve_paths_from_files(&mut self, figment: &Figment) {
        let base = |key: &str| -> Option<PathBuf> {
            let metadata = figment.find_metadata(key)?;
            match metadata.source.as_ref()? {
                figment::Source::File(file) => file.parent().map(Path::to_path_buf),
                _ => None,
            }
        };
        let resolve = |path: &mut PathBuf, base: Option<PathBuf>| {
            if let Some(base) = base.filter(|_| path.is_relative()) {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.data_dir, base("data_dir"));
        if let Some(dir) = &mut self.outbox_dir {
            resolve(dir, base("outbox_dir"));
        }
        if let Some(file) = &mut self.webhooks.ses.certificate_file {
            resolve(file, base("webhooks.ses.certificate_file"));
        }
        let keys_base = base("dkim.keys");
        for key in &mut self.dkim.keys {
            resolve(&mut key.private_key_file, keys_base.clone());
        }
        if let (Some(url), Some(base)) = (&self.database_url, base("database_url")) {
            if let Some(path) = url.strip_prefix("sqlite://") {
                let file = path.split('?').next().unwrap_or(path);
                if !file.is_empty() && file != ":memory:" && Path::new(file).is_relative() {
                    self.database_url = Some(format!("sqlite://{}", base.join(path).display()));
                }
            }
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("herald.db").display()),
        }
    }

    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(url) => url.as_str().trim_end_matches('/').to_string(),
            None => format!("http://{}", self.bind.trim_end_matches('/')),
        }
    }

    /// Gives an unset (empty) `site_name` the site's host name; see
    /// [`site_name`].
    pub fn name_the_site(&mut self) {
        if self.site_name.trim().is_empty() {
            self.site_name = site_name::fallback(self);
            self.site_name_derived = true;
        }
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.outbox_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("outbox"))
    }
}

/// `base_url` read before the rest, so that a wrong value is refused with
/// a message of its own (the key, the value, where it was written and what
/// to write), not figment's generic one.
fn check_base_url(figment: &Figment) -> Result<(), LoadError> {
    let Ok(value) = figment.find_value("base_url") else {
        return Ok(());
    };
    let Some(raw) = value.as_str() else {
        return Ok(());
    };
    let Err(error) = BaseUrl::parse(raw) else {
        return Ok(());
    };
    // The defaults never hold a bad value: it came from a file, the
    // environment, or the --base-url flag (the only other layer).
    let source = match figment.find_metadata("base_url") {
        Some(metadata) => match &metadata.source {
            Some(figment::Source::File(file)) => format!(" in {}", file.display()),
            _ if metadata.name.contains("environment") => " from HERALD_BASE_URL".into(),
            _ => " from --base-url".into(),
        },
        None => String::new(),
    };
    Err(LoadError(format!(
        "base_url = {:?}{source} is refused: {error}; write base_url = {:?}",
        crate::redact::mask_url(raw),
        error.suggestion(raw),
    )))
}

/// Limits on `POST /subscribe` and on the confirmation mail it causes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignupConfig {
    /// Signup posts one client may make per minute: a burst of this many,
    /// then one more every 60/n seconds; beyond that the answer is 429 with
    /// Retry-After. A client is an IPv4 address or an IPv6 /64. 0: no limit.
    pub per_ip_per_minute: u32,
    /// Confirmation mails sent per minute, across all workers sharing the
    /// database. Signups beyond it are stored and their mails wait in the
    /// outbox for the next minute. 0: no cap.
    pub confirmations_per_minute: u32,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`
    /// names the client. Empty: the header is ignored and the connecting
    /// address is the client.
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl Default for SignupConfig {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 10,
            confirmations_per_minute: 120,
            trusted_proxies: Vec::new(),
        }
    }
}

/// An address (`10.0.0.7`) or range (`10.0.0.0/8`, `fd00::/8`) of trusted
/// proxies; anything else is a configuration error at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(pub ipnet::IpNet);

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(TrustedProxy)
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
    }
}

impl From<TrustedProxy> for String {
    fn from(p: TrustedProxy) -> String {
        p.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_servers_from_a_file_and_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            r#"
[[smtp_servers]]
url = "smtp://relay-a.example.com:25"
weight = 3
max_per_second = 50
max_per_window = 10000

[[smtp_servers]]
url = "smtp://relay-b.example.com:587?tls=required"
name = "relay-b"
"#,
        )
        .unwrap();
        let config = Config::load(Some(&path), Figment::new()).unwrap();
        let s = &config.smtp_servers;
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].weight, s[0].max_per_second), (3, Some(50.0)));
        assert_eq!((s[0].max_per_window, s[0].window_secs), (Some(10000), 3600));
        assert_eq!((s[1].weight, s[1].name.as_deref()), (1, Some("relay-b")));

        // nextest runs each test in a process of its own: this variable is
        // seen by this test only.
        std::env::set_var(
            "HERALD_SMTP_SERVERS",
            r#"[{url="smtp://127.0.0.1:2525", weight=2, max_per_second=7.5}]"#,
        );
        let config = Config::load(Some(&path), Figment::new()).unwrap();
        std::env::remove_var("HERALD_SMTP_SERVERS");
        assert_eq!(config.smtp_servers.len(), 1);
        assert_eq!(config.smtp_servers[0].url, "smtp://127.0.0.1:2525");
        assert_eq!(config.smtp_servers[0].max_per_second, Some(7.5));

        // A typo in a server's keys is an error, not ignored.
        std::fs::write(&path, "[[smtp_servers]]\nurl = \"smtp://x\"\nwieght = 2\n").unwrap();
        assert!(Config::load(Some(&path), Figment::new()).is_err());
    }

    #[test]
    fn the_archive_is_on_unless_switched_off() {
        assert!(Config::default().archive.enabled);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, "[archive]\nenabled = false\n").unwrap();
        let config = Config::load(Some(&path), Figment::new()).unwrap();
        assert!(!config.archive.enabled);

        // The environment is read as text; "false" still switches it off.
        std::fs::write(&path, "").unwrap();
        std::env::set_var("HERALD_ARCHIVE__ENABLED", "false");
        let config = Config::load(Some(&path), Figment::new());
        std::env::remove_var("HERALD_ARCHIVE__ENABLED");
        assert!(!config.unwrap().archive.enabled);

        std::fs::write(&path, "[archive]\nenabeld = false\n").unwrap();
        assert!(Config::load(Some(&path), Figment::new()).is_err());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        std::env::set_var(
            "HERALD_SIGNUP__TRUSTED_PROXIES",
            r#"["127.0.0.1", "10.0.0.0/8"]"#,
        );
        let config = Config::load(None, Figment::new()).unwrap();
        std::env::set_var("HERALD_SIGNUP__TRUSTED_PROXIES", r#"["proxy.example.com"]"#);
        let bad = Config::load(None, Figment::new());
        std::env::remove_var("HERALD_SIGNUP__TRUSTED_PROXIES");
        let proxies: Vec<String> = config
            .signup
            .trusted_proxies
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(proxies, ["127.0.0.1/32", "10.0.0.0/8"]);
        assert!(bad.is_err());
    }

    /// Issue 17, item 10: a `base_url` that would break every link stops
    /// loading with a message naming the key, the value, the file and
    /// what to write. Hostile values tried: no scheme, a bare
    /// `host:port`, ftp, javascript, a query, a fragment, credentials,
    /// empty, blank, a scheme without a host. Before, each was accepted.
    #[test]
    fn a_base_url_that_would_break_every_link_is_refused_with_what_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        for (bad, write) in [
            ("news.example.com", "https://news.example.com"),
            (
                "news.example.com/newsletter",
                "https://news.example.com/newsletter",
            ),
            ("localhost:8080", "https://localhost:8080"),
            ("ftp://news.example.com/n", "https://news.example.com/n"),
            ("javascript:alert(1)", "https://news.example.com/newsletter"),
            ("http://x/?a=1", "http://x"),
            ("https://x/#f", "https://x"),
            ("https://u:hunter2@x/n", "https://x/n"),
            ("", "https://news.example.com/newsletter"),
            ("   ", "https://news.example.com/newsletter"),
            ("https://", "https://news.example.com/newsletter"),
        ] {
            std::fs::write(&path, format!("base_url = {bad:?}\n")).unwrap();
            let message = Config::load(Some(&path), Figment::new())
                .err()
                .unwrap_or_else(|| panic!("base_url = {bad:?} was accepted"))
                .to_string();
            let shown = bad.replace("hunter2", "***");
            assert!(
                message.starts_with(&format!("base_url = {shown:?} in {}", path.display())),
                "{bad:?}: {message}"
            );
            assert!(
                message.ends_with(&format!("; write base_url = {write:?}")),
                "{bad:?}: {message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
        }

        // The same check for the environment and the command-line flag.
        std::env::set_var("HERALD_BASE_URL", "ftp://news.example.com/");
        let from_env = Config::load(None, Figment::new());
        std::env::remove_var("HERALD_BASE_URL");
        let message = from_env.unwrap_err().to_string();
        assert!(
            message.contains("base_url = \"ftp://news.example.com/\""),
            "{message}"
        );
        assert!(message.contains(" from HERALD_BASE_URL "), "{message}");
        let flag = Figment::from(Serialized::defaults(serde_json::json!({
            "base_url": "news.example.com"
        })));
        let message = Config::load(None, flag).unwrap_err().to_string();
        assert!(
            message.starts_with("base_url = \"news.example.com\" from --base-url is refused"),
            "{message}"
        );
        assert!(
            message.contains("write base_url = \"https://news.example.com\""),
            "{message}"
        );
    }

    #[test]
    fn an_https_base_url_with_a_path_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        for (good, links) in [
            (
                "https://news.example.com/newsletter",
                "https://news.example.com/newsletter",
            ),
            (
                "https://news.example.com/newsletter/",
                "https://news.example.com/newsletter",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ] {
            std::fs::write(&path, format!("base_url = {good:?}\n")).unwrap();
            let config = Config::load(Some(&path), Figment::new()).unwrap();
            assert_eq!(config.base_url(), links);
        }
        let config = Config::load(Some(&path), Figment::new()).unwrap();
        assert!(config.base_url.as_ref().unwrap().is_loopback());
        assert_eq!(Config::default().base_url(), "http://127.0.0.1:8080");
    }
}
