//! `herald doctor`: what receivers will find when they check the sending
//! domain. SPF on the From and Return-Path domains, each configured DKIM
//! selector's published key against the private key herald signs with,
//! DMARC on the From domain, SPF and DKIM alignment with From, and the
//! settings a bulk sender needs (postal address, unsubscribe by mail). It
//! prints what to publish or fix. Every DNS question has a deadline, so
//! with no network it says so instead of hanging.

use crate::config::Config;
use crate::mail::dkim::DkimKey;
use base64::Engine as _;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, Resolver, TokioResolver};
use std::net::SocketAddr;
use std::time::Duration;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
    /// The DNS could not be asked (no network, resolver down).
    Unknown,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok  ",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Unknown => "??  ",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub verdict: Verdict,
    pub what: String,
    /// What to publish or change, when something is missing or wrong.
    pub fix: Option<String>,
}

/// The outcome of a TXT lookup.
enum Txt {
    Records(Vec<String>),
    None,
    Unreachable(String),
}

struct Dns {
    resolver: TokioResolver,
    server: String,
}

impl Dns {
    fn new(resolver: Option<SocketAddr>, timeout: Duration) -> anyhow::Result<Self> {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.cache_size = 0;
        let (builder, server) = match resolver {
            Some(addr) => {
                let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                (
                    Resolver::builder_with_config(
                        ResolverConfig::from_parts(None, vec![], group),
                        TokioConnectionProvider::default(),
                    ),
                    addr.to_string(),
                )
            }
            None => (
                Resolver::builder_tokio().map_err(|e| {
                    anyhow::anyhow!("reading the system's resolver configuration: {e}")
                })?,
                "the system's resolver (/etc/resolv.conf)".to_string(),
            ),
        };
        Ok(Self {
            resolver: builder.with_options(opts).build(),
            server,
        })
    }

    async fn txt(&self, name: &str) -> Txt {
        // The resolver's own timeout bounds each try; this bounds the whole.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match tokio::time::timeout(Duration::from_secs(10), self.resolver.txt_lookup(fqdn)).await {
            Err(_) => Txt::Unreachable("no answer within 10 s".into()),
            Ok(Ok(lookup)) => Txt::Records(
                lookup
                    .iter()
                    .map(|txt| {
                        txt.txt_data()
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>()
                    })
                    .collect(),
            ),
            Ok(Err(e)) if is_no_records(&e) => Txt::None,
            Ok(Err(e)) => Txt::Unreachable(e.to_string()),
        }
    }
}

fn is_no_records(e: &ResolveError) -> bool {
    e.proto()
        .is_some_and(|p| matches!(p.kind(), ProtoErrorKind::NoRecordsFound { .. }))
}

/// Runs every check; `resolver` overrides the system's (e.g. a local test server).
pub async fn check(
    config: &Config,
    resolver: Option<SocketAddr>,
    timeout: Duration,
) -> anyhow::Result<Vec<Finding>> {
    let dns = Dns::new(resolver, timeout)?;
    let mailer = crate::mail::Mailer::from_config(config)?;
    let from_domain = mailer.from.email.domain().to_ascii_lowercase();
    let return_path_domain = mailer.return_path_domain().to_ascii_lowercase();
    let mut findings = Vec::new();

    // Is the DNS there at all? The From domain's TXT records decide whether
    // the rest are worth asking, and hold its SPF record.
    let from_txt = dns.txt(&from_domain).await;
    if let Txt::Unreachable(error) = &from_txt {
        findings.push(Finding {
            verdict: Verdict::Unknown,
            what: format!("cannot ask the DNS ({}): {error}", dns.server),
            fix: Some(
                "no network, or the resolver does not answer: run herald doctor where the DNS can be reached, or set doctor.resolver".into(),
            ),
        });
        findings.extend(settings(config, &mailer));
        return Ok(findings);
    }

    findings.push(spf(&from_domain, from_txt));
    if return_path_domain != from_domain {
        findings.push(spf(&return_path_domain, dns.txt(&return_path_domain).await));
    }
    match mailer.dkim.as_deref() {
        None => findings.push(Finding {
            verdict: Verdict::Fail,
            what: "no DKIM key configured: messages go out unsigned".into(),
            fix: Some(format!(
                "herald dkim generate --selector herald1 --domain {from_domain}, publish the record it prints, and add the [[dkim.keys]] it shows"
            )),
        }),
        Some(dkim) => {
            for key in dkim.keys() {
                findings.push(dkim_key(&dns, key).await);
                findings.push(aligned(
                    "DKIM",
                    key.domain(),
                    &from_domain,
                    "sign with a key whose domain is the From domain (or its parent)",
                ));
            }
        }
    }
    findings.push(aligned(
        "SPF (Return-Path)",
        &return_path_domain,
        &from_domain,
        "use a bounce_address in the From domain",
    ));
    findings.push(dmarc(&dns, &from_domain).await);
    findings.extend(settings(config, &mailer));
    Ok(findings)
}

