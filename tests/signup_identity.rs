//! What makes two signups one subscriber, and which addresses and names
//! the form refuses (issue 10, items 7 and 9, and bidi names).

mod common;

use common::{spawn_app, spawn_app_with, Backend, SmtpSink};
use herald::store::Store;
use std::time::Duration;

async fn post_form(app: &common::TestApp, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST /subscribe")
}

async fn subscriber_count(app: &common::TestApp) -> usize {
    app.store.list_subscribers(None, 1000).await.unwrap().len()
}

async fn outbox_count(store: &Store) -> i64 {
    on_pool!(store, pool => {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox")
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// Tried: four spellings of one local part, an upper-case domain, and a
/// domain typed in Unicode and in its IDNA ASCII form, all within the
/// resend interval. Before the fix each was its own pending subscriber with
/// its own confirmation mail (2^n mails per interval for n letters).
async fn addresses_differing_only_in_case_or_idna_are_one_subscriber(backend: Backend) {
    let app = spawn_app(backend).await;
    for email in [
        "Victim@example.com",
        "vIctim@example.com",
        "viCtim@example.com",
        "victim@EXAMPLE.com",
    ] {
        assert_eq!(app.subscribe_form(email, "").await.status(), 303, "{email}");
    }
    for email in [
        "user@exämple.com",
        "user@xn--exmple-cua.com",
        "USER@Exämple.com",
    ] {
        assert_eq!(app.subscribe_form(email, "").await.status(), 303, "{email}");
    }
    assert_eq!(
        subscriber_count(&app).await,
        2,
        "two readers, two subscribers"
    );
    let mails = app.sink.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut to: Vec<String> = app
        .sink
        .messages()
        .iter()
        .map(|m| m.envelope_to.clone())
        .collect();
    to.sort();
    // Mail goes to what the reader typed first, with the domain in ASCII.
    assert_eq!(
        to,
        vec!["Victim@example.com", "user@xn--exmple-cua.com"],
        "{} mails",
        mails.len()
    );
    // Unsubscribing one spelling unsubscribes the reader.
    let one_click = app.one_click_url("VICTIM@example.com").await;
    assert_eq!(app.post(&one_click).await.status(), 200);
    assert_eq!(
        app.subscriber_status("victim@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    app.shutdown().await;
}

/// Rows stored by an older herald have no key: they get one at start-up,
/// and two rows that are one address up to case become one subscriber
/// (the confirmed one is kept, the pending one is marked unsubscribed).
/// Unsubscribe links mailed before keep working.
async fn subscribers_stored_before_address_keys_get_one_and_duplicates_merge(backend: Backend) {
    let app = spawn_app(backend).await;
    app.import_confirmed(&["Ann@example.com", "solo@example.com"])
        .await;
    app.subscribe_form("late@example.com", "").await;
    on_pool!(&app.store, pool => {
        // What an older herald stored: no key, and a second row for Ann
        // that differs only in case (the old UNIQUE(email) allowed it).
        sqlx::query("UPDATE subscribers SET email_key = NULL").execute(pool).await.unwrap();
        sqlx::query(
            "INSERT INTO subscribers (email, status, source, created_at) VALUES ('ann@EXAMPLE.com', 'pending', 'form', 0)",
        )
        .execute(pool)
        .await
        .unwrap();
    });
    let old_links: Vec<(String, String)> = app
        .store
        .list_subscribers(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.email.clone(),
                format!(
                    "/unsubscribe/one-click/{}",
                    app.state.signer.unsubscribe_token(s.id, &s.email)
                ),
            )
        })
        .collect();
    app.store.migrate().await.expect("migrate and key old rows");
    let keys: Vec<(String, String, Option<String>)> = on_pool!(&app.store, pool => {
        sqlx::query_as("SELECT email, status, email_key FROM subscribers ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    assert_eq!(
        keys,
        vec![
            (
                "Ann@example.com".into(),
                "confirmed".into(),
                Some("ann@example.com".into())
            ),
            (
                "solo@example.com".into(),
                "confirmed".into(),
                Some("solo@example.com".into())
            ),
            (
                "late@example.com".into(),
                "pending".into(),
                Some("late@example.com".into())
            ),
            (
                "ann@EXAMPLE.com".into(),
                "unsubscribed".into(),
                Some("merged:4:ann@example.com".into())
            ),
        ]
    );
    // A new signup for Ann finds the kept subscriber.
    app.subscribe_form("ANN@example.com", "").await;
    assert_eq!(subscriber_count(&app).await, 4);
    for (email, link) in old_links {
        assert_eq!(app.post(&link).await.status(), 200, "{email}: {link}");
    }
    assert_eq!(
        app.subscriber_status("ann@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    app.shutdown().await;
}

/// Tried: the addresses of the issue (address literals, numeric and
/// single-label domains, dotted-edge and double-dot local parts and labels)
/// through the form and the JSON API: each is refused with a message that
/// names the rule, and nothing is stored or sent.
async fn unmailable_addresses_are_refused_at_the_form(backend: Backend) {
    let app = spawn_app(backend).await;
    for (email, says) in [
        ("user@[127.0.0.1]", "IP address"),
        ("user@[10.0.0.5]", "IP address"),
        ("a@127.0.0.1", "IP address"),
        ("a@1.2", "IP address"),
        ("a..b@example.com", "two dots in a row"),
        (".a@example.com", "start or end with a dot"),
        ("a@example..com", "two dots in a row"),
        ("a@.example.com", "start or end with a dot"),
        ("a@localhost", "needs a dot"),
    ] {
        let form = post_form(&app, format!("email={}", common::urlencode(email))).await;
        assert_eq!(form.status(), 400, "{email}");
        let page = form.text().await.unwrap();
        assert!(page.contains(says), "{email}: expected {says:?} in {page}");
        let json = app
            .client
            .post(app.url("/subscribe"))
            .json(&serde_json::json!({ "email": email }))
            .send()
            .await
            .unwrap();
        assert_eq!(json.status(), 422, "{email}");
        assert!(json.text().await.unwrap().contains(says), "{email}");
    }
    assert_eq!(subscriber_count(&app).await, 0);
    assert_eq!(outbox_count(&app.store).await, 0);
    app.shutdown().await;
}

/// Tried: RIGHT-TO-LEFT OVERRIDE (the name would read backwards in the
/// inbox), LEFT-TO-RIGHT EMBEDDING, FIRST STRONG ISOLATE, LINE SEPARATOR and
/// PARAGRAPH SEPARATOR, through the form and the JSON API.
async fn display_names_with_bidi_overrides_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |_| {}).await;
    for name in [
        "Ann \u{202E}nosmaS",
        "\u{202A}Ann",
        "Ann \u{2068}x\u{2069}",
        "Ann\u{2028}Bcc: x@example.com",
        "Ann\u{2029}Smith",
    ] {
        let form = app.subscribe_form("ann@example.com", name).await;
        assert_eq!(form.status(), 400, "{name:?}");
        assert!(form
            .text()
            .await
            .unwrap()
            .contains("The name contains characters that are not allowed."));
        let json = app
            .client
            .post(app.url("/subscribe"))
            .json(&serde_json::json!({ "email": "ann@example.com", "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(json.status(), 422, "{name:?}");
    }
    assert_eq!(subscriber_count(&app).await, 0);
    // A right-to-left name without control characters is welcome.
    assert_eq!(
        app.subscribe_form("dana@example.com", "\u{5D3}\u{5E0}\u{5D4}")
            .await
            .status(),
        303
    );
    assert_eq!(subscriber_count(&app).await, 1);
    app.shutdown().await;
}

both_backends!(
    addresses_differing_only_in_case_or_idna_are_one_subscriber,
    subscribers_stored_before_address_keys_get_one_and_duplicates_merge,
    unmailable_addresses_are_refused_at_the_form,
    display_names_with_bidi_overrides_are_refused,
);

/// Thousands of rows stored before address keys (more than one batch of
/// the set-based keying), two of them one address spelled twice, far
/// apart: every row gets its key, the pair merges into one subscriber,
/// nothing else does. Inputs: 12,000 plain addresses, `Dup@example.com`
/// first and `dup@EXAMPLE.com` 11,000 rows later, and an IDNA address.
async fn thousands_of_old_rows_are_keyed_in_batches_and_only_duplicates_merge(backend: Backend) {
    let app = spawn_app(backend).await;
    on_pool!(&app.store, pool => {
        sqlx::query(
            "INSERT INTO subscribers (email, status, source, created_at) VALUES ('Dup@example.com', 'confirmed', 'form', 0)",
        )
        .execute(pool)
        .await
        .unwrap();
        // 11,000 rows, the other spelling, 1,000 more: set-based inserts.
        let many = "WITH RECURSIVE seq(n) AS (SELECT $1 UNION ALL SELECT n + 1 FROM seq WHERE n < $2)
             INSERT INTO subscribers (email, status, source, created_at)
             SELECT 'reader' || n || '@example.com', 'confirmed', 'form', 0 FROM seq";
        sqlx::query(many).bind(1i64).bind(11_000i64).execute(pool).await.unwrap();
        sqlx::query(
            "INSERT INTO subscribers (email, status, source, created_at) VALUES ('dup@EXAMPLE.com', 'pending', 'form', 0)",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(many).bind(11_001i64).bind(12_000i64).execute(pool).await.unwrap();
        sqlx::query(
            "INSERT INTO subscribers (email, status, source, created_at) VALUES ('anna@BÜCHER.example', 'confirmed', 'form', 0)",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("UPDATE subscribers SET email_key = NULL").execute(pool).await.unwrap();
    });
    app.store.migrate().await.expect("migrate and key old rows");
    let (unkeyed, merged, unsubscribed): (i64, i64, i64) = on_pool!(&app.store, pool => {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM subscribers WHERE email_key IS NULL),
                    (SELECT COUNT(*) FROM subscribers WHERE email_key LIKE 'merged:%'),
                    (SELECT COUNT(*) FROM subscribers WHERE status = 'unsubscribed')",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!((unkeyed, merged, unsubscribed), (0, 1, 1));
    let dup: Vec<(String, String, String)> = on_pool!(&app.store, pool => {
        sqlx::query_as("SELECT email, status, email_key FROM subscribers WHERE lower(email) = 'dup@example.com' ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    assert_eq!(
        dup[0],
        (
            "Dup@example.com".into(),
            "confirmed".into(),
            "dup@example.com".into()
        )
    );
    assert_eq!(dup[1].1, "unsubscribed");
    assert!(
        dup[1].2.starts_with("merged:") && dup[1].2.ends_with(":dup@example.com"),
        "{dup:?}"
    );
    let idna: String = on_pool!(&app.store, pool => {
        sqlx::query_scalar("SELECT email_key FROM subscribers WHERE email = 'anna@BÜCHER.example'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(idna, herald::domain::email_key("anna@BÜCHER.example"));
    app.shutdown().await;
}

both_backends!(thousands_of_old_rows_are_keyed_in_batches_and_only_duplicates_merge);
