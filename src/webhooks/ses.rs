//! `POST /webhooks/ses`: Amazon SES bounce and complaint notifications, as
//! an Amazon SNS topic delivers them to an HTTPS subscription (SES
//! "notifications" or configuration-set event publishing to SNS; raw
//! message delivery off).
//!
//! The SNS signature must hold ([`super::sns`]); then a `Notification`'s
//! `Message` is read as SES's JSON: `Bounce` with `bounceType` `Permanent`
//! is a bounce for each of `bounce.bouncedRecipients`, `Transient` or
//! `Undetermined` a soft bounce; `Complaint` is a complaint for each of
//! `complaint.complainedRecipients`. The reference is the SNS `MessageId`
//! with the recipient, so SNS's retries count once.
//!
//! Anyone with an AWS account can subscribe herald's URL to a topic of
//! their own, and SNS signs whatever they then publish with the same
//! regional certificate as herald's own topic: a valid signature says the
//! message went through SNS, not that it is about herald's mail. So herald
//! needs `webhooks.ses.topic_arns` to start with SES enabled, and accepts
//! (and confirms subscriptions to) only those topics; and a message whose
//! `Timestamp` is more than `webhooks.ses.max_age_secs` from now is refused,
//! so an old signed message cannot be replayed.
//!
//! What can be checked before the body is read is checked first
//! ([`Ses::check_headers`]): SNS's `x-amz-sns-message-type` header must
//! name a type SNS sends, and its `x-amz-sns-topic-arn` header, when
//! present, an accepted topic; the message must then agree with both.

use super::sns::{self, Certificates, Envelope, MessageType, SigningKey, TopicArn};
use super::{apply, detail, header, ConfigError, Error, Item, RelayEvent, Summary};
use crate::config::SesWebhookConfig;
use crate::state::AppState;
use crate::store::EventKind;
use axum::http::HeaderMap;
use std::time::Duration;

/// SNS names the message's type and topic in headers as well as in the body.
pub const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";
pub const TOPIC_ARN_HEADER: &str = "x-amz-sns-topic-arn";

/// How long herald waits for AWS when fetching a certificate or
/// confirming a subscription.
const AWS_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Ses {
    /// Never empty: [`Ses::from_config`] refuses that.
    topic_arns: Vec<TopicArn>,
    max_age_secs: u64,
    certificates: Certificates,
}

