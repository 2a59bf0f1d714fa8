//! Signing up and confirming, including every kind of bad input we could
//! think of. Each input is named in the test that tries it.

mod common;

use common::{spawn_app, spawn_app_with, Backend, SmtpSink};
use std::time::Duration;

async fn post_raw(app: &common::TestApp, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/subscribe"))
        .header("content-type", content_type)
        // A refused body may be left unread: never reuse that connection.
        .header("connection", "close")
        .body(body)
        .send()
        .await
        .expect("POST /subscribe")
}

async fn subscriber_count(app: &common::TestApp) -> usize {
    app.store.list_subscribers(None, 1000).await.unwrap().len()
}

async fn bad_signups_get_a_clear_answer_and_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let form = "application/x-www-form-urlencoded";
    let long_email = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "empty email",
            form,
            b"email=&name=Ann".to_vec(),
            400,
            "Please enter your email address.",
        ),
        (
            "no @",
            form,
            b"email=not-an-address".to_vec(),
            400,
            "does not look like an email address",
        ),
        (
            "two @",
            form,
            b"email=a%40%40example.com".to_vec(),
            400,
            "does not look like an email address",
        ),
        (
            "no domain dot",
            form,
            b"email=a%40localhost".to_vec(),
            400,
            "does not look like an email address",
        ),
        (
            "space inside",
            form,
            b"email=a+b%40example.com".to_vec(),
            400,
            "does not look like an email address",
        ),
        (
            "over 254 characters",
            form,
            format!("email={long_email}").into_bytes(),
            400,
            "too long",
        ),
        (
            "CRLF header injection in email",
            form,
            b"email=a%40example.com%0D%0ABcc%3A+victim%40example.com".to_vec(),
            400,
            "not allowed",
        ),
        (
            "CRLF header injection in name",
            form,
            b"email=a%40example.com&name=Ann%0D%0ABcc%3A+victim%40example.com".to_vec(),
            400,
            "name contains characters",
        ),
        (
            "NUL in name",
            form,
            b"email=a%40example.com&name=A%00nn".to_vec(),
            400,
            "name contains characters",
        ),
        (
            "name over 100 characters",
            form,
            format!("email=a%40example.com&name={}", "n".repeat(101)).into_bytes(),
            400,
            "name is too long",
        ),
        (
            "raw non-UTF-8 bytes",
            form,
            b"email=\xff\xfe%40example.com".to_vec(),
            400,
            "not valid UTF-8",
        ),
        (
            "percent-encoded non-UTF-8",
            form,
            b"email=%FF%FE%40example.com".to_vec(),
            400,
            "not valid UTF-8",
        ),
        (
            "wrong content type",
            "text/plain",
            b"email=a@example.com".to_vec(),
            415,
            "application/x-www-form-urlencoded or application/json",
        ),
        (
            "multipart instead of urlencoded",
            "multipart/form-data; boundary=x",
            b"--x\r\n".to_vec(),
            415,
            "application/x-www-form-urlencoded",
        ),
        (
            "malformed JSON",
            "application/json",
            b"{\"email\": ".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "JSON with a number for email",
            "application/json",
            b"{\"email\": 5}".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "JSON with bad email",
            "application/json",
            b"{\"email\": \"nope\"}".to_vec(),
            422,
            "does not look like an email address",
        ),
        (
            "JSON with CRLF in name",
            "application/json",
            b"{\"email\": \"a@example.com\", \"name\": \"x\\r\\nBcc: y@example.com\"}".to_vec(),
            422,
            "name contains characters",
        ),
        (
            "body over 16 KiB",
            form,
            format!("email=a%40example.com&name={}", "x".repeat(20_000)).into_bytes(),
            413,
            "too large",
        ),
    ];
    for (what, content_type, body, status, message) in cases {
        let resp = post_raw(&app, content_type, body).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let text = resp.text().await.unwrap();
        assert!(
            text.contains(message),
            "{what}: expected {message:?} in {text}"
        );
    }
    // The form page re-shows what was typed, escaped, so nothing is lost.
    let resp = post_raw(
        &app,
        form,
        b"email=%3Cscript%3Ex%40example&name=Ann".to_vec(),
    )
    .await;
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("value=\"&#60;script&#62;x@example\"")
            || page.contains("value=\"&lt;script&gt;x@example\""),
        "{page}"
    );
    assert!(page.contains("value=\"Ann\""));
    assert_eq!(subscriber_count(&app).await, 0, "no bad input was stored");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.sink.messages().is_empty(), "no mail went out");
    app.shutdown().await;
}

