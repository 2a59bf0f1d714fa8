//! `herald bench subscribe`: `POST /subscribe` under wrk, against a baseline
//! measured in the same run on the same kind of database — a bare axum
//! router whose one handler parses the form and does a single `INSERT` with
//! sqlx, on a pool opened exactly as herald opens its own (`Store::connect`).
//!
//! herald runs as `herald serve --role web` (no worker, so no SMTP), on a
//! fresh database, with its log in a file that is scanned afterwards for
//! "database is locked". Every load run is bounded by wrk's `-d` and by a
//! deadline after which wrk is killed.

use super::{free_port, fresh_database, kinds, tempdir, Databases, WorkerGuard};
use crate::store::Store;
use anyhow::{bail, Context};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const WRK: &str = "wrk";
const THREADS: u32 = 2;
const CONNECTIONS: u32 = 64;
const WARMUP_SECS: u64 = 2;
/// The issue's targets: herald/baseline and herald's p99.
const TARGET_RATIO: f64 = 0.8;
const TARGET_P99_MS: f64 = 20.0;

/// What one wrk run reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrkReport {
    /// Responses wrk counted as completed ("N requests in …").
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p99_ms: f64,
    /// "Non-2xx or 3xx responses" (absent from wrk's output when 0).
    pub non_2xx_3xx: u64,
    /// connect + read + write + timeout ("Socket errors", absent when 0).
    pub socket_errors: u64,
}

/// Reads wrk's text output (`--latency`).
pub fn parse_wrk_output(out: &str) -> anyhow::Result<WrkReport> {
    let mut report = WrkReport::default();
    let mut seen = (false, false, false);
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            report.requests_per_sec = v.trim().parse().context("wrk's Requests/sec")?;
            seen.0 = true;
        } else if let Some(v) = line.strip_prefix("99%") {
            report.p99_ms = parse_duration_ms(v.trim())?;
            seen.1 = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx_3xx = v.trim().parse().context("wrk's Non-2xx count")?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            for part in v.split(',') {
                let n = part.split_whitespace().last().unwrap_or("0");
                report.socket_errors += n.parse::<u64>().context("wrk's socket errors")?;
            }
        } else if line.contains(" requests in ") {
            let n = line.split_whitespace().next().unwrap_or("");
            report.requests = n.parse().context("wrk's request count")?;
            seen.2 = true;
        }
    }
    if seen != (true, true, true) {
        bail!(
            "could not read wrk's output (Requests/sec, the 99% line, the request count):\n{out}"
        );
    }
    Ok(report)
}

/// wrk prints times as `812.00us`, `6.51ms`, `1.02s`, `1.50m`.
fn parse_duration_ms(v: &str) -> anyhow::Result<f64> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(|| format!("wrk latency {v:?} has no unit"))?;
    let (number, unit) = v.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("wrk latency {v:?}"))?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("wrk latency {v:?} has an unknown unit"),
    };
    Ok(number * factor)
}

/// A wrk script posting a form with an address no other request of this
/// run uses: `{prefix}-{thread}-{counter}@bench.example.com`.
fn write_script(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let script = format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local n = 0
function request()
  n = n + 1
  local body = "email={prefix}-" .. id .. "-" .. n .. "%40bench.example.com&name=Bench+Reader"
  return wrk.format(nil, nil, nil, body)
end
"#
    );
    let path = dir.join(format!("subscribe-{prefix}.lua"));
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn ensure_wrk() -> anyhow::Result<()> {
    match Command::new(WRK)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "wrk is not installed: apt-get install wrk (scripts/bench.sh installs what benchmarks need)"
        ),
        Err(e) => Err(e).context("running wrk"),
    }
}

/// One `wrk -t2 -c64 -d{secs}s --latency` run; killed if it overruns.
fn run_wrk(url: &str, script: &Path, secs: u64, dir: &Path) -> anyhow::Result<WrkReport> {
    let out_path = dir.join("wrk.out");
    let out = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    let mut child = Command::new(WRK)
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting wrk")?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for wrk")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("wrk did not finish {secs} s of load within {} s", secs + 30);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path)
        .with_context(|| format!("reading {}", out_path.display()))?;
    if !status.success() {
        bail!("wrk failed ({status}):\n{text}");
    }
    tracing::debug!(output = %text, "wrk");
    parse_wrk_output(&text)
}

