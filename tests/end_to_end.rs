//! The whole life of a subscriber, as they and their mail client see it:
//! subscribe → confirmation mail → link → button → digest with the article →
//! one-click unsubscribe → no more digests.

mod common;

use common::{spawn_app, spawn_app_role, Backend, SmtpSink};
use herald::startup::Role;
use std::time::Duration;

const SEED_HTML: &str = include_str!("fixtures/article-iran-azerbaijan.html");
const SEED_TITLE: &str = "Tensions Elevate Between Iran And Azerbaijan";
const SEED_URL: &str =
    "https://news.example.com/2021/10/tensions-elevate-between-iran-and-azerbaijan/";

async fn subscriber_lifecycle_end_to_end(backend: Backend) {
    let app = spawn_app(backend).await;

    // 1. The signup page is there and has the form.
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!(
        r#"<form method="post" action="{}/subscribe""#,
        app.base_url
    )));
    assert!(html.contains(r#"<label for="email">"#));

    // 2. Subscribe with the form: 303 to the thanks page, at once.
    let resp = app.subscribe_form("reader@example.com", "Ann Reader").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], app.url("/thanks").as_str());
    assert!(app
        .get("/thanks")
        .await
        .text()
        .await
        .unwrap()
        .contains("Check your inbox"));
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("pending")
    );

    // 3. The confirmation mail arrives: multipart, with a working link.
    let mails = app.sink.wait_for(1, Duration::from_secs(10)).await;
    let confirm = &mails[0];
    assert_eq!(confirm.envelope_to, "reader@example.com");
    assert_eq!(
        confirm.subject,
        "Confirm your subscription to The Daily Herald"
    );
    assert!(confirm
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    assert!(confirm.header("Message-ID").is_some() && confirm.header("Date").is_some());
    let link = confirm
        .link_starting(&app.url("/confirm/"))
        .expect("link in the text part");
    assert!(
        confirm.html.contains(&link),
        "the HTML part carries the same link"
    );

    // 4. Opening the link (as a mail scanner would) confirms nobody.
    let page = app.get(&link).await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("Confirm subscription"), "{body}");
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("pending")
    );

    // 5. The button (a POST) confirms; the link cannot be used twice.
    let page = app.post(&link).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("You are subscribed"));
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("confirmed")
    );
    let again = app.post(&link).await;
    assert_eq!(again.status(), 200);
    assert!(again.text().await.unwrap().contains("Already confirmed"));
    assert!(app
        .get(&link)
        .await
        .text()
        .await
        .unwrap()
        .contains("Already confirmed"));

    // A second, confirmed reader who stays subscribed throughout.
    app.subscribe_and_confirm("stays@example.com").await;

    // 6. The seed article goes in; a digest is sent now.
    app.add_article(SEED_TITLE, SEED_URL, SEED_HTML).await;
    let digest_id = app.send_digest_now().await;
    let status = app
        .wait_digest_done(digest_id, Duration::from_secs(20))
        .await;
    assert_eq!(status["counts"]["sent"], 2, "{status}");
    assert_eq!(status["digest"]["recipients"], 2);

    let digests: Vec<_> = app
        .sink
        .messages_to("reader@example.com")
        .into_iter()
        .filter(|m| m.subject.starts_with("The Daily Herald: "))
        .collect();
    assert_eq!(digests.len(), 1, "exactly one digest copy");
    let d = &digests[0];
    assert_eq!(d.subject, format!("The Daily Herald: {SEED_TITLE}"));
    // Headers a mail client relies on.
    assert!(d
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    assert!(d.header("Date").is_some());
    assert!(d.header("Message-ID").unwrap().ends_with("@herald.test>"));
    assert!(
        d.header("To").unwrap().contains("Ann Reader"),
        "{:?}",
        d.header("To")
    );
    assert_eq!(
        d.header("List-Id").unwrap(),
        "\"The Daily Herald\" <digest.127.0.0.1>"
    );
    assert_eq!(
        d.header("List-Unsubscribe-Post").unwrap(),
        "List-Unsubscribe=One-Click"
    );
    let list_unsub = d.header("List-Unsubscribe").unwrap();
    let one_click = list_unsub
        .split(',')
        .next()
        .unwrap()
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    assert!(
        one_click.starts_with(&app.url("/unsubscribe/one-click/")),
        "{list_unsub}"
    );
    assert!(
        list_unsub.contains("<mailto:news@herald.test?subject=unsubscribe"),
        "{list_unsub}"
    );
    // The article looks right: title, image made absolute, excerpt, link.
    assert!(d.html.contains(SEED_TITLE));
    assert!(d.html.contains(SEED_URL));
    assert!(d
        .html
        .contains("https://news.example.com/wp-content/uploads/2021/10/iran-azerbaijan.jpg"));
    assert!(d.text.contains(
        "Relations between Azerbaijan and Iran have presented a series of warning signs."
    ));
    assert!(d.text.contains(&format!("Read more: {SEED_URL}")));
    // …and none of the site furniture or scripts.
    for unwanted in [
        "mailpoet",
        "[mailpoet_form",
        "Share this news",
        "Related Stories",
        "Sign up Now",
        "trackReader",
        "<script",
        "pixel.gif",
        "Image source",
    ] {
        assert!(
            !d.html.contains(unwanted),
            "HTML part contains {unwanted:?}"
        );
        assert!(
            !d.text.contains(unwanted),
            "text part contains {unwanted:?}"
        );
    }
    assert!(
        d.html.len() < 100 * 1024,
        "HTML part stays well under Gmail's clipping size"
    );
    // A visible unsubscribe link for this reader, in both parts.
    let visible = d
        .link_starting(&app.url("/unsubscribe/"))
        .expect("visible unsubscribe link");
    assert!(d.html.contains(&visible));
    assert!(!visible.contains("one-click"));
    // Each copy has its own link.
    let other = app
        .sink
        .messages_to("stays@example.com")
        .into_iter()
        .find(|m| m.subject == d.subject)
        .expect("the other reader's copy");
    assert_ne!(
        other.link_starting(&app.url("/unsubscribe/")).unwrap(),
        visible
    );

    // 7. The visible link shows a page with a button and changes nothing.
    let page = app.get(&visible).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(">Unsubscribe</button>"));
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("confirmed")
    );

    // 8. A bare RFC 8058 one-click POST unsubscribes at once, idempotently.
    let resp = app
        .client
        .post(&one_click)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    let again = app.client.post(&one_click).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(app
        .post(&visible)
        .await
        .text()
        .await
        .unwrap()
        .contains("You are unsubscribed"));

    // 9. The next digest does not go to that address.
    app.add_article(
        "A second story",
        "https://news.example.com/2021/10/second/",
        "<p>More news.</p>",
    )
    .await;
    let second = app.send_digest_now().await;
    let status = app.wait_digest_done(second, Duration::from_secs(20)).await;
    assert_eq!(status["digest"]["recipients"], 1, "{status}");
    assert_eq!(status["counts"]["sent"], 1);
    assert_eq!(app.sink.messages_to("stays@example.com").len(), 3);
    assert_eq!(
        app.sink.messages_to("reader@example.com").len(),
        2,
        "the unsubscribed reader got only the confirmation and the first digest"
    );
    app.shutdown().await;
}

