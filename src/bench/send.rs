//! `herald bench send` starts Postfix's smtp-sink on a loopback port, measures the
//! ceiling with smtp-source at each concurrency (same message size, one
//! connection per session reused for every message), then herald's whole
//! path — claim, render each copy with its own links, send through the pool,
//! record — with a `herald serve --role worker` process, then the ceiling
//! again (a row's ceiling is the mean of the two), and prints msg/s,
//! herald/ceiling, the worker's peak RSS, the CPU time per message of each
//! process and the share of CPU time the host stole. `--rounds N` repeats
//! each row and reports medians.

use super::*;

/// Which DKIM keys the worker signs with in `bench send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signing {
    None,
    Ed25519,
    Rsa,
    /// RSA and Ed25519 on every message.
    Both,
}

impl Signing {
    fn label(self) -> &'static str {
        match self {
            Self::None => "unsigned",
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa-2048",
            Self::Both => "rsa+ed25519",
        }
    }

    /// For database names.
    fn slug(self) -> &'static str {
        match self {
            Self::None => "unsigned",
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
            Self::Both => "dual",
        }
    }

    fn algorithms(self) -> &'static [crate::mail::dkim::Algorithm] {
        use crate::mail::dkim::Algorithm;
        match self {
            Self::None => &[],
            Self::Ed25519 => &[Algorithm::Ed25519],
            Self::Rsa => &[Algorithm::Rsa],
            Self::Both => &[Algorithm::Rsa, Algorithm::Ed25519],
        }
    }

    /// A configuration file with this signing's keys (made in `dir`).
    fn config_file(self, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
        use crate::mail::dkim;
        if self == Self::None {
            return Ok(None);
        }
        let mut toml = String::new();
        for algorithm in self.algorithms() {
            let key = dir.join(format!("bench-{}.pem", algorithm.key_type()));
            if !key.exists() {
                dkim::generate(*algorithm, &key)?;
            }
            toml.push_str(&format!(
                "[[dkim.keys]]\nselector = \"bench-{}\"\ndomain = \"news.example\"\nprivate_key_file = {:?}\n",
                algorithm.key_type(),
                key.display().to_string()
            ));
        }
        let file = dir.join(format!("bench-{}.toml", self.label()));
        std::fs::write(&file, toml)?;
        Ok(Some(file))
    }
}

/// RSA-2048 signatures per second on one core, as `openssl speed` measures.
fn openssl_rsa2048_signs() -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "3", "-mr", "rsa2048"])
        .stderr(Stdio::null())
        .output()
        .context("running openssl speed (apt-get install openssl)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Machine-readable: +F2:<index>:<bits>:<signs/s>:<verifies/s>
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("+F2:"))
        .filter_map(|l| l.split(':').nth(2)?.parse::<f64>().ok())
        .next()
        .with_context(|| format!("no RSA result in openssl speed's output: {stdout}"))
}

/// smtp-sink on a loopback port, stopped on drop.
struct Sink {
    port: u16,
    child: std::process::Child,
}

