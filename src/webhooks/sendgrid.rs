//! `POST /webhooks/sendgrid`: SendGrid's Signed Event Webhook.
//!
//! SendGrid signs `timestamp + body` (the
//! `X-Twilio-Email-Event-Webhook-Timestamp` header's text followed by the
//! raw body) with ECDSA P-256 over SHA-256, and sends the DER signature in
//! base64 in `X-Twilio-Email-Event-Webhook-Signature`. The verification key
//! is shown in SendGrid's settings as base64 of a SubjectPublicKeyInfo. A
//! timestamp further than `max_age_secs` from now is refused, so a
//! captured request cannot be replayed later.
//!
//! Both headers are checked before the body is read
//! ([`SendGrid::check_headers`]): present, the timestamp a number of
//! seconds within `max_age_secs` of now, the signature base64 of at most
//! the 72 bytes of a DER P-256 signature. Only then is the body read (within
//! the shared budget of unverified bodies) and the signature checked.
//!
//! The body is a JSON array of events: `bounce` is a bounce (`type`
//! `bounce`) or a soft bounce (`type` `blocked`), `dropped` with reason
//! `Bounced Address` a bounce, `spamreport` a complaint, `deferred` a soft
//! bounce; the rest (processed, delivered, open, click, …) are ignored.
//! The reference is `sg_event_id`.

use super::{apply, detail, header, ConfigError, Error, Item, RelayEvent, Summary};
use crate::config::SendGridWebhookConfig;
use crate::state::AppState;
use crate::store::EventKind;
use axum::http::HeaderMap;
use base64::Engine;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::spki::SubjectPublicKeyInfoRef;

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// id-ecPublicKey (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1, also called prime256v1 or P-256.
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// A DER ECDSA P-256 signature: SEQUENCE of two INTEGERs of up to 33 bytes.
const MAX_SIGNATURE_BYTES: usize = 72;
const MIN_SIGNATURE_BYTES: usize = 8;

/// The headers of a request that may be SendGrid's, checked for form.
pub struct SignedHeaders<'a> {
    /// As sent: the signature covers this text.
    timestamp: &'a str,
    signature: Vec<u8>,
}

pub struct SendGrid {
    /// The uncompressed point (0x04 ‖ x ‖ y) ring verifies with.
    point: Vec<u8>,
    max_age_secs: u64,
}

impl SendGrid {
    pub fn from_config(config: &SendGridWebhookConfig) -> Result<Option<Self>, ConfigError> {
        let Some(encoded) = config
            .public_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        else {
            return Ok(None);
        };
        let point = p256_point(encoded).map_err(ConfigError::SendGridKey)?;
        Ok(Some(Self {
            point,
            max_age_secs: config.max_age_secs,
        }))
    }

    /// An endpoint that verifies with `point` (the fuzz targets' own key).
    #[cfg(test)]
    pub(crate) fn for_tests(point: Vec<u8>, max_age_secs: u64) -> Self {
        Self {
            point,
            max_age_secs,
        }
    }

    /// What can be known before the body is read: both headers there, the
    /// timestamp a number of seconds within `max_age_secs` of `now_secs`,
    /// the signature base64 of something the size of a P-256 signature.
    pub fn check_headers<'a>(
        &self,
        headers: &'a HeaderMap,
        now_secs: i64,
    ) -> Result<SignedHeaders<'a>, Error> {
        let (Some(signature), Some(timestamp)) = (
            header(headers, SIGNATURE_HEADER),
            header(headers, TIMESTAMP_HEADER),
        ) else {
            return Err(Error::Unauthorized(
                "no X-Twilio-Email-Event-Webhook-Signature or -Timestamp".into(),
            ));
        };
        let signed_at: i64 = Some(timestamp)
            .filter(|t| t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                Error::Unauthorized("the timestamp is not a number of seconds".into())
            })?;
        let age_secs = now_secs.abs_diff(signed_at);
        if age_secs > self.max_age_secs {
            return Err(Error::Stale {
                age_secs,
                max_age_secs: self.max_age_secs,
            });
        }
        if signature.len() > MAX_SIGNATURE_BYTES.div_ceil(3) * 4 {
            return Err(Error::Unauthorized("the signature is too long".into()));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| Error::Unauthorized("the signature is not base64".into()))?;
        if !(MIN_SIGNATURE_BYTES..=MAX_SIGNATURE_BYTES).contains(&signature.len()) {
            return Err(Error::Unauthorized(
                "the signature is not the size of a P-256 signature".into(),
            ));
        }
        Ok(SignedHeaders {
            timestamp,
            signature,
        })
    }

    /// Holds when the headers pass [`Self::check_headers`] and carry a
    /// signature of the timestamp and `body` by the configured key.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<(), Error> {
        let signed_headers = self.check_headers(headers, now_secs)?;
        let mut signed = Vec::with_capacity(signed_headers.timestamp.len() + body.len());
        signed.extend_from_slice(signed_headers.timestamp.as_bytes());
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(&signed, &signed_headers.signature)
            .map_err(|_| Error::Unauthorized("the SendGrid signature does not verify".into()))
    }
}