async fn signup_answers_the_same_for_new_pending_and_confirmed_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    app.subscribe_and_confirm("known@example.com").await;
    app.subscribe_form("pending@example.com", "").await;
    let mut answers = Vec::new();
    for email in [
        "new@example.com",
        "pending@example.com",
        "known@example.com",
        "known@EXAMPLE.COM",
    ] {
        let form = app.subscribe_form(email, "").await;
        let json = app
            .client
            .post(app.url("/subscribe"))
            .json(&serde_json::json!({"email": email}))
            .send()
            .await
            .unwrap();
        answers.push((
            form.status(),
            form.headers().get("location").cloned(),
            json.status(),
            json.text().await.unwrap(),
        ));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(answers[0].0, 303);
    assert_eq!(answers[0].2, 202);
    // The domain is case-normalised: KNOWN@EXAMPLE.COM is not a second subscriber.
    assert_eq!(
        app.subscriber_status("known@EXAMPLE.com").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(subscriber_count(&app).await, 3);
    app.shutdown().await;
}

async fn pending_resubscribe_resends_but_at_most_once_per_interval(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.confirmation.resend_interval_secs = 2;
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            app.subscribe_form("eager@example.com", "").await.status(),
            303
        );
    }
    app.sink.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.sink.messages_to("eager@example.com").len(),
        1,
        "five submissions, one mail"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        app.subscribe_form("eager@example.com", "").await.status(),
        303
    );
    let mails = app.sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2, "after the interval a new link goes out");
    // Both links work until one is used.
    let first = mails[0].link_starting(&app.url("/confirm/")).unwrap();
    let second = mails[1].link_starting(&app.url("/confirm/")).unwrap();
    assert_ne!(first, second);
    assert!(app
        .post(&first)
        .await
        .text()
        .await
        .unwrap()
        .contains("You are subscribed"));
    assert!(app
        .post(&second)
        .await
        .text()
        .await
        .unwrap()
        .contains("Already confirmed"));
    app.shutdown().await;
}

async fn resubscribing_after_unsubscribe_needs_a_new_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.subscribe_and_confirm("back@example.com").await;
    let one_click = app.one_click_url("back@example.com").await;
    assert_eq!(app.post(&one_click).await.status(), 200);
    assert_eq!(
        app.subscriber_status("back@example.com").await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        app.subscribe_form("back@example.com", "").await.status(),
        303
    );
    assert_eq!(
        app.subscriber_status("back@example.com").await.as_deref(),
        Some("pending")
    );
    let mails = app.sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(mails[1].subject.starts_with("Confirm your subscription"));
    let link = mails[1].link_starting(&app.url("/confirm/")).unwrap();
    assert!(app
        .post(&link)
        .await
        .text()
        .await
        .unwrap()
        .contains("You are subscribed"));
    assert_eq!(
        app.subscriber_status("back@example.com").await.as_deref(),
        Some("confirmed")
    );
    app.shutdown().await;
}

async fn expired_confirmation_link_offers_a_fresh_one(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.confirmation.token_ttl_hours = 0; // every link is expired at once
        c.confirmation.resend_interval_secs = 0;
    })
    .await;
    app.subscribe_form("late@example.com", "").await;
    let mails = app.sink.wait_for(1, Duration::from_secs(10)).await;
    let link = mails[0].link_starting(&app.url("/confirm/")).unwrap();
    let page = app.get(&link).await;
    assert_eq!(page.status(), 410);
    let body = page.text().await.unwrap();
    assert!(body.contains("This link has expired"));
    assert!(body.contains("Send me a new link"));
    let post = app.post(&link).await;
    assert_eq!(post.status(), 410, "an expired link does not confirm");
    assert_eq!(
        app.subscriber_status("late@example.com").await.as_deref(),
        Some("pending")
    );
    let resend = app.post(&format!("{link}/resend")).await;
    assert_eq!(resend.status(), 200);
    assert!(resend.text().await.unwrap().contains("Check your inbox"));
    let mails = app.sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails[1].envelope_to, "late@example.com");
    assert_ne!(mails[1].link_starting(&app.url("/confirm/")).unwrap(), link);
    app.shutdown().await;
}

