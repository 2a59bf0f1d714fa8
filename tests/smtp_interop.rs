//! Delivery to SMTP servers with quirks: Postfix's smtp-sink without
//! 8BITMIME (-8) or refusing the sender or the message (-f), Python's stock
//! smtpd (503 to a second EHLO), and a relay that cannot be reached. A
//! relay's quirk must never be counted against a subscriber, and what keeps
//! mail from going out must show where the operator looks: the digest API,
//! `herald digest status` and the API's health report (never the public
//! /health).

mod common;

use common::python_smtp::PythonSmtp;
use common::{spawn_app_role, Backend, SmtpSink, TestApp};
use herald::startup::Role;
use std::time::Duration;

const ARTICLE: &str = "<p>Le Café Ünïcode: ça marche, naïve façade — 10 €.</p>";

async fn app_with_digest(
    backend: Backend,
    sink: SmtpSink,
    recipients: &[&str],
    tweak: impl FnOnce(&mut herald::config::Config),
) -> (TestApp, i64) {
    let app = spawn_app_role(backend, sink, Role::Web, tweak).await;
    app.import_confirmed(recipients).await;
    app.add_article("Crème brûlée", "https://news.example.com/story/", ARTICLE)
        .await;
    let id = app.send_digest_now().await;
    (app, id)
}

/// `herald digest status ID` as an operator runs it, in its own process.
fn digest_status_cli(app: &TestApp, id: i64) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HERALD_DATABASE_URL",
            app.config.database_url.clone().expect("database URL"),
        )
        .env("HERALD_DATA_DIR", &app.config.data_dir)
        .env("HERALD_LOG", "warn")
        .current_dir(&app.config.data_dir)
        .args(["digest", "status", &id.to_string()])
        .output()
        .expect("run herald digest status");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The health report with its details: the operator's `GET /api/health`.
async fn health(app: &TestApp) -> serde_json::Value {
    let resp = app
        .api(reqwest::Method::GET, "/api/health")
        .send()
        .await
        .expect("GET /api/health");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("health JSON")
}

/// What anyone on the internet gets from `GET /health`, as text.
async fn public_health(app: &TestApp) -> String {
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("health text")
}

async fn a_relay_without_8bitmime_gets_quoted_printable_and_nobody_bounces(backend: Backend) {
    // smtp-sink -8 does not announce 8BITMIME. With bounce_threshold 1, a
    // single copy counted as a bounce would mark its subscriber bounced.
    let recipients = ["ann@example.com", "bob@example.com"];
    let (app, id) = app_with_digest(backend, SmtpSink::start(&["-8"]), &recipients, |c| {
        c.delivery.bounce_threshold = 1;
    })
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 2, "{status}");
    for email in recipients {
        assert_eq!(
            app.subscriber_status(email).await.as_deref(),
            Some("confirmed")
        );
        let got = app.sink.messages_to(email);
        assert_eq!(got.len(), 1, "{email}");
        let m = &got[0];
        // What went over the wire is 7bit: every octet ASCII, both parts
        // quoted-printable.
        assert!(m.raw.is_ascii(), "{}", m.raw);
        assert_eq!(
            m.raw
                .matches("Content-Transfer-Encoding: quoted-printable")
                .count(),
            2,
            "{}",
            m.raw
        );
        assert!(!m.raw.contains("Content-Transfer-Encoding: 8bit"));
        // Decoded, the bodies are intact, the subscriber's own links in.
        assert!(m.text.contains("Le Café Ünïcode: ça marche"), "{}", m.text);
        assert!(m.html.contains("naïve façade — 10 €"), "{}", m.html);
        let one_click = app.one_click_url(email).await;
        let page = one_click.replace("/one-click/", "/");
        assert!(m.text.contains(&page), "{page} in {}", m.text);
        assert!(m.html.contains(&page), "{page} in {}", m.html);
        assert_eq!(
            m.header("List-Unsubscribe").unwrap_or_default(),
            format!(
                "<{one_click}>, <mailto:news@herald.test?subject=unsubscribe%20{}>",
                one_click.rsplit('/').next().unwrap_or_default()
            )
        );
        // The link works.
        let resp = app.get(&page).await;
        assert_eq!(resp.status(), 200);
    }
    app.shutdown().await;
}

async fn a_relay_refusing_the_sender_or_the_message_never_bounces_a_subscriber(backend: Backend) {
    // Tried: smtp-sink -f MAIL (5xx to MAIL FROM: the relay does not accept
    // herald's sender) and -f . (5xx at the end of data: the message).
    // Neither is about the recipient.
    for refused in ["MAIL", "."] {
        let (app, id) = app_with_digest(
            backend,
            SmtpSink::start(&["-f", refused]),
            &["ann@example.com"],
            |c| {
                c.delivery.bounce_threshold = 1;
                c.delivery.max_attempts = 2;
                c.delivery.retry_base_ms = 50;
            },
        )
        .await;
        app.start_worker();
        let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
        assert_eq!(status["counts"]["failed"], 1, "{refused}: {status}");
        let error = status["failures"][0]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("permanent error (5"),
            "{refused}: the reply is kept: {error}"
        );
        assert_eq!(
            app.subscriber_status("ann@example.com").await.as_deref(),
            Some("confirmed"),
            "{refused}"
        );
        app.shutdown().await;
    }
}

