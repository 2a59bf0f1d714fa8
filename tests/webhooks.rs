//! Relay webhooks (`POST /webhooks/ses`, `/webhooks/sendgrid`,
//! `/webhooks/postmark`): each provider's documented payload, signed or
//! authenticated the way the provider does it, changes exactly the
//! subscribers it names, once; anything forged changes nobody.
//!
//! Inputs tried. Genuine: an SES permanent bounce (SNS SignatureVersion 2)
//! whose mail also went to three other subscribers, the same notification
//! twice, an SES complaint (SignatureVersion 1), an SES event-publishing
//! transient bounce; a SendGrid batch with processed, deferred, delivered,
//! open, click, bounce, blocked, dropped ("Bounced Address" and
//! "Unsubscribed Address"), spamreport and unsubscribe events plus a
//! non-subscriber and an unparseable address, and the same batch again; a
//! Postmark hard bounce, spam complaint, transient bounce, delivery record,
//! and the hard bounce again. Forged: an SNS message with no signature, a
//! garbage signature, its Message or Subject changed after signing, its
//! SignatureVersion changed or unknown, signed by a key other than the
//! pinned certificate's, from a topic outside the allow-list, with a
//! SigningCertURL that is not Amazon's (not fetched), a subscription
//! confirmation whose SubscribeURL is not Amazon's (not visited); SendGrid
//! posts without headers, with a signature by another key, with the body
//! or the timestamp changed after signing, with a stale or a future
//! timestamp, with a signature that is not base64; Postmark posts without
//! credentials, with a wrong password, a wrong user, a bearer token.
//! Refused without auth questions: unconfigured providers (404), malformed
//! JSON (400), bodies over 1 MiB (413), and settings that cannot work
//! (herald does not start), SES without `topic_arns` among them. Also: a
//! signed SNS bounce from a foreign topic, timestamped 2019, two hours old
//! or ahead, with its Subject shifted into its MessageId, with a
//! SigningCertURL on S3 (`sns.s3.amazonaws.com`) or a SubscribeURL on an S3
//! bucket; the answers for a subscriber and a stranger compared byte for
//! byte; requests refused from their headers before any body is sent; 100
//! slow 1 MiB bodies against the real `herald serve`, its RSS read from
//! /proc.

mod common;

use base64::Engine;
use common::{Backend, TestApp};
use herald::config::Config;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:herald-bounces";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem";
const POSTMARK_USER: &str = "postmark";
const POSTMARK_PASSWORD: &str = "a long random password";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs openssl with `input` on stdin and returns its stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs (scripts/test.sh installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An RSA key with a self-signed certificate, as SNS signs with.
struct RsaSigner {
    key: PathBuf,
    cert: PathBuf,
}

impl RsaSigner {
    fn new(dir: &Path, name: &str) -> Self {
        let key = dir.join(format!("{name}.key"));
        let cert = dir.join(format!("{name}.pem"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=sns.amazonaws.com",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
            b"",
        );
        Self { key, cert }
    }

    fn sign(&self, digest: &str, data: &[u8]) -> String {
        b64(&openssl(
            &["dgst", digest, "-sign", self.key.to_str().unwrap()],
            data,
        ))
    }
}

/// A P-256 key, as SendGrid signs with.
struct EcSigner {
    key: PathBuf,
}

impl EcSigner {
    fn new(dir: &Path, name: &str) -> Self {
        let key = dir.join(format!("{name}.ec"));
        openssl(
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                key.to_str().unwrap(),
            ],
            b"",
        );
        Self { key }
    }

    /// base64 SubjectPublicKeyInfo, as SendGrid shows its verification key.
    fn public_key(&self) -> String {
        b64(&openssl(
            &[
                "ec",
                "-in",
                self.key.to_str().unwrap(),
                "-pubout",
                "-outform",
                "DER",
            ],
            b"",
        ))
    }

    fn sign(&self, data: &[u8]) -> String {
        b64(&openssl(
            &["dgst", "-sha256", "-sign", self.key.to_str().unwrap()],
            data,
        ))
    }
}

/// An SNS message before signing, with the fields AWS documents.
#[derive(Clone)]
struct Sns {
    kind: &'static str,
    message_id: String,
    message: String,
    subject: Option<String>,
    topic_arn: String,
    subscribe_url: Option<String>,
    cert_url: String,
    version: &'static str,
    /// RFC 3339, as SNS writes it; now unless a test says otherwise.
    timestamp: String,
}

/// `secs` since the epoch as SNS writes a Timestamp.
fn sns_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Sns {
    fn notification(message_id: &str, message: &str) -> Self {
        Self {
            kind: "Notification",
            message_id: message_id.into(),
            message: message.into(),
            subject: None,
            topic_arn: TOPIC.into(),
            subscribe_url: None,
            cert_url: CERT_URL.into(),
            version: "2",
            timestamp: sns_time(now_secs() as i64),
        }
    }

    fn confirmation(kind: &'static str, subscribe_url: &str) -> Self {
        Self {
            kind,
            message_id: "165545c9-2a5c-472c-8df2-7ff2be2b3b1b".into(),
            message: format!("You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
            subject: None,
            topic_arn: TOPIC.into(),
            subscribe_url: Some(subscribe_url.into()),
            cert_url: CERT_URL.into(),
            version: "2",
            timestamp: sns_time(now_secs() as i64),
        }
    }

    const TOKEN: &'static str = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736";

    /// The string to sign, written here from AWS's description.
    fn canonical(&self) -> String {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        if self.kind == "Notification" {
            if let Some(subject) = &self.subject {
                fields.push(("Subject", subject));
            }
            fields.push(("Timestamp", &self.timestamp));
        } else {
            fields.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap()));
            fields.push(("Timestamp", &self.timestamp));
            fields.push(("Token", Self::TOKEN));
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", self.kind));
        fields.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect()
    }

    /// The envelope as SNS POSTs it, signed by `signer`.
    fn signed_by(&self, signer: &RsaSigner) -> serde_json::Value {
        let digest = if self.version == "1" {
            "-sha1"
        } else {
            "-sha256"
        };
        let signature = signer.sign(digest, self.canonical().as_bytes());
        self.envelope(Some(&signature))
    }

    fn envelope(&self, signature: Option<&str>) -> serde_json::Value {
        let mut e = serde_json::json!({
            "Type": self.kind,
            "MessageId": self.message_id,
            "TopicArn": self.topic_arn,
            "Message": self.message,
            "Timestamp": self.timestamp,
            "SignatureVersion": self.version,
            "SigningCertURL": self.cert_url,
        });
        if let Some(signature) = signature {
            e["Signature"] = signature.into();
        }
        if let Some(subject) = &self.subject {
            e["Subject"] = subject.as_str().into();
        }
        if self.kind == "Notification" {
            e["UnsubscribeURL"] = format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC}:c9135db0-26c4-47ec-8998-413945fb5a96").into();
        } else {
            e["SubscribeURL"] = self.subscribe_url.clone().unwrap().into();
            e["Token"] = Self::TOKEN.into();
        }
        e
    }
}

