//! The public archive of sent digests: `/archive`, `/archive/{id}` and
//! `/archive/feed.xml`, on both databases.
//!
//! Inputs tried:
//! - digests in every state: done (sent by the worker to smtp-sink),
//!   sending with one copy accepted, queued, paused after a copy went out,
//!   cancelled after a copy went out, done with every copy failed (smtp-sink
//!   refusing the message), and a paused digest resumed;
//! - 41 digests, three pages; following the pages' own newer/older links;
//! - page numbers: `4` (past the last page), `0`, `99999999999999999999`,
//!   `461168601842738791` (offset beyond 64 bits), `abc`, `-1`, `+1`, `1.5`,
//!   `2e3`, empty, `%FF`, `page=1&page=2`;
//! - digest ids: unknown `999999`, `0`, `-1`, `abc`, `1.5`, `%FF`,
//!   `99999999999999999999`, and the ids of digests that were never sent;
//! - `archive.enabled = false`;
//! - herald behind a path (`base_url = http://host:port/newsletter`).
//!
//! Every subscriber's real unsubscribe token (from the signer, and seen in
//! the mail that subscriber received) is looked for in every archive page
//! and in the feed.

mod common;

use common::{
    spawn_app, spawn_app_role, spawn_app_under_path, spawn_app_with, Backend, SmtpSink, TestApp,
};
use herald::domain::time::now_millis;
use herald::startup::Role;
use herald::store::{DeliveryOutcome, DigestCreated, NewDigest};
use std::time::Duration;

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";

/// Adds the articles and sends a digest of them now; returns its id.
async fn digest_of(app: &TestApp, titles: &[&str]) -> i64 {
    for title in titles {
        let slug: String = title
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        app.add_article(
            title,
            &format!("https://news.example.com/{slug}"),
            &format!("<p>The story of {title}, told in full.</p>"),
        )
        .await;
    }
    app.send_digest_now().await
}

async fn sent_digest_of(app: &TestApp, titles: &[&str]) -> i64 {
    let id = digest_of(app, titles).await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    id
}

/// The unsubscribe token each of these subscribers' copies carried.
async fn tokens_of(app: &TestApp, emails: &[&str]) -> Vec<String> {
    let mut tokens = Vec::new();
    for email in emails {
        let parsed = herald::domain::SubscriberEmail::parse(email).unwrap();
        let s = app
            .store
            .subscriber_by_email(&parsed)
            .await
            .unwrap()
            .unwrap();
        tokens.push(app.state.signer.unsubscribe_token(s.id, &s.email));
    }
    tokens
}

