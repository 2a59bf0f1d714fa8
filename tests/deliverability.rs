//! What receivers' filters see. SpamAssassin with Debian's stock rules, run
//! offline (`spamassassin -L -t`), scores each message herald sends at most
//! 0.5: a one-article digest with a lead image, a twenty-article digest, and
//! the confirmation mail. A digest of twenty long articles stays under
//! Gmail's 102 KB clipping size, and the footer with the unsubscribe link
//! and the postal address is always in it. Inputs tried: the news article
//! fixture with its lead image, twenty articles with 1,000-character
//! summaries, 300-character titles and 2,000-character URLs.

mod common;

use common::{Backend, Received, TestApp};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const SPAMASSASSIN: &str = "/usr/bin/spamassassin";
const ARTICLE: &str = include_str!("fixtures/article-iran-azerbaijan.html");
const POSTAL_ADDRESS: &str = "The Daily Herald, 1 Main Street, Springfield, IL 62701, USA";

async fn app(backend: Backend) -> TestApp {
    common::spawn_app_with(backend, common::SmtpSink::start(&[]), |c| {
        c.site_url = Some("https://news.example.com".into());
        c.postal_address = Some(POSTAL_ADDRESS.into());
        c.inbound.unsubscribe_address = Some("unsubscribe@herald.test".into());
    })
    .await
}

fn as_sent(copy: &Received) -> String {
    copy.as_sent()
}

/// SpamAssassin's score and the rules that fired.
fn spamassassin(message: &str) -> (f64, String) {
    assert!(
        std::path::Path::new(SPAMASSASSIN).exists(),
        "{SPAMASSASSIN} is missing: install Debian's spamassassin package (scripts/test.sh does)"
    );
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(SPAMASSASSIN)
        .args(["-L", "-t", "--siteconfigpath", "/etc/spamassassin"])
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run spamassassin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = report
        .lines()
        .find(|l| l.starts_with("X-Spam-Status:"))
        .unwrap_or_else(|| panic!("no X-Spam-Status in spamassassin's output: {report}"));
    let score: f64 = status
        .split("score=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {status}"));
    let details = report
        .split("Content analysis details:")
        .nth(1)
        .unwrap_or(&report)
        .to_string();
    (score, details)
}

/// As the receiving server hands it on: with its Received line, naming
/// a sending host that is not trusted (an address of example.com; no traffic goes to it), so that
/// SpamAssassin's ALL_TRUSTED does not take a point off.
fn as_received(message: &str) -> String {
    let date = message
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .unwrap_or("Mon, 30 Nov 2026 10:00:00 +0000");
    format!(
        "Received: from mail.herald.test (mail.herald.test [93.184.215.14])\r\n\tby mx.example.org (Postfix) with ESMTPS id 4QxYz1AbCd\r\n\tfor <reader@example.org>; {date}\r\n{message}"
    )
}

fn assert_clean(what: &str, message: &str) {
    let message = &as_received(message);
    let (score, details) = spamassassin(message);
    eprintln!("SpamAssassin, {what}: {score}{details}");
    assert!(
        score <= 0.5,
        "{what} scored {score} in SpamAssassin:{details}\n--- message ---\n{message}"
    );
}

async fn spamassassin_scores_each_message_at_most_half_a_point(backend: Backend) {
    let app = app(backend).await;
    app.subscribe_and_confirm("reader@example.org").await;
    let confirmation = as_sent(&app.sink.messages_to("reader@example.org")[0]);
    assert_clean("the confirmation mail", &confirmation);

    let response = app
        .api(reqwest::Method::POST, "/api/articles")
        .json(&serde_json::json!({
            "title": "Tensions Elevate Between Iran And Azerbaijan",
            "url": "https://news.example.com/2021/10/tensions-iran-azerbaijan/",
            "html": ARTICLE,
            "image_url": "https://news.example.com/wp-content/uploads/2021/10/iran-azerbaijan.jpg",
            "author": "Staff Writer",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    let copies = app.sink.messages_to("reader@example.org");
    let one = as_sent(&copies[1]);
    assert!(
        copies[1].html.contains("iran-azerbaijan.jpg"),
        "the lead image is in it"
    );
    assert_clean("a one-article digest with an image", &one);

    for i in 0..20 {
        app.add_article(
            &format!("Regional roundup {i}: ministers meet as border talks resume"),
            &format!("https://news.example.com/2021/10/roundup-{i}/"),
            ARTICLE,
        )
        .await;
    }
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    let copies = app.sink.messages_to("reader@example.org");
    let twenty = as_sent(&copies[2]);
    assert!(
        copies[2].html.contains("roundup-19"),
        "twenty articles in it"
    );
    assert_clean("a twenty-article digest", &twenty);
    app.shutdown().await;
}

async fn a_digest_of_twenty_long_articles_stays_under_gmails_clipping_size(backend: Backend) {
    let app = app(backend).await;
    app.import_confirmed(&["reader@example.org"]).await;
    let long_word = |n: usize| "a".repeat(n);
    for i in 0..20 {
        let summary =
            "Relations between the two countries have presented a series of warning signs. "
                .repeat(20);
        let response = app
            .api(reqwest::Method::POST, "/api/articles")
            .json(&serde_json::json!({
                "title": format!("{i} {}", "Long title about the talks ".repeat(11)),
                "url": format!("https://news.example.com/{i}/{}", long_word(1900)),
                "html": format!("<p>{summary}</p>"),
                "image_url": format!("https://news.example.com/img/{i}/{}.jpg", long_word(1900)),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    let copies = app.sink.messages_to("reader@example.org");
    assert_eq!(copies.len(), 1);
    let sent = as_sent(&copies[0]);
    assert!(
        sent.len() < 102 * 1024,
        "a digest of {} bytes would be clipped by Gmail",
        sent.len()
    );
    // What did not fit waits for the next digest, and the reader is told.
    assert!(
        copies[0].text.contains("in the next digest"),
        "{}",
        copies[0].text
    );
    assert!(copies[0].text.contains(&app.url("/archive")));
    assert!(copies[0].html.contains(POSTAL_ADDRESS));
    assert!(copies[0].html.contains("Unsubscribe</a>"));
    let shown = copies[0].text.matches("Read more:").count();
    assert!((1..20).contains(&shown), "{shown} articles in the digest");
    // The rest go out in the next digests, each under the limit too.
    let mut total = shown;
    for round in 2..=5 {
        if total == 20 {
            break;
        }
        let next = app.send_digest_now().await;
        app.wait_digest_done(next, Duration::from_secs(20)).await;
        let copies = app.sink.messages_to("reader@example.org");
        assert_eq!(copies.len(), round, "a digest with the articles left over");
        let copy = &copies[round - 1];
        assert!(as_sent(copy).len() < 102 * 1024);
        total += copy.text.matches("Read more:").count();
    }
    assert_eq!(total, 20, "every article went out once");
    app.shutdown().await;
}

both_backends!(
    spamassassin_scores_each_message_at_most_half_a_point,
    a_digest_of_twenty_long_articles_stays_under_gmails_clipping_size,
);
