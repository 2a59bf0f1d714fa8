//! `herald feed add|list|remove|poll|backfill`.

use super::{shown, state};
use crate::config::Config;
use crate::domain::feed_settings::{BackfillDays, PollInterval};
use crate::domain::time::{format_rfc3339, now_millis};
use crate::feeds::{self, add, PollReport};
use anyhow::bail;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Follow a feed. herald fetches it once first and refuses a URL that
    /// is not a feed it can read (an error status, an HTML page, no
    /// answer, broken XML), saying why; what it finds is stored at once.
    Add {
        url: String,
        /// Items published up to this many days before the feed is added
        /// go into the next digest; older ones are stored but held back:
        /// 0 to 365 (default: feeds.backfill_days, 0).
        #[arg(long, value_parser = BackfillDays::from_arg)]
        backfill_days: Option<BackfillDays>,
        /// Seconds between polls: 60 to 604800 (default: feeds.poll_interval_secs, 900).
        #[arg(long, value_parser = PollInterval::from_arg)]
        interval: Option<PollInterval>,
        /// Follow it even when the first fetch finds a problem (it is
        /// polled, and the problem reported, from then on).
        #[arg(long)]
        force: bool,
    },
    /// Feeds with their last poll, last error, next poll time and held-back articles.
    List,
    /// Stop following a feed (its articles stay).
    Remove { id: i64 },
    /// Poll the feeds that are due, or all of them with --now.
    Poll {
        #[arg(long)]
        now: bool,
    },
    /// Release a feed's held-back articles published in the last N days:
    /// they go into the next digest.
    Backfill {
        id: i64,
        /// 1 to 3650.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
    },
}

/// How an operator releases held-back articles.
pub fn release_hint(feed_id: Option<i64>) -> String {
    match feed_id {
        Some(id) => format!("herald feed backfill {id} --days N"),
        None => "herald feed backfill ID --days N".to_string(),
    }
}

