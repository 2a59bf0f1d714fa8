//! `herald smtp list|check|resume`: the SMTP servers' state as the delivery
//! workers last saw it, trying the configured servers now, and taking a
//! stopped server back into use.
//!
//! Resuming does not re-read the configuration: a running `herald serve`
//! keeps the servers (URL, password, `ca_file`, `tls_pin`) it was started
//! with and tries the stopped one again as it was. A corrected
//! configuration takes effect when `herald serve` restarts; `smtp check`
//! tries it before that.

use crate::config::Config;
use crate::delivery::servers;
use crate::domain::time::format_rfc3339;
use anyhow::{bail, Context};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SmtpCommand {
    /// Each SMTP server's state (ok, failing, stopped), since when, and its last error.
    List,
    /// Connect to each configured SMTP server as a send would (TLS, AUTH),
    /// then QUIT: says what works and, for what does not, what to change.
    /// Reads the configuration as it is now; sends and stores nothing.
    Check {
        /// Only this server (its name as `smtp list` shows it).
        name: Option<String>,
    },
    /// Take a server that herald stopped (refused password, untrusted
    /// certificate) back into use, once the relay or its account is fixed.
    /// A running `herald serve` keeps the configuration it started with: a
    /// changed URL, password, ca_file or tls_pin needs a restart.
    Resume {
        /// The server's name as `smtp list` shows it (host:port unless named).
        name: String,
    },
}

pub async fn run(config: Config, cmd: SmtpCommand) -> anyhow::Result<()> {
    if let SmtpCommand::Check { name } = cmd {
        return check(&config, name.as_deref()).await;
    }
    let store = crate::store::Store::open_existing(&config.database_url())
        .await
        .context("opening herald's database")?;
    store.migrate().await.context("applying migrations")?;
    match cmd {
        SmtpCommand::List => {
            let rows = servers::list(&store).await?;
            if rows.is_empty() {
                println!("no SMTP server has been used yet");
            }
            for s in rows {
                println!(
                    "{}  {}  since {}{}",
                    super::shown(&s.server),
                    s.state,
                    format_rfc3339(s.since),
                    s.last_error
                        .map(|e| format!("  last error: {}", super::shown(&e)))
                        .unwrap_or_default()
                );
            }
        }
        SmtpCommand::Resume { name } => {
            let shown = super::shown(&name);
            let rows = servers::list(&store).await?;
            let configured = crate::mail::server_names(&config).unwrap_or_default();
            let Some(row) = rows.iter().find(|r| r.server == name) else {
                if configured.contains(&name) {
                    bail!("SMTP server {shown:?} has not been used yet, so it is not stopped: nothing to resume");
                }
                let mut names = configured;
                names.extend(rows.iter().map(|r| r.server.clone()));
                names.sort();
                names.dedup();
                let known = if names.is_empty() {
                    "none (mail goes to the outbox directory)".to_string()
                } else {
                    names
                        .iter()
                        .map(|n| super::shown(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                bail!("no SMTP server named {shown:?}; configured: {known} (`herald smtp list` shows each server's state)");
            };
            if row.state != "stopped" || !servers::resume(&store, &name).await? {
                bail!(
                    "SMTP server {shown:?} is {}, not stopped: nothing to resume (`herald smtp list` shows each server's state)",
                    super::shown(&row.state)
                );
            }
            println!("{shown} resumed: a running `herald serve` tries it again within seconds, with the configuration it was started with.");
            println!("This command does not re-read the configuration: a changed URL, password, ca_file or tls_pin takes effect when `herald serve` is restarted (`herald smtp check` tries the configuration as it is now).");
        }
        SmtpCommand::Check { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// `herald smtp check [NAME]`: exit status 1 when a server cannot be used.
async fn check(config: &Config, only: Option<&str>) -> anyhow::Result<()> {
    let names = crate::mail::server_names(config).context("reading the SMTP settings")?;
    if names.is_empty() {
        println!(
            "no SMTP server configured: mail is written to {} (set smtp_url or smtp_servers)",
            config.outbox_dir().display()
        );
        return Ok(());
    }
    if let Some(name) = only {
        if !names.iter().any(|n| n == name) {
            bail!(
                "no SMTP server named {:?}; configured: {}",
                super::shown(name),
                names.join(", ")
            );
        }
    }
    let checked = crate::mail::check_servers(config, only)
        .await
        .context("reading the SMTP settings")?;
    let failed = checked.iter().filter(|(_, r)| r.is_err()).count();
    for (name, result) in &checked {
        match result {
            Ok(offered) => println!("{}: ok ({offered})", super::shown(name)),
            Err(e) => println!(
                "{}: cannot be used: {}",
                super::shown(name),
                super::shown(&e.to_string())
            ),
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} SMTP servers cannot be used as configured (see above)",
            checked.len()
        );
    }
    Ok(())
}
