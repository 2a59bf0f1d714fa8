//! Mail that comes back, through `herald inbound` (stdin) and `POST
//! /inbound`: a delivery status notification bounces exactly the subscriber
//! it names, an ARF complaint unsubscribes exactly one, a mail to the
//! List-Unsubscribe mailto address unsubscribes exactly one. Inputs tried:
//! a permanent DSN (to the VERP return path, headers returned), a transient
//! DSN, the same DSN twice, an ARF abuse report (message/rfc822 returned),
//! a mailto unsubscribe (token in the address and the subject); and forged
//! ones: a DSN naming another recipient than its token's subscriber, a DSN
//! with no token, an ARF report with a forged token, a mailto with a forged
//! token, a reply quoting an unsubscribe link, POST /inbound without or with
//! a wrong token, a message over the size limit.

mod common;

use common::feed_server::HERALD;
use common::{Backend, Received, TestApp};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const INBOUND_TOKEN: &str = "inbound-test-token";

async fn app(backend: Backend) -> TestApp {
    common::spawn_app_with(backend, common::SmtpSink::start(&[]), |c| {
        c.inbound.token = Some(INBOUND_TOKEN.into());
        c.inbound.unsubscribe_address = Some("unsubscribe@herald.test".into());
        c.inbound.bounce_address = Some("bounces@herald.test".into());
        c.delivery.bounce_threshold = 1;
    })
    .await
}

/// `herald inbound` with `raw` on stdin, as a Postfix pipe runs it.
fn pipe(app: &TestApp, raw: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(HERALD)
        .env_clear()
        .env(
            "HERALD_DATABASE_URL",
            app.config.database_url.as_deref().unwrap(),
        )
        .env("HERALD_DATA_DIR", dir.path())
        .env("HERALD_INBOUND__BOUNCE_ADDRESS", "bounces@herald.test")
        .env(
            "HERALD_INBOUND__UNSUBSCRIBE_ADDRESS",
            "unsubscribe@herald.test",
        )
        .env("HERALD_DELIVERY__BOUNCE_THRESHOLD", "1")
        .env("HERALD_LOG", "warn")
        .arg("inbound")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herald inbound");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "herald inbound failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn post(app: &TestApp, raw: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/inbound")).body(raw.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn message_of(copy: &Received) -> String {
    copy.as_sent()
}

/// The header block of a received copy.
fn headers_of(copy: &Received) -> String {
    let message = message_of(copy);
    let end = message.find("\r\n\r\n").unwrap_or(message.len());
    message[..end].to_string()
}

fn dsn(to: &str, recipient: &str, action: &str, status: &str, returned: &str, id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{id}@mx.example.net>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"RPT\"\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         Arrival-Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx.example.com\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected\r\n\
         \r\n\
         --RPT\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         {returned}\r\n\
         \r\n\
         --RPT--\r\n"
    )
}

fn arf(recipient: &str, returned_message: &str, id: &str) -> String {
    format!(
        "From: fbl@isp.example\r\n\
         To: abuse@herald.test\r\n\
         Subject: FW: Today's news\r\n\
         Message-ID: <{id}@isp.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"ARF\"\r\n\
         \r\n\
         --ARF\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an email abuse report for an email message received from IP 127.0.0.1.\r\n\
         --ARF\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: SomeGenerator/1.0\r\n\
         Version: 1\r\n\
         Original-Mail-From: <bounces@herald.test>\r\n\
         Original-Rcpt-To: <{recipient}>\r\n\
         Arrival-Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\
         \r\n\
         --ARF\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Disposition: inline\r\n\
         \r\n\
         {returned_message}\r\n\
         --ARF--\r\n"
    )
}

async fn statuses(app: &TestApp, emails: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for e in emails {
        out.push(app.subscriber_status(e).await.unwrap_or_default());
    }
    out
}