/// A page's text with askama's escaped slashes put back, so URLs compare.
fn unescaped(page: &str) -> String {
    page.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The digest ids an archive page lists, in order.
fn listed_ids(app: &TestApp, page: &str) -> Vec<i64> {
    let prefix = format!("href=\"{}/archive/", app.base_url);
    let mut ids = Vec::new();
    let page = unescaped(page);
    let mut rest = page.as_str();
    while let Some(i) = rest.find(&prefix) {
        rest = &rest[i + prefix.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if rest[digits.len()..].starts_with('"') && !digits.is_empty() {
            ids.push(digits.parse().unwrap());
        }
    }
    ids
}

/// The `href` of the page's link with this `rel`, if any.
fn rel_link(page: &str, rel: &str) -> Option<String> {
    let page = unescaped(page);
    let tag_end = page.find(&format!("rel=\"{rel}\""))?;
    let start = page[..tag_end].rfind("href=\"")? + 6;
    let end = start + page[start..].find('"')?;
    Some(page[start..end].to_string())
}

/// Every `href="…"` in a page.
fn hrefs(page: &str) -> Vec<String> {
    let page = unescaped(page);
    page.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

async fn get_text(app: &TestApp, path: &str) -> (u16, String) {
    let r = app.get(path).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

fn parse_feed(xml: &str) -> feed_rs::model::Feed {
    feed_rs::parser::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("not a feed: {e}\n{xml}"))
}

fn entry_link(entry: &feed_rs::model::Entry) -> String {
    entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().unwrap_or("alternate") == "alternate")
        .map(|l| l.href.clone())
        .unwrap_or_default()
}

async fn sent_digests_are_listed_newest_first_and_shown_without_anyones_unsubscribe_link(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&[ANN, BOB]).await;
    let first = sent_digest_of(&app, &["Harbour bridge reopens after repairs"]).await;
    let second = sent_digest_of(
        &app,
        &[
            "City council votes on the new budget",
            "Library extends its opening hours",
        ],
    )
    .await;

    // The tokens looked for are the ones the subscribers really got.
    let tokens = tokens_of(&app, &[ANN, BOB]).await;
    let mails = app.sink.wait_for(4, Duration::from_secs(10)).await;
    for (email, token) in [ANN, BOB].iter().zip(&tokens) {
        let theirs: Vec<_> = mails.iter().filter(|m| m.envelope_to == *email).collect();
        assert_eq!(theirs.len(), 2, "{email} got both digests");
        assert!(theirs.iter().all(|m| m.html.contains(token.as_str())));
    }

    let (status, list) = get_text(&app, "/archive").await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&app, &list), [second, first], "newest first");
    for id in [first, second] {
        let subject = app.store.digest_by_id(id).await.unwrap().unwrap().subject;
        let escaped = subject.replace('&', "&amp;");
        assert!(list.contains(&escaped), "{subject} listed:\n{list}");
    }
    assert!(list.contains("<time"), "each entry has its date");
    // One page: no links to other pages.
    assert_eq!(rel_link(&list, "prev"), None);
    assert_eq!(rel_link(&list, "next"), None);

    for (id, shown, not_shown) in [
        (
            second,
            vec![
                "City council votes on the new budget",
                "Library extends its opening hours",
            ],
            "Harbour bridge",
        ),
        (
            first,
            vec!["Harbour bridge reopens after repairs"],
            "City council",
        ),
    ] {
        let r = app.get(&format!("/archive/{id}")).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let page = unescaped(&r.text().await.unwrap());
        for title in shown {
            assert!(page.contains(title), "digest {id} shows {title}");
        }
        assert!(
            !page.contains(not_shown),
            "digest {id} shows only its own articles"
        );
        for token in &tokens {
            assert!(
                !page.contains(token.as_str()),
                "digest {id} carries a subscriber's token"
            );
        }
        assert!(!page.contains("herald-unsubscribe-") && !page.contains("herald-archive-"));
        assert!(
            !page.contains("%%HERALD_"),
            "no placeholder of any kind is left"
        );
        assert!(
            !page.contains("/unsubscribe/"),
            "no unsubscribe link of anybody's"
        );
        // Where each copy had its unsubscribe link: the signup page.
        let signup = format!("{}/", app.base_url);
        let links = hrefs(&page);
        assert!(
            links.iter().filter(|l| **l == signup).count() >= 2,
            "the signup page is linked where the unsubscribe link was, and in the header: {links:?}"
        );
        assert!(
            links.contains(&format!("{}/archive", app.base_url)),
            "links back to the archive"
        );
        let subject = app.store.digest_by_id(id).await.unwrap().unwrap().subject;
        assert!(
            page.contains(&format!("<title>{subject}</title>")),
            "the page has the digest's title"
        );
    }
    app.shutdown().await;
}

