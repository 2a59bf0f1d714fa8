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
//! The certificate is either the one the operator pinned
//! (`webhooks.ses.certificate_file`) or fetched from `SigningCertURL`, and
//! then only from `https://sns.<region>.amazonaws.com/….pem`: a message
//! cannot name a certificate of its own choosing. A fetched certificate is
//! kept for the life of the process (SNS rotates them rarely, and a new one
//! comes with a new URL).

use super::Error;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::Certificate;

/// rsaEncryption (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A signing certificate is a couple of KiB; more is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// Fetched certificates kept; past this the cache starts over.
const MAX_CACHED_CERTIFICATES: usize = 16;

/// An SNS message as it is POSTed. Fields herald does not read are ignored
/// (SNS may add some); the ones the signature covers are kept as sent.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    #[serde(default)]
    pub signature_version: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default, rename = "SigningCertURL")]
    pub signing_cert_url: Option<String>,
    #[serde(default, rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl Envelope {
    /// The string SNS signed for this message, or why there is none.
    pub fn string_to_sign(&self) -> Result<String, Error> {
        let mut out = String::with_capacity(self.message.len() + 512);
        let mut add = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        match self.kind.as_str() {
            "Notification" => {
                add("Message", &self.message);
                add("MessageId", &self.message_id);
                if let Some(subject) = &self.subject {
                    add("Subject", subject);
                }
                add("Timestamp", &self.timestamp);
                add("TopicArn", &self.topic_arn);
                add("Type", &self.kind);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let (Some(subscribe_url), Some(token)) = (&self.subscribe_url, &self.token) else {
                    return Err(Error::Malformed(format!(
                        "an SNS {} without SubscribeURL or Token",
                        self.kind
                    )));
                };
                add("Message", &self.message);
                add("MessageId", &self.message_id);
                add("SubscribeURL", subscribe_url);
                add("Timestamp", &self.timestamp);
                add("Token", token);
                add("TopicArn", &self.topic_arn);
                add("Type", &self.kind);
            }
            other => {
                return Err(Error::Malformed(format!(
                    "unknown SNS message type {other:?}"
                )))
            }
        }
        Ok(out)
    }

    /// Holds when `key` signed this message as its SignatureVersion says.
    pub fn verify(&self, key: &SigningKey) -> Result<(), Error> {
        let algorithm: &'static dyn VerificationAlgorithm = match self.signature_version.as_deref()
        {
            Some("1") => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Some("2") => &signature::RSA_PKCS1_2048_8192_SHA256,
            Some(other) => {
                return Err(Error::Unauthorized(format!(
                    "SignatureVersion {other:?} is neither 1 nor 2"
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
        let signed = self.string_to_sign()?;
        UnparsedPublicKey::new(algorithm, &key.0)
            .verify(signed.as_bytes(), &signature)
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

/// `raw` when it is where SNS publishes its signing certificates:
/// `https://sns.<region>.amazonaws.com/<path>.pem`, no credentials, port,
/// query or fragment.
pub fn signing_cert_url_if_sns(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    let url::Host::Domain(host) = url.host()? else {
        return None;
    };
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| h.strip_suffix(".amazonaws.com"))?;
    let is_region = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (url.scheme() == "https"
        && is_region
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path().ends_with(".pem"))
    .then_some(url)
}

/// `raw` when it is an https URL on an `*.amazonaws.com` host without
/// credentials or port: the only SubscribeURL herald visits.
pub fn subscribe_url_if_aws(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    let url::Host::Domain(host) = url.host()? else {
        return None;
    };
    let labels_ok = host
        .split('.')
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    (url.scheme() == "https"
        && labels_ok
        && host.ends_with(".amazonaws.com")
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none())
    .then_some(url)
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

    fn envelope(kind: &str) -> Envelope {
        Envelope {
            kind: kind.into(),
            message_id: "id-1".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:bounces".into(),
            subject: None,
            message: "{\"a\":1}\nline".into(),
            timestamp: "2026-01-27T14:59:38.237Z".into(),
            signature_version: Some("2".into()),
            signature: Some("AAAA".into()),
            signing_cert_url: None,
            subscribe_url: Some(
                "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription".into(),
            ),
            token: Some("tok".into()),
        }
    }

    #[test]
    fn a_notification_signs_its_fields_in_the_documented_order() {
        let mut e = envelope("Notification");
        assert_eq!(
            e.string_to_sign().unwrap(),
            "Message\n{\"a\":1}\nline\nMessageId\nid-1\nTimestamp\n2026-01-27T14:59:38.237Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:bounces\nType\nNotification\n"
        );
        e.subject = Some("Hello".into());
        assert!(e
            .string_to_sign()
            .unwrap()
            .contains("MessageId\nid-1\nSubject\nHello\nTimestamp\n"));
    }

    #[test]
    fn a_confirmation_signs_its_url_and_token() {
        let e = envelope("SubscriptionConfirmation");
        assert_eq!(
            e.string_to_sign().unwrap(),
            "Message\n{\"a\":1}\nline\nMessageId\nid-1\n\
             SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription\n\
             Timestamp\n2026-01-27T14:59:38.237Z\nToken\ntok\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:bounces\nType\nSubscriptionConfirmation\n"
        );
        let mut without_token = envelope("UnsubscribeConfirmation");
        without_token.token = None;
        assert!(matches!(
            without_token.string_to_sign(),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            envelope("Surprise").string_to_sign(),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn only_sns_certificate_urls_are_fetched() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            "https://sns.eu-west-2.amazonaws.com/a/b.pem",
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
    fn only_amazonaws_subscribe_urls_are_visited() {
        assert!(subscribe_url_if_aws(
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336"
        )
        .is_some());
        for bad in [
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://amazonaws.com.evil.example/?Action=ConfirmSubscription",
            "https://evilamazonaws.com/?Action=ConfirmSubscription",
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
