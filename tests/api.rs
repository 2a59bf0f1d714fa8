//! The operator API and /health.

mod common;

use common::{spawn_app, spawn_app_with, Backend, SmtpSink, API_TOKEN};
use herald::digest::{self, CreateOutcome};
use herald::domain::time::now_millis;
use herald::state::AppState;

async fn api_refuses_requests_without_the_right_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = app.url("/api/digests");
    let attempts = [
        None,
        Some("Bearer wrong-token".to_string()),
        Some(format!("Basic {API_TOKEN}")),
        Some(format!("Bearer {API_TOKEN}x")),
        Some("Bearer ".to_string()),
    ];
    for header in attempts {
        let mut req = app.client.get(&url);
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{header:?}");
        assert_eq!(
            resp.text().await.unwrap(),
            r#"{"error":"unauthorized"}"#,
            "no detail"
        );
    }
    let ok = app
        .api(reqwest::Method::GET, "/api/digests")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    app.shutdown().await;

    // With no token configured the API is closed to everybody.
    let closed = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.api_token = None).await;
    let resp = closed
        .client
        .get(closed.url("/api/digests"))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = closed
        .api(reqwest::Method::GET, "/api/digests")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    closed.shutdown().await;
}

async fn health_reports_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["database"], expected);
    // Database gone: 503.
    app.store.close().await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 503);
}

async fn bad_articles_are_refused_with_a_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            serde_json::json!({"title": "", "url": "https://e.com/a"}),
            400,
            "title",
        ),
        (
            serde_json::json!({"title": "  \r\n ", "url": "https://e.com/a"}),
            400,
            "title",
        ),
        (
            serde_json::json!({"title": "T", "url": "javascript:alert(1)"}),
            400,
            "http(s)",
        ),
        (
            serde_json::json!({"title": "T", "url": "/relative"}),
            400,
            "http(s)",
        ),
        (
            serde_json::json!({"title": "T", "url": "https://e.com/a", "image_url": "javascript:x"}),
            400,
            "image URL",
        ),
        (serde_json::json!({"url": "https://e.com/a"}), 422, "title"),
    ];
    for (body, status, needle) in cases {
        let resp = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{body}: {text}");
    }
    let huge = "x".repeat(5 * 1024 * 1024);
    let resp = app
        .api(reqwest::Method::POST, "/api/articles")
        // The server answers 413 without reading the rest: close that connection.
        .header("connection", "close")
        .json(&serde_json::json!({"title": "T", "url": "https://e.com/a", "html": huge}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(app.store.list_articles(10).await.unwrap().is_empty());
    // A title with CR/LF is cleaned to one line, never refused or passed on.
    app.add_article(
        "Line one\r\nBcc: x@example.com",
        "https://e.com/b",
        "<p>x</p>",
    )
    .await;
    assert_eq!(
        app.store.list_articles(10).await.unwrap()[0].title,
        "Line one Bcc: x@example.com"
    );
    // The same URL again updates the article instead of adding a second one.
    let resp = app
        .api(reqwest::Method::POST, "/api/articles")
        .json(&serde_json::json!({"title": "Line one, edited", "url": "https://e.com/b", "html": "<p>y</p>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let articles = app.store.list_articles(10).await.unwrap();
    assert_eq!(articles.len(), 1);
    assert_eq!(articles[0].title, "Line one, edited");
    app.shutdown().await;
}

async fn send_now_is_idempotent_per_key_and_needs_new_articles(backend: Backend) {
    let app = spawn_app(backend).await;
    let send = |key: Option<&'static str>| {
        let mut req = app.api(reqwest::Method::POST, "/api/digests");
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send()
    };
    let nothing = send(None).await.unwrap();
    assert_eq!(nothing.status(), 200);
    let body: serde_json::Value = nothing.json().await.unwrap();
    assert_eq!(body["created"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("no digest has been sent yet and there are no articles"),
        "{body}"
    );
    app.add_article("Story", "https://e.com/story", "<p>x</p>")
        .await;
    let first = send(Some("k-1")).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let retried = send(Some("k-1")).await.unwrap();
    assert_eq!(retried.status(), 200);
    let retried: serde_json::Value = retried.json().await.unwrap();
    assert_eq!(
        retried["id"], first["id"],
        "the retry returns the same digest"
    );
    assert_eq!(retried["created"], false);
    // A different key but nothing new since: no second digest.
    let other: serde_json::Value = send(Some("k-2")).await.unwrap().json().await.unwrap();
    assert_eq!(other["created"], false);
    assert_eq!(app.store.recent_digests(10).await.unwrap().len(), 1);
    app.shutdown().await;
}

async fn two_instances_racing_for_one_slot_create_one_digest(backend: Backend) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&["a@example.com", "b@example.com", "c@example.com"])
        .await;
    app.add_article("Story", "https://e.com/story", "<p>x</p>")
        .await;
    // A second herald on the same database, with its own connection pool.
    let other = AppState::build(app.config.clone()).await.unwrap();
    let slot = "schedule:2026-11-26T07:00 Europe/London";
    let (a, b) = tokio::join!(
        digest::create(&app.store, &app.config, slot, now_millis()),
        digest::create(&other.store, &other.config, slot, now_millis()),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let created: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, CreateOutcome::Created(_)))
        .collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    assert_eq!(app.store.recent_digests(10).await.unwrap().len(), 1);
    let id = app.store.recent_digests(1).await.unwrap()[0].id;
    assert_eq!(
        app.store
            .digest_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .recipients,
        3
    );
    app.shutdown().await;
}

both_backends!(
    api_refuses_requests_without_the_right_bearer_token,
    health_reports_the_database,
    bad_articles_are_refused_with_a_reason,
    send_now_is_idempotent_per_key_and_needs_new_articles,
    two_instances_racing_for_one_slot_create_one_digest,
);

async fn link_secret_is_generated_once_and_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&["a@example.com"]).await;
    let before = app.one_click_url("a@example.com").await;
    // A restart (a new AppState on the same database) signs the same way.
    let again = AppState::build(app.config.clone()).await.unwrap();
    let token = before.rsplit('/').next().unwrap();
    let id = herald::domain::token::LinkSigner::claimed_id(token).unwrap();
    assert!(again.signer.verify(token, id, "a@example.com"));
    assert_eq!(again.signer.unsubscribe_token(id, "a@example.com"), token);
    app.shutdown().await;
}

