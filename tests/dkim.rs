//! DKIM: keys from `herald dkim generate`, every message signed with each
//! configured key (RSA and Ed25519 together: dual signing), and each
//! signature checked by dkimpy (tests/support/dkim_verify.py), not by
//! herald's own code. Inputs tried: a digest with non-ASCII text sent 8bit,
//! the same sent quoted-printable to a relay without 8BITMIME, a
//! confirmation mail, a tampered copy, a bad selector, an existing key file.

mod common;

use common::feed_server::HERALD;
use common::{Backend, Received, SmtpSink};
use herald::config::DkimKeyConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DOMAIN: &str = "herald.test";

type Key = common::DkimKeyFile;

fn generate(dir: &Path, selector: &str, algorithm: &str) -> Key {
    common::dkim_generate(dir, selector, DOMAIN, algorithm)
}

/// dkimpy's verdict on each signature: (a= tag, passed).
fn verify(message: &str, keys: &[&Key]) -> Vec<(String, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.eml");
    // smtp-sink dumps lines ending in LF; a message goes over SMTP in CRLF.
    let crlf = message.replace("\r\n", "\n").replace('\n', "\r\n");
    std::fs::write(&file, crlf).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/dkim_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .args(
            keys.iter()
                .map(|k| format!("{}._domainkey.{DOMAIN}={}", k.selector, k.record)),
        )
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dkimpy could not run (scripts/test.sh installs dkimpy and pynacl): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            match parts.as_slice() {
                [_, a, d, verdict] => {
                    assert_eq!(*d, DOMAIN, "{l}");
                    Some((a.to_string(), *verdict == "pass"))
                }
                _ => None,
            }
        })
        .collect()
}

fn key_config(k: &Key) -> DkimKeyConfig {
    DkimKeyConfig {
        selector: k.selector.clone(),
        domain: Some(DOMAIN.into()),
        private_key_file: k.path.clone(),
    }
}

fn both_pass(message: &Received, rsa: &Key, ed: &Key) {
    let verdicts = verify(&message.raw, &[rsa, ed]);
    let mut algorithms: Vec<&str> = verdicts.iter().map(|(a, _)| a.as_str()).collect();
    algorithms.sort();
    assert_eq!(
        algorithms,
        ["ed25519-sha256", "rsa-sha256"],
        "one signature per key: {verdicts:?}\n{}",
        message.raw
    );
    assert!(
        verdicts.iter().all(|(_, ok)| *ok),
        "dkimpy: {verdicts:?}\n{}",
        message.raw
    );
}

async fn digests_and_confirmations_verify_with_an_independent_verifier(backend: Backend) {
    let (rsa, ed, [confirmation, digest], _keys) = signed_mail(backend, SmtpSink::start(&[])).await;
    both_pass(&confirmation, &rsa, &ed);
    both_pass(&digest, &rsa, &ed);
    tampered_body_fails(&digest, &rsa, &ed);
}

/// smtp-sink -8 does not announce 8BITMIME: copies go quoted-printable,
/// from a second template, and must be signed as sent.
async fn seven_bit_copies_verify_too(backend: Backend) {
    let (rsa, ed, [confirmation, digest], _keys) =
        signed_mail(backend, SmtpSink::start(&["-8"])).await;
    both_pass(&confirmation, &rsa, &ed);
    both_pass(&digest, &rsa, &ed);
    tampered_body_fails(&digest, &rsa, &ed);
}

/// Issue 16, item 7: a header field put above the signatures (as a reader
/// forwarding their copy could) breaks both, in a confirmation and a
/// digest copy spliced 8bit: every field herald signs is over-signed, and
/// Reply-To, Cc and Sender are signed as absent. Before, `h=` named each
/// field once, so a prepended Subject, To, Reply-To, Cc, List-Unsubscribe
/// or Content-Type left both signatures passing.
async fn a_header_added_above_the_signature_breaks_both_signatures(backend: Backend) {
    let (rsa, ed, messages, _keys) = signed_mail(backend, SmtpSink::start(&[])).await;
    for message in &messages {
        added_headers_fail(message, &rsa, &ed);
    }
}