impl Ses {
    pub fn from_config(config: &SesWebhookConfig) -> Result<Option<Self>, ConfigError> {
        if !config.enabled {
            return Ok(None);
        }
        if config.topic_arns.is_empty() {
            return Err(ConfigError::SesTopicArnsRequired);
        }
        let topic_arns = config
            .topic_arns
            .iter()
            .map(|t| TopicArn::parse(t.trim()).map_err(ConfigError::SesTopicArn))
            .collect::<Result<Vec<_>, _>>()?;
        let pinned = match &config.certificate_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| ConfigError::SesCertificate {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                Some(
                    SigningKey::from_pem(&pem).map_err(|message| ConfigError::SesCertificate {
                        path: path.display().to_string(),
                        message,
                    })?,
                )
            }
            None => None,
        };
        // Behind the outgoing guard, public addresses only: AWS's hosts
        // are names (checked by sns), resolved and connected to by the guard.
        let http = crate::outgoing::Guard::public_only()
            .client(&crate::outgoing::ClientSettings {
                timeout: AWS_TIMEOUT,
                connect_timeout: AWS_TIMEOUT,
                max_redirects: 0,
                user_agent: concat!("herald/", env!("CARGO_PKG_VERSION")),
            })
            .map_err(|e| ConfigError::Http(e.to_string()))?
            .for_checked_host_names();
        Ok(Some(Self {
            topic_arns,
            max_age_secs: config.max_age_secs,
            certificates: Certificates::new(pinned, http),
        }))
    }

    /// An SES endpoint that verifies with `key` only (the fuzz targets).
    #[cfg(test)]
    pub(crate) fn pinned_for_tests(topic: &str, max_age_secs: u64, key: SigningKey) -> Self {
        Self {
            topic_arns: vec![TopicArn::parse(topic).unwrap()],
            max_age_secs,
            certificates: Certificates::new(Some(key), reqwest::Client::new()),
        }
    }

    fn topic_allowed(&self, topic_arn: &str) -> bool {
        self.topic_arns.iter().any(|t| t.as_str() == topic_arn)
    }

    /// What the headers say, checked before the body is read: an SNS
    /// message type, and an accepted topic when the topic header is there.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<MessageType, Error> {
        let Some(kind) = header(headers, MESSAGE_TYPE_HEADER) else {
            return Err(Error::Malformed(
                "no x-amz-sns-message-type header: not an SNS delivery".into(),
            ));
        };
        let kind = MessageType::parse(kind)?;
        if let Some(topic) = header(headers, TOPIC_ARN_HEADER) {
            if !self.topic_allowed(topic) {
                return Err(Error::TopicNotAllowed);
            }
        }
        Ok(kind)
    }

    /// The message in `body` when it has SNS's form, agrees with the
    /// headers, comes from an accepted topic, is no older (or newer) than
    /// `max_age_secs` at `now_secs`, and names an SNS certificate URL. Its
    /// signature is not checked yet: that may need a certificate fetched.
    pub fn check_message(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Envelope, Error> {
        let kind = self.check_headers(headers)?;
        let envelope = Envelope::parse(body)?;
        if envelope.kind != kind {
            return Err(Error::Malformed(format!(
                "the x-amz-sns-message-type header says {}, the message {}",
                kind.as_str(),
                envelope.kind.as_str()
            )));
        }
        if header(headers, TOPIC_ARN_HEADER).is_some_and(|t| t != envelope.topic_arn.as_str()) {
            return Err(Error::Malformed(
                "the x-amz-sns-topic-arn header and the message's TopicArn differ".into(),
            ));
        }
        if !self.topic_allowed(envelope.topic_arn.as_str()) {
            return Err(Error::TopicNotAllowed);
        }
        let age_secs = now_secs.abs_diff(envelope.sent_at_secs);
        if age_secs > self.max_age_secs {
            return Err(Error::Stale {
                age_secs,
                max_age_secs: self.max_age_secs,
            });
        }
        if envelope
            .signing_cert_url
            .as_deref()
            .and_then(sns::signing_cert_url_if_sns)
            .is_none()
        {
            return Err(Error::Unauthorized(
                "SigningCertURL is not an https://sns.<region>.amazonaws.com/….pem URL".into(),
            ));
        }
        Ok(envelope)
    }

    /// Visits the SubscribeURL of a verified confirmation, when the topic
    /// is allow-listed and the URL is AWS's; otherwise says what the
    /// operator must do.
    async fn confirm_subscription(&self, envelope: &Envelope) -> Result<Summary, Error> {
        let raw = envelope.subscribe_url.as_deref().unwrap_or_default();
        let by_hand = |why: &str| {
            // The SubscribeURL is logged on purpose: it is what the
            // operator opens to confirm (it only confirms this topic).
            tracing::warn!(
                topic_arn = %envelope.topic_arn,
                subscribe_url = %raw,
                "SNS subscription not confirmed by herald ({why}): if this topic is yours, open the SubscribeURL or confirm the subscription in the SNS console"
            );
            Ok(Summary::note(format!(
                "subscription not confirmed ({why}): confirm it by hand"
            )))
        };
        let Some(url) = sns::subscribe_url_if_aws(raw) else {
            return by_hand("the SubscribeURL is not an https URL on sns.<region>.amazonaws.com");
        };
        sns::fetch(self.certificates.http(), url, 64 * 1024)
            .await
            .map_err(Error::Confirm)?;
        tracing::info!(topic_arn = %envelope.topic_arn, "SNS subscription confirmed");
        Ok(Summary::note("subscription confirmed"))
    }
}

