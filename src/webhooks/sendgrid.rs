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
//! The body is a JSON array of events: `bounce` is a bounce (`type`
//! `bounce`) or a soft bounce (`type` `blocked`), `dropped` with reason
//! `Bounced Address` a bounce, `spamreport` a complaint, `deferred` a soft
//! bounce; the rest (processed, delivered, open, click, …) are ignored.
//! The reference is `sg_event_id`.

use super::{apply, detail, ConfigError, Error, Item, RelayEvent, Summary};
use crate::config::SendGridWebhookConfig;
use crate::startup::AppState;
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

    /// Holds when the headers carry a fresh timestamp and a signature of
    /// it and `body` by the configured key.
    fn verify(&self, headers: &HeaderMap, body: &[u8], now_secs: u64) -> Result<(), Error> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (Some(signature), Some(timestamp)) =
            (header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER))
        else {
            return Err(Error::Unauthorized(
                "no X-Twilio-Email-Event-Webhook-Signature or -Timestamp".into(),
            ));
        };
        let signed_at: u64 = timestamp
            .parse()
            .map_err(|_| Error::Unauthorized("the timestamp is not a number of seconds".into()))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| Error::Unauthorized("the signature is not base64".into()))?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(&signed, &signature)
            .map_err(|_| Error::Unauthorized("the SendGrid signature does not verify".into()))?;
        // Checked after the signature, so that only SendGrid's own old
        // requests are called stale.
        let age_secs = now_secs.abs_diff(signed_at);
        if age_secs > self.max_age_secs {
            return Err(Error::Stale {
                age_secs,
                max_age_secs: self.max_age_secs,
            });
        }
        Ok(())
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
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sendgrid.verify(headers, body, now_secs)?;
    let events: Vec<Event> = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("not a JSON array of SendGrid events: {e}")))?;
    Ok(apply(
        state,
        "sendgrid",
        events.iter().map(item_of_event).collect(),
    )
    .await?)
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