/// The same for digest copies sent quoted-printable (their own template).
async fn a_header_added_above_a_quoted_printable_copy_breaks_both_signatures(backend: Backend) {
    let (rsa, ed, messages, _keys) = signed_mail(backend, SmtpSink::start(&["-8"])).await;
    for message in &messages {
        added_headers_fail(message, &rsa, &ed);
    }
}

/// Fields a forwarder might add above herald's signatures: each one that
/// herald writes (a second one above herald's), the ones it never writes
/// (Reply-To, Cc, Sender), and one with its name in odd case.
const ADDED_HEADERS: &[&str] = &[
    "Subject: Your account is suspended",
    "To: someone-else@example.org",
    "From: Bank <security@bank.example>",
    "Reply-To: attacker@evil.example",
    "Cc: another@example.org",
    "Sender: attacker@evil.example",
    "Date: Mon, 1 Jan 2024 00:00:00 +0000",
    "Message-ID: <forged@evil.example>",
    "List-Id: Evil <evil.example>",
    "List-Unsubscribe: <https://evil.example/unsubscribe>",
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    "MIME-Version: 1.0",
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: base64",
    "sUbJeCt: the name in odd case",
];

fn added_headers_fail(message: &Received, rsa: &Key, ed: &Key) {
    for added in ADDED_HEADERS {
        let forged = format!("{added}\r\n{}", message.raw);
        let verdicts = verify(&forged, &[rsa, ed]);
        assert_eq!(verdicts.len(), 2, "{added}: {verdicts:?}");
        assert!(
            verdicts.iter().all(|(_, ok)| !ok),
            "{added:?} above the signatures left one passing: {verdicts:?}\n{}",
            message.raw
        );
    }
}

fn tampered_body_fails(digest: &Received, rsa: &Key, ed: &Key) {
    // A verifier that passes anything would pass this too.
    let tampered = Received {
        raw: digest
            .raw
            .replacen("Ministers met", "Ministers did not meet", 1),
        ..digest.clone()
    };
    assert_ne!(
        tampered.raw, digest.raw,
        "the article text is in the message"
    );
    let verdicts = verify(&tampered.raw, &[rsa, ed]);
    assert_eq!(verdicts.len(), 2);
    assert!(
        verdicts.iter().all(|(_, ok)| !ok),
        "a changed body must fail: {verdicts:?}"
    );
}

/// A confirmation and a digest copy, signed with an RSA and an Ed25519 key
/// (the key directory is returned to keep it alive).
async fn signed_mail(
    backend: Backend,
    sink: SmtpSink,
) -> (Key, Key, [Received; 2], tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let rsa = generate(keys.path(), "rsa2026", "rsa");
    let ed = generate(keys.path(), "ed2026", "ed25519");
    let app = common::spawn_app_with(backend, sink, |c| {
        c.dkim.keys = vec![key_config(&rsa), key_config(&ed)];
    })
    .await;

    app.subscribe_and_confirm("reader@example.com").await;
    let confirmation = app.sink.messages_to("reader@example.com");
    assert_eq!(confirmation.len(), 1);

    app.add_article(
        "Café talks in Bakı: what “détente” means",
        "https://news.example.com/cafe",
        "<p>Ministers met in Bakı — the talks went on “late”.</p><p>Second  paragraph,\twith   spaces.</p>",
    )
    .await;
    let id = app.send_digest_now().await;
    app.wait_digest_done(id, Duration::from_secs(20)).await;
    let mut copies = app.sink.messages_to("reader@example.com");
    assert_eq!(copies.len(), 2, "confirmation and digest");
    let digest = copies.remove(1);
    assert!(digest.subject.contains("Café") || digest.html.contains("Café"));
    app.shutdown().await;
    (rsa, ed, [copies.remove(0), digest], keys)
}