async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    common::spawn_app_with(backend, common::SmtpSink::start(&[]), |c| {
        c.delivery.bounce_threshold = 1;
        tweak(c);
    })
    .await
}

async fn post(app: &TestApp, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", "text/plain; charset=UTF-8")
        .body(body)
        .send()
        .await
        .expect("POST webhook")
}

/// `envelope` as SNS posts it, with its type and topic in headers too.
async fn post_sns(app: &TestApp, envelope: &serde_json::Value) -> reqwest::Response {
    app.client
        .post(app.url("/webhooks/ses"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header(
            "x-amz-sns-message-type",
            envelope["Type"].as_str().unwrap_or_default(),
        )
        .header(
            "x-amz-sns-topic-arn",
            envelope["TopicArn"].as_str().unwrap_or_default(),
        )
        .body(envelope.to_string())
        .send()
        .await
        .expect("POST /webhooks/ses")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn post_sendgrid(
    app: &TestApp,
    body: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/webhooks/sendgrid"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = timestamp {
        request = request.header("X-Twilio-Email-Event-Webhook-Timestamp", t);
    }
    if let Some(s) = signature {
        request = request.header("X-Twilio-Email-Event-Webhook-Signature", s);
    }
    request.send().await.expect("POST /webhooks/sendgrid")
}

/// `body` signed now by `signer`, as SendGrid posts it.
async fn post_sendgrid_signed(app: &TestApp, signer: &EcSigner, body: &str) -> reqwest::Response {
    let timestamp = now_secs().to_string();
    let signature = signer.sign(format!("{timestamp}{body}").as_bytes());
    post_sendgrid(app, body, Some(&timestamp), Some(&signature)).await
}

async fn post_postmark(app: &TestApp, body: &str, auth: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/webhooks/postmark"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.expect("POST /webhooks/postmark")
}

/// The answer to every proven request, whatever it changed.
async fn received(response: reqwest::Response) {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, r#"{"status":"received"}"#);
}

async fn json(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn statuses(app: &TestApp, emails: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for e in emails {
        out.push(app.subscriber_status(e).await.unwrap_or_default());
    }
    out
}

/// Every recorded event as (address, kind, source), oldest first.
async fn events(app: &TestApp) -> Vec<(String, String, String)> {
    let mut rows = app
        .store
        .recent_subscriber_events(None, 1000)
        .await
        .unwrap();
    rows.reverse();
    rows.into_iter()
        .map(|r| (r.email, r.kind, r.source))
        .collect()
}

fn event(email: &str, kind: &str, source: &str) -> (String, String, String) {
    (email.into(), kind.into(), source.into())
}

async fn hard_bounces(app: &TestApp, email: &str) -> i64 {
    on_pool!(&app.store, pool => {
        sqlx::query_scalar::<_, i64>("SELECT hard_bounces FROM subscribers WHERE email = $1")
            .bind(email)
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// A loopback listener that stands for a host herald must never contact;
/// `was_contacted` says whether anyone connected.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self(listener)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.0.local_addr().unwrap())
    }

    fn was_contacted(&self) -> bool {
        self.0.accept().is_ok()
    }
}

const SES_READERS: [&str; 4] = [
    "alice@readers.test",
    "bob@readers.test",
    "carol@readers.test",
    "dave@readers.test",
];

async fn ses_app(backend: Backend, signer: &RsaSigner) -> TestApp {
    let cert = signer.cert.clone();
    let app = spawn(backend, |c| {
        c.webhooks.ses.enabled = true;
        c.webhooks.ses.certificate_file = Some(cert);
        c.webhooks.ses.topic_arns = vec![TOPIC.into()];
    })
    .await;
    app.import_confirmed(&SES_READERS).await;
    app
}

async fn ses_bounce_marks_exactly_its_recipient_bounced_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let app = ses_app(backend, &sns).await;
    // A digest went to everyone, so the bounce is counted against it.
    app.add_article("Today's news", "https://news.example.com/a", "<p>News.</p>")
        .await;
    let digest = app.send_digest_now().await;
    app.wait_digest_done(digest, Duration::from_secs(20)).await;

    let bounce = Sns::notification(
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        &fixture("ses-bounce-permanent.json"),
    )
    .signed_by(&sns);
    received(post_sns(&app, &bounce).await).await;
    assert_eq!(
        statuses(&app, &SES_READERS).await,
        ["confirmed", "bounced", "confirmed", "confirmed"],
        "only bob, the bounced recipient, changes; the other destinations do not"
    );
    let reports = app.digest_status(digest).await["reports"].clone();
    assert_eq!(reports["bounces"], 1, "{reports}");

    // SNS retries deliver the same MessageId: it counts once.
    received(post_sns(&app, &bounce).await).await;
    assert_eq!(hard_bounces(&app, "bob@readers.test").await, 1);
    assert_eq!(
        events(&app).await,
        [event("bob@readers.test", "bounce", "ses")]
    );
}

async fn ses_complaint_unsubscribes_exactly_its_recipient(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let app = ses_app(backend, &sns).await;
    // SignatureVersion 1 (SHA1withRSA), which SNS still uses by default.
    let mut complaint = Sns::notification(
        "7a5e6a6c-0c5f-4d1b-9a39-3f6f0e4b2d11",
        &fixture("ses-complaint.json"),
    );
    complaint.version = "1";
    complaint.subject = Some("Amazon SES Email Event Notification".into());
    received(post_sns(&app, &complaint.signed_by(&sns)).await).await;
    assert_eq!(
        statuses(&app, &SES_READERS).await,
        ["confirmed", "confirmed", "unsubscribed", "confirmed"]
    );

    // Event publishing (eventType), a transient bounce: recorded only.
    let transient = Sns::notification(
        "a1f0c7f2-3f54-4c8e-9d3e-0d3c5b7e9f21",
        &fixture("ses-event-bounce-transient.json"),
    )
    .signed_by(&sns);
    received(post_sns(&app, &transient).await).await;
    assert_eq!(
        statuses(&app, &SES_READERS).await,
        ["confirmed", "confirmed", "unsubscribed", "confirmed"]
    );
    assert_eq!(hard_bounces(&app, "dave@readers.test").await, 0);
    assert_eq!(
        events(&app).await,
        [
            event("carol@readers.test", "complaint", "ses"),
            event("dave@readers.test", "soft_bounce", "ses"),
        ]
    );
}

async fn forged_sns_messages_change_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let other = RsaSigner::new(dir.path(), "other");
    let app = ses_app(backend, &sns).await;
    let bounce = Sns::notification(
        "f0000000-0000-4000-8000-000000000001",
        &fixture("ses-bounce-permanent.json"),
    );
    let genuine = bounce.signed_by(&sns);

    let mut forgeries: Vec<(&str, serde_json::Value)> = Vec::new();
    forgeries.push(("no signature", bounce.envelope(None)));
    forgeries.push((
        "garbage signature",
        bounce.envelope(Some(&b64(&[7u8; 256]))),
    ));
    forgeries.push(("not base64", bounce.envelope(Some("!!not base64!!"))));
    let mut changed = genuine.clone();
    changed["Message"] = fixture("ses-bounce-permanent.json")
        .replace(
            "\"emailAddress\": \"bob@readers.test\"",
            "\"emailAddress\": \"alice@readers.test\"",
        )
        .into();
    assert_ne!(changed["Message"], genuine["Message"]);
    forgeries.push(("Message changed after signing", changed));
    let mut with_subject = genuine.clone();
    with_subject["Subject"] = "added".into();
    forgeries.push(("Subject added after signing", with_subject));
    let mut downgraded = genuine.clone();
    downgraded["SignatureVersion"] = "1".into();
    forgeries.push(("SignatureVersion changed", downgraded));
    let mut unknown_version = genuine.clone();
    unknown_version["SignatureVersion"] = "3".into();
    forgeries.push(("SignatureVersion unknown", unknown_version));
    forgeries.push((
        "signed by a key that is not the pinned certificate's",
        bounce.signed_by(&other),
    ));
    let mut type_changed = genuine.clone();
    type_changed["Type"] = "SubscriptionConfirmation".into();
    type_changed["SubscribeURL"] =
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription".into();
    type_changed["Token"] = "t".into();
    forgeries.push(("Type changed", type_changed));
    for (what, envelope) in &forgeries {
        let response = post_sns(&app, envelope).await;
        assert_eq!(response.status(), 401, "{what}");
    }

    // Properly signed, but from a topic herald does not accept.
    let mut elsewhere = bounce.clone();
    elsewhere.topic_arn = "arn:aws:sns:us-east-1:999999999999:someone-elses".into();
    assert_eq!(
        post_sns(&app, &elsewhere.signed_by(&sns)).await.status(),
        403
    );

    // Not an SNS message at all; no SNS type header. (Too large: see
    // webhook_requests_without_credentials_are_refused_before_their_body.)
    let as_sns = |body: String| {
        app.client
            .post(app.url("/webhooks/ses"))
            .header("x-amz-sns-message-type", "Notification")
            .body(body)
            .send()
    };
    assert_eq!(as_sns("not json".into()).await.unwrap().status(), 400);
    assert_eq!(
        as_sns("{\"Type\":\"Notification\"}".into())
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post(&app, "/webhooks/ses", genuine.to_string())
            .await
            .status(),
        400,
        "without x-amz-sns-message-type"
    );

    assert_eq!(
        statuses(&app, &SES_READERS).await,
        ["confirmed"; 4],
        "a forged message changed a subscriber"
    );
    assert!(events(&app).await.is_empty());
    // The genuine message still works afterwards.
    assert_eq!(post_sns(&app, &genuine).await.status(), 200);
    assert_eq!(
        app.subscriber_status("bob@readers.test").await.unwrap(),
        "bounced"
    );
}

async fn sns_certificate_is_fetched_only_from_amazon(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let tripwire = Tripwire::new();
    // No pinned certificate: herald would fetch SigningCertURL, but only
    // from https://sns.<region>.amazonaws.com/….pem.
    let app = spawn(backend, |c| {
        c.webhooks.ses.enabled = true;
        c.webhooks.ses.topic_arns = vec![TOPIC.into()];
    })
    .await;
    app.import_confirmed(&SES_READERS).await;
    let mut bounce = Sns::notification(
        "c0000000-0000-4000-8000-000000000002",
        &fixture("ses-bounce-permanent.json"),
    );
    for url in [
        tripwire.url("/SimpleNotificationService-1.pem"),
        format!(
            "https://127.0.0.1:{}/cert.pem",
            tripwire.0.local_addr().unwrap().port()
        ),
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem".to_string(),
        // The S3 bucket named sns, and S3's accelerated endpoint for it:
        // anyone can put a certificate there.
        "https://sns.s3.amazonaws.com/SimpleNotificationService-1.pem".to_string(),
        "https://sns.s3-accelerate.amazonaws.com/SimpleNotificationService-1.pem".to_string(),
    ] {
        bounce.cert_url = url.clone();
        assert_eq!(
            post_sns(&app, &bounce.signed_by(&sns)).await.status(),
            401,
            "{url}"
        );
    }
    assert!(
        !tripwire.was_contacted(),
        "herald fetched a certificate from a URL the message chose"
    );
    assert_eq!(statuses(&app, &SES_READERS).await, ["confirmed"; 4]);
}

async fn sns_subscription_is_confirmed_only_on_amazon(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let other = RsaSigner::new(dir.path(), "other");
    let app = ses_app(backend, &sns).await;
    let tripwire = Tripwire::new();
    let port = tripwire.0.local_addr().unwrap().port();
    // Signed, from an accepted topic, but the SubscribeURL is not SNS's
    // own host: an S3 bucket named sns, another bucket, an address.
    for url in [
        format!("https://127.0.0.1:{port}/?Action=ConfirmSubscription&TopicArn=x&Token=y"),
        "https://sns.s3.amazonaws.com/?Action=ConfirmSubscription".to_string(),
        "https://attacker-bucket.s3.amazonaws.com/?Action=ConfirmSubscription".to_string(),
    ] {
        let confirmation = Sns::confirmation("SubscriptionConfirmation", &url);
        let answer = json(post_sns(&app, &confirmation.signed_by(&sns)).await, 200).await;
        assert!(
            answer["note"]
                .as_str()
                .unwrap()
                .contains("confirm it by hand"),
            "{url}: {answer}"
        );
        assert_eq!(
            post_sns(&app, &confirmation.signed_by(&other))
                .await
                .status(),
            401
        );
    }
    // Not an https URL at all: not what SNS sends.
    let plain = Sns::confirmation(
        "SubscriptionConfirmation",
        &tripwire.url("/?Action=ConfirmSubscription"),
    );
    assert_eq!(post_sns(&app, &plain.signed_by(&sns)).await.status(), 400);
    let unsubscribed = Sns::confirmation(
        "UnsubscribeConfirmation",
        &format!("https://127.0.0.1:{port}/?Action=ConfirmSubscription"),
    );
    assert_eq!(
        post_sns(&app, &unsubscribed.signed_by(&sns)).await.status(),
        200
    );
    assert!(
        !tripwire.was_contacted(),
        "herald visited a SubscribeURL that is not SNS's"
    );
    assert_eq!(statuses(&app, &SES_READERS).await, ["confirmed"; 4]);
}

const SENDGRID_READERS: [&str; 7] = [
    "ann@readers.test",
    "dan@readers.test",
    "bea@readers.test",
    "ben@readers.test",
    "dora@readers.test",
    "zoe@readers.test",
    "sam@readers.test",
];

async fn sendgrid_app(backend: Backend, signer: &EcSigner) -> TestApp {
    let key = signer.public_key();
    let app = spawn(backend, |c| {
        c.webhooks.sendgrid.public_key = Some(key);
        c.webhooks.sendgrid.max_age_secs = 600;
    })
    .await;
    app.import_confirmed(&SENDGRID_READERS).await;
    app
}

async fn sendgrid_events_change_exactly_the_recipients_they_name_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sendgrid = EcSigner::new(dir.path(), "sendgrid");
    let app = sendgrid_app(backend, &sendgrid).await;
    let batch = fixture("sendgrid-events.json");
    received(post_sendgrid_signed(&app, &sendgrid, &batch).await).await;
    assert_eq!(
        statuses(&app, &SENDGRID_READERS).await,
        [
            "confirmed",
            "confirmed",
            "bounced",
            "confirmed",
            "bounced",
            "confirmed",
            "unsubscribed"
        ]
    );
    assert_eq!(
        events(&app).await,
        [
            event("dan@readers.test", "soft_bounce", "sendgrid"),
            event("bea@readers.test", "bounce", "sendgrid"),
            event("ben@readers.test", "soft_bounce", "sendgrid"),
            event("dora@readers.test", "bounce", "sendgrid"),
            event("sam@readers.test", "complaint", "sendgrid"),
        ]
    );
    // SendGrid retries a batch it thinks failed: each event counts once.
    received(post_sendgrid_signed(&app, &sendgrid, &batch).await).await;
    assert_eq!(hard_bounces(&app, "bea@readers.test").await, 1);
    assert_eq!(events(&app).await.len(), 5);
}

async fn forged_sendgrid_posts_change_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sendgrid = EcSigner::new(dir.path(), "sendgrid");
    let other = EcSigner::new(dir.path(), "other");
    let app = sendgrid_app(backend, &sendgrid).await;
    let body = fixture("sendgrid-events.json");
    let now = now_secs().to_string();
    let signature = sendgrid.sign(format!("{now}{body}").as_bytes());

    assert_eq!(
        post_sendgrid(&app, &body, None, None).await.status(),
        401,
        "no headers"
    );
    assert_eq!(
        post_sendgrid(&app, &body, None, Some(&signature))
            .await
            .status(),
        401,
        "no timestamp"
    );
    assert_eq!(
        post_sendgrid(&app, &body, Some(&now), None).await.status(),
        401,
        "no signature"
    );
    assert_eq!(
        post_sendgrid(&app, &body, Some(&now), Some("!!"))
            .await
            .status(),
        401,
        "not base64"
    );
    let by_other = other.sign(format!("{now}{body}").as_bytes());
    assert_eq!(
        post_sendgrid(&app, &body, Some(&now), Some(&by_other))
            .await
            .status(),
        401,
        "another key"
    );
    let changed = body.replace("\"type\": \"blocked\"", "\"type\": \"bounce\"");
    assert_ne!(changed, body);
    assert_eq!(
        post_sendgrid(&app, &changed, Some(&now), Some(&signature))
            .await
            .status(),
        401,
        "body changed"
    );
    let later = (now_secs() + 1).to_string();
    assert_eq!(
        post_sendgrid(&app, &body, Some(&later), Some(&signature))
            .await
            .status(),
        401,
        "timestamp changed"
    );
    // Genuinely signed, but an hour old (a replay) or an hour ahead.
    for t in [now_secs() - 3600, now_secs() + 3600] {
        let t = t.to_string();
        let signed = sendgrid.sign(format!("{t}{body}").as_bytes());
        assert_eq!(
            post_sendgrid(&app, &body, Some(&t), Some(&signed))
                .await
                .status(),
            403,
            "timestamp {t}"
        );
    }
    // Signed, but not the JSON array SendGrid sends.
    assert_eq!(
        post_sendgrid_signed(&app, &sendgrid, "{\"event\":\"bounce\"}")
            .await
            .status(),
        400
    );
    assert_eq!(
        post_sendgrid_signed(&app, &sendgrid, "not json")
            .await
            .status(),
        400
    );

    assert_eq!(
        statuses(&app, &SENDGRID_READERS).await,
        ["confirmed"; 7],
        "a forged post changed a subscriber"
    );
    assert!(events(&app).await.is_empty());
}

