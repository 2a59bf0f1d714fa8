//! DKIM signatures (RFC 6376): RSA-SHA256, and Ed25519-SHA256 (RFC 8463),
//! relaxed/relaxed canonicalization. Every configured key adds its own
//! signature, so an RSA key and an Ed25519 key together sign each message
//! twice, as RFC 8463 suggests while receivers adopt Ed25519.
//!
//! A digest's copies differ only in a few header lines and the unsubscribe
//! URLs in their bodies, so a copy's body hash is not computed from
//! scratch: [`BodyHashTemplate`] canonicalizes the template's literal body
//! bytes once and keeps the SHA-256 state at the first URL; a copy feeds
//! only its URLs and the canonical bytes between and after them.
//! [`body_hash`] computes the same hash from a whole message, for mail
//! that is not spliced and to check the template's arithmetic.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("DKIM {what} {value:?}: {reason}")]
    Name {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("DKIM signing: {0}")]
    Sign(String),
}

/// The signing algorithms herald writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// The `a=` tag's value.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Rsa => "rsa-sha256",
            Self::Ed25519 => "ed25519-sha256",
        }
    }

    /// The `k=` tag's value in the DNS record.
    pub fn key_type(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

enum Private {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One private key, with the selector and domain it signs for.
pub struct DkimKey {
    selector: String,
    domain: String,
    private: Private,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DkimKey({} {}._domainkey.{})",
            self.algorithm().tag(),
            self.selector,
            self.domain
        )
    }
}

impl DkimKey {
    /// Reads a PEM private key: PKCS#8 (RSA or Ed25519, as `herald dkim
    /// generate` and `openssl genpkey` write them) or PKCS#1 RSA.
    pub fn load(path: &Path, selector: &str, domain: &str) -> Result<Self, DkimError> {
        let selector = dns_name("selector", selector)?;
        let domain = dns_name("domain", domain)?;
        let key_error = |reason: String| DkimError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| {
            key_error(format!(
                "{e}; write the path of a key `herald dkim generate` made as private_key_file in [[dkim.keys]], or remove that entry"
            ))
        })?;
        let private = match PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| key_error(format!("not a PEM private key ({e})")))?
        {
            PrivateKeyDer::Pkcs8(der) => {
                let der = der.secret_pkcs8_der();
                match Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                    Ok(key) => Private::Ed25519(key),
                    Err(_) => Private::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| {
                        key_error(format!(
                            "neither an Ed25519 key nor an RSA key of 2048 to 8192 bits ({e})"
                        ))
                    })?),
                }
            }
            PrivateKeyDer::Pkcs1(der) => Private::Rsa(
                RsaKeyPair::from_der(der.secret_pkcs1_der())
                    .map_err(|e| key_error(format!("not an RSA key of 2048 to 8192 bits ({e})")))?,
            ),
            _ => {
                return Err(key_error(
                    "an elliptic-curve key: DKIM signs with RSA or Ed25519".into(),
                ))
            }
        };
        Ok(Self {
            selector,
            domain,
            private,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.private {
            Private::Rsa(_) => Algorithm::Rsa,
            Private::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The public key as the DNS record's `p=` carries it: for RSA a DER
    /// SubjectPublicKeyInfo, for Ed25519 the 32 raw bytes (RFC 8463).
    pub fn public_key(&self) -> Result<Vec<u8>, DkimError> {
        match &self.private {
            Private::Ed25519(key) => Ok(key.public_key().as_ref().to_vec()),
            Private::Rsa(key) => rsa_spki(aws_lc_rs::signature::KeyPair::public_key(key).as_ref()),
        }
    }

    /// The TXT record to publish at `selector._domainkey.domain`.
    pub fn dns_record(&self) -> Result<String, DkimError> {
        Ok(format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm().key_type(),
            BASE64.encode(self.public_key()?)
        ))
    }

    fn sign(&self, rng: &aws_lc_rs::rand::SystemRandom, data: &[u8]) -> Result<Vec<u8>, DkimError> {
        match &self.private {
            Private::Ed25519(key) => {
                // RFC 8463: Ed25519 signs the SHA-256 hash of the data.
                Ok(key.sign(&Sha256::digest(data)).as_ref().to_vec())
            }
            Private::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, rng, data, &mut signature)
                    .map_err(|_| DkimError::Sign("RSA signing failed".into()))?;
                Ok(signature)
            }
        }
    }
}

