//! Feeds as the web serves them: a local HTTP server hands out fixture
//! feeds, good and broken, and herald polls them.

mod common;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use common::{spawn_app_role, spawn_app_with, Backend, SmtpSink, TestApp};
use herald::feeds::Poller;
use herald::startup::Role;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SEED_HTML: &str = include_str!("fixtures/article-iran-azerbaijan.html");
const FEED: &str = include_str!("fixtures/wordpress-feed.xml");
const SEED_ITEM: &str = include_str!("fixtures/wordpress-item-seed.xml");
const SEED_TITLE: &str = "Tensions Elevate Between Iran And Azerbaijan";
const SEED_URL: &str =
    "https://news.example.com/2021/10/tensions-elevate-between-iran-and-azerbaijan/";

fn rfc822(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc2822()
}

fn old_item(n: u32, date: &str) -> String {
    format!(
        "<item><title>Old story {n}</title><link>https://news.example.com/old-{n}/</link><guid>https://news.example.com/?p={n}</guid><pubDate>{date}</pubDate><description>Old text {n}.</description></item>"
    )
}

/// What the fixture server serves, changeable while a test runs.
#[derive(Default)]
struct Site {
    items: Vec<String>,
    version: u32,
    hits: u32,
    not_modified: u32,
}

type Shared = Arc<Mutex<Site>>;

async fn wordpress(State(site): State<Shared>, headers: HeaderMap) -> Response {
    let mut site = site.lock().unwrap();
    site.hits += 1;
    let etag = format!("\"v{}\"", site.version);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        site.not_modified += 1;
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = FEED
        .replace("{{NOW_RFC822}}", &rfc822(chrono::Utc::now()))
        .replace("{{ITEMS}}", &site.items.join("\n"));
    (
        [
            (header::CONTENT_TYPE, "application/rss+xml; charset=UTF-8"),
            (header::ETAG, etag.as_str()),
        ],
        body,
    )
        .into_response()
}

fn rss(items: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>T</title><link>https://t.example/</link>{items}</channel></rss>")
}