const POSTMARK_READERS: [&str; 4] = [
    "paul@readers.test",
    "pia@readers.test",
    "pete@readers.test",
    "quinn@readers.test",
];

async fn postmark_app(backend: Backend) -> TestApp {
    let app = spawn(backend, |c| {
        c.webhooks.postmark.username = Some(POSTMARK_USER.into());
        c.webhooks.postmark.password = Some(POSTMARK_PASSWORD.into());
    })
    .await;
    app.import_confirmed(&POSTMARK_READERS).await;
    app
}

async fn postmark_records_change_exactly_the_recipients_they_name_once(backend: Backend) {
    let app = postmark_app(backend).await;
    let auth = Some((POSTMARK_USER, POSTMARK_PASSWORD));
    let bounce = fixture("postmark-bounce.json");
    received(post_postmark(&app, &bounce, auth).await).await;
    assert_eq!(
        statuses(&app, &POSTMARK_READERS).await,
        ["bounced", "confirmed", "confirmed", "confirmed"]
    );
    received(post_postmark(&app, &bounce, auth).await).await;
    assert_eq!(hard_bounces(&app, "paul@readers.test").await, 1);

    let complaint = fixture("postmark-spam-complaint.json");
    json(post_postmark(&app, &complaint, auth).await, 200).await;
    assert_eq!(
        statuses(&app, &POSTMARK_READERS).await,
        ["bounced", "unsubscribed", "confirmed", "confirmed"]
    );

    let transient = bounce
        .replace("\"Type\": \"HardBounce\"", "\"Type\": \"Transient\"")
        .replace("4323372036854775807", "4323372036854775808")
        .replace("paul@readers.test", "pete@readers.test");
    received(post_postmark(&app, &transient, auth).await).await;
    let delivery = r#"{"RecordType":"Delivery","ServerID":23,"MessageStream":"outbound","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Recipient":"quinn@readers.test","Tag":"welcome-email","DeliveredAt":"2019-11-05T16:33:54.9070259Z","Details":"Test delivery webhook details"}"#;
    received(post_postmark(&app, delivery, auth).await).await;
    assert_eq!(
        statuses(&app, &POSTMARK_READERS).await,
        ["bounced", "unsubscribed", "confirmed", "confirmed"]
    );

    // The Broadcast stream's suppression list. The suppression that
    // follows paul's hard bounce names the same message: the same event,
    // not a second bounce.
    let suppressed_after_bounce = fixture("postmark-subscription-change.json")
        .replace("quinn@readers.test", "paul@readers.test")
        .replace("\"ManualSuppression\"", "\"HardBounce\"")
        .replace("77a8eac79484", "77a8eac79483");
    received(post_postmark(&app, &suppressed_after_bounce, auth).await).await;
    assert_eq!(hard_bounces(&app, "paul@readers.test").await, 1);
    // A reactivation brings nobody back: that takes a new confirmation.
    let reactivated = fixture("postmark-subscription-change.json")
        .replace("quinn@readers.test", "pia@readers.test")
        .replace("\"SuppressSending\": true", "\"SuppressSending\": false");
    received(post_postmark(&app, &reactivated, auth).await).await;
    // quinn used Postmark's unsubscribe link: unsubscribed, once.
    let unsubscribe = fixture("postmark-subscription-change.json");
    received(post_postmark(&app, &unsubscribe, auth).await).await;
    received(post_postmark(&app, &unsubscribe, auth).await).await;
    // The operator suppressed pete in Postmark's UI: no message named.
    let by_operator = fixture("postmark-subscription-change.json")
        .replace("quinn@readers.test", "pete@readers.test")
        .replace("\"Origin\": \"Recipient\"", "\"Origin\": \"Customer\"")
        .replace("\"883953f4-6105-42a2-a16a-77a8eac79484\"", "null");
    received(post_postmark(&app, &by_operator, auth).await).await;
    assert_eq!(
        statuses(&app, &POSTMARK_READERS).await,
        ["bounced", "unsubscribed", "unsubscribed", "unsubscribed"]
    );
    assert_eq!(
        events(&app).await,
        [
            event("paul@readers.test", "bounce", "postmark"),
            event("pia@readers.test", "complaint", "postmark"),
            event("pete@readers.test", "soft_bounce", "postmark"),
            event("quinn@readers.test", "unsubscribe", "postmark"),
            event("pete@readers.test", "unsubscribe", "postmark"),
        ]
    );
}

