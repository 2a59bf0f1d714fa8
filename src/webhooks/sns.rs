//! Amazon SNS's HTTPS delivery, as AWS documents it ("Verifying the
//! signatures of Amazon SNS messages"): the JSON envelope, the string it
//! signs, and the certificate whose RSA key signs it.
//!
//! The string to sign is `Name\nvalue\n` for each field in a fixed order:
//! `Message`, `MessageId`, `Subject` (only when present), `Timestamp`,
//! `TopicArn`, `Type` for a notification; `Message`, `MessageId`,
//! `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` for a
//! subscription or unsubscribe confirmation. SignatureVersion 1 signs it
//! with SHA1withRSA, 2 with SHA256withRSA (PKCS#1 v1.5), base64 in
//! `Signature`.
//!
//! That string is ambiguous as AWS defines it: a line break inside a value
//! reads as the start of the next field, so a `MessageId` of
//! `id\nSubject\ntext` without a `Subject` signs the same bytes as `id`
//! with `Subject` `text`, and a relay's de-duplication key could be changed
//! under a valid signature. So [`Envelope::parse`] checks every signed
//! field but `Message` (which comes first, so cannot swallow another) for
//! its form before anything else: no control characters, `MessageId` a
//! UUID, `Timestamp` RFC 3339, `TopicArn` an SNS topic's ARN, `Type` one of
//! the three, `SubscribeURL` an https URL, `Token` letters and digits,
//! `Subject` SNS's at most 100 characters. With that, one string to sign
//! has one reading.
//!
//! The certificate is either the one the operator pinned
//! (`webhooks.ses.certificate_file`) or fetched from `SigningCertURL`, and
//! then only from `https://sns.<region>.amazonaws.com[.cn]/….pem` with a
//! region of the form AWS names its regions: a message cannot name a
//! certificate of its own choosing, nor one in an S3 bucket called `sns`.
//! A fetched certificate is kept for the life of the process (SNS rotates
//! them rarely, and a new one comes with a new URL).

use super::Error;
use base64::Engine;
use regex_lite::Regex;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::Certificate;

/// rsaEncryption (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A signing certificate is a couple of KiB; more is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// Fetched certificates kept; past this the cache starts over.
const MAX_CACHED_CERTIFICATES: usize = 16;

/// SNS refuses a subject of 100 characters or more.
const MAX_SUBJECT_CHARS: usize = 100;

/// Longest Token and SubscribeURL accepted (SNS's are a few hundred).
const MAX_TOKEN_CHARS: usize = 2048;
const MAX_URL_CHARS: usize = 4096;

/// An AWS region as AWS names them: `us-east-1`, `us-gov-west-1`,
/// `cn-north-1`, `ap-southeast-2`, `il-central-1`, `us-isob-east-1` (the
/// form the AWS SDKs' own SNS message validators accept).
const REGION: &str = r"[a-z]{2}(?:-gov|-iso[bef]?)?-[a-z]+-[0-9]";

static SNS_HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^sns\.{REGION}\.amazonaws\.com(?:\.cn)?$"))
        .unwrap_or_else(|e| unreachable!("the SNS host pattern is valid: {e}"))
});

/// `arn:<partition>:sns:<region>:<account>:<topic>`; a topic name is 1 to
/// 256 letters, digits, `-` and `_`, FIFO topics end in `.fifo`.
static TOPIC_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^arn:aws(?:-[a-z]+){{0,2}}:sns:{REGION}:[0-9]{{12}}:[A-Za-z0-9_-]{{1,256}}(?:\.fifo)?$"
    ))
    .unwrap_or_else(|e| unreachable!("the topic ARN pattern is valid: {e}"))
});

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
        .unwrap_or_else(|e| unreachable!("the UUID pattern is valid: {e}"))
});

