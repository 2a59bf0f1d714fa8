//! TLS and credentials toward the relay, against aiosmtpd on loopback with
//! a certificate from a private CA made by the test: the CA is trusted only
//! through `ca_file=`, the password never goes out before STARTTLS, and a
//! refused password or an untrusted certificate stops the server (it is not
//! retried) and says so in the digest API, `herald digest status` and the API's health report.
//! A relay's self-signed certificate made with `openssl req -x509` is
//! trusted when pinned (`tls_pin=`) or given as `ca_file=`, and `herald smtp
//! check` names each TLS problem with what to do about it.

mod common;

use common::python_smtp::{
    ca_param, sha256_fingerprint, url, AioOptions, PythonSmtp, SelfSigned, TestCertificates,
};
use common::{spawn_app_role, Backend, SmtpSink, TestApp};
use herald::startup::Role;
use std::path::Path;
use std::process::Command;
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
    let said: serde_json::Value = resumed.json().await.unwrap();
    assert!(
        said["configuration"]
            .as_str()
            .is_some_and(|c| c.starts_with("not re-read") && c.contains("restarted")),
        "{said}"
    );
    let unknown = app
        .api(reqwest::Method::POST, "/api/smtp-servers/nosuch/resume")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
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

fn param(name: &str, file: &Path) -> String {
    format!("{name}={}", common::urlencode(&file.display().to_string()))
}

/// A relay with AUTH whose TLS certificate and key are `cert`, `key`.
fn relay_with(cert: &Path, key: &Path, implicit_tls: bool) -> PythonSmtp {
    PythonSmtp::start_aiosmtpd(&AioOptions {
        tls: Some((cert.to_path_buf(), key.to_path_buf())),
        auth: Some((USER, PASSWORD)),
        implicit_tls,
        require_starttls: !implicit_tls,
        ..AioOptions::default()
    })
}

fn relay_url(relay: &PythonSmtp, implicit_tls: bool, query: &str) -> String {
    if implicit_tls {
        url(&format!("smtps://{USER}:{PASSWORD}@"), relay.port, query)
    } else {
        let query = if query.is_empty() {
            "tls=required".to_string()
        } else {
            format!("tls=required&{query}")
        };
        url(&format!("smtp://{USER}:{PASSWORD}@"), relay.port, &query)
    }
}

/// Issue 17, item 12: the relay's certificate made with `openssl req
/// -x509` (CA:TRUE, no 127.0.0.1 in it) was refused as "CaUsedAsEndEntity"
/// even with `ca_file=` naming it. Pinned with `tls_pin=` (STARTTLS and
/// implicit TLS) or given as `ca_file=`, the digest goes through.
async fn a_self_signed_relay_certificate_from_openssl_req_x509_is_trusted_when_given(
    backend: Backend,
) {
    let relay_cert = SelfSigned::make();
    for (implicit_tls, how) in [(false, "ca_file"), (false, "tls_pin"), (true, "tls_pin")] {
        let relay = relay_with(&relay_cert.cert, &relay_cert.key, implicit_tls);
        let (app, id) = app_sending_to(
            backend,
            relay_url(&relay, implicit_tls, &param(how, &relay_cert.cert)),
        )
        .await;
        app.start_worker();
        let status = app.wait_digest_done(id, Duration::from_secs(20)).await;
        assert_eq!(
            status["counts"]["sent"], 1,
            "{how}, implicit {implicit_tls}: {status}"
        );
        assert_eq!(relay.wait_for(1, Duration::from_secs(5)).await.len(), 1);
        assert!(relay.auth_attempts().iter().all(|(_, tls, ok)| *tls && *ok));
        app.shutdown().await;
    }
}

/// A pin trusts that certificate only: a relay presenting another one
/// (even another self-signed one) is stopped before AUTH, and the error
/// names the certificate it presented and where the pin is.
async fn a_relay_presenting_another_certificate_than_the_pinned_one_is_stopped(backend: Backend) {
    let pinned = SelfSigned::make();
    let presented = SelfSigned::make();
    let fingerprint = sha256_fingerprint(&presented.cert);
    for implicit_tls in [false, true] {
        let relay = relay_with(&presented.cert, &presented.key, implicit_tls);
        let (app, id) = app_sending_to(
            backend,
            relay_url(&relay, implicit_tls, &param("tls_pin", &pinned.cert)),
        )
        .await;
        app.start_worker();
        let server = stopped_in_health(&app).await;
        let error = server["last_error"].as_str().unwrap_or_default();
        for e in [
            "not trusted",
            "is not the pinned one",
            fingerprint.as_str(),
            &format!("tls_pin={}", pinned.cert.display()),
        ] {
            assert!(
                error.contains(e),
                "implicit {implicit_tls}: lacks {e:?}: {error}"
            );
        }
        assert!(!error.contains(PASSWORD));
        assert!(relay.auth_attempts().is_empty(), "no password to it");
        assert!(relay.messages().is_empty());
        assert_eq!(app.digest_status(id).await["counts"]["failed"], 0);
        app.shutdown().await;
    }
}