async fn only_digests_that_reached_readers_are_in_the_archive(backend: Backend) {
    // No worker: each state is arranged with the worker's own store calls.
    let app = spawn_app_role(backend, SmtpSink::start(&[]), Role::Web, |_| {}).await;
    app.import_confirmed(&[ANN, BOB]).await;
    let store = &app.store;
    let owner = "archive-test";
    // Claims one copy (of the oldest due digest) and records it as accepted.
    let deliver_one = |expected: i64| async move {
        let now = now_millis();
        let claimed = store
            .claim_deliveries(owner, now, now + 60_000, 1, true)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].digest_id, expected);
        let outcome = DeliveryOutcome::Sent {
            response: "250 2.0.0 Ok".into(),
        };
        store
            .record_deliveries(
                owner,
                &[(expected, claimed[0].subscriber_id, outcome)],
                now,
                3,
            )
            .await
            .unwrap();
    };

    let paused = digest_of(&app, &["Paused after one copy"]).await;
    deliver_one(paused).await;
    assert!(store
        .set_digest_status(paused, &["queued", "sending"], "paused")
        .await
        .unwrap());

    let cancelled = digest_of(&app, &["Cancelled after one copy"]).await;
    deliver_one(cancelled).await;
    assert!(store
        .cancel_digest(cancelled, now_millis())
        .await
        .unwrap()
        .is_some());

    let sending = digest_of(&app, &["Still sending, one copy out"]).await;
    deliver_one(sending).await;
    assert_eq!(
        store.digest_by_id(sending).await.unwrap().unwrap().status,
        "sending"
    );

    let queued = digest_of(&app, &["Queued, nothing sent"]).await;

    let (status, list) = get_text(&app, "/archive").await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&app, &list), [sending]);
    let feed = parse_feed(&get_text(&app, "/archive/feed.xml").await.1);
    let in_feed: Vec<String> = feed.entries.iter().map(entry_link).collect();
    assert_eq!(in_feed, [app.url(&format!("/archive/{sending}"))]);
    let (status, page) = get_text(&app, &format!("/archive/{sending}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Still sending, one copy out"));
    for (id, what) in [
        (paused, "paused"),
        (cancelled, "cancelled"),
        (queued, "queued"),
    ] {
        let (status, page) = get_text(&app, &format!("/archive/{id}")).await;
        assert_eq!(status, 404, "{what} digest");
        assert!(page.contains("Digest not found"), "{what}: {page}");
    }

    // Resumed, the paused digest is sending again, and readers have a copy.
    assert!(store
        .set_digest_status(paused, &["paused"], "sending")
        .await
        .unwrap());
    let (_, list) = get_text(&app, "/archive").await;
    assert_eq!(listed_ids(&app, &list), [sending, paused]);
    app.shutdown().await;
}

async fn a_digest_no_copy_of_which_was_delivered_stays_out_of_the_archive(backend: Backend) {
    // smtp-sink refuses every message at the end of DATA; one attempt each.
    let app = spawn_app_with(backend, SmtpSink::start(&["-f", "."]), |c| {
        c.delivery.max_attempts = 1;
        c.delivery.retry_base_ms = 50;
    })
    .await;
    app.import_confirmed(&[ANN]).await;
    let id = digest_of(&app, &["Nobody will read this"]).await;
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["failed"], 1, "{status}");
    assert_eq!(status["counts"]["sent"], 0, "{status}");

    let (status, list) = get_text(&app, "/archive").await;
    assert_eq!(status, 200);
    assert!(listed_ids(&app, &list).is_empty());
    assert!(list.contains("No digest has been sent yet"), "{list}");
    assert_eq!(get_text(&app, &format!("/archive/{id}")).await.0, 404);
    let feed = parse_feed(&get_text(&app, "/archive/feed.xml").await.1);
    assert!(feed.entries.is_empty());
    app.shutdown().await;
}

/// A digest document as herald renders them, for digests made through
/// the store.
fn small_digest(n: usize) -> NewDigest {
    const P: &str = herald::mail::SAMPLE_UNSUBSCRIBE_MARKER;
    let stored = herald::mail::slotted(
        &format!(
            "<!doctype html><html lang=\"en\"><head><title>Digest number {n}</title></head><body style=\"margin:0\"><h2>Story {n}</h2><a href=\"{P}\">Unsubscribe</a></body></html>"
        ),
        &format!("Story {n}\nUnsubscribe: {P}\n"),
        P,
    )
    .to_stored();
    NewDigest {
        slot: format!("archive-test:{n}"),
        window_start: 0,
        window_end: 0,
        subject: format!("Digest number {n}"),
        body_html: stored.html,
        body_text: stored.text,
        body_slots: stored.slots,
        article_ids: Vec::new(),
    }
}