/// The three kinds of message SNS delivers to an HTTPS endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The type as SNS names it (in `Type` and `x-amz-sns-message-type`).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        match raw {
            "Notification" => Ok(Self::Notification),
            "SubscriptionConfirmation" => Ok(Self::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Ok(Self::UnsubscribeConfirmation),
            other => Err(Error::Malformed(format!(
                "unknown SNS message type {:?}",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "Notification",
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

/// The ARN of an SNS topic, checked for its form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicArn(String);

impl TopicArn {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if TOPIC_ARN.is_match(raw) {
            Ok(Self(raw.to_string()))
        } else {
            Err(format!(
                "{:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                raw.chars().take(80).collect::<String>()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TopicArn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An SNS message as it is POSTed. Fields herald does not read are ignored
/// (SNS may add some); the ones the signature covers are kept as sent.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    #[serde(default)]
    subject: Option<String>,
    message: String,
    timestamp: String,
    #[serde(default)]
    signature_version: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default, rename = "SigningCertURL")]
    signing_cert_url: Option<String>,
    #[serde(default, rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// An SNS message whose signed fields each have the form SNS gives them
/// (see the module comment); the signature is not checked yet
/// ([`Envelope::verify`]). Built only by [`Envelope::parse`].
#[derive(Debug, Clone)]
pub struct Envelope {
    pub kind: MessageType,
    /// A UUID.
    pub message_id: String,
    pub topic_arn: TopicArn,
    pub subject: Option<String>,
    pub message: String,
    /// As sent (the signature covers the text).
    pub timestamp: String,
    /// `timestamp` in seconds since the epoch.
    pub sent_at_secs: i64,
    pub signature_version: Option<String>,
    pub signature: Option<String>,
    pub signing_cert_url: Option<String>,
    /// Present (an https URL) exactly for the two confirmations.
    pub subscribe_url: Option<String>,
    /// Present exactly for the two confirmations.
    pub token: Option<String>,
}

/// `value` when it holds no control character (line breaks included) and
/// is not empty; the field's name in the error otherwise.
fn one_line<'a>(name: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        return Err(Error::Malformed(format!("the SNS {name} is empty")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::Malformed(format!(
            "the SNS {name} holds a line break or another control character"
        )));
    }
    Ok(value)
}

impl Envelope {
    /// The message in `body`, when it is SNS's JSON and every signed field
    /// has its form.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let raw: RawEnvelope = serde_json::from_slice(body)
            .map_err(|e| Error::Malformed(format!("not an SNS message: {e}")))?;
        let kind = MessageType::parse(&raw.kind)?;
        if !UUID.is_match(one_line("MessageId", &raw.message_id)?) {
            return Err(Error::Malformed("the SNS MessageId is not a UUID".into()));
        }
        let topic_arn = TopicArn::parse(one_line("TopicArn", &raw.topic_arn)?)
            .map_err(|e| Error::Malformed(format!("TopicArn: {e}")))?;
        let sent_at_secs =
            chrono::DateTime::parse_from_rfc3339(one_line("Timestamp", &raw.timestamp)?)
                .map_err(|_| Error::Malformed("the SNS Timestamp is not RFC 3339".into()))?
                .timestamp();
        if let Some(subject) = &raw.subject {
            if one_line("Subject", subject)?.chars().count() > MAX_SUBJECT_CHARS {
                return Err(Error::Malformed(format!(
                    "the SNS Subject is longer than {MAX_SUBJECT_CHARS} characters"
                )));
            }
        }
        let is_confirmation = kind != MessageType::Notification;
        let (subscribe_url, token) = match (is_confirmation, &raw.subscribe_url, &raw.token) {
            (false, _, _) => (None, None),
            (true, Some(url), Some(token)) => {
                let url_ok = url.len() <= MAX_URL_CHARS
                    && !one_line("SubscribeURL", url)?.contains(' ')
                    && url::Url::parse(url).is_ok_and(|u| u.scheme() == "https");
                if !url_ok {
                    return Err(Error::Malformed(
                        "the SNS SubscribeURL is not an https URL".into(),
                    ));
                }
                let token_ok = token.len() <= MAX_TOKEN_CHARS
                    && one_line("Token", token)?
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric());
                if !token_ok {
                    return Err(Error::Malformed(
                        "the SNS Token is not letters and digits".into(),
                    ));
                }
                (Some(url.clone()), Some(token.clone()))
            }
            (true, _, _) => {
                return Err(Error::Malformed(format!(
                    "an SNS {} without SubscribeURL or Token",
                    kind.as_str()
                )))
            }
        };
        Ok(Self {
            kind,
            message_id: raw.message_id,
            topic_arn,
            subject: raw.subject,
            message: raw.message,
            timestamp: raw.timestamp,
            sent_at_secs,
            signature_version: raw.signature_version,
            signature: raw.signature,
            signing_cert_url: raw.signing_cert_url,
            subscribe_url,
            token,
        })
    }

    /// The string SNS signed for this message.
    pub fn string_to_sign(&self) -> String {
        let mut out = String::with_capacity(self.message.len() + 512);
        let mut add = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        add("Message", &self.message);
        add("MessageId", &self.message_id);
        match (self.kind, &self.subscribe_url, &self.token) {
            (MessageType::Notification, _, _) => {
                if let Some(subject) = &self.subject {
                    add("Subject", subject);
                }
                add("Timestamp", &self.timestamp);
            }
            (_, subscribe_url, token) => {
                add("SubscribeURL", subscribe_url.as_deref().unwrap_or_default());
                add("Timestamp", &self.timestamp);
                add("Token", token.as_deref().unwrap_or_default());
            }
        }
        add("TopicArn", self.topic_arn.as_str());
        add("Type", self.kind.as_str());
        out
    }

    /// Holds when `key` signed this message as its SignatureVersion says.
    pub fn verify(&self, key: &SigningKey) -> Result<(), Error> {
        let algorithm: &'static dyn VerificationAlgorithm = match self.signature_version.as_deref()
        {
            Some("1") => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Some("2") => &signature::RSA_PKCS1_2048_8192_SHA256,
            Some(other) => {
                return Err(Error::Unauthorized(format!(
                    "SignatureVersion {:?} is neither 1 nor 2",
                    other.chars().take(20).collect::<String>()
                )))
            }
            None => return Err(Error::Unauthorized("no SignatureVersion".into())),
        };
        let Some(encoded) = self.signature.as_deref().filter(|s| !s.is_empty()) else {
            return Err(Error::Unauthorized("no Signature".into()));
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Error::Unauthorized("the Signature is not base64".into()))?;
        UnparsedPublicKey::new(algorithm, &key.0)
            .verify(self.string_to_sign().as_bytes(), &signature)
            .map_err(|_| Error::Unauthorized("the SNS signature does not verify".into()))
    }
}