/// A PKCS#1 RSAPublicKey wrapped as the SubjectPublicKeyInfo that DKIM
/// records carry.
fn rsa_spki(pkcs1: &[u8]) -> Result<Vec<u8>, DkimError> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::pkcs8::EncodePublicKey as _;
    let key = rsa::RsaPublicKey::from_pkcs1_der(pkcs1)
        .map_err(|e| DkimError::Sign(format!("RSA public key: {e}")))?;
    Ok(key
        .to_public_key_der()
        .map_err(|e| DkimError::Sign(format!("RSA public key: {e}")))?
        .into_vec())
}

/// A selector or a domain: dot-separated labels of letters, digits and
/// hyphens, so nothing from the configuration can break the header.
fn dns_name(what: &'static str, value: &str) -> Result<String, DkimError> {
    let bad = |reason| DkimError::Name {
        what,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() || value.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    for label in value.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("every dot-separated label must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, '-' and '_' are allowed"));
        }
    }
    Ok(value.to_ascii_lowercase())
}

/// Header fields signed, in this order. Each is over-signed: `h=` names
/// it once more than the message has it (RFC 6376 5.4.2, 8.15), and the
/// extra name signs its absence, so a field put above the signature by
/// anyone on the way (a second Subject, From or Content-Type, a Reply-To
/// or Cc herald never wrote) breaks the signature instead of being shown
/// to the reader as signed by herald's domain. Reply-To, Cc and Sender are
/// listed even when herald writes none, for the same reason.
const SIGNED_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// The keys herald signs with: one signature per key.
pub struct Dkim {
    keys: Vec<DkimKey>,
    rng: aws_lc_rs::rand::SystemRandom,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

impl Dkim {
    pub fn new(keys: Vec<DkimKey>) -> Self {
        Self {
            keys,
            rng: aws_lc_rs::rand::SystemRandom::new(),
        }
    }

    pub fn keys(&self) -> &[DkimKey] {
        &self.keys
    }

    /// Whether signing a message takes long enough (an RSA key: ~0.5 ms)
    /// to be worth moving off the thread that drives the connections.
    pub fn is_slow(&self) -> bool {
        self.keys.iter().any(|k| k.algorithm() == Algorithm::Rsa)
    }

    /// `message` with one DKIM-Signature field per key before its headers.
    /// `body_hash` is the message's relaxed body hash ([`body_hash`], or a
    /// [`BodyHashTemplate`] for a spliced copy).
    pub fn sign(&self, message: &[u8], body_hash: &[u8; 32]) -> Result<Vec<u8>, DkimError> {
        let header_end = find(message, b"\r\n\r\n")
            .map(|i| i + 2)
            .ok_or_else(|| DkimError::Sign("the message has no end of headers".into()))?;
        let fields = fields(&message[..header_end]);
        let mut h = String::with_capacity(512);
        let mut canonical = Vec::with_capacity(header_end + 512);
        for (i, name) in SIGNED_HEADERS.iter().enumerate() {
            // RFC 6376 5.4.2: a name listed n times signs the last n
            // instances, bottom up; a name listed beyond the instances
            // there are signs that there are no more.
            for field in fields.iter().rev().filter(|f| f.name_is(name)) {
                relaxed_header(field.bytes, &mut canonical);
                h.push_str(name);
                h.push(':');
            }
            h.push_str(name);
            // h= may be folded after a colon; keeps lines short.
            if i + 1 < SIGNED_HEADERS.len() {
                h.push_str(if i % 3 == 2 { ":\r\n\t  " } else { ":" });
            }
        }
        let bh = BASE64.encode(body_hash);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut out = Vec::with_capacity(message.len() + self.keys.len() * 700);
        for key in &self.keys {
            let unsigned = format!(
                "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={}; s={}; t={t};\r\n\th={h};\r\n\tbh={bh};\r\n\tb=",
                key.algorithm().tag(),
                key.domain,
                key.selector,
            );
            let mut data = Vec::with_capacity(canonical.len() + unsigned.len());
            data.extend_from_slice(&canonical);
            relaxed_header(unsigned.as_bytes(), &mut data);
            // The DKIM-Signature field is hashed without its final CRLF.
            data.truncate(data.len() - 2);
            let signature = key.sign(&self.rng, &data)?;
            out.extend_from_slice(unsigned.as_bytes());
            out.extend_from_slice(BASE64.encode(signature).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(message);
        Ok(out)
    }

    /// Signs a whole message, computing its body hash.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        self.sign(message, &body_hash(message))
    }
}

/// One header field, folded lines and final CRLF included.
struct Field<'a> {
    bytes: &'a [u8],
}

impl Field<'_> {
    fn name_is(&self, name: &str) -> bool {
        self.bytes.len() > name.len()
            && self.bytes[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && matches!(self.bytes[name.len()], b':' | b' ' | b'\t')
    }
}

fn fields(headers: &[u8]) -> Vec<Field<'_>> {
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::with_capacity(16);
    let mut start = 0;
    while start < headers.len() {
        let end = find(&headers[start..], b"\r\n").map_or(headers.len(), |i| start + i + 2);
        match (headers[start], ranges.last_mut()) {
            (b' ' | b'\t', Some(last)) => last.end = end,
            _ => ranges.push(start..end),
        }
        start = end;
    }
    ranges
        .into_iter()
        .map(|r| Field { bytes: &headers[r] })
        .collect()
}