impl Sink {
    fn start() -> anyhow::Result<Sink> {
        if !Path::new(SMTP_SINK).exists() || !Path::new(SMTP_SOURCE).exists() {
            bail!("{SMTP_SINK} and {SMTP_SOURCE} are needed: apt-get install postfix");
        }
        let port = free_port()?;
        let mut cmd = Command::new(SMTP_SINK);
        if is_root() {
            cmd.args(["-u", "postfix"]);
        }
        let child = cmd
            .arg(format!("127.0.0.1:{port}"))
            .arg("1024")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting smtp-sink")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("smtp-sink did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Sink { port, child })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// messages/s of smtp-source at `sessions` parallel connections.
fn ceiling(
    sink: &Sink,
    sessions: usize,
    messages: usize,
    size: usize,
) -> anyhow::Result<(f64, CpuPerMessage)> {
    let port = sink.port;
    let sink_pid = sink.child.id().to_string();
    let (sink_before, source_before) = (cpu_us(&sink_pid), cpu_us("self"));
    let ticks_before = cpu_ticks();
    let started = Instant::now();
    let status = Command::new(SMTP_SOURCE)
        .args([
            "-d",
            "-s",
            &sessions.to_string(),
            "-m",
            &messages.to_string(),
            "-l",
            &size.to_string(),
        ])
        .args(["-f", "bench@herald.test", "-t", "reader@example.com"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running smtp-source")?;
    if !status.success() {
        bail!("smtp-source failed: {status}");
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let per_message = |before, after| cpu_per_message(before, after, messages);
    Ok((
        rate,
        CpuPerMessage {
            sink: per_message(sink_before, cpu_us(&sink_pid)),
            // smtp-source is this process's child, waited for.
            client: per_message(source_before, cpu_us("self")),
            database: 0.0,
            steal: steal_since(ticks_before),
        },
    ))
}

/// Adds articles until the rendered digest message is about `size` bytes.
async fn digest_of_size(store: &Store, config: &mut Config, size: usize) -> anyhow::Result<usize> {
    let now = now_millis();
    let filler = "Relations between the two countries have presented a series of warning signs, and the recent drills at the border signal an escalation that both capitals watch closely. ";
    for i in 0..200 {
        let input = crate::articles::ArticleInput {
            title: format!("Benchmark story number {i} with a headline of ordinary length"),
            url: format!("https://news.example.com/2026/11/benchmark-story-{i}/"),
            html: format!("<p>{}</p>", filler.repeat(3)),
            published_at: Some(now - i64::from(i) * 1000),
            author: Some("Staff Writer".into()),
            image_url: Some(format!(
                "https://news.example.com/wp-content/uploads/2026/11/story-{i}.jpg"
            )),
            guid: None,
        };
        crate::articles::add_article(store, input)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut articles = 1u32;
    loop {
        config.digest.max_articles = articles;
        let preview = digest::preview(store, config, now_millis())
            .await?
            .context("no articles")?;
        // Each slot counts 26 bytes, as the placeholder that stood there
        // before herald recorded positions did: the benchmark's digest keeps
        // the size (and article count) of earlier runs' figures.
        let bodies = &preview.rendered.bodies;
        let slots = bodies.html.slots().len() + bodies.text.slots().len();
        let bytes = bodies.html.byte_len() + bodies.text.byte_len() + 26 * slots + 1500;
        if bytes >= size || articles >= 200 {
            return Ok(bytes);
        }
        articles += 1;
    }
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) of a process, and of its children it has
/// waited for, in microseconds, from `/proc/PID/stat`.
fn cpu_us(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&t| t > 0)?;
    Some(ticks * 1_000_000 / per_second)
}

/// CPU time of every local PostgreSQL process, including backends that
/// have exited (counted in the postmaster's children), in microseconds.
fn postgres_cpu_us() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| cpu_us(&pid))
        .sum()
}

/// The machine's CPU time counters from `/proc/stat`: (steal, all), in
/// ticks. Steal is time this virtual machine's CPUs were runnable but the
/// host ran something else.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    Some((*ticks.get(7)?, ticks.iter().take(8).sum()))
}

/// The share of CPU time stolen by the host since `before` (a reading of
/// [`cpu_ticks`]), in percent.
fn steal_since(before: Option<(u64, u64)>) -> f64 {
    match (before, cpu_ticks()) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
            s1.saturating_sub(s0) as f64 * 100.0 / (t1 - t0) as f64
        }
        _ => 0.0,
    }
}

/// CPU µs per message between two readings of [`cpu_us`]; 0 when either
/// could not be read.
fn cpu_per_message(before: Option<u64>, after: Option<u64>, messages: usize) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / messages.max(1) as f64,
        _ => 0.0,
    }
}

/// Where the CPU went during one measured send, in µs per message.
#[derive(Debug, Clone, Copy, Default)]
struct CpuPerMessage {
    sink: f64,
    /// smtp-source in the ceiling run, herald's worker in herald's.
    client: f64,
    /// Local PostgreSQL processes (0 on SQLite).
    database: f64,
    /// Percent of the machine's CPU time the host stole meanwhile: a run
    /// with much of it measured the neighbours as much as herald.
    steal: f64,
}

impl std::fmt::Display for CpuPerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU µs/msg: sink {:.0}, client {:.0}, database {:.0}; stolen by the host {:.0}%",
            self.sink, self.client, self.database, self.steal
        )
    }
}