/// Verifies and acts on one SNS message.
pub async fn receive(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Summary, Error> {
    let ses = state
        .webhooks
        .ses
        .as_ref()
        .ok_or(Error::NotConfigured("SES"))?;
    let envelope = ses.check_message(headers, body, super::now_secs())?;
    let key = ses
        .certificates
        .key_for(envelope.signing_cert_url.as_deref())
        .await?;
    envelope.verify(&key)?;
    match envelope.kind {
        MessageType::Notification => {
            let items = items_of_notification(&envelope.message_id, &envelope.message);
            Ok(apply(state, "ses", items).await?)
        }
        MessageType::SubscriptionConfirmation => ses.confirm_subscription(&envelope).await,
        MessageType::UnsubscribeConfirmation => {
            tracing::info!(topic_arn = %envelope.topic_arn, "SNS unsubscribe confirmation: nothing to do");
            Ok(Summary::note("unsubscribe confirmation: nothing to do"))
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    /// SES notifications.
    notification_type: Option<String>,
    /// Configuration-set event publishing.
    event_type: Option<String>,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: String,
    #[serde(default)]
    bounced_recipients: Vec<Recipient>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complained_recipients: Vec<Recipient>,
    #[serde(default)]
    complaint_feedback_type: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    diagnostic_code: String,
}

/// The events of one SES notification (the SNS `Message`).
pub(crate) fn items_of_notification(message_id: &str, message: &str) -> Vec<Item> {
    let notification: Notification = match serde_json::from_str(message) {
        Ok(n) => n,
        Err(e) => {
            return vec![Item::Ignore(format!(
                "the SNS message is not an SES notification: {e}"
            ))]
        }
    };
    let reference = |r: &Recipient| {
        format!(
            "ses:{message_id}:{}",
            r.email_address.trim().to_ascii_lowercase()
        )
    };
    let kind = notification
        .notification_type
        .or(notification.event_type)
        .unwrap_or_default();
    match (kind.as_str(), notification.bounce, notification.complaint) {
        ("Bounce", Some(bounce), _) => {
            let event_kind = if bounce.bounce_type == "Permanent" {
                EventKind::Bounce
            } else {
                // Transient, Undetermined.
                EventKind::SoftBounce
            };
            let bounce_kind = format!("{}/{}", bounce.bounce_type, bounce.bounce_sub_type);
            bounce
                .bounced_recipients
                .iter()
                .map(|r| {
                    Item::Act(RelayEvent {
                        recipient: r.email_address.clone(),
                        kind: event_kind,
                        reference: reference(r),
                        detail: detail(&[&bounce_kind, &r.status, &r.diagnostic_code]),
                    })
                })
                .collect()
        }
        ("Complaint", _, Some(complaint)) => complaint
            .complained_recipients
            .iter()
            .map(|r| {
                Item::Act(RelayEvent {
                    recipient: r.email_address.clone(),
                    kind: EventKind::Complaint,
                    reference: reference(r),
                    detail: detail(&["complaint", &complaint.complaint_feedback_type]),
                })
            })
            .collect(),
        (other, _, _) => vec![Item::Ignore(format!("an SES {other:?} notification"))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acted(items: &[Item]) -> Vec<(&str, EventKind, &str)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Act(e) => Some((e.recipient.as_str(), e.kind, e.reference.as_str())),
                Item::Ignore(_) => None,
            })
            .collect()
    }

    #[test]
    fn bounce_types_map_to_bounce_and_soft_bounce() {
        let permanent = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
            "bouncedRecipients":[{"emailAddress":"a@example.com"},{"emailAddress":"B@example.com"}]},"mail":{}}"#;
        assert_eq!(
            acted(&items_of_notification("m1", permanent)),
            [
                ("a@example.com", EventKind::Bounce, "ses:m1:a@example.com"),
                ("B@example.com", EventKind::Bounce, "ses:m1:b@example.com"),
            ]
        );
        for soft in ["Transient", "Undetermined"] {
            let message = format!(
                r#"{{"eventType":"Bounce","bounce":{{"bounceType":"{soft}","bouncedRecipients":[{{"emailAddress":"a@example.com"}}]}}}}"#
            );
            assert_eq!(
                acted(&items_of_notification("m2", &message)),
                [(
                    "a@example.com",
                    EventKind::SoftBounce,
                    "ses:m2:a@example.com"
                )]
            );
        }
    }

    #[test]
    fn complaints_and_other_notifications() {
        let complaint = r#"{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"c@example.com"}],"complaintFeedbackType":"abuse"}}"#;
        assert_eq!(
            acted(&items_of_notification("m3", complaint)),
            [(
                "c@example.com",
                EventKind::Complaint,
                "ses:m3:c@example.com"
            )]
        );
        for ignored in [
            r#"{"notificationType":"Delivery","delivery":{"recipients":["a@example.com"]}}"#,
            r#"{"eventType":"Open"}"#,
            r#"{"notificationType":"Bounce"}"#,
            "plain text published by hand",
        ] {
            let items = items_of_notification("m4", ignored);
            assert!(
                matches!(items.as_slice(), [Item::Ignore(_)]),
                "{ignored}: {items:?}"
            );
        }
    }
}
