//! The delivery worker: claims due work with a lease, sends it, records the
//! outcome. A worker killed at any moment loses nothing: what it held is
//! taken over when the lease runs out.

mod backoff;
mod rate;
pub mod servers;
pub mod worker;

pub use backoff::retry_delay_ms;
pub use worker::Worker;