/// herald's SMTP pool alone: one pre-built message of `size` bytes sent
/// `messages` times over `sessions` connections. The floor the whole path
/// cannot beat; the gap to smtp-source is lettre's SMTP client.
async fn transport_floor(
    port: u16,
    sessions: usize,
    messages: usize,
    size: usize,
) -> anyhow::Result<f64> {
    use crate::mail::pool::{SmtpPool, SmtpTarget};
    let pool = std::sync::Arc::new(SmtpPool::new(
        SmtpTarget::parse(&format!("smtp://127.0.0.1:{port}"))?,
        sessions as u32,
        Duration::from_secs(30),
    ));
    let message = lettre::Message::builder()
        .from("bench@herald.test".parse()?)
        .to("reader@example.com".parse()?)
        .subject("floor")
        .body(
            "x".repeat(76)
                .chars()
                .chain(std::iter::once('\n'))
                .cycle()
                .take(size)
                .collect::<String>(),
        )?;
    let bytes = std::sync::Arc::new(message.formatted());
    let envelope = std::sync::Arc::new(message.envelope().clone());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..sessions {
        let (pool, bytes, envelope) = (pool.clone(), bytes.clone(), envelope.clone());
        let count = messages / sessions + usize::from(s < messages % sessions);
        tasks.spawn(async move {
            for _ in 0..count {
                pool.send(&envelope, &bytes).await?;
            }
            Ok::<_, crate::mail::SendError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

struct Row {
    database: &'static str,
    signing: Signing,
    concurrency: usize,
    ceiling: f64,
    herald: f64,
    rss_mb: f64,
    size: usize,
    /// The larger share of CPU time the host stole, in the ceiling's run
    /// or herald's (percent).
    steal: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[allow(clippy::too_many_arguments)]
async fn herald_run(
    exe: &Path,
    kind: Databases,
    postgres_url: Option<&str>,
    dir: &Path,
    sink_port: u16,
    sink_pid: u32,
    subscribers: i64,
    concurrency: usize,
    size: usize,
    signing: Signing,
    config_file: Option<&Path>,
    round: usize,
) -> anyhow::Result<HeraldRun> {
    let label = format!(
        "{}_{}_{concurrency}_{round}",
        if kind == Databases::Sqlite {
            "sqlite"
        } else {
            "pg"
        },
        signing.slug()
    );
    let url = fresh_database(kind, postgres_url, dir, &label).await?;
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    store
        .seed_bench_subscribers(subscribers, now_millis())
        .await?;
    let mut config = Config {
        database_url: Some(url.clone()),
        site_name: "herald".into(),
        ..Config::default()
    };
    let message_size = digest_of_size(&store, &mut config, size).await?;
    let CreateOutcome::Created(id) = digest::create(
        &store,
        &config,
        &format!("manual:bench-{label}"),
        now_millis(),
    )
    .await?
    else {
        bail!("the benchmark digest was not created");
    };
    let batch = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((concurrency * 32).clamp(200, 2000));
    // The digest waits paused until the worker process is up, so the clock
    // measures sending (claim, render, send, record), not process start-up.
    store.set_digest_status(id, &["queued"], "paused").await?;
    let log = std::env::var("BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into());
    // The "delivery worker started" line (info) says when to start the clock.
    let worker_log = if log.contains("herald::delivery") {
        log
    } else {
        format!("{log},herald::delivery::worker=info")
    };
    let mut command = Command::new(exe);
    if let Some(file) = config_file {
        command.arg("--config").arg(file);
    }
    let child = command
        .args(["serve", "--role", "worker"])
        .env("HERALD_DATABASE_URL", &url)
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_SMTP_URL", format!("smtp://127.0.0.1:{sink_port}"))
        .env("HERALD_SCHEDULE__ENABLED", "false")
        .env("HERALD_DELIVERY__CONCURRENCY", concurrency.to_string())
        .env("HERALD_DELIVERY__BATCH_SIZE", batch.to_string())
        .env("HERALD_DELIVERY__POLL_INTERVAL_MS", "20")
        .env("HERALD_FEEDS__TICK_SECS", "3600")
        .env("HERALD_LOG", worker_log)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the worker")?;
    let mut child = WorkerGuard(child);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    if let Some(stderr) = child.0.stderr.take() {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("delivery worker started") {
                    let _ = ready_tx.send(());
                } else {
                    eprintln!("{line}");
                }
            }
        });
    }
    let up_by = Instant::now() + Duration::from_secs(60);
    while ready_rx.try_recv().is_err() {
        if let Some(status) = child.0.try_wait()? {
            bail!("the worker exited early ({status}); run it by hand to see why");
        }
        if Instant::now() > up_by {
            bail!("the worker did not start within a minute");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sink_pid = sink_pid.to_string();
    let worker_pid = child.0.id().to_string();
    let cpu_before = (
        cpu_us(&sink_pid),
        cpu_us(&worker_pid),
        (kind == Databases::Postgres).then(postgres_cpu_us),
    );
    let ticks_before = cpu_ticks();
    store.set_digest_status(id, &["paused"], "queued").await?;
    let started = Instant::now();
    let mut peak = 0;
    let deadline = started + Duration::from_secs(3600);
    loop {
        if let Some(status) = child.0.try_wait()? {
            bail!("the worker exited early ({status}); run it by hand to see why");
        }
        peak = peak.max(peak_rss_kb(child.0.id()).unwrap_or(0));
        let d = store.digest_by_id(id).await?.context("digest vanished")?;
        if d.status == "done" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the digest did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_message = |before, after| cpu_per_message(before, after, subscribers as usize);
    let cpu = CpuPerMessage {
        sink: per_message(cpu_before.0, cpu_us(&sink_pid)),
        client: per_message(cpu_before.1, cpu_us(&worker_pid)),
        database: per_message(cpu_before.2, cpu_before.2.map(|_| postgres_cpu_us())),
        steal: steal_since(ticks_before),
    };
    peak = peak.max(peak_rss_kb(child.0.id()).unwrap_or(0));
    drop(child);
    let counts = store.digest_counts(id, now_millis()).await?;
    if counts.sent != subscribers {
        bail!(
            "only {} of {subscribers} were sent: {counts:?}",
            counts.sent
        );
    }
    store.close().await;
    Ok(HeraldRun {
        rate: subscribers as f64 / elapsed,
        rss_mb: peak as f64 / 1024.0,
        message_size,
        cpu,
    })
}

struct HeraldRun {
    rate: f64,
    rss_mb: f64,
    message_size: usize,
    cpu: CpuPerMessage,
}

#[allow(clippy::too_many_arguments)]
pub async fn send(
    subscribers: i64,
    concurrencies: &[usize],
    which: Databases,
    postgres_url: Option<&str>,
    size: usize,
    signings: &[Signing],
    rounds: usize,
) -> anyhow::Result<()> {
    let rounds = rounds.max(1);
    let exe = std::env::current_exe().context("locating the herald binary")?;
    let dir = tempdir()?;
    let sink = Sink::start()?;
    let mut rows = Vec::new();
    let rsa_signs = if signings
        .iter()
        .any(|s| matches!(s, Signing::Rsa | Signing::Both))
    {
        let signs = openssl_rsa2048_signs()?;
        println!("openssl speed rsa2048: {signs:.0} signs/s on one core");
        Some(signs)
    } else {
        None
    };
    for &c in concurrencies {
        let (ceiling, cpu) = ceiling(&sink, c, subscribers as usize, size)?;
        let floor = transport_floor(sink.port, c, subscribers as usize, size).await?;
        println!(
            "transport c={c:<3} ceiling {ceiling:>7.0} msg/s ({cpu})  herald's SMTP pool alone (pre-built message) {floor:>7.0} msg/s  ratio {:.2}",
            floor / ceiling
        );
    }
    for &signing in signings {
        let config_file = signing.config_file(&dir)?;
        for kind in kinds(which) {
            for &c in concurrencies {
                for round in 1..=rounds {
                    let (before, ceiling_cpu) = ceiling(&sink, c, subscribers as usize, size)?;
                    let run = herald_run(
                        &exe,
                        kind,
                        postgres_url,
                        &dir,
                        sink.port,
                        sink.child.id(),
                        subscribers,
                        c,
                        size,
                        signing,
                        config_file.as_deref(),
                        round,
                    )
                    .await?;
                    // The ceiling is measured again after herald's run and
                    // the two averaged: the machine's speed drifts, and a
                    // ceiling from before only would count the drift as
                    // herald's.
                    let (after, _) = ceiling(&sink, c, subscribers as usize, size)?;
                    let ceiling = (before + after) / 2.0;
                    let row = Row {
                        database: kind.label(),
                        signing,
                        concurrency: c,
                        ceiling,
                        herald: run.rate,
                        rss_mb: run.rss_mb,
                        size: run.message_size,
                        steal: ceiling_cpu.steal.max(run.cpu.steal),
                    };
                    println!(
                    "{:<9} {:<11} c={:<3} round {round}/{rounds}  ceiling {:>7.0} msg/s (before {before:.0}, after {after:.0})  herald {:>7.0} msg/s  ratio {:.2}{}  peak RSS {:>5.1} MB  message ~{} bytes",
                    row.database, row.signing.label(), row.concurrency, row.ceiling, row.herald, row.herald / row.ceiling,
                    goal(&row, rsa_signs), row.rss_mb, row.size
                );
                    println!(
                        "          smtp-source {ceiling_cpu}\n          herald      {}",
                        run.cpu
                    );
                    rows.push(row);
                }
            }
        }
    }
    if rounds > 1 {
        rows = medians(rows, rounds, rsa_signs);
    }
    println!("\n| database | DKIM | concurrency | smtp-source ceiling (msg/s) | herald (msg/s) | herald/ceiling | goal | worker peak RSS | stolen by the host |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {} | {:.1} MB | {:.0}% |",
            r.database,
            r.signing.label(),
            r.concurrency,
            r.ceiling,
            r.herald,
            r.herald / r.ceiling,
            goal(r, rsa_signs).trim(),
            r.rss_mb,
            r.steal
        );
    }
    println!(
        "\n{subscribers} subscribers per run, message ~{size} bytes, {} cores{}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if rounds > 1 {
            format!(
                ", medians of {rounds} rounds (herald/ceiling: the median of the rounds' ratios)"
            )
        } else {
            String::new()
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One row per database, signing and concurrency from `rounds` rounds
/// each: median rates, the median of the rounds' ratios (as `herald`
/// against the median ceiling), the most memory, the most steal. Prints
/// how many rounds met their own goal.
fn medians(rows: Vec<Row>, rounds: usize, rsa_signs: Option<f64>) -> Vec<Row> {
    rows.chunks(rounds)
        .filter_map(|group| {
            let first = group.first()?;
            let met = group
                .iter()
                .filter(|r| is_met(r, rsa_signs))
                .count();
            let ceiling = median(group.iter().map(|r| r.ceiling).collect());
            let ratio = median(group.iter().map(|r| r.herald / r.ceiling).collect());
            println!(
                "{:<9} {:<11} c={:<3} {met} of {rounds} rounds met their goal; median ratio {ratio:.2}",
                first.database,
                first.signing.label(),
                first.concurrency
            );
            Some(Row {
                database: first.database,
                signing: first.signing,
                concurrency: first.concurrency,
                ceiling,
                herald: ratio * ceiling,
                rss_mb: group.iter().map(|r| r.rss_mb).fold(0.0, f64::max),
                size: first.size,
                steal: group.iter().map(|r| r.steal).fold(0.0, f64::max),
            })
        })
        .collect()
}

/// The goal a row is held to, and whether it is met: 0.85 of the ceiling
/// unsigned or with Ed25519; with RSA, the rate one core signing serially
/// would reach, 1 / (1/ceiling + 1/S), S from `openssl speed` in this run.
/// Both keys: the RSA goal (herald's Ed25519 signature on top is not
/// counted in it, so dual signing may fall short of it).
fn goal(row: &Row, rsa_signs: Option<f64>) -> String {
    format!(
        "  goal {:>6.0} msg/s {}",
        goal_rate(row, rsa_signs),
        if is_met(row, rsa_signs) {
            "met"
        } else {
            "NOT met"
        }
    )
}

fn goal_rate(row: &Row, rsa_signs: Option<f64>) -> f64 {
    match (row.signing, rsa_signs) {
        (Signing::Rsa | Signing::Both, Some(s)) => 1.0 / (1.0 / row.ceiling + 1.0 / s),
        _ => 0.85 * row.ceiling,
    }
}

fn is_met(row: &Row, rsa_signs: Option<f64>) -> bool {
    row.herald >= goal_rate(row, rsa_signs)
}
