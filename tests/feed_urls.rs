//! Where herald fetches feeds from, and what it shows of their addresses.
//!
//! The tests' configuration allows one private address, the feed server's
//! 127.0.0.2 (`network.allow_private`); every other private or reserved
//! address stays refused, however the feed leads there.
//!
//! Hostile inputs tried: a feed on the allowed 127.0.0.2 that answers
//! `302 Location: http://127.0.0.3:PORT/internal.xml` (and one that answers
//! with the IPv4-mapped `http://[::ffff:127.0.0.3]:PORT/…`); feed URLs
//! naming 127.0.0.3 directly, `localhost` (a host name resolving to
//! loopback), `[::ffff:127.0.0.3]`, and 169.254.169.254 (cloud metadata);
//! the same through `herald feed poll`; a feed URL with
//! `reader:hunter2@` whose server is down, and one whose items link
//! relative to it.

mod common;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use common::feed_server::{cli, feed_listener, listed_feed, now_rfc822, poll, rss, text};
use common::{spawn_app_with, Backend, SmtpSink, TestApp};

/// What an internal service would hand out: it must never become an article.
fn internal_feed() -> String {
    rss(
        "https://internal.example/",
        &format!(
            "<item><title>db password is hunter2</title><link>https://internal.example/x</link>\
             <guid>internal-1</guid><pubDate>{}</pubDate></item>",
            now_rfc822()
        ),
    )
}

fn public_feed() -> String {
    rss(
        "https://news.example.com/",
        &format!(
            "<item><title>Allowed story</title><link>https://news.example.com/allowed</link>\
             <guid>allowed-1</guid><pubDate>{}</pubDate></item>",
            now_rfc822()
        ),
    )
}

/// An internal service on `ip` (a port of its own); returns its port.
async fn internal_service(ip: &str) -> u16 {
    let app = Router::new().route("/internal.xml", get(|| async { internal_feed() }));
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Adds a feed through the API, whatever it answers (201 or 200) and
/// whatever its first fetch finds (`"force": true`).
async fn follow(app: &TestApp, url: &str) -> (i64, serde_json::Value) {
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({ "url": url, "force": true }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "feed {url}: {}", resp.status());
    let body = resp.json::<serde_json::Value>().await.unwrap();
    (body["id"].as_i64().unwrap(), body)
}

async fn article_titles(app: &TestApp) -> Vec<String> {
    app.store
        .list_articles(100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.title)
        .collect()
}

async fn a_redirect_or_a_url_to_a_private_address_is_refused(backend: Backend) {
    // 127.0.0.3 is loopback like the allowed 127.0.0.2, but not allowed.
    let internal_port = internal_service("127.0.0.3").await;
    let local_port = internal_service("127.0.0.1").await;
    let to_internal = format!("http://127.0.0.3:{internal_port}/internal.xml");
    let to_mapped = format!("http://[::ffff:127.0.0.3]:{internal_port}/internal.xml");
    let site = Router::new()
        .route("/public.xml", get(|| async { public_feed() }))
        .route(
            "/moved.xml",
            get(|| async { Redirect::temporary("/public.xml") }),
        )
        .route(
            "/redirect.xml",
            get(move || async move { Redirect::temporary(&to_internal) }),
        )
        .route(
            "/redirect-mapped.xml",
            get(move || async move { Redirect::temporary(&to_mapped) }),
        );
    let listener = feed_listener().await;
    let feed_site = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.feeds.backfill_days = 1;
    })
    .await;

    // The allowed address works, and so does a redirect that stays on it.
    // The first poll is made as the feed is added.
    let (_, added) = follow(&app, &format!("{feed_site}/moved.xml")).await;
    let report = &added["report"];
    assert_eq!(report["error"], serde_json::Value::Null, "{report}");
    assert_eq!(report["new_articles"], 1, "{report}");

    let refused = [
        (
            format!("{feed_site}/redirect.xml"),
            "refused to connect to 127.0.0.3 (loopback)",
        ),
        (
            format!("{feed_site}/redirect-mapped.xml"),
            "refused to connect to ::ffff:127.0.0.3 (loopback)",
        ),
        (
            format!("http://127.0.0.3:{internal_port}/internal.xml"),
            "refused to connect to 127.0.0.3 (loopback)",
        ),
        (
            format!("http://[::ffff:127.0.0.3]:{internal_port}/internal.xml"),
            "refused to connect to ::ffff:127.0.0.3 (loopback)",
        ),
        (
            format!("http://localhost:{local_port}/internal.xml"),
            "refused to connect to localhost at ",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "refused to connect to 169.254.169.254 (cloud metadata)",
        ),
    ];
    for (url, expected) in &refused {
        // Refused when added, so forced in (`follow`); refused at each poll.
        let (id, added) = follow(&app, url).await;
        let forced_past = added["forced_past"].as_str().unwrap_or_default();
        assert!(forced_past.contains(expected), "{url}: {added}");
        let report = poll(&app, id).await;
        let error = report["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{url}: {report}");
        assert!(error.contains("network.allow_private"), "{url}: {error}");
        let listed = listed_feed(&app, id).await;
        assert_eq!(listed["last_error"].as_str(), Some(error), "{listed}");
    }
    assert_eq!(article_titles(&app).await, ["Allowed story"]);

    // `herald feed poll` refuses them the same way (and still polls the
    // allowed one).
    let data = tempfile::tempdir().unwrap();
    let out = cli(&app, data.path(), &["feed", "poll", "--now"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("error: refused to connect to").count(),
        refused.len(),
        "{said}"
    );
    assert!(!said.contains("hunter2"), "{said}");
    assert_eq!(article_titles(&app).await, ["Allowed story"]);
    app.shutdown().await;
}