/// `herald smtp check` with `smtp_url`, run as the operator runs it.
fn smtp_check(smtp_url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATA_DIR", dir.path())
        .env("HERALD_LOG", "warn")
        .env("HERALD_SMTP_URL", smtp_url)
        .env("HERALD_DELIVERY__SMTP_TIMEOUT_SECS", "5")
        .current_dir(dir.path())
        .args(["smtp", "check"])
        .output()
        .expect("run herald smtp check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Each TLS problem herald can meet toward a relay gets its own hint
/// naming what to do, through the real binary: not a CA herald trusts, a
/// self-signed CA:TRUE certificate, the wrong name, an expired
/// certificate, another certificate
/// than the pinned one, no STARTTLS offered, implicit TLS to a STARTTLS
/// port. Before, every certificate problem said "give its CA with
/// ca_file=…", and there was no command to try a relay without sending.
#[test]
fn smtp_check_names_each_tls_problem_and_what_to_do() {
    let private_ca = TestCertificates::make();
    let other_name = TestCertificates::make_for("DNS:relay.test");
    let self_signed = SelfSigned::make();
    let another = SelfSigned::make();
    let plain = PythonSmtp::start_aiosmtpd(&AioOptions {
        auth: Some((USER, PASSWORD)),
        ..AioOptions::default()
    });
    let private_ca_relay = relay_with(&private_ca.cert, &private_ca.key, false);
    let expired_relay = relay_with(&private_ca.expired(), &private_ca.key, false);
    let other_name_relay = relay_with(&other_name.cert, &other_name.key, false);
    let self_signed_relay = relay_with(&self_signed.cert, &self_signed.key, false);
    let self_signed_implicit = relay_with(&self_signed.cert, &self_signed.key, true);
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "a private CA not given",
            relay_url(&private_ca_relay, false, ""),
            vec![
                "not signed by a CA herald trusts".into(),
                "give the CA that signed it with ca_file=/path/ca.pem".into(),
                "tls_pin=/path/relay.pem".into(),
            ],
        ),
        (
            "a self-signed CA:TRUE certificate not given",
            relay_url(&self_signed_relay, false, ""),
            vec![
                "self-signed".into(),
                "`openssl req -x509`".into(),
                "pin the relay's own certificate with tls_pin=/path/relay.pem".into(),
                format!(
                    "openssl s_client -connect 127.0.0.1:{} -starttls smtp",
                    self_signed_relay.port
                ),
            ],
        ),
        (
            "a certificate for another name",
            relay_url(&other_name_relay, false, &ca_param(&other_name.ca)),
            vec![
                "relay.test".into(),
                "not for 127.0.0.1".into(),
                "write a name the certificate holds as the host".into(),
            ],
        ),
        (
            "an expired certificate",
            relay_url(&expired_relay, false, &ca_param(&private_ca.ca)),
            vec![
                "it expired at 2020-01-02T00:00:00".into(),
                "renew the relay's certificate".into(),
            ],
        ),
        (
            "another certificate than the pinned one",
            relay_url(
                &self_signed_implicit,
                true,
                &param("tls_pin", &another.cert),
            ),
            vec![
                "is not the pinned one".into(),
                sha256_fingerprint(&self_signed.cert),
                format!("put the new one in tls_pin={}", another.cert.display()),
            ],
        ),
        (
            "no STARTTLS offered",
            relay_url(&plain, false, ""),
            vec![
                "does not offer STARTTLS".into(),
                "enable STARTTLS on the relay, or write smtps://".into(),
            ],
        ),
        (
            "implicit TLS to a STARTTLS port",
            relay_url(&private_ca_relay, true, &ca_param(&private_ca.ca)),
            vec![
                "TLS handshake with".into(),
                format!(
                    "write smtp://127.0.0.1:{}?tls=required",
                    private_ca_relay.port
                ),
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (what, smtp_url, expect) in &cases {
        let (ok, text) = smtp_check(smtp_url);
        if ok {
            wrong.push(format!(
                "{what}: herald smtp check succeeded:
{text}"
            ));
        }
        for e in expect {
            if !text.contains(e.as_str()) {
                wrong.push(format!(
                    "{what}: lacks {e:?}:
{text}"
                ));
            }
        }
        for f in [PASSWORD, "CaUsedAsEndEntity", "opening herald's database"] {
            if text.contains(f) {
                wrong.push(format!(
                    "{what}: says {f:?}:
{text}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // The same relays, configured right: ok, and nothing was sent.
    for smtp_url in [
        relay_url(
            &self_signed_relay,
            false,
            &param("tls_pin", &self_signed.cert),
        ),
        relay_url(
            &self_signed_implicit,
            true,
            &param("ca_file", &self_signed.cert),
        ),
        relay_url(&private_ca_relay, false, &ca_param(&private_ca.ca)),
    ] {
        let (ok, text) = smtp_check(&smtp_url);
        assert!(ok, "{smtp_url}: {text}");
        assert!(
            text.contains(": ok (connected, TLS, AUTH accepted"),
            "{text}"
        );
    }
    assert!(self_signed_relay.messages().is_empty());
}

both_backends!(
    a_private_ca_relay_is_trusted_through_the_configured_ca_file,
    a_relay_whose_certificate_is_not_trusted_is_stopped_and_says_so,
    credentials_are_never_sent_before_starttls,
    a_wrong_password_stops_the_server_and_says_so,
    a_stopped_relay_resumed_by_an_operator_gets_the_mail,
    a_self_signed_relay_certificate_from_openssl_req_x509_is_trusted_when_given,
    a_relay_presenting_another_certificate_than_the_pinned_one_is_stopped,
);
