//! An operator's first steps with feeds, through the `herald` binary: adding
//! a feed checks it first and says what it found and what it holds back,
//! held-back articles are listed and released, "nothing to send" says why,
//! an article can be removed, and a feed removed and added again lists each
//! article once.
//!
//! Hostile inputs tried at `feed add`: a 404, a 500, an HTML page with and
//! without a `<link rel="alternate">` to its feed (the link relative, and a
//! second one of another type before it), a port where nothing listens,
//! XML cut off in the middle of an item.

mod common;

use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use common::feed_server::{cli, feed_listener, text};
use common::{spawn_app_with, Backend, SmtpSink, TestApp};
use std::process::Output;
use std::time::Duration;

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc2822()
}

fn rss(items: &[(&str, &str, String)]) -> String {
    let items: String = items
        .iter()
        .map(|(title, link, date)| {
            format!("<item><title>{title}</title><link>{link}</link><guid>{link}</guid><pubDate>{date}</pubDate><description>About {title}.</description></item>")
        })
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>Harbour News</title><link>https://harbour.example/</link>{items}</channel></rss>")
}

/// Three stories the feed already carried before herald first read it.
fn three_old_stories() -> String {
    rss(&[
        (
            "Ferry timetable changes",
            "https://harbour.example/ferry",
            days_ago(2),
        ),
        (
            "New lighthouse keeper",
            "https://harbour.example/lighthouse",
            days_ago(3),
        ),
        (
            "Regatta results",
            "https://harbour.example/regatta",
            days_ago(4),
        ),
    ])
}

/// A feed site on the feed host: good, missing, failing, pages, broken.
async fn site() -> String {
    let app = Router::new()
        .route("/feed.xml", get(|| async { ([(header::CONTENT_TYPE, "application/rss+xml")], three_old_stories()) }))
        .route("/missing.xml", get(|| async { StatusCode::NOT_FOUND }))
        .route("/failing.xml", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }))
        .route("/home.html", get(|| async {
            ([(header::CONTENT_TYPE, "text/html")], "<!DOCTYPE html><html><head><title>Harbour</title>\
              <link rel=\"alternate\" type=\"text/html\" href=\"/print\">\
              <link rel=\"alternate\" type=\"application/rss+xml\" title=\"Harbour News\" href=\"feed.xml\">\
              </head><body><h1>Harbour News</h1></body></html>")
        }))
        .route("/about.html", get(|| async {
            ([(header::CONTENT_TYPE, "text/html")], "<!doctype html><html><head><title>About</title></head><body>About us</body></html>")
        }))
        .route("/cut.xml", get(|| async {
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Cut</title><item><title>Half"
        }));
    let listener = feed_listener().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn herald(app: &TestApp, data: &std::path::Path, args: &[&str]) -> (Output, String) {
    let out = cli(app, data, args);
    let said = text(&out);
    (out, said)
}

