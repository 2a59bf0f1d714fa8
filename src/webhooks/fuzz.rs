//! Fuzzing the relay webhook parsers with proptest: genuine SNS, SendGrid
//! and Postmark requests, signed at run time by keys of the test's own, are
//! mutated (fields replaced by hostile text, line breaks and shifted
//! fields, fields removed, bytes flipped, bodies cut, headers changed) or
//! replaced by arbitrary bytes and deeply nested JSON, and go through
//! exactly the checks the handlers run (`Ses::check_message` and
//! `Envelope::verify`, `SendGrid::check_headers` and `verify`,
//! `Postmark::authorize`) and the payload parsers after them. Promises: no
//! panic, every case within a second, and nothing is accepted that its
//! signer or the credentials did not make: an accepted SNS message has the
//! genuine one's signed fields, an accepted SendGrid post its body and
//! timestamp, an accepted Postmark request the exact credentials.
//!
//! 64 cases per property by default; `PROPTEST_CASES=N` runs N
//! (scripts/fuzz.sh runs every `fuzz_` test this way).

use super::postmark::{self, Postmark};
use super::sendgrid::{self, SendGrid};
use super::ses::{self, Ses};
use super::sns::SigningKey;
use super::Item;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Longer than this for one case is a failure (a request is handled inline).
const CASE_TIME_LIMIT: Duration = Duration::from_secs(1);

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:herald-bounces";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem";
const MAX_AGE_SECS: u64 = 3600;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn now() -> i64 {
    super::now_secs()
}

/// The SNS signer of these tests: an RSA key made once per process.
static SNS_KEY: LazyLock<RsaKeyPair> = LazyLock::new(|| {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    RsaKeyPair::from_pkcs8(key.to_pkcs8_der().unwrap().as_bytes()).unwrap()
});

static SENDGRID_KEY: LazyLock<EcdsaKeyPair> = LazyLock::new(|| {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap()
});

fn ses_endpoint() -> Ses {
    Ses::pinned_for_tests(
        TOPIC,
        MAX_AGE_SECS,
        SigningKey::from_pkcs1_der(SNS_KEY.public().as_ref()),
    )
}

/// Text with what matters here: line breaks, field names of the string to
/// sign, JSON syntax, control and wide characters, long runs.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 :.\\-_/\"{}\\[\\],\r\n\t\u{0}\u{7f}\u{2028}é😀]{0,60}",
        1 => prop::sample::select(vec![
            "\nSubject\nAmazon SES Email Event Notification",
            "\nMessageId\n",
            "\nTimestamp\n2019-06-01T00:00:00.000Z",
            "\nTopicArn\narn:aws:sns:us-east-1:999999999999:other",
            "\nType\nNotification",
            "Notification",
            "SubscriptionConfirmation",
            "2019-06-01T00:00:00.000Z",
            "arn:aws:sns:us-east-1:999999999999:someone-elses",
            "https://sns.s3.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem",
            "1",
            "2",
            "",
        ]).prop_map(String::from),
        1 => ("[a-z]{1,4}", 1usize..5_000).prop_map(|(s, n)| s.repeat(n)),
        1 => any::<String>(),
    ]
}

/// JSON values of every shape, deep nesting included.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        any_text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[A-Za-z]{1,12}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bytes as a hostile client sends them: arbitrary, deeply nested, or text.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (1usize..200_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        (1usize..50_000).prop_map(|n| "{\"a\":".repeat(n).into_bytes()),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        any_text().prop_map(String::into_bytes),
    ]
}