/// Warm-up, then the measured run, each with its own addresses. Returns
/// both reports: the warm-up's only counts in the row check.
fn load(url: &str, dir: &Path, secs: u64) -> anyhow::Result<(WrkReport, WrkReport)> {
    let warm = run_wrk(url, &write_script(dir, "w")?, WARMUP_SECS, dir)?;
    let measured = run_wrk(url, &write_script(dir, "m")?, secs, dir)?;
    Ok((measured, warm))
}

#[derive(Clone)]
struct BaselineState {
    store: Store,
    failed: Arc<AtomicU64>,
    locked: Arc<AtomicU64>,
}

#[derive(serde::Deserialize)]
struct BaselineForm {
    email: String,
    name: Option<String>,
}

/// The baseline: parse the form, one INSERT, 303 like herald's form answer.
async fn baseline_subscribe(
    State(state): State<BaselineState>,
    Form(form): Form<BaselineForm>,
) -> Response {
    let now = crate::domain::time::now_millis();
    let sql = "INSERT INTO signups (email, name, created_at) VALUES ($1, $2, $3)";
    let result = crate::store::with_pool!(&state.store, pool => sqlx::query(sql)
        .bind(&form.email)
        .bind(&form.name)
        .bind(now)
        .execute(pool)
        .await
        .map(drop));
    match result {
        Ok(()) => Redirect::to("/thanks").into_response(),
        Err(e) => {
            if e.to_string().contains("database is locked") {
                state.locked.fetch_add(1, Ordering::Relaxed);
            }
            if state.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(error = %e, "baseline insert failed (further failures are only counted)");
            }
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Figures of one side (baseline or herald) on one database.
struct Side {
    /// The measured run.
    report: WrkReport,
    /// Requests wrk completed over the warm-up and the measured run.
    completed: u64,
    /// Non-2xx/3xx answers over both runs.
    failed: u64,
    stored: i64,
    locked: u64,
}

async fn baseline_run(url: &str, dir: &Path, secs: u64) -> anyhow::Result<Side> {
    let store = Store::connect(url)
        .await
        .context("opening the baseline database")?;
    let create = match &store {
        Store::Sqlite(_) => "CREATE TABLE signups (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, name TEXT, created_at BIGINT NOT NULL)",
        Store::Postgres(_) => "CREATE TABLE signups (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at BIGINT NOT NULL)",
    };
    crate::store::with_pool!(&store, pool => sqlx::query(create).execute(pool).await.map(drop))
        .context("creating the baseline table")?;
    let state = BaselineState {
        store: store.clone(),
        failed: Arc::default(),
        locked: Arc::default(),
    };
    let app = Router::new()
        .route("/subscribe", post(baseline_subscribe))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the baseline server")?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let shutdown = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    });
    let target = format!("http://{addr}/subscribe");
    let dir = dir.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || load(&target, &dir, secs)).await;
    cancel.cancel();
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the baseline server failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the baseline server panicked"),
        Err(_) => tracing::warn!("the baseline server did not stop within 10 s"),
        Ok(Ok(Ok(()))) => {}
    }
    let (report, warm) = loaded.context("the wrk task")??;
    let stored: i64 = crate::store::with_pool!(&store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM signups").fetch_one(pool).await
    })
    .context("counting the baseline rows")?;
    store.close().await;
    Ok(Side {
        completed: report.requests + warm.requests,
        failed: report.non_2xx_3xx + warm.non_2xx_3xx,
        report,
        stored,
        locked: state.locked.load(Ordering::Relaxed),
    })
}