both_backends!(a_redirect_or_a_url_to_a_private_address_is_refused);

/// Answers 401 unless the request carries `reader:hunter2` (basic auth),
/// as a password-protected feed does.
async fn protected_feed(headers: HeaderMap) -> axum::response::Response {
    // base64("reader:hunter2")
    let expected = "Basic cmVhZGVyOmh1bnRlcjI=";
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    rss(
        "https://news.example.com/",
        &format!(
            "<item><title>Members story</title><link>/stories/members</link>\
             <guid>members-1</guid><pubDate>{}</pubDate></item>",
            now_rfc822()
        ),
    )
    .into_response()
}

async fn a_feed_password_is_not_in_logs_or_the_feed_list(backend: Backend) {
    let site = Router::new().route("/members.xml", get(protected_feed));
    let listener = feed_listener().await;
    let host = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });
    // A port on the allowed host with nothing listening: every poll fails.
    let down = feed_listener().await;
    let down_host = down.local_addr().unwrap();
    drop(down);
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.feeds.backfill_days = 1;
    })
    .await;
    let data = tempfile::tempdir().unwrap();

    let protected = format!("http://reader:hunter2@{host}/members.xml");
    let failing = format!("http://reader:hunter2@{down_host}/feed.xml");
    let mut said = String::new();
    for (url, force) in [(&protected, None), (&failing, Some("--force"))] {
        let mut args = vec!["feed", "add", url, "--backfill-days", "1"];
        args.extend(force);
        let out = cli(&app, data.path(), &args);
        assert!(out.status.success(), "{}", text(&out));
        said.push_str(&text(&out));
    }
    // The protected feed was read when added (the password was sent).
    assert!(
        said.contains("1 items found: 1 go into the next digest"),
        "{said}"
    );
    assert!(
        said.contains(&format!("http://reader:***@{host}/members.xml")),
        "{said}"
    );

    // One poll that works (the password is still sent) and one that fails,
    // with the warnings herald logs for it.
    let out = cli(&app, data.path(), &["feed", "poll", "--now"]);
    let polled = text(&out);
    assert!(out.status.success(), "{polled}");
    assert!(polled.contains("feed 1: 0 new"), "{polled}");
    assert!(
        polled.contains("feed 2: error: could not reach the server"),
        "{polled}"
    );
    assert!(
        polled.contains("feed poll failed"),
        "the warning is logged: {polled}"
    );
    said.push_str(&polled);

    let out = cli(&app, data.path(), &["feed", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    assert!(
        listing.contains(&format!("http://reader:***@{down_host}/feed.xml")),
        "{listing}"
    );
    assert!(
        listing.contains("last error: could not reach the server"),
        "{listing}"
    );
    said.push_str(&listing);

    // The API's list and the server's own poll of the failing feed.
    said.push_str(&app.api_get("/api/feeds").await.to_string());
    said.push_str(&poll(&app, 2).await.to_string());

    assert!(!said.contains("hunter2"), "{said}");

    // The item's relative link is read against the feed's address without
    // its credentials.
    let articles = app.store.list_articles(10).await.unwrap();
    let urls: Vec<String> = articles.iter().map(|a| a.url.to_string()).collect();
    assert_eq!(urls, [format!("http://{host}/stories/members")], "{urls:?}");
    app.shutdown().await;
}

both_backends!(a_feed_password_is_not_in_logs_or_the_feed_list);
