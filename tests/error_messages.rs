//! What the operator reads when something is wrong: the real `herald`
//! binary run with one wrong input at a time. Every message must name the
//! thing that is wrong (the key, the digest, the server, the file), show
//! the value unless it may be a secret, and say what to do; none may
//! blame something that did not fail ("opening herald's database:" for a
//! DKIM key) or carry figment's `default.` profile prefix.

mod common;

use common::{fresh_database, Backend};
use herald::domain::time::now_millis;
use herald::store::Store;
use std::path::Path;
use std::process::{Command, Output};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// One wrong input and what its message must (and must not) say.
struct Case {
    what: &'static str,
    /// Written as herald.toml in the working directory when set.
    toml: Option<&'static str>,
    env: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    expect: &'static [&'static str],
    forbid: &'static [&'static str],
}

/// Said by no message: the blanket context of before, and figment's
/// profile prefix and its "may be a secret" for any key ending in `_url`.
const NEVER: &[&str] = &["opening herald's database:", "default.", "may be a secret"];

const CASES: &[Case] = &[
    Case {
        what: "an unknown key whose name ends in _url",
        toml: Some("logo_url = \"https://news.example.com/logo.png\"\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &[
            "unknown key `logo_url` in ",
            "herald.toml",
            "herald has no such setting",
            "the keys at the top level are ",
            "`site_url`",
        ],
        forbid: &["invalid value"],
    },
    Case {
        what: "a misspelt key in a section",
        toml: Some("[delivery]\nconcurency = 4\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &[
            "unknown key `delivery.concurency`",
            "did you mean `concurrency`?",
            "the keys in `delivery` are ",
        ],
        forbid: &[],
    },
    Case {
        what: "an unknown HERALD_ variable",
        toml: None,
        env: &[("HERALD_LOGO_URL", "https://news.example.com/logo.png")],
        args: &["digest", "status"],
        expect: &["unknown key `logo_url` from HERALD_LOGO_URL", "`site_url`"],
        forbid: &[],
    },
    Case {
        what: "a known key of the wrong type",
        toml: Some("[delivery]\nconcurrency = \"eight\"\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &[
            "`delivery.concurrency` in ",
            "herald.toml",
            "\"eight\"",
            "expected u32",
            "write ",
        ],
        forbid: &[],
    },
    Case {
        what: "a secret of the wrong type",
        toml: Some("secret = [\"hunter2-link-secret\"]\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &["`secret` in ", "expected ", "the value is not shown"],
        forbid: &["hunter2"],
    },
    Case {
        what: "a negative count, from the environment",
        toml: None,
        env: &[("HERALD_DELIVERY__CONCURRENCY", "-3")],
        args: &["digest", "status"],
        expect: &[
            "`delivery.concurrency` from HERALD_DELIVERY__CONCURRENCY",
            "-3",
        ],
        forbid: &[],
    },
    Case {
        what: "an SMTP server written as a bare URL with a password",
        toml: Some("smtp_servers = [\"smtp://news:hunter2@relay.example.com\"]\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &["`smtp_servers[0]` in ", "the value is not shown"],
        forbid: &["hunter2"],
    },
    Case {
        what: "a misspelt key of an SMTP server",
        toml: Some("[[smtp_servers]]\nurl = \"smtp://relay.example.com\"\nwieght = 2\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &[
            "unknown key `smtp_servers[0].wieght`",
            "did you mean `weight`?",
        ],
        forbid: &[],
    },
    Case {
        what: "a base_url without a scheme",
        toml: None,
        env: &[("HERALD_BASE_URL", "news.example.com")],
        args: &["digest", "status"],
        expect: &[
            "base_url = \"news.example.com\" from HERALD_BASE_URL",
            "write base_url = \"https://news.example.com\"",
        ],
        forbid: &[],
    },
    Case {
        what: "pausing a digest that does not exist",
        toml: None,
        env: &[],
        args: &["digest", "pause", "999"],
        expect: &["no digest 999", "`herald digest status` lists"],
        forbid: &["not queued"],
    },
    Case {
        what: "resuming a digest that does not exist",
        toml: None,
        env: &[],
        args: &["digest", "resume", "999"],
        expect: &["no digest 999", "`herald digest status` lists"],
        forbid: &["not paused"],
    },
    Case {
        what: "cancelling a digest that does not exist",
        toml: None,
        env: &[],
        args: &["digest", "cancel", "999"],
        expect: &["no digest 999", "`herald digest status` lists"],
        forbid: &["not queued"],
    },
    Case {
        what: "the status of a digest that does not exist",
        toml: None,
        env: &[],
        args: &["digest", "status", "999"],
        expect: &["no digest 999", "`herald digest status` lists"],
        forbid: &[],
    },
    Case {
        what: "removing a feed that does not exist",
        toml: None,
        env: &[],
        args: &["feed", "remove", "999"],
        expect: &["no feed 999", "`herald feed list`"],
        forbid: &[],
    },
    Case {
        what: "removing an article that does not exist",
        toml: None,
        env: &[],
        args: &["article", "remove", "999"],
        expect: &["no article 999", "`herald article list`"],
        forbid: &[],
    },
    Case {
        what: "resuming an SMTP server that does not exist",
        toml: None,
        env: &[("HERALD_SMTP_URL", "smtp://127.0.0.1:2525")],
        args: &["smtp", "resume", "nosuch"],
        expect: &[
            "no SMTP server named \"nosuch\"",
            "configured: 127.0.0.1:2525",
            "`herald smtp list`",
        ],
        forbid: &["not stopped"],
    },
    Case {
        what: "a cron minute out of range",
        toml: None,
        env: &[("HERALD_SCHEDULE__CRON", "61 7 * * *")],
        args: &["digest", "status"],
        expect: &[
            "schedule.cron = \"61 7 * * *\"",
            "minute 61 is out of range 0–59",
            "\"0 7 * * *\"",
        ],
        forbid: &["Number out of bounds"],
    },
    Case {
        what: "a cron hour out of range in a list",
        toml: Some("[schedule]\ncron = \"0 7,25 * * *\"\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &["hour 25 is out of range 0–23"],
        forbid: &[],
    },
    Case {
        what: "a cron expression with four fields",
        toml: None,
        env: &[("HERALD_SCHEDULE__CRON", "0 7 * *")],
        args: &["digest", "status"],
        expect: &["it has 4 fields where five are needed", "minute hour"],
        forbid: &[],
    },
    Case {
        what: "an unknown time zone",
        toml: None,
        env: &[("HERALD_SCHEDULE__TIMEZONE", "Europe/Londn")],
        args: &["digest", "status"],
        expect: &[
            "schedule.timezone = \"Europe/Londn\"",
            "\"Europe/London\"",
            "reading the [schedule] settings",
        ],
        forbid: &[],
    },
    Case {
        what: "an unencoded / in the SMTP password",
        toml: None,
        env: &[("HERALD_SMTP_URL", "smtp://news:pa/ss@relay.example.com:587")],
        args: &["digest", "status"],
        expect: &[
            "reading the SMTP settings",
            "smtp://news:***@relay.example.com:587",
            "must be percent-encoded",
            "/ as %2F",
        ],
        forbid: &["pa/ss", "not a URL"],
    },
    Case {
        what: "an unencoded / after digits in the SMTP password",
        toml: None,
        env: &[("HERALD_SMTP_URL", "smtp://news:12/hunter2@relay.example.com")],
        args: &["smtp", "check"],
        expect: &["smtp://news:***@relay.example.com", "/ as %2F"],
        forbid: &["hunter2"],
    },
    Case {
        what: "a misspelt SMTP URL parameter next to a password",
        toml: None,
        env: &[(
            "HERALD_SMTP_URL",
            "smtp://news:hunter2@relay.example.com:587?tsl=required",
        )],
        args: &["digest", "status"],
        expect: &[
            "smtp://news:***@relay.example.com:587?tsl=required",
            "unknown parameter \"tsl\"",
            "known: tls, ca_file, tls_pin, allow_plain_auth",
        ],
        forbid: &["hunter2"],
    },
    Case {
        what: "a ca_file that does not exist",
        toml: None,
        env: &[(
            "HERALD_SMTP_URL",
            "smtp://127.0.0.1:2525?tls=required&ca_file=/nonexistent/relay-ca.pem",
        )],
        args: &["digest", "status"],
        expect: &[
            "reading the SMTP settings",
            "ca_file=/nonexistent/relay-ca.pem",
            "No such file",
            "give the path of a PEM file",
        ],
        forbid: &[],
    },
    Case {
        what: "a tls_pin over an unencrypted connection",
        toml: None,
        env: &[(
            "HERALD_SMTP_URL",
            "smtp://127.0.0.1:2525?tls=none&tls_pin=/etc/relay.pem",
        )],
        args: &["smtp", "check"],
        expect: &["need TLS", "tls=required"],
        forbid: &[],
    },
    Case {
        what: "both smtp_url and smtp_servers",
        toml: Some("smtp_url = \"smtp://a.example.com\"\n[[smtp_servers]]\nurl = \"smtp://b.example.com\"\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &["smtp_url and smtp_servers are both set", "keep one"],
        forbid: &[],
    },
    Case {
        what: "a DKIM key file that does not exist",
        toml: Some("[[dkim.keys]]\nselector = \"herald\"\ndomain = \"news.example.com\"\nprivate_key_file = \"missing-dkim.pem\"\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &[
            "reading the DKIM keys",
            "missing-dkim.pem",
            "No such file",
            "herald dkim generate",
        ],
        forbid: &[],
    },
    Case {
        what: "a feed poll interval out of range",
        toml: None,
        env: &[("HERALD_FEEDS__POLL_INTERVAL_SECS", "5")],
        args: &["digest", "status"],
        expect: &[
            "reading the [feeds] settings",
            "feeds.poll_interval_secs = 5 is refused",
            "from 60 to 604800",
        ],
        forbid: &[],
    },
    Case {
        what: "a From that is not an address",
        toml: None,
        env: &[("HERALD_FROM", "the newsletter")],
        args: &["digest", "status"],
        expect: &[
            "reading the mail settings",
            "from = \"the newsletter\" is not an email address",
            "Newsletter <news@example.com>",
        ],
        forbid: &[],
    },
    Case {
        what: "a bounce address without a domain",
        toml: None,
        env: &[("HERALD_INBOUND__BOUNCE_ADDRESS", "bounces")],
        args: &["digest", "status"],
        expect: &[
            "inbound.bounce_address = \"bounces\" is not an email address",
            "bounces@example.com",
        ],
        forbid: &["From address"],
    },
    Case {
        what: "a bind address that is not one",
        toml: None,
        env: &[("HERALD_BIND", "localhost")],
        args: &["serve"],
        expect: &[
            "bind = \"localhost\": cannot listen there",
            "\"127.0.0.1:8080\"",
        ],
        forbid: &[],
    },
    Case {
        what: "a DKIM key without a selector",
        toml: Some("[[dkim.keys]]\nprivate_key_file = \"dkim.pem\"\n"),
        env: &[],
        args: &["digest", "status"],
        expect: &["lacks the key `selector`", "add it"],
        forbid: &[],
    },
];

fn herald(db_url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATABASE_URL", db_url)
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_LOG", "warn")
        .current_dir(dir);
    cmd
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn each_wrong_input_gets_a_message_naming_it_and_what_to_do(backend: Backend) {
    let db = fresh_database(backend).await;
    let setup = tempfile::tempdir().expect("temp dir");
    let migrated = herald(&db.url, setup.path())
        .arg("migrate")
        .output()
        .expect("run herald migrate");
    assert!(migrated.status.success(), "{}", said(&migrated));
    let mut wrong = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(toml) = case.toml {
            std::fs::write(dir.path().join("herald.toml"), toml).expect("write herald.toml");
        }
        let mut cmd = herald(&db.url, dir.path());
        cmd.args(case.args);
        for (k, v) in case.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run herald");
        let text = said(&out);
        if out.status.success() {
            wrong.push(format!("{}: herald succeeded:\n{text}", case.what));
            continue;
        }
        for e in case.expect {
            if !text.contains(e) {
                wrong.push(format!("{}: lacks {e:?}:\n{text}", case.what));
            }
        }
        for f in case.forbid.iter().chain(NEVER) {
            if text.contains(f) {
                wrong.push(format!("{}: says {f:?}:\n{text}", case.what));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// `herald smtp resume` does not re-read the configuration; it says so,
/// and points at restarting and at `herald smtp check`.
async fn smtp_resume_says_the_running_server_keeps_its_configuration(backend: Backend) {
    let db = fresh_database(backend).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store
        .setting_or_insert("link_secret", "test-link-secret")
        .await
        .unwrap();
    let now = now_millis();
    store
        .record_smtp_health(
            "127.0.0.1:2525",
            "stopped",
            Some("127.0.0.1:2525 refused the credentials: 535"),
            now,
            now,
        )
        .await
        .unwrap();
    let out = herald(&db.url, dir.path())
        .env("HERALD_SMTP_URL", "smtp://127.0.0.1:2525")
        .args(["smtp", "resume", "127.0.0.1:2525"])
        .output()
        .expect("run herald smtp resume");
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    for e in [
        "127.0.0.1:2525 resumed",
        "with the configuration it was started with",
        "does not re-read the configuration",
        "restarted",
        "herald smtp check",
    ] {
        assert!(text.contains(e), "lacks {e:?}: {text}");
    }
    let rows = store.smtp_health().await.unwrap();
    assert_eq!(rows[0].state, "resumed");
    // Resuming again: not stopped any more, and the message says its state.
    let again = herald(&db.url, dir.path())
        .env("HERALD_SMTP_URL", "smtp://127.0.0.1:2525")
        .args(["smtp", "resume", "127.0.0.1:2525"])
        .output()
        .expect("run herald smtp resume");
    let text = said(&again);
    assert!(!again.status.success(), "{text}");
    assert!(
        text.contains("\"127.0.0.1:2525\" is resumed, not stopped: nothing to resume"),
        "{text}"
    );
    store.close().await;
}

both_backends!(
    each_wrong_input_gets_a_message_naming_it_and_what_to_do,
    smtp_resume_says_the_running_server_keeps_its_configuration,
);
