//! `POST /webhooks/postmark`: Postmark's bounce and spam-complaint
//! webhooks. Postmark does not sign its webhooks; it sends the HTTP basic
//! auth credentials written into the webhook URL
//! (`https://user:password@news.example.com/webhooks/postmark`), and herald
//! compares both in constant time, before it reads a byte of the body.
//!
//! `RecordType` `Bounce` with `Type` `HardBounce` or `BadEmailAddress` is a
//! bounce; other bounce types that report a failed delivery (`SoftBounce`,
//! `Transient`, `DnsError`, …) are soft bounces; types that are not a
//! failure to deliver (`AutoResponder`, `AddressChange`, `Subscribe`,
//! `OpenRelayTest`, `ChallengeVerification`) are ignored. `RecordType`
//! `SpamComplaint` is a complaint.
//!
//! `RecordType` `SubscriptionChange` (the Broadcast stream's suppression
//! list) says Postmark will no longer send to a recipient: with
//! `SuppressionReason` `ManualSuppression` (the recipient used Postmark's
//! unsubscribe link, or the operator suppressed the address there) it is an
//! unsubscribe; `HardBounce` and `SpamComplaint` are the bounce and the
//! complaint that caused it. A reactivation (`SuppressSending` false) is
//! ignored: herald wants a new confirmation instead.
//!
//! The reference of a hard bounce or a complaint is its message
//! (`MessageID`), so the suppression that follows it is the same event, not
//! a second bounce; a soft bounce is referenced by its bounce `ID` (one
//! message may soft-bounce more than once); a suppression without a message
//! by its recipient and time.

use super::{apply, detail, ConfigError, Error, Item, RelayEvent, Summary};
use crate::config::PostmarkWebhookConfig;
use crate::state::AppState;
use crate::store::EventKind;
use crate::web::api::token_matches;
use axum::http::{header, HeaderMap};
use base64::Engine;

pub struct Postmark {
    username: String,
    password: String,
}

impl Postmark {
    pub fn from_config(config: &PostmarkWebhookConfig) -> Result<Option<Self>, ConfigError> {
        let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        match (set(&config.username), set(&config.password)) {
            (Some(username), Some(password)) => Ok(Some(Self { username, password })),
            (None, None) => Ok(None),
            _ => Err(ConfigError::PostmarkCredentials),
        }
    }

    /// Only `username` and `password` (the fuzz targets).
    #[cfg(test)]
    pub(crate) fn for_tests(username: &str, password: &str) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Holds when `Authorization: Basic …` carries the configured user
    /// and password.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), Error> {
        let credentials = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
            })
            .and_then(|decoded| String::from_utf8(decoded).ok());
        let Some((username, password)) = credentials.as_deref().and_then(|c| c.split_once(':'))
        else {
            return Err(Error::Unauthorized("no basic auth credentials".into()));
        };
        // Both compared, whichever is wrong: no early exit to time.
        let user_ok = token_matches(username, &self.username);
        let password_ok = token_matches(password, &self.password);
        if user_ok & password_ok {
            Ok(())
        } else {
            Err(Error::Unauthorized("wrong basic auth credentials".into()))
        }
    }
}

/// Authenticates and acts on one webhook post.
pub async fn receive(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Summary, Error> {
    let postmark = state
        .webhooks
        .postmark
        .as_ref()
        .ok_or(Error::NotConfigured("Postmark"))?;
    postmark.authorize(headers)?;
    Ok(apply(state, "postmark", vec![item_of_body(body)?]).await?)
}

/// The event of an authenticated body.
pub(crate) fn item_of_body(body: &[u8]) -> Result<Item, Error> {
    let record: Record = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("not a Postmark webhook record: {e}")))?;
    Ok(item_of_record(&record))
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Record {
    #[serde(default)]
    record_type: String,
    #[serde(default, rename = "ID")]
    id: Option<serde_json::Value>,
    #[serde(default, rename = "Type")]
    bounce_type: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    details: String,
    #[serde(default, rename = "MessageID")]
    message_id: Option<String>,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    changed_at: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    suppress_sending: Option<bool>,
    #[serde(default)]
    suppression_reason: String,
}

/// Bounce types that are not a failure to deliver to the recipient.
const NOT_A_FAILURE: &[&str] = &[
    "AutoResponder",
    "AddressChange",
    "Subscribe",
    "OpenRelayTest",
    "ChallengeVerification",
];

fn item_of_record(record: &Record) -> Item {
    let kind = match record.record_type.as_str() {
        "Bounce" => match record.bounce_type.as_str() {
            "HardBounce" | "BadEmailAddress" => EventKind::Bounce,
            t if NOT_A_FAILURE.contains(&t) => {
                return Item::Ignore(format!("a Postmark {t} bounce record, not a failure"))
            }
            _ => EventKind::SoftBounce,
        },
        "SpamComplaint" => EventKind::Complaint,
        "SubscriptionChange" => return item_of_subscription_change(record),
        other => return Item::Ignore(format!("a Postmark {other:?} record")),
    };
    let id = match &record.id {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            return Item::Ignore(format!(
                "a Postmark {} record without an ID",
                record.record_type
            ))
        }
    };
    let reference = match message_of(record) {
        Some(message) if kind != EventKind::SoftBounce => format!("postmark:message:{message}"),
        _ => format!("postmark:{id}"),
    };
    Item::Act(RelayEvent {
        recipient: record.email.clone(),
        kind,
        reference,
        detail: detail(&[&record.bounce_type, &record.description, &record.details]),
    })
}

