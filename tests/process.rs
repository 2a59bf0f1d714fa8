//! herald as an operator runs it: the real binary, configured through
//! HERALD_* variables, killed with SIGKILL mid-send, stopped with SIGTERM,
//! and driven from the command line.

mod common;

use common::{free_port, fresh_database, Backend, SmtpSink};
use herald::config::Config;
use herald::digest::{self, CreateOutcome};
use herald::domain::time::now_millis;
use herald::domain::SubscriberEmail;
use herald::store::Store;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn herald(db_url: &str, data_dir: &Path) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATABASE_URL", db_url)
        .env("HERALD_DATA_DIR", data_dir)
        .env("HERALD_LOG", "warn")
        .current_dir(data_dir);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run herald");
    assert!(
        out.status.success(),
        "herald failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A database with `n` confirmed subscribers and one queued digest.
async fn seeded(backend: Backend, n: usize) -> (common::TestDb, Store, i64) {
    let db = fresh_database(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let emails: Vec<SubscriberEmail> = (0..n)
        .map(|i| SubscriberEmail::parse(&format!("reader{i:05}@example.com")).unwrap())
        .collect();
    store
        .import_confirmed(&emails, "import", now_millis())
        .await
        .unwrap();
    herald::articles::add_article(
        &store,
        herald::articles::ArticleInput {
            title: "Story".into(),
            url: "https://news.example.com/story/".into(),
            html: "<p>Text.</p>".into(),
            published_at: None,
            author: None,
            image_url: None,
            guid: None,
        },
    )
    .await
    .unwrap();
    let config = Config {
        database_url: Some(db.url.clone()),
        ..Config::default()
    };
    let CreateOutcome::Created(id) = digest::create(&store, &config, "manual:test", now_millis())
        .await
        .unwrap()
    else {
        panic!("digest not created");
    };
    (db, store, id)
}

/// `herald serve --role worker` without a scheduler, polling often; the
/// caller adds where mail goes.
fn worker_command(db_url: &str, data_dir: &Path) -> Command {
    let mut cmd = herald(db_url, data_dir);
    cmd.args(["serve", "--role", "worker"])
        .env("HERALD_SCHEDULE__ENABLED", "false")
        .env("HERALD_DELIVERY__POLL_INTERVAL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn start_worker(db_url: &str, data_dir: &Path, sink: &SmtpSink) -> Child {
    worker_command(db_url, data_dir)
        .env("HERALD_SMTP_URL", sink.url())
        .env("HERALD_DELIVERY__BATCH_SIZE", "20")
        .env("HERALD_DELIVERY__CONCURRENCY", "4")
        .env("HERALD_DELIVERY__LEASE_SECS", "2")
        .env("HERALD_SHUTDOWN_TIMEOUT_SECS", "10")
        .spawn()
        .expect("start herald serve --role worker")
}

/// Waits for the digest to finish, then stops both workers with SIGTERM;
/// each must exit 0.
async fn finish_and_stop(store: &Store, id: i64, timeout: Duration, workers: [&mut Child; 2]) {
    wait_until(timeout, "the digest to finish", async || {
        store.digest_by_id(id).await.unwrap().unwrap().status == "done"
    })
    .await;
    for child in &workers {
        signal(child, "-TERM");
    }
    for child in workers {
        assert!(child.wait().unwrap().success());
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_until(timeout: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// In-flight bound: a killed worker can have sent, but not yet recorded, at
/// most `concurrency + 2 × batch_size` messages (in flight or handing over
/// their outcome, in the outcome queue, in the recorder's batch): with
/// `concurrency` = 4 and `batch_size` = 20 that is 44.
const IN_FLIGHT_BOUND: usize = 4 + 2 * 20;

async fn sigkill_mid_send_then_restart_finishes_without_resending(backend: Backend) {
    const N: usize = 20_000;
    let (db, store, id) = seeded(backend, N).await;
    let data = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&[]);
    // Five kills at random moments (random points of progress, in order).
    let mut points: Vec<i64> = (0..5)
        .map(|_| rand::random_range(1..(N as i64 * 9 / 10)))
        .collect();
    points.sort_unstable();
    let kills = points.len();
    for target in points {
        let mut child = start_worker(&db.url, data.path(), &sink);
        wait_until(
            Duration::from_secs(120),
            "progress before the kill",
            async || store.digest_counts(id, now_millis()).await.unwrap().sent >= target,
        )
        .await;
        signal(&child, "-KILL");
        let _ = child.wait();
    }
    let counts = store.digest_counts(id, now_millis()).await.unwrap();
    assert!(
        counts.sent < N as i64,
        "the kills happened mid-send: {counts:?}"
    );
    let mut child = start_worker(&db.url, data.path(), &sink);
    wait_until(
        Duration::from_secs(180),
        "the digest to finish",
        async || store.digest_by_id(id).await.unwrap().unwrap().status == "done",
    )
    .await;
    signal(&child, "-TERM");
    let _ = child.wait();
    let counts = store.digest_counts(id, now_millis()).await.unwrap();
    assert_eq!(
        counts.sent, N as i64,
        "every subscriber has exactly one sent record: {counts:?}"
    );
    assert_eq!(
        counts.failed + counts.queued + counts.in_flight + counts.stuck + counts.skipped,
        0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *received.entry(m.envelope_to).or_default() += 1;
    }
    assert_eq!(received.len(), N, "nobody was skipped");
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    println!(
        "{kills} kills: {duplicates} duplicate copies (bound {} per kill)",
        IN_FLIGHT_BOUND
    );
    assert!(
        duplicates <= kills * IN_FLIGHT_BOUND,
        "{duplicates} duplicates for {kills} kills; the bound is {} per kill",
        IN_FLIGHT_BOUND
    );
    store.close().await;
}

async fn sigterm_releases_or_finishes_in_flight_work_and_exits_zero(backend: Backend) {
    const N: usize = 200;
    let (db, store, id) = seeded(backend, N).await;
    let data = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&[]);
    let mut child = start_worker(&db.url, data.path(), &sink);
    wait_until(Duration::from_secs(60), "sending to start", async || {
        store.digest_counts(id, now_millis()).await.unwrap().sent >= 20
    })
    .await;
    signal(&child, "-TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "herald did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let counts = store.digest_counts(id, now_millis()).await.unwrap();
    assert_eq!(
        counts.in_flight + counts.stuck,
        0,
        "nothing left claimed: {counts:?}"
    );
    assert_eq!(counts.sent + counts.queued, N as i64, "{counts:?}");
    // What was recorded as sent arrived; the rest waits for the next worker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.messages().len() >= counts.sent as usize);
    store.close().await;
}

async fn two_workers_share_a_digest_without_doubles_or_gaps(backend: Backend) {
    // Two herald processes on one database (PostgreSQL, or one SQLite
    // file), each with its own pool of connections to the same relay.
    const N: usize = 1500;
    let (db, store, id) = seeded(backend, N).await;
    let data = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&[]);
    let mut a = start_worker(&db.url, data.path(), &sink);
    let mut b = start_worker(&db.url, data.path(), &sink);
    finish_and_stop(&store, id, Duration::from_secs(90), [&mut a, &mut b]).await;
    let counts = store.digest_counts(id, now_millis()).await.unwrap();
    assert_eq!(counts.sent, N as i64, "{counts:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *received.entry(m.envelope_to).or_default() += 1;
    }
    assert_eq!(received.len(), N, "nobody was missed");
    let doubles: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubles.is_empty(), "two copies went to {doubles:?}");
    store.close().await;
}

async fn two_worker_processes_share_a_rate_limit(backend: Backend) {
    // Two herald processes, one relay limited to 50 messages a second: the
    // limit is shared through the database, so together they keep to it.
    const N: usize = 150;
    let (db, store, id) = seeded(backend, N).await;
    let data = tempfile::tempdir().unwrap();
    let relay = common::faulty_smtp::start_with(common::faulty_smtp::Faults::default()).await;
    let servers = format!(
        "[{{url=\"smtp://127.0.0.1:{}\", max_per_second=50}}]",
        relay.port
    );
    let spawn = || {
        worker_command(&db.url, data.path())
            .env("HERALD_SMTP_SERVERS", &servers)
            .env("HERALD_DELIVERY__BATCH_SIZE", "10")
            .spawn()
            .expect("start herald serve --role worker")
    };
    let (mut a, mut b) = (spawn(), spawn());
    finish_and_stop(&store, id, Duration::from_secs(60), [&mut a, &mut b]).await;
    let accepted = relay.record.accepted.lock().unwrap().clone();
    let unique: std::collections::HashSet<_> = accepted.iter().collect();
    assert_eq!((accepted.len(), unique.len()), (N, N), "each exactly once");
    let times = relay.record.accepted_at.lock().unwrap().clone();
    let rate = common::faulty_smtp::fitted_rate(&times);
    eprintln!("limit 50/s, two processes: measured {rate:.2} msg/s");
    // The limiter grants slots at 50/s; the relay sees them after each
    // send's own delay, so the slope fitted over the middle 120 arrivals
    // (about 2.4 s) moves by the difference of the delays at its two ends
    // divided by 2.4 s: 25 ms of scheduling delay on a loaded machine is
    // 1%. An unshared limit would be 100/s.
    assert!(rate <= 50.0 * 1.04, "measured {rate:.2} msg/s against 50/s");
    assert!(rate >= 50.0 * 0.8, "measured {rate:.2} msg/s against 50/s");
    store.close().await;
}

async fn cli_adds_the_seed_article_previews_and_queues_a_digest(backend: Backend) {
    let db = fresh_database(backend).await;
    let data = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/article-iran-azerbaijan.txt");
    run(herald(&db.url, data.path()).arg("migrate"));
    let out = run(herald(&db.url, data.path())
        .args([
            "article",
            "add",
            "--title",
            "Tensions Elevate Between Iran And Azerbaijan",
            "--url",
            "https://news.example.com/tensions/",
            "--published-at",
            &chrono::Utc::now().to_rfc3339(),
            "--html",
        ])
        .arg(&fixture));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "added article 1"
    );
    let out = run(herald(&db.url, data.path()).args(["digest", "preview"]));
    let preview = String::from_utf8_lossy(&out.stdout);
    assert!(
        // With no site_name and no site_url the site is "the newsletter", never "herald".
        preview.contains("Subject: the newsletter: Tensions Elevate Between Iran And Azerbaijan"),
        "{preview}"
    );
    assert!(preview.contains(
        "Relations between Azerbaijan and Iran have presented a series of warning signs."
    ));
    for unwanted in [
        "mailpoet",
        "Share this news",
        "Related Stories",
        "Sign up Now",
        "Image source",
        // The article's own "Read more:" line (herald's links say "Read
        // more" too, so its target's title is what must be gone).
        "Taliban Killed 13 Hazaras",
    ] {
        assert!(!preview.contains(unwanted), "preview contains {unwanted:?}");
    }
    let out = run(herald(&db.url, data.path()).args([
        "digest",
        "send",
        "--now",
        "--idempotency-key",
        "cli-1",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("digest 1 queued for 0 subscribers"));
    let out = run(herald(&db.url, data.path()).args([
        "digest",
        "send",
        "--now",
        "--idempotency-key",
        "cli-1",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("digest 1 already exists"));
    let out = run(herald(&db.url, data.path()).args(["digest", "status", "1"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("recipients 0: sent 0"));
    // Bad input to the CLI is an error with a reason, not a panic.
    let bad = herald(&db.url, data.path())
        .args([
            "article", "add", "--title", "T", "--url", "ftp://x", "--html",
        ])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("absolute http(s) URL"));
    let bad = herald(&db.url, data.path())
        .args(["digest", "pause", "99"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no digest 99; `herald digest status` lists")
    );
}

both_backends!(
    two_workers_share_a_digest_without_doubles_or_gaps,
    two_worker_processes_share_a_rate_limit,
    sigkill_mid_send_then_restart_finishes_without_resending,
    sigterm_releases_or_finishes_in_flight_work_and_exits_zero,
    cli_adds_the_seed_article_previews_and_queues_a_digest,
);

async fn cli_follows_polls_lists_and_removes_a_feed(backend: Backend) {
    // A feed served from a file by a tiny HTTP server in this test.
    let feed = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>CLI feed</title><link>https://c.example/</link>\
         <item><title>CLI story</title><link>https://c.example/1</link><guid>c1</guid><pubDate>{}</pubDate></item></channel></rss>",
        chrono::Utc::now().to_rfc2822()
    );
    let app =
        axum::Router::new().route("/feed.xml", axum::routing::get(move || async move { feed }));
    let listener = common::feed_server::feed_listener().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let db = fresh_database(backend).await;
    let data = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/feed.xml");
    // Only serve and migrate create a database.
    run(herald(&db.url, data.path()).arg("migrate"));
    // Added: fetched once, and what it holds stored at once.
    let out = run(herald(&db.url, data.path())
        .args(["feed", "add", &url, "--backfill-days", "1"])
        .env(
            common::feed_server::ALLOW_FEED_HOST_ENV.0,
            common::feed_server::ALLOW_FEED_HOST_ENV.1,
        ));
    let added = String::from_utf8_lossy(&out.stdout);
    assert!(
        added.starts_with(&format!("following feed 1: {url} (CLI feed)\n1 items found: 1 go into the next digest, 0 held back")),
        "{added}"
    );
    let out = run(herald(&db.url, data.path())
        .args(["feed", "poll", "--now"])
        .env(
            common::feed_server::ALLOW_FEED_HOST_ENV.0,
            common::feed_server::ALLOW_FEED_HOST_ENV.1,
        )
        .env("HERALD_FEEDS__BACKFILL_DAYS", "1"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("feed 1: 0 new, 0 updated, 0 held back"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(herald(&db.url, data.path()).args(["feed", "list"]));
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("CLI feed") && list.contains("next poll") && list.contains("(ok)"),
        "{list}"
    );
    let out = run(herald(&db.url, data.path()).args(["feed", "poll"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no feed is due"));
    let out = run(herald(&db.url, data.path()).args(["feed", "remove", "1"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("feed 1 removed"));
    let bad = herald(&db.url, data.path())
        .args(["feed", "add", "not a url"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid feed URL"));
}

both_backends!(cli_follows_polls_lists_and_removes_a_feed);

#[test]
fn help_names_every_command() {
    let out = Command::new(HERALD).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve",
        "migrate",
        "article",
        "feed",
        "digest",
        "subscribers",
        "smtp",
    ] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = Command::new(HERALD)
        .args(["digest", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["preview", "send", "status", "pause", "resume", "cancel"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[test]
fn bad_configuration_is_reported_not_ignored() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("herald.toml"), "bnid = \"127.0.0.1:1\"\n").unwrap();
    let out = herald("sqlite://x.db", data.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bnid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A number out of range is refused at start with the allowed range,
    // never wrapped (u64::MAX once became -1: a poll every second).
    std::fs::remove_file(data.path().join("herald.toml")).unwrap();
    let out = herald("sqlite://x.db", data.path())
        .env("HERALD_BIND", format!("127.0.0.1:{}", free_port()))
        .env("HERALD_FEEDS__POLL_INTERVAL_SECS", "18446744073709551615")
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("604800"), "{stderr}");
}

/// Issue 17, item 10: a `base_url` without http(s), or with a query or
/// fragment, stops every command at start, before any database is
/// touched, with the key, the value and what to write; an http base_url
/// that is not loopback is accepted with a warning, loopback http without
/// one. Before, `news.example.com` and `ftp://…` were accepted.
#[test]
fn a_bad_base_url_stops_every_command_and_plain_http_is_warned_about() {
    let data = tempfile::tempdir().unwrap();
    for (bad, write) in [
        ("news.example.com", "https://news.example.com"),
        ("ftp://news.example.com/n", "https://news.example.com/n"),
        ("http://x/?a=1", "http://x"),
        ("https://x/#f", "https://x"),
    ] {
        for command in [
            &["migrate"][..],
            &["feed", "list"],
            &["digest", "status", "1"],
            &["serve"],
        ] {
            let out = herald("sqlite://x.db", data.path())
                .env("HERALD_BIND", "127.0.0.1:0")
                .env("HERALD_BASE_URL", bad)
                .args(command)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command:?} ran with base_url {bad}");
            assert!(
                stderr.contains(&format!("base_url = {bad:?}"))
                    && stderr.contains(&format!("write base_url = {write:?}")),
                "{command:?}: {stderr}"
            );
            assert!(
                !data.path().join("x.db").exists(),
                "{command:?} made a database"
            );
        }
    }
    for (url, warned) in [
        ("http://news.example.com/n", true),
        ("http://127.0.0.1:8080/n", false),
        ("https://news.example.com/n", false),
    ] {
        let out = run(herald("sqlite://x.db", data.path())
            .env("HERALD_BASE_URL", url)
            .arg("migrate"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.contains("base_url is not https"),
            warned,
            "{url}: {stderr}"
        );
    }
}

#[test]
fn worker_threads_from_the_environment() {
    let data = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", data.path().join("h.db").display());
    let ok = herald(&db, data.path())
        .env("HERALD_WORKER_THREADS", "1")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for bad in ["0", "many", "-2"] {
        let out = herald(&db, data.path())
            .env("HERALD_WORKER_THREADS", bad)
            .arg("migrate")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("HERALD_WORKER_THREADS"),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Zero configuration: SQLite in ./data, and with no SMTP server every
/// message is written as an .eml file in ./data/outbox.
#[tokio::test]
async fn zero_configuration_serves_on_sqlite_and_writes_mail_to_the_outbox() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(HERALD)
        .env_clear()
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .arg("serve")
        .current_dir(cwd.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "herald serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = client
        .post(format!("{base}/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=first%40example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let outbox = cwd.path().join("data/outbox");
    let deadline = Instant::now() + Duration::from_secs(10);
    let eml = loop {
        let files: Vec<_> = std::fs::read_dir(&outbox)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        if let Some(f) = files
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "eml"))
        {
            break f;
        }
        assert!(Instant::now() < deadline, "no .eml in {}", outbox.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let raw = std::fs::read(&eml).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Confirm your subscription to the newsletter")
    );
    assert!(msg
        .body_text(0)
        .unwrap()
        .contains(&format!("{base}/confirm/")));
    assert!(cwd.path().join("data/herald.db").exists());
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("outbox"),
        "the log says where mail goes: {log}"
    );
}

/// `herald smtp list` shows a server the workers stopped, with its last
/// error; `herald smtp resume NAME` takes it back into use, and says so
/// when there is nothing to resume.
async fn smtp_list_and_resume_from_the_command_line(backend: Backend) {
    let db = fresh_database(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_millis();
    store
        .record_smtp_health(
            "relay.example.com:587",
            "stopped",
            Some("the server refused the credentials (535 5.7.8)"),
            now,
            now,
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(herald(&db.url, dir.path()).args(["smtp", "list"]));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("relay.example.com:587  stopped"),
        "{listed}"
    );
    assert!(listed.contains("refused the credentials"), "{listed}");
    let out = run(herald(&db.url, dir.path()).args(["smtp", "resume", "relay.example.com:587"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed"));
    let again = herald(&db.url, dir.path())
        .args(["smtp", "resume", "relay.example.com:587"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not stopped"));
}

both_backends!(smtp_list_and_resume_from_the_command_line);

/// `herald inbound` from a mail server's pipe: another working directory,
/// the configuration named by --config. Its exit code, stdout and stderr.
fn inbound_from(
    cwd: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    raw: &str,
) -> (Option<i32>, String) {
    use std::io::Write as _;
    let mut cmd = Command::new(HERALD);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_LOG", "warn")
        .current_dir(cwd)
        .args(args)
        .arg("inbound")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run herald inbound");
    let _ = child.stdin.take().unwrap().write_all(raw.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const A_BOUNCE: &str = "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@herald.test\r\nSubject: failure notice\r\nMessage-ID: <b1@mx.example.net>\r\n\r\nHi.\r\n";

/// Every file in `dir` and below.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Inputs tried, all from another working directory: a herald.toml whose
/// relative `data_dir` is taken from the file's directory (migrate there,
/// then inbound finds that database); a herald.toml without `data_dir`
/// (no database where it points: before, a new database and secret were
/// made in the working directory and the bounce was dropped with exit 0);
/// a --config file that does not exist and one that is not TOML (exit 1
/// before, which Postfix treats as permanent); a list command against a
/// missing database (refused, nothing created).
#[test]
fn inbound_with_its_configuration_off_keeps_the_mail_and_creates_nothing() {
    let config_dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("herald.toml");
    let config_arg = config.to_str().unwrap();

    // A relative data_dir in the file is relative to the file.
    std::fs::write(
        &config,
        "data_dir = \"state\"\n[inbound]\nbounce_address = \"bounces@herald.test\"\n",
    )
    .unwrap();
    run(Command::new(HERALD)
        .env_clear()
        .env("HERALD_LOG", "warn")
        .current_dir(elsewhere.path())
        .args(["--config", config_arg, "migrate"]));
    assert!(config_dir.path().join("state/herald.db").is_file());
    let (code, out) = inbound_from(elsewhere.path(), &[], &["--config", config_arg], A_BOUNCE);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"outcome\":\"ignored\""), "{out}");
    assert!(
        files_under(elsewhere.path()).is_empty(),
        "{:?}",
        files_under(elsewhere.path())
    );

    // No data_dir in the file: ./data of the working directory, where no
    // database is. The mail stays with the MTA; nothing is created.
    std::fs::write(
        &config,
        "[inbound]\nbounce_address = \"bounces@herald.test\"\n",
    )
    .unwrap();
    let (code, out) = inbound_from(elsewhere.path(), &[], &["--config", config_arg], A_BOUNCE);
    assert_eq!(code, Some(75), "{out}");
    assert!(out.contains("no database at"), "{out}");
    assert!(out.contains("herald migrate"), "{out}");
    assert!(
        files_under(elsewhere.path()).is_empty(),
        "{:?}",
        files_under(elsewhere.path())
    );

    // A missing or broken configuration: 75, not 1.
    let missing = config_dir.path().join("missing.toml");
    let (code, out) = inbound_from(
        elsewhere.path(),
        &[],
        &["--config", missing.to_str().unwrap()],
        A_BOUNCE,
    );
    assert_eq!(code, Some(75), "{out}");
    assert!(out.contains("does not exist"), "{out}");
    std::fs::write(&config, "data_dir = [unclosed\n").unwrap();
    let (code, out) = inbound_from(elsewhere.path(), &[], &["--config", config_arg], A_BOUNCE);
    assert_eq!(code, Some(75), "{out}");

    // Other commands refuse too (exit 1: an operator is watching).
    let out = Command::new(HERALD)
        .env_clear()
        .env("HERALD_LOG", "warn")
        .current_dir(elsewhere.path())
        .args(["subscribers", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(
        files_under(elsewhere.path()).is_empty(),
        "{:?}",
        files_under(elsewhere.path())
    );
}

/// A database server that is up, with a database that herald never
/// migrated (SQLite: a file that does not exist): `herald inbound` exits
/// 75 and creates no table, no secret.
async fn inbound_never_initialises_a_database(backend: Backend) {
    let db = fresh_database(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = inbound_from(
        dir.path(),
        &[("HERALD_DATABASE_URL", &db.url)],
        &[],
        A_BOUNCE,
    );
    assert_eq!(code, Some(75), "{out}");
    assert!(out.contains("no database at"), "{out}");
    if backend == Backend::Postgres {
        let store = Store::connect(&db.url).await.unwrap();
        let Store::Postgres(pool) = &store else {
            unreachable!()
        };
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(tables, 0, "herald inbound created tables");
        store.close().await;
    } else {
        let path = db.url.trim_start_matches("sqlite://");
        assert!(!Path::new(path).exists(), "herald inbound created {path}");
    }
    // After `herald migrate` the same command acts.
    run(herald(&db.url, dir.path()).arg("migrate"));
    let (code, out) = inbound_from(
        dir.path(),
        &[("HERALD_DATABASE_URL", &db.url)],
        &[],
        A_BOUNCE,
    );
    assert_eq!(code, Some(0), "{out}");
}

both_backends!(inbound_never_initialises_a_database);

/// Runs `args` with every log line switched on (`HERALD_LOG=debug`: sqlx
/// logs each statement), stdout and stderr both pipes.
fn run_chatty(db_url: &str, data_dir: &Path, args: &[&str]) -> Output {
    run(herald(db_url, data_dir)
        .env("HERALD_LOG", "debug")
        .args(args))
}

/// A command's stdout holds its output and nothing else; log lines go to
/// stderr, and a pipe gets them without colour codes. Tried: `migrate` and
/// `subscribers list` with every debug line on, `NO_COLOR` unset (a pipe
/// is never coloured, whatever the environment says).
async fn cli_output_on_stdout_plain_logs_on_stderr(backend: Backend) {
    let (db, store, _) = seeded(backend, 3).await;
    let data = tempfile::tempdir().unwrap();
    let out = run_chatty(&db.url, data.path(), &["migrate"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(stdout, format!("migrations applied ({name})\n"));
    let out = run_chatty(&db.url, data.path(), &["subscribers", "list"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[0], "confirmed: 3");
    for (i, line) in lines[1..].iter().enumerate() {
        assert!(
            line.contains(&format!("confirmed     reader{i:05}@example.com")),
            "{line:?} in {stdout}"
        );
    }
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.lines().filter(|l| l.contains("DEBUG")).count() >= 2,
        "the log lines should be on stderr: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in logs written to a pipe: {stderr:?}"
    );
    store.close().await;
}

both_backends!(cli_output_on_stdout_plain_logs_on_stderr);

/// On a terminal (a pseudo-terminal from util-linux's `script`) log lines
/// are coloured, unless `NO_COLOR` holds any non-empty value; an empty
/// `NO_COLOR` counts as unset (https://no-color.org).
#[test]
fn logs_are_coloured_on_a_terminal_unless_no_color() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/herald.db?mode=rwc", data.path().display());
    let on_a_terminal = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("{HERALD} migrate"), "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SHELL", "/bin/sh")
            .env("HERALD_DATABASE_URL", &url)
            .env("HERALD_DATA_DIR", data.path())
            .env("HERALD_LOG", "debug")
            .current_dir(data.path())
            .stdin(Stdio::null());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = run(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("DEBUG"),
            "no log line on the terminal: {text}"
        );
        text.contains('\u{1b}')
    };
    assert!(on_a_terminal(None), "no colour on a terminal");
    assert!(
        on_a_terminal(Some("")),
        "an empty NO_COLOR turned colour off"
    );
    for value in ["1", "0", "false", "yes"] {
        assert!(!on_a_terminal(Some(value)), "colour with NO_COLOR={value}");
    }
}

/// `herald subscribers list | head -1`: the reader closes the pipe after
/// one line while herald still has thousands to print. herald ends with
/// 141 (128 + SIGPIPE, what a shell reports for `seq 100000 | head -1`),
/// no panic and nothing at all on stderr. Tried: 6,000 rows (far past a
/// 64 KiB pipe buffer), the reader gone after the first line.
async fn a_reader_that_closes_the_pipe_ends_the_listing_quietly(backend: Backend) {
    use std::io::BufRead as _;
    let (db, store, _) = seeded(backend, 6_000).await;
    let data = tempfile::tempdir().unwrap();
    run(herald(&db.url, data.path()).arg("migrate"));
    let mut child = herald(&db.url, data.path())
        .args(["subscribers", "list", "--limit", "6000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    drop(reader);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        first,
        "confirmed: 6000\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    assert_eq!(out.status.code(), Some(141), "{:?}", out.status);
    store.close().await;
}

both_backends!(a_reader_that_closes_the_pipe_ends_the_listing_quietly);

/// `herald subscribers list > file` on a full disk (here /dev/full, which
/// refuses every write with ENOSPC): the error is said on stderr with
/// status 1, never a panic. Tried: the first line already refused.
async fn a_stdout_that_refuses_writes_is_an_error_not_a_panic(backend: Backend) {
    let (db, store, _) = seeded(backend, 3).await;
    let data = tempfile::tempdir().unwrap();
    run(herald(&db.url, data.path()).arg("migrate"));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = herald(&db.url, data.path())
        .args(["subscribers", "list"])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {stderr}", out.status);
    assert_eq!(
        stderr.trim(),
        "herald: writing to stdout: No space left on device (os error 28)"
    );
    store.close().await;
}

both_backends!(a_stdout_that_refuses_writes_is_an_error_not_a_panic);