async fn reports_change_exactly_the_subscriber_they_name(backend: Backend) {
    let app = app(backend).await;
    let readers = [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ];
    app.import_confirmed(&readers).await;
    app.add_article("Today's news", "https://news.example.com/a", "<p>News.</p>")
        .await;
    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    let copy = |email: &str| {
        let copies = app.sink.messages_to(email);
        assert_eq!(copies.len(), 1, "{email}");
        copies.into_iter().next().unwrap()
    };
    let (alice, bob, carol, dave) = (
        copy(readers[0]),
        copy(readers[1]),
        copy(readers[2]),
        copy(readers[3]),
    );

    // Each copy's envelope sender and mailto carry the subscriber's token.
    let alice_return_path = alice.envelope_from();
    assert!(
        alice_return_path.starts_with("bounces+") && alice_return_path.ends_with("@herald.test"),
        "VERP return path: {alice_return_path}"
    );
    let carol_unsubscribe = carol.header("List-Unsubscribe").unwrap();
    let mailto = carol_unsubscribe
        .split("<mailto:")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap()
        .to_string();
    let (carol_address, carol_subject) = mailto.split_once("?subject=").unwrap();
    assert!(carol_address.starts_with("unsubscribe+"), "{mailto}");
    let carol_subject = carol_subject.replace("%20", " ");
    let dave_token = dave
        .header("List-Unsubscribe")
        .unwrap()
        .split("/unsubscribe/one-click/")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap()
        .to_string();
    let (dave_id, _) = dave_token.split_once('.').unwrap();

    // --- forgeries first: nothing changes ---
    let forged = [
        // A DSN naming dave, carrying alice's returned headers.
        dsn("bounces@herald.test", readers[3], "failed", "5.1.1", &headers_of(&alice), "f1"),
        // A DSN naming dave, no token at all.
        dsn("bounces@herald.test", readers[3], "failed", "5.1.1", "Subject: hi", "f2"),
        // A complaint about dave with a token that does not verify.
        arf(
            readers[3],
            &format!("List-Unsubscribe: <https://x.example/unsubscribe/one-click/{dave_id}.AAAAAAAAAAAAAAAAAAAAAA>\r\nSubject: x\r\n\r\nbody"),
            "f3",
        ),
        // An unsubscribe mail with a forged token for dave.
        format!("From: x@evil.example\r\nTo: unsubscribe@herald.test\r\nSubject: unsubscribe {dave_id}.BBBBBBBBBBBBBBBBBBBBBB\r\n\r\n"),
        // A reply quoting dave's unsubscribe link is not an unsubscribe.
        format!("From: {}\r\nTo: news@herald.test\r\nSubject: Re: Today's news\r\n\r\n> {}/unsubscribe/{dave_token}\r\n", readers[3], app.base_url),
    ];
    for raw in &forged {
        let handled = pipe(&app, raw);
        assert_eq!(handled["outcome"], "ignored", "{handled}\n{raw}");
    }
    assert_eq!(post(&app, &forged[0], None).await.status(), 401);
    assert_eq!(post(&app, &forged[0], Some("wrong")).await.status(), 401);
    let unsubscribe_mail = format!(
        "From: {}\r\nTo: <{carol_address}>\r\nSubject: {carol_subject}\r\nMessage-ID: <u1@example.com>\r\n\r\n",
        readers[2]
    );
    // Without the inbound token even a genuine message changes nothing.
    assert_eq!(post(&app, &unsubscribe_mail, None).await.status(), 401);
    let too_big = format!(
        "Subject: x\r\n\r\n{}",
        "a".repeat(herald::inbound::MAX_MESSAGE_BYTES)
    );
    assert_eq!(
        post(&app, &too_big, Some(INBOUND_TOKEN)).await.status(),
        413
    );
    assert_eq!(
        statuses(&app, &readers).await,
        ["confirmed"; 4],
        "a forged report changed a subscriber"
    );

    // --- a transient DSN is recorded, nothing else ---
    let delayed = dsn(&alice_return_path, readers[0], "delayed", "4.4.1", "", "d1");
    assert_eq!(pipe(&app, &delayed)["outcome"], "soft_bounce");
    assert_eq!(
        app.subscriber_status(readers[0]).await.unwrap(),
        "confirmed"
    );

    // --- genuine reports ---
    let bounce = dsn(
        &alice_return_path,
        readers[0],
        "failed",
        "5.1.1",
        &headers_of(&alice),
        "b1",
    );
    let handled = pipe(&app, &bounce);
    assert_eq!(handled["outcome"], "bounce", "{handled}");
    // The same report again (an MTA retrying the pipe) counts once.
    assert_eq!(pipe(&app, &bounce)["outcome"], "duplicate");

    let complaint = arf(readers[1], &message_of(&bob), "c1");
    let response = post(&app, &complaint, Some(INBOUND_TOKEN)).await;
    assert_eq!(response.status(), 200);
    let handled: serde_json::Value = response.json().await.unwrap();
    assert_eq!(handled["outcome"], "complaint", "{handled}");

    let handled = pipe(&app, &unsubscribe_mail);
    assert_eq!(handled["outcome"], "unsubscribe", "{handled}");

    assert_eq!(
        statuses(&app, &readers).await,
        ["bounced", "unsubscribed", "unsubscribed", "confirmed"]
    );

    // The operator sees them: per digest, in the event list, by status.
    let status = app.digest_status(digest).await;
    assert_eq!(status["reports"]["bounces"], 1, "{status}");
    assert_eq!(status["reports"]["soft_bounces"], 1, "{status}");
    assert_eq!(status["reports"]["complaints"], 1, "{status}");
    assert_eq!(status["reports"]["unsubscribes_by_mail"], 1, "{status}");
    let events = app.api_get("/api/subscriber-events?kind=complaint").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["events"][0]["email"], readers[1]);
    assert_eq!(events["events"][0]["source"], "arf");
    let bounced = app.api_get("/api/subscribers?status=bounced").await;
    assert_eq!(bounced["subscribers"][0]["email"], readers[0], "{bounced}");
    let out = common::feed_server::cli(
        &app,
        tempfile::tempdir().unwrap().path(),
        &["subscribers", "list", "--status", "bounced"],
    );
    let text = common::feed_server::text(&out);
    assert!(
        text.contains(readers[0]) && !text.contains(readers[3]),
        "{text}"
    );
    let out = common::feed_server::cli(
        &app,
        tempfile::tempdir().unwrap().path(),
        &["digest", "status", &digest.to_string()],
    );
    let text = common::feed_server::text(&out);
    assert!(
        text.contains("bounces 1, soft bounces 1, complaints 1, unsubscribes by mail 1"),
        "{text}"
    );
    app.shutdown().await;
}

