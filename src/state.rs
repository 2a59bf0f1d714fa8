//! `AppState`: what every part of herald works with (store, mailer, link
//! signer, configuration), built once from the configuration by `serve`,
//! by every other command and by the tests.
//!
//! It has a module of its own so that dependencies point one way, from
//! the outside in:
//!
//! ```text
//! main -> cli -> startup -> web, scheduler, feeds::Poller
//!                   |         |
//!                   v         v
//!                 state <-- web/*, webhooks/*, subscriptions, inbound
//!                   |
//!                   v
//!  store, mail, config, delivery, signup_writer, domain (and the two
//!  leaves it holds: web::rate_limit::SignupLimiter, webhooks::Webhooks)
//! ```
//!
//! `startup` (binding a port, running the long-lived tasks, signals) uses
//! `state`; `state` never uses `startup`, and nothing below the
//! application layer (web handlers, webhooks, subscriptions, inbound)
//! imports `startup`. `state` reaches into `web` and `webhooks` only for
//! the two values it holds: `web::rate_limit` imports nothing of herald's
//! but the configuration; `webhooks::Webhooks` is built from `[webhooks]`.

use crate::config::Config;
use crate::delivery::Worker;
use crate::domain::token::{new_secret, LinkSigner};
use crate::mail::Mailer;
use crate::scheduler::Schedule;
use crate::signup_writer::SignupWriter;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Mail(#[from] crate::mail::Error),
    #[error(transparent)]
    Schedule(#[from] crate::scheduler::Error),
    #[error(transparent)]
    Feeds(#[from] crate::feeds::Error),
    #[error(transparent)]
    Webhooks(#[from] crate::webhooks::ConfigError),
}

impl Error {
    /// What herald was doing when this went wrong, for the message an
    /// operator reads: the part of the configuration or the service that
    /// failed, not a blanket "opening the database".
    pub fn doing(&self) -> &'static str {
        match self {
            Self::Store(_) => "opening herald's database",
            Self::Mail(crate::mail::Error::Dkim(_)) => "reading the DKIM keys ([[dkim.keys]])",
            Self::Mail(
                crate::mail::Error::SmtpUrl(_)
                | crate::mail::Error::SmtpServers(_)
                | crate::mail::Error::OutboxDir(..),
            ) => "reading the SMTP settings (smtp_url, smtp_servers)",
            Self::Mail(_) => "reading the mail settings (from, [inbound])",
            Self::Schedule(_) => "reading the [schedule] settings",
            Self::Feeds(_) => "reading the [feeds] settings",
            Self::Webhooks(_) => "reading the [webhooks] settings",
        }
    }
}

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub mailer: Mailer,
    pub signer: LinkSigner,
    /// Public URL without a trailing slash.
    pub base_url: String,
    /// Wakes the delivery worker when work was just queued.
    pub wake_worker: Arc<Notify>,
    /// Writes new signups in batches (group commit).
    pub signups: SignupWriter,
    /// Who posts signups, and how often they may (`[signup]`).
    pub signup_limiter: Arc<crate::web::rate_limit::SignupLimiter>,
    /// The relay webhooks that are configured, with their keys (`[webhooks]`).
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

impl AppState {
    /// Connects, migrates, and loads or creates the link-signing secret
    /// (`serve`, and the tests).
    pub async fn build(config: Config) -> Result<Self, Error> {
        Self::build_with(config, true).await
    }

    /// For every command but `serve` and `migrate`: opens the database they
    /// created and its link secret, creating neither.
    pub async fn open_existing(config: Config) -> Result<Self, Error> {
        Self::build_with(config, false).await
    }

    async fn build_with(mut config: Config, create: bool) -> Result<Self, Error> {
        config.name_the_site();
        // An out-of-range feed setting is refused at start, not when a
        // feed is first added.
        crate::feeds::default_settings(&config.feeds)?;
        // So is a schedule that could never fire, before any database work.
        if config.schedule.enabled {
            Schedule::parse(&config.schedule)?;
        }
        let store = if create {
            Store::connect(&config.database_url()).await?
        } else {
            Store::open_existing(&config.database_url()).await?
        };
        store.migrate().await?;
        let secret = match &config.secret {
            Some(secret) => secret.clone(),
            None if create => {
                store
                    .setting_or_insert("link_secret", &new_secret())
                    .await?
            }
            None => store.setting("link_secret").await?.ok_or_else(|| {
                crate::store::Error::NoDatabase(format!(
                    "{} (it has no link secret yet)",
                    crate::redact::mask_url(&config.database_url())
                ))
            })?,
        };
        for url in &config.feeds.urls {
            let (id, created) = crate::feeds::add_feed(&store, &config.feeds, url).await?;
            if created {
                tracing::info!(feed_id = id, url = %crate::redact::mask_url(url), "feed from the configuration added");
            }
        }
        let mailer = Mailer::from_config(&config)?;
        let webhooks = Arc::new(crate::webhooks::Webhooks::from_config(&config.webhooks)?);
        Ok(Self {
            webhooks,
            signup_limiter: crate::web::rate_limit::SignupLimiter::new(&config.signup),
            signups: SignupWriter::start(store.clone()),
            store,
            base_url: config.base_url(),
            config: Arc::new(config),
            mailer,
            signer: LinkSigner::new(&secret),
            wake_worker: Arc::new(Notify::new()),
        })
    }

    /// The public URL of a path of herald's (`/confirm/…`): every URL a
    /// page or a mail contains is built here, from `base_url`, so herald
    /// behind a path (`https://news.example.com/newsletter`) links to itself.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn worker(&self) -> Worker {
        Worker::new(
            self.store.clone(),
            self.mailer.clone(),
            self.config.clone(),
            self.signer.clone(),
            self.base_url.clone(),
            self.wake_worker.clone(),
        )
    }
}
