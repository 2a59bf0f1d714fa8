//! Hostile feeds, and what a reader then sees: only http(s) links and
//! images in a digest, whatever the feed, the API or the CLI sent; a huge
//! or deeply nested item refused (and said so in `feed list`) while
//! /health keeps answering.

mod common;

use common::feed_server::{add_feed_reporting, cli, item, listed_feed, rss, serve, text};
use common::{spawn_app_with, Backend, SmtpSink};
use herald::store::Store;
use std::time::{Duration, Instant};

/// Schemes that must never reach a digest as a link or an image.
const BAD_SCHEMES: [&str; 4] = ["javascript:", "data:", "vbscript:", "mailto:"];

/// A row written before the rules existed, straight into the table.
async fn insert_legacy_article(store: &Store, title: &str, url: &str, image: Option<&str>) {
    const SQL: &str = "INSERT INTO articles (feed_id, guid, url, title, summary, html, image_url, published_at, created_at, updated_at, held_back)
                       VALUES (NULL, $1, $1, $2, 'Legacy summary.', '', $3, $4, $4, $4, 0)";
    let now = herald::domain::time::now_millis();
    match store {
        Store::Sqlite(pool) => {
            sqlx::query(SQL)
                .bind(url)
                .bind(title)
                .bind(image)
                .bind(now)
                .execute(pool)
                .await
                .unwrap();
        }
        Store::Postgres(pool) => {
            sqlx::query(SQL)
                .bind(url)
                .bind(title)
                .bind(image)
                .bind(now)
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

/// Tried: item links `javascript:`, `data:text/html;base64,…`,
/// `vbscript:`; an item without a link in a channel whose link is
/// `javascript:`; an image enclosure `javascript:`; a media:content image
/// `data:`; a first `<img>` `mailto:` and `vbscript:`; a JSON Feed `url`
/// `javascript:` and `data:`, a `home_page_url` `javascript:`, an `image`
/// `javascript:` and `mailto:`; rows stored before the fix with a
/// `javascript:` link and a `mailto:` image; the API and the CLI with the
/// same URLs.
async fn feed_links_that_are_not_http_never_reach_a_digest(backend: Backend) {
    let now = chrono::Utc::now().to_rfc3339();
    let hostile_rss = rss(
        "javascript:alert('channel')",
        &[
            item("JS link", Some("javascript:alert(1)"), "js", "<description>x</description>"),
            item(
                "Data link",
                Some("data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="),
                "data",
                "<description>x</description>",
            ),
            item("VB link", Some("vbscript:msgbox(1)"), "vb", "<description>x</description>"),
            item(
                "No link here",
                None,
                "nolink",
                "<description>Falls back to a link that is http.</description>",
            ),
            item(
                "Evil enclosure",
                Some("https://good.example/enclosure"),
                "enc",
                "<enclosure url=\"javascript:alert(2)\" type=\"image/jpeg\" length=\"1\"/><description>&lt;p&gt;Text&lt;img src=\"mailto:x@evil.example\"&gt;&lt;/p&gt;</description>",
            ),
            item(
                "Evil media",
                Some("https://good.example/media"),
                "media",
                "<media:content url=\"data:image/png;base64,AAAA\" medium=\"image\" type=\"image/png\"/><description>&lt;img src=\"vbscript:x\"&gt;&lt;p&gt;Words&lt;/p&gt;</description>",
            ),
            item(
                "Good story",
                Some("https://good.example/story"),
                "good",
                "<enclosure url=\"https://good.example/pic.jpg\" type=\"image/jpeg\" length=\"1\"/><description>Fine.</description>",
            ),
        ]
        .concat(),
    );
    let hostile_json = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "home_page_url": "javascript:alert('home')",
        "items": [
            {"id": "j-js", "url": "javascript:alert(1)", "title": "JSON JS", "content_html": "<p>x</p>", "date_published": now},
            {"id": "j-data", "url": "data:text/html,<script>alert(1)</script>", "title": "JSON data", "content_html": "<p>x</p>", "date_published": now},
            {"id": "j-nourl", "title": "JSON no url", "content_html": "<p>Falls back</p>", "image": "javascript:alert(3)", "date_published": now},
            {"id": "j-good", "url": "https://good.example/json", "title": "JSON good", "image": "mailto:x@evil.example", "content_html": "<p>ok</p>", "date_published": now},
        ]
    })
    .to_string();
    let server = serve(vec![
        ("/hostile.xml", hostile_rss),
        ("/hostile.json", hostile_json),
    ])
    .await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 1).await;
    app.import_confirmed(&["reader@example.com"]).await;

    let (rss_feed, report) = add_feed_reporting(&app, &format!("{server}/hostile.xml")).await;
    assert_eq!(report["refused_items"], 3, "{report}");
    assert_eq!(report["new_articles"], 4, "{report}");
    let listed = listed_feed(&app, rss_feed).await;
    assert_eq!(listed["refused_items"], 3);
    assert!(listed["last_refusal"]
        .as_str()
        .unwrap()
        .contains("its link is not an absolute http(s) URL"));
    assert!(
        listed["site_url"].is_null(),
        "a javascript: channel link is not kept"
    );

    let (_, report) = add_feed_reporting(&app, &format!("{server}/hostile.json")).await;
    assert_eq!(report["refused_items"], 2, "{report}");
    assert_eq!(report["new_articles"], 2, "{report}");

    // Through the API: refused with the reason.
    for body in [
        serde_json::json!({"title": "T", "url": "javascript:alert(1)"}),
        serde_json::json!({"title": "T", "url": "data:text/html;base64,PHNjcmlwdD4="}),
        serde_json::json!({"title": "T", "url": "vbscript:msgbox(1)"}),
        serde_json::json!({"title": "T", "url": "https://e.com/a", "image_url": "mailto:x@evil.example"}),
        serde_json::json!({"title": "T", "url": "https://e.com/a", "image_url": "data:image/png;base64,AAAA"}),
    ] {
        let resp = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        assert!(resp.text().await.unwrap().contains("http(s)"), "{body}");
    }
    // A body whose first image is mailto: gets no card image.
    let id = app
        .add_article(
            "API story",
            "https://good.example/api",
            r#"<p>Body<img src="mailto:x@evil.example"></p>"#,
        )
        .await;
    let stored = app.store.list_articles(50).await.unwrap();
    let api_story = stored.iter().find(|a| a.id == id).unwrap();
    assert_eq!(api_story.image_url, None);

    // Through the CLI: refused, nothing stored.
    let data = tempfile::tempdir().unwrap();
    let body = data.path().join("body.html");
    std::fs::write(&body, "<p>CLI body</p>").unwrap();
    let body = body.to_str().unwrap();
    for args in [
        vec![
            "article",
            "add",
            "--title",
            "CLI",
            "--url",
            "javascript:alert(1)",
            "--html",
            body,
        ],
        vec![
            "article",
            "add",
            "--title",
            "CLI",
            "--url",
            "https://e.com/cli",
            "--html",
            body,
            "--image",
            "mailto:x@evil.example",
        ],
    ] {
        let out = cli(&app, data.path(), &args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("http(s)"), "{}", text(&out));
    }
    assert!(!app
        .store
        .list_articles(100)
        .await
        .unwrap()
        .iter()
        .any(|a| a.title == "CLI"));

    // Rows written before the fix are held to the rule when the digest is built.
    insert_legacy_article(&app.store, "Legacy JS row", "javascript:alert(9)", None).await;
    insert_legacy_article(
        &app.store,
        "Legacy good row",
        "https://good.example/legacy",
        Some("mailto:x@evil.example"),
    )
    .await;

    // Every stored article's link and image is http(s).
    for a in app.store.list_articles(100).await.unwrap() {
        if a.title.starts_with("Legacy") {
            continue;
        }
        assert!(
            a.url.starts_with("http://") || a.url.starts_with("https://"),
            "{}",
            a.url
        );
        if let Some(i) = &a.image_url {
            assert!(i.starts_with("https://"), "{} image {i}", a.title);
        }
    }

    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    let mail = &app.sink.messages_to("reader@example.com")[0];
    for scheme in BAD_SCHEMES {
        assert!(!mail.html.contains(scheme), "{scheme} in the HTML part");
        assert!(!mail.text.contains(scheme), "{scheme} in the text part");
    }
    for shown in [
        "Good story",
        "https://good.example/story",
        "https://good.example/pic.jpg",
        "No link here",
        "Evil enclosure",
        "Evil media",
        "JSON good",
        "JSON no url",
        "API story",
        "Legacy good row",
    ] {
        assert!(mail.html.contains(shown), "{shown} missing from the digest");
    }
    // The item without a link points at the feed itself.
    assert!(mail
        .text
        .contains(&format!("Read more: {server}/hostile.xml")));
    for refused in [
        "JS link",
        "Data link",
        "VB link",
        "JSON JS",
        "JSON data",
        "Legacy JS row",
    ] {
        assert!(!mail.html.contains(refused), "{refused} reached the digest");
    }
    app.shutdown().await;
}