async fn postmark_posts_without_the_credentials_change_nothing(backend: Backend) {
    let app = postmark_app(backend).await;
    let bounce = fixture("postmark-bounce.json");
    let response = post_postmark(&app, &bounce, None).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("www-authenticate").is_some());
    for (user, password) in [
        (POSTMARK_USER, "wrong password"),
        ("someone", POSTMARK_PASSWORD),
        (POSTMARK_USER, ""),
    ] {
        assert_eq!(
            post_postmark(&app, &bounce, Some((user, password)))
                .await
                .status(),
            401,
            "{user}:{password}"
        );
    }
    let bearer = app
        .client
        .post(app.url("/webhooks/postmark"))
        .bearer_auth(POSTMARK_PASSWORD)
        .body(bounce.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let auth = Some((POSTMARK_USER, POSTMARK_PASSWORD));
    assert_eq!(
        post_postmark(&app, "{\"RecordType\":", auth).await.status(),
        400
    );
    assert_eq!(
        statuses(&app, &POSTMARK_READERS).await,
        ["confirmed"; 4],
        "a forged post changed a subscriber"
    );
    assert!(events(&app).await.is_empty());
}

async fn webhooks_answer_404_until_configured(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    for path in ["/webhooks/ses", "/webhooks/sendgrid", "/webhooks/postmark"] {
        let answer = json(post(&app, path, "{}").await, 404).await;
        assert!(
            answer["error"].as_str().unwrap().contains("not enabled"),
            "{path}: {answer}"
        );
    }
}