/// The RSA public key of a signing certificate (PKCS#1 RSAPublicKey DER,
/// the form ring verifies with).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The key of the first certificate in `pem`; it must be RSA, 2048 to
    /// 8192 bits (what SNS uses, and what the verifier accepts).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::traits::PublicKeyParts;
        let chain =
            Certificate::load_pem_chain(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
        let certificate = chain.first().ok_or("no certificate in the PEM text")?;
        let info = &certificate.tbs_certificate.subject_public_key_info;
        if info.algorithm.oid != RSA_ENCRYPTION {
            return Err(format!(
                "the certificate's key is not an RSA key (algorithm {})",
                info.algorithm.oid
            ));
        }
        let der = info
            .subject_public_key
            .as_bytes()
            .ok_or("the certificate's key is not a whole number of bytes")?;
        let key = rsa::RsaPublicKey::from_pkcs1_der(der)
            .map_err(|e| format!("the certificate's RSA key does not parse: {e}"))?;
        let bits = key.size() * 8;
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "the certificate's RSA key has {bits} bits; SNS keys have 2048 to 8192"
            ));
        }
        Ok(Self(der.to_vec()))
    }

    /// A key from its PKCS#1 RSAPublicKey DER (the fuzz targets' own key).
    #[cfg(test)]
    pub(crate) fn from_pkcs1_der(der: &[u8]) -> Self {
        Self(der.to_vec())
    }
}

/// Where the key that verifies a message comes from.
pub struct Certificates {
    pinned: Option<Arc<SigningKey>>,
    http: reqwest::Client,
    fetched: Mutex<HashMap<String, Arc<SigningKey>>>,
}