async fn unknown_and_forged_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.subscribe_and_confirm("victim@example.com").await;
    let genuine = app.one_click_url("victim@example.com").await;
    let token = genuine.rsplit('/').next().unwrap().to_string();
    let (id, mac) = token.split_once('.').unwrap();
    let forged_mac = format!("{id}.{}", "A".repeat(mac.len()));
    let other_id = format!("{}.{mac}", id.parse::<i64>().unwrap() + 1);
    for bad in [
        forged_mac.as_str(),
        other_id.as_str(),
        "1",
        "abc.def",
        "",
        "%00",
        "1.%0d%0a",
    ] {
        let url = app.url(&format!("/unsubscribe/one-click/{bad}"));
        let resp = app.post(&url).await;
        assert!(
            resp.status() == 404 || resp.status() == 405,
            "{bad:?} → {}",
            resp.status()
        );
        let page = app.get(&app.url(&format!("/unsubscribe/{bad}"))).await;
        assert!(page.status() == 404, "{bad:?} → {}", page.status());
    }
    assert_eq!(
        app.subscriber_status("victim@example.com").await.as_deref(),
        Some("confirmed")
    );
    for bad in [
        "nonexistent",
        "A".repeat(43).as_str(),
        "x%0d%0aSet-Cookie:a=b",
    ] {
        let resp = app.get(&app.url(&format!("/confirm/{bad}"))).await;
        assert_eq!(resp.status(), 404, "{bad:?}");
        assert!(resp
            .text()
            .await
            .unwrap()
            .contains("This link is not valid"));
        assert_eq!(
            app.post(&app.url(&format!("/confirm/{bad}")))
                .await
                .status(),
            404
        );
    }
    app.shutdown().await;
}

async fn signup_succeeds_while_smtp_is_down_and_mail_goes_out_when_it_returns(backend: Backend) {
    // Nothing listens on the port yet: every send is refused.
    let port = common::free_port();
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        // The only server is left alone this long after failing to connect.
        c.delivery.cooldown_secs = 1;
    })
    .await;
    let started = std::time::Instant::now();
    let resp = app.subscribe_form("patient@example.com", "").await;
    assert_eq!(resp.status(), 303);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the request does not wait on SMTP"
    );
    // The worker tries and fails (connection refused), and the server cools down.
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The server comes back on that port.
    let sink = SmtpSink::start_on(port, &[], None);
    let mails = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mails[0].envelope_to, "patient@example.com");
    assert!(mails[0].link_starting(&app.url("/confirm/")).is_some());
    app.shutdown().await;
}

async fn concurrent_signups_never_fail_with_database_locked(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = app.client.clone();
        let url = app.url("/subscribe");
        // Half of them hit the same ten addresses, to contend on one row.
        let email = if i % 2 == 0 {
            format!("same{}@example.com", i % 10)
        } else {
            format!("user{i}@example.com")
        };
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("email={}", common::urlencode(&email)))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().expect("request completed"));
    }
    assert!(statuses.iter().all(|s| *s == 303), "{statuses:?}");
    // 100 distinct addresses plus same0, same2, same4, same6 and same8.
    assert_eq!(subscriber_count(&app).await, 105);
    // Signups arriving together are written in batches, ten for one address
    // among them: still exactly one confirmation mail per address.
    let mails = app.sink.wait_for(105, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), 105);
    let unique: std::collections::HashSet<_> = mails.iter().map(|m| &m.envelope_to).collect();
    assert_eq!(unique.len(), 105);
    app.shutdown().await;
}

both_backends!(
    bad_signups_get_a_clear_answer_and_store_nothing,
    signup_answers_the_same_for_new_pending_and_confirmed_addresses,
    pending_resubscribe_resends_but_at_most_once_per_interval,
    resubscribing_after_unsubscribe_needs_a_new_confirmation,
    expired_confirmation_link_offers_a_fresh_one,
    unknown_and_forged_tokens_are_refused,
    signup_succeeds_while_smtp_is_down_and_mail_goes_out_when_it_returns,
    concurrent_signups_never_fail_with_database_locked,
);

