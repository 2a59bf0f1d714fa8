//! Tokens that travel in links.
//!
//! Confirmation tokens are random and single use; only their SHA-256 hash is
//! stored, so a database leak does not confirm anybody. Unsubscribe tokens
//! are stateless: the subscriber id plus an HMAC over the id and address with
//! the server secret, so every digest copy can carry one without a write.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// A fresh random confirmation token (256 bits, URL-safe base64).
pub fn new_confirmation_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores for a confirmation token.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Random bytes for a server secret, URL-safe base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs and checks the per-subscriber unsubscribe token.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self, subscriber_id: i64, email: &str) -> HmacSha256 {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        mac.update(b"herald-unsubscribe\0");
        mac.update(subscriber_id.to_string().as_bytes());
        mac.update(b"\0");
        mac.update(email.as_bytes());
        mac
    }

    /// A regular expression matching an unsubscribe token as
    /// [`LinkSigner::unsubscribe_token`] writes it: a subscriber id, a dot,
    /// the 16-byte MAC in 22 base64url characters. For finding tokens in
    /// text (inbound mail); a match is still checked with [`LinkSigner::verify`].
    pub const TOKEN_PATTERN: &'static str = r"[0-9]{1,19}\.[A-Za-z0-9_-]{22}";

    /// `{id}.{mac}`: the id tells which subscriber, the MAC (128 bits) that
    /// herald issued it for that address.
    pub fn unsubscribe_token(&self, subscriber_id: i64, email: &str) -> String {
        let tag = self.mac(subscriber_id, email).finalize().into_bytes();
        format!("{subscriber_id}.{}", URL_SAFE_NO_PAD.encode(&tag[..16]))
    }

    /// The subscriber id a token claims, before its MAC is checked against
    /// the stored address with [`LinkSigner::verify`].
    pub fn claimed_id(token: &str) -> Option<i64> {
        let (id, _) = token.split_once('.')?;
        id.parse().ok().filter(|id| *id > 0)
    }

    /// Constant-time check of the token's MAC for this subscriber.
    pub fn verify(&self, token: &str, subscriber_id: i64, email: &str) -> bool {
        let Some((_, tag)) = token.split_once('.') else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        if tag.len() != 16 {
            return false;
        }
        self.mac(subscriber_id, email)
            .verify_truncated_left(&tag)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribe_token_round_trips_and_rejects_forgeries() {
        let signer = LinkSigner::new("secret-one");
        let token = signer.unsubscribe_token(42, "a@example.com");
        assert_eq!(LinkSigner::claimed_id(&token), Some(42));
        assert!(signer.verify(&token, 42, "a@example.com"));
        assert!(!signer.verify(&token, 42, "b@example.com"));
        assert!(!signer.verify(&token, 43, "a@example.com"));
        assert!(!LinkSigner::new("secret-two").verify(&token, 42, "a@example.com"));
        let forged = format!("42.{}", URL_SAFE_NO_PAD.encode([0u8; 16]));
        assert!(!signer.verify(&forged, 42, "a@example.com"));
        assert!(!signer.verify("42", 42, "a@example.com"));
        assert!(!signer.verify("42.!!!", 42, "a@example.com"));
        assert_eq!(LinkSigner::claimed_id("x.abc"), None);
        assert_eq!(LinkSigner::claimed_id("-1.abc"), None);
    }

    #[test]
    fn confirmation_tokens_are_random_and_hashed() {
        let a = new_confirmation_token();
        let b = new_confirmation_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}
