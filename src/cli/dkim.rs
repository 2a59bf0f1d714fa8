//! `herald dkim generate`: a new DKIM private key, and the DNS record to
//! publish for it.

use crate::config::Config;
use crate::mail::dkim::{self, Algorithm, DkimKey};
use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Write a new private key (mode 0600) and print the TXT record to
    /// publish at SELECTOR._domainkey.DOMAIN and the configuration to add.
    ///
    /// The default key is RSA-2048 because every receiver verifies RSA
    /// signatures, while many large mailbox providers do not verify
    /// Ed25519 (RFC 8463) yet: mail signed with Ed25519 alone is unsigned
    /// to them.
    ///
    /// To sign each message twice (RSA for everyone, Ed25519 for receivers
    /// that check it), generate both keys with two selectors, publish both
    /// records, and list both under [[dkim.keys]] in herald.toml:
    ///
    ///   herald dkim generate --selector herald-rsa --domain news.example.com
    ///   herald dkim generate --selector herald-ed --domain news.example.com --algorithm ed25519
    ///
    /// The domain must be one receivers look up: with no --domain, the From
    /// address's domain is used, and a local one (localhost, a single
    /// label, .local, .localhost, .test, .invalid, .example, an IP address)
    /// is refused.
    #[command(verbatim_doc_comment)]
    Generate {
        /// The record's name: SELECTOR._domainkey.DOMAIN (e.g. herald2026).
        #[arg(long)]
        selector: String,
        /// The domain mail is sent from (the From address's, or a parent
        /// of it), e.g. news.example.com. Default: the From address's
        /// domain, unless that is local.
        #[arg(long)]
        domain: Option<String>,
        /// rsa (2048 bits, verified by every receiver) or ed25519.
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Rsa)]
        algorithm: KeyAlgorithm,
        /// Where to write the key (never overwritten); default:
        /// DATA_DIR/dkim-SELECTOR-ALGORITHM.pem.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyAlgorithm {
    /// RSA-2048, which every receiver verifies.
    Rsa,
    /// Ed25519 (RFC 8463): small and fast; pair it with an RSA key while
    /// receivers adopt it.
    Ed25519,
}

pub fn run(config: &Config, cmd: DkimCommand) -> anyhow::Result<()> {
    match cmd {
        DkimCommand::Generate {
            selector,
            domain,
            algorithm,
            out,
        } => {
            let algorithm = match algorithm {
                KeyAlgorithm::Rsa => Algorithm::Rsa,
                KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
            };
            let domain = match domain {
                Some(d) => {
                    if let Some(why) = dkim::why_not_public(&d) {
                        // Given on purpose (a test zone, a lab): said, not refused.
                        tracing::warn!(domain = %d, "--domain {d} is {why}: receivers on the internet will not find this record");
                    }
                    d
                }
                None => from_domain(config)?,
            };
            // Checked before a key is made, so a bad name writes nothing.
            dkim::check_names(&selector, &domain)?;
            let path = match out {
                Some(p) => p,
                None => {
                    crate::private_files::create_private_dir(&config.data_dir)
                        .with_context(|| format!("creating {}", config.data_dir.display()))?;
                    config
                        .data_dir
                        .join(format!("dkim-{selector}-{}.pem", algorithm.key_type()))
                }
            };
            dkim::generate(algorithm, &path)?;
            let key = DkimKey::load(&path, &selector, &domain)?;
            let record = key.dns_record()?;
            let name = format!("{}._domainkey.{}", key.selector(), key.domain());
            println!("wrote {} ({}, mode 0600)", path.display(), algorithm.tag());
            println!();
            println!("Publish this TXT record at {name}:");
            println!();
            println!("{record}");
            println!();
            println!("In a zone file (strings of at most 255 characters):");
            println!();
            let strings: Vec<String> = record
                .as_bytes()
                .chunks(255)
                .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                .collect();
            println!("{name}. IN TXT ( {} )", strings.join(" "));
            println!();
            println!("Then add to herald.toml:");
            println!();
            println!("[[dkim.keys]]");
            println!("selector = \"{}\"", key.selector());
            println!("domain = \"{}\"", key.domain());
            println!("private_key_file = \"{}\"", path.display());
            Ok(())
        }
    }
}

/// The From address's domain, when it is one receivers look up. herald's
/// default From is `herald@localhost`: a record for it would be published
/// nowhere and leave every message unsigned in practice.
fn from_domain(config: &Config) -> anyhow::Result<String> {
    let from = crate::mail::parse_from(&config.from)?;
    let domain = from.email.domain().to_string();
    if let Some(why) = dkim::why_not_public(&domain) {
        anyhow::bail!(
            "no --domain given, and the From address's domain {domain:?} (from = {:?}) is {why}; \
pass the domain your mail is sent from, e.g. --domain news.example.com, \
and set from = \"Your site <news@news.example.com>\" in herald.toml so that signatures match the From address",
            config.from
        );
    }
    Ok(domain)
}