async fn a_batch_of_signups_creates_each_new_address_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.subscribe_form("known@example.com", "").await;
    let signup = |email: &str, token: &str| herald::store::NewSignup {
        email: email.into(),
        email_key: herald::domain::email_key(email),
        mailbox_key: herald::domain::SubscriberEmail::parse(email)
            .unwrap()
            .mailbox_key(),
        resend_interval_ms: 600_000,
        name: None,
        source: "test".into(),
        consent_ip: None,
        consent_user_agent: None,
        now: herald::domain::time::now_millis(),
        confirmation: herald::store::PendingConfirmation {
            token_hash: token.into(),
            expires_at: herald::domain::time::now_millis() + 3_600_000,
            subject: "Confirm".into(),
            confirm_url: format!("http://127.0.0.1/confirm/{token}"),
        },
    };
    let batch = [
        signup("new1@example.com", "t1"),
        signup("known@example.com", "t2"),
        signup("new2@example.com", "t3"),
        // The same address twice in one batch: the first one wins.
        signup("new1@example.com", "t4"),
        // … and the same address up to case: one subscriber too.
        signup("NEW2@example.com", "t5"),
    ];
    let created = app.store.insert_new_signups(&batch).await.unwrap();
    assert_eq!(created, vec![true, false, true, false, false]);
    assert_eq!(subscriber_count(&app).await, 3);
    app.shutdown().await;
}

both_backends!(a_batch_of_signups_creates_each_new_address_once);

/// The outbox keeps a confirmation's link and renders the mail when it is
/// sent; a confirmation queued by an older herald kept its rendered bodies
/// and goes out as it was. Once sent, neither link nor bodies stay behind
/// (they carry the raw token).
async fn queued_confirmations_old_and_new_go_out_and_leave_no_token(backend: Backend) {
    use herald::store::Store;
    let app = spawn_app(backend).await;
    let insert_old = "INSERT INTO outbox (kind, recipient, subject, body_html, body_text, status, next_attempt_at, created_at)
        VALUES ('confirmation', 'older@example.com', 'Confirm (queued before the upgrade)',
                '<p>Old <a href=\"https://news.example.com/confirm/OLDTOKEN\">link</a></p>', 'Old link: https://news.example.com/confirm/OLDTOKEN', 'queued', 0, 0)";
    match &app.store {
        Store::Sqlite(pool) => sqlx::query(insert_old).execute(pool).await.map(drop),
        Store::Postgres(pool) => sqlx::query(insert_old).execute(pool).await.map(drop),
    }
    .unwrap();
    app.subscribe_form("newer@example.com", "").await;
    let mails = app.sink.wait_for(2, Duration::from_secs(10)).await;
    let old = &app.sink.messages_to("older@example.com")[0];
    assert_eq!(old.subject, "Confirm (queued before the upgrade)");
    assert!(old
        .text
        .contains("https://news.example.com/confirm/OLDTOKEN"));
    let new = &app.sink.messages_to("newer@example.com")[0];
    let link = new.link_starting(&app.url("/confirm/")).unwrap();
    assert!(new.text.contains(&link), "the text body has the link too");
    assert!(
        new.html.contains("48 hours"),
        "rendered with the configured lifetime"
    );
    assert_eq!(mails.len(), 2);
    // Recorded as sent shortly after the sink has the message.
    let leftover = "SELECT COUNT(*) FROM outbox WHERE status <> 'sent' OR confirm_url IS NOT NULL OR body_html IS NOT NULL OR body_text IS NOT NULL";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = match &app.store {
            Store::Sqlite(pool) => sqlx::query_scalar(leftover).fetch_one(pool).await,
            Store::Postgres(pool) => sqlx::query_scalar(leftover).fetch_one(pool).await,
        }
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} outbox rows still hold a token or are unsent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The link still works: it was the only copy of the token.
    let resp = app.post(&link).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.subscriber_status("newer@example.com").await.as_deref(),
        Some("confirmed")
    );
    app.shutdown().await;
}

both_backends!(queued_confirmations_old_and_new_go_out_and_leave_no_token);