fn message_of(record: &Record) -> Option<&str> {
    record
        .message_id
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
}

fn item_of_subscription_change(record: &Record) -> Item {
    if record.suppress_sending != Some(true) {
        return Item::Ignore(
            "a Postmark reactivation: a subscriber comes back only by confirming again".into(),
        );
    }
    let kind = match record.suppression_reason.as_str() {
        "HardBounce" => EventKind::Bounce,
        "SpamComplaint" => EventKind::Complaint,
        "ManualSuppression" => EventKind::Unsubscribe,
        other => return Item::Ignore(format!("a Postmark suppression for {other:?}")),
    };
    let reference = match (message_of(record), record.changed_at.trim()) {
        (Some(message), _) => format!("postmark:message:{message}"),
        (None, changed) if !changed.is_empty() => format!("postmark:suppression:{changed}"),
        (None, _) => {
            return Item::Ignore(
                "a Postmark subscription change without MessageID or ChangedAt".into(),
            )
        }
    };
    Item::Act(RelayEvent {
        recipient: record.recipient.clone(),
        kind,
        reference,
        detail: detail(&[&format!(
            "suppressed by Postmark: {} (origin {})",
            record.suppression_reason, record.origin
        )]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn kind(json: &str) -> Option<EventKind> {
        match item_of_record(&serde_json::from_str(json).unwrap()) {
            Item::Act(e) => Some(e.kind),
            Item::Ignore(_) => None,
        }
    }

    #[test]
    fn records_map_to_what_herald_records() {
        let cases = [
            (
                r#"{"RecordType":"Bounce","Type":"HardBounce","ID":1,"Email":"a@example.com"}"#,
                Some(EventKind::Bounce),
            ),
            (
                r#"{"RecordType":"Bounce","Type":"BadEmailAddress","ID":1,"Email":"a@example.com"}"#,
                Some(EventKind::Bounce),
            ),
            (
                r#"{"RecordType":"Bounce","Type":"SoftBounce","ID":1,"Email":"a@example.com"}"#,
                Some(EventKind::SoftBounce),
            ),
            (
                r#"{"RecordType":"Bounce","Type":"Transient","ID":1,"Email":"a@example.com"}"#,
                Some(EventKind::SoftBounce),
            ),
            (
                r#"{"RecordType":"Bounce","Type":"AutoResponder","ID":1,"Email":"a@example.com"}"#,
                None,
            ),
            (
                r#"{"RecordType":"SpamComplaint","Type":"SpamComplaint","ID":"7","Email":"a@example.com"}"#,
                Some(EventKind::Complaint),
            ),
            (
                r#"{"RecordType":"Delivery","ID":1,"Email":"a@example.com"}"#,
                None,
            ),
            (
                r#"{"RecordType":"Bounce","Type":"HardBounce","Email":"a@example.com"}"#,
                None,
            ),
            (
                r#"{"RecordType":"SubscriptionChange","Recipient":"a@example.com","ChangedAt":"2020-02-01T10:53:34Z","Origin":"Recipient","SuppressSending":true,"SuppressionReason":"ManualSuppression","MessageID":null}"#,
                Some(EventKind::Unsubscribe),
            ),
            (
                r#"{"RecordType":"SubscriptionChange","Recipient":"a@example.com","ChangedAt":"2020-02-01T10:53:34Z","Origin":"Recipient","SuppressSending":true,"SuppressionReason":"HardBounce","MessageID":"m1"}"#,
                Some(EventKind::Bounce),
            ),
            (
                r#"{"RecordType":"SubscriptionChange","Recipient":"a@example.com","ChangedAt":"2020-02-01T10:53:34Z","Origin":"Customer","SuppressSending":false,"SuppressionReason":"ManualSuppression"}"#,
                None,
            ),
            (
                r#"{"RecordType":"SubscriptionChange","Recipient":"a@example.com","SuppressSending":true,"SuppressionReason":"ManualSuppression"}"#,
                None,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(kind(json), expected, "{json}");
        }
    }

    #[test]
    fn basic_auth_needs_both_the_user_and_the_password() {
        let postmark = Postmark {
            username: "relay".into(),
            password: "s3cret:with-colon".into(),
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let basic = |credentials: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            )
        };
        assert!(postmark
            .authorize(&with(&basic("relay:s3cret:with-colon")))
            .is_ok());
        for wrong in [
            basic("relay:s3cret"),
            basic("other:s3cret:with-colon"),
            basic("relay"),
            "Bearer relay:s3cret:with-colon".to_string(),
            "Basic !!!".to_string(),
        ] {
            assert!(postmark.authorize(&with(&wrong)).is_err(), "{wrong}");
        }
        assert!(postmark.authorize(&HeaderMap::new()).is_err());
    }
}
