//! Test harness: every test starts the real herald in-process on a random
//! port, against a fresh database (a temp SQLite file, or a new database on
//! the PostgreSQL server that scripts/test.sh started) and its own Postfix
//! smtp-sink, and drives it over HTTP like a browser or mail client would.
#![allow(dead_code)]

pub mod faulty_smtp;
pub mod feed_server;

use herald::config::Config;
use herald::startup::{Application, Role};
use herald::store::Store;
use std::net::TcpListener as StdListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const API_TOKEN: &str = "test-api-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares one test per backend: `mod name { sqlite, postgres }`. The
/// PostgreSQL variant fails loudly when no server was provided.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}

pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    _dir: TempDir,
}

pub async fn fresh_database(backend: Backend) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("herald.db").display()),
        Backend::Postgres => {
            let admin = std::env::var("PG_TEST_URL").expect(
                "PostgreSQL tests need PG_TEST_URL (postgres://user@host:port/db of a server that may create databases); scripts/test.sh starts one",
            );
            let name = format!("herald_test_{}", rand_suffix());
            let store = Store::connect(&admin)
                .await
                .expect("connect to the PostgreSQL test server");
            if let Store::Postgres(pool) = &store {
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(pool)
                    .await
                    .expect("create the test database");
            }
            store.close().await;
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .expect("PG_TEST_URL names a database");
            format!("{base}/{name}")
        }
    };
    TestDb { url, _dir: dir }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Postfix's smtp-sink on a loopback port, dumping every message it
/// receives into its own directory. Extra options inject faults, e.g.
/// `-f RCPT` (5xx at RCPT TO) or `-r RCPT` (4xx).
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    _tmp: TempDir,
    child: Child,
}

pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

impl SmtpSink {
    pub fn start(extra: &[&str]) -> SmtpSink {
        Self::start_on(free_port(), extra, None)
    }