async fn webhook_settings_that_cannot_work_stop_herald_at_start(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let ec = EcSigner::new(dir.path(), "ec");
    let not_a_cert = dir.path().join("not-a-cert.pem");
    std::fs::write(
        &not_a_cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let ed25519 = b64(&openssl(
        &["pkey", "-pubout", "-outform", "DER"],
        &openssl(&["genpkey", "-algorithm", "ed25519"], b""),
    ));
    type Tweak = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(&str, Tweak)> = vec![
        (
            "missing certificate file",
            Box::new(|c: &mut Config| {
                c.webhooks.ses.enabled = true;
                c.webhooks.ses.topic_arns = vec![TOPIC.into()];
                c.webhooks.ses.certificate_file = Some("/nonexistent/sns.pem".into());
            }),
        ),
        (
            "not a certificate",
            Box::new(move |c: &mut Config| {
                c.webhooks.ses.enabled = true;
                c.webhooks.ses.topic_arns = vec![TOPIC.into()];
                c.webhooks.ses.certificate_file = Some(not_a_cert.clone());
            }),
        ),
        (
            "not a P-256 key",
            Box::new(move |c: &mut Config| c.webhooks.sendgrid.public_key = Some(ed25519.clone())),
        ),
        (
            "an EC private key instead of the public key",
            Box::new({
                let private = std::fs::read_to_string(&ec.key).unwrap();
                move |c: &mut Config| c.webhooks.sendgrid.public_key = Some(private.clone())
            }),
        ),
        (
            "postmark user without password",
            Box::new(|c: &mut Config| c.webhooks.postmark.username = Some("u".into())),
        ),
        (
            "SES without topic_arns",
            Box::new(|c: &mut Config| c.webhooks.ses.enabled = true),
        ),
        (
            "a topic ARN that is not one",
            Box::new(|c: &mut Config| {
                c.webhooks.ses.enabled = true;
                c.webhooks.ses.topic_arns = vec!["herald-bounces".into()];
            }),
        ),
        (
            "a budget of unverified bodies smaller than one body",
            Box::new(|c: &mut Config| c.webhooks.unverified_body_budget_bytes = 1000),
        ),
    ];
    for (what, tweak) in cases {
        let db = common::fresh_database(backend).await;
        let mut config = common::test_config(&db.url, "smtp://127.0.0.1:1", dir.path());
        tweak(&mut config);
        let built = herald::startup::Application::build(config, herald::startup::Role::Web).await;
        let error = built
            .err()
            .unwrap_or_else(|| panic!("{what}: herald started"));
        assert!(error.to_string().contains("webhooks."), "{what}: {error}");
    }
}

/// The issue's case: SES on without `topic_arns` started and accepted any
/// topic's signed messages. Now it does not start, and with the topics set
/// a correctly signed bounce from someone else's topic changes nothing,
/// whether or not its `x-amz-sns-topic-arn` header says so. Inputs tried:
/// a foreign topic in body and header; herald's topic in the header with
/// a foreign one in the (signed) body.
async fn ses_acts_only_on_the_configured_topics(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let db = common::fresh_database(backend).await;
    let mut config = common::test_config(&db.url, "smtp://127.0.0.1:1", dir.path());
    config.webhooks.ses.enabled = true;
    config.webhooks.ses.certificate_file = Some(sns.cert.clone());
    let built = herald::startup::Application::build(config, herald::startup::Role::Web).await;
    let error = built
        .err()
        .expect("herald started with SES on and no topic_arns");
    assert!(
        error.to_string().contains("webhooks.ses.topic_arns"),
        "{error}"
    );

    let app = ses_app(backend, &sns).await;
    let mut foreign = Sns::notification(
        "0b7e6f7c-1d2e-4f30-8a41-5b6c7d8e9f00",
        &fixture("ses-bounce-permanent.json"),
    );
    foreign.topic_arn = "arn:aws:sns:us-east-1:999999999999:someone-elses".into();
    let signed = foreign.signed_by(&sns);
    assert_eq!(post_sns(&app, &signed).await.status(), 403);
    let lying_header = app
        .client
        .post(app.url("/webhooks/ses"))
        .header("x-amz-sns-message-type", "Notification")
        .header("x-amz-sns-topic-arn", TOPIC)
        .body(signed.to_string())
        .send()
        .await
        .unwrap();
    assert!(lying_header.status().is_client_error());
    assert_eq!(statuses(&app, &SES_READERS).await, ["confirmed"; 4]);
    assert!(events(&app).await.is_empty());
}

/// Inputs tried: a bounce correctly signed and timestamped 2019 (the
/// issue's replay), two hours old, two hours ahead; one 30 minutes old
/// (an SNS retry under a slow delivery policy) is still taken.
async fn ses_notification_timestamped_2019_changes_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let app = ses_app(backend, &sns).await;
    let now = now_secs() as i64;
    let mut bounce = Sns::notification(
        "5d0e3c1a-7b8f-4e2d-9c6a-1f2e3d4c5b6a",
        &fixture("ses-bounce-permanent.json"),
    );
    for timestamp in [
        "2019-06-01T12:00:00.000Z".to_string(),
        sns_time(now - 7200),
        sns_time(now + 7200),
    ] {
        bounce.timestamp = timestamp.clone();
        let answer = json(post_sns(&app, &bounce.signed_by(&sns)).await, 403).await;
        assert!(
            answer["error"].as_str().unwrap().contains("timestamp"),
            "{timestamp}: {answer}"
        );
    }
    assert_eq!(statuses(&app, &SES_READERS).await, ["confirmed"; 4]);
    assert!(events(&app).await.is_empty());
    bounce.timestamp = sns_time(now - 1800);
    received(post_sns(&app, &bounce.signed_by(&sns)).await).await;
    assert_eq!(
        statuses(&app, &SES_READERS).await,
        ["confirmed", "bounced", "confirmed", "confirmed"]
    );
}