/// The SPF finding for `domain` from its TXT records.
fn spf(domain: &str, txt: Txt) -> Finding {
    let records = match txt {
        Txt::Unreachable(e) => return unreachable_finding(&format!("SPF of {domain}"), &e),
        Txt::None => Vec::new(),
        Txt::Records(records) => records,
    };
    let spf: Vec<&String> = records
        .iter()
        .filter(|r| r.to_ascii_lowercase().starts_with("v=spf1"))
        .collect();
    match spf.as_slice() {
        [] => Finding {
            verdict: Verdict::Fail,
            what: format!("SPF: {domain} publishes no SPF record"),
            fix: Some(format!(
                "publish one TXT record at {domain}: \"v=spf1 mx include:<your relay's SPF domain> ~all\" (your relay's documentation names what to include)"
            )),
        },
        [one] if one.trim_end().ends_with("+all") => Finding {
            verdict: Verdict::Fail,
            what: format!("SPF: {domain} publishes {one:?}, which lets anyone send as it"),
            fix: Some("end the record with ~all or -all".into()),
        },
        [one] => Finding {
            verdict: Verdict::Ok,
            what: format!("SPF: {domain} publishes {one:?}"),
            fix: None,
        },
        many => Finding {
            verdict: Verdict::Fail,
            what: format!(
                "SPF: {domain} publishes {} SPF records; receivers treat that as an error (RFC 7208)",
                many.len()
            ),
            fix: Some("merge them into one record".into()),
        },
    }
}

async fn dkim_key(dns: &Dns, key: &DkimKey) -> Finding {
    let name = format!("{}._domainkey.{}", key.selector(), key.domain());
    let record = key.dns_record().unwrap_or_default();
    let publish = format!("publish this TXT record at {name}: \"{record}\"");
    match dns.txt(&name).await {
        Txt::Unreachable(e) => unreachable_finding(&format!("DKIM {name}"), &e),
        Txt::None => Finding {
            verdict: Verdict::Fail,
            what: format!("DKIM: nothing is published at {name}"),
            fix: Some(publish),
        },
        Txt::Records(records) => {
            let Some(published) = records.iter().find(|r| tag(r, "p").is_some()) else {
                return Finding {
                    verdict: Verdict::Fail,
                    what: format!("DKIM: the TXT record at {name} is not a DKIM key record"),
                    fix: Some(publish),
                };
            };
            let published_key = tag(published, "p")
                .map(|p| p.split_whitespace().collect::<String>())
                .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok());
            let ours = key.public_key().ok();
            let kind = tag(published, "k").unwrap_or_else(|| "rsa".into());
            if published_key.is_some()
                && published_key == ours
                && kind.eq_ignore_ascii_case(key.algorithm().key_type())
            {
                Finding {
                    verdict: Verdict::Ok,
                    what: format!(
                        "DKIM: {name} publishes the public key of herald's {} key",
                        key.algorithm().tag()
                    ),
                    fix: None,
                }
            } else {
                Finding {
                    verdict: Verdict::Fail,
                    what: format!(
                        "DKIM: the key published at {name} is not the public half of herald's key: signatures will fail"
                    ),
                    fix: Some(format!("replace the record: {publish}")),
                }
            }
        }
    }
}

async fn dmarc(dns: &Dns, from_domain: &str) -> Finding {
    // The From domain's own record, else its organizational domain's
    // (approximated as the last two labels).
    let labels: Vec<&str> = from_domain.split('.').collect();
    let mut candidates = vec![from_domain.to_string()];
    if labels.len() > 2 {
        candidates.push(labels[labels.len() - 2..].join("."));
    }
    for domain in &candidates {
        let name = format!("_dmarc.{domain}");
        match dns.txt(&name).await {
            Txt::Unreachable(e) => return unreachable_finding(&format!("DMARC {name}"), &e),
            Txt::None => continue,
            Txt::Records(records) => {
                if let Some(record) = records
                    .iter()
                    .find(|r| r.to_ascii_lowercase().starts_with("v=dmarc1"))
                {
                    let policy = tag(record, "p").unwrap_or_default().to_ascii_lowercase();
                    return match policy.as_str() {
                        "none" | "quarantine" | "reject" => Finding {
                            verdict: Verdict::Ok,
                            what: format!("DMARC: {name} publishes {record:?} (policy {policy})"),
                            fix: None,
                        },
                        _ => Finding {
                            verdict: Verdict::Fail,
                            what: format!(
                                "DMARC: {name} publishes {record:?} with no valid p= policy"
                            ),
                            fix: Some("set p=none, p=quarantine or p=reject".into()),
                        },
                    };
                }
            }
        }
    }
    Finding {
        verdict: Verdict::Fail,
        what: format!("DMARC: no record at _dmarc.{from_domain}"),
        fix: Some(format!(
            "publish a TXT record at _dmarc.{from_domain}: \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{from_domain}\" (move to quarantine once reports look right)"
        )),
    }
}

