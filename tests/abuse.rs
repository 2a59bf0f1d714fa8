//! A table of hostile inputs posted through every public route and the API:
//! each row says what was sent, the status and page text a person (or
//! script) gets back, and afterwards nothing was stored or sent that should
//! not have been. No row may ever answer 5xx.

mod common;

use common::{spawn_app_with, Backend, SmtpSink, API_TOKEN};
use std::time::Duration;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    api: bool,
    /// A bearer token other than the API's (`/inbound`).
    bearer: Option<&'static str>,
    status: u16,
    /// Text the answer must contain (page or JSON).
    says: &'static str,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: impl Into<String>,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    says: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.into(),
        content_type,
        body: body.into(),
        api: false,
        bearer: None,
        status,
        says,
    }
}

fn api(mut c: Case) -> Case {
    c.api = true;
    c
}

const INBOUND_TOKEN: &str = "abuse-inbound-token";

fn inbound(mut c: Case) -> Case {
    c.bearer = Some(INBOUND_TOKEN);
    c
}

/// A message nested `levels` deep in non-encoded message/rfc822 parts.
fn nested_message(levels: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(levels * 40 + 100);
    for _ in 0..levels {
        m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    m.extend_from_slice(b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n");
    m
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

fn cases() -> Vec<Case> {
    let mut rows = vec![
        // --- POST /subscribe: header injection, encodings, sizes, types
        case(
            "CRLF + Bcc header in the email",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[("email", "reader@example.com\r\nBcc: victim@example.com")]),
            400,
            "not allowed",
        ),
        case(
            "CRLF + Bcc header in the name",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[
                ("email", "reader@example.com"),
                ("name", "Ann\r\nBcc: victim@example.com"),
            ]),
            400,
            "not allowed",
        ),
        case(
            "encoded LF in the JSON email",
            "POST",
            "/subscribe",
            Some(JSON),
            br#"{"email":"reader@example.com\nBcc: victim@example.com"}"#.to_vec(),
            422,
            "not allowed",
        ),
        case(
            "NUL inside the address",
            "POST",
            "/subscribe",
            Some(FORM),
            b"email=reader%00@example.com".to_vec(),
            400,
            "not allowed",
        ),
        case(
            "not UTF-8",
            "POST",
            "/subscribe",
            Some(FORM),
            b"email=\xff\xfe@example.com".to_vec(),
            400,
            "not valid UTF-8",
        ),
        case(
            "64 KiB body",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[("email", &"a".repeat(64 * 1024))]),
            413,
            "too large",
        ),
        case(
            "255-character address",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[(
                "email",
                &format!("{}@{}.com", "a".repeat(64), "b".repeat(186)),
            )]),
            400,
            "too long",
        ),
        case(
            "text/plain body",
            "POST",
            "/subscribe",
            Some("text/plain"),
            b"reader@example.com".to_vec(),
            415,
            "",
        ),
        case(
            "JSON that is not an object",
            "POST",
            "/subscribe",
            Some(JSON),
            b"[\"reader@example.com\"]".to_vec(),
            400,
            "not valid JSON",
        ),
        case(
            "JSON email as a number",
            "POST",
            "/subscribe",
            Some(JSON),
            b"{\"email\": 12345}".to_vec(),
            400,
            "not valid JSON",
        ),
        case(
            "script in the name is refused or escaped, never run",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[
                ("email", "not an address"),
                ("name", "<script>alert(1)</script>"),
            ]),
            400,
            "does not look like an email address",
        ),
        // --- confirmation and unsubscribe links: forged, overlong, odd bytes
        case(
            "GET confirm with a forged token",
            "GET",
            "/confirm/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            None,
            Vec::new(),
            404,
            "not valid",
        ),
        case(
            "POST confirm with a 4,000-character token",
            "POST",
            format!("/confirm/{}", "x".repeat(4000)),
            None,
            Vec::new(),
            404,
            "not valid",
        ),
        case(
            "POST confirm with an encoded NUL and path traversal",
            "POST",
            "/confirm/..%2F..%2Fetc%2Fpasswd%00",
            None,
            Vec::new(),
            404,
            "not valid",
        ),
        case(
            "resend for a forged token",
            "POST",
            "/confirm/forged/resend",
            None,
            Vec::new(),
            404,
            "not valid",
        ),
        case(
            "unsubscribe with a forged signature",
            "POST",
            "/unsubscribe/1.deadbeef",
            None,
            Vec::new(),
            404,
            "not valid",
        ),
        case(
            "unsubscribe with an id past i64",
            "GET",
            "/unsubscribe/99999999999999999999999.abc",
            None,
            Vec::new(),
            404,
            "not valid",
        ),
        case(
            "one-click unsubscribe with a negative id",
            "POST",
            "/unsubscribe/one-click/-1.abc",
            Some(FORM),
            b"List-Unsubscribe=One-Click".to_vec(),
            404,
            "",
        ),
        // --- addresses that can never be mailed, and names that lie
        case(
            "address literal",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[("email", "user@[127.0.0.1]")]),
            400,
            "",
        ),
        case(
            "private address literal",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[("email", "user@[10.0.0.5]")]),
            400,
            "",
        ),
        case(
            "two dots in the local part",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[("email", "a..b@example.com")]),
            400,
            "",
        ),
        case(
            "local part starting with a dot",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[("email", ".a@example.com")]),
            400,
            "",
        ),
        case(
            "numeric domain",
            "POST",
            "/subscribe",
            Some(JSON),
            br#"{"email":"a@127.0.0.1"}"#.to_vec(),
            422,
            "",
        ),
        case(
            "numeric top-level label",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[("email", "a@1.2")]),
            400,
            "",
        ),
        case(
            "bidi override in the name",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[
                ("email", "reader@example.com"),
                ("name", "Ann \u{202E}gnp.exe"),
            ]),
            400,
            "",
        ),
        case(
            "line separator in the name",
            "POST",
            "/subscribe",
            Some(JSON),
            br#"{"email":"reader@example.com","name":"Ann\u2028Bcc"}"#.to_vec(),
            422,
            "",
        ),
        case(
            "a bot fills the honeypot: thanks, and nothing stored",
            "POST",
            "/subscribe",
            Some(FORM),
            form(&[
                ("email", "bot@example.com"),
                ("website", "http://spam.example"),
            ]),
            303,
            "",
        ),
        case(
            "unknown route",
            "POST",
            "/admin",
            Some(FORM),
            b"user=admin".to_vec(),
            404,
            "",
        ),
    ];
    // --- the operator API (with the token)
    rows.extend([
        api(case(
            "article with a javascript: URL",
            "POST",
            "/api/articles",
            Some(JSON),
            br#"{"title":"x","url":"javascript:alert(1)","html":"<p>x</p>"}"#.to_vec(),
            400,
            "http",
        )),
        api(case(
            "article with a data: URL",
            "POST",
            "/api/articles",
            Some(JSON),
            br#"{"title":"x","url":"data:text/html;base64,PHNjcmlwdD4=","html":"<p>x</p>"}"#
                .to_vec(),
            400,
            "http",
        )),
        api(case(
            "feed with a file: URL",
            "POST",
            "/api/feeds",
            Some(JSON),
            br#"{"url":"file:///etc/passwd"}"#.to_vec(),
            400,
            "http",
        )),
        api(case(
            "feed poll interval of u64::MAX",
            "POST",
            "/api/feeds",
            Some(JSON),
            br#"{"url":"https://news.example.com/feed","poll_interval_secs":18446744073709551615}"#
                .to_vec(),
            400,
            "604800",
        )),
        api(case(
            "feed backfill of u64::MAX",
            "POST",
            "/api/feeds",
            Some(JSON),
            br#"{"url":"https://news.example.com/feed","backfill_days":18446744073709551615}"#
                .to_vec(),
            400,
            "365",
        )),
        api(case(
            "article title of 100,000 characters",
            "POST",
            "/api/articles",
            Some(JSON),
            format!(
                r#"{{"title":"{}","url":"https://news.example.com/a","html":"<p>x</p>"}}"#,
                "t".repeat(100_000)
            )
            .into_bytes(),
            400,
            "300",
        )),
        api(case(
            "article of 2 MiB",
            "POST",
            "/api/articles",
            Some(JSON),
            format!(
                r#"{{"title":"x","url":"https://news.example.com/b","html":"{}"}}"#,
                "<div>".repeat(400_000)
            )
            .into_bytes(),
            400,
            "512 KiB",
        )),
        api(case(
            "article image that is a mailto: URL",
            "POST",
            "/api/articles",
            Some(JSON),
            br#"{"title":"x","url":"https://news.example.com/c","html":"<p>x</p>","image_url":"mailto:a@example.com"}"#
                .to_vec(),
            400,
            "http",
        )),
        api(case(
            "article body that is not JSON",
            "POST",
            "/api/articles",
            Some(JSON),
            b"{\"title\":".to_vec(),
            400,
            "",
        )),
        // --- issue 16: mail, webhooks and articles that broke herald before
        inbound(case(
            "300,000 nested message/rfc822 parts (overflowed the stack)",
            "POST",
            "/inbound",
            Some("message/rfc822"),
            nested_message(300_000),
            200,
            "unparseable",
        )),
        inbound(case(
            "an out-of-office reply to the bounce address",
            "POST",
            "/inbound",
            Some("message/rfc822"),
            b"From: reader@example.com\r\nTo: bounces+1.AAAAAAAAAAAAAAAAAAAAAA@herald.test\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nI am away.\r\n".to_vec(),
            200,
            "auto_reply",
        )),
        case(
            "a Postmark webhook without its credentials, body promised",
            "POST",
            "/webhooks/postmark",
            Some(JSON),
            br#"{"RecordType":"Bounce","Email":"reader@example.com"}"#.to_vec(),
            401,
            "",
        ),
        api(case(
            "article link, image and author carrying herald's old placeholders",
            "POST",
            "/api/articles",
            Some(JSON),
            br#"{"title":"t %%HERALD_UNSUBSCRIBE_URL%%","url":"https://evil.example/s?u=%%HERALD_UNSUBSCRIBE_URL%%","image_url":"https://evil.example/t.gif?t=%%HERALD_UNSUBSCRIBE_URL%%","author":"%%HERALD_ARCHIVE_URL%%","html":"<p>x</p>"}"#.to_vec(),
            201,
            "created",
        )),
        api(case(
            "article title with U+FFFF and an escape sequence",
            "POST",
            "/api/articles",
            Some(JSON),
            "{\"title\":\"a\u{ffff}b\\u001b[2Jc\",\"url\":\"https://news.example.com/ffff\",\"html\":\"<p>x</p>\"}".as_bytes().to_vec(),
            201,
            "created",
        )),
        api(case(
            "digest id that is not a number",
            "GET",
            "/api/digests/1%20OR%201=1",
            None,
            Vec::new(),
            400,
            "",
        )),
    ]);
    rows
}