/// The status line of `GET /health`, over a plain blocking socket that
/// gives up after `limit`.
fn health_status_line(addr: &str, limit: Duration) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let socket_addr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&socket_addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    Ok(String::from_utf8_lossy(&head[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// Tried: one item of 100,000 nested `<div>`s (1.1 MB, over the size cap)
/// and one of 40,000 (440 KB, under the size cap but too deep) beside a good item in
/// the same feed, added (and so polled for the first time) through the API
/// while /health is asked every 50 ms; through the API, the same two bodies.
async fn a_huge_nested_feed_item_is_refused_and_health_keeps_answering(backend: Backend) {
    let nested = format!(
        "{}deep{}",
        "<div>".repeat(100_000),
        "</div>".repeat(100_000)
    );
    // Under the size cap (440 KB), over the depth cap.
    let deep = format!("{}deep{}", "<div>".repeat(40_000), "</div>".repeat(40_000));
    let feed = rss(
        "https://good.example/",
        &[
            item(
                "Huge item",
                Some("https://good.example/huge"),
                "huge-1",
                &format!("<description><![CDATA[{nested}]]></description>"),
            ),
            item(
                "Deep item",
                Some("https://good.example/deep"),
                "deep-1",
                &format!("<description><![CDATA[{deep}]]></description>"),
            ),
            item(
                "Small item",
                Some("https://good.example/small"),
                "small-1",
                "<description>Fine.</description>",
            ),
        ]
        .concat(),
    );
    assert!(feed.len() > 1_000_000);
    let server = serve(vec![("/nested.xml", feed)]).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 1).await;
    let feed_url = format!("{server}/nested.xml");
    let poll_client = app.client.clone();
    let poll_url = app.url("/api/feeds");
    let polling = tokio::spawn(async move {
        poll_client
            .post(poll_url)
            .bearer_auth(common::API_TOKEN)
            .json(&serde_json::json!({ "url": feed_url }))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    // /health is asked from this thread with plain blocking I/O, outside
    // herald's runtime, so a held runtime shows as a timeout here instead
    // of stalling the measurement itself.
    let base = url::Url::parse(&app.base_url).unwrap();
    let addr = format!(
        "{}:{}",
        base.host_str().unwrap(),
        base.port_or_known_default().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut slowest = Duration::ZERO;
    let mut asked = 0;
    // At least once, and then until the poll is done.
    loop {
        assert!(Instant::now() < deadline, "the poll did not finish in 60 s");
        let started = Instant::now();
        let answer = health_status_line(&addr, Duration::from_secs(1));
        let took = started.elapsed();
        assert!(
            answer.as_deref().is_ok_and(|l| l.contains(" 200 ")),
            "/health did not answer within 1 s while the items were processed: {answer:?}"
        );
        slowest = slowest.max(took);
        asked += 1;
        if polling.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "slowest /health: {slowest:?}"
    );
    let added = polling.await.unwrap();
    let id = added["id"].as_i64().unwrap();
    let report = added["report"].clone();
    assert_eq!(
        report["refused_items"], 2,
        "{report} ({asked} health checks)"
    );
    assert_eq!(
        report["new_articles"], 1,
        "the good item still arrives: {report}"
    );
    let titles: Vec<String> = app
        .store
        .articles_of_feed(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.title)
        .collect();
    assert_eq!(titles, ["Small item"]);

    let listed = listed_feed(&app, id).await;
    assert_eq!(listed["refused_items"], 2);
    // The latest refusal: the deep item, after the huge one.
    let reason = listed["last_refusal"].as_str().unwrap();
    assert!(reason.contains("deep-1"), "{reason}");
    assert!(reason.contains("more than 200 deep"), "{reason}");

    let data = tempfile::tempdir().unwrap();
    let out = cli(&app, data.path(), &["feed", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    assert!(
        listing.contains("items refused at the last poll: 2"),
        "{listing}"
    );
    assert!(
        listing.contains("deep-1") && listing.contains("more than 200 deep"),
        "{listing}"
    );

    // The API refuses the same kind of body quickly, with the reason.
    for (html, needle) in [
        (nested.clone(), "at most 512 KiB"),
        (deep.clone(), "at most 200 levels"),
    ] {
        let started = Instant::now();
        let resp = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&serde_json::json!({"title": "Deep", "url": "https://e.com/deep", "html": html}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.unwrap().contains(needle));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    app.shutdown().await;
}

/// One runtime worker thread, as herald has on a one-core VM: an item that
/// held it would stop /health, so here it must not hold it at all.
mod a_huge_nested_feed_item_is_refused_and_health_keeps_answering {
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn sqlite() {
        super::a_huge_nested_feed_item_is_refused_and_health_keeps_answering(
            crate::common::Backend::Sqlite,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn postgres() {
        super::a_huge_nested_feed_item_is_refused_and_health_keeps_answering(
            crate::common::Backend::Postgres,
        )
        .await
    }
}

both_backends!(feed_links_that_are_not_http_never_reach_a_digest);
