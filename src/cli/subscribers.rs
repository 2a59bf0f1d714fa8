//! `herald subscribers list|events`.

use super::{shown, state};
use crate::config::Config;
use crate::domain::time::format_rfc3339;
use anyhow::bail;
use clap::Subcommand;

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

pub(super) async fn run(config: Config, cmd: SubscribersCommand) -> anyhow::Result<()> {
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