both_backends!(
    digests_and_confirmations_verify_with_an_independent_verifier,
    seven_bit_copies_verify_too,
    a_header_added_above_the_signature_breaks_both_signatures,
    a_header_added_above_a_quoted_printable_copy_breaks_both_signatures,
);

/// Issue 16, item 16: the Ed25519 key `herald dkim generate` writes is
/// read by OpenSSL 3 (`openssl pkey`), which could not read the PKCS#8 v2
/// form written before, and by python-cryptography;
/// both derive from it the public key the printed DNS record carries.
#[test]
fn a_generated_ed25519_key_is_read_by_openssl_and_python() {
    let dir = tempfile::tempdir().unwrap();
    let key = generate(dir.path(), "ed-openssl", "ed25519");
    let published = key
        .record
        .split("p=")
        .nth(1)
        .expect("p= in the record")
        .trim()
        .to_string();

    let out = Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(&key.path)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl pkey cannot read the key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The public key OpenSSL derives: a 44-byte SubjectPublicKeyInfo whose
    // last 32 bytes are the raw key that p= publishes.
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key.path)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 44, "{:02x?}", out.stdout);
    let raw = &out.stdout[12..];
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(raw),
        published,
        "OpenSSL's public key is the one in the DNS record"
    );

    // scripts/test.sh installs python-cryptography: its absence fails here.
    {
        let script = "import sys, base64\n\
from cryptography.hazmat.primitives import serialization as s\n\
k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
print(base64.b64encode(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)).decode())\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&key.path)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "python-cryptography cannot read the key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), published);
    }
}

