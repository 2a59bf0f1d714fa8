//! herald behind a path: with `base_url = http://host:port/newsletter` (the
//! README's own example shape) every URL a page or a mail contains, and
//! every redirect, starts with that base, and the whole flow works through
//! it: form, thanks page, confirmation mail and page, digest, unsubscribe.

mod common;

use common::{spawn_app_under_path, Backend};
use std::time::Duration;

/// Every `action="…"` and `href="…"` in a page.
fn urls_in(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["action=\"", "href=\""] {
        let mut rest = page;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].replace("&#x2f;", "/").replace("&#47;", "/"));
                rest = &rest[end..];
            }
        }
    }
    out
}

fn assert_all_under(base: &str, page: &str, what: &str) {
    let urls = urls_in(page);
    assert!(!urls.is_empty(), "{what}: no links or forms found");
    for url in urls {
        assert!(
            url.starts_with(base),
            "{what}: {url} does not start with {base}"
        );
    }
}

async fn every_link_and_form_uses_the_base_url_path(backend: Backend) {
    let (app, port) = spawn_app_under_path(backend).await;
    let base = format!("http://127.0.0.1:{port}/newsletter");
    assert_eq!(app.base_url, base);

    // The signup page, served under the base path, posts under it.
    let form = app.get(&format!("{base}/")).await;
    assert_eq!(form.status(), 200);
    assert_all_under(&base, &form.text().await.unwrap(), "signup page");

    // The form's post redirects to the thanks page under the base.
    let r = app
        .client
        .post(format!("{base}/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=reader%40example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("{base}/thanks"));
    assert_eq!(app.get(&location).await.status(), 200);

    // The confirmation mail links under the base; its page's button posts
    // under the base, and that confirms.
    let mails = app.sink.wait_for(1, Duration::from_secs(10)).await;
    let link = mails[0]
        .link_starting(&format!("{base}/confirm/"))
        .expect("confirmation link under the base path");
    let page = app.get(&link).await.text().await.unwrap();
    assert_all_under(&base, &page, "confirm page");
    let action = urls_in(&page)
        .into_iter()
        .find(|u| u.contains("/confirm/"))
        .expect("confirm button");
    let done = app.post(&action).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("You are subscribed"));

    // The digest's unsubscribe link, its page and its button: all under the base.
    app.add_article("Story", "https://news.example.com/story", "<p>Text.</p>")
        .await;
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    let digest = app.sink.messages_to("reader@example.com");
    let unsubscribe = digest
        .iter()
        .find_map(|m| m.link_starting(&format!("{base}/unsubscribe/")))
        .expect("unsubscribe link under the base path");
    let page = app.get(&unsubscribe).await.text().await.unwrap();
    assert_all_under(&base, &page, "unsubscribe page");
    let action = urls_in(&page)
        .into_iter()
        .find(|u| u.contains("/unsubscribe/"))
        .expect("unsubscribe button");
    let done = app.post(&action).await;
    assert_eq!(done.status(), 200);
    assert_all_under(&base, &done.text().await.unwrap(), "unsubscribed page");
    assert_eq!(
        app.subscriber_status("reader@example.com").await.as_deref(),
        Some("unsubscribed")
    );

    // A page that is not there links back under the base too; and the
    // routes still answer at the root for a proxy that strips the path.
    let missing = app.get(&format!("{base}/nothing-here")).await;
    assert_eq!(missing.status(), 404);
    assert_all_under(&base, &missing.text().await.unwrap(), "404 page");
    assert_eq!(
        app.get(&format!("http://127.0.0.1:{port}/health"))
            .await
            .status(),
        200
    );
    app.shutdown().await;
}

both_backends!(every_link_and_form_uses_the_base_url_path);