/// One change to a JSON object, or to the bytes it becomes.
#[derive(Debug, Clone)]
enum Mutation {
    Set(String, serde_json::Value),
    Remove(String),
    /// Moves `from`'s value to the end of `into` after a line break and
    /// `from`'s name (the ambiguity of the string to sign), removing `from`.
    Shift {
        from: String,
        into: String,
    },
    FlipByte(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
}

fn mutation(fields: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let field = prop_oneof![
        4 => prop::sample::select(fields).prop_map(String::from),
        1 => "[A-Za-z]{1,12}",
    ];
    prop_oneof![
        3 => (field.clone(), any_text()).prop_map(|(f, v)| Mutation::Set(f, v.into())),
        1 => (field.clone(), any_json()).prop_map(|(f, v)| Mutation::Set(f, v)),
        1 => field.clone().prop_map(Mutation::Remove),
        2 => (field.clone(), field).prop_map(|(from, into)| Mutation::Shift { from, into }),
        1 => (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::FlipByte(i, x)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::Append),
    ]
}

/// `value` as bytes after `mutations` (JSON ones first, then byte ones).
fn mutate(mut value: serde_json::Value, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let Some(object) = value.as_object_mut() else {
            break;
        };
        match m {
            Mutation::Set(field, v) => {
                object.insert(field.clone(), v.clone());
            }
            Mutation::Remove(field) => {
                object.remove(field);
            }
            Mutation::Shift { from, into } => {
                if let (Some(moved), Some(serde_json::Value::String(target))) =
                    (object.remove(from), object.get(into).cloned())
                {
                    let moved = moved.as_str().map_or(moved.to_string(), String::from);
                    object.insert(into.clone(), format!("{target}\n{from}\n{moved}").into());
                }
            }
            _ => {}
        }
    }
    let mut bytes = value.to_string().into_bytes();
    for m in mutations {
        match m {
            Mutation::FlipByte(i, x) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes[i] ^= x;
            }
            Mutation::Truncate(n) if !bytes.is_empty() => bytes.truncate(n % bytes.len()),
            Mutation::Append(tail) => bytes.extend_from_slice(tail),
            _ => {}
        }
    }
    bytes
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        // A value no HTTP parser would deliver is left out, as hyper would.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.insert(n, v);
        }
    }
    map
}

/// A genuine SES bounce or complaint notification, signed now.
#[derive(Debug, Clone)]
struct GenuineSns {
    json: serde_json::Value,
    signed_fields: Vec<(String, Option<String>)>,
}

const SNS_FIELDS: &[&str] = &[
    "Type",
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "SubscribeURL",
    "Token",
];

/// The fields the signature covers, as sent.
fn signed_fields(json: &serde_json::Value) -> Vec<(String, Option<String>)> {
    [
        "Message",
        "MessageId",
        "Subject",
        "Timestamp",
        "TopicArn",
        "Type",
    ]
    .iter()
    .map(|f| (f.to_string(), json[f].as_str().map(String::from)))
    .collect()
}

fn genuine_sns() -> impl Strategy<Value = GenuineSns> {
    (
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "[a-z]{1,10}@readers\\.test",
        prop::sample::select(vec!["Permanent", "Transient", "Complaint"]),
        prop::option::of(Just("Amazon SES Email Event Notification")),
        -600i64..600,
    )
        .prop_map(|(id, recipient, kind, subject, skew)| {
            let message = if kind == "Complaint" {
                serde_json::json!({"notificationType": "Complaint", "complaint": {
                    "complainedRecipients": [{"emailAddress": recipient}],
                    "complaintFeedbackType": "abuse"}})
            } else {
                serde_json::json!({"notificationType": "Bounce", "bounce": {
                    "bounceType": kind, "bounceSubType": "General",
                    "bouncedRecipients": [{"emailAddress": recipient, "status": "5.1.1"}]}})
            }
            .to_string();
            let timestamp = chrono::DateTime::from_timestamp(now() + skew, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let mut json = serde_json::json!({
                "Type": "Notification",
                "MessageId": id,
                "TopicArn": TOPIC,
                "Message": message,
                "Timestamp": timestamp,
                // SHA256withRSA: ring signs no SHA-1 (version 1 is
                // tested with openssl in tests/webhooks.rs).
                "SignatureVersion": "2",
                "SigningCertURL": CERT_URL,
            });
            if let Some(subject) = subject {
                json["Subject"] = subject.into();
            }
            let mut canonical = String::new();
            for (name, value) in signed_fields(&json) {
                if let Some(value) = value {
                    canonical.push_str(&format!("{name}\n{value}\n"));
                }
            }
            let mut sig = vec![0; SNS_KEY.public().modulus_len()];
            SNS_KEY
                .sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    canonical.as_bytes(),
                    &mut sig,
                )
                .unwrap();
            json["Signature"] = b64(&sig).into();
            GenuineSns {
                signed_fields: signed_fields(&json),
                json,
            }
        })
}

