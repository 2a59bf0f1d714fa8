//! Text and numbers from outside are held to their limits: titles and the
//! rest capped so no mail header line exceeds 998 octets, feed numbers
//! refused with the allowed range instead of wrapped.

mod common;

use common::feed_server::{add_feed_reporting, cli, item, serve, text};
use common::{spawn_app_with, Backend, SmtpSink};
use std::time::Duration;

/// Tried: a feed title of 100,000 characters; item titles of 100,000
/// characters without a space and of 2,000,000 with spaces; an author of
/// 100,000; 1,000 categories of 1,000 characters; through the API a title
/// of 100,000 and of 301 characters.
async fn a_huge_title_never_makes_a_header_line_over_998_octets(backend: Backend) {
    let categories: String = (0..1000)
        .map(|i| format!("<category>{i}{}</category>", "c".repeat(1000)))
        .collect();
    let feed = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel><title>{}</title><link>https://good.example/</link>{}{}</channel></rss>",
        "F".repeat(100_000),
        item(
            &"x".repeat(100_000),
            Some("https://good.example/x"),
            "x",
            &format!("<dc:creator>{}</dc:creator>{categories}<description>Body.</description>", "a".repeat(100_000)),
        ),
        item(&"word ".repeat(400_000), Some("https://good.example/w"), "w", "<description>Body.</description>"),
    );
    let server = serve(vec![("/long.xml", feed)]).await;
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 1).await;
    app.import_confirmed(&["reader@example.com"]).await;
    let (id, report) = add_feed_reporting(&app, &format!("{server}/long.xml")).await;
    assert_eq!(report["new_articles"], 2, "{report}");

    let feed_row = app.store.feed_by_id(id).await.unwrap().unwrap();
    assert!(feed_row.title.unwrap().chars().count() <= 300);
    for a in app.store.articles_of_feed(id).await.unwrap() {
        assert!(a.title.chars().count() <= 300, "title of {}", a.title.len());
        assert!(a.author.as_deref().unwrap_or("").chars().count() <= 200);
        if let Some(c) = &a.categories {
            let names: Vec<String> = serde_json::from_str(c).unwrap();
            assert!(names.len() <= 20);
            assert!(names.iter().all(|n| n.chars().count() <= 100));
        }
    }

    for (title, status) in [("t".repeat(100_000), 400), ("t".repeat(301), 400)] {
        let resp = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&serde_json::json!({"title": title, "url": "https://e.com/t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert!(resp
            .text()
            .await
            .unwrap()
            .contains("at most 300 characters"));
    }

    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    let mail = &app.sink.messages_to("reader@example.com")[0];
    let longest = mail
        .raw
        .split('\n')
        .map(|l| l.trim_end_matches('\r').len())
        .max()
        .unwrap();
    assert!(longest <= 998, "a line of {longest} octets");
    assert!(
        mail.subject.starts_with("The Daily Herald: "),
        "{}",
        mail.subject
    );
    assert!(mail.subject.ends_with(" and 1 more"), "{}", mail.subject);
    assert!(mail.subject.chars().count() <= 200);
    app.shutdown().await;
}

/// Tried through the API: 18446744073709551615, -1, 59, 604801, 1.5,
/// 1e30 and "900" as `poll_interval_secs`; 18446744073709551615, -1, 366
/// and 2.5 as `backfill_days`; 18446744073709551615 and -1 as
/// `published_at`. Through the CLI: 18446744073709551615 and 5 as
/// `--interval`, 400 as `--backfill-days`, 0 as `article list --limit`.
async fn out_of_range_numbers_are_refused_with_the_allowed_range(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    let url = "https://good.example/feed.xml";
    let cases = [
        (
            "poll_interval_secs",
            serde_json::json!(18446744073709551615u64),
            "60 to 604800",
        ),
        ("poll_interval_secs", serde_json::json!(-1), "60 to 604800"),
        ("poll_interval_secs", serde_json::json!(59), "60 to 604800"),
        (
            "poll_interval_secs",
            serde_json::json!(604801),
            "60 to 604800",
        ),
        ("poll_interval_secs", serde_json::json!(1.5), "60 to 604800"),
        (
            "poll_interval_secs",
            serde_json::json!(1e30),
            "60 to 604800",
        ),
        (
            "poll_interval_secs",
            serde_json::json!("900"),
            "60 to 604800",
        ),
        (
            "backfill_days",
            serde_json::json!(18446744073709551615u64),
            "0 to 365",
        ),
        ("backfill_days", serde_json::json!(-1), "0 to 365"),
        ("backfill_days", serde_json::json!(366), "0 to 365"),
        ("backfill_days", serde_json::json!(2.5), "0 to 365"),
    ];
    for (field, value, range) in cases {
        let resp = app
            .api(reqwest::Method::POST, "/api/feeds")
            .json(&{
                let mut body = serde_json::json!({ "url": url });
                body[field] = value.clone();
                body
            })
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{field}: {value}");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains(field) && body.contains(range),
            "{field}: {value}: {body}"
        );
    }
    assert!(
        app.store.list_feeds().await.unwrap().is_empty(),
        "nothing stored"
    );
    let resp = app
        .api(reqwest::Method::POST, "/api/feeds")
        .json(&serde_json::json!({"url": url, "poll_interval_secs": 604800, "backfill_days": 365, "force": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let feed = &app.store.list_feeds().await.unwrap()[0];
    assert_eq!((feed.poll_interval_secs, feed.backfill_days), (604800, 365));

    for published_at in [
        serde_json::json!(18446744073709551615u64),
        serde_json::json!(-1),
    ] {
        let resp = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&serde_json::json!({"title": "T", "url": "https://e.com/p", "published_at": published_at}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{published_at}");
    }
    assert!(app.store.list_articles(10).await.unwrap().is_empty());

    let data = tempfile::tempdir().unwrap();
    let other = "https://good.example/other.xml";
    for (args, needle) in [
        (
            vec!["feed", "add", other, "--interval", "18446744073709551615"],
            "60 to 604800",
        ),
        (
            vec!["feed", "add", other, "--interval", "5"],
            "60 to 604800",
        ),
        (
            vec!["feed", "add", other, "--backfill-days", "400"],
            "0 to 365",
        ),
        (vec!["article", "list", "--limit", "0"], "1..=1000"),
    ] {
        let out = cli(&app, data.path(), &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains(needle), "{args:?}: {}", text(&out));
    }
    assert_eq!(
        app.store.list_feeds().await.unwrap().len(),
        1,
        "nothing stored"
    );
    app.shutdown().await;
}

both_backends!(
    a_huge_title_never_makes_a_header_line_over_998_octets,
    out_of_range_numbers_are_refused_with_the_allowed_range,
);
