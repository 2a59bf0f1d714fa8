//! `herald article add|list|remove`.

use super::{shown, state};
use crate::articles::{self, ArticleInput};
use crate::config::Config;
use crate::domain::time::{format_rfc3339, now_millis};
use crate::store::Removal;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ArticleCommand {
    /// Add an article (adding the same URL again updates it).
    Add {
        #[arg(long)]
        title: String,
        /// The article's public URL.
        #[arg(long)]
        url: String,
        /// File with the article body: HTML, or plain text with blank lines between paragraphs.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
        /// Publication time, RFC 3339 (default: now).
        #[arg(long, value_name = "TIME")]
        published_at: Option<String>,
        #[arg(long)]
        author: Option<String>,
        /// Lead image URL (default: the first image in the body).
        #[arg(long, value_name = "URL")]
        image: Option<String>,
    },
    /// List the newest articles; held-back ones are marked.
    List {
        /// 1 to 1000.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
    /// Remove an article that no digest carries, so that no digest will
    /// (its feed does not bring it back). An article already in a digest
    /// stays: the digest and the archive keep it.
    Remove { id: i64 },
}

pub async fn run(config: Config, cmd: ArticleCommand) -> anyhow::Result<()> {
    let state = state(config).await?;
    match cmd {
        ArticleCommand::Add {
            title,
            url,
            html,
            published_at,
            author,
            image,
        } => {
            let body = std::fs::read_to_string(&html)
                .with_context(|| format!("reading {}", html.display()))?;
            let published_at = match published_at {
                Some(t) => Some(
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .with_context(|| format!("--published-at {t:?} is not an RFC 3339 time (e.g. 2026-11-26T07:00:00Z)"))?
                        .timestamp_millis(),
                ),
                None => None,
            };
            let input = ArticleInput {
                title,
                url,
                html: body,
                published_at,
                author,
                image_url: image,
                guid: None,
            };
            let (id, created) = articles::add_article(&state.store, input)
                .await
                .map_err(|e| match e {
                    articles::Error::Invalid(m) => anyhow::anyhow!("{m}"),
                    articles::Error::Store(e) => {
                        anyhow::Error::new(e).context("storing the article")
                    }
                })?;
            println!("{} article {id}", if created { "added" } else { "updated" });
        }
        ArticleCommand::List { limit } => {
            for a in state.store.list_articles(limit).await? {
                println!(
                    "{:>6}  {}  {}{}\n        {}",
                    a.id,
                    format_rfc3339(a.published_at),
                    shown(&a.title),
                    if a.held_back != 0 {
                        format!(
                            "  (held back: release with `{}`)",
                            super::feed::release_hint(a.feed_id)
                        )
                    } else {
                        String::new()
                    },
                    shown(&a.url)
                );
            }
        }
        ArticleCommand::Remove { id } => match state.store.remove_article(id, now_millis()).await? {
            Removal::Removed => println!("article {id} removed; no digest will carry it"),
            Removal::NotFound => bail!("no article {id}; `herald article list` lists the articles with their ids"),
            Removal::InDigest { digest_id, status } => bail!(
                "article {id} is in digest {digest_id} ({status}) and stays: a digest keeps the articles it was made with, and so does the archive (`herald digest cancel {digest_id}` first if it has not gone out)"
            ),
        },
    }
    Ok(())
}
