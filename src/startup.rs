//! Running herald: binding the HTTP port, starting the long-running tasks
//! (web server, scheduler, feed poller, delivery worker) over an
//! `AppState` built by `crate::state`, and stopping them on a signal.
//! Only `main` and the CLI's `serve` use this module; see `crate::state`
//! for the direction of dependencies.

use crate::config::Config;
use crate::scheduler::{self, Schedule};
use crate::state::AppState;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Building the state, or the tasks over it.
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error("bind = {0:?}: cannot listen there ({1}); write an address and port this machine has, such as \"127.0.0.1:8080\"")]
    Bind(String, std::io::Error),
}

impl Error {
    /// What herald was doing when this went wrong, for the message an
    /// operator reads (`state::Error::doing`).
    pub fn doing(&self) -> &'static str {
        match self {
            Self::State(e) => e.doing(),
            Self::Bind(..) => "listening for HTTP",
        }
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
            Ok(json) => state
                .store
                .set_setting(crate::config::mail_look::SETTING, &json)
                .await
                .map_err(crate::state::Error::from)?,
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
            let poller = crate::feeds::Poller::new(state.store.clone(), state.config.clone())
                .map_err(crate::state::Error::from)?;
            tasks.spawn(poller.run(cancel.child_token()));
            if state.config.schedule.enabled {
                let schedule =
                    Schedule::parse(&state.config.schedule).map_err(crate::state::Error::from)?;
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