fn succeeds(app: &TestApp, data: &std::path::Path, args: &[&str]) -> String {
    let (out, said) = herald(app, data, args);
    assert!(out.status.success(), "herald {args:?} failed: {said}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn feed_add_refuses_what_is_not_a_feed_and_says_why(backend: Backend) {
    let server = site().await;
    let closed = feed_listener().await;
    let nothing_listens = format!("http://{}/feed.xml", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    let data = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!("{server}/missing.xml"),
            "the server answered 404 Not Found".to_string(),
        ),
        (
            format!("{server}/failing.xml"),
            "the server answered 500 Internal Server Error".to_string(),
        ),
        (
            format!("{server}/home.html"),
            format!("this is an HTML page, not a feed; its feed may be at {server}/feed.xml"),
        ),
        (
            format!("{server}/about.html"),
            "this is an HTML page, not a feed, and it names no feed".to_string(),
        ),
        (
            nothing_listens.clone(),
            "could not fetch it: could not reach the server".to_string(),
        ),
        (
            format!("{server}/cut.xml"),
            "not a feed herald can read".to_string(),
        ),
    ];
    for (url, reason) in &cases {
        let (out, said) = herald(&app, data.path(), &["feed", "add", url]);
        assert!(!out.status.success(), "{url} was added: {said}");
        assert!(said.contains(reason), "{url}: expected {reason:?}: {said}");
        assert!(
            said.contains("--force"),
            "{url}: says how to add it anyway: {said}"
        );
    }
    assert!(
        app.store.list_feeds().await.unwrap().is_empty(),
        "nothing stored"
    );
    assert_eq!(succeeds(&app, data.path(), &["feed", "list"]), "");

    // The API checks the same way: 422 with the reason, nothing stored.
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({ "url": format!("{server}/home.html") }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("its feed may be at {server}/feed.xml")),
        "{error}"
    );
    assert!(
        app.store.list_feeds().await.unwrap().is_empty(),
        "nothing stored"
    );

    // --force adds it anyway, and says what it found.
    let said = succeeds(
        &app,
        data.path(),
        &["feed", "add", &nothing_listens, "--force"],
    );
    assert!(said.contains("following feed"), "{said}");
    assert!(
        said.contains(
            "added anyway (--force), though could not fetch it: could not reach the server"
        ),
        "{said}"
    );
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({ "url": format!("{server}/missing.xml"), "force": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["forced_past"], "the server answered 404 Not Found",
        "{body}"
    );
    assert_eq!(app.store.list_feeds().await.unwrap().len(), 2);

    // Releasing through the API: nothing held back here; an unknown feed
    // is 404, a day count out of range 400.
    let id = body["id"].as_i64().unwrap();
    for (path, days, status) in [
        (format!("/api/feeds/{id}/backfill"), 7, 200),
        ("/api/feeds/999/backfill".to_string(), 7, 404),
        (format!("/api/feeds/{id}/backfill"), 0, 400),
    ] {
        let resp = app
            .api(reqwest::Method::POST, &path)
            .json(&serde_json::json!({ "days": days }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path} {days}");
        if status == 200 {
            let released: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(released["released"], 0, "{released}");
        }
    }
    app.shutdown().await;
}

async fn held_back_articles_are_said_listed_and_released_into_a_digest(backend: Backend) {
    let server = site().await;
    // feeds.backfill_days is 0, the default.
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    app.import_confirmed(&["reader@example.com"]).await;
    let data = tempfile::tempdir().unwrap();

    let said = succeeds(&app, data.path(), &["digest", "send", "--now"]);
    assert_eq!(
        said.trim(),
        "nothing to send: no digest has been sent yet and there are no articles: follow a feed (`herald feed add URL`) or add an article (`herald article add`)"
    );

    let url = format!("{server}/feed.xml");
    let said = succeeds(&app, data.path(), &["feed", "add", &url]);
    assert!(
        said.contains(&format!("following feed 1: {url} (Harbour News)")),
        "{said}"
    );
    assert!(
        said.contains("3 items found: 0 go into the next digest, 3 held back because they were published before the backfill window or are undated (backfill_days = 0)"),
        "{said}"
    );
    assert!(said.contains("`herald feed backfill 1 --days N`"), "{said}");

    let listed = succeeds(&app, data.path(), &["feed", "list"]);
    assert!(listed.contains("held back: 3 articles"), "{listed}");
    let api = app.api_get("/api/feeds").await;
    assert_eq!(api["feeds"][0]["held_back_articles"], 3, "{api}");
    let articles = succeeds(&app, data.path(), &["article", "list"]);
    assert_eq!(articles.matches("(held back").count(), 3, "{articles}");

    let held =
        "no digest has been sent yet and no article is waiting for one; 3 articles are held back";
    let said = succeeds(&app, data.path(), &["digest", "send", "--now"]);
    assert!(
        said.starts_with(&format!("nothing to send: {held}")),
        "{said}"
    );
    assert!(
        said.contains("release them with `herald feed backfill 1 --days N`"),
        "{said}"
    );
    let said = succeeds(&app, data.path(), &["digest", "preview"]);
    assert!(
        said.starts_with(&format!("nothing would be sent: {held}")),
        "{said}"
    );
    let resp = app
        .api(reqwest::Method::POST, "/api/digests")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["reason"].as_str().unwrap().starts_with(held), "{body}");
    assert_eq!(body["waiting"]["held_back"], 3, "{body}");

    // Released: all three are in the next digest.
    let said = succeeds(&app, data.path(), &["feed", "backfill", "1", "--days", "7"]);
    assert!(
        said.contains("feed 1: 3 held-back articles published in the last 7 days released"),
        "{said}"
    );
    let articles = succeeds(&app, data.path(), &["article", "list"]);
    assert!(!articles.contains("held back"), "{articles}");
    let said = succeeds(&app, data.path(), &["digest", "send", "--now"]);
    let digest: i64 = said
        .strip_prefix("digest ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(said.contains("queued for 1 subscribers"), "{said}");
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    let mail = &app.sink.messages_to("reader@example.com")[0];
    for title in [
        "Ferry timetable changes",
        "New lighthouse keeper",
        "Regatta results",
    ] {
        assert!(
            mail.html.contains(title) && mail.text.contains(title),
            "{title}: {}",
            mail.text
        );
    }

    let said = succeeds(&app, data.path(), &["digest", "send", "--now"]);
    assert!(
        said.starts_with("nothing to send: no new articles since the last digest on 20"),
        "{said}"
    );
    assert!(!said.contains("held back"), "{said}");
    app.shutdown().await;
}

async fn a_feed_removed_and_added_again_lists_each_article_once(backend: Backend) {
    let server = site().await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    let data = tempfile::tempdir().unwrap();
    let url = format!("{server}/feed.xml");
    succeeds(
        &app,
        data.path(),
        &["feed", "add", &url, "--backfill-days", "7"],
    );
    let first = succeeds(&app, data.path(), &["article", "list"]);
    succeeds(&app, data.path(), &["feed", "remove", "1"]);
    let said = succeeds(
        &app,
        data.path(),
        &["feed", "add", &url, "--backfill-days", "7"],
    );
    assert!(
        said.contains("3 items found: 0 go into the next digest, 0 held back"),
        "{said}"
    );
    assert!(said.contains("3 already stored"), "{said}");
    let again = succeeds(&app, data.path(), &["article", "list"]);
    for link in ["/ferry", "/lighthouse", "/regatta"] {
        let link = format!("https://harbour.example{link}");
        assert_eq!(first.matches(&link).count(), 1, "{first}");
        assert_eq!(again.matches(&link).count(), 1, "{again}");
    }
    app.shutdown().await;
}

async fn article_remove_takes_out_an_unsent_article_and_keeps_a_sent_one(backend: Backend) {
    let server = site().await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    app.import_confirmed(&["reader@example.com"]).await;
    let data = tempfile::tempdir().unwrap();
    let sent = app
        .add_article("Sent story", "https://harbour.example/sent", "<p>Sent.</p>")
        .await;
    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;

    // An article already in a digest stays.
    let (out, said) = herald(&app, data.path(), &["article", "remove", &sent.to_string()]);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("is in digest {digest} (done) and stays")),
        "{said}"
    );

    // A feed's article, removed before any digest: gone from the list, not
    // brought back by the next poll, never sent.
    let url = format!("{server}/feed.xml");
    succeeds(
        &app,
        data.path(),
        &["feed", "add", &url, "--backfill-days", "7"],
    );
    let ferry = app
        .store
        .list_articles(10)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.url == "https://harbour.example/ferry")
        .unwrap()
        .id;
    let said = succeeds(
        &app,
        data.path(),
        &["article", "remove", &ferry.to_string()],
    );
    assert_eq!(
        said.trim(),
        format!("article {ferry} removed; no digest will carry it")
    );
    succeeds(&app, data.path(), &["feed", "poll", "--now"]);
    let listed = succeeds(&app, data.path(), &["article", "list"]);
    assert!(!listed.contains("/ferry"), "{listed}");
    assert!(
        listed.contains("/lighthouse") && listed.contains("Sent story"),
        "{listed}"
    );
    let (out, said) = herald(
        &app,
        data.path(),
        &["article", "remove", &ferry.to_string()],
    );
    assert!(
        !out.status.success() && said.contains(&format!("no article {ferry}")),
        "{said}"
    );

    // Through the API: 204, then 404.
    let lighthouse = app
        .store
        .list_articles(10)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.url == "https://harbour.example/lighthouse")
        .unwrap()
        .id;
    let path = format!("/api/articles/{lighthouse}");
    let resp = app
        .api(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .api(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let said = succeeds(&app, data.path(), &["digest", "send", "--now"]);
    let digest: i64 = said
        .strip_prefix("digest ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    let mails = app.sink.messages_to("reader@example.com");
    let last = &mails[mails.len() - 1];
    assert!(last.text.contains("Regatta results"), "{}", last.text);
    for removed in [
        "Ferry timetable changes",
        "New lighthouse keeper",
        "Sent story",
    ] {
        assert!(!last.text.contains(removed), "{removed}: {}", last.text);
    }
    app.shutdown().await;
}

both_backends!(
    feed_add_refuses_what_is_not_a_feed_and_says_why,
    held_back_articles_are_said_listed_and_released_into_a_digest,
    a_feed_removed_and_added_again_lists_each_article_once,
    article_remove_takes_out_an_unsent_article_and_keeps_a_sent_one,
);
