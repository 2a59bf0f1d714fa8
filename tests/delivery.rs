//! Delivery against a real SMTP server that misbehaves on purpose:
//! smtp-sink's -f (5xx), -r (4xx) and -q (drop the connection) options.

mod common;

use common::{spawn_app_role, Backend, SmtpSink, TestApp};
use herald::startup::Role;
use std::time::Duration;

async fn app_with_digest(
    backend: Backend,
    sink: SmtpSink,
    recipients: &[&str],
    tweak: impl FnOnce(&mut herald::config::Config),
) -> (TestApp, i64) {
    let app = spawn_app_role(backend, sink, Role::Web, tweak).await;
    app.import_confirmed(recipients).await;
    app.add_article("Story", "https://news.example.com/story/", "<p>Text.</p>")
        .await;
    let id = app.send_digest_now().await;
    (app, id)
}

async fn permanent_rejection_fails_the_recipient_with_the_server_reply(backend: Backend) {
    // "550 5.1.1 … User unknown" for both: a reply about the recipient.
    let server = common::faulty_smtp::start(0, "@example.com").await;
    let (app, id) = app_with_digest(
        backend,
        SmtpSink::start(&[]),
        &["a@example.com", "b@example.com"],
        |c| {
            c.smtp_url = Some(format!("smtp://127.0.0.1:{}", server.port));
            c.delivery.bounce_threshold = 1;
        },
    )
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["failed"], 2, "{status}");
    assert_eq!(status["counts"]["sent"], 0);
    let failures = status["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    for f in failures {
        let error = f["error"].as_str().unwrap();
        assert!(
            error.contains("550") || error.contains("permanent"),
            "server reply kept: {error}"
        );
    }
    // One hard failure with bounce_threshold = 1: the address is marked bounced.
    assert_eq!(
        app.subscriber_status("a@example.com").await.as_deref(),
        Some("bounced")
    );
    assert!(app.sink.messages().is_empty());
    app.shutdown().await;
}

/// Issue 17, item 14: "550 5.1.1 User unknown" at RCPT is beyond doubt:
/// the address is bounced at once (bounce_threshold left at its default of
/// 3) and the bounce is in the digest's report and the subscriber's events,
/// as a DSN's would be. The other reader gets the digest.
async fn an_unknown_recipient_is_bounced_at_once_and_reported(backend: Backend) {
    let server = common::faulty_smtp::start(0, "gone").await;
    let (app, id) = app_with_digest(
        backend,
        SmtpSink::start(&[]),
        &["gone@example.com", "here@example.com"],
        |c| {
            c.smtp_url = Some(format!("smtp://127.0.0.1:{}", server.port));
        },
    )
    .await;
    assert_eq!(app.config.delivery.bounce_threshold, 3);
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["failed"], 1, "{status}");
    assert_eq!(status["counts"]["sent"], 1, "{status}");
    assert_eq!(
        app.subscriber_status("gone@example.com").await.as_deref(),
        Some("bounced")
    );
    assert_eq!(
        app.subscriber_status("here@example.com").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(status["reports"]["bounces"], 1, "{status}");
    let events = app.api_get("/api/subscriber-events?kind=bounce").await;
    let events = events["events"].as_array().expect("events").clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let text = events[0].to_string();
    assert!(
        text.contains("gone@example.com") && text.contains("5.1.1"),
        "{text}"
    );
    app.shutdown().await;
}

/// Issue 17, item 14: a permanent reply that is not beyond doubt (552 5.2.2
/// mailbox full) counts towards bounce_threshold, but only in a row: a
/// delivered copy in between starts the count again. Threshold 2: fail,
/// deliver, fail leaves the reader confirmed (the old count reached 2).
async fn a_delivered_copy_resets_the_count_of_ambiguous_failures(backend: Backend) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let full = Arc::new(AtomicBool::new(true));
    let server = common::faulty_smtp::start_with(common::faulty_smtp::Faults {
        mailbox_full: Some(full.clone()),
        ..Default::default()
    })
    .await;
    let (app, first) = app_with_digest(backend, SmtpSink::start(&[]), &["full@example.com"], |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{}", server.port));
        c.delivery.bounce_threshold = 2;
    })
    .await;
    app.start_worker();
    let status = app.wait_digest_done(first, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["failed"], 1, "{status}");
    assert_eq!(
        app.subscriber_status("full@example.com").await.as_deref(),
        Some("confirmed")
    );

    full.store(false, Ordering::Relaxed);
    app.add_article("Second", "https://news.example.com/second/", "<p>Two.</p>")
        .await;
    let second = app.send_digest_now().await;
    let status = app.wait_digest_done(second, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 1, "{status}");

    full.store(true, Ordering::Relaxed);
    app.add_article("Third", "https://news.example.com/third/", "<p>Three.</p>")
        .await;
    let third = app.send_digest_now().await;
    let status = app.wait_digest_done(third, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["failed"], 1, "{status}");
    assert_eq!(
        app.subscriber_status("full@example.com").await.as_deref(),
        Some("confirmed"),
        "two failures with a delivery between are not two in a row"
    );
    app.shutdown().await;
}

