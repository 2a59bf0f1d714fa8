//! The command line (clap). Errors are reported with context (anyhow) here,
//! at the edge; everything below returns typed errors.

use crate::config::Config;
use crate::digest::{self, CreateOutcome};
use crate::domain::time::{format_rfc3339, now_millis};
use crate::scheduler::Schedule;
use crate::startup::{self, Application, Role};
use crate::state::AppState;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use figment::providers::Serialized;
use figment::Figment;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

// First, so that its `println!` (a closed pipe ends the command quietly)
// replaces std's in this file and in every module declared below.
#[macro_use]
pub(crate) mod out;
mod article;
mod dkim;
mod feed;
mod smtp;

pub use article::ArticleCommand;
pub use feed::FeedCommand;
use out::shown;

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

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Render the next digest (HTML and text) without sending anything.
    Preview {
        /// Write the HTML part here (default: print both parts to stdout).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Write the text part here.
        #[arg(long, value_name = "FILE")]
        text: Option<PathBuf>,
    },
    /// Create the digest that is due on the schedule, or one now with --now, and queue it.
    Send {
        /// Do not wait for the schedule: create a digest of the new articles now.
        #[arg(long)]
        now: bool,
        /// A retried command with the same key does not create a second digest.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Show one digest's progress, or the recent digests and the next scheduled run.
    Status { id: Option<i64> },
    /// Stop sending a digest; messages in flight finish.
    Pause { id: i64 },
    /// Continue a paused digest where it stopped.
    Resume { id: i64 },
    /// Stop a digest for good; says how many recipients were left unsent.
    Cancel { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Delivery throughput against smtp-source's ceiling at each concurrency, and the worker's peak RSS.
    Send {
        #[arg(long, default_value_t = 20_000)]
        subscribers: i64,
        /// Comma-separated concurrencies.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        concurrency: Vec<usize>,
        #[arg(long, value_enum, default_value_t = crate::bench::Databases::Both)]
        database: crate::bench::Databases,
        /// A PostgreSQL server where the benchmark may create databases.
        #[arg(long, env = "PG_TEST_URL")]
        postgres_url: Option<String>,
        /// Message size in bytes.
        #[arg(long, default_value_t = 20_000)]
        size: usize,
        /// Comma-separated DKIM signing runs (keys made for the run).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
        dkim: Vec<crate::bench::Signing>,
        /// Measure each row this many times (ceiling, then herald) and
        /// report medians: on a shared machine one run can be far off.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Time queueing one digest for N confirmed subscribers.
    Enqueue {
        #[arg(long, default_value_t = 1_000_000)]
        subscribers: i64,
        #[arg(long, value_enum, default_value_t = crate::bench::Databases::Both)]
        database: crate::bench::Databases,
        #[arg(long, env = "PG_TEST_URL")]
        postgres_url: Option<String>,
    },
    /// Per-copy rendering time: lettre's builder for every copy against the
    /// digest built once and spliced per copy.
    Render {
        #[arg(long, default_value_t = 20_000)]
        copies: u32,
    },
    /// POST /subscribe under wrk against a bare axum + sqlx single-INSERT handler (needs wrk).
    Subscribe {
        #[arg(long, value_enum, default_value_t = crate::bench::Databases::Both)]
        database: crate::bench::Databases,
        /// A PostgreSQL server where the benchmark may create databases.
        #[arg(long, env = "PG_TEST_URL")]
        postgres_url: Option<String>,
        /// Length of each measured wrk run, in seconds (after a 2 s warm-up).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        duration_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// List subscribers (and the count per status).
    List {
        /// pending, confirmed, unsubscribed or bounced.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// The newest bounces, complaints and unsubscribes by mail.
    Events {
        /// bounce, soft_bounce, complaint or unsubscribe.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
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
        Command::Bench(cmd) => return bench(cmd).await,
        Command::Inbound => return inbound(&cli.global).await,
        other => other,
    };
    let config = load_config(&cli.global)?;
    match command {
        Command::Serve { role } => serve(config, role).await,
        Command::Migrate => {
            let store = crate::store::Store::connect(&config.database_url())
                .await
                .context("connecting to the database")?;
            store.migrate().await.context("applying migrations")?;
            // The link secret is made here or by serve, never by another command.
            if config.secret.is_none() {
                store
                    .setting_or_insert("link_secret", &crate::domain::token::new_secret())
                    .await
                    .context("storing the link secret")?;
            }
            println!("migrations applied ({})", store.backend_name());
            Ok(())
        }
        Command::Article(cmd) => article::run(config, cmd).await,
        Command::Feed(cmd) => feed::run(config, cmd).await,
        Command::Digest(cmd) => digest_cmd(config, cmd).await,
        Command::Subscribers(cmd) => subscribers(config, cmd).await,
        Command::Smtp(cmd) => smtp::run(config, cmd).await,
        Command::Dkim(cmd) => dkim::run(&config, cmd),
        Command::Inbound => unreachable!("handled before the configuration is loaded"),
        Command::Doctor { resolver } => doctor(config, resolver).await,
        Command::Bench(cmd) => bench(cmd).await,
    }
}

/// Benchmarks make their own databases and services: no configuration.
async fn bench(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Send {
            subscribers,
            concurrency,
            database,
            postgres_url,
            size,
            dkim,
            rounds,
        } => {
            crate::bench::send(
                subscribers,
                &concurrency,
                database,
                postgres_url.as_deref(),
                size,
                &dkim,
                rounds,
            )
            .await
        }
        BenchCommand::Enqueue {
            subscribers,
            database,
            postgres_url,
        } => crate::bench::enqueue(subscribers, database, postgres_url.as_deref()).await,
        BenchCommand::Render { copies } => crate::bench::render(copies),
        BenchCommand::Subscribe {
            database,
            postgres_url,
            duration_secs,
        } => {
            crate::bench_subscribe::subscribe(database, postgres_url.as_deref(), duration_secs)
                .await
        }
    }
}

async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    if config.site_name_derived {
        tracing::warn!(
            site_name = %config.site_name,
            "no site_name configured (HERALD_SITE_NAME): pages and mail call the site by this name; set site_name to the name readers know"
        );
    }
    if config
        .postal_address
        .as_deref()
        .is_none_or(|a| a.trim().is_empty())
    {
        tracing::warn!(
            "no postal_address configured: digests carry no postal address in their footer, which the US CAN-SPAM Act requires of commercial mail"
        );
    }
    if config.api_token.as_deref().is_none_or(str::is_empty) {
        tracing::warn!(
            "no api_token configured (HERALD_API_TOKEN): the /api endpoints refuse every request"
        );
    }
    if config.smtp_url.is_none() && config.smtp_servers.is_empty() {
        tracing::info!(outbox = %config.outbox_dir().display(), "no SMTP server configured (HERALD_SMTP_URL): outgoing mail is written as .eml files");
    }
    let app = Application::build(config, role).await.map_err(|e| {
        let doing = format!("starting herald: {}", e.doing());
        anyhow::Error::new(e).context(doing)
    })?;
    let cancel = CancellationToken::new();
    startup::cancel_on_signals(cancel.clone());
    app.run(cancel).await.context("running herald")?;
    tracing::info!("herald stopped");
    Ok(())
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

/// The configuration a digest is rendered with from this shell: the
/// look `herald serve` recorded when it started, so a digest created here
/// looks like one the server creates (`config::mail_look`). Says on stderr
/// which of this shell's settings differ.
async fn servers_look(state: &AppState) -> anyhow::Result<Config> {
    use crate::config::mail_look::{MailLook, SETTING};
    let mut config = (*state.config).clone();
    let Some(json) = state.store.setting(SETTING).await? else {
        return Ok(config);
    };
    let server: MailLook = match serde_json::from_str(&json) {
        Ok(look) => look,
        Err(e) => {
            tracing::warn!(error = %e, "the server's recorded mail settings could not be read; using this command's");
            return Ok(config);
        }
    };
    let differences = MailLook::of(&config).differences(&server);
    if !differences.is_empty() {
        eprintln!(
            "note: this command's configuration differs from the one `herald serve` last started with; the digest is rendered with the server's, so it looks the same whoever creates it:"
        );
        for d in &differences {
            eprintln!("  {d}");
        }
        eprintln!("  (to change how mail looks, change the server's configuration and restart it)");
    }
    server.apply_to(&mut config);
    Ok(config)
}

async fn digest_cmd(config: Config, cmd: DigestCommand) -> anyhow::Result<()> {
    let state = state(config).await?;
    let store = &state.store;
    match cmd {
        DigestCommand::Preview { html, text } => {
            let look = servers_look(&state).await?;
            let now = now_millis();
            let Some(preview) = digest::preview(store, &look, now).await? else {
                let quiet = digest::quiet(store, &look, now).await?;
                println!("nothing would be sent: {quiet}");
                return Ok(());
            };
            let r = preview.rendered;
            let sample = format!("{}/unsubscribe/PREVIEW", state.base_url);
            let (h, t) = r
                .bodies
                .filled(&sample, &format!("{}/archive", state.base_url));
            match (&html, &text) {
                (None, None) => println!("Subject: {}\n\n{t}\n\n----- HTML -----\n{h}", r.subject),
                _ => {
                    if let Some(p) = &html {
                        std::fs::write(p, &h)
                            .with_context(|| format!("writing {}", p.display()))?;
                    }
                    if let Some(p) = &text {
                        std::fs::write(p, &t)
                            .with_context(|| format!("writing {}", p.display()))?;
                    }
                    println!(
                        "Subject: {} ({} articles, HTML {} bytes)",
                        r.subject,
                        preview.article_ids.len(),
                        h.len()
                    );
                }
            }
        }
        DigestCommand::Send {
            now,
            idempotency_key,
        } => {
            let (slot, up_to) = if now {
                (
                    digest::manual_slot(idempotency_key.as_deref()),
                    now_millis(),
                )
            } else {
                let schedule = Schedule::parse(&state.config.schedule)?;
                let catch_up =
                    chrono::Duration::seconds(state.config.schedule.catch_up_secs as i64);
                let Some(at) = schedule.latest_slot(chrono::Utc::now(), catch_up) else {
                    bail!("no scheduled digest is due now; use --now to send one anyway");
                };
                (schedule.slot_name(at), at.timestamp_millis())
            };
            let look = servers_look(&state).await?;
            match digest::create(store, &look, &slot, up_to).await? {
                CreateOutcome::Created(id) => {
                    let d = store.digest_by_id(id).await?;
                    let recipients = d.map(|d| d.recipients).unwrap_or(0);
                    println!("digest {id} queued for {recipients} subscribers; a running `herald serve` delivers it");
                }
                CreateOutcome::AlreadyExists(id) => {
                    println!("digest {id} already exists for this slot; nothing new queued")
                }
                CreateOutcome::NothingNew(quiet) => println!("nothing to send: {quiet}"),
            }
        }
        DigestCommand::Status { id: Some(id) } => {
            let Some(d) = store.digest_by_id(id).await? else {
                bail!("no digest {id}; `herald digest status` lists the recent digests with their ids");
            };
            let c = store.digest_counts(id, now_millis()).await?;
            println!(
                "digest {}  {}  created {}",
                d.id,
                d.status,
                format_rfc3339(d.created_at)
            );
            println!("subject: {}", shown(&d.subject));
            println!(
                "recipients {}: sent {}, queued {} (retrying {}), in flight {}, stuck {}, failed {}, skipped {}",
                d.recipients, c.sent, c.queued, c.retrying, c.in_flight, c.stuck, c.failed, c.skipped
            );
            let r = store.digest_event_counts(id).await?;
            println!(
                "reported after sending: bounces {}, soft bounces {}, complaints {}, unsubscribes by mail {}",
                r.bounces, r.soft_bounces, r.complaints, r.unsubscribes_by_mail
            );
            for (email, error) in store.failed_deliveries(id, 50).await? {
                println!(
                    "  failed {}: {}",
                    shown(&email),
                    shown(&error.unwrap_or_default())
                );
            }
            let (last_error, servers) = store.delivery_problems(&d).await?;
            if let Some(error) = last_error {
                println!("last error: {}", shown(&error));
            }
            for s in servers {
                let what = if s.state == "stopped" {
                    "stopped (configuration error: fix it, then resume the server or restart herald)"
                } else {
                    "failing"
                };
                println!(
                    "SMTP server {} {what} since {}: {}",
                    shown(&s.server),
                    format_rfc3339(s.since),
                    shown(&s.last_error.unwrap_or_default())
                );
            }
        }
        DigestCommand::Status { id: None } => {
            for d in store.recent_digests(10).await? {
                let c = store.digest_counts(d.id, now_millis()).await?;
                let r = store.digest_event_counts(d.id).await?;
                println!(
                    "{:>5}  {:<9}  {}  sent {}/{}  failed {}  bounces {}  complaints {}  {}",
                    d.id,
                    d.status,
                    format_rfc3339(d.created_at),
                    c.sent,
                    d.recipients,
                    c.failed,
                    r.bounces,
                    r.complaints,
                    shown(&d.subject)
                );
            }
            for s in store.smtp_health().await? {
                if matches!(s.state.as_str(), "failing" | "stopped") {
                    println!(
                        "SMTP server {} {} since {}: {}",
                        shown(&s.server),
                        s.state,
                        format_rfc3339(s.since),
                        shown(&s.last_error.unwrap_or_default())
                    );
                }
            }
            if state.config.schedule.enabled {
                let schedule = Schedule::parse(&state.config.schedule)?;
                if let Some(next) = schedule.upcoming(chrono::Utc::now(), 1).first() {
                    println!("next scheduled run: {}", next.to_rfc3339());
                }
            }
        }
        DigestCommand::Pause { id } => {
            if !store
                .set_digest_status(id, &["queued", "sending"], "paused")
                .await?
            {
                bail!(not_changed(store, id, "paused", "queued or sending").await?);
            }
            println!("digest {id} paused: no new messages are claimed; messages in flight finish");
        }
        DigestCommand::Resume { id } => {
            if !store.set_digest_status(id, &["paused"], "sending").await? {
                bail!(not_changed(store, id, "resumed", "paused").await?);
            }
            println!("digest {id} resumed");
        }
        DigestCommand::Cancel { id } => match store.cancel_digest(id, now_millis()).await? {
            Some(unsent) => println!("digest {id} cancelled; {unsent} recipients were left unsent"),
            None => bail!(not_changed(store, id, "cancelled", "queued, sending or paused").await?),
        },
    }
    Ok(())
}

/// Why `digest pause|resume|cancel ID` changed nothing: no such digest
/// (and where to find the ids), or the state it is in.
async fn not_changed(
    store: &crate::store::Store,
    id: i64,
    verb: &str,
    only_when: &str,
) -> anyhow::Result<String> {
    Ok(match store.digest_by_id(id).await? {
        None => format!("no digest {id}; `herald digest status` lists the recent digests with their ids"),
        Some(d) => format!(
            "digest {id} is {}: only a {only_when} digest can be {verb} (`herald digest status {id}` shows it)",
            d.status
        ),
    })
}

async fn doctor(config: Config, resolver: Option<String>) -> anyhow::Result<()> {
    let resolver = match resolver.or_else(|| config.doctor.resolver.clone()) {
        Some(r) => Some(
            r.parse::<std::net::SocketAddr>()
                .with_context(|| format!("resolver {r:?}: expected IP:PORT, e.g. 127.0.0.1:53"))?,
        ),
        None => None,
    };
    let timeout = std::time::Duration::from_secs(config.doctor.timeout_secs.clamp(1, 60));
    let mut findings = crate::doctor::check(&config, resolver, timeout).await?;
    findings.extend(crate::doctor::seen_by_herald(&config).await);
    if !crate::doctor::print(&findings) {
        std::process::exit(1);
    }
    Ok(())
}

/// `herald inbound`: one message on stdin. Anything herald does not act
/// on exits 0 (the mail is consumed, not bounced back). Every failure exits
/// 75, EX_TEMPFAIL, so the MTA keeps the message and tries again: a
/// missing, unreadable or invalid configuration (Postfix's pipe would treat
/// exit 1 as permanent and drop the DSN), no database, a database that is
/// down, an I/O error, and a panic anywhere in the process.
async fn inbound(global: &GlobalArgs) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    const EX_TEMPFAIL: i32 = 75;
    std::panic::set_hook(Box::new(|info| {
        eprintln!("herald inbound: {info}");
        std::process::exit(EX_TEMPFAIL);
    }));
    let handled = async {
        let mut raw = Vec::new();
        std::io::stdin()
            .take(crate::inbound::MAX_MESSAGE_BYTES as u64 + 1)
            .read_to_end(&mut raw)
            .context("reading the message on stdin")?;
        let config = load_config(global)?;
        let state = state(config).await?;
        let handled = crate::inbound::handle(&state, raw, "stdin").await?;
        let line = serde_json::to_string(&handled)?;
        writeln!(std::io::stdout(), "{line}").context("writing the outcome")?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = handled {
        eprintln!("herald inbound: {}", shown(&format!("{e:#}")));
        std::process::exit(EX_TEMPFAIL);
    }
    Ok(())
}

async fn subscribers(config: Config, cmd: SubscribersCommand) -> anyhow::Result<()> {
    let state = state(config).await?;
    match cmd {
        SubscribersCommand::List { status, limit } => {
            if let Some(s) = &status {
                if crate::domain::SubscriberStatus::parse(s).is_none() {
                    bail!("unknown status {s:?}: use pending, confirmed, unsubscribed or bounced");
                }
            }
            for (status, n) in state.store.subscriber_counts().await? {
                println!("{status}: {n}");
            }
            for s in state
                .store
                .list_subscribers(status.as_deref(), limit)
                .await?
            {
                println!(
                    "{:>6}  {:<12}  {}  {}",
                    s.id,
                    s.status,
                    shown(&s.email),
                    shown(&s.name.unwrap_or_default())
                );
            }
        }
        SubscribersCommand::Events { kind, limit } => {
            if let Some(k) = &kind {
                if crate::store::EventKind::parse(k).is_none() {
                    bail!("unknown kind {k:?}: use bounce, soft_bounce, complaint or unsubscribe");
                }
            }
            for e in state
                .store
                .recent_subscriber_events(kind.as_deref(), limit)
                .await?
            {
                println!(
                    "{}  {:<11}  {:<8}  {}  digest {}  {}",
                    format_rfc3339(e.created_at),
                    e.kind,
                    shown(&e.source),
                    shown(&e.email),
                    e.digest_id.map_or("-".to_string(), |d| d.to_string()),
                    shown(&e.detail)
                );
            }
        }
    }
    Ok(())
}
