//! TLS and credentials toward the relay, against aiosmtpd on loopback with
//! a certificate from a private CA made by the test: the CA is trusted only
//! through `ca_file=`, the password never goes out before STARTTLS, and a
//! refused password or an untrusted certificate stops the server (it is not
//! retried) and says so in the digest API, `herald digest status` and the API's health report.

mod common;

use common::python_smtp::{ca_param, url, AioOptions, PythonSmtp, TestCertificates};
use common::{spawn_app_role, Backend, SmtpSink, TestApp};
use herald::startup::Role;
use std::time::Duration;

const USER: &str = "herald";
const PASSWORD: &str = "s3cret-pa55";

async fn app_sending_to(backend: Backend, smtp_url: String) -> (TestApp, i64) {
    let app = spawn_app_role(backend, SmtpSink::start(&[]), Role::Web, |c| {
        c.smtp_url = Some(smtp_url);
        c.delivery.failures_before_cooldown = 1;
        c.delivery.cooldown_secs = 1;
        c.delivery.bounce_threshold = 1;
    })
    .await;
    app.import_confirmed(&["ann@example.com"]).await;
    app.add_article("Story", "https://news.example.com/story/", "<p>Text.</p>")
        .await;
    let id = app.send_digest_now().await;
    (app, id)
}

fn tls_relay(certs: &TestCertificates, o: AioOptions) -> PythonSmtp {
    PythonSmtp::start_aiosmtpd(&AioOptions {
        tls: Some((certs.cert.clone(), certs.key.clone())),
        auth: Some((USER, PASSWORD)),
        ..o
    })
}

/// The health report with its details: the operator's `GET /api/health`
/// (the public /health says only ok, degraded or unavailable).
async fn health(app: &TestApp) -> serde_json::Value {
    let resp = app
        .api(reqwest::Method::GET, "/api/health")
        .send()
        .await
        .expect("GET /api/health");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("health JSON")
}

/// Waits until the health report shows the relay stopped and returns its entry.
async fn stopped_in_health(app: &TestApp) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(app).await;
        if h["status"] == "degraded" {
            assert_eq!(h["delivery"][0]["state"], "stopped", "{h}");
            return h["delivery"][0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_private_ca_relay_is_trusted_through_the_configured_ca_file(backend: Backend) {
    // Tried: STARTTLS required by the relay, and implicit TLS (smtps://),
    // each with AUTH, the relay's certificate signed by the test's own CA.
    let certs = TestCertificates::make();
    for implicit_tls in [false, true] {
        let relay = tls_relay(
            &certs,
            AioOptions {
                implicit_tls,
                require_starttls: !implicit_tls,
                ..AioOptions::default()
            },
        );
        let (scheme, tls) = if implicit_tls {
            ("smtps://", "")
        } else {
            ("smtp://", "tls=required&")
        };
        let (app, id) = app_sending_to(
            backend,
            url(
                &format!("{scheme}{USER}:{PASSWORD}@"),
                relay.port,
                &format!("{tls}{}", ca_param(&certs.ca)),
            ),
        )
        .await;
        app.start_worker();
        let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
        assert_eq!(
            status["counts"]["sent"], 1,
            "implicit {implicit_tls}: {status}"
        );
        let got = relay.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(got[0].envelope_to, "ann@example.com");
        assert!(got[0].text.contains("/unsubscribe/"), "{}", got[0].text);
        assert_eq!(relay.auth_attempts().len(), 1);
        assert!(relay.auth_attempts().iter().all(|(_, tls, ok)| *tls && *ok));
        assert_eq!(health(&app).await["status"], "ok");
        app.shutdown().await;
    }
}

async fn a_relay_whose_certificate_is_not_trusted_is_stopped_and_says_so(backend: Backend) {
    // The same relay without ca_file=: its CA is neither public nor in the
    // system store. Tried with STARTTLS and with implicit TLS.
    let certs = TestCertificates::make();
    for implicit_tls in [false, true] {
        let relay = tls_relay(
            &certs,
            AioOptions {
                implicit_tls,
                require_starttls: !implicit_tls,
                ..AioOptions::default()
            },
        );
        let scheme = if implicit_tls { "smtps://" } else { "smtp://" };
        let (app, id) = app_sending_to(
            backend,
            url(&format!("{scheme}{USER}:{PASSWORD}@"), relay.port, ""),
        )
        .await;
        app.start_worker();
        let server = stopped_in_health(&app).await;
        let error = server["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("not trusted") && error.contains("ca_file"),
            "{error}"
        );
        assert!(!error.contains(PASSWORD));
        let status = app.digest_status(id).await;
        assert!(
            status["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains("not trusted"),
            "{status}"
        );
        assert_eq!(status["counts"]["failed"], 0, "{status}");
        assert!(
            relay.auth_attempts().is_empty(),
            "no password to an untrusted server"
        );
        assert!(relay.messages().is_empty());
        assert_eq!(
            app.subscriber_status("ann@example.com").await.as_deref(),
            Some("confirmed")
        );
        app.shutdown().await;
    }
}

async fn credentials_are_never_sent_before_starttls(backend: Backend) {
    let certs = TestCertificates::make();
    // A relay that offers STARTTLS and also AUTH before it; herald's URL
    // has credentials but no tls=: STARTTLS first, then AUTH.
    let relay = tls_relay(
        &certs,
        AioOptions {
            auth_before_tls: true,
            ..AioOptions::default()
        },
    );
    let (app, id) = app_sending_to(
        backend,
        url(
            &format!("smtp://{USER}:{PASSWORD}@"),
            relay.port,
            &ca_param(&certs.ca),
        ),
    )
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 1, "{status}");
    let attempts = relay.auth_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].1, "AUTH went over TLS: {attempts:?}");
    app.shutdown().await;

    // tls=opportunistic against a relay that does not offer STARTTLS (or
    // an attacker who strips it): no AUTH at all, and the operator is told.
    let plain = PythonSmtp::start_aiosmtpd(&AioOptions {
        auth: Some((USER, PASSWORD)),
        auth_before_tls: true,
        ..AioOptions::default()
    });
    let (app, id) = app_sending_to(
        backend,
        url(
            &format!("smtp://{USER}:{PASSWORD}@"),
            plain.port,
            "tls=opportunistic",
        ),
    )
    .await;
    app.start_worker();
    let server = stopped_in_health(&app).await;
    let error = server["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("STARTTLS") && error.contains("password"),
        "{error}"
    );
    assert!(
        plain.auth_attempts().is_empty(),
        "{:?}",
        plain.auth_attempts()
    );
    assert!(plain.messages().is_empty());
    let status = app.digest_status(id).await;
    assert!(status["last_error"]
        .as_str()
        .unwrap_or_default()
        .contains("STARTTLS"));
    app.shutdown().await;
}

