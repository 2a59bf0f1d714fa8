//! No page herald shows ends nowhere, every page says whose it is, and a
//! digest looks the same whichever process created it.

mod common;

use common::{spawn_app_with, urlencode, Backend, SmtpSink};
use std::time::Duration;

const ARTICLE: &str = "https://www.dailynews.example/2026/12/06/iran-azerbaijan-talks/";

/// Every `href` on a page.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| {
            h.replace("&amp;", "&")
                .replace("&#x2F;", "/")
                .replace("&#x3D;", "=")
        })
        .collect()
}

fn form_action(html: &str) -> String {
    html.split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|h| {
            h.replace("&amp;", "&")
                .replace("&#x2F;", "/")
                .replace("&#x3D;", "=")
        })
        .expect("a form")
}

async fn post_form(app: &common::TestApp, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn confirmation_link(app: &common::TestApp, email: &str) -> String {
    let mails = app.sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(!mails.is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(m) = app.sink.messages_to(email).last() {
            return m
                .link_starting(&app.url("/confirm/"))
                .expect("confirmation link");
        }
        assert!(std::time::Instant::now() < deadline, "no mail to {email}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reader who signs up under an article (the form's hidden `return_to`)
/// is led back to it from "Check your inbox" and from "You are subscribed",
/// and to the news site; `return_to` is carried by the confirmation link,
/// never stored. Inputs tried for `return_to`: the article (kept), another
/// site and a look-alike host (dropped: no link anywhere, the confirmation
/// link carries nothing).
async fn check_your_inbox_and_you_are_subscribed_lead_back_to_the_article(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.site_url = Some("https://www.dailynews.example/".into());
    })
    .await;
    let resp = post_form(
        &app,
        format!(
            "email=reader%40example.com&return_to={}",
            urlencode(ARTICLE)
        ),
    )
    .await;
    assert_eq!(resp.status(), 303);
    let thanks = resp.headers()["location"].to_str().unwrap().to_string();
    let page = app.get(&thanks).await.text().await.unwrap();
    assert!(page.contains("Check your inbox"), "{page}");
    let found = links(&page);
    assert!(found.contains(&ARTICLE.to_string()), "{found:?}");
    assert!(
        found.contains(&"https://www.dailynews.example/".to_string()),
        "{found:?}"
    );
    assert!(page.contains("Back to the article") && page.contains("Go to The Daily Herald"));

    let link = confirmation_link(&app, "reader@example.com").await;
    let page = app.get(&link).await.text().await.unwrap();
    let action = form_action(&page);
    let done = app.post(&action).await;
    assert_eq!(done.status(), 200);
    let page = done.text().await.unwrap();
    assert!(page.contains("You are subscribed"), "{page}");
    let found = links(&page);
    assert!(found.contains(&ARTICLE.to_string()), "{found:?}");
    assert!(
        found.contains(&"https://www.dailynews.example/".to_string()),
        "{found:?}"
    );
    assert!(found.contains(&app.url("/archive")), "{found:?}");

    // Somewhere else: dropped without a word, and never in the mail.
    for (i, elsewhere) in [
        "https://evil.example/phish",
        "https://dailynews.example.evil.example/",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("other{i}@example.com");
        let resp = post_form(
            &app,
            format!(
                "email={}&return_to={}",
                urlencode(&email),
                urlencode(elsewhere)
            ),
        )
        .await;
        assert_eq!(resp.status(), 303);
        let thanks = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(!thanks.contains("evil"), "{thanks}");
        let page = app.get(&thanks).await.text().await.unwrap();
        assert!(!page.contains("evil.example"), "{page}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let link = loop {
            if let Some(m) = app.sink.messages_to(&email).last() {
                break m.link_starting(&app.url("/confirm/")).unwrap();
            }
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            !link.contains("return_to") && !link.contains("evil"),
            "{link}"
        );
        // A hand-made link to herald with another site in it leads nowhere else.
        let forged = format!("{link}?return_to={}", urlencode(elsewhere));
        let page = app.get(&forged).await.text().await.unwrap();
        assert!(!form_action(&page).contains("evil"), "{page}");
        let page = app.post(&forged).await.text().await.unwrap();
        assert!(
            page.contains("You are subscribed") && !page.contains("evil.example"),
            "{page}"
        );
    }
    app.shutdown().await;
}

/// The unsubscribe page, before and after, says which address it is for,
/// masked: whoever holds a forwarded digest learns nothing more.
async fn the_unsubscribe_page_names_the_address_masked(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    app.import_confirmed(&["reader@example.com"]).await;
    let url = app.one_click_url("reader@example.com").await;
    let page_url = url.replace("/unsubscribe/one-click/", "/unsubscribe/");
    for (what, resp) in [
        ("before", app.get(&page_url).await),
        ("after", app.post(&page_url).await),
        ("again", app.get(&page_url).await),
    ] {
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("r\u{2022}\u{2022}\u{2022}@example.com"),
            "{what}: {page}"
        );
        assert!(!page.contains("reader@example.com"), "{what}: {page}");
    }
    app.shutdown().await;
}

/// With `site_name` unset, pages and mail call the site by its host, not
/// "herald".
async fn an_unset_site_name_is_the_sites_host(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.site_name = String::new();
        c.site_url = Some("https://www.dailynews.example/".into());
    })
    .await;
    let page = app.get("/").await.text().await.unwrap();
    assert!(
        page.contains("Get dailynews.example in your inbox"),
        "{page}"
    );
    assert!(!page.contains("herald"), "{page}");
    assert_eq!(
        app.subscribe_form("reader@example.com", "").await.status(),
        303
    );
    let mail = &app.sink.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Confirm your subscription to dailynews.example")
    );
    app.shutdown().await;
}

/// `herald digest send --now` from a shell that lacks the server's
/// settings (no `site_name`, another base URL) creates the digest the
/// server would: its site name, its links; and it says what differed.
async fn a_digest_created_from_a_shell_looks_like_the_servers(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.site_url = Some("https://www.dailynews.example/".into());
    })
    .await;
    app.import_confirmed(&["reader@example.com"]).await;
    app.add_article(
        "Talks resume",
        "https://www.dailynews.example/talks",
        "<p>Talks resumed today.</p>",
    )
    .await;
    let data = tempfile::tempdir().unwrap();
    let out = common::feed_server::cli(&app, data.path(), &["digest", "send", "--now"]);
    let printed = common::feed_server::text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("site_name"), "{printed}");
    let digests = app.store.recent_digests(5).await.unwrap();
    assert_eq!(digests.len(), 1);
    assert!(
        digests[0]
            .subject
            .starts_with("The Daily Herald: Talks resume"),
        "{}",
        digests[0].subject
    );
    let mail = &app.sink.wait_for(1, Duration::from_secs(20)).await[0];
    assert!(mail.text.contains("The Daily Herald"), "{}", mail.text);
    app.shutdown().await;
}

both_backends!(
    check_your_inbox_and_you_are_subscribed_lead_back_to_the_article,
    the_unsubscribe_page_names_the_address_masked,
    an_unset_site_name_is_the_sites_host,
    a_digest_created_from_a_shell_looks_like_the_servers,
);