async fn temporary_rejection_is_retried_until_the_server_accepts(backend: Backend) {
    let (mut app, id) = app_with_digest(
        backend,
        SmtpSink::start(&["-r", "RCPT"]),
        &["a@example.com", "b@example.com"],
        |_| {},
    )
    .await;
    app.start_worker();
    // The relay answers 4xx: the deliveries wait for a retry, with the reply kept.
    app.wait_digest(id, Duration::from_secs(10), "retry recorded", |s| {
        s["counts"]["retrying"].as_i64() == Some(2)
    })
    .await;
    // The relay recovers (same port, no fault): both go out.
    app.restart_sink(&[]);
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 2, "{status}");
    assert_eq!(app.sink.messages().len(), 2);
    app.shutdown().await;
}

async fn connection_dropped_at_end_of_data_is_retried(backend: Backend) {
    let (mut app, id) = app_with_digest(
        backend,
        SmtpSink::start(&["-q", "."]),
        &["a@example.com"],
        |_| {},
    )
    .await;
    app.start_worker();
    app.wait_digest(id, Duration::from_secs(10), "retry recorded", |s| {
        s["counts"]["retrying"].as_i64() == Some(1)
    })
    .await;
    app.restart_sink(&[]);
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 1, "{status}");
    assert!(!app.sink.messages_to("a@example.com").is_empty());
    app.shutdown().await;
}

async fn pause_stops_sending_and_resume_continues(backend: Backend) {
    let emails: Vec<String> = (0..6).map(|i| format!("r{i}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (app, id) = app_with_digest(backend, SmtpSink::start(&[]), &refs, |_| {}).await;
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.start_worker();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = app.digest_status(id).await;
    assert_eq!(status["digest"]["status"], "paused");
    assert_eq!(status["counts"]["queued"], 6, "{status}");
    assert!(app.sink.messages().is_empty(), "nothing sent while paused");
    // Pausing twice is refused with a clear answer.
    let again = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 6);
    assert_eq!(app.sink.messages().len(), 6, "each recipient exactly once");
    app.shutdown().await;
}

async fn cancel_leaves_the_rest_unsent_and_says_how_many(backend: Backend) {
    let (app, id) = app_with_digest(
        backend,
        SmtpSink::start(&[]),
        &["a@example.com", "b@example.com", "c@example.com"],
        |_| {},
    )
    .await;
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["unsent"], 3, "{body}");
    assert_eq!(body["digest"]["status"], "cancelled");
    app.start_worker();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.sink.messages().is_empty());
    let again = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    // The cancelled digest's article is free for the next digest.
    let next = app.send_digest_now().await;
    assert_ne!(next, id);
    app.shutdown().await;
}

async fn cancel_while_copies_are_in_flight_leaves_nothing_queued(backend: Backend) {
    // A slow relay (1 s before it answers DATA) and the whole list claimed:
    // after a cancel, the copies in flight finish and every other copy,
    // claimed or not, ends skipped.
    let emails: Vec<String> = (0..40).map(|i| format!("r{i}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (app, id) = app_with_digest(backend, SmtpSink::start(&["-w", "1"]), &refs, |c| {
        c.delivery.concurrency = 4;
    })
    .await;
    app.start_worker();
    app.wait_digest(id, Duration::from_secs(10), "copies in flight", |s| {
        s["counts"]["in_flight"].as_i64().unwrap_or(0) > 0
    })
    .await;
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = app
        .wait_digest(id, Duration::from_secs(10), "all settled", |s| {
            s["counts"]["in_flight"] == 0 && s["counts"]["queued"] == 0
        })
        .await;
    assert_eq!(status["digest"]["status"], "cancelled", "{status}");
    let sent = status["counts"]["sent"].as_i64().unwrap();
    let skipped = status["counts"]["skipped"].as_i64().unwrap();
    assert_eq!(sent + skipped, 40, "{status}");
    assert!(sent <= 8, "at most the copies in flight went out: {status}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.sink.messages().len() as i64, sent);
    app.shutdown().await;
}

both_backends!(
    an_unknown_recipient_is_bounced_at_once_and_reported,
    a_delivered_copy_resets_the_count_of_ambiguous_failures,
    cancel_while_copies_are_in_flight_leaves_nothing_queued,
    permanent_rejection_fails_the_recipient_with_the_server_reply,
    temporary_rejection_is_retried_until_the_server_accepts,
    connection_dropped_at_end_of_data_is_retried,
    pause_stops_sending_and_resume_continues,
    cancel_leaves_the_rest_unsent_and_says_how_many,
);

async fn random_temporary_failures_and_chosen_bounces(backend: Backend) {
    // 10% of RCPTs get 451 at random; addresses with "bounce" get 550.
    let server = common::faulty_smtp::start(10, "bounce").await;
    let mut emails: Vec<String> = (0..300).map(|i| format!("reader{i}@example.com")).collect();
    emails.extend((0..5).map(|i| format!("bounce{i}@example.com")));
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (app, id) = app_with_digest(backend, SmtpSink::start(&[]), &refs, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{}", server.port));
        c.delivery.retry_base_ms = 20;
        c.delivery.max_attempts = 30;
        c.delivery.concurrency = 8;
    })
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(60)).await;
    assert_eq!(status["counts"]["sent"], 300, "{status}");
    assert_eq!(status["counts"]["failed"], 5, "{status}");
    for f in status["failures"].as_array().unwrap() {
        assert!(f["email"].as_str().unwrap().starts_with("bounce"), "{f}");
        assert!(
            f["error"].as_str().unwrap().contains("User unknown"),
            "the server's reply is kept: {f}"
        );
    }
    // Every reader got exactly one copy.
    let accepted = server.record.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 300);
    let unique: std::collections::HashSet<_> = accepted.iter().collect();
    assert_eq!(unique.len(), 300, "nobody got two copies");
    // Each attempt was recorded: one per delivery, plus one per 451.
    let temporary = server
        .record
        .temporary_rejections
        .load(std::sync::atomic::Ordering::Relaxed) as i64;
    assert!(temporary > 0, "the server did reject some recipients");
    let attempts = app.store.delivery_attempts(id).await.unwrap();
    assert_eq!(attempts, 305 + temporary, "attempts recorded for every try");
    app.shutdown().await;
}