/// RFC 6376 3.4.2: name lower-cased, folding removed, runs of whitespace
/// one space, none at the ends of the value or around the colon.
fn relaxed_header(field: &[u8], out: &mut Vec<u8>) {
    let Some(colon) = field.iter().position(|b| *b == b':') else {
        return;
    };
    let name = field[..colon].trim_ascii_end();
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    let mut space = false;
    let mut any = false;
    for &b in &field[colon + 1..] {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && any {
                    out.push(b' ');
                }
                space = false;
                any = true;
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 6376 3.4.4's relaxed body canonicalization, fed in pieces:
/// whitespace at line ends dropped, runs of whitespace one space, empty
/// lines at the end dropped, a final CRLF.
#[derive(Default)]
struct RelaxedBody {
    out: Vec<u8>,
    space: bool,
    line_ends: usize,
    any: bool,
}

impl RelaxedBody {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => {}
                b'\n' => {
                    self.space = false;
                    self.line_ends += 1;
                }
                b' ' | b'\t' => self.space = true,
                _ => {
                    self.flush();
                    self.out.push(b);
                }
            }
        }
    }

    /// Writes what is held back, as before a byte of content.
    fn flush(&mut self) {
        for _ in 0..self.line_ends {
            self.out.extend_from_slice(b"\r\n");
        }
        self.line_ends = 0;
        if self.space {
            self.out.push(b' ');
            self.space = false;
        }
        self.any = true;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.any {
            self.out.extend_from_slice(b"\r\n");
        }
        self.out
    }
}

/// The relaxed body hash of a whole message (headers are skipped).
pub fn body_hash(message: &[u8]) -> [u8; 32] {
    let body = find(message, b"\r\n\r\n").map_or(&[][..], |i| &message[i + 4..]);
    let mut canon = RelaxedBody::default();
    canon.feed(body);
    Sha256::digest(canon.finish()).into()
}

/// A body with holes for values that are the same kind of content in every
/// copy (URLs: no whitespace, no line breaks), canonicalized once.
#[derive(Clone)]
pub struct BodyHashTemplate {
    /// SHA-256 state after the canonical bytes before the first hole.
    head: Sha256,
    /// The canonical bytes after each hole.
    tails: Vec<Vec<u8>>,
}

impl std::fmt::Debug for BodyHashTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyHashTemplate({} holes)", self.tails.len())
    }
}

/// Builds a [`BodyHashTemplate`] from the body's literal bytes and holes.
#[derive(Default)]
pub struct BodyHashBuilder {
    canon: RelaxedBody,
    cuts: Vec<usize>,
}

impl BodyHashBuilder {
    pub fn literal(&mut self, bytes: &[u8]) {
        self.canon.feed(bytes);
    }

    /// A place where each copy puts a value of content bytes.
    pub fn hole(&mut self) {
        self.canon.flush();
        self.cuts.push(self.canon.out.len());
    }

    pub fn build(self) -> BodyHashTemplate {
        let cuts = self.cuts;
        let canonical = self.canon.finish();
        let first = cuts.first().copied().unwrap_or(canonical.len());
        let mut head = Sha256::new();
        head.update(&canonical[..first]);
        let tails = cuts
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                canonical[at..cuts.get(i + 1).copied().unwrap_or(canonical.len())].to_vec()
            })
            .collect();
        BodyHashTemplate { head, tails }
    }
}