#[test]
fn dkim_generate_writes_a_private_key_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["rsa", "ed25519"] {
        let key = generate(dir.path(), &format!("s-{algorithm}"), algorithm);
        let mode = std::fs::metadata(&key.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{algorithm} key mode {mode:o}");
        let k = if algorithm == "rsa" { "rsa" } else { "ed25519" };
        assert!(
            key.record.starts_with(&format!("v=DKIM1; k={k}; p=")),
            "{}",
            key.record
        );
        let before = std::fs::read(&key.path).unwrap();
        let again = Command::new(HERALD)
            .env_clear()
            .env("HERALD_DATA_DIR", dir.path())
            .args([
                "dkim",
                "generate",
                "--selector",
                "x",
                "--domain",
                DOMAIN,
                "--out",
            ])
            .arg(&key.path)
            .output()
            .unwrap();
        assert!(
            !again.status.success(),
            "an existing key file was overwritten"
        );
        assert_eq!(std::fs::read(&key.path).unwrap(), before);
    }
    // A selector that would break the DKIM-Signature header writes nothing.
    let bad = dir.path().join("bad.pem");
    let out = Command::new(HERALD)
        .env_clear()
        .env("HERALD_DATA_DIR", dir.path())
        .args([
            "dkim",
            "generate",
            "--selector",
            "a;b=c",
            "--domain",
            DOMAIN,
            "--out",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("selector"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bad.exists());
}

/// A key file that is missing or not a key stops herald at start with a
/// message naming the file.
#[tokio::test]
async fn a_bad_key_file_stops_herald_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    for path in [dir.path().join("missing.pem"), not_a_key] {
        let db = common::fresh_database(Backend::Sqlite).await;
        let mut config = common::test_config(&db.url, "smtp://127.0.0.1:1", dir.path());
        config.dkim.keys = vec![DkimKeyConfig {
            selector: "s1".into(),
            domain: None,
            private_key_file: path.clone(),
        }];
        let err = herald::startup::Application::build(config, herald::startup::Role::All)
            .await
            .err()
            .unwrap_or_else(|| panic!("herald started with DKIM key {}", path.display()));
        let message = format!("{err:#}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

/// `herald dkim generate` as an operator runs it: only the variables given.
fn dkim_generate_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.env_clear()
        .env("HERALD_LOG", "warn")
        .env("HERALD_DATA_DIR", data_dir)
        .current_dir(data_dir)
        .args(["dkim", "generate", "--selector", "s1"]);
    cmd
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_in(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Issue 17, item 13: with no `--domain`, herald's default From
/// (`herald@localhost`) and every other local From domain are refused
/// with a message that says to pass `--domain`, and nothing is written.
/// Before, a key and a record for `localhost` were written without a word.
/// From domains tried: localhost, a single label, .local, .localhost,
/// .test, .invalid, .example, upper case (an IP literal From is
/// refused earlier, as an invalid From address; the unit test
/// `local_and_reserved_domains_are_not_public` covers IP literals).
#[test]
fn dkim_generate_without_a_domain_refuses_a_local_from_domain_and_writes_nothing() {
    for from in [
        None,
        Some("News <news@newsletter>"),
        Some("news@host.local"),
        Some("news@mail.localhost"),
        Some("news@news.test"),
        Some("news@news.invalid"),
        Some("news@news.example"),
        Some("news@NEWS.Test"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out_file = dir.path().join("key.pem");
        for explicit_out in [false, true] {
            let mut cmd = dkim_generate_command(dir.path());
            cmd.env("HERALD_DATA_DIR", &data);
            if let Some(from) = from {
                cmd.env("HERALD_FROM", from);
            }
            if explicit_out {
                cmd.arg("--out").arg(&out_file);
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "From {from:?}: a key for a local domain was made: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert!(
                stderr.contains("no --domain given")
                    && stderr.contains("pass the domain your mail is sent from, e.g. --domain"),
                "From {from:?}: {stderr}"
            );
            assert!(
                files_in(dir.path()).is_empty(),
                "From {from:?}: {:?}",
                files_in(dir.path())
            );
        }
    }
}

/// Issue 17, item 13: the default key is RSA-2048 (every receiver
/// verifies it), with `--domain` or a public From domain. Before, the
/// default was Ed25519, which many large receivers do not verify yet.
#[test]
fn dkim_generate_makes_an_rsa_2048_key_by_default() {
    for (from, domain) in [
        (None, Some("news.example.com")),
        (Some("News <news@news.example.com>"), None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let mut cmd = dkim_generate_command(dir.path());
        if let Some(from) = from {
            cmd.env("HERALD_FROM", from);
        }
        if let Some(domain) = domain {
            cmd.args(["--domain", domain]);
        }
        let out = cmd.arg("--out").arg(&path).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("Publish this TXT record at s1._domainkey.news.example.com:"),
            "{stdout}"
        );
        let record = stdout
            .lines()
            .find(|l| l.starts_with("v=DKIM1;"))
            .unwrap_or_else(|| panic!("no record: {stdout}"));
        assert!(record.starts_with("v=DKIM1; k=rsa; p=MII"), "{record}");
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let text = Command::new("openssl")
            .args(["pkey", "-noout", "-text", "-in"])
            .arg(&path)
            .output()
            .expect("openssl runs");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("Private-Key: (2048 bit"),
            "openssl: {}",
            text.lines().next().unwrap_or("")
        );
    }
}

/// The command's --help says why RSA is the default and how to sign with
/// both algorithms.
#[test]
fn dkim_generate_help_explains_the_rsa_default_and_dual_signing() {
    let out = Command::new(HERALD)
        .args(["dkim", "generate", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for needed in [
        "The default key is RSA-2048 because every receiver verifies RSA",
        "Ed25519 (RFC 8463) yet",
        "list both under [[dkim.keys]]",
        "--algorithm ed25519",
        "[default: rsa]",
    ] {
        assert!(help.contains(needed), "{needed:?} not in:\n{help}");
    }
}