impl Certificates {
    pub fn new(pinned: Option<SigningKey>, http: reqwest::Client) -> Self {
        Self {
            pinned: pinned.map(Arc::new),
            http,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// The pinned key, or the one at `signing_cert_url` when that is an
    /// SNS certificate URL (fetched once).
    pub async fn key_for(&self, signing_cert_url: Option<&str>) -> Result<Arc<SigningKey>, Error> {
        if let Some(pinned) = &self.pinned {
            return Ok(pinned.clone());
        }
        let Some(url) = signing_cert_url.and_then(signing_cert_url_if_sns) else {
            return Err(Error::Unauthorized(
                "SigningCertURL is not an https://sns.<region>.amazonaws.com/….pem URL".into(),
            ));
        };
        let cached = self.cache().get(url.as_str()).cloned();
        if let Some(key) = cached {
            return Ok(key);
        }
        let pem = fetch(&self.http, url.clone(), MAX_CERTIFICATE_BYTES)
            .await
            .map_err(Error::Certificate)?;
        let key = Arc::new(SigningKey::from_pem(&pem).map_err(Error::Certificate)?);
        tracing::info!(url = %url, "SNS signing certificate fetched");
        let mut cache = self.cache();
        if cache.len() >= MAX_CACHED_CERTIFICATES {
            cache.clear();
        }
        cache.insert(url.to_string(), key.clone());
        Ok(key)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SigningKey>>> {
        // The map is whole after any panic (inserts are single calls).
        self.fetched.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The host of `url` when it is SNS's own in some region
/// (`sns.<region>.amazonaws.com`, or `….amazonaws.com.cn` in China), and
/// the URL is https without credentials or port. Not an S3 bucket host
/// (`sns.s3.amazonaws.com`), nor anything else under amazonaws.com.
fn is_sns_https(url: &url::Url) -> bool {
    let Some(url::Host::Domain(host)) = url.host() else {
        return false;
    };
    url.scheme() == "https"
        && SNS_HOST.is_match(host)
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
}

/// `raw` when it is where SNS publishes its signing certificates:
/// `https://sns.<region>.amazonaws.com[.cn]/<path>.pem`, no credentials,
/// port, query or fragment.
pub fn signing_cert_url_if_sns(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    (is_sns_https(&url)
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path().ends_with(".pem"))
    .then_some(url)
}

/// `raw` when it is an https URL on SNS's own host of a region, without
/// credentials or port: the only SubscribeURL herald visits.
pub fn subscribe_url_if_aws(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    is_sns_https(&url).then_some(url)
}

/// GETs `url` (no redirects: the client follows none) and returns at most
/// `limit` bytes of a 2xx body.
pub async fn fetch(http: &reqwest::Client, url: url::Url, limit: usize) -> Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324";

    fn json(kind: &str) -> serde_json::Value {
        serde_json::json!({
            "Type": kind,
            "MessageId": ID,
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:bounces",
            "Message": "{\"a\":1}\nline",
            "Timestamp": "2026-01-27T14:59:38.237Z",
            "SignatureVersion": "2",
            "Signature": "AAAA",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "Token": "2336412f37fb687f",
        })
    }

    fn parse(value: &serde_json::Value) -> Result<Envelope, Error> {
        Envelope::parse(value.to_string().as_bytes())
    }

    #[test]
    fn a_notification_signs_its_fields_in_the_documented_order() {
        let mut e = parse(&json("Notification")).unwrap();
        assert_eq!(
            e.string_to_sign(),
            format!(
                "Message\n{{\"a\":1}}\nline\nMessageId\n{ID}\nTimestamp\n2026-01-27T14:59:38.237Z\n\
                 TopicArn\narn:aws:sns:us-east-1:123456789012:bounces\nType\nNotification\n"
            )
        );
        assert_eq!(e.sent_at_secs, 1_769_525_978);
        e.subject = Some("Hello".into());
        assert!(e
            .string_to_sign()
            .contains(&format!("MessageId\n{ID}\nSubject\nHello\nTimestamp\n")));
    }

    #[test]
    fn a_confirmation_signs_its_url_and_token() {
        let e = parse(&json("SubscriptionConfirmation")).unwrap();
        assert_eq!(
            e.string_to_sign(),
            format!(
                "Message\n{{\"a\":1}}\nline\nMessageId\n{ID}\n\
                 SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription\n\
                 Timestamp\n2026-01-27T14:59:38.237Z\nToken\n2336412f37fb687f\n\
                 TopicArn\narn:aws:sns:us-east-1:123456789012:bounces\nType\nSubscriptionConfirmation\n"
            )
        );
        let mut without_token = json("UnsubscribeConfirmation");
        without_token.as_object_mut().unwrap().remove("Token");
        assert!(matches!(parse(&without_token), Err(Error::Malformed(_))));
        assert!(matches!(parse(&json("Surprise")), Err(Error::Malformed(_))));
    }

    /// Inputs tried: a line break moved into each signed field but
    /// Message (the shifted Subject among them), a carriage return, a NUL,
    /// and a value of the wrong form in each field.
    #[test]
    fn every_signed_field_but_the_message_has_one_form() {
        let shifted = format!("{ID}\nSubject\nAmazon SES Email Event Notification");
        let bad: &[(&str, &str)] = &[
            ("MessageId", &shifted),
            ("MessageId", "shift-1"),
            ("MessageId", ""),
            ("MessageId", "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf32"),
            ("Subject", "a\nTimestamp\nb"),
            ("Subject", "a\rb"),
            ("Subject", &"s".repeat(101)),
            ("Timestamp", "2026-01-27T14:59:38.237Z\nTopicArn"),
            ("Timestamp", "yesterday"),
            ("Timestamp", "2026-01-27 14:59"),
            ("TopicArn", "arn:aws:sns:us-east-1:123456789012:a\nType"),
            ("TopicArn", "arn:aws:sqs:us-east-1:123456789012:bounces"),
            ("TopicArn", "arn:aws:sns:us-east-1:12345:bounces"),
            ("TopicArn", "arn:aws:sns:s3:123456789012:bounces"),
            ("TopicArn", "arn:aws:sns:us-east-1:123456789012:"),
            ("TopicArn", "anything"),
            ("Type", "Notification\n"),
            ("Type", "notification"),
        ];
        for (field, value) in bad {
            let mut e = json("Notification");
            e[field] = (*value).into();
            assert!(
                matches!(parse(&e), Err(Error::Malformed(_))),
                "{field} = {value:?}"
            );
        }
        for (field, value) in [
            (
                "SubscribeURL",
                "https://sns.us-east-1.amazonaws.com/\nToken\nx",
            ),
            ("SubscribeURL", "http://sns.us-east-1.amazonaws.com/"),
            ("SubscribeURL", "not a url"),
            ("Token", "abc\ndef"),
            ("Token", "abc\u{0}"),
            ("Token", "a b"),
        ] {
            let mut e = json("SubscriptionConfirmation");
            e[field] = value.into();
            assert!(
                matches!(parse(&e), Err(Error::Malformed(_))),
                "{field} = {value:?}"
            );
        }
        // What SNS sends is accepted: a subject, a FIFO topic, other
        // partitions and regions, an offset instead of Z.
        for (field, value) in [
            ("Subject", "Amazon SES Email Event Notification"),
            ("TopicArn", "arn:aws:sns:eu-west-2:123456789012:Bounces_1-x"),
            ("TopicArn", "arn:aws:sns:us-east-1:123456789012:events.fifo"),
            (
                "TopicArn",
                "arn:aws-us-gov:sns:us-gov-west-1:123456789012:b",
            ),
            ("TopicArn", "arn:aws-cn:sns:cn-north-1:123456789012:b"),
            (
                "TopicArn",
                "arn:aws-iso-b:sns:us-isob-east-1:123456789012:b",
            ),
            ("Timestamp", "2026-01-27T14:59:38+01:00"),
        ] {
            let mut e = json("Notification");
            e[field] = value.into();
            assert!(parse(&e).is_ok(), "{field} = {value:?}");
        }
    }

    #[test]
    fn only_sns_certificate_urls_are_fetched() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            "https://sns.eu-west-2.amazonaws.com/a/b.pem",
            "https://sns.us-gov-west-1.amazonaws.com/x.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
            "https://sns.ap-southeast-2.amazonaws.com/x.pem",
            "https://sns.il-central-1.amazonaws.com/x.pem",
            "https://sns.us-isob-east-1.amazonaws.com/x.pem",
        ] {
            assert!(signing_cert_url_if_sns(good).is_some(), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://s3.us-east-1.amazonaws.com/x.pem",
            // S3 buckets named sns, and S3's accelerated endpoint.
            "https://sns.s3.amazonaws.com/x.pem",
            "https://sns.s3-accelerate.amazonaws.com/x.pem",
            "https://sns.s3-external-1.amazonaws.com/x.pem",
            "https://sns.s3.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east.amazonaws.com/x.pem",
            "https://sns.us-east-1-a.amazonaws.com/x.pem",
            "https://sns.us-east-12.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.cn.evil.example/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?u=1",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user:pw@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us_east.amazonaws.com/x.pem",
            "https://127.0.0.1/x.pem",
            "not a url",
        ] {
            assert!(signing_cert_url_if_sns(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_sns_subscribe_urls_are_visited() {
        assert!(subscribe_url_if_aws(
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336"
        )
        .is_some());
        for bad in [
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://amazonaws.com.evil.example/?Action=ConfirmSubscription",
            "https://evilamazonaws.com/?Action=ConfirmSubscription",
            "https://sns.s3.amazonaws.com/?Action=ConfirmSubscription",
            "https://attacker-bucket.s3.amazonaws.com/?Action=ConfirmSubscription",
            "https://127.0.0.1/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com:444/",
            "https://a@sns.us-west-2.amazonaws.com/",
        ] {
            assert!(subscribe_url_if_aws(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_pinned_certificate_must_hold_an_rsa_key() {
        assert!(SigningKey::from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
        assert!(SigningKey::from_pem(b"no pem here").is_err());
    }
}
