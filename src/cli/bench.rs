//! `herald bench send|enqueue|render|subscribe`: the flags, and the
//! dispatch to `crate::bench` (one module per benchmark), which does the
//! measuring.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Delivery throughput against smtp-source's ceiling at each concurrency, and the worker's peak RSS.
    Send {
        #[arg(long, default_value_t = 20_000)]
        subscribers: i64,
        /// Comma-separated concurrencies.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        concurrency: Vec<usize>,
        #[arg(long, value_enum, default_value_t = crate::bench::Databases::Both)]
        database: crate::bench::Databases,
        /// A PostgreSQL server where the benchmark may create databases.
        #[arg(long, env = "PG_TEST_URL")]
        postgres_url: Option<String>,
        /// Message size in bytes.
        #[arg(long, default_value_t = 20_000)]
        size: usize,
        /// Comma-separated DKIM signing runs (keys made for the run).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
        dkim: Vec<crate::bench::Signing>,
        /// Measure each row this many times (ceiling, then herald) and
        /// report medians: on a shared machine one run can be far off.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Time queueing one digest for N confirmed subscribers.
    Enqueue {
        #[arg(long, default_value_t = 1_000_000)]
        subscribers: i64,
        #[arg(long, value_enum, default_value_t = crate::bench::Databases::Both)]
        database: crate::bench::Databases,
        #[arg(long, env = "PG_TEST_URL")]
        postgres_url: Option<String>,
    },
    /// Time keying N subscribers stored before address keys, against one
    /// SQL UPDATE on the same rows.
    Keys {
        #[arg(long, default_value_t = 1_000_000)]
        subscribers: i64,
        #[arg(long, value_enum, default_value_t = crate::bench::Databases::Both)]
        database: crate::bench::Databases,
        #[arg(long, env = "PG_TEST_URL")]
        postgres_url: Option<String>,
    },
    /// Per-copy rendering time: lettre's builder for every copy against the
    /// digest built once and spliced per copy.
    Render {
        #[arg(long, default_value_t = 20_000)]
        copies: u32,
    },
    /// POST /subscribe under wrk against a bare axum + sqlx single-INSERT handler (needs wrk).
    Subscribe {
        #[arg(long, value_enum, default_value_t = crate::bench::Databases::Both)]
        database: crate::bench::Databases,
        /// A PostgreSQL server where the benchmark may create databases.
        #[arg(long, env = "PG_TEST_URL")]
        postgres_url: Option<String>,
        /// Length of each measured wrk run, in seconds (after a 2 s warm-up).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        duration_secs: u64,
    },
}

/// Benchmarks make their own databases and services: no configuration.
pub(super) async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Send {
            subscribers,
            concurrency,
            database,
            postgres_url,
            size,
            dkim,
            rounds,
        } => {
            crate::bench::send(
                subscribers,
                &concurrency,
                database,
                postgres_url.as_deref(),
                size,
                &dkim,
                rounds,
            )
            .await
        }
        BenchCommand::Enqueue {
            subscribers,
            database,
            postgres_url,
        } => crate::bench::enqueue(subscribers, database, postgres_url.as_deref()).await,
        BenchCommand::Keys {
            subscribers,
            database,
            postgres_url,
        } => crate::bench::keys(subscribers, database, postgres_url.as_deref()).await,
        BenchCommand::Render { copies } => crate::bench::render(copies),
        BenchCommand::Subscribe {
            database,
            postgres_url,
            duration_secs,
        } => {
            crate::bench::subscribe::subscribe(database, postgres_url.as_deref(), duration_secs)
                .await
        }
    }
}