async fn fixture_server(site: Shared) -> String {
    let now = rfc822(chrono::Utc::now());
    let dupes = rss(&format!(
        "<item><title>First copy</title><link>https://t.example/d</link><guid>dup-1</guid><pubDate>{now}</pubDate></item>\
         <item><title>Second copy</title><link>https://t.example/d2</link><guid>dup-1</guid><pubDate>{now}</pubDate></item>"
    ));
    let untitled = rss(&format!(
        "<item><link>https://t.example/no-title</link><pubDate>{now}</pubDate><description>A story without a title, but with words.</description></item>\
         <item><title>No link</title><guid isPermaLink=\"false\">nolink-1</guid><pubDate>{now}</pubDate><description>Text.</description></item>\
         <item><title>Future</title><link>https://t.example/future</link><pubDate>Tue, 01 Jan 2099 00:00:00 GMT</pubDate></item>"
    ));
    let atom = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Atom news</title><link href=\"https://a.example/\"/><id>urn:a</id><updated>{t}</updated>\
         <entry><title>Atom story</title><link href=\"https://a.example/story\"/><id>urn:a:1</id><published>{t}</published><content type=\"html\">&lt;p&gt;Atom body &lt;a href=\"/rel\"&gt;link&lt;/a&gt;&lt;/p&gt;</content></entry></feed>",
        t = chrono::Utc::now().to_rfc3339()
    );
    let json = format!(
        "{{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"J\", \"home_page_url\": \"https://j.example/\", \"items\": [{{\"id\": \"j1\", \"url\": \"https://j.example/1\", \"title\": \"JSON story\", \"content_html\": \"<p>JSON body</p>\", \"date_published\": \"{}\"}}]}}",
        chrono::Utc::now().to_rfc3339()
    );
    let app = Router::new()
        .route("/wordpress.xml", get(wordpress))
        .route("/atom.xml", get(move || async move { atom }))
        .route("/feed.json", get(move || async move { json }))
        .route("/dupes.xml", get(move || async move { dupes }))
        .route("/untitled.xml", get(move || async move { untitled }))
        .route("/gzip.xml", get(|headers: HeaderMap| async move {
            let accepts = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            assert!(accepts.contains("gzip"), "herald asks for gzip: {accepts:?}");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, rss("<item><title>Gzipped story</title><link>https://t.example/gz</link><guid>gz1</guid></item>").as_bytes()).unwrap();
            ([(header::CONTENT_TYPE, "application/rss+xml"), (header::CONTENT_ENCODING, "gzip")], gz.finish().unwrap())
        }))
        .route("/br.xml", get(|headers: HeaderMap| async move {
            let accepts = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            assert!(accepts.contains("br"), "herald asks for brotli: {accepts:?}");
            let mut out = Vec::new();
            let body = rss("<item><title>Brotli story</title><link>https://t.example/br</link><guid>br1</guid></item>");
            brotli::BrotliCompress(&mut body.as_bytes(), &mut out, &Default::default()).unwrap();
            ([(header::CONTENT_TYPE, "application/rss+xml"), (header::CONTENT_ENCODING, "br")], out)
        }))
        .route("/not-xml", get(|| async { "this is plain text, not a feed" }))
        .route("/truncated.xml", get(|| async { "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Cut off</title><item><title>Half" }))
        .route("/page.html", get(|| async {
            ([(header::CONTENT_TYPE, "text/html")], "<!doctype html><html><head><title>Home</title></head><body><h1>Welcome</h1></body></html>")
        }))
        .route("/huge.xml", get(|| async {
            // 50 MB, chunked (no Content-Length), so the cap is hit while reading.
            let chunk = vec![b' '; 1024 * 1024];
            let stream = futures_util::stream::iter((0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
            ([(header::CONTENT_TYPE, "application/rss+xml")], Body::from_stream(stream))
        }))
        .route("/loop.xml", get(|| async { Redirect::temporary("/loop.xml") }))
        .route("/missing.xml", get(|| async { StatusCode::NOT_FOUND }))
        .route("/broken.xml", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/busy.xml", get(|| async { (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "120")], "slow down") }))
        .route("/hang.xml", get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late"
        }))
        .with_state(site);
    let listener = common::feed_server::feed_listener().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Adds the feed through the API; herald polls it once as it adds it.
/// Returns its id and that first poll's report.
async fn add_feed(app: &TestApp, url: &str) -> (i64, serde_json::Value) {
    common::feed_server::add_feed_reporting(app, url).await
}

async fn poll(app: &TestApp, id: i64) -> serde_json::Value {
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/feeds/{id}/poll"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<serde_json::Value>().await.unwrap()["report"].clone()
}

async fn a_wordpress_feed_becomes_a_digest_once(backend: Backend) {
    let site: Shared = Arc::new(Mutex::new(Site::default()));
    site.lock().unwrap().items = vec![old_item(1, "Mon, 04 Oct 2021 08:00:00 +0000")];
    let server = fixture_server(site.clone()).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    app.import_confirmed(&["reader@example.com"]).await;
    // The first poll, when the feed is added: the story already in the
    // feed is stored but held back.
    let (id, report) = add_feed(&app, &format!("{server}/wordpress.xml")).await;
    assert_eq!(report["held_back"], 1, "{report}");
    assert_eq!(report["new_articles"], 0);
    let resp = app
        .api(reqwest::Method::POST, "/api/digests")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["created"],
        false,
        "old items are not dumped into a digest"
    );

    // The site publishes the seed article.
    {
        let mut s = site.lock().unwrap();
        let item = SEED_ITEM
            .replace("{{NOW_RFC822}}", &rfc822(chrono::Utc::now()))
            .replace("{{SEED_HTML}}", SEED_HTML);
        s.items.insert(0, item);
        s.version += 1;
    }
    let report = poll(&app, id).await;
    assert_eq!(report["new_articles"], 1, "{report}");
    assert_eq!(
        report["updated_articles"], 0,
        "the old item is seen again unchanged: not rewritten, still held back"
    );

    let digest = app.send_digest_now().await;
    let status = app.wait_digest_done(digest, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 1);
    let mail = &app.sink.messages_to("reader@example.com")[0];
    assert_eq!(mail.subject, format!("The Daily Herald: {SEED_TITLE}"));
    assert!(mail.html.contains(SEED_TITLE));
    assert!(mail.html.contains(SEED_URL));
    assert!(
        mail.html.contains(
            "https://news.example.com/wp-content/uploads/2021/10/iran-azerbaijan-1024x576.jpg"
        ),
        "media:content image"
    );
    assert!(mail.text.contains(
        "Relations between Azerbaijan and Iran have presented a series of warning signs."
    ));
    assert!(mail.html.contains("By Staff Writer"));
    for unwanted in [
        "mailpoet",
        "Share this news",
        "Related Stories",
        "Sign up Now",
        // The site's own "Read more:" teaser (herald's link says that too).
        "Taliban Killed 13 Hazaras",
        "Old story",
        "trackReader",
        "pixel.gif",
    ] {
        assert!(
            !mail.html.contains(unwanted) && !mail.text.contains(unwanted),
            "digest contains {unwanted:?}"
        );
    }
    let article = &app.store.list_articles(10).await.unwrap()[0];
    assert_eq!(
        article.categories.as_deref(),
        Some(r#"["World","Middle East"]"#)
    );

    // Nothing changed at the site: 304, no new article, no new digest.
    let report = poll(&app, id).await;
    assert_eq!(report["not_modified"], true, "{report}");
    assert_eq!(
        site.lock().unwrap().not_modified,
        1,
        "the server saw If-None-Match"
    );
    let resp = app
        .api(reqwest::Method::POST, "/api/digests")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["created"],
        false
    );

    // The article is edited and republished (same guid): updated, not sent again.
    {
        let mut s = site.lock().unwrap();
        s.items[0] = s.items[0].replace(
            "Tensions Elevate Between Iran And Azerbaijan</title>",
            "Tensions Elevate Between Iran And Azerbaijan (updated)</title>",
        );
        s.version += 1;
    }
    let report = poll(&app, id).await;
    assert_eq!(
        report["updated_articles"], 1,
        "only the edited item: {report}"
    );
    assert_eq!(report["new_articles"], 0);
    let resp = app
        .api(reqwest::Method::POST, "/api/digests")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["created"],
        false,
        "an edited article is never sent twice"
    );
    assert_eq!(app.store.articles_of_feed(id).await.unwrap().len(), 2);
    app.shutdown().await;
}

