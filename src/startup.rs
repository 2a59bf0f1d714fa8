//! Building herald from its configuration, once, for `main` and the tests
//! alike: store, mailer, signer, and the long-running tasks.

use crate::config::Config;
use crate::delivery::Worker;
use crate::domain::token::{new_secret, LinkSigner};
use crate::mail::Mailer;
use crate::scheduler::{self, Schedule};
use crate::signup_writer::SignupWriter;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
    #[error("bind = {0:?}: cannot listen there ({1}); write an address and port this machine has, such as \"127.0.0.1:8080\"")]
    Bind(String, std::io::Error),
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
            Self::Bind(..) => "listening for HTTP",
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

/// Which parts a process runs (`herald serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Web server, scheduler and delivery worker.
    All,
    /// Only the web server.
    Web,
    /// Only the scheduler and the delivery worker.
    Worker,
}

/// A herald that is listening and ready to run.
pub struct Application {
    state: AppState,
    listener: Option<TcpListener>,
    addr: Option<SocketAddr>,
    role: Role,
}

impl Application {
    /// Binds first, so that with port 0 (tests) the default base URL names
    /// the port actually bound.
    pub async fn build(mut config: Config, role: Role) -> Result<Self, Error> {
        let bind = config.bind.clone();
        let (listener, addr) = if role == Role::Worker {
            (None, None)
        } else {
            let listener = TcpListener::bind(&bind)
                .await
                .map_err(|e| Error::Bind(bind.clone(), e))?;
            let addr = listener
                .local_addr()
                .map_err(|e| Error::Bind(bind.clone(), e))?;
            if config.base_url.is_none() {
                config.base_url = Some(crate::config::BaseUrl::http(addr));
            }
            (Some(listener), Some(addr))
        };
        let state = AppState::build(config).await?;
        // What every other process renders mail with (`config::mail_look`).
        let look = crate::config::mail_look::MailLook::of(&state.config);
        match serde_json::to_string(&look) {
            Ok(json) => {
                state
                    .store
                    .set_setting(crate::config::mail_look::SETTING, &json)
                    .await?
            }
            Err(e) => tracing::warn!(error = %e, "could not record how mail looks"),
        }
        Ok(Self {
            state,
            listener,
            addr,
            role,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs until `cancel` fires, then shuts down gracefully: the web server
    /// stops accepting, the worker stops claiming and finishes or releases
    /// what it holds, all within `shutdown_timeout_secs`.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), Error> {
        let state = self.state;
        let mut tasks = tokio::task::JoinSet::new();
        if self.role != Role::Web {
            let worker = state.worker();
            tasks.spawn(worker.run(cancel.child_token()));
            let poller = crate::feeds::Poller::new(state.store.clone(), state.config.clone())?;
            tasks.spawn(poller.run(cancel.child_token()));
            if state.config.schedule.enabled {
                let schedule = Schedule::parse(&state.config.schedule)?;
                tasks.spawn(scheduler::run(
                    state.store.clone(),
                    state.config.clone(),
                    schedule,
                    state.wake_worker.clone(),
                    cancel.child_token(),
                ));
            }
        }
        let deadline = Duration::from_secs(state.config.shutdown_timeout_secs);
        if let Some(listener) = self.listener {
            if let Some(addr) = self.addr {
                tracing::info!(%addr, base_url = %state.base_url, "herald is listening");
            }
            let app = crate::web::router(state.clone());
            let limits = state.config.http.clone();
            let shutdown = cancel.clone();
            tasks.spawn(async move {
                crate::web::server::serve(listener, app, &limits, shutdown, deadline).await
            });
        }
        cancel.cancelled().await;
        let drained = tokio::time::timeout(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?deadline,
                "shutdown deadline passed; unfinished work is left to lease expiry"
            );
            tasks.abort_all();
        }
        // A task aborted at the deadline may never hand its connection back;
        // closing the pool must not wait for it forever.
        if tokio::time::timeout(Duration::from_secs(5), state.store.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections did not close in time; exiting anyway");
        }
        Ok(())
    }
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        token.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown requested");
        token.cancel();
    });
}
