//! A loopback server for hand-written feeds, and the API and CLI calls
//! the feed tests share.

use super::TestApp;
use axum::routing::get;
use axum::Router;
use std::path::Path;
use std::process::{Command, Output};

pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// The loopback address test feeds are served from: the one private
/// address the tests' configuration allows herald to fetch from.
pub const FEED_HOST: &str = "127.0.0.2";

/// `network.allow_private` of the test configuration: FEED_HOST only.
pub fn allowed_feed_host() -> herald::outgoing::AllowedRange {
    herald::outgoing::AllowedRange::try_from(format!("{FEED_HOST}/32")).unwrap()
}

/// The same allowance for a `herald` child process.
pub const ALLOW_FEED_HOST_ENV: (&str, &str) =
    ("HERALD_NETWORK__ALLOW_PRIVATE", "[\"127.0.0.2/32\"]");

/// A listener for a test feed server, on FEED_HOST.
pub async fn feed_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind((FEED_HOST, 0)).await.unwrap()
}

/// Serves each `(path, body)` on FEED_HOST; returns the base URL.
pub async fn serve(routes: Vec<(&'static str, String)>) -> String {
    let mut app = Router::new();
    for (path, body) in routes {
        app = app.route(path, get(move || async move { body }));
    }
    let listener = feed_listener().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub fn now_rfc822() -> String {
    chrono::Utc::now().to_rfc2822()
}

pub fn rss(channel_link: &str, items: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\"><channel><title>Hostile</title><link>{channel_link}</link>{items}</channel></rss>"
    )
}

pub fn item(title: &str, link: Option<&str>, guid: &str, extra: &str) -> String {
    let link = link
        .map(|l| format!("<link>{l}</link>"))
        .unwrap_or_default();
    format!(
        "<item><title>{title}</title>{link}<guid isPermaLink=\"false\">{guid}</guid><pubDate>{}</pubDate>{extra}</item>",
        now_rfc822()
    )
}

/// Adds a feed through the API; herald fetches it once and stores what it
/// finds (the feed's first poll). Returns its id.
pub async fn add_feed(app: &TestApp, url: &str) -> i64 {
    add_feed_reporting(app, url).await.0
}

/// Adds a feed through the API; returns its id and the report of its
/// first poll, made when it was added.
pub async fn add_feed_reporting(app: &TestApp, url: &str) -> (i64, serde_json::Value) {
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.json::<serde_json::Value>().await.unwrap();
    assert_eq!(status, 201, "feed {url}: {body}");
    (body["id"].as_i64().unwrap(), body["report"].clone())
}

/// Adds a feed through the API whatever its first fetch finds
/// (`"force": true`), as a test of a failing feed needs.
pub async fn add_feed_forced(app: &TestApp, url: &str) -> i64 {
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({ "url": url, "force": true }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.json::<serde_json::Value>().await.unwrap();
    assert_eq!(status, 201, "feed {url}: {body}");
    body["id"].as_i64().unwrap()
}

pub async fn poll(app: &TestApp, id: i64) -> serde_json::Value {
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/feeds/{id}/poll"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<serde_json::Value>().await.unwrap()["report"].clone()
}

pub async fn listed_feed(app: &TestApp, id: i64) -> serde_json::Value {
    let list = app.api_get("/api/feeds").await;
    list["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .cloned()
        .unwrap()
}

/// `herald` on the test app's database, as an operator would run it.
pub fn cli(app: &TestApp, data_dir: &Path, args: &[&str]) -> Output {
    Command::new(HERALD)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HERALD_DATABASE_URL",
            app.config.database_url.as_deref().unwrap(),
        )
        .env("HERALD_DATA_DIR", data_dir)
        .env(ALLOW_FEED_HOST_ENV.0, ALLOW_FEED_HOST_ENV.1)
        .env("HERALD_LOG", "warn")
        .current_dir(data_dir)
        .args(args)
        .output()
        .expect("run herald")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