async fn backfill_window_lets_recent_items_into_the_first_digest(backend: Backend) {
    let site: Shared = Arc::new(Mutex::new(Site::default()));
    let two_days_ago = rfc822(chrono::Utc::now() - chrono::Duration::days(2));
    let month_ago = rfc822(chrono::Utc::now() - chrono::Duration::days(30));
    site.lock().unwrap().items = vec![old_item(1, &two_days_ago), old_item(2, &month_ago)];
    let server = fixture_server(site).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 7).await;
    let (_, report) = add_feed(&app, &format!("{server}/wordpress.xml")).await;
    assert_eq!(report["new_articles"], 1, "{report}");
    assert_eq!(report["held_back"], 1);
    app.shutdown().await;
}

async fn atom_json_and_odd_items_are_read(backend: Backend) {
    let server = fixture_server(Arc::new(Mutex::new(Site::default()))).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 1).await;
    for (path, expected_titles) in [
        ("/atom.xml", vec!["Atom story"]),
        ("/feed.json", vec!["JSON story"]),
        // Compressed responses.
        ("/gzip.xml", vec!["Gzipped story"]),
        ("/br.xml", vec!["Brotli story"]),
        // Duplicate guids in one feed: one article, the first copy.
        ("/dupes.xml", vec!["First copy"]),
        // No title: the first words stand in. No link: the feed's site link.
        // A future date is clamped to now.
        (
            "/untitled.xml",
            vec![
                "A story without a title, but with words.",
                "No link",
                "Future",
            ],
        ),
    ] {
        let (id, report) = add_feed(&app, &format!("{server}{path}")).await;
        assert!(report["error"].is_null(), "{path}: {report}");
        let articles = app.store.articles_of_feed(id).await.unwrap();
        let mut titles: Vec<&str> = articles.iter().map(|a| a.title.as_str()).collect();
        let mut expected = expected_titles.clone();
        titles.sort();
        expected.sort();
        assert_eq!(titles, expected, "{path}");
        for a in &articles {
            assert!(
                a.published_at <= herald::domain::time::now_millis(),
                "{path}: no future dates"
            );
            assert!(a.url.starts_with("https://"), "{path}: {}", a.url);
        }
    }
    let atom = app
        .store
        .list_articles(20)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.title == "Atom story")
        .unwrap();
    assert!(
        atom.html.contains("href=\"https://a.example/rel\""),
        "relative link made absolute: {}",
        atom.html
    );
    let no_link = app
        .store
        .list_articles(20)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.title == "No link")
        .unwrap();
    assert_eq!(no_link.url, "https://t.example/");
    app.shutdown().await;
}