async fn the_archive_pages_through_more_than_twenty_digests(backend: Backend) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&[ANN]).await;
    let mut ids = Vec::new();
    for n in 1..=41 {
        match app
            .store
            .create_digest(&small_digest(n), now_millis())
            .await
            .unwrap()
        {
            DigestCreated::Created(id) => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    app.state.wake_worker.notify_one();
    for id in &ids {
        app.wait_digest_done(*id, Duration::from_secs(30)).await;
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

    // Page 1 (the bare /archive), then the "older" links to the end.
    let (status, first) = get_text(&app, "/archive").await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&app, &first), newest_first[..20]);
    assert_eq!(rel_link(&first, "prev"), None, "page 1 has no newer page");
    let second_url = rel_link(&first, "next").expect("page 1 links to older digests");
    assert_eq!(second_url, app.url("/archive?page=2"));

    let (status, second) = get_text(&app, &second_url).await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&app, &second), newest_first[20..40]);
    assert_eq!(rel_link(&second, "prev"), Some(app.url("/archive")));
    let third_url = rel_link(&second, "next").expect("page 2 links to page 3");

    let (status, third) = get_text(&app, &third_url).await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&app, &third), newest_first[40..]);
    assert_eq!(rel_link(&third, "prev"), Some(app.url("/archive?page=2")));
    assert_eq!(
        rel_link(&third, "next"),
        None,
        "the last page has no older page"
    );

    // The feed: the 20 newest.
    let feed = parse_feed(&get_text(&app, "/archive/feed.xml").await.1);
    let in_feed: Vec<String> = feed.entries.iter().map(entry_link).collect();
    let expected: Vec<String> = newest_first[..20]
        .iter()
        .map(|id| app.url(&format!("/archive/{id}")))
        .collect();
    assert_eq!(in_feed, expected);

    // Pages that are not there, and page numbers that are not numbers.
    for q in ["4", "0", "99999999999999999999", "461168601842738791"] {
        let (status, page) = get_text(&app, &format!("/archive?page={q}")).await;
        assert_eq!(status, 404, "page={q}");
        assert!(page.contains("There is no such page"), "page={q}: {page}");
    }
    for q in [
        "page=abc",
        "page=-1",
        "page=%2B1",
        "page=1.5",
        "page=2e3",
        "page=",
        "page=%FF",
        "page=1&page=2",
    ] {
        let (status, page) = get_text(&app, &format!("/archive?{q}")).await;
        assert_eq!(status, 400, "{q}");
        assert!(page.contains("That is not a page number"), "{q}: {page}");
    }
    // Ids of no digest.
    for id in [
        "999999",
        "0",
        "-1",
        "abc",
        "1.5",
        "%FF",
        "99999999999999999999",
    ] {
        let (status, page) = get_text(&app, &format!("/archive/{id}")).await;
        assert_eq!(status, 404, "/archive/{id}");
        assert!(page.contains("Digest not found"), "/archive/{id}: {page}");
    }
    app.shutdown().await;
}

