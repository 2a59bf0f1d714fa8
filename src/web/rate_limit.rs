//! Who is posting signups, and how often they may.
//!
//! The client is the connecting address, unless that address is one of the
//! configured trusted proxies: then it is the right-most `X-Forwarded-For`
//! entry that is not a trusted proxy (each proxy appends the address it
//! saw, so entries further left are whatever the client chose to send).
//! Without trusted proxies the header is ignored, so a client cannot dodge
//! the limit by sending one.
//!
//! The limit is a GCRA bucket per client (governor, in memory: one hash
//! lookup and one atomic update per request). An IPv6 client is its /64,
//! the block one host usually gets. Buckets of clients gone quiet are
//! dropped once a minute, so memory follows the clients of the last minute.

use crate::config::{SignupConfig, TrustedProxy};
use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

type PerClient = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

pub struct SignupLimiter {
    per_client: Option<PerClient>,
    trusted: Vec<TrustedProxy>,
    /// Set by the first request whose `X-Forwarded-For` came from a peer
    /// that is not a trusted proxy: said once per process.
    saw_untrusted_forwarding: AtomicBool,
}

/// Where herald keeps the last untrusted peer that sent `X-Forwarded-For`,
/// for `herald doctor`: `IP at RFC 3339 time`.
pub const UNTRUSTED_FORWARDING_SETTING: &str = "untrusted_forwarded_for";

impl std::fmt::Debug for SignupLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupLimiter")
            .field("limited", &self.per_client.is_some())
            .field("trusted", &self.trusted)
            .finish()
    }
}

impl SignupLimiter {
    /// Needs a running tokio runtime (it starts the task that forgets
    /// quiet clients; the task ends when the limiter is dropped).
    pub fn new(config: &SignupConfig) -> Arc<Self> {
        let per_client = NonZeroU32::new(config.per_ip_per_minute)
            .map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        let limiter = Arc::new(Self {
            per_client,
            trusted: config.trusted_proxies.clone(),
            saw_untrusted_forwarding: AtomicBool::new(false),
        });
        if limiter.per_client.is_some() {
            tokio::spawn(forget_quiet_clients(Arc::downgrade(&limiter)));
        }
        limiter
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|p| p.0.contains(&ip))
    }

    /// The first time a request carries `X-Forwarded-For` from a peer that
    /// is not a trusted proxy: that peer, after a warning that names the
    /// setting. Behind a reverse proxy left out of `signup.trusted_proxies`
    /// every reader is the proxy, and the whole site shares one allowance.
    pub fn first_untrusted_forwarder(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !headers.contains_key("x-forwarded-for")
            || self.is_trusted(peer)
            || self.saw_untrusted_forwarding.swap(true, Ordering::Relaxed)
        {
            return None;
        }
        tracing::warn!(
            %peer,
            "requests from {peer} carry X-Forwarded-For, but {peer} is not in signup.trusted_proxies: \
             if it is your reverse proxy, every reader behind it shares one signup allowance \
             (signup.per_ip_per_minute); list it in signup.trusted_proxies \
             (HERALD_SIGNUP__TRUSTED_PROXIES='[\"{peer}\"]'). Said once per process."
        );
        Some(peer)
    }

    /// The address the request came from, as far as it can be trusted.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) if self.is_trusted(ip) => client = ip,
                Some(ip) => return ip,
                // A hop we cannot read: the last proxy we trust is the
                // client, so garbage cannot open a bucket of its own.
                None => return client,
            }
        }
        client
    }

    /// Counts one signup post from `client`; `Err(wait)` when it is over
    /// the limit, with how long until it may post again.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.per_client else {
            return Ok(());
        };
        limiter
            .check_key(&bucket(client))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// An IPv6 client is its /64; an IPv4 client its address.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port, IPv6
/// maybe in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
}

async fn forget_quiet_clients(limiter: Weak<SignupLimiter>) {
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        if let Some(per_client) = &limiter.per_client {
            per_client.retain_recent();
            per_client.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, trusted: &[&str]) -> Arc<SignupLimiter> {
        let config = SignupConfig {
            per_ip_per_minute: per_minute,
            confirmations_per_minute: 0,
            trusted_proxies: trusted
                .iter()
                .map(|s| TrustedProxy::try_from(s.to_string()).unwrap())
                .collect(),
        };
        SignupLimiter::new(&config)
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let h = forwarded("198.51.100.7, 203.0.113.9");
        // No trusted proxy: the header is the client's own words.
        assert_eq!(limiter(1, &[]).client_ip(peer, &h), peer);
        // Behind the proxy: its hop, the right-most entry.
        let l = limiter(1, &["10.0.0.0/8"]);
        assert_eq!(
            l.client_ip(peer, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Two trusted proxies in a row; the client's own entry is skipped.
        let l = limiter(1, &["10.0.0.0/8", "192.0.2.1"]);
        let h = forwarded("1.1.1.1, 203.0.113.9, 192.0.2.1");
        assert_eq!(
            l.client_ip(peer, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Ports, brackets, garbage.
        assert_eq!(
            l.client_ip(peer, &forwarded("[2001:db8::1]:443")),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(l.client_ip(peer, &forwarded("not-an-ip")), peer);
        assert_eq!(l.client_ip(peer, &HeaderMap::new()), peer);
    }

    #[tokio::test]
    async fn an_ipv6_client_is_its_slash_64() {
        let l = limiter(1, &[]);
        assert!(l.check("2001:db8::1".parse().unwrap()).is_ok());
        let wait = l.check("2001:db8::ffff".parse().unwrap()).unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(l.check("2001:db8:0:1::1".parse().unwrap()).is_ok());
        assert!(limiter(0, &[])
            .check("2001:db8::1".parse().unwrap())
            .is_ok());
    }
}
