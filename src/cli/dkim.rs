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
    Generate {
        /// The record's name: SELECTOR._domainkey.DOMAIN (e.g. herald2026).
        #[arg(long)]
        selector: String,
        /// Default: the From address's domain.
        #[arg(long)]
        domain: Option<String>,
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Ed25519)]
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
                Some(d) => d,
                None => crate::mail::parse_from(&config.from)?
                    .email
                    .domain()
                    .to_string(),
            };
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
            // Checked before a key is made, so a bad name writes nothing.
            dkim::check_names(&selector, &domain)?;
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