both_backends!(random_temporary_failures_and_chosen_bounces);

async fn pause_takes_effect_within_a_second_for_copies_already_claimed(backend: Backend) {
    // A slow relay (1 s before it answers DATA): the whole list is claimed at
    // once, but after a pause only the messages already in flight finish.
    let emails: Vec<String> = (0..24).map(|i| format!("r{i}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (app, id) = app_with_digest(backend, SmtpSink::start(&["-w", "1"]), &refs, |c| {
        c.delivery.concurrency = 4;
    })
    .await;
    app.start_worker();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.digest_status(id).await["counts"]["sent"]
        .as_i64()
        .unwrap_or(0)
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "nothing was sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let at_pause = app.sink.messages().len();
    // Within a second the in-flight messages finish and nothing new starts.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let settled = app.sink.messages().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        app.sink.messages().len(),
        settled,
        "sending stopped after the pause"
    );
    // The copies in flight at the pause finish, and so may those started
    // before the worker's view of the status refreshed (250 ms): at most
    // two rounds of `concurrency` = 4.
    assert!(
        settled - at_pause <= 2 * 4,
        "{} copies went out after the pause",
        settled - at_pause
    );
    let status = app.digest_status(id).await;
    assert_eq!(status["digest"]["status"], "paused");
    assert_eq!(status["counts"]["in_flight"], 0, "{status}");
    assert_eq!(
        status["counts"]["queued"].as_i64().unwrap() + status["counts"]["sent"].as_i64().unwrap(),
        24
    );
    // Resume continues where it stopped: everyone exactly once.
    let resp = app
        .api(reqwest::Method::POST, &format!("/api/digests/{id}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = app.wait_digest_done(id, Duration::from_secs(60)).await;
    assert_eq!(status["counts"]["sent"], 24);
    let received: std::collections::HashSet<String> = app
        .sink
        .messages()
        .into_iter()
        .map(|m| m.envelope_to)
        .collect();
    assert_eq!(received.len(), 24);
    assert_eq!(app.sink.messages().len(), 24, "no copy went out twice");
    app.shutdown().await;
}

both_backends!(pause_takes_effect_within_a_second_for_copies_already_claimed);

/// Lines that start with a dot arrive as written: herald dot-stuffs them
/// for SMTP (RFC 5321 4.5.2), and the server takes the extra dot off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_starting_with_a_dot_arrive_intact() {
    use herald::mail::pool::{SmtpPool, SmtpTarget};
    let sink = SmtpSink::start(&[]);
    let pool = SmtpPool::new(
        SmtpTarget::parse(&sink.url()).unwrap(),
        1,
        Duration::from_secs(5),
    );
    let envelope = lettre::address::Envelope::new(
        Some("news@herald.test".parse().unwrap()),
        vec!["reader@example.com".parse().unwrap()],
    )
    .unwrap();
    let body = ".first line\r\n..two dots\r\n.\r\nmiddle . dot\r\n. \r\nlast é\r\n";
    let message = format!(
        "From: news@herald.test\r\nTo: reader@example.com\r\nSubject: dots\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
    );
    let reply = pool.send(&envelope, message.as_bytes()).await.unwrap();
    assert!(reply.starts_with("250"), "{reply}");
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].envelope_to, "reader@example.com");
    assert!(
        got[0]
            .raw
            .replace("\r\n", "\n")
            .contains(&body.replace("\r\n", "\n")),
        "{}",
        got[0].raw
    );
}
