//! Every HTTP request herald makes to a server it does not run (feeds, SNS
//! certificates and SubscribeURLs, outgoing webhooks) goes through one
//! guarded client, so that a URL from outside cannot make herald read from
//! the network it runs in: a feed that redirects to
//! `http://127.0.0.1:18441/internal.xml`, a host name whose DNS answer is
//! `10.0.0.5`, or an IPv4 address written as IPv6 (`::ffff:169.254.169.254`).
//!
//! The address checked is the address connected to:
//! - a host name is resolved by [`GuardedResolver`], which keeps only the
//!   addresses the policy allows, so a name that resolves to a public
//!   address once and to 127.0.0.1 the next time (DNS rebinding) is
//!   checked at the resolution the connection uses;
//! - reqwest does not ask a resolver about IP literals, so the URL's host is
//!   checked when a request is made ([`GuardedClient::get`]) and at every
//!   redirect hop (the redirect policy built here);
//! - proxies from the environment (`HTTP_PROXY`) are not used: through a
//!   proxy, herald would resolve the proxy's name and never the target's.
//!
//! Refused by default: loopback, private (RFC 1918, fc00::/7), link-local
//! (169.254/16, fe80::/10, which hold the cloud metadata services at
//! 169.254.169.254 and fd00:ec2::254), CGNAT (100.64/10), unspecified,
//! multicast, broadcast and the other reserved, documentation and
//! benchmarking ranges, and each of these written as IPv4-mapped,
//! IPv4-compatible, NAT64 or 6to4 IPv6. The operator may allow ranges by
//! name with `network.allow_private` (for a feed on the same host, say);
//! nothing is allowed by default.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// Why herald did not connect. Its text is shown to the operator (the
/// feed's last error) and names the setting that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("refused to connect to {} ({range}): herald fetches nothing from private or reserved addresses unless network.allow_private lists them", where_to(host, ip))]
    Address {
        host: String,
        ip: IpAddr,
        range: &'static str,
    },
    #[error("refused to fetch {0:?}: only http and https URLs are fetched")]
    Scheme(String),
    #[error("{0} has no address")]
    NoAddress(String),
}

/// `127.0.0.3`, or `evil.example at 127.0.0.3` when a name led there.
fn where_to(host: &str, ip: &IpAddr) -> String {
    if host.trim_matches(['[', ']']) == ip.to_string() {
        ip.to_string()
    } else {
        format!("{host} at {ip}")
    }
}

/// A range of addresses the operator allows herald to connect to although
/// it is private or reserved: `127.0.0.2`, `10.1.0.0/16`, `fd12::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowedRange(pub IpNet);

impl TryFrom<String> for AllowedRange {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(|net| AllowedRange(net.trunc()))
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
    }
}

impl From<AllowedRange> for String {
    fn from(r: AllowedRange) -> String {
        r.0.to_string()
    }
}

/// IPv4 ranges no outgoing request may reach, with the name the refusal
/// gives. Order matters only for the name: the first match is reported.
const REFUSED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified / this network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "carrier-grade NAT"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 169, 254), 32, "cloud metadata"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// IPv6 ranges refused outright. Forms that carry an IPv4 address
/// (mapped, compatible, NAT64, 6to4) are judged by that address instead.
const REFUSED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local NAT64",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0),
        48,
        "benchmarking",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        128,
        "cloud metadata",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (private)",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    Ipv4Net::new(net, len).is_ok_and(|n| n.contains(&ip))
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    Ipv6Net::new(net, len).is_ok_and(|n| n.contains(&ip))
}

/// The IPv4 address an IPv6 address stands for, if it is written as one:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, not `::`
/// or `::1`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last_two = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && ip != Ipv6Addr::UNSPECIFIED && ip != Ipv6Addr::LOCALHOST {
        return Some(last_two);
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return Some(last_two);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// The name of the refused range `ip` is in, or None for an address on
/// the public internet.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => REFUSED_V4
            .iter()
            .find(|(net, len, _)| in_v4(v4, *net, *len))
            .map(|(_, _, name)| *name),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return refused_range(IpAddr::V4(v4));
            }
            REFUSED_V6
                .iter()
                .find(|(net, len, _)| in_v6(v6, *net, *len))
                .map(|(_, _, name)| *name)
        }
    }
}

/// Which addresses outgoing requests may connect to. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Arc<[IpNet]>,
}

/// What a guarded client needs besides the guard.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Redirects followed at most; each hop is checked. 0: none followed.
    pub max_redirects: usize,
    pub user_agent: &'static str,
}

impl Guard {
    /// A guard that allows `allowed` besides the public internet.
    pub fn new(allowed: &[AllowedRange]) -> Self {
        Self {
            allowed: allowed.iter().map(|r| r.0).collect(),
        }
    }

    /// Only the public internet: what herald connects to with no
    /// `network.allow_private`.
    pub fn public_only() -> Self {
        Self::default()
    }