both_backends!(reports_change_exactly_the_subscriber_they_name);

/// Without `inbound.token`, `/inbound` is off.
#[tokio::test]
async fn inbound_over_http_is_off_without_its_token() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let response = post(&app, "Subject: x\r\n\r\n", Some("anything")).await;
    assert_eq!(response.status(), 404);
    app.shutdown().await;
}

/// `herald inbound` with `raw` on stdin: its exit code, stdout and stderr.
fn pipe_raw(app: &TestApp, raw: &[u8]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(HERALD)
        .env_clear()
        .env(
            "HERALD_DATABASE_URL",
            app.config.database_url.as_deref().unwrap(),
        )
        .env("HERALD_DATA_DIR", dir.path())
        .env("HERALD_INBOUND__BOUNCE_ADDRESS", "bounces@herald.test")
        .env(
            "HERALD_INBOUND__UNSUBSCRIBE_ADDRESS",
            "unsubscribe@herald.test",
        )
        .env("HERALD_DELIVERY__BOUNCE_THRESHOLD", "1")
        .env("HERALD_LOG", "warn")
        .current_dir(dir.path())
        .arg("inbound")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herald inbound");
    let mut stdin = child.stdin.take().unwrap();
    let raw = raw.to_vec();
    // Written from a thread: herald may answer before it read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&raw);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `levels` plain (not transfer-encoded) message/rfc822 parts, one inside
/// the other, to the VERP address of `to`.
fn nested_message(to: &str, levels: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: deep\r\nMessage-ID: <deep-{levels}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
    )
    .into_bytes();
    for _ in 0..levels {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"Subject: the end\r\n\r\nhello\r\n");
    raw
}