async fn the_atom_feed_lists_sent_digests_with_links_to_their_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&[ANN, BOB]).await;
    let first = sent_digest_of(&app, &["Harbour bridge reopens after repairs"]).await;
    let second = sent_digest_of(&app, &["City council votes on the new budget"]).await;
    let tokens = tokens_of(&app, &[ANN, BOB]).await;

    let r = app.get("/archive/feed.xml").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let xml = r.text().await.unwrap();
    let feed = parse_feed(&xml);
    assert_eq!(feed.feed_type, feed_rs::model::FeedType::Atom);
    assert_eq!(
        feed.title.as_ref().map(|t| t.content.as_str()),
        Some("The Daily Herald: past digests")
    );
    assert_eq!(feed.entries.len(), 2);
    for (entry, id, title) in [
        (
            &feed.entries[0],
            second,
            "City council votes on the new budget",
        ),
        (
            &feed.entries[1],
            first,
            "Harbour bridge reopens after repairs",
        ),
    ] {
        let digest = app.store.digest_by_id(id).await.unwrap().unwrap();
        let url = app.url(&format!("/archive/{id}"));
        assert_eq!(entry_link(entry), url);
        assert_eq!(entry.id, url);
        assert_eq!(
            entry.title.as_ref().map(|t| t.content.as_str()),
            Some(digest.subject.as_str())
        );
        assert_eq!(
            entry.updated.map(|t| t.timestamp()),
            Some(digest.created_at / 1000),
            "updated is when the digest went out"
        );
        let content = entry
            .content
            .as_ref()
            .and_then(|c| c.body.clone())
            .unwrap_or_default();
        assert!(
            content.contains(title),
            "the entry has the digest's articles: {content}"
        );
        assert!(
            content.contains("https://news.example.com/"),
            "and their links"
        );
    }
    for token in &tokens {
        assert!(
            !xml.contains(token.as_str()),
            "the feed carries a subscriber's token"
        );
    }
    assert!(!xml.contains("herald-unsubscribe-") && !xml.contains("herald-archive-"));
    assert!(!xml.contains("%%HERALD_"));
    assert!(!xml.contains("/unsubscribe/"));
    // The page points readers at the feed.
    let list = unescaped(&get_text(&app, "/archive").await.1);
    assert!(list.contains(&format!(
        "type=\"application/atom+xml\" title=\"The Daily Herald: past digests\" href=\"{}\"",
        app.url("/archive/feed.xml")
    )));
    app.shutdown().await;
}

async fn a_disabled_archive_answers_404_on_all_three_routes(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.archive.enabled = false).await;
    app.import_confirmed(&[ANN]).await;
    let id = sent_digest_of(&app, &["Sent, but not archived"]).await;
    for path in [
        "/archive".to_string(),
        "/archive?page=1".to_string(),
        format!("/archive/{id}"),
        "/archive/feed.xml".to_string(),
    ] {
        let (status, page) = get_text(&app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(page.contains("Page not found"), "{path}: {page}");
        assert!(!page.contains("Sent, but not archived"), "{path}");
    }
    app.shutdown().await;
}

async fn every_archive_response_carries_the_security_headers_and_no_script(backend: Backend) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&[ANN]).await;
    let id = sent_digest_of(&app, &["Security headers everywhere"]).await;
    for (path, status, is_digest) in [
        ("/archive".to_string(), 200, false),
        ("/archive?page=2".to_string(), 404, false),
        ("/archive?page=x".to_string(), 400, false),
        (format!("/archive/{id}"), 200, true),
        ("/archive/999999".to_string(), 404, false),
        ("/archive/x".to_string(), 404, false),
        ("/archive/feed.xml".to_string(), 200, false),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), status, "{path}");
        let h = r.headers().clone();
        let policies: Vec<&str> = h
            .get_all("content-security-policy")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            policies.len(),
            1,
            "{path}: exactly one policy: {policies:?}"
        );
        let csp = policies[0];
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: {directive} missing from {csp}"
            );
        }
        assert!(
            !csp.contains("script-src"),
            "{path}: scripts allowed: {csp}"
        );
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        if is_digest {
            // The digest's inline styles and its images, nothing more.
            assert!(csp.contains("style-src 'unsafe-inline'"), "{csp}");
            assert!(csp.contains("img-src https: http: data:"), "{csp}");
        } else {
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        }
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let body = r.text().await.unwrap().to_ascii_lowercase();
        assert!(!body.contains("<script"), "{path} has a script");
        assert!(
            !body.contains("javascript:"),
            "{path} has a javascript: URL"
        );
    }
    app.shutdown().await;
}

