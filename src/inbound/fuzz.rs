//! Fuzzing inbound classification with proptest: arbitrary and adversarial
//! MIME (reports, plain-text bounces, auto-replies, unsubscribes, deep and
//! encoded nesting, garbage) goes through exactly what `herald inbound`
//! runs (`classify`), and every decision must hold herald's promises: no
//! panic, done within a time bound, and a token acts only on the channel it
//! arrived through (a token in the bounce address never unsubscribes, a
//! token in the unsubscribe address or Subject never bounces).
//!
//! 64 cases by default; `PROPTEST_CASES=N` runs N (scripts/fuzz.sh).

use super::classify::{classify, Mailboxes, Report};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Bounce-channel token, unsubscribe-channel token, one in a returned copy.
const BOUNCE_T: &str = "11.BBBBBBBBBBBBBBBBBBBBBB";
const UNSUB_T: &str = "22.UUUUUUUUUUUUUUUUUUUUUU";
const COPY_T: &str = "33.CCCCCCCCCCCCCCCCCCCCCC";

/// A classification of any input must finish well within this (the
/// largest inputs here are a few MB).
const TIME_BOUND: Duration = Duration::from_secs(5);

fn mailboxes() -> Mailboxes {
    Mailboxes {
        bounce_local: Some("bounces".into()),
        unsubscribe_local: Some("unsubscribe".into()),
    }
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("To: <bounces+{BOUNCE_T}@herald.test>")),
        Just(format!("Delivered-To: bounces+{BOUNCE_T}@herald.test")),
        Just(format!("To: unsubscribe+{UNSUB_T}@herald.test")),
        Just(format!("Subject: unsubscribe {UNSUB_T}")),
        Just("Subject: Out of office".to_string()),
        Just("Auto-Submitted: auto-replied".to_string()),
        Just("Auto-Submitted: auto-generated".to_string()),
        Just("X-Autoreply: yes".to_string()),
        Just("Precedence: auto_reply".to_string()),
        Just("MIME-Version: 1.0".to_string()),
        Just("Content-Type: multipart/report; report-type=delivery-status; boundary=R".to_string()),
        Just("Content-Type: multipart/report; report-type=feedback-report; boundary=R".to_string()),
        Just("Content-Type: multipart/mixed; boundary=R".to_string()),
        Just("Content-Type: multipart/digest; boundary=R".to_string()),
        Just("Content-Type: message/rfc822".to_string()),
        Just("Content-Transfer-Encoding: base64".to_string()),
        Just("Content-Transfer-Encoding: quoted-printable".to_string()),
        "[A-Za-z-]{1,12}: [ -~\t]{0,40}".prop_map(|s| s),
    ]
}

fn body_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; reader@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n".to_string()),
        Just("--R\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nOriginal-Rcpt-To: <reader@example.com>\r\n".to_string()),
        Just(format!("--R\r\nContent-Type: text/rfc822-headers\r\n\r\nList-Unsubscribe: <https://n.example/unsubscribe/one-click/{COPY_T}>\r\n")),
        Just("Hi. This is the qmail-send program at mx.example.net.\r\nI'm afraid I wasn't able to deliver your message to the following addresses.\r\nThis is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n<reader@example.com>:\r\nRemote host said: 550 5.1.1 no such user\r\n\r\n".to_string()),
        Just("This message was created automatically by mail delivery software.\r\n\r\nA message that you sent has not yet been delivered to one or more of its\r\nrecipients after more than 24 hours on the queue.\r\n\r\n  reader@example.com\r\n    Delay reason: SMTP error from remote mail server after RCPT TO:<reader@example.com>:\r\n    451 4.7.1 greylisted\r\n\r\n".to_string()),
        Just("This is the mail system at host mx.example.net.\r\n\r\n<reader@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1 unknown\r\n".to_string()),
        Just(format!("> https://n.example/unsubscribe/{COPY_T}\r\n")),
        Just("--R--\r\n".to_string()),
        Just("\r\n".to_string()),
        Just("Content-Type: message/rfc822\r\n\r\n".repeat(150)),
        "[ -~\r\n\t]{0,200}".prop_map(|s| s),
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(header(), 0..8),
        prop::collection::vec(body_piece(), 0..8),
        prop_oneof![Just(0usize), Just(0), Just(0), 1usize..300_000],
    )
        .prop_map(|(headers, body, deep)| {
            let mut raw = headers.join("\r\n").into_bytes();
            raw.extend_from_slice(b"\r\n\r\n");
            for _ in 0..deep {
                raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
            }
            raw.extend_from_slice(body.concat().as_bytes());
            raw
        })
}

proptest! {
    #![proptest_config(crate::fuzz_cases::config())]

    #[test]
    fn fuzz_inbound_classification_keeps_each_token_on_its_channel(raw in message()) {
        let started = Instant::now();
        let c = classify(&raw, &mailboxes());
        prop_assert!(started.elapsed() < TIME_BOUND, "took {:?}", started.elapsed());
        prop_assert!(!c.reference.is_empty());
        match &c.report {
            Report::Unsubscribe => {
                prop_assert!(!c.tokens.is_empty());
                prop_assert!(c.tokens.iter().all(|t| t == UNSUB_T), "{:?}", c.tokens);
            }
            Report::Dsn { .. } | Report::Complaint { .. } => {
                prop_assert!(!c.tokens.iter().any(|t| t == UNSUB_T), "{:?}", c.tokens);
                if matches!(c.report, Report::Complaint { .. }) {
                    prop_assert!(!c.tokens.iter().any(|t| t == BOUNCE_T), "{:?}", c.tokens);
                }
            }
            Report::AutoReply(_) | Report::Unparseable(_) | Report::Other(_) | Report::OtherFeedback(_) => {
                prop_assert!(c.tokens.is_empty(), "{:?}", c.tokens);
            }
        }
    }
}