/// Inputs tried: 100,000 and 300,000 nested message/rfc822 parts (3.2 MB
/// and 9.6 MB, under the 10 MiB limit), through `herald inbound` as a
/// child process and through POST /inbound on the running server. Before
/// the bound, mail-parser overflowed the stack: the child aborted (SIGABRT)
/// and the server process died with it.
async fn a_deeply_nested_message_is_unparseable_and_ends_no_process(backend: Backend) {
    let app = app(backend).await;
    let reader = "deep@example.com";
    app.import_confirmed(&[reader]).await;
    for levels in [100_000, 300_000] {
        let raw = nested_message("bounces@herald.test", levels);
        let (code, stdout, stderr) = pipe_raw(&app, &raw);
        assert_eq!(code, Some(0), "{levels} levels: {stdout}{stderr}");
        let handled: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(handled["outcome"], "unparseable", "{handled}");

        let response = app
            .client
            .post(app.url("/inbound"))
            .bearer_auth(INBOUND_TOKEN)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{levels} levels");
        let handled: serde_json::Value = response.json().await.unwrap();
        assert_eq!(handled["outcome"], "unparseable", "{handled}");
        // The server still answers.
        let health = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    assert_eq!(app.subscriber_status(reader).await.unwrap(), "confirmed");
    app.shutdown().await;
}

both_backends!(a_deeply_nested_message_is_unparseable_and_ends_no_process);

fn fixture(name: &str, to: &str, recipient: &str, id: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/inbound/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("{{TO}}", to)
        .replace("{{RECIPIENT}}", recipient)
        .replace("{{ID}}", id)
        .replace('\n', "\r\n")
}

/// The bounce address (`bounces+TOKEN@`, the VERP return path) is not the
/// unsubscribe channel. Inputs tried, each to a reader's own VERP address:
/// permanent failures as qmail, Exim and Postfix (without DSN) write them
/// (each bounces its reader); their delay warnings, an RFC 3834
/// auto-reply, out-of-office replies with `X-Autoreply` and with
/// `Precedence: auto_reply`, and a plain reply (none unsubscribes or
/// bounces anybody). Before, each of the latter unsubscribed its reader.
async fn the_bounce_address_acts_only_on_permanent_failures(backend: Backend) {
    let app = app(backend).await;
    let readers = [
        "qmail@example.com",
        "exim@example.com",
        "postfix@example.com",
        "away@example.com",
    ];
    app.import_confirmed(&readers).await;
    app.add_article("Today's news", "https://news.example.com/a", "<p>News.</p>")
        .await;
    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    let return_path = |email: &str| {
        let copies = app.sink.messages_to(email);
        assert_eq!(copies.len(), 1, "{email}");
        copies[0].envelope_from()
    };

    // --- what must change nothing: delays, auto-replies, a reply ---
    let away = readers[3];
    let to = return_path(away);
    let not_failures = [
        ("qmail-delay.eml", "soft_bounce"),
        ("exim-delay.eml", "soft_bounce"),
        ("postfix-delay.eml", "soft_bounce"),
        ("auto-reply-rfc3834.eml", "auto_reply"),
        ("out-of-office-x-autoreply.eml", "auto_reply"),
        ("out-of-office-precedence.eml", "auto_reply"),
    ];
    for (i, (name, outcome)) in not_failures.iter().enumerate() {
        let raw = fixture(name, &to, away, &format!("n{i}"));
        let handled = if i % 2 == 0 {
            pipe(&app, &raw)
        } else {
            post(&app, &raw, Some(INBOUND_TOKEN))
                .await
                .json()
                .await
                .unwrap()
        };
        assert_eq!(handled["outcome"], *outcome, "{name}: {handled}");
        assert_eq!(
            app.subscriber_status(away).await.unwrap(),
            "confirmed",
            "{name} changed the reader"
        );
    }
    let reply = format!(
        "From: {away}\r\nTo: <{to}>\r\nSubject: Re: Today's news\r\nMessage-ID: <reply-1@example.com>\r\n\r\nThanks!\r\n"
    );
    assert_eq!(pipe(&app, &reply)["outcome"], "ignored");
    assert_eq!(app.subscriber_status(away).await.unwrap(), "confirmed");

    // --- permanent failures bounce exactly their reader ---
    for (i, (name, reader)) in [
        ("qmail-permanent.eml", readers[0]),
        ("exim-permanent.eml", readers[1]),
        ("postfix-permanent.eml", readers[2]),
    ]
    .into_iter()
    .enumerate()
    {
        let raw = fixture(name, &return_path(reader), reader, &format!("p{i}"));
        let handled = pipe(&app, &raw);
        assert_eq!(handled["outcome"], "bounce", "{name}: {handled}");
        assert_eq!(
            app.subscriber_status(reader).await.unwrap(),
            "bounced",
            "{name}"
        );
        // The same notice to another reader's address names the wrong
        // recipient: nothing happens.
        let raw = fixture(name, &to, reader, &format!("x{i}"));
        assert_eq!(pipe(&app, &raw)["outcome"], "ignored", "{name}");
    }
    assert_eq!(
        statuses(&app, &readers).await,
        ["bounced", "bounced", "bounced", "confirmed"]
    );
    let status = app.digest_status(digest).await;
    assert_eq!(status["reports"]["soft_bounces"], 3, "{status}");
    assert_eq!(status["reports"]["unsubscribes_by_mail"], 0, "{status}");
    app.shutdown().await;
}

both_backends!(the_bounce_address_acts_only_on_permanent_failures);

/// Input tried: a DSN whose Diagnostic-Code carries `ESC[2J` (clear the
/// screen), `ESC]0;pwned BEL` (retitle the terminal), a C1 CSI and a line
/// break; then `herald subscribers events` as the operator runs it.
async fn terminal_escapes_in_a_report_never_reach_the_operator(backend: Backend) {
    let app = app(backend).await;
    let reader = "escape@example.com";
    app.import_confirmed(&[reader]).await;
    app.add_article("Today's news", "https://news.example.com/a", "<p>News.</p>")
        .await;
    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;
    let to = app.sink.messages_to(reader)[0].envelope_from();
    let raw = dsn(&to, reader, "failed", "5.1.1", "", "esc1").replace(
        "Recipient address rejected",
        "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m rejected",
    );
    assert_eq!(pipe(&app, &raw)["outcome"], "bounce");
    let out = common::feed_server::cli(
        &app,
        tempfile::tempdir().unwrap().path(),
        &["subscribers", "events"],
    );
    let text = common::feed_server::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(reader) && text.contains("pwned"), "{text}");
    assert!(
        !text.contains(['\u{1b}', '\u{7}', '\u{9b}']),
        "control characters reached the terminal: {text:?}"
    );
    // Stored without them too (the API shows the same text).
    let events = app.api_get("/api/subscriber-events").await;
    let detail = events["events"][0]["detail"].as_str().unwrap().to_string();
    assert!(!detail.chars().any(char::is_control), "{detail:?}");
    app.shutdown().await;
}

both_backends!(terminal_escapes_in_a_report_never_reach_the_operator);
