//! `herald smtp list|resume`: the SMTP servers' state as the delivery
//! workers last saw it, and taking a stopped server back into use.

use crate::config::Config;
use crate::delivery::servers;
use crate::domain::time::format_rfc3339;
use anyhow::{bail, Context};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SmtpCommand {
    /// Each SMTP server's state (ok, failing, stopped), since when, and its last error.
    List,
    /// Take a server that herald stopped (refused password, untrusted
    /// certificate) back into use, once the relay or its account is fixed.
    Resume {
        /// The server's name as `smtp list` shows it (host:port unless named).
        name: String,
    },
}

pub async fn run(config: Config, cmd: SmtpCommand) -> anyhow::Result<()> {
    let store = crate::store::Store::open_existing(&config.database_url())
        .await
        .context("connecting to the database")?;
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
            if !servers::resume(&store, &name).await? {
                bail!("SMTP server {name:?} is not stopped: nothing to resume (see `herald smtp list`)");
            }
            println!("{name} resumed: the delivery workers try it again within seconds");
        }
    }
    Ok(())
}