async fn archive_links_stay_under_the_base_url_path(backend: Backend) {
    let (app, _) = spawn_app_under_path(backend).await;
    let base = app.base_url.clone();
    app.import_confirmed(&[ANN]).await;
    let id = sent_digest_of(&app, &["Served under a path"]).await;
    let herald_links = |page: &str| -> Vec<String> {
        hrefs(page)
            .into_iter()
            .filter(|l| !l.starts_with("https://news.example.com/"))
            .collect()
    };

    let (status, list) = get_text(&app, &format!("{base}/archive")).await;
    assert_eq!(status, 200);
    let links = herald_links(&list);
    assert!(links.contains(&format!("{base}/archive/{id}")), "{links:?}");
    assert!(links.iter().all(|l| l.starts_with(&base)), "{links:?}");

    let (status, page) = get_text(&app, &format!("{base}/archive/{id}")).await;
    assert_eq!(status, 200);
    let links = herald_links(&page);
    assert!(links.contains(&format!("{base}/")), "{links:?}");
    assert!(links.iter().all(|l| l.starts_with(&base)), "{links:?}");

    let feed = parse_feed(&get_text(&app, &format!("{base}/archive/feed.xml")).await.1);
    assert_eq!(entry_link(&feed.entries[0]), format!("{base}/archive/{id}"));
    assert!(
        feed.links.iter().all(|l| l.href.starts_with(&base)),
        "{:?}",
        feed.links
    );
    app.shutdown().await;
}

/// Characters XML 1.0 forbids (and noncharacters) in what a feed sends.
/// Tried: U+FFFF, U+FFFE, U+1FFFF, U+FDD0, NUL, BEL, backspace, ESC, vertical
/// tab and form feed in a JSON Feed item's title, summary, author, tags and
/// body; and a digest stored before titles were cleaned, with the same
/// in its subject and body (but NUL, which PostgreSQL never stores).
const XML_FORBIDS: &str = "\u{FFFF}\u{FFFE}\u{1FFFF}\u{FDD0}\u{0}\u{7}\u{8}\u{1b}\u{b}\u{c}";

/// Whether a real XML parser (Python's expat) reads `xml` as well-formed;
/// the parser's complaint when not.
fn well_formed(xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.xml");
    std::fs::write(&path, xml).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as ET; ET.parse(sys.argv[1])",
        ])
        .arg(&path)
        .output()
        .expect("python3 runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn text_with_characters_xml_forbids_leaves_the_archive_feed_well_formed(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| c.feeds.backfill_days = 1).await;
    app.import_confirmed(&[ANN]).await;

    // A digest written before the rule, its subject and body unclean.
    let unclean = XML_FORBIDS.replace('\u{0}', "");
    let mut legacy = small_digest(1);
    legacy.subject = format!("Legacy{unclean} subject");
    legacy.body_html = legacy.body_html.replace(
        "<h2>Story 1</h2>",
        &format!("<h2>Legacy{unclean} story</h2>"),
    );
    let DigestCreated::Created(legacy_id) = app
        .store
        .create_digest(&legacy, now_millis())
        .await
        .unwrap()
    else {
        panic!("the legacy digest was not created");
    };
    app.wait_digest_done(legacy_id, Duration::from_secs(20))
        .await;

    let dirty = |s: &str| format!("{s}{XML_FORBIDS} end");
    let json_feed = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": dirty("Feed title"),
        "items": [{
            "id": "xml-1",
            "url": "https://news.example.com/xml-1",
            "title": dirty("Harbour bridge reopens"),
            "summary": dirty("A summary"),
            "content_html": format!("<p>{}</p>", dirty("Body text")),
            "authors": [{"name": dirty("Ann Author")}],
            "tags": [dirty("Harbour")],
            "date_published": chrono::Utc::now().to_rfc3339(),
        }]
    })
    .to_string();
    let server = common::feed_server::serve(vec![("/dirty.json", json_feed)]).await;
    let (feed, report) =
        common::feed_server::add_feed_reporting(&app, &format!("{server}/dirty.json")).await;
    assert_eq!(report["new_articles"], 1, "{report}");
    let article = app.store.articles_of_feed(feed).await.unwrap().remove(0);
    let stored = [
        article.title.clone(),
        article.summary.clone(),
        article.author.clone().unwrap_or_default(),
    ];
    for text in &stored {
        assert!(
            !text.contains(|c: char| XML_FORBIDS.contains(c)),
            "stored as {text:?}"
        );
    }
    assert!(
        stored[0].starts_with("Harbour bridge reopens"),
        "{stored:?}"
    );
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;

    let (status, xml) = get_text(&app, "/archive/feed.xml").await;
    assert_eq!(status, 200);
    if let Err(complaint) = well_formed(&xml) {
        panic!("/archive/feed.xml is not well-formed XML: {complaint}\n{xml:?}");
    }
    let parsed = parse_feed(&xml);
    assert_eq!(parsed.entries.len(), 2);
    let titles: Vec<String> = parsed
        .entries
        .iter()
        .filter_map(|e| e.title.as_ref().map(|t| t.content.clone()))
        .collect();
    assert!(
        titles.iter().any(|t| t.contains("Harbour bridge reopens")),
        "{titles:?}"
    );
    assert!(titles.iter().any(|t| t.contains("Legacy")), "{titles:?}");
    app.shutdown().await;
}