/// The issue's message: a signed bounce with a Subject, then the same
/// signature on the message with the Subject moved into its MessageId
/// (`<id>\nSubject\nAmazon SES Email Event Notification`), which signs the
/// same string under a new de-duplication key. The bounce counts once.
async fn sns_bounce_with_its_subject_shifted_into_its_message_id_counts_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let app = ses_app(backend, &sns).await;
    let id = "9e8d7c6b-5a49-4382-a716-15f4e3d2c1b0";
    let mut bounce = Sns::notification(id, &fixture("ses-bounce-permanent.json"));
    bounce.subject = Some("Amazon SES Email Event Notification".into());
    let genuine = bounce.signed_by(&sns);
    received(post_sns(&app, &genuine).await).await;
    assert_eq!(hard_bounces(&app, "bob@readers.test").await, 1);

    let mut shifted = genuine.clone();
    shifted["MessageId"] = format!("{id}\nSubject\nAmazon SES Email Event Notification").into();
    shifted.as_object_mut().unwrap().remove("Subject");
    let answer = json(post_sns(&app, &shifted).await, 400).await;
    assert!(
        answer["error"].as_str().unwrap().contains("MessageId"),
        "{answer}"
    );
    assert_eq!(hard_bounces(&app, "bob@readers.test").await, 1);
    assert_eq!(
        events(&app).await,
        [event("bob@readers.test", "bounce", "ses")]
    );
}