async fn hostile_inputs_get_clear_answers_and_nothing_is_stored_or_sent(backend: Backend) {
    let app = spawn_app_with(backend, SmtpSink::start(&[]), |c| {
        c.inbound.token = Some(INBOUND_TOKEN.into());
        c.webhooks.postmark.username = Some("postmark".into());
        c.webhooks.postmark.password = Some("a long random password".into());
    })
    .await;
    let mut failures = Vec::new();
    for c in cases() {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = app
            .client
            .request(method, app.url(&c.path))
            .header("connection", "close");
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if c.api {
            req = req.bearer_auth(API_TOKEN);
        }
        if let Some(token) = c.bearer {
            req = req.bearer_auth(token);
        }
        let r = req.body(c.body.clone()).send().await;
        let Ok(r) = r else {
            failures.push(format!("{}: no answer: {:?}", c.what, r.err()));
            continue;
        };
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if text.contains("<script>alert(1)") {
            failures.push(format!("{}: the answer echoes a script unescaped", c.what));
        }
        if status >= 500 {
            failures.push(format!("{}: answered {status}", c.what));
        }
        if status != c.status {
            failures.push(format!(
                "{}: expected {}, got {status}: {}",
                c.what,
                c.status,
                &text[..text.len().min(300)]
            ));
        } else if !text.contains(c.says) {
            failures.push(format!(
                "{}: answer lacks {:?}: {}",
                c.what,
                c.says,
                &text[..text.len().min(300)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        app.store
            .list_subscribers(None, 100)
            .await
            .unwrap()
            .is_empty(),
        "a refused signup was stored"
    );
    let articles = app
        .api(reqwest::Method::GET, "/api/articles")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!articles.contains("javascript:"), "{articles}");
    assert!(
        !articles.contains('\u{ffff}') && !articles.contains("\\uffff"),
        "{articles}"
    );
    assert!(
        !articles.contains('\u{1b}') && !articles.contains("\\u001b"),
        "{articles}"
    );
    assert!(!articles.contains("data:text"), "{articles}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.sink.messages().is_empty(), "mail was sent");
    app.shutdown().await;
}

both_backends!(hostile_inputs_get_clear_answers_and_nothing_is_stored_or_sent);
