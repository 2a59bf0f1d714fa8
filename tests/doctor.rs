//! `herald doctor` against a real DNS server: hickory's, in-process on a
//! loopback port, serving a test zone. Inputs tried: a zone with SPF, the
//! DKIM records `herald dkim generate` printed and DMARC (all ok); a zone
//! whose DKIM record holds another key and that has no DMARC or SPF (each
//! named with the record to publish); a resolver that does not answer (no
//! network: said so within seconds, not a hang).

mod common;

use common::feed_server::HERALD;
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::TXT;
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use std::path::Path;
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DOMAIN: &str = "herald.test";

/// A DNS server for `herald.test.` with these TXT records, on a free UDP port.
async fn dns_server(records: &[(&str, String)]) -> (std::net::SocketAddr, ServerFuture<Catalog>) {
    let origin = Name::from_str(&format!("{DOMAIN}.")).unwrap();
    let mut authority = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
    for (name, value) in records {
        let name = Name::from_str(&format!("{name}.")).unwrap();
        // TXT strings are at most 255 bytes: long records are split.
        let parts: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        authority.upsert_mut(
            Record::from_rdata(name, 300, RData::TXT(TXT::new(parts))),
            1,
        );
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(authority)]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut server = ServerFuture::new(catalog);
    server.register_socket(socket);
    (addr, server)
}

/// A key from `herald dkim generate`, and the record it printed.
fn generate(dir: &Path, selector: &str, algorithm: &str) -> (std::path::PathBuf, String) {
    let key = common::dkim_generate(dir, selector, DOMAIN, algorithm);
    (key.path, key.record)
}

fn config_file(dir: &Path, keys: &[(&str, &Path)], postal: bool) -> std::path::PathBuf {
    let mut toml = format!(
        "from = \"The Daily Herald <news@{DOMAIN}>\"\nbase_url = \"https://news.{DOMAIN}\"\n{}\n[inbound]\nunsubscribe_address = \"unsubscribe@{DOMAIN}\"\nbounce_address = \"bounces@{DOMAIN}\"\n",
        if postal { "postal_address = \"1 Main Street, Springfield\"" } else { "" }
    );
    for (selector, path) in keys {
        toml.push_str(&format!(
            "[[dkim.keys]]\nselector = \"{selector}\"\nprivate_key_file = {:?}\n",
            path.display().to_string()
        ));
    }
    let file = dir.join("herald.toml");
    std::fs::write(&file, toml).unwrap();
    file
}

/// Runs `herald doctor` off the runtime, which serves the test zone.
async fn doctor(dir: &Path, config: &Path, resolver: &str) -> Output {
    let mut command = Command::new(HERALD);
    command
        .env_clear()
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_LOG", "error")
        .arg("--config")
        .arg(config)
        .args(["doctor", "--resolver", resolver]);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_domain_that_publishes_spf_dkim_and_dmarc() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, rsa_record) = generate(dir.path(), "rsa1", "rsa");
    let (ed, ed_record) = generate(dir.path(), "ed1", "ed25519");
    let (addr, server) = dns_server(&[
        (DOMAIN, "v=spf1 mx ip4:127.0.0.1 -all".into()),
        (&format!("rsa1._domainkey.{DOMAIN}"), rsa_record),
        (&format!("ed1._domainkey.{DOMAIN}"), ed_record),
        (
            &format!("_dmarc.{DOMAIN}"),
            "v=DMARC1; p=quarantine; rua=mailto:d@herald.test".into(),
        ),
    ])
    .await;
    let config = config_file(dir.path(), &[("rsa1", &rsa), ("ed1", &ed)], true);
    let resolver = addr.to_string();
    let out = doctor(dir.path(), &config, &resolver).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for expected in [
        "[ok  ] SPF: herald.test publishes",
        "[ok  ] DKIM: rsa1._domainkey.herald.test publishes the public key of herald's rsa-sha256 key",
        "[ok  ] DKIM: ed1._domainkey.herald.test publishes the public key of herald's ed25519-sha256 key",
        "[ok  ] DMARC: _dmarc.herald.test publishes",
        "0 problem(s)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_what_to_publish_when_records_are_missing_or_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, our_record) = generate(dir.path(), "sel", "ed25519");
    let other_dir = tempfile::tempdir().unwrap();
    let (_, other_record) = generate(other_dir.path(), "sel", "ed25519");
    let (addr, server) = dns_server(&[
        (&format!("www.{DOMAIN}"), "unrelated".into()),
        (&format!("sel._domainkey.{DOMAIN}"), other_record),
    ])
    .await;
    let config = config_file(dir.path(), &[("sel", &ours)], false);
    let resolver = addr.to_string();
    let out = doctor(dir.path(), &config, &resolver).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "[FAIL] SPF: herald.test publishes no SPF record",
        "[FAIL] DKIM: the key published at sel._domainkey.herald.test is not the public half of herald's key",
        &our_record,
        "[FAIL] DMARC: no record at _dmarc.herald.test",
        "v=DMARC1; p=none",
        "[warn] postal_address is not set",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_a_reachable_dns_says_so_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &[], true);
    // A UDP socket that reads nothing and answers nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = doctor(dir.path(), &config, &resolver).await;
    let text = stdout(&out);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "doctor took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot ask the DNS"), "{text}");
    assert!(text.contains("could not be made"), "{text}");
    // Checks that need no network are still made.
    assert!(text.contains("[ok  ] postal_address is set"), "{text}");
    drop(silent);
}

/// Issue 17, item 11: a reverse proxy that the web process saw sending
/// `X-Forwarded-For` without being in `signup.trusted_proxies` is named by
/// `herald doctor` with the setting to change; once it is listed, or when
/// there is no database at all, doctor says nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_reverse_proxy_left_out_of_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &[], true);
    // No database yet: nothing to say, and none is created.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = silent.local_addr().unwrap().to_string();
    let text = stdout(&doctor(dir.path(), &config, &resolver).await);
    assert!(!text.contains("trusted_proxies"), "{text}");
    assert!(
        !dir.path().join("herald.db").exists(),
        "doctor created a database"
    );

    let migrated = Command::new(HERALD)
        .env_clear()
        .env("HERALD_DATA_DIR", dir.path())
        .env("HERALD_LOG", "error")
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", stdout(&migrated));
    let store = herald::store::Store::open_existing(&format!(
        "sqlite://{}",
        dir.path().join("herald.db").display()
    ))
    .await
    .unwrap();
    store
        .set_setting(
            herald::web::rate_limit::UNTRUSTED_FORWARDING_SETTING,
            "10.0.0.5 at 2026-12-06T20:00:00Z",
        )
        .await
        .unwrap();
    store.close().await;
    let text = stdout(&doctor(dir.path(), &config, &resolver).await);
    assert!(
        text.contains("[warn] requests from 10.0.0.5 at 2026-12-06T20:00:00Z carried X-Forwarded-For, but 10.0.0.5 is not in signup.trusted_proxies"),
        "{text}"
    );
    assert!(
        text.contains("signup.trusted_proxies = [\"10.0.0.5\"]"),
        "{text}"
    );

    std::fs::write(
        &config,
        format!(
            "{}\n[signup]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    let text = stdout(&doctor(dir.path(), &config, &resolver).await);
    assert!(!text.contains("trusted_proxies"), "{text}");
    drop(silent);
}
