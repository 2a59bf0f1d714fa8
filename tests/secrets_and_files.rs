//! Secrets stay secret and herald's files stay private: settings that hold
//! a secret are read as text, no error or log line shows a password or a
//! link token, and the data directory, the SQLite file and outbox mail are
//! readable by herald's user only.

mod common;

use common::{free_port, spawn_app_with, Backend, SmtpSink};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn herald(data_dir: &Path) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATA_DIR", data_dir)
        .env("HERALD_LOG", "warn")
        .current_dir(data_dir);
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run herald")
}

struct Served {
    child: Child,
    base: String,
}

impl Served {
    fn start(mut cmd: Command) -> Served {
        let port = free_port();
        let child = cmd
            .env("HERALD_BIND", format!("127.0.0.1:{port}"))
            .env("HERALD_SCHEDULE__ENABLED", "false")
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herald serve");
        Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let out = self.child.wait_with_output_now();
                panic!("herald exited with {status}: {out}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("herald did not answer /health within 30 s");
    }

    /// SIGTERM, then everything it printed on stderr.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait_with_output_now()
    }
}

trait WaitOutput {
    fn wait_with_output_now(&mut self) -> String;
}

impl WaitOutput for Child {
    fn wait_with_output_now(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

/// Inputs tried: an API token made only of digits (`1234567890123`), one
/// that reads as a boolean (`true`), and one with a leading zero (`0123`,
/// which must not become 123).
#[tokio::test]
async fn secrets_from_the_environment_are_text_whatever_they_look_like() {
    for token in ["1234567890123", "true", "0123"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = herald(dir.path());
        cmd.env("HERALD_API_TOKEN", token)
            .env("HERALD_SECRET", "4242424242");
        let mut served = Served::start(cmd);
        served.wait_ready().await;
        let client = reqwest::Client::new();
        let ok = client
            .get(format!("{}/api/digests", served.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "token {token:?} was not kept as typed");
        if token == "0123" {
            let wrong = client
                .get(format!("{}/api/digests", served.base))
                .bearer_auth("123")
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), 401);
        }
        let stderr = served.stop();
        assert!(!stderr.contains(token) || token == "true", "{stderr}");
    }
}

/// Inputs tried: a database URL of an unsupported kind with a password, a
/// PostgreSQL URL with a password whose server refuses the connection (a
/// closed loopback port), and a herald.toml whose `api_token` and `secret`
/// are numbers. None of the passwords or secrets may appear in what herald
/// prints.
#[tokio::test]
async fn passwords_and_secrets_never_appear_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let closed_port = free_port();
    for url in [
        "mysql://admin:hunter2@db.example.com/news".to_string(),
        format!("postgres://admin:hunter2@127.0.0.1:{closed_port}/news"),
        format!("postgres://admin:hunter2@127.0.0.1:{closed_port}/news?sslmode=bogus"),
    ] {
        let out = output(
            herald(dir.path())
                .env("HERALD_DATABASE_URL", &url)
                .arg("migrate"),
        );
        assert!(!out.status.success(), "{url} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("hunter2"), "password shown: {stderr}");
        assert!(
            stderr.contains("admin:***@"),
            "URL not shown masked: {stderr}"
        );
    }
    std::fs::write(
        dir.path().join("herald.toml"),
        "api_token = 98765432123\nsecret = 55555555555\n",
    )
    .unwrap();
    let out = output(herald(dir.path()).arg("migrate"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("98765432123"), "{stderr}");
    assert!(!stderr.contains("55555555555"), "{stderr}");
    assert!(
        stderr.contains("api_token") || stderr.contains("secret"),
        "{stderr}"
    );
}

/// With `HERALD_LOG=debug` the request log names paths, never the tokens
/// in confirmation and unsubscribe links.
#[tokio::test]
async fn request_logs_never_show_link_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = herald(dir.path());
    cmd.env("HERALD_LOG", "debug");
    let mut served = Served::start(cmd);
    served.wait_ready().await;
    let client = reqwest::Client::new();
    let paths = [
        ("GET", "/confirm/CONFIRMSECRET0001"),
        ("POST", "/confirm/CONFIRMSECRET0002"),
        ("POST", "/confirm/CONFIRMSECRET0003/resend"),
        ("GET", "/unsubscribe/7.UNSUBSECRET0004"),
        ("POST", "/unsubscribe/one-click/7.UNSUBSECRET0005"),
    ];
    for (method, path) in paths {
        let url = format!("{}{path}", served.base);
        let r = match method {
            "GET" => client.get(url).send().await,
            _ => client.post(url).send().await,
        };
        assert!(r.is_ok(), "{method} {path}");
    }
    let stderr = served.stop();
    assert!(
        stderr.contains("/confirm/…"),
        "the request log should still name the route: {stderr}"
    );
    for secret in [
        "CONFIRMSECRET0001",
        "CONFIRMSECRET0002",
        "CONFIRMSECRET0003",
        "UNSUBSECRET0004",
        "UNSUBSECRET0005",
    ] {
        assert!(!stderr.contains(secret), "{secret} in the log");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under the usual umask (022, set here for this test process), herald
/// creates its data directory 0700 and the SQLite file, its -wal and -shm,
/// and outbox mail 0600. On PostgreSQL only the outbox applies.
async fn herald_files_are_private_to_its_user(backend: Backend) {
    // SAFETY: sets this test process's file-creation mask.
    unsafe {
        libc::umask(0o022);
    }
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.data_dir = c.data_dir.join("private");
        c.smtp_url = None;
        if backend == Backend::Sqlite {
            c.database_url = None;
        }
    })
    .await;
    let data = app.config.data_dir.clone();
    let r = app.subscribe_form("reader@example.com", "").await;
    assert_eq!(r.status(), 303);
    let outbox = data.join("outbox");
    let start = Instant::now();
    let eml = loop {
        let found = std::fs::read_dir(&outbox)
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"));
        if let Some(p) = found {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no .eml written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&outbox), 0o700, "outbox directory");
    assert_eq!(mode(&eml), 0o600, "outbox message {}", eml.display());
    if backend == Backend::Sqlite {
        for name in ["herald.db", "herald.db-wal", "herald.db-shm"] {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
    }
    app.shutdown().await;
}

both_backends!(herald_files_are_private_to_its_user);

/// The backup commands of the "Backup" item in docs/operations.md, as
/// written there (so the documentation cannot drift from what is tested).
fn readme_backup_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
            .expect("docs/operations.md");
    let item = readme
        .find("**Backup**")
        .expect("docs/operations.md has a Backup item");
    let rest = &readme[item..];
    let start = rest.find("```sh\n").expect("a sh code block under Backup") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the code block ends") + start;
    rest[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Issue 16, item 15: the documented backup command, run as an operator
/// would under the usual umask 022 (the old command wrote a 0644 copy of
/// every address and `link_secret`), on a real herald database with a
/// subscriber in it, writes a copy readable by its owner only that is a
/// whole database (SQLite: integrity check and the subscriber; PostgreSQL:
/// a dump with the subscribers table and the subscriber).
async fn the_readme_backup_writes_a_private_copy(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.data_dir = c.data_dir.join("data");
        if backend == Backend::Sqlite {
            c.database_url = None;
        }
    })
    .await;
    assert_eq!(
        app.subscribe_form("reader@example.com", "").await.status(),
        303
    );
    let workdir = app.config.data_dir.parent().unwrap().to_path_buf();
    let (tool, copy) = match backend {
        Backend::Sqlite => ("sqlite3", "herald-backup.db"),
        Backend::Postgres => ("pg_dump", "herald-backup.sql"),
    };
    let commands = readme_backup_commands();
    let command = commands
        .iter()
        .find(|c| c.contains(tool))
        .unwrap_or_else(|| panic!("no {tool} line in the documented backup block: {commands:?}"));
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("umask 022; {command}"))
        .current_dir(&workdir);
    if let Some(url) = &app.config.database_url {
        sh.env("HERALD_DATABASE_URL", url);
    }
    let out = sh.output().expect("run sh");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = workdir.join(copy);
    assert_eq!(mode(&copy), 0o600, "{command} wrote {}", copy.display());
    match backend {
        Backend::Sqlite => {
            let check = Command::new("sqlite3")
                .arg(&copy)
                .arg("PRAGMA integrity_check; SELECT email FROM subscribers;")
                .output()
                .expect("run sqlite3");
            let said = String::from_utf8_lossy(&check.stdout);
            assert_eq!(
                said.lines().collect::<Vec<_>>(),
                ["ok", "reader@example.com"],
                "{said}"
            );
        }
        Backend::Postgres => {
            let dump = std::fs::read_to_string(&copy).unwrap();
            assert!(dump.contains("CREATE TABLE public.subscribers"), "{dump}");
            assert!(dump.contains("reader@example.com"));
        }
    }
    app.shutdown().await;
}

both_backends!(the_readme_backup_writes_a_private_copy);