both_backends!(link_secret_is_generated_once_and_kept);

/// Every key that names an instant, anywhere in a JSON answer.
fn time_keys(v: &serde_json::Value, path: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if k.ends_with("_at")
                    || ["since", "window_start", "window_end"].contains(&k.as_str())
                {
                    out.push((here.clone(), v.clone()));
                }
                time_keys(v, &here, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                time_keys(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// One time format in the whole API: every instant is an RFC 3339 string
/// (digests, articles, feeds and poll reports used to be epoch
/// milliseconds while subscribers were RFC 3339), an article's categories
/// are an array, not a string holding JSON, and `published_at` is read as
/// RFC 3339. Inputs tried for `published_at`: "2026-01-02T03:04:05+01:00",
/// 1767319445000 (milliseconds, refused), "2026-01-02" (refused).
async fn every_time_in_the_api_is_rfc3339_and_categories_are_an_array(backend: Backend) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&["reader@example.com"]).await;
    let feed_body = common::feed_server::rss(
        "https://news.example.com/",
        &common::feed_server::item(
            "From the feed",
            Some("https://news.example.com/from-the-feed"),
            "feed-1",
            "<category>World</category><category>Middle East</category><description>Text.</description>",
        ),
    );
    let base = common::feed_server::serve(vec![("/feed.xml", feed_body)]).await;
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({"url": format!("{base}/feed.xml"), "backfill_days": 30}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let feed_id = app.api_get("/api/feeds").await["feeds"][0]["id"]
        .as_i64()
        .unwrap();
    let report = app
        .api(reqwest::Method::POST, &format!("/api/feeds/{feed_id}/poll"))
        .send()
        .await
        .unwrap();
    let report: serde_json::Value = report.json().await.unwrap();

    let resp = app
        .api(reqwest::Method::POST, "/api/articles")
        .json(
            &serde_json::json!({"title": "By hand", "url": "https://news.example.com/by-hand",
            "html": "<p>Text.</p>", "published_at": "2026-01-02T03:04:05+01:00"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    for (given, says) in [
        (serde_json::json!(1767319445000i64), "RFC 3339"),
        (serde_json::json!("2026-01-02"), "RFC 3339"),
    ] {
        let resp = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&serde_json::json!({"title": "T", "url": "https://news.example.com/t", "published_at": given}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{given}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(says), "{given}: {text}");
    }

    let id = app.send_digest_now().await;
    app.wait_digest_done(id, std::time::Duration::from_secs(20))
        .await;

    let articles = app.api_get("/api/articles").await;
    let by_hand = articles["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "By hand")
        .unwrap();
    assert_eq!(by_hand["published_at"], "2026-01-02T02:04:05Z");
    assert_eq!(by_hand["categories"], serde_json::json!([]));
    let from_feed = articles["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "From the feed")
        .unwrap();
    assert_eq!(
        from_feed["categories"],
        serde_json::json!(["World", "Middle East"])
    );

    let mut answers = vec![("report", report), ("articles", articles)];
    for path in [
        "/api/digests",
        &format!("/api/digests/{id}"),
        "/api/feeds",
        &format!("/api/feeds/{feed_id}"),
        "/api/subscribers",
        "/api/subscriber-events",
        "/api/smtp-servers",
        "/api/health",
    ] {
        answers.push(("get", app.api_get(path).await));
    }
    let mut seen = Vec::new();
    for (_, answer) in &answers {
        time_keys(answer, "", &mut seen);
    }
    for key in [
        "window_start",
        "window_end",
        "published_at",
        "next_poll_at",
        "created_at",
    ] {
        assert!(
            seen.iter().any(|(p, v)| p.ends_with(key) && v.is_string()),
            "no {key} seen: {seen:?}"
        );
    }
    for (path, value) in &seen {
        let text = value.as_str();
        assert!(
            value.is_null()
                || text
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some(),
            "{path} is {value}, not an RFC 3339 time"
        );
    }
    app.shutdown().await;
}

both_backends!(every_time_in_the_api_is_rfc3339_and_categories_are_an_array);