async fn broken_feeds_get_a_clear_error_and_stop_nothing(backend: Backend) {
    let site: Shared = Arc::new(Mutex::new(Site::default()));
    site.lock().unwrap().items = vec![old_item(1, &rfc822(chrono::Utc::now()))];
    let server = fixture_server(site).await;
    let app = spawn_app_role(backend, SmtpSink::start(&[]), Role::Web, |c| {
        c.feeds.timeout_secs = 2;
        c.feeds.backfill_days = 1;
    })
    .await;
    let (good, report) = add_feed(&app, &format!("{server}/wordpress.xml")).await;
    assert_eq!(report["new_articles"], 1, "{report}");
    let cases = [
        ("/not-xml", "not a feed"),
        ("/truncated.xml", "not a feed"),
        ("/page.html", "not a feed"),
        ("/huge.xml", "larger than"),
        ("/loop.xml", "too many redirects"),
        ("/missing.xml", "HTTP 404"),
        ("/broken.xml", "HTTP 500"),
        ("/busy.xml", "HTTP 429"),
        ("/hang.xml", "no answer within 2 s"),
    ];
    let mut ids = Vec::new();
    for (path, _) in &cases {
        ids.push(common::feed_server::add_feed_forced(&app, &format!("{server}{path}")).await);
    }
    // One round over every feed, the good one included.
    let poller = Poller::new(app.store.clone(), app.state.config.clone()).unwrap();
    let before = herald::domain::time::now_millis();
    let reports = poller.poll_all().await.unwrap();
    assert_eq!(reports.len(), cases.len() + 1, "every feed was polled");
    for ((path, needle), id) in cases.iter().zip(&ids) {
        let feed = app.store.feed_by_id(*id).await.unwrap().unwrap();
        let error = feed.last_error.clone().unwrap_or_default();
        assert!(
            error.contains(needle),
            "{path}: expected {needle:?}, got {error:?}"
        );
        assert_eq!(feed.consecutive_failures, 1, "{path}");
        assert!(feed.next_poll_at > before + 60_000, "{path}: backs off");
    }
    let busy = app.store.feed_by_id(ids[7]).await.unwrap().unwrap();
    assert!(
        busy.next_poll_at >= before + 120_000,
        "Retry-After: 120 is honoured"
    );
    // The good feed polled fine and its article is still there.
    let good_feed = app.store.feed_by_id(good).await.unwrap().unwrap();
    assert!(good_feed.last_error.is_none());
    assert_eq!(app.store.articles_of_feed(good).await.unwrap().len(), 1);
    // The API lists each feed's last error and next poll time.
    let list: serde_json::Value = app
        .api(reqwest::Method::GET, "/api/feeds")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = list["feeds"].as_array().unwrap();
    assert_eq!(listed.len(), cases.len() + 1);
    assert!(listed.iter().any(|f| f["last_error"] == "HTTP 404"
        && chrono::DateTime::parse_from_rfc3339(f["next_poll_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
            > before - 1000));
    // Bad feed URLs are refused at once.
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({"url": "ftp://example.com/feed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    app.shutdown().await;
}

/// Two polls of one feed at the same moment (here two API calls; in life
/// the poller and an operator's `poll`, or two herald processes on one
/// PostgreSQL database) both succeed and store each article once.
async fn two_polls_of_one_feed_at_once_store_each_article_once(backend: Backend) {
    let site: Shared = Arc::new(Mutex::new(Site::default()));
    let now = rfc822(chrono::Utc::now());
    let server = fixture_server(site.clone()).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 7).await;
    for round in 0..10 {
        // Items of their own each round: the same link or guid would be
        // the same article, whichever feed it came through.
        // A new feed each round (the query string makes the URL new),
        // empty when it is added (its first poll)...
        site.lock().unwrap().items.clear();
        let (id, _) = add_feed(&app, &format!("{server}/wordpress.xml?round={round}")).await;
        // ...and then five new items.
        {
            let mut site = site.lock().unwrap();
            site.items = (1..=5).map(|n| old_item(round * 10 + n, &now)).collect();
            site.version += 1;
        }
        let (a, b) = tokio::join!(poll(&app, id), poll(&app, id));
        assert!(a["error"].is_null() && b["error"].is_null(), "{a} / {b}");
        let articles = app.store.articles_of_feed(id).await.unwrap();
        assert_eq!(articles.len(), 5, "round {round}");
        let new = a["new_articles"].as_i64().unwrap() + b["new_articles"].as_i64().unwrap();
        assert_eq!(
            new, 5,
            "round {round}: each article is new to one poll: {a} / {b}"
        );
    }
    app.shutdown().await;
}

fn seed_item() -> String {
    SEED_ITEM
        .replace("{{NOW_RFC822}}", &rfc822(chrono::Utc::now()))
        .replace("{{SEED_HTML}}", SEED_HTML)
}

/// Polls the feed with `herald feed poll --now`, as an operator would, and
/// returns what it printed.
fn cli_poll(app: &TestApp, data: &std::path::Path) -> String {
    let out = common::feed_server::cli(app, data, &["feed", "poll", "--now"]);
    let printed = common::feed_server::text(&out);
    assert!(out.status.success(), "{printed}");
    printed
}

/// A feed polled again with nothing changed reports nothing new and nothing
/// updated, through the API and the CLI; one edited item is one update.
/// Hostile inputs tried: a server whose ETag and lastBuildDate change on
/// every request though no item did (so herald reads the whole body each
/// time), an item without a date (its "date" is the time first seen) and an
/// item dated in the future (clamped to the poll time), whose dates differ
/// at every poll unless only a stated date counts; a full WordPress item
/// with HTML, image, author and categories, cleaned again at every poll.
async fn an_unchanged_item_is_not_updated_on_every_poll(backend: Backend) {
    let site: Shared = Arc::new(Mutex::new(Site::default()));
    site.lock().unwrap().items = vec![
        seed_item(),
        old_item(1, &rfc822(chrono::Utc::now() - chrono::Duration::days(1))),
        "<item><title>Undated</title><link>https://news.example.com/undated/</link><guid>undated-1</guid><description>No date given.</description></item>".into(),
        "<item><title>From the future</title><link>https://news.example.com/future/</link><guid>future-1</guid><pubDate>Tue, 01 Jan 2099 00:00:00 GMT</pubDate><description>Scheduled.</description></item>".into(),
    ];
    let server = fixture_server(site.clone()).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 7).await;
    let (id, first) = add_feed(&app, &format!("{server}/wordpress.xml")).await;
    let bump = |site: &Shared| site.lock().unwrap().version += 1;

    assert!(first["error"].is_null(), "{first}");
    assert_eq!(first["new_articles"], 3, "{first}");
    assert_eq!(first["held_back"], 1, "the undated item: {first}");
    let stored = app.store.articles_of_feed(id).await.unwrap();

    // The same items again (a new ETag, so not a 304): nothing to report.
    tokio::time::sleep(Duration::from_millis(20)).await;
    bump(&site);
    let again = poll(&app, id).await;
    assert_eq!(again["not_modified"], false, "{again}");
    assert_eq!(again["new_articles"], 0, "{again}");
    assert_eq!(again["updated_articles"], 0, "nothing changed: {again}");
    assert_eq!(again["held_back"], 0, "{again}");
    let after = app.store.articles_of_feed(id).await.unwrap();
    assert_eq!(
        format!("{stored:?}"),
        format!("{after:?}"),
        "no stored field moved, dates included"
    );

    // The operator's command says the same.
    let data = tempfile::tempdir().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    bump(&site);
    let printed = cli_poll(&app, data.path());
    assert!(
        printed.contains(&format!("feed {id}: 0 new, 0 updated, 0 held back")),
        "{printed}"
    );

    // One title edited: one update, through the API.
    {
        let mut s = site.lock().unwrap();
        s.items[0] = s.items[0].replace(
            "Tensions Elevate Between Iran And Azerbaijan</title>",
            "Tensions Elevate Between Iran And Azerbaijan (updated)</title>",
        );
        s.version += 1;
    }
    let edited = poll(&app, id).await;
    assert_eq!(edited["new_articles"], 0, "{edited}");
    assert_eq!(edited["updated_articles"], 1, "{edited}");
    let titles: Vec<String> = app
        .store
        .articles_of_feed(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.title)
        .collect();
    assert!(
        titles.contains(&format!("{SEED_TITLE} (updated)")),
        "{titles:?}"
    );

    // One summary edited: one update, through the CLI.
    {
        let mut s = site.lock().unwrap();
        s.items[1] = s.items[1].replace("Old text 1.", "Old text 1, corrected.");
        s.version += 1;
    }
    let printed = cli_poll(&app, data.path());
    assert!(
        printed.contains(&format!("feed {id}: 0 new, 1 updated, 0 held back")),
        "{printed}"
    );
    app.shutdown().await;
}

/// The same guid or link is the same article, whichever feed it came
/// through: a feed removed and added again, or a second feed of the same
/// site, adds no second copy. Hostile inputs tried: two items without a
/// link (both stand in with the site's link, yet stay two articles), an
/// item with a bare guid (`42`, known by its link), items with URI guids
/// (`https://…/?p=N`, `urn:…`), the full WordPress item.
async fn a_feed_removed_and_added_again_stores_each_article_once(backend: Backend) {
    let site: Shared = Arc::new(Mutex::new(Site::default()));
    let now = rfc822(chrono::Utc::now());
    site.lock().unwrap().items = vec![
        seed_item(),
        old_item(1, &now),
        format!("<item><title>Bare guid</title><link>https://news.example.com/bare/</link><guid isPermaLink=\"false\">42</guid><pubDate>{now}</pubDate><description>Known by its link.</description></item>"),
        format!("<item><title>Linkless A</title><guid isPermaLink=\"false\">urn:news-example:a</guid><pubDate>{now}</pubDate><description>First.</description></item>"),
        format!("<item><title>Linkless B</title><guid isPermaLink=\"false\">urn:news-example:b</guid><pubDate>{now}</pubDate><description>Second.</description></item>"),
    ];
    let server = fixture_server(site.clone()).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 7).await;
    let url = format!("{server}/wordpress.xml");
    let (first, report) = add_feed(&app, &url).await;
    assert_eq!(report["new_articles"], 5, "{report}");
    let titles = |articles: Vec<herald::store::ArticleRow>| {
        let mut t: Vec<String> = articles.into_iter().map(|a| a.title).collect();
        t.sort();
        t
    };
    let before = titles(app.store.list_articles(100).await.unwrap());
    assert_eq!(before.len(), 5, "two linkless items stay two: {before:?}");

    // Removed and added again: the same five articles, now the new feed's.
    let resp = app
        .api(reqwest::Method::DELETE, &format!("/api/feeds/{first}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let (again, report) = add_feed(&app, &url).await;
    assert_ne!(again, first);
    assert!(report["error"].is_null(), "{report}");
    assert_eq!(report["new_articles"], 0, "{report}");
    assert_eq!(report["held_back"], 0, "{report}");
    assert_eq!(report["updated_articles"], 0, "{report}");
    assert_eq!(titles(app.store.list_articles(100).await.unwrap()), before);
    assert_eq!(
        titles(app.store.articles_of_feed(again).await.unwrap()),
        before,
        "the re-added feed lists its articles"
    );

    // A second feed of the same site carrying the same items.
    let (_, report) = add_feed(&app, &format!("{url}?category=world")).await;
    assert_eq!(report["new_articles"], 0, "{report}");
    assert_eq!(report["held_back"], 0, "{report}");
    assert_eq!(titles(app.store.list_articles(100).await.unwrap()), before);
    app.shutdown().await;
}

both_backends!(
    a_feed_removed_and_added_again_stores_each_article_once,
    an_unchanged_item_is_not_updated_on_every_poll,
    a_wordpress_feed_becomes_a_digest_once,
    backfill_window_lets_recent_items_into_the_first_digest,
    atom_json_and_odd_items_are_read,
    broken_feeds_get_a_clear_error_and_stop_nothing,
    two_polls_of_one_feed_at_once_store_each_article_once,
);

async fn the_poller_follows_feeds_listed_in_the_configuration(backend: Backend) {
    let site: Shared = Arc::new(Mutex::new(Site::default()));
    site.lock().unwrap().items = vec![old_item(7, &rfc822(chrono::Utc::now()))];
    let server = fixture_server(site.clone()).await;
    let url = format!("{server}/wordpress.xml");
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.feeds.urls = vec![url.clone()];
        c.feeds.tick_secs = 1;
        c.feeds.backfill_days = 1;
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        // The poll stores the articles, then records itself (title, next
        // poll): wait for both.
        let articles = app.store.list_articles(10).await.unwrap();
        let polled = app
            .store
            .list_feeds()
            .await
            .unwrap()
            .iter()
            .any(|f| f.last_polled_at.is_some());
        if polled && articles.iter().any(|a| a.title == "Old story 7") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the poller never fetched the configured feed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let feeds = app.store.list_feeds().await.unwrap();
    assert_eq!(feeds.len(), 1);
    assert_eq!(feeds[0].title.as_deref(), Some("News Example"));
    assert!(
        feeds[0].next_poll_at > herald::domain::time::now_millis() + 600_000,
        "next poll about 15 minutes out"
    );
    // Polled once, not on every tick.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(site.lock().unwrap().hits, 1);
    app.shutdown().await;
}

both_backends!(the_poller_follows_feeds_listed_in_the_configuration);