/// Relaxed alignment: the same domain, or one under the other.
fn aligned(what: &str, domain: &str, from_domain: &str, fix: &str) -> Finding {
    let (a, b) = (
        domain.to_ascii_lowercase(),
        from_domain.to_ascii_lowercase(),
    );
    let ok = a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"));
    Finding {
        verdict: if ok { Verdict::Ok } else { Verdict::Fail },
        what: format!(
            "{what} domain {domain} {} the From domain {from_domain}",
            if ok {
                "aligns with"
            } else {
                "does not align with"
            }
        ),
        fix: (!ok).then(|| fix.to_string()),
    }
}

/// What the running herald saw that the configuration does not cover: a
/// peer that sent `X-Forwarded-For` without being a trusted proxy (the web
/// process records it, once per run). Nothing when there is no database yet.
pub async fn seen_by_herald(config: &Config) -> Vec<Finding> {
    let Ok(store) = crate::store::Store::open_existing(&config.database_url()).await else {
        return Vec::new();
    };
    let seen = store
        .setting(crate::web::rate_limit::UNTRUSTED_FORWARDING_SETTING)
        .await
        .ok()
        .flatten();
    store.close().await;
    let Some(seen) = seen else {
        return Vec::new();
    };
    let peer = seen.split_whitespace().next().unwrap_or_default();
    let now_trusted = peer.parse::<std::net::IpAddr>().is_ok_and(|ip| {
        config
            .signup
            .trusted_proxies
            .iter()
            .any(|p| p.0.contains(&ip))
    });
    if now_trusted {
        return Vec::new();
    }
    vec![Finding {
        verdict: Verdict::Warn,
        what: format!(
            "requests from {seen} carried X-Forwarded-For, but {peer} is not in signup.trusted_proxies: if it is your reverse proxy, every reader behind it shares one signup allowance"
        ),
        fix: Some(format!(
            "list the proxy in signup.trusted_proxies = [\"{peer}\"] (HERALD_SIGNUP__TRUSTED_PROXIES)"
        )),
    }]
}

/// Settings that are not DNS: checked without the network.
fn settings(config: &Config, mailer: &crate::mail::Mailer) -> Vec<Finding> {
    let mut out = Vec::new();
    let postal = config
        .postal_address
        .as_deref()
        .is_some_and(|a| !a.trim().is_empty());
    out.push(Finding {
        verdict: if postal { Verdict::Ok } else { Verdict::Warn },
        what: if postal {
            "postal_address is set: every digest's footer shows it".into()
        } else {
            "postal_address is not set: the US CAN-SPAM Act requires a postal address in commercial mail".into()
        },
        fix: (!postal).then(|| "set postal_address = \"Your name, street, city, country\"".into()),
    });
    let base_https = config.base_url().starts_with("https://");
    out.push(Finding {
        verdict: if base_https { Verdict::Ok } else { Verdict::Warn },
        what: format!("base_url is {}", config.base_url()),
        fix: (!base_https).then(|| {
            "serve herald over https and set base_url: mailbox providers expect https unsubscribe links".into()
        }),
    });
    if config.inbound.unsubscribe_address.is_none() {
        out.push(Finding {
            verdict: Verdict::Warn,
            what: format!(
                "inbound.unsubscribe_address is not set: the List-Unsubscribe mailto goes to the From address {}",
                mailer.from.email
            ),
            fix: Some("set inbound.unsubscribe_address and route it to herald inbound (see docs/delivery.md)".into()),
        });
    }
    out
}

fn unreachable_finding(what: &str, error: &str) -> Finding {
    Finding {
        verdict: Verdict::Unknown,
        what: format!("{what}: the DNS did not answer: {error}"),
        fix: None,
    }
}

/// The value of tag `name` in a `k=v; k=v` record.
fn tag(record: &str, name: &str) -> Option<String> {
    record.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Prints the findings; true when nothing failed or could not be checked.
pub fn print(findings: &[Finding]) -> bool {
    for f in findings {
        println!("[{}] {}", f.verdict.label(), f.what);
        if let Some(fix) = &f.fix {
            println!("       → {fix}");
        }
    }
    let failed = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fail)
        .count();
    let unknown = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Unknown)
        .count();
    let warned = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Warn)
        .count();
    println!();
    if unknown > 0 {
        println!("{unknown} check(s) could not be made: the DNS could not be reached");
    }
    println!("{failed} problem(s), {warned} warning(s)");
    failed == 0 && unknown == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_case_insensitively_with_spaces() {
        assert_eq!(
            tag("v=DKIM1; k=ed25519; p=abc", "p").as_deref(),
            Some("abc")
        );
        assert_eq!(tag("v=DMARC1;P = reject", "p").as_deref(), Some("reject"));
        assert_eq!(tag("v=spf1 -all", "p"), None);
    }

    #[test]
    fn alignment_is_relaxed() {
        assert_eq!(
            aligned("x", "news.example.com", "example.com", "").verdict,
            Verdict::Ok
        );
        assert_eq!(
            aligned("x", "example.com", "mail.example.com", "").verdict,
            Verdict::Ok
        );
        assert_eq!(
            aligned("x", "example.net", "example.com", "").verdict,
            Verdict::Fail
        );
        assert_eq!(
            aligned("x", "badexample.com", "example.com", "").verdict,
            Verdict::Fail
        );
    }
}