pub async fn run(config: Config, cmd: FeedCommand) -> anyhow::Result<()> {
    let state = state(config).await?;
    match cmd {
        FeedCommand::Add {
            url,
            backfill_days,
            interval,
            force,
        } => {
            let feed_url = feeds::validate_url(&url)?;
            let (default_interval, default_backfill) =
                feeds::default_settings(&state.config.feeds)?;
            let poller = feeds::Poller::new(state.store.clone(), state.config.clone())?;
            let request = add::NewFeed {
                url: &feed_url,
                interval: interval.unwrap_or(default_interval),
                backfill: backfill_days.unwrap_or(default_backfill),
                force,
            };
            let added = match add::add(&state.store, &poller, &request).await {
                Ok(added) => added,
                Err(add::AddError::Refused(problem)) => bail!(
                    "feed {feed_url} not added: {}; `herald feed add --force URL` adds it anyway",
                    shown(&problem.to_string())
                ),
                Err(e) => return Err(e.into()),
            };
            // The URL as stored, its password masked.
            if !added.created {
                println!("already following feed {}: {feed_url}", added.id);
                return Ok(());
            }
            println!(
                "following feed {}: {feed_url}{}",
                added.id,
                added
                    .title
                    .as_deref()
                    .map(|t| format!(" ({})", shown(t)))
                    .unwrap_or_default()
            );
            if let Some(problem) = &added.forced_past {
                println!(
                    "added anyway (--force), though {}; it is polled from now on and `herald feed list` shows its errors",
                    shown(&problem.to_string())
                );
            }
            if let Some(report) = &added.report {
                for line in first_poll_lines(report, added.backfill_days) {
                    println!("{line}");
                }
            }
        }
        FeedCommand::List => {
            let held_back = state.store.held_back_by_feed().await?;
            for f in state.store.list_feeds().await? {
                println!(
                    "{:>4}  {}  {}",
                    f.id,
                    shown(&f.url.to_string()),
                    shown(&f.title.unwrap_or_default())
                );
                println!(
                    "      last poll {} ({}), next poll {}, failures in a row {}",
                    super::when(f.last_polled_at),
                    shown(&f.last_status.unwrap_or_else(|| "not yet".into())),
                    format_rfc3339(f.next_poll_at),
                    f.consecutive_failures
                );
                if let Some(e) = f.last_error {
                    println!("      last error: {}", shown(&e));
                }
                if f.refused_items > 0 {
                    println!("      items refused at the last poll: {}", f.refused_items);
                }
                if let Some(r) = f.last_refusal {
                    println!("      last refusal: {}", shown(&r));
                }
                if let Some(n) = held_back.get(&f.id).filter(|n| **n > 0) {
                    println!(
                        "      held back: {n} articles published before the backfill window; release them with `{}`",
                        release_hint(Some(f.id))
                    );
                }
            }
        }
        FeedCommand::Remove { id } => {
            if !state.store.remove_feed(id).await? {
                bail!("no feed {id}; `herald feed list` lists the feeds with their ids");
            }
            println!("feed {id} removed; its articles stay");
        }
        FeedCommand::Poll { now } => {
            let poller = feeds::Poller::new(state.store.clone(), state.config.clone())?;
            let reports = if now {
                poller.poll_all().await?
            } else {
                poller.poll_due(&CancellationToken::new()).await?
            };
            if reports.is_empty() {
                println!("no feed is due; use --now to poll all of them");
            }
            for r in reports {
                match r.error {
                    Some(e) => println!(
                        "feed {}: error: {}; next poll {}",
                        r.feed_id,
                        shown(&e.to_string()),
                        format_rfc3339(r.next_poll_at)
                    ),
                    None if r.not_modified => println!("feed {}: not modified", r.feed_id),
                    None => {
                        println!(
                            "feed {}: {} new, {} updated, {} held back (older than the backfill window)",
                            r.feed_id, r.new_articles, r.updated_articles, r.held_back
                        );
                        if let Some(reason) = r.last_refusal {
                            println!(
                                "feed {}: {} refused; last: {}",
                                r.feed_id,
                                r.refused_items,
                                shown(&reason)
                            );
                        }
                    }
                }
            }
        }
        FeedCommand::Backfill { id, days } => {
            let released =
                feeds::release_held_back(&state.store, &state.config, id, days, now_millis())
                    .await?;
            let Some(released) = released else {
                bail!("no feed {id}; `herald feed list` lists the feeds with their ids");
            };
            println!(
                "feed {id}: {} held-back articles published in the last {days} days released; they go into the next digest",
                released.released
            );
            if released.too_old > 0 {
                println!(
                    "{} of them are older than digest.max_article_age_days ({}) and will not be in a digest",
                    released.too_old, state.config.digest.max_article_age_days
                );
            }
            if released.still_held_back > 0 {
                println!("{} older articles stay held back", released.still_held_back);
            }
        }
    }
    Ok(())
}

/// What the first poll at `feed add` found, in the operator's words.
fn first_poll_lines(r: &PollReport, backfill_days: i64) -> Vec<String> {
    if let Some(e) = &r.error {
        return vec![format!("its first poll failed: {}", shown(e))];
    }
    let known = r
        .items_found
        .saturating_sub(r.new_articles + r.held_back + r.refused_items);
    let mut lines = vec![format!(
        "{} items found: {} go into the next digest, {} held back because they were published before the backfill window or are undated (backfill_days = {backfill_days}){}",
        r.items_found,
        r.new_articles,
        r.held_back,
        if known > 0 {
            format!(", {known} already stored")
        } else {
            String::new()
        }
    )];
    if r.held_back > 0 {
        lines.push(format!(
            "release held-back articles with `{}`",
            release_hint(Some(r.feed_id))
        ));
    }
    if r.refused_items > 0 {
        lines.push(format!(
            "{} items refused; last: {}",
            r.refused_items,
            shown(r.last_refusal.as_deref().unwrap_or(""))
        ));
    }
    lines
}
