//! herald: a self-hosted newsletter service for news sites. Visitors
//! subscribe with double opt-in; digests of new articles go out over SMTP on
//! a schedule, each copy with its own one-click unsubscribe link.

pub mod articles;
pub mod bench;
pub mod cli;
pub mod config;
pub mod config_env;
pub mod delivery;
pub mod digest;
pub mod doctor;
pub mod domain;
pub mod feeds;
#[cfg(test)]
mod fuzz_cases;
pub mod inbound;
pub mod mail;
pub mod outgoing;
pub mod private_files;
pub mod redact;
pub mod scheduler;
pub mod signup_writer;
pub mod startup;
pub mod state;
pub mod store;
pub mod subscriptions;
pub mod web;
pub mod webhooks;