async fn unsubscribe_skips_digests_already_queued(backend: Backend) {
    // No worker runs while the digest is queued; one reader unsubscribes
    // before it starts: their queued copy is skipped, the other goes out.
    let app = spawn_app_role(backend, SmtpSink::start(&[]), Role::Web, |_| {}).await;
    app.import_confirmed(&["leaver@example.com", "reader@example.com"])
        .await;
    app.add_article("Story", "https://news.example.com/story/", "<p>Text.</p>")
        .await;
    let id = app.send_digest_now().await;
    assert_eq!(app.digest_status(id).await["counts"]["queued"], 2);
    let one_click = app.one_click_url("leaver@example.com").await;
    assert_eq!(app.post(&one_click).await.status(), 200);
    let status = app.digest_status(id).await;
    assert_eq!(status["counts"]["queued"], 1, "{status}");
    assert_eq!(status["counts"]["skipped"], 1, "{status}");
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 1, "{status}");
    assert_eq!(app.sink.messages_to("reader@example.com").len(), 1);
    assert_eq!(app.sink.messages_to("leaver@example.com").len(), 0);
    app.shutdown().await;
}

both_backends!(
    subscriber_lifecycle_end_to_end,
    unsubscribe_skips_digests_already_queued
);

async fn the_schedule_creates_one_digest_per_slot(backend: Backend) {
    // Every minute, with a two-minute catch-up: the scheduler finds the
    // latest minute at start and creates its digest, once.
    let app = common::spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.schedule.enabled = true;
        c.schedule.cron = "* * * * *".into();
        c.schedule.timezone = "Europe/London".into();
        c.schedule.catch_up_secs = 120;
        c.schedule.tick_secs = 1;
    })
    .await;
    app.import_confirmed(&["reader@example.com"]).await;
    app.add_article(
        "Scheduled story",
        "https://news.example.com/scheduled/",
        "<p>Text.</p>",
    )
    .await;
    // Published "now", so it belongs to the next slot: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(75);
    let digest = loop {
        if let Some(d) = app
            .store
            .recent_digests(5)
            .await
            .unwrap()
            .into_iter()
            .next()
        {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled digest");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        digest.slot.starts_with("schedule:") && digest.slot.ends_with(" Europe/London"),
        "{}",
        digest.slot
    );
    let status = app
        .wait_digest_done(digest.id, Duration::from_secs(20))
        .await;
    assert_eq!(status["counts"]["sent"], 1);
    let mails = app.sink.messages_to("reader@example.com");
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.contains("Scheduled story"));
    // More ticks within the same minute create nothing more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.store.recent_digests(5).await.unwrap().len(), 1);
    app.shutdown().await;
}

both_backends!(the_schedule_creates_one_digest_per_slot);
