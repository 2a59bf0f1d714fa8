//! The command line (clap). Errors are reported with context (anyhow) here,
//! at the edge; everything below returns typed errors.
//!
//! This file holds what every command shares: the global flags, the list
//! of commands, loading the configuration and opening the state. Each
//! command group has its own file with its clap definitions next to its
//! handler: `serve.rs` (serve, migrate), `article.rs`, `feed.rs`,
//! `digest.rs`, `subscribers.rs`, `smtp.rs`, `dkim.rs`, `inbound.rs`,
//! `doctor.rs`, and `bench.rs` (only the dispatch to `crate::bench`).

use crate::config::Config;
use crate::domain::time::format_rfc3339;
use crate::startup::Role;
use crate::state::AppState;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use figment::providers::Serialized;
use figment::Figment;
use std::path::PathBuf;

// First, so that its `println!` (a closed pipe ends the command quietly)
// replaces std's in this file and in every module declared below.
#[macro_use]
pub(crate) mod out;
mod article;
mod bench;
mod digest;
mod dkim;
mod doctor;
mod feed;
mod inbound;
mod serve;
mod smtp;
mod subscribers;

pub use article::ArticleCommand;
pub use bench::BenchCommand;
pub use digest::DigestCommand;
pub use feed::FeedCommand;
use out::shown;
pub use subscribers::SubscribersCommand;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Self-hosted newsletter service: double opt-in signup, digests of new articles, SMTP delivery.",
    long_about = "Self-hosted newsletter service: double opt-in signup, digests of new articles, SMTP delivery.\n\n\
Configuration is layered: built-in defaults < herald.toml (or --config) < HERALD_* environment variables < these flags. \
With nothing configured herald uses a SQLite file in ./data, listens on 127.0.0.1:8080 and writes outgoing mail as .eml files into ./data/outbox."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, serde::Serialize)]
pub struct GlobalArgs {
    /// Configuration file (default: ./herald.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite file and the outbox [env: HERALD_DATA_DIR].
    #[arg(long, global = true, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER:PASS@HOST/DB [env: HERALD_DATABASE_URL].
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// smtp://host:port, smtp://host:port?tls=required, smtps://user:pass@host [env: HERALD_SMTP_URL].
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// Address to listen on, e.g. 127.0.0.1:8080 [env: HERALD_BIND].
    #[arg(long, global = true, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Public URL used in links, e.g. https://news.example.com/newsletter [env: HERALD_BASE_URL].
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server, the scheduler and the delivery worker (applies migrations first).
    Serve {
        /// Run only part of herald in this process (for several processes on PostgreSQL).
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Add and list articles.
    #[command(subcommand)]
    Article(ArticleCommand),
    /// Follow the site's RSS / Atom / JSON feeds.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Preview, send and control digests.
    #[command(subcommand)]
    Digest(DigestCommand),
    /// Measure throughput and scale on this machine (needs Postfix's smtp-sink and smtp-source).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Look at subscribers.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// See the SMTP servers' state and resume one that herald stopped.
    #[command(subcommand)]
    Smtp(smtp::SmtpCommand),
    /// DKIM keys: generate one and the DNS record to publish.
    #[command(subcommand)]
    Dkim(dkim::DkimCommand),
    /// Read one mail on stdin and act on it: a bounce report (DSN), a
    /// complaint (ARF feedback report) or an unsubscribe by mail. For a
    /// Postfix pipe transport or a procmail rule. Exit status 75 (try
    /// again later, the mail server keeps the message) whenever herald
    /// could not act: configuration, database, I/O, anything.
    Inbound,
    /// Check what receivers will find: SPF, DKIM (the published key against
    /// herald's), DMARC and their alignment with From, and the settings a
    /// bulk sender needs. Prints what to publish or fix; exit status 1 when
    /// something is wrong or could not be checked.
    Doctor {
        /// Resolver to ask, IP:PORT (default: doctor.resolver, else the system's).
        #[arg(long, value_name = "ADDR")]
        resolver: Option<String>,
    },
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(log_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .try_init();
}

/// Log lines are coloured only for a person: when stderr is a terminal and
/// `NO_COLOR` (<https://no-color.org>) is unset or empty. A file, a pipe or
/// journald gets plain text.
fn log_colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let overrides = Figment::from(Serialized::defaults(global));
    Config::load(global.config.as_deref(), overrides).context("loading the configuration")
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        Command::Bench(cmd) => return bench::run(cmd).await,
        Command::Inbound => return inbound::run(&cli.global).await,
        other => other,
    };
    let config = load_config(&cli.global)?;
    match command {
        Command::Serve { role } => serve::serve(config, role).await,
        Command::Migrate => serve::migrate(config).await,
        Command::Article(cmd) => article::run(config, cmd).await,
        Command::Feed(cmd) => feed::run(config, cmd).await,
        Command::Digest(cmd) => digest::run(config, cmd).await,
        Command::Subscribers(cmd) => subscribers::run(config, cmd).await,
        Command::Smtp(cmd) => smtp::run(config, cmd).await,
        Command::Dkim(cmd) => dkim::run(&config, cmd),
        Command::Inbound => unreachable!("handled before the configuration is loaded"),
        Command::Doctor { resolver } => doctor::run(config, resolver).await,
        Command::Bench(cmd) => bench::run(cmd).await,
    }
}

/// The state of a command other than `serve` and `migrate`: the database
/// they created, never a new one.
async fn state(config: Config) -> anyhow::Result<AppState> {
    AppState::open_existing(config).await.map_err(|e| {
        let doing = e.doing();
        anyhow::Error::new(e).context(doing)
    })
}

fn when(ms: Option<i64>) -> String {
    ms.map(format_rfc3339).unwrap_or_else(|| "never".into())
}