impl BodyHashTemplate {
    /// The body hash with `values` in the holes, in order; `None` when a
    /// value is not plain content (whitespace or a line break would be
    /// canonicalized with its neighbours) or the count is wrong: the
    /// caller then hashes the whole copy.
    pub fn hash<'a>(&self, values: impl IntoIterator<Item = &'a [u8]>) -> Option<[u8; 32]> {
        let mut hasher = self.head.clone();
        let mut tails = self.tails.iter();
        for value in values {
            if value.is_empty()
                || value
                    .iter()
                    .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            {
                return None;
            }
            hasher.update(value);
            hasher.update(tails.next()?);
        }
        if tails.next().is_some() {
            return None;
        }
        Some(hasher.finalize().into())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Checks a selector and a domain as [`DkimKey::load`] will.
pub fn check_names(selector: &str, domain: &str) -> Result<(), DkimError> {
    dns_name("selector", selector)?;
    dns_name("domain", domain)?;
    Ok(())
}

/// Why `domain` cannot carry a DKIM record that receivers will look up,
/// if it cannot: `localhost` (herald's default From), a single label, a
/// name under a suffix reserved for local or test use (RFC 6761, RFC 6762:
/// `.local`, `.localhost`, `.test`, `.invalid`, `.example`), or an IP
/// literal. `None`: a public-looking name.
pub fn why_not_public(domain: &str) -> Option<&'static str> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.starts_with('[') || d.parse::<std::net::IpAddr>().is_ok() {
        return Some("an IP address, which has no DNS zone to publish a DKIM record in");
    }
    if d == "localhost" || d.ends_with(".localhost") {
        return Some("this machine's own name, which no receiver can look up");
    }
    if !d.contains('.') {
        return Some("a single label, not a domain receivers can look up");
    }
    for suffix in ["local", "test", "invalid", "example"] {
        if d.rsplit('.').next() == Some(suffix) {
            return Some("under a suffix reserved for local networks, tests and examples, which no receiver looks up");
        }
    }
    None
}

/// Writes a new private key: PKCS#8 PEM (v1 for Ed25519), mode 0600.
pub fn generate(algorithm: Algorithm, path: &Path) -> Result<(), DkimError> {
    let key_error = |reason: String| DkimError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let pem = match algorithm {
        Algorithm::Ed25519 => {
            // PKCS#8 v1 (RFC 8410, no public key inside): OpenSSL 3.0 and
            // python-cryptography cannot read the v2 form, and OpenDKIM or
            // Rspamd may be given the same key. [`DkimKey::load`] reads both.
            let der = Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
                .map_err(|_| key_error("could not generate an Ed25519 key".into()))?;
            pem_private_key(der.as_ref())
        }
        Algorithm::Rsa => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|e| key_error(format!("could not generate an RSA key: {e}")))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| key_error(format!("could not encode the RSA key: {e}")))?;
            pem_private_key(der.as_bytes())
        }
    };
    crate::private_files::write_new(path, pem.as_bytes()).map_err(|e| key_error(e.to_string()))
}

