//! `herald bench`: throughput and scale measured against a baseline taken in
//! the same run, on this machine. Not run in CI. One module per benchmark:
//! `send` (delivery against the SMTP ceiling), `enqueue` (queueing a digest
//! for many subscribers), `keys` (keying addresses stored before address
//! keys), `render` (building each copy), `subscribe` (signups
//! against a minimal baseline); what they share is here.

/// Prints through the CLI's writer (`cli::out::line`): `herald bench … |
/// head` ends quietly when the reader goes, as every other command does.
macro_rules! println {
    () => {
        $crate::cli::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}

use crate::config::Config;
use crate::digest::{self, CreateOutcome};
use crate::domain::time::now_millis;
use crate::store::Store;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod enqueue;
mod keys;
mod render;
mod send;
pub mod subscribe;

pub use enqueue::enqueue;
pub use keys::keys;
pub use render::render;
pub use send::{send, Signing};

pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
pub const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Databases {
    Sqlite,
    Postgres,
    Both,
}

impl Databases {
    /// The database's name in a benchmark's output.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Databases::Sqlite => "sqlite",
            _ => "postgres",
        }
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh database of the kind asked for; returns its URL.
pub(crate) async fn fresh_database(
    kind: Databases,
    postgres_url: Option<&str>,
    dir: &Path,
    label: &str,
) -> anyhow::Result<String> {
    match kind {
        Databases::Sqlite => Ok(format!(
            "sqlite://{}",
            dir.join(format!("{label}.db")).display()
        )),
        _ => {
            let admin = postgres_url.context("--postgres-url (a server where herald may create databases) is needed for PostgreSQL")?;
            let name = format!("herald_bench_{}_{}", label, std::process::id());
            let store = Store::connect(admin).await?;
            if let Store::Postgres(pool) = &store {
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(pool)
                    .await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(pool)
                    .await?;
            }
            store.close().await;
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b)
                .context("the PostgreSQL URL names a database")?;
            Ok(format!("{base}/{name}"))
        }
    }
}

pub(crate) fn kinds(which: Databases) -> Vec<Databases> {
    match which {
        Databases::Both => vec![Databases::Sqlite, Databases::Postgres],
        one => vec![one],
    }
}

/// The worker process, terminated when the benchmark stops for any reason.
pub(crate) struct WorkerGuard(pub(crate) std::process::Child);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

pub(crate) fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("herald-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