    fn is_allowed(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)))
    }

    /// Ok when herald may connect to `ip` (reached through `host`).
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        match refused_range(ip) {
            Some(range) if !self.is_allowed(ip) => Err(Refused::Address {
                host: host.to_string(),
                ip,
                range,
            }),
            _ => Ok(()),
        }
    }

    /// Checks what can be checked from the URL alone: an http(s) scheme,
    /// and an IP literal host (host names are checked when resolved).
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_string()));
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Refused::NoAddress(url.as_str().to_string())),
        }
    }

    /// A client whose every connection, first request and redirects alike,
    /// is checked by this guard. Callers cannot loosen it: the resolver,
    /// redirect policy and proxy setting are fixed here.
    pub fn client(&self, settings: &ClientSettings) -> Result<GuardedClient, reqwest::Error> {
        let guard = self.clone();
        let max_redirects = settings.max_redirects;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(TooManyRedirects);
            }
            match guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                guard: self.clone(),
            }))
            .no_proxy()
            .redirect(redirects)
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent)
            .build()?;
        Ok(GuardedClient {
            http,
            guard: self.clone(),
        })
    }
}

/// The redirect limit was reached.
#[derive(Debug, thiserror::Error)]
#[error("too many redirects")]
pub struct TooManyRedirects;

/// A reqwest client behind the guard. Requests start from [`Self::get`],
/// which checks the URL's own host before anything is sent.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    http: reqwest::Client,
    guard: Guard,
}

impl GuardedClient {
    pub fn get(&self, url: &url::Url) -> Result<reqwest::RequestBuilder, Refused> {
        self.guard.check_url(url)?;
        Ok(self.http.get(url.clone()))
    }

    /// The bare client, for a caller that only ever requests URLs whose
    /// host is a name it has checked (the SNS code accepts only
    /// `*.amazonaws.com` names): names still go through the guarded
    /// resolver and redirects through the guarded policy, but an IP
    /// literal in a URL given to it directly is not checked.
    pub fn for_checked_host_names(self) -> reqwest::Client {
        self.http
    }
}

/// The `Refused` (or redirect limit) somewhere in a reqwest error's chain
/// of causes, if that is why the request failed.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

/// Whether the redirect limit stopped a request.
pub fn too_many_redirects(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<TooManyRedirects>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Resolves host names as the system does, then keeps only the addresses
/// the guard allows; none left is an error naming the first refused one.
struct GuardedResolver {
    guard: Guard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut kept = Vec::new();
            let mut first_refusal = None;
            for addr in resolved {
                match guard.check_ip(&host, addr.ip()) {
                    Ok(()) => kept.push(addr),
                    Err(refused) => {
                        first_refusal.get_or_insert(refused);
                    }
                }
            }
            if kept.is_empty() {
                let refused = first_refusal.unwrap_or(Refused::NoAddress(host));
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_reserved_addresses_are_refused_in_every_spelling() {
        for refused in [
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.192",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            // IPv4 written as IPv6.
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(refused_range(ip(refused)).is_some(), "{refused} passed");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
        ] {
            assert_eq!(refused_range(ip(public)), None, "{public} refused");
        }
        assert_eq!(refused_range(ip("169.254.169.254")), Some("cloud metadata"));
        assert_eq!(refused_range(ip("::ffff:127.0.0.1")), Some("loopback"));
    }

    #[test]
    fn an_allowed_range_allows_only_itself() {
        let guard = Guard::new(&[AllowedRange::try_from("127.0.0.2".to_string()).unwrap()]);
        assert!(guard.check_ip("x", ip("127.0.0.2")).is_ok());
        assert!(guard.check_ip("x", ip("::ffff:127.0.0.2")).is_ok());
        let e = guard.check_ip("x", ip("127.0.0.3")).unwrap_err();
        assert!(e.to_string().contains("x at 127.0.0.3 (loopback)"), "{e}");
        let e = guard.check_ip("127.0.0.3", ip("127.0.0.3")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("refused to connect to 127.0.0.3 (loopback): "),
            "{e}"
        );
        assert!(guard.check_ip("x", ip("127.0.0.1")).is_err());
        assert!(Guard::public_only().check_ip("x", ip("127.0.0.2")).is_err());
        assert!(Guard::public_only().check_ip("x", ip("1.1.1.1")).is_ok());
        for bad in ["", "localhost", "10.0.0.0/33", "1.2.3"] {
            assert!(AllowedRange::try_from(bad.to_string()).is_err(), "{bad}");
        }
        assert_eq!(
            String::from(AllowedRange::try_from("10.1.2.3/8".to_string()).unwrap()),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn ip_literal_urls_are_checked_however_they_are_written() {
        let guard = Guard::public_only();
        for refused in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://[::ffff:7f00:1]/",
            "http://[::1]:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "file:///etc/passwd",
            "gopher://1.1.1.1/",
        ] {
            let url = url::Url::parse(refused).unwrap();
            assert!(guard.check_url(&url).is_err(), "{refused} passed");
        }
        for fine in ["https://news.example.com/feed", "http://1.1.1.1/"] {
            assert!(guard.check_url(&url::Url::parse(fine).unwrap()).is_ok());
        }
    }
}