/// A 5xx at RCPT that is about the relay, not the recipient, never bounces
/// anybody. Tried: a relay that refuses to relay ("554 5.7.1 Relay access
/// denied", the first mistake with a new relay), one that wants AUTH ("530
/// 5.7.0"), and smtp-sink's -f RCPT ("500 5.3.0 Error: command failed").
async fn a_relay_refusing_every_recipient_for_its_own_reasons_bounces_nobody(backend: Backend) {
    use common::faulty_smtp::{start_with, Faults};
    for reply in [
        Some("554 5.7.1 <ann@example.com>: Relay access denied"),
        Some("530 5.7.0 Authentication required"),
        None,
    ] {
        let relay = match reply {
            Some(reply) => Some(
                start_with(Faults {
                    every_rcpt_reply: Some(reply),
                    ..Faults::default()
                })
                .await,
            ),
            None => None,
        };
        let sink = match reply {
            Some(_) => SmtpSink::start(&[]),
            None => SmtpSink::start(&["-f", "RCPT"]),
        };
        let relay_port = relay.as_ref().map(|r| r.port);
        let (app, id) = app_with_digest(
            backend,
            sink,
            &["ann@example.com", "bob@example.com"],
            |c| {
                if let Some(port) = relay_port {
                    c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
                }
                c.delivery.bounce_threshold = 1;
                c.delivery.max_attempts = 2;
                c.delivery.retry_base_ms = 50;
            },
        )
        .await;
        app.start_worker();
        let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
        assert_eq!(status["counts"]["failed"], 2, "{reply:?}: {status}");
        for who in ["ann@example.com", "bob@example.com"] {
            assert_eq!(
                app.subscriber_status(who).await.as_deref(),
                Some("confirmed"),
                "{reply:?}: {who} was counted as bounced"
            );
        }
        app.shutdown().await;
    }
}

async fn a_server_that_refuses_a_second_ehlo_still_gets_mail(backend: Backend) {
    let server = PythonSmtp::start_stock();
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let (app, id) = app_with_digest(
        backend,
        SmtpSink::start(&[]),
        &["ann@example.com", "bob@example.com"],
        |c| c.smtp_url = Some(url),
    )
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 2, "{status}");
    let got = server.wait_for(2, Duration::from_secs(5)).await;
    let mut to: Vec<&str> = got.iter().map(|m| m.envelope_to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, ["ann@example.com", "bob@example.com"]);
    for m in &got {
        assert!(m.text.contains("Le Café Ünïcode"), "{}", m.text);
        assert!(m.text.contains("/unsubscribe/"), "{}", m.text);
    }
    assert!(app.sink.messages().is_empty());
    assert_eq!(health(&app).await["status"], "ok");
    app.shutdown().await;
}

async fn a_failing_relay_is_shown_to_the_operator_and_not_on_public_health(backend: Backend) {
    // Nothing listens on this port: every connection is refused.
    let port = common::free_port();
    let (app, id) = app_with_digest(backend, SmtpSink::start(&[]), &["ann@example.com"], |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.delivery.failures_before_cooldown = 1;
        c.delivery.cooldown_secs = 1;
    })
    .await;
    assert_eq!(health(&app).await["status"], "ok", "nothing tried yet");
    app.start_worker();
    let status = app
        .wait_digest(id, Duration::from_secs(20), "last error", |s| {
            s["last_error"].is_string()
        })
        .await;
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("failing"),
        "{error}"
    );
    assert_eq!(status["delivery"][0]["state"], "failing", "{status}");
    // Failing for longer than its cool-down: degraded, with the error.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let h = loop {
        let h = health(&app).await;
        if h["status"] == "degraded" {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(h["delivery"][0]["state"], "failing", "{h}");
    assert!(
        h["delivery"][0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("127.0.0.1:{port}")),
        "{h}"
    );
    // The public /health says degraded, and nothing of the relay: not its
    // address, not its error text.
    let public = public_health(&app).await;
    let public_json: serde_json::Value = serde_json::from_str(&public).unwrap();
    assert_eq!(public_json["status"], "degraded", "{public}");
    let error = h["delivery"][0]["last_error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{h}");
    for secret in [
        format!("127.0.0.1:{port}"),
        port.to_string(),
        error.to_string(),
        "failing".to_string(),
    ] {
        assert!(!public.contains(&secret), "{secret:?} on /health: {public}");
    }
    let unauthorized = app.get("/api/health").await;
    assert_eq!(unauthorized.status(), 401, "the details need the API token");
    let printed = digest_status_cli(&app, id);
    assert!(printed.contains("last error: SMTP server"), "{printed}");
    assert!(printed.contains(&format!("127.0.0.1:{port}")), "{printed}");
    assert_eq!(
        app.subscriber_status("ann@example.com").await.as_deref(),
        Some("confirmed")
    );
    app.shutdown().await;
}

both_backends!(
    a_relay_without_8bitmime_gets_quoted_printable_and_nobody_bounces,
    a_relay_refusing_the_sender_or_the_message_never_bounces_a_subscriber,
    a_relay_refusing_every_recipient_for_its_own_reasons_bounces_nobody,
    a_server_that_refuses_a_second_ehlo_still_gets_mail,
    a_failing_relay_is_shown_to_the_operator_and_not_on_public_health,
);