/// The answer to a proven report is the same, byte for byte, whether its
/// address subscribes or not, first time or again. Inputs tried: an SES
/// bounce, a SendGrid bounce batch and a Postmark hard bounce, each for a
/// subscriber, for an address nobody subscribed with, and repeated.
async fn webhook_answers_do_not_tell_a_subscriber_from_a_stranger(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let sendgrid = EcSigner::new(dir.path(), "sendgrid");
    let sendgrid_key = sendgrid.public_key();
    let app = spawn(backend, |c| {
        c.webhooks.ses.enabled = true;
        c.webhooks.ses.certificate_file = Some(sns.cert.clone());
        c.webhooks.ses.topic_arns = vec![TOPIC.into()];
        c.webhooks.sendgrid.public_key = Some(sendgrid_key);
        c.webhooks.postmark.username = Some(POSTMARK_USER.into());
        c.webhooks.postmark.password = Some(POSTMARK_PASSWORD.into());
    })
    .await;
    app.import_confirmed(&SES_READERS).await;
    async fn answer(response: reqwest::Response) -> (u16, Vec<u8>) {
        (
            response.status().as_u16(),
            response.bytes().await.unwrap().to_vec(),
        )
    }
    let stranger = "stranger@readers.test";
    let auth = Some((POSTMARK_USER, POSTMARK_PASSWORD));
    let mut answers = Vec::new();
    for (n, who) in ["bob@readers.test", stranger, "carol@readers.test", stranger]
        .into_iter()
        .enumerate()
    {
        let ses = Sns::notification(
            &format!("6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2{n}"),
            &fixture("ses-bounce-permanent.json").replace("bob@readers.test", who),
        )
        .signed_by(&sns);
        let sendgrid_body = serde_json::json!([{
            "email": who, "event": "bounce", "type": "bounce",
            "sg_event_id": format!("event-{n}"), "reason": "550 5.1.1 no such user"
        }])
        .to_string();
        let postmark = fixture("postmark-bounce.json")
            .replace("paul@readers.test", who)
            .replace("77a8eac79483", &format!("77a8eac7948{n}"));
        // Each twice: a first report and a retry.
        for _ in 0..2 {
            answers.push(("ses", who, answer(post_sns(&app, &ses).await).await));
            answers.push((
                "sendgrid",
                who,
                answer(post_sendgrid_signed(&app, &sendgrid, &sendgrid_body).await).await,
            ));
            answers.push((
                "postmark",
                who,
                answer(post_postmark(&app, &postmark, auth).await).await,
            ));
        }
    }
    for (provider, who, got) in &answers {
        assert_eq!(
            got,
            &(200, br#"{"status":"received"}"#.to_vec()),
            "{provider} for {who}"
        );
    }
    // They did act: bob and carol bounced, strangers are nobody.
    assert_eq!(
        statuses(&app, &SES_READERS).await,
        ["confirmed", "bounced", "bounced", "confirmed"]
    );
    assert_eq!(app.subscriber_status(stranger).await, None);
}

/// Writes a request's head (no body) and returns the status line of the
/// answer, if one comes within `limit`.
async fn status_before_body(app: &TestApp, head: &str, limit: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base_url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    while !got.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines().next().map(String::from)
}

/// The head of a POST whose headers promise `length` bytes of body.
fn head(path: &str, length: usize, headers: &[(&str, String)]) -> String {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: herald.test\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Inputs tried, each as headers promising a 1 MB body that never comes:
/// Postmark without credentials and with wrong ones; SendGrid without its
/// headers, with a signature that is not base64 or far too long, with a
/// well-formed signature on a 2019 timestamp; SNS without its type header,
/// with an unknown type, from a foreign topic; and a SendGrid post whose
/// headers pass but which declares 2 MiB. Each is answered at once.
async fn webhook_requests_without_credentials_are_refused_before_their_body(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let sendgrid = EcSigner::new(dir.path(), "sendgrid");
    let sendgrid_key = sendgrid.public_key();
    let app = spawn(backend, |c| {
        c.webhooks.ses.enabled = true;
        c.webhooks.ses.certificate_file = Some(sns.cert.clone());
        c.webhooks.ses.topic_arns = vec![TOPIC.into()];
        c.webhooks.sendgrid.public_key = Some(sendgrid_key);
        c.webhooks.postmark.username = Some(POSTMARK_USER.into());
        c.webhooks.postmark.password = Some(POSTMARK_PASSWORD.into());
        // Without the early checks, each would wait this long for its body.
        c.http.body_timeout_secs = 30;
    })
    .await;
    let now = now_secs().to_string();
    let well_formed_signature = b64(&[0x30; 70]);
    let wrong_basic = format!("Basic {}", b64(format!("{POSTMARK_USER}:guess").as_bytes()));
    // What, path, headers, declared length, the status expected.
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, usize, &'a str);
    let cases: Vec<Case> = vec![
        (
            "postmark without credentials",
            "/webhooks/postmark",
            vec![],
            1_000_000,
            "401",
        ),
        (
            "postmark with a wrong password",
            "/webhooks/postmark",
            vec![("Authorization", wrong_basic)],
            1_000_000,
            "401",
        ),
        (
            "sendgrid without headers",
            "/webhooks/sendgrid",
            vec![],
            1_000_000,
            "401",
        ),
        (
            "sendgrid signature not base64",
            "/webhooks/sendgrid",
            vec![
                ("X-Twilio-Email-Event-Webhook-Timestamp", now.clone()),
                ("X-Twilio-Email-Event-Webhook-Signature", "!!".into()),
            ],
            1_000_000,
            "401",
        ),
        (
            "sendgrid signature far too long",
            "/webhooks/sendgrid",
            vec![
                ("X-Twilio-Email-Event-Webhook-Timestamp", now.clone()),
                ("X-Twilio-Email-Event-Webhook-Signature", b64(&[1; 4000])),
            ],
            1_000_000,
            "401",
        ),
        (
            "sendgrid timestamp of 2019",
            "/webhooks/sendgrid",
            vec![
                (
                    "X-Twilio-Email-Event-Webhook-Timestamp",
                    "1559390400".into(),
                ),
                (
                    "X-Twilio-Email-Event-Webhook-Signature",
                    well_formed_signature.clone(),
                ),
            ],
            1_000_000,
            "403",
        ),
        (
            "sns without its type header",
            "/webhooks/ses",
            vec![],
            1_000_000,
            "400",
        ),
        (
            "sns of an unknown type",
            "/webhooks/ses",
            vec![("x-amz-sns-message-type", "Surprise".into())],
            1_000_000,
            "400",
        ),
        (
            "sns from a foreign topic",
            "/webhooks/ses",
            vec![
                ("x-amz-sns-message-type", "Notification".into()),
                (
                    "x-amz-sns-topic-arn",
                    "arn:aws:sns:us-east-1:999999999999:someone-elses".into(),
                ),
            ],
            1_000_000,
            "403",
        ),
        (
            "sns declaring 2 MiB",
            "/webhooks/ses",
            vec![
                ("x-amz-sns-message-type", "Notification".into()),
                ("x-amz-sns-topic-arn", TOPIC.into()),
            ],
            2 * 1024 * 1024,
            "413",
        ),
        (
            "sendgrid declaring 2 MiB",
            "/webhooks/sendgrid",
            vec![
                ("X-Twilio-Email-Event-Webhook-Timestamp", now.clone()),
                (
                    "X-Twilio-Email-Event-Webhook-Signature",
                    well_formed_signature,
                ),
            ],
            2 * 1024 * 1024,
            "413",
        ),
    ];
    for (what, path, headers, length, status) in cases {
        let line = status_before_body(&app, &head(path, length, &headers), Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{what}: no answer before the body was sent"));
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {line}"
        );
    }
}

/// With a budget of one whole body (1 MiB), a SendGrid post whose headers
/// pass and whose 1 MiB body trickles in holds it all: an SNS message
/// meanwhile is answered 503 with Retry-After, unread; Postmark's
/// authenticated posts do not count; once the trickler is gone the budget
/// is whole again.
async fn unverified_webhook_bodies_share_one_budget(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let sns = RsaSigner::new(dir.path(), "sns");
    let sendgrid = EcSigner::new(dir.path(), "sendgrid");
    let sendgrid_key = sendgrid.public_key();
    let app = spawn(backend, |c| {
        c.webhooks.ses.enabled = true;
        c.webhooks.ses.certificate_file = Some(sns.cert.clone());
        c.webhooks.ses.topic_arns = vec![TOPIC.into()];
        c.webhooks.sendgrid.public_key = Some(sendgrid_key);
        c.webhooks.postmark.username = Some(POSTMARK_USER.into());
        c.webhooks.postmark.password = Some(POSTMARK_PASSWORD.into());
        c.webhooks.unverified_body_budget_bytes = herald::webhooks::MAX_BODY_BYTES;
    })
    .await;
    app.import_confirmed(&SES_READERS).await;
    let addr = app.base_url.trim_start_matches("http://").to_string();
    let mut trickler = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let trickle_head = head(
        "/webhooks/sendgrid",
        herald::webhooks::MAX_BODY_BYTES,
        &[
            (
                "X-Twilio-Email-Event-Webhook-Timestamp",
                now_secs().to_string(),
            ),
            ("X-Twilio-Email-Event-Webhook-Signature", b64(&[0x30; 70])),
        ],
    );
    trickler.write_all(trickle_head.as_bytes()).await.unwrap();
    trickler.write_all(&[b'['; 1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bounce = Sns::notification(
        "3c2b1a09-8f7e-4d6c-9b5a-493827161504",
        &fixture("ses-bounce-permanent.json"),
    )
    .signed_by(&sns);
    let busy = post_sns(&app, &bounce).await;
    assert_eq!(busy.status(), 503);
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    received(
        post_postmark(
            &app,
            "{\"RecordType\":\"Delivery\"}",
            Some((POSTMARK_USER, POSTMARK_PASSWORD)),
        )
        .await,
    )
    .await;
    assert_eq!(statuses(&app, &SES_READERS).await, ["confirmed"; 4]);

    drop(trickler);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = post_sns(&app, &bounce).await;
        if response.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the budget did not come back: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses(&app, &SES_READERS).await,
        ["confirmed", "bounced", "confirmed", "confirmed"]
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// `herald serve`, the real binary, with SendGrid and SES webhooks on and
/// `extra` settings; returns the child and its base URL once /health answers.
async fn serve_child(
    db_url: &str,
    data_dir: &Path,
    extra: &[(&str, String)],
) -> (std::process::Child, String) {
    let port = common::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATABASE_URL", db_url)
        .env("HERALD_DATA_DIR", data_dir)
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .env("HERALD_LOG", "error")
        .env("HERALD_SCHEDULE__ENABLED", "false")
        .current_dir(data_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data_dir.join("stderr.log")).unwrap());
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut child = command.arg("serve").spawn().expect("start herald serve");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await {
            if r.status().is_success() {
                return (child, base);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "herald serve exited ({status}): {}",
                std::fs::read_to_string(data_dir.join("stderr.log")).unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "herald serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The issue's measure: 100 clients each send SendGrid headers of the
/// right form and then most of a 1 MiB body, slowly, and hold on. herald
/// serve (the real process) reads at most the budget (8 MiB by default)
/// of them; the others get 503 unread. Its resident memory, read from
/// /proc, grows by far less than the 100 MiB the bodies would take.
async fn many_slow_unverified_bodies_keep_herald_serve_memory_bounded(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let sendgrid = EcSigner::new(dir.path(), "sendgrid");
    let db = common::fresh_database(backend).await;
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = serve_child(
        &db.url,
        data.path(),
        &[(
            "HERALD_WEBHOOKS__SENDGRID__PUBLIC_KEY",
            sendgrid.public_key(),
        )],
    )
    .await;
    let pid = child.id();
    // Warm up: a few genuine posts, so the baseline includes what any
    // request allocates.
    let client = reqwest::Client::new();
    for n in 0..3 {
        let body = format!(r#"[{{"event":"open","email":"a@readers.test","sg_event_id":"w{n}"}}]"#);
        let timestamp = now_secs().to_string();
        let signature = sendgrid.sign(format!("{timestamp}{body}").as_bytes());
        let r = client
            .post(format!("{base}/webhooks/sendgrid"))
            .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
            .header("X-Twilio-Email-Event-Webhook-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let before = rss_kib(pid);
    let addr = base.trim_start_matches("http://").to_string();
    let length = herald::webhooks::MAX_BODY_BYTES;
    let mut clients = Vec::new();
    for _ in 0..100 {
        let addr = addr.clone();
        let request_head = head(
            "/webhooks/sendgrid",
            length,
            &[
                (
                    "X-Twilio-Email-Event-Webhook-Timestamp",
                    now_secs().to_string(),
                ),
                ("X-Twilio-Email-Event-Webhook-Signature", b64(&[0x30; 70])),
            ],
        );
        clients.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.write_all(request_head.as_bytes()).await.unwrap();
            // All but the last KiB, 64 KiB at a time, then hold on.
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent + chunk.len() < length - 1024 {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut answer = [0u8; 12];
            let got = tokio::time::timeout(Duration::from_secs(6), stream.read(&mut answer)).await;
            let busy = matches!(got, Ok(Ok(n)) if n == 12 && &answer == b"HTTP/1.1 503");
            (busy, stream)
        }));
    }
    let mut peak = before;
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < until {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut busy = 0;
    let mut held = Vec::new();
    for c in clients {
        let (was_busy, stream) = c.await.unwrap();
        busy += usize::from(was_busy);
        held.push(stream);
    }
    peak = peak.max(rss_kib(pid));
    let grew_mib = (peak.saturating_sub(before)) as f64 / 1024.0;
    eprintln!(
        "herald serve RSS {} KiB before, {} KiB at most while 100 clients sent 1 MiB bodies slowly (+{grew_mib:.1} MiB); {busy} answered 503 unread",
        before, peak
    );
    assert!(busy >= 80, "only {busy} of 100 were refused for the budget");
    assert!(
        grew_mib < 40.0,
        "resident memory grew by {grew_mib:.1} MiB with an 8 MiB budget"
    );
    drop(held);
    stop(&mut child);
}

fn stop(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The real binary refuses to start with SES on and no topics, and says
/// which setting to add.
async fn herald_serve_with_ses_but_no_topic_arns_does_not_start(backend: Backend) {
    let db = common::fresh_database(backend).await;
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATABASE_URL", &db.url)
        .env("HERALD_DATA_DIR", data.path())
        .env("HERALD_BIND", "127.0.0.1:0")
        .env("HERALD_WEBHOOKS__SES__ENABLED", "true")
        .current_dir(data.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run herald serve");
    // A herald that starts keeps serving: give it 20 s to give up.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            stop(&mut child);
            panic!("herald serve started with SES on and no topic_arns");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: std::fs::read(&log).unwrap(),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "herald served: {stderr}");
    assert!(stderr.contains("webhooks.ses.topic_arns"), "{stderr}");
    assert!(
        stderr.contains("HERALD_WEBHOOKS__SES__TOPIC_ARNS"),
        "{stderr}"
    );
}

both_backends!(
    ses_bounce_marks_exactly_its_recipient_bounced_once,
    ses_complaint_unsubscribes_exactly_its_recipient,
    forged_sns_messages_change_nothing,
    sns_certificate_is_fetched_only_from_amazon,
    sns_subscription_is_confirmed_only_on_amazon,
    sendgrid_events_change_exactly_the_recipients_they_name_once,
    forged_sendgrid_posts_change_nothing,
    postmark_records_change_exactly_the_recipients_they_name_once,
    postmark_posts_without_the_credentials_change_nothing,
    webhooks_answer_404_until_configured,
    webhook_settings_that_cannot_work_stop_herald_at_start,
    ses_acts_only_on_the_configured_topics,
    ses_notification_timestamped_2019_changes_nothing,
    sns_bounce_with_its_subject_shifted_into_its_message_id_counts_once,
    webhook_answers_do_not_tell_a_subscriber_from_a_stranger,
    webhook_requests_without_credentials_are_refused_before_their_body,
    unverified_webhook_bodies_share_one_budget,
    many_slow_unverified_bodies_keep_herald_serve_memory_bounded,
    herald_serve_with_ses_but_no_topic_arns_does_not_start,
);