/// The uncompressed P-256 point of a base64 SubjectPublicKeyInfo, or why
/// it is not one.
fn p256_point(encoded: &str) -> Result<Vec<u8>, String> {
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "not base64".to_string())?;
    let info = SubjectPublicKeyInfoRef::try_from(der.as_slice())
        .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
    if info.algorithm.oid != EC_PUBLIC_KEY {
        return Err(format!(
            "not an elliptic-curve key (algorithm {})",
            info.algorithm.oid
        ));
    }
    let curve = info
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if curve != Some(P256) {
        return Err("not a P-256 (prime256v1) key".into());
    }
    let point = info
        .subject_public_key
        .as_bytes()
        .ok_or("the key is not a whole number of bytes")?;
    if point.len() != 65 || point[0] != 0x04 {
        return Err("the key is not an uncompressed P-256 point".into());
    }
    Ok(point.to_vec())
}

/// Verifies and acts on one post of events.
pub async fn receive(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Summary, Error> {
    let sendgrid = state
        .webhooks
        .sendgrid
        .as_ref()
        .ok_or(Error::NotConfigured("SendGrid"))?;
    sendgrid.verify(headers, body, super::now_secs())?;
    Ok(apply(state, "sendgrid", items_of_body(body)?).await?)
}

/// The events of a verified body.
pub(crate) fn items_of_body(body: &[u8]) -> Result<Vec<Item>, Error> {
    let events: Vec<Event> = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("not a JSON array of SendGrid events: {e}")))?;
    Ok(events.iter().map(item_of_event).collect())
}

#[derive(Debug, serde::Deserialize)]
struct Event {
    #[serde(default)]
    event: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    sg_event_id: String,
    #[serde(default, rename = "type")]
    bounce_type: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    response: String,
}

fn item_of_event(event: &Event) -> Item {
    let (kind, text) = match event.event.as_str() {
        "bounce" => match event.bounce_type.as_deref() {
            None | Some("bounce") => (EventKind::Bounce, "bounce"),
            // "blocked" and any type SendGrid adds later: recorded only.
            Some(_) => (EventKind::SoftBounce, "blocked"),
        },
        "dropped" if event.reason == "Bounced Address" => (EventKind::Bounce, "dropped"),
        "spamreport" => (EventKind::Complaint, "spam report"),
        "deferred" => (EventKind::SoftBounce, "deferred"),
        "dropped" => {
            return Item::Ignore(format!("a dropped event ({:?})", event.reason));
        }
        other => return Item::Ignore(format!("a SendGrid {other:?} event")),
    };
    if event.sg_event_id.trim().is_empty() {
        return Item::Ignore(format!(
            "a SendGrid {} event without sg_event_id",
            event.event
        ));
    }
    Item::Act(RelayEvent {
        recipient: event.email.clone(),
        kind,
        reference: format!("sendgrid:{}", event.sg_event_id.trim()),
        detail: detail(&[text, &event.status, &event.reason, &event.response]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Item {
        item_of_event(&serde_json::from_str(json).unwrap())
    }

    fn kind(item: &Item) -> Option<EventKind> {
        match item {
            Item::Act(e) => Some(e.kind),
            Item::Ignore(_) => None,
        }
    }

    #[test]
    fn events_map_to_what_herald_records() {
        let cases = [
            (
                r#"{"event":"bounce","type":"bounce","email":"a@example.com","sg_event_id":"1"}"#,
                Some(EventKind::Bounce),
            ),
            (
                r#"{"event":"bounce","email":"a@example.com","sg_event_id":"1"}"#,
                Some(EventKind::Bounce),
            ),
            (
                r#"{"event":"bounce","type":"blocked","email":"a@example.com","sg_event_id":"1"}"#,
                Some(EventKind::SoftBounce),
            ),
            (
                r#"{"event":"dropped","reason":"Bounced Address","email":"a@example.com","sg_event_id":"1"}"#,
                Some(EventKind::Bounce),
            ),
            (
                r#"{"event":"dropped","reason":"Unsubscribed Address","email":"a@example.com","sg_event_id":"1"}"#,
                None,
            ),
            (
                r#"{"event":"spamreport","email":"a@example.com","sg_event_id":"1"}"#,
                Some(EventKind::Complaint),
            ),
            (
                r#"{"event":"deferred","email":"a@example.com","sg_event_id":"1"}"#,
                Some(EventKind::SoftBounce),
            ),
            (
                r#"{"event":"delivered","email":"a@example.com","sg_event_id":"1"}"#,
                None,
            ),
            (
                r#"{"event":"open","email":"a@example.com","sg_event_id":"1"}"#,
                None,
            ),
            (r#"{"event":"spamreport","email":"a@example.com"}"#, None),
        ];
        for (json, expected) in cases {
            assert_eq!(kind(&event(json)), expected, "{json}");
        }
    }

    #[test]
    fn only_p256_public_keys_are_accepted() {
        // A P-256 SubjectPublicKeyInfo (openssl ec -pubout -outform DER | base64).
        let p256 = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+GceG00h+LOPpKhlLAE1SBD+8+jmvZxxQRcXycMdxaidm5ex897YQMtU1XeDaKOFY/6k214pUdz7YaIq5yVZHQ==";
        assert_eq!(p256_point(p256).map(|p| p.len()), Ok(65));
        // The same with line breaks, as copied from a settings page.
        assert!(p256_point(&format!("{}\n{}", &p256[..40], &p256[40..])).is_ok());
        // An Ed25519 key, a truncated key, not base64.
        for bad in [
            "MCowBQYDK2VwAyEA+J8XBq6c+L5FYgbgDeeq2orbBp2A/HRsFQ/CrFB37W8=",
            &p256[..60],
            "not base64!",
        ] {
            assert!(p256_point(bad).is_err(), "{bad}");
        }
    }
}
