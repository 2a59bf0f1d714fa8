//! `herald digest preview|send|status|pause|resume|cancel`.

use super::{shown, state};
use crate::config::Config;
use crate::digest::{self, CreateOutcome};
use crate::domain::time::{format_rfc3339, now_millis};
use crate::scheduler::Schedule;
use crate::state::AppState;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::path::PathBuf;

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

pub(super) async fn run(config: Config, cmd: DigestCommand) -> anyhow::Result<()> {
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