    pub fn start_on(port: u16, extra: &[&str], dir: Option<(TempDir, PathBuf)>) -> SmtpSink {
        assert!(
            std::path::Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's postfix package (scripts/test.sh does)"
        );
        let (tmp, dir) = dir.unwrap_or_else(|| {
            let tmp = tempfile::tempdir().expect("temp dir");
            let dir = tmp.path().join("mail");
            std::fs::create_dir(&dir).expect("mail dir");
            (tmp, dir)
        });
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let mut cmd = Command::new(SMTP_SINK);
        if is_root() {
            cmd.args(["-u", "postfix"]);
        }
        cmd.arg("-d")
            .arg(format!("{}/%H%M%S.", dir.display()))
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start smtp-sink");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        SmtpSink {
            port,
            dir,
            _tmp: tmp,
            child,
        }
    }

    /// Stops the sink but keeps what it received; `restart` brings it back
    /// on the same port and directory, with other options.
    pub fn stop(mut self) -> (u16, TempDir, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let tmp = std::mem::replace(&mut self._tmp, tempfile::tempdir().expect("temp dir"));
        (self.port, tmp, self.dir.clone())
    }

    pub fn restart(self, extra: &[&str]) -> SmtpSink {
        let (port, tmp, dir) = self.stop();
        SmtpSink::start_on(port, extra, Some((tmp, dir)))
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, parsed.
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        // In arrival order: smtp-sink's names have one-second resolution.
        files.sort_by_key(|p| {
            let modified = std::fs::metadata(p).and_then(|m| m.modified()).ok();
            (modified, p.clone())
        });
        files
            .into_iter()
            .filter_map(|p| std::fs::read(&p).ok())
            .map(Received::parse)
            .collect()
    }

    /// Waits until at least `n` messages arrived (and a moment longer, so
    /// the last file is complete).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return self.messages();
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages at smtp-sink within {timeout:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn messages_to(&self, email: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.envelope_to == email)
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as smtp-sink dumped it: its envelope and the parsed MIME.
#[derive(Debug, Clone)]
pub struct Received {
    pub raw: String,
    pub envelope_to: String,
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl Received {
    fn parse(bytes: Vec<u8>) -> Received {
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let envelope_to = envelope_address(&raw, "X-Rcpt-Args: ");
        let parsed = mail_parser::MessageParser::default().parse(&bytes);
        let (subject, html, text) = match &parsed {
            Some(m) => (
                m.subject().unwrap_or("").to_string(),
                m.body_html(0).map(|c| c.into_owned()).unwrap_or_default(),
                m.body_text(0).map(|c| c.into_owned()).unwrap_or_default(),
            ),
            None => Default::default(),
        };
        Received {
            raw,
            envelope_to,
            subject,
            html,
            text,
        }
    }

    /// The raw (unfolded) value of a header of the message itself.
    pub fn header(&self, name: &str) -> Option<String> {
        let parsed = mail_parser::MessageParser::default().parse(self.raw.as_bytes())?;
        let value = parsed
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.replace("\r\n", "").replace('\n', "").trim().to_string());
        value
    }

    /// The envelope sender (MAIL FROM) smtp-sink saw.
    pub fn envelope_from(&self) -> String {
        envelope_address(&self.raw, "X-Mail-Args: ")
    }

    /// The message as it left herald: smtp-sink's own header lines
    /// (X-Client-*, X-Helo-*, X-Mail-Args, X-Rcpt-Args) dropped, CRLF.
    pub fn as_sent(&self) -> String {
        self.raw
            .replace("\r\n", "\n")
            .lines()
            .filter(|l| {
                !["X-Client-", "X-Helo-", "X-Mail-Args", "X-Rcpt-Args"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    /// First link in the plain-text part that starts with `prefix`.
    pub fn link_starting(&self, prefix: &str) -> Option<String> {
        self.text
            .split_whitespace()
            .find(|w| w.starts_with(prefix))
            .map(|s| s.trim_end_matches(['.', ',', ')', '>']).to_string())
    }
}

/// The address in smtp-sink's `X-Mail-Args:` or `X-Rcpt-Args:` line.
fn envelope_address(raw: &str, line: &str) -> String {
    raw.lines()
        .find_map(|l| l.strip_prefix(line))
        .map(|s| {
            s.trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

pub struct TestApp {
    pub state: herald::state::AppState,
    pub base_url: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub sink: SmtpSink,
    pub config: Config,
    cancel: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
    _db: TestDb,
    _data: TempDir,
}

pub fn test_config(db_url: &str, smtp_url: &str, data_dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        database_url: Some(db_url.to_string()),
        bind: "127.0.0.1:0".into(),
        smtp_url: Some(smtp_url.to_string()),
        api_token: Some(API_TOKEN.into()),
        site_name: "The Daily Herald".into(),
        from: "The Daily Herald <news@herald.test>".into(),
        shutdown_timeout_secs: 5,
        ..Config::default()
    };
    config.schedule.enabled = false;
    config.delivery.poll_interval_ms = 50;
    config.delivery.retry_base_ms = 200;
    config.delivery.lease_secs = 30;
    config.delivery.smtp_timeout_secs = 5;
    // Tests poll feeds through the API; the background poller would race
    // them for the same feed. The test of the poller sets its own tick.
    config.feeds.tick_secs = 3600;
    // Feeds are served from FEED_HOST; herald may fetch from that one
    // loopback address and no other (not its own 127.0.0.1).
    config.network.allow_private = vec![feed_server::allowed_feed_host()];
    // Tests post many signups from 127.0.0.1 at once; the tests of the
    // limits set their own.
    config.signup.per_ip_per_minute = 0;
    config.signup.confirmations_per_minute = 0;
    config
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    sink: SmtpSink,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_app_role(backend, sink, Role::All, tweak).await
}

/// herald behind a path: on a port of its own with
/// `base_url = http://127.0.0.1:PORT/newsletter`. Returns the app and the
/// port.
pub async fn spawn_app_under_path(backend: Backend) -> (TestApp, u16) {
    let port = free_port();
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.bind = format!("127.0.0.1:{port}");
        c.base_url = Some(
            format!("http://127.0.0.1:{port}/newsletter")
                .parse()
                .unwrap(),
        );
    })
    .await;
    (app, port)
}

/// With `Role::Web` no delivery worker runs until the test starts one
/// (`TestApp::start_worker`), so queued work can be inspected first.
pub async fn spawn_app_role(
    backend: Backend,
    sink: SmtpSink,
    role: Role,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let db = fresh_database(backend).await;
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&db.url, &sink.url(), data.path());
    tweak(&mut config);
    let app = Application::build(config.clone(), role)
        .await
        .expect("herald starts");
    let addr = app.local_addr().expect("web server bound");
    let state = app.state().clone();
    let store = app.state().store.clone();
    let base_url = app.state().base_url.clone();
    let cancel = CancellationToken::new();
    let run_cancel = cancel.clone();
    let handle = tokio::spawn(async move {
        app.run(run_cancel).await.expect("herald runs");
    });
    assert!(
        base_url.starts_with(&format!("http://{addr}")),
        "{base_url} is not served at {addr}"
    );
    TestApp {
        state,
        base_url,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        store,
        sink,
        config,
        cancel,
        handle: Some(handle),
        _db: db,
        _data: data,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn subscribe_form(&self, email: &str, name: &str) -> reqwest::Response {
        self.client
            .post(self.url("/subscribe"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "email={}&name={}",
                urlencode(email),
                urlencode(name)
            ))
            .send()
            .await
            .expect("POST /subscribe")
    }

    pub async fn post(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        self.client.post(url).send().await.expect("POST")
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        self.client.get(url).send().await.expect("GET")
    }

    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(API_TOKEN)
    }

    /// Subscribes and confirms through the real flow: form, mail, link, button.
    pub async fn subscribe_and_confirm(&self, email: &str) {
        let before = self.sink.messages_to(email).len();
        assert_eq!(self.subscribe_form(email, "").await.status(), 303);
        let mails = loop {
            let m = self.sink.messages_to(email);
            if m.len() > before {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let link = self.sink.messages_to(email)[mails.len() - 1]
            .link_starting(&self.url("/confirm/"))
            .expect("confirmation link");
        let page = self.post(&link).await;
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("You are subscribed"));
    }

    pub async fn add_article(&self, title: &str, url: &str, html: &str) -> i64 {
        let resp = self
            .api(reqwest::Method::POST, "/api/articles")
            .json(&serde_json::json!({"title": title, "url": url, "html": html}))
            .send()
            .await
            .expect("POST /api/articles");
        assert_eq!(resp.status(), 201, "article not created");
        let body: serde_json::Value = resp.json().await.unwrap();
        body["id"].as_i64().expect("article id")
    }

    /// Triggers a digest now and returns its id.
    pub async fn send_digest_now(&self) -> i64 {
        let resp = self
            .api(reqwest::Method::POST, "/api/digests")
            .send()
            .await
            .expect("POST /api/digests");
        assert_eq!(resp.status(), 201, "digest not created");
        let body: serde_json::Value = resp.json().await.unwrap();
        body["id"].as_i64().expect("digest id")
    }

    pub async fn digest_status(&self, id: i64) -> serde_json::Value {
        self.api_get(&format!("/api/digests/{id}")).await
    }

    /// `GET path` on the API, as JSON.
    pub async fn api_get(&self, path: &str) -> serde_json::Value {
        self.api(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// Waits until the digest's status satisfies `ready` (or the timeout
    /// passes, which fails the test) and returns that status.
    pub async fn wait_digest(
        &self,
        id: i64,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.digest_status(id).await;
            if ready(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "digest {id}: no {what} in {timeout:?}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the digest is done (or the timeout passes) and returns its status.
    pub async fn wait_digest_done(&self, id: i64, timeout: Duration) -> serde_json::Value {
        self.wait_digest(id, timeout, "completion", |s| {
            s["digest"]["status"] == "done"
        })
        .await
    }

    pub async fn subscriber_status(&self, email: &str) -> Option<String> {
        let email = herald::domain::SubscriberEmail::parse(email).expect("valid test address");
        self.store
            .subscriber_by_email(&email)
            .await
            .expect("query")
            .map(|s| s.status)
    }

    /// Starts a delivery worker (for apps spawned with `Role::Web`); it
    /// stops with the app.
    pub fn start_worker(&self) {
        tokio::spawn(self.state.worker().run(self.cancel.child_token()));
    }

    /// The one-click unsubscribe URL a digest would carry for this address.
    pub async fn one_click_url(&self, email: &str) -> String {
        let e = herald::domain::SubscriberEmail::parse(email).expect("valid test address");
        let s = self
            .store
            .subscriber_by_email(&e)
            .await
            .expect("query")
            .expect("subscriber exists");
        format!(
            "{}/unsubscribe/one-click/{}",
            self.base_url,
            self.state.signer.unsubscribe_token(s.id, &s.email)
        )
    }

    /// Adds confirmed subscribers directly (as an import would).
    pub async fn import_confirmed(&self, emails: &[&str]) {
        let parsed: Vec<_> = emails
            .iter()
            .map(|e| herald::domain::SubscriberEmail::parse(e).expect("valid test address"))
            .collect();
        self.store
            .import_confirmed(&parsed, "import", herald::domain::time::now_millis())
            .await
            .expect("import");
    }

    /// Restarts the SMTP server on the same port with other options
    /// (e.g. none: the relay recovered), keeping what it received.
    pub fn restart_sink(&mut self, extra: &[&str]) {
        let placeholder = SmtpSink {
            port: 0,
            dir: PathBuf::new(),
            _tmp: tempfile::tempdir().expect("temp dir"),
            child: Command::new("true").spawn().expect("spawn true"),
        };
        let old = std::mem::replace(&mut self.sink, placeholder);
        self.sink = old.restart(extra);
    }

    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("herald shuts down in time")
                .expect("herald task");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Runs the same sqlx expression against whichever pool a store holds, for
/// arranging a state no route reaches (an old row, a bounced subscriber)
/// and for reading what was stored.
#[macro_export]
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            herald::store::Store::Sqlite($pool) => $body,
            herald::store::Store::Postgres($pool) => $body,
        }
    };
}

/// SMTP servers other than smtp-sink (Python smtpd, aiosmtpd) and test certificates.
pub mod python_smtp;

/// A DKIM key written by `herald dkim generate`, and the TXT record it printed.
pub struct DkimKeyFile {
    pub selector: String,
    pub path: PathBuf,
    pub record: String,
}

/// Runs `herald dkim generate` for `selector._domainkey.domain`.
pub fn dkim_generate(
    dir: &std::path::Path,
    selector: &str,
    domain: &str,
    algorithm: &str,
) -> DkimKeyFile {
    let path = dir.join(format!("{selector}.pem"));
    let out = Command::new(feed_server::HERALD)
        .env_clear()
        .env("HERALD_LOG", "warn")
        .env("HERALD_DATA_DIR", dir)
        .args([
            "dkim",
            "generate",
            "--selector",
            selector,
            "--domain",
            domain,
        ])
        .args(["--algorithm", algorithm, "--out"])
        .arg(&path)
        .output()
        .expect("run herald dkim generate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dkim generate failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{selector}._domainkey.{domain}")),
        "{stdout}"
    );
    let record = stdout
        .lines()
        .find(|l| l.starts_with("v=DKIM1;"))
        .unwrap_or_else(|| panic!("no record printed: {stdout}"))
        .to_string();
    DkimKeyFile {
        selector: selector.to_string(),
        path,
        record,
    }
}
