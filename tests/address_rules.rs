//! Which addresses the signup form takes, by the label rules of RFC 1035
//! and RFC 5891 (issue 17, item 18): the same `SubscriberEmail::parse`
//! answers the form, the JSON body, the API, the command line and the
//! relays' reports, so one rule holds everywhere.

mod common;

use common::Backend;
use std::time::Duration;

async fn post_json(app: &common::TestApp, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/subscribe"))
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await
        .expect("POST /subscribe (JSON)")
}

/// Tried: a TLD with a digit and a hyphen (`bad.tld-2`), `--` in positions
/// 3–4 typed in ASCII and in full-width hyphens (U+FF0D, which UTS 46 maps
/// to `-`), U+2010 HYPHEN (which stays itself and IDNA2008 refuses), a
/// label ending in a hyphen, an `xn--` label that does not
/// decode, reverse DNS under `.arpa`, and an internationalised local part
/// (RFC 6531), through the form and the JSON body: each is refused with a
/// message that says why, and nothing is stored or sent.
async fn addresses_breaking_label_rules_are_refused_with_a_reason(backend: Backend) {
    let app = common::spawn_app(backend).await;
    for (email, says) in [
        ("me@bad.tld-2", "does not end in a top-level domain"),
        (
            "me@yy--0.tld",
            "two hyphens as its third and fourth characters",
        ),
        (
            "me@yy\u{FF0D}\u{FF0D}0.tld",
            "two hyphens as its third and fourth characters",
        ),
        (
            "me@yy\u{2010}\u{2010}0.tld",
            "internationalised domain names cannot contain",
        ),
        ("me@bad-.example.org", "cannot start or end with a hyphen"),
        (
            "me@xn--zz.example.org",
            "not a valid internationalised name",
        ),
        ("me@x.arpa", "reserved (.arpa"),
        ("me@1.0.0.127.in-addr.arpa", "reserved (.arpa"),
        ("j\u{fc}rgen@example.org", "may not support SMTPUTF8"),
    ] {
        let form = app.subscribe_form(email, "").await;
        assert_eq!(form.status(), 400, "{email}");
        let page = form.text().await.unwrap();
        assert!(page.contains(says), "{email}: expected {says:?} in {page}");
        let json = post_json(&app, email).await;
        assert_eq!(json.status(), 422, "{email}");
        let body: serde_json::Value = json.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{email}: expected {says:?} in {body}");
    }
    assert!(app
        .store
        .list_subscribers(None, 100)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.sink.messages().is_empty(),
        "no mail for a refused address"
    );
    app.shutdown().await;
}

/// Tried: an A-label, the same name in Unicode (one subscriber with it), a
/// hyphen inside a label, a digit in a label: each is accepted through the
/// form or the JSON body, and its confirmation mail goes to the ASCII form.
async fn addresses_within_label_rules_are_accepted(backend: Backend) {
    let app = common::spawn_app(backend).await;
    for (email, form) in [
        ("a@xn--bcher-kva.example", true),
        ("a@b\u{fc}cher.example", false),
        ("a@sub-domain.example.org", false),
        ("a@a1.co", true),
    ] {
        let status = if form {
            app.subscribe_form(email, "").await.status()
        } else {
            post_json(&app, email).await.status()
        };
        let expected = if form { 303 } else { 202 };
        assert_eq!(status, expected, "{email}");
    }
    let mut stored: Vec<String> = app
        .store
        .list_subscribers(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.email)
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "a@a1.co",
            "a@sub-domain.example.org",
            "a@xn--bcher-kva.example"
        ]
    );
    app.sink.wait_for(3, Duration::from_secs(10)).await;
    let mut to: Vec<String> = app
        .sink
        .messages()
        .iter()
        .map(|m| m.envelope_to.clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "a@a1.co",
            "a@sub-domain.example.org",
            "a@xn--bcher-kva.example"
        ]
    );
    app.shutdown().await;
}

both_backends!(
    addresses_breaking_label_rules_are_refused_with_a_reason,
    addresses_within_label_rules_are_accepted,
);