fn pem_private_key(der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_body_follows_the_rfc_examples() {
        // RFC 6376 3.4.6.
        let message = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
        let mut canon = RelaxedBody::default();
        canon.feed(&message[find(message, b"\r\n\r\n").unwrap() + 4..]);
        assert_eq!(canon.finish(), b" C\r\nD E\r\n");
        let mut out = Vec::new();
        for f in fields(&message[..find(message, b"\r\n\r\n").unwrap() + 2]) {
            relaxed_header(f.bytes, &mut out);
        }
        assert_eq!(out, b"a:X\r\nb:Y Z\r\n");
    }

    #[test]
    fn an_empty_body_hashes_as_empty() {
        assert_eq!(
            body_hash(b"A: b\r\n\r\n"),
            <[u8; 32]>::from(Sha256::digest(b""))
        );
        assert_eq!(
            body_hash(b"A: b\r\n\r\n\r\n\r\n"),
            <[u8; 32]>::from(Sha256::digest(b""))
        );
    }

    #[test]
    fn the_template_hash_equals_the_whole_body_hash() {
        let parts: [&[u8]; 3] = [
            b"Hi  there \r\nlink: ",
            b" \t\r\n\r\n<a href=\"",
            b"\">x</a>  \r\n\r\n\r\n",
        ];
        let mut builder = BodyHashBuilder::default();
        builder.literal(parts[0]);
        builder.hole();
        builder.literal(parts[1]);
        builder.hole();
        builder.literal(parts[2]);
        let template = builder.build();
        let url = b"https://example.com/u/abc";
        let mut whole = b"Subject: x\r\n\r\n".to_vec();
        whole.extend_from_slice(parts[0]);
        whole.extend_from_slice(url);
        whole.extend_from_slice(parts[1]);
        whole.extend_from_slice(url);
        whole.extend_from_slice(parts[2]);
        assert_eq!(template.hash([&url[..], &url[..]]), Some(body_hash(&whole)));
        assert_eq!(template.hash([&url[..]]), None, "one value for two holes");
        assert_eq!(
            template.hash([&b"a b"[..], &url[..]]),
            None,
            "whitespace in a value"
        );
    }

    /// Issue 16, item 7: `h=` names each field herald signs once more than
    /// the message has it, absent ones (Reply-To, Cc, Sender) once, and
    /// its folded lines stay short.
    #[test]
    fn h_over_signs_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ed.pem");
        generate(Algorithm::Ed25519, &path).unwrap();
        let dkim = Dkim::new(vec![DkimKey::load(&path, "s1", "example.com").unwrap()]);
        let message = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\nsubject: again\r\n\r\nbody\r\n";
        let signed = String::from_utf8(dkim.sign_message(message).unwrap()).unwrap();
        let field = &signed[..signed.find("\r\nFrom:").unwrap()];
        assert!(field.lines().all(|l| l.len() <= 100), "{field}");
        let h: String = field
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let mut expected: Vec<&str> = Vec::new();
        for name in SIGNED_HEADERS {
            let present = match *name {
                "from" | "to" => 1,
                "subject" => 2,
                _ => 0,
            };
            expected.extend(std::iter::repeat_n(*name, present + 1));
        }
        assert_eq!(h, expected.join(":"));
    }

    /// Keys written by older herald versions (PKCS#8 v2, with the public
    /// key) and by this one (v1) both load, and sign alike.
    #[test]
    fn ed25519_keys_load_in_both_pkcs8_forms() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let dir = tempfile::tempdir().unwrap();
        let v2 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let from_v2 = Ed25519KeyPair::from_pkcs8(v2.as_ref()).unwrap();
        let v1 = from_v2.to_pkcs8v1().unwrap();
        let mut records = Vec::new();
        for (name, der) in [("v2.pem", v2.as_ref()), ("v1.pem", v1.as_ref())] {
            let path = dir.path().join(name);
            std::fs::write(&path, pem_private_key(der)).unwrap();
            let key = DkimKey::load(&path, "s1", "example.com").unwrap();
            assert_eq!(key.algorithm(), Algorithm::Ed25519, "{name}");
            records.push(key.dns_record().unwrap());
        }
        assert_eq!(records[0], records[1], "one key in two forms");
        let generated = dir.path().join("new.pem");
        generate(Algorithm::Ed25519, &generated).unwrap();
        let pem = std::fs::read(&generated).unwrap();
        let der = match PrivateKeyDer::from_pem_slice(&pem).unwrap() {
            PrivateKeyDer::Pkcs8(der) => der.secret_pkcs8_der().to_vec(),
            other => panic!("not PKCS#8: {other:?}"),
        };
        // RFC 8410's v1 form: SEQUENCE { INTEGER 0, AlgorithmIdentifier
        // { 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }, 48 bytes.
        assert_eq!(der.len(), 48, "{der:02x?}");
        assert_eq!(&der[..5], [0x30, 0x2e, 0x02, 0x01, 0x00]);
    }

    #[test]
    fn selectors_and_domains_cannot_carry_header_syntax() {
        for bad in ["", "a;b", "a b", "a\r\nX: y", "a..b", ".a", "é"] {
            assert!(dns_name("selector", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            dns_name("domain", "News.Example.com").unwrap(),
            "news.example.com"
        );
    }

    #[test]
    fn local_and_reserved_domains_are_not_public() {
        for local in [
            "localhost",
            "LOCALHOST.",
            "mail.localhost",
            "newsletter",
            "host.local",
            "news.test",
            "x.invalid",
            "news.example",
            "[127.0.0.1]",
            "192.0.2.1",
            "[IPv6:2001:db8::1]",
            "::1",
        ] {
            assert!(why_not_public(local).is_some(), "{local}");
        }
        for public in [
            "news.example.com",
            "example.org",
            "mail.testing.io",
            "local.news",
        ] {
            assert_eq!(why_not_public(public), None, "{public}");
        }
    }
}