/// A reader on the archive page is in the browser already: the copies say
/// "View this digest in your browser" and link the digest's page (both
/// parts), the page and its Atom entry do not say it. A digest stored
/// before herald marked that line (with the old placeholders, no slot
/// positions, the line as the template wrote it then) loses the line on
/// its page too, and keeps the rest.
async fn the_archived_digest_does_not_offer_to_view_itself_in_the_browser(backend: Backend) {
    const LINE: &str = "View this digest in your browser";
    let app = spawn_app(backend).await;
    app.import_confirmed(&[ANN]).await;
    let id = sent_digest_of(&app, &["Harbour bridge reopens after repairs"]).await;
    let page_url = app.url(&format!("/archive/{id}"));
    let copy = app
        .sink
        .wait_for(1, Duration::from_secs(10))
        .await
        .remove(0);
    assert!(copy.html.contains(LINE), "{}", copy.html);
    assert!(unescaped(&copy.html).contains(&format!("href=\"{page_url}\"")));
    assert!(
        copy.text.contains(&format!("{LINE}: {page_url}")),
        "{}",
        copy.text
    );

    let (status, page) = get_text(&app, &format!("/archive/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Harbour bridge reopens after repairs"));
    assert!(!page.contains("in your browser"), "{page}");
    let feed = get_text(&app, "/archive/feed.xml").await.1;
    assert!(feed.contains("Harbour bridge reopens after repairs"));
    assert!(!feed.contains("in your browser"), "{feed}");

    // As an older herald stored a digest.
    let old = "<!doctype html>\n<html lang=\"en\"><head><title>Old</title></head>\n<body style=\"margin:0;\">\n<p style=\"margin:0;\">The Daily Herald · Monday</p>\n<p style=\"margin:6px 0 0;font-size:13px;color:#4b5563;\"><a href=\"%%HERALD_ARCHIVE_URL%%\" style=\"color:#4b5563;\">View this digest in your browser</a></p>\n<h2>An older story</h2>\n<p><a href=\"%%HERALD_UNSUBSCRIBE_URL%%\">Unsubscribe</a></p>\n</body>\n</html>\n";
    on_pool!(&app.store, pool => {
        sqlx::query("UPDATE digests SET body_html = $1, body_slots = NULL WHERE id = $2")
            .bind(old)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    });
    let (status, page) = get_text(&app, &format!("/archive/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("An older story"), "{page}");
    assert!(!page.contains("in your browser"), "{page}");
    assert!(!page.contains("%%HERALD_"), "{page}");
    assert!(
        hrefs(&page).contains(&format!("{}/", app.base_url)),
        "the signup page where the unsubscribe link was"
    );
    app.shutdown().await;
}

both_backends!(
    the_archived_digest_does_not_offer_to_view_itself_in_the_browser,
    sent_digests_are_listed_newest_first_and_shown_without_anyones_unsubscribe_link,
    only_digests_that_reached_readers_are_in_the_archive,
    a_digest_no_copy_of_which_was_delivered_stays_out_of_the_archive,
    the_archive_pages_through_more_than_twenty_digests,
    the_atom_feed_lists_sent_digests_with_links_to_their_pages,
    a_disabled_archive_answers_404_on_all_three_routes,
    every_archive_response_carries_the_security_headers_and_no_script,
    archive_links_stay_under_the_base_url_path,
    text_with_characters_xml_forbids_leaves_the_archive_feed_well_formed,
);