async fn a_wrong_password_stops_the_server_and_says_so(backend: Backend) {
    let certs = TestCertificates::make();
    let relay = tls_relay(
        &certs,
        AioOptions {
            require_starttls: true,
            ..AioOptions::default()
        },
    );
    let (app, id) = app_sending_to(
        backend,
        url(
            &format!("smtp://{USER}:wrong-password@"),
            relay.port,
            &format!("tls=required&{}", ca_param(&certs.ca)),
        ),
    )
    .await;
    app.start_worker();
    let server = stopped_in_health(&app).await;
    let error = server["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused the credentials") && error.contains("535"),
        "{error}"
    );
    assert!(!error.contains("wrong-password"), "{error}");
    // Several cool-downs (1 s each) later the password was still tried once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        relay.auth_attempts().len(),
        1,
        "{:?}",
        relay.auth_attempts()
    );
    let status = app.digest_status(id).await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("refused the credentials"),
        "{status}"
    );
    assert_eq!(status["delivery"][0]["state"], "stopped");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    assert_eq!(status["counts"]["sent"], 0, "{status}");
    assert_eq!(
        app.subscriber_status("ann@example.com").await.as_deref(),
        Some("confirmed")
    );
    app.shutdown().await;
}

async fn a_stopped_relay_resumed_by_an_operator_gets_the_mail(backend: Backend) {
    let certs = TestCertificates::make();
    // The relay's account has another password than herald's configuration.
    let relay = PythonSmtp::start_aiosmtpd(&AioOptions {
        tls: Some((certs.cert.clone(), certs.key.clone())),
        auth: Some((USER, "the-relay-changed-it")),
        ..AioOptions::default()
    });
    let port = relay.port;
    let (app, id) = app_sending_to(
        backend,
        url(
            &format!("smtp://{USER}:{PASSWORD}@"),
            port,
            &ca_param(&certs.ca),
        ),
    )
    .await;
    app.start_worker();
    stopped_in_health(&app).await;
    // The relay's administrator puts herald's password back; the operator
    // sees the stopped server in the API and resumes it there.
    drop(relay);
    let relay = tls_relay(
        &certs,
        AioOptions {
            port: Some(port),
            ..AioOptions::default()
        },
    );
    let name = format!("127.0.0.1:{port}");
    let listed: serde_json::Value = app
        .api(reqwest::Method::GET, "/api/smtp-servers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["servers"][0]["server"], name.as_str(), "{listed}");
    assert_eq!(listed["servers"][0]["state"], "stopped", "{listed}");
    let resumed = app
        .api(
            reqwest::Method::POST,
            &format!("/api/smtp-servers/{name}/resume"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    // Resuming again: it is no longer stopped, so there is nothing to do.
    let again = app
        .api(
            reqwest::Method::POST,
            &format!("/api/smtp-servers/{name}/resume"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
    assert_eq!(status["counts"]["sent"], 1, "{status}");
    assert_eq!(relay.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let h = health(&app).await;
        if h["status"] == "ok" && h["delivery"][0]["state"] == "ok" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.shutdown().await;
}

both_backends!(
    a_private_ca_relay_is_trusted_through_the_configured_ca_file,
    a_relay_whose_certificate_is_not_trusted_is_stopped_and_says_so,
    credentials_are_never_sent_before_starttls,
    a_wrong_password_stops_the_server_and_says_so,
    a_stopped_relay_resumed_by_an_operator_gets_the_mail,
);