proptest! {
    #![proptest_config(crate::fuzz_cases::config())]

    /// An SNS message is accepted only with the signed fields its signer
    /// gave it: a mutation survives only if it left them as they were.
    #[test]
    fn fuzz_sns_messages_are_accepted_only_as_signed(
        genuine in genuine_sns(),
        mutations in prop::collection::vec(mutation(SNS_FIELDS), 0..4),
        type_header in prop_oneof![
            4 => Just(None),
            1 => any_text().prop_map(Some),
        ],
    ) {
        let ses = ses_endpoint();
        let body = mutate(genuine.json.clone(), &mutations);
        let kind = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["Type"].as_str().map(String::from))
            .unwrap_or_default();
        let kind = type_header.unwrap_or(kind);
        let headers = headers(&[(ses::MESSAGE_TYPE_HEADER, &kind)]);
        let start = Instant::now();
        let accepted = ses
            .check_message(&headers, &body, now())
            .and_then(|e| e.verify(&SigningKey::from_pkcs1_der(SNS_KEY.public().as_ref())).map(|()| e));
        if let Ok(envelope) = &accepted {
            let as_accepted = vec![
                ("Message".to_string(), Some(envelope.message.clone())),
                ("MessageId".to_string(), Some(envelope.message_id.clone())),
                ("Subject".to_string(), envelope.subject.clone()),
                ("Timestamp".to_string(), Some(envelope.timestamp.clone())),
                ("TopicArn".to_string(), Some(envelope.topic_arn.to_string())),
                ("Type".to_string(), Some(envelope.kind.as_str().to_string())),
            ];
            prop_assert_eq!(&as_accepted, &genuine.signed_fields, "accepted a changed message: {:?}", mutations);
            let items = ses::items_of_notification(&envelope.message_id, &envelope.message);
            let prefix = format!("ses:{}:", envelope.message_id);
            let referenced_by_the_message = items.iter().all(|i| match i {
                Item::Act(e) => e.reference.starts_with(&prefix),
                Item::Ignore(_) => true,
            });
            prop_assert!(referenced_by_the_message);
        }
        if mutations.is_empty() && kind == "Notification" {
            prop_assert!(accepted.is_ok(), "the genuine message was refused: {:?}", accepted.err());
        }
        prop_assert!(start.elapsed() < CASE_TIME_LIMIT, "took {:?}", start.elapsed());
    }

    /// A SendGrid post is accepted only with the body and timestamp that
    /// were signed.
    #[test]
    fn fuzz_sendgrid_posts_are_accepted_only_as_signed(
        events in prop::collection::vec(
            (
                prop::sample::select(vec!["bounce", "dropped", "spamreport", "deferred", "delivered", "open"]),
                "[a-z]{1,10}@readers\\.test",
                "[A-Za-z0-9]{0,22}",
            ),
            0..8,
        ),
        skew in -300i64..300,
        mutations in prop::collection::vec(mutation(&["event", "email", "sg_event_id", "type", "reason"]), 0..3),
        timestamp_change in prop_oneof![
            4 => Just(None),
            1 => any_text().prop_map(Some),
            1 => (-100_000i64..100_000).prop_map(|d| Some((now() + d).to_string())),
        ],
        signature_change in prop_oneof![
            4 => Just(None),
            1 => any_text().prop_map(Some),
            1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| Some(b64(&b))),
        ],
    ) {
        let rng = SystemRandom::new();
        let endpoint = SendGrid::for_tests(SENDGRID_KEY.public_key().as_ref().to_vec(), 600);
        let batch: Vec<serde_json::Value> = events
            .iter()
            .map(|(event, email, id)| serde_json::json!({"event": event, "email": email, "sg_event_id": id, "type": "bounce"}))
            .collect();
        let genuine_body = serde_json::Value::from(batch.clone()).to_string().into_bytes();
        let genuine_timestamp = (now() + skew).to_string();
        let mut signed = genuine_timestamp.clone().into_bytes();
        signed.extend_from_slice(&genuine_body);
        let genuine_signature = b64(SENDGRID_KEY.sign(&rng, &signed).unwrap().as_ref());

        // The mutations apply to the batch's first event, or the bytes.
        let body = match batch.first() {
            Some(first) => {
                let mutated = mutate(first.clone(), &mutations);
                let mut rest: Vec<String> = batch[1..].iter().map(|e| e.to_string()).collect();
                rest.insert(0, String::from_utf8_lossy(&mutated).into_owned());
                format!("[{}]", rest.join(",")).into_bytes()
            }
            None => mutate(serde_json::json!([]), &mutations),
        };
        let timestamp = timestamp_change.unwrap_or_else(|| genuine_timestamp.clone());
        let signature = signature_change.unwrap_or(genuine_signature);
        let headers = headers(&[
            (sendgrid::TIMESTAMP_HEADER, &timestamp),
            (sendgrid::SIGNATURE_HEADER, &signature),
        ]);
        let start = Instant::now();
        let accepted = endpoint.verify(&headers, &body, now());
        if accepted.is_ok() {
            prop_assert_eq!(&body, &genuine_body, "accepted a changed body");
            prop_assert_eq!(timestamp.trim(), genuine_timestamp.as_str());
            // What a verified body holds is only what was signed.
            let _ = sendgrid::items_of_body(&body);
        }
        let _ = sendgrid::items_of_body(&body);
        prop_assert!(start.elapsed() < CASE_TIME_LIMIT, "took {:?}", start.elapsed());
    }

    /// Postmark's credentials are accepted exactly, never nearly.
    #[test]
    fn fuzz_postmark_accepts_only_the_exact_credentials(
        username in "[a-zA-Z0-9é]{1,12}",
        password in "[a-zA-Z0-9: é]{1,24}",
        tried in prop_oneof![
            2 => Just(None),
            2 => ("[a-zA-Z0-9:é]{0,12}", "[a-zA-Z0-9: é]{0,24}").prop_map(|(u, p)| Some(format!("{u}:{p}"))),
            1 => any_text().prop_map(Some),
        ],
        scheme in prop::sample::select(vec!["Basic ", "basic ", "BASIC  ", "Bearer ", "", "Basic"]),
        raw_header in prop::option::of(any_text()),
        record in any_json(),
    ) {
        let endpoint = Postmark::for_tests(&username, &password);
        let right = format!("{username}:{password}");
        let credentials = tried.clone().unwrap_or_else(|| right.clone());
        let value = raw_header
            .clone()
            .unwrap_or_else(|| format!("{scheme}{}", b64(credentials.as_bytes())));
        let headers = headers(&[("authorization", &value)]);
        let start = Instant::now();
        let accepted = endpoint.authorize(&headers).is_ok();
        let exact = raw_header.is_none()
            && scheme.trim().eq_ignore_ascii_case("basic")
            && scheme.len() > 5
            && credentials == right;
        prop_assert_eq!(accepted, exact, "credentials {:?} with header {:?}", credentials, value);
        // The record parser, on any JSON, after the credentials.
        let _ = postmark::item_of_body(record.to_string().as_bytes());
        prop_assert!(start.elapsed() < CASE_TIME_LIMIT, "took {:?}", start.elapsed());
    }

    /// Any bytes through every webhook parser: no panic, no time.
    #[test]
    fn fuzz_arbitrary_bytes_never_panic_the_webhook_parsers(body in any_body()) {
        // Made before the clock starts: the first call makes the RSA key.
        let ses = ses_endpoint();
        let start = Instant::now();
        let headers = headers(&[(ses::MESSAGE_TYPE_HEADER, "Notification")]);
        prop_assert!(ses.check_message(&headers, &body, now()).is_err());
        let text = String::from_utf8_lossy(&body);
        let _ = ses::items_of_notification("22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", &text);
        let _ = sendgrid::items_of_body(&body);
        let _ = postmark::item_of_body(&body);
        prop_assert!(start.elapsed() < CASE_TIME_LIMIT, "took {:?}", start.elapsed());
    }
}