/// `herald serve --role web` on `url`, configured only by the environment
/// set here (no herald.toml: it runs in the bench directory).
async fn herald_run(exe: &Path, url: &str, dir: &Path, secs: u64) -> anyhow::Result<Side> {
    let data_dir = dir.join("herald-data");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let log_path = dir.join("herald.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let port = free_port()?;
    let mut cmd = Command::new(exe);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd
        .args(["serve", "--role", "web"])
        .current_dir(dir)
        .env("HERALD_DATABASE_URL", url)
        .env("HERALD_DATA_DIR", &data_dir)
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .env("HERALD_SCHEDULE__ENABLED", "false")
        // wrk posts every signup from 127.0.0.1.
        .env("HERALD_SIGNUP__PER_IP_PER_MINUTE", "0")
        .env(
            "HERALD_LOG",
            std::env::var("BENCH_HERALD_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting herald serve --role web")?;
    let mut herald = WorkerGuard(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = herald.0.try_wait()? {
            bail!(
                "herald exited early ({status}); its log is {}",
                log_path.display()
            );
        }
        let healthy = client.get(format!("{base}/health")).send().await;
        if healthy.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("herald did not answer /health within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = client
        .post(format!("{base}/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=preflight%40bench.example.com&name=Bench+Reader")
        .send()
        .await
        .context("the first POST /subscribe")?;
    if answer.status() != StatusCode::SEE_OTHER {
        bail!(
            "herald answered a valid form post with {} instead of 303",
            answer.status()
        );
    }
    let target = format!("{base}/subscribe");
    let work_dir = dir.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || load(&target, &work_dir, secs)).await;
    drop(herald);
    let (report, warm) = loaded.context("the wrk task")??;
    let store = Store::connect(url)
        .await
        .context("opening herald's database")?;
    let stored: i64 = store
        .subscriber_counts()
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let queued: i64 = crate::store::with_pool!(&store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE kind = 'confirmation'")
            .fetch_one(pool)
            .await
    })
    .context("counting queued confirmations")?;
    store.close().await;
    if queued != stored {
        bail!("herald stored {stored} subscribers but queued {queued} confirmations");
    }
    let text = std::fs::read_to_string(&log_path)
        .with_context(|| format!("reading {}", log_path.display()))?;
    let locked = text.matches("database is locked").count() as u64;
    Ok(Side {
        // The pre-flight request is one more.
        completed: report.requests + warm.requests + 1,
        failed: report.non_2xx_3xx + warm.non_2xx_3xx,
        report,
        stored,
        locked,
    })
}

async fn drop_database(admin: Option<&str>, url: &str) {
    let (Some(admin), Some((_, name))) = (admin, url.rsplit_once('/')) else {
        return;
    };
    let Ok(store) = Store::connect(admin).await else {
        return;
    };
    if let Store::Postgres(pool) = &store {
        if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(pool)
            .await
        {
            tracing::warn!(error = %e, database = name, "could not drop the benchmark database");
        }
    }
    store.close().await;
}

/// Flushes what the previous run left in PostgreSQL's buffers, so that a
/// checkpoint does not land in the middle of the next run (best effort: it
/// needs a superuser or pg_checkpoint).
async fn checkpoint(admin: Option<&str>) {
    let Some(admin) = admin else {
        return;
    };
    let Ok(store) = Store::connect(admin).await else {
        return;
    };
    if let Store::Postgres(pool) = &store {
        if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
            tracing::debug!(error = %e, "CHECKPOINT before a run failed");
        }
    }
    store.close().await;
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Checks that the stored rows match what wrk saw answered: never fewer
/// than the successful responses; a few more are requests still in flight
/// when a run ended (at most one per connection per run).
fn check_rows(who: &str, side: &Side) -> anyhow::Result<()> {
    let answered = side.completed.saturating_sub(side.failed) as i64;
    let in_flight = i64::from(CONNECTIONS) * 2;
    if side.stored < answered || side.stored > side.completed as i64 + in_flight {
        bail!(
            "{who} stored {} rows for {} completed requests ({} non-2xx/3xx)",
            side.stored,
            side.completed,
            side.failed
        );
    }
    Ok(())
}

pub async fn subscribe(
    which: Databases,
    postgres_url: Option<&str>,
    secs: u64,
) -> anyhow::Result<()> {
    ensure_wrk()?;
    if which != Databases::Sqlite && postgres_url.is_none() {
        bail!("--postgres-url (a server where the benchmark may create databases) is needed for PostgreSQL");
    }
    let exe = std::env::current_exe().context("locating the herald binary")?;
    let dir = tempdir()?;
    let started_load = load_average();
    let mut rows = Vec::new();
    for kind in kinds(which) {
        let name = kind.label();
        let run_dir = dir.join(name);
        std::fs::create_dir_all(&run_dir)?;
        let base_url = fresh_database(kind, postgres_url, &run_dir, "sub_baseline").await?;
        if kind == Databases::Postgres {
            checkpoint(postgres_url).await;
        }
        let baseline = baseline_run(&base_url, &run_dir, secs).await;
        if kind == Databases::Postgres {
            drop_database(postgres_url, &base_url).await;
        }
        let baseline = baseline?;
        let herald_url = fresh_database(kind, postgres_url, &run_dir, "sub_herald").await?;
        if kind == Databases::Postgres {
            checkpoint(postgres_url).await;
        }
        let herald = herald_run(&exe, &herald_url, &run_dir, secs).await;
        if kind == Databases::Postgres {
            drop_database(postgres_url, &herald_url).await;
        }
        let herald = herald?;
        println!(
            "{name:<9} baseline {:>7.0} req/s p99 {:>6.2} ms | herald {:>7.0} req/s p99 {:>6.2} ms | herald stored {} subscribers (and as many queued confirmations) for {} completed requests",
            baseline.report.requests_per_sec,
            baseline.report.p99_ms,
            herald.report.requests_per_sec,
            herald.report.p99_ms,
            herald.stored,
            herald.completed
        );
        check_rows("the baseline", &baseline)?;
        check_rows("herald", &herald)?;
        rows.push((name, baseline, herald));
    }
    println!("\n| database | baseline (req/s) | herald (req/s) | herald/baseline | herald p99 | baseline p99 | non-2xx/3xx herald / baseline | socket errors herald / baseline | \"database is locked\" herald / baseline | targets met |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut all_met = true;
    for (name, b, h) in &rows {
        let ratio = h.report.requests_per_sec / b.report.requests_per_sec;
        let met = ratio >= TARGET_RATIO
            && h.report.p99_ms < TARGET_P99_MS
            && h.failed == 0
            && h.locked == 0;
        all_met &= met;
        println!(
            "| {name} | {:.0} | {:.0} | {ratio:.2} | {:.2} ms | {:.2} ms | {} / {} | {} / {} | {} / {} | {} |",
            b.report.requests_per_sec,
            h.report.requests_per_sec,
            h.report.p99_ms,
            b.report.p99_ms,
            h.failed,
            b.failed,
            h.report.socket_errors,
            b.report.socket_errors,
            h.locked,
            b.locked,
            if met { "yes" } else { "no" }
        );
    }
    println!(
        "\nwrk -t{THREADS} -c{CONNECTIONS} -d{secs}s --latency after a {WARMUP_SECS} s warm-up; {} cores; load average {started_load} before, {} after",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load_average()
    );
    println!(
        "targets: herald/baseline >= {TARGET_RATIO}, herald p99 < {TARGET_P99_MS} ms, no non-2xx/3xx, no \"database is locked\": {}",
        if all_met { "met" } else { "NOT met" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:4000/subscribe
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.01ms    2.10ms  41.22ms   81.00%
    Req/Sec     4.61k   312.00     5.10k    70.50%
  Latency Distribution
     50%    6.62ms
     75%    8.01ms
     90%    9.47ms
     99%   14.83ms
  91804 requests in 10.00s, 16.02MB read
  Socket errors: connect 0, read 2, write 0, timeout 12
  Non-2xx or 3xx responses: 5
Requests/sec:   9178.61
Transfer/sec:      1.60MB
";

    #[test]
    fn reads_wrk_output() {
        let r = parse_wrk_output(SAMPLE).unwrap();
        assert_eq!(
            r,
            WrkReport {
                requests: 91804,
                requests_per_sec: 9178.61,
                p99_ms: 14.83,
                non_2xx_3xx: 5,
                socket_errors: 14,
            }
        );
    }

    #[test]
    fn reads_latency_units() {
        assert_eq!(parse_duration_ms("812.00us").unwrap(), 0.812);
        assert_eq!(parse_duration_ms("1.50s").unwrap(), 1500.0);
        assert!(parse_duration_ms("3.00xs").is_err());
    }

    #[test]
    fn refuses_output_without_figures() {
        assert!(parse_wrk_output("unable to connect to 127.0.0.1:1").is_err());
    }
}
