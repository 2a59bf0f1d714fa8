//! Several SMTP servers with weights, and how herald treats a server that
//! fails or throttles.
//!
//! - A server whose new connections keep failing (refused, no greeting, TLS
//!   or AUTH failed) is left alone for a cool-down; the other servers carry
//!   its share.
//! - A server that throttles (a 421, or 452 / enhanced status 4.7.x replies
//!   twice in a row) is paused for a while that doubles as long as it keeps
//!   throttling, and the number of messages herald sends it at once is
//!   halved; both recover as messages go through again (additive increase,
//!   multiplicative decrease).
//!
//! - A server that cannot be used as configured (credentials refused,
//!   certificate not trusted, STARTTLS missing) is stopped: herald does not
//!   try it again until an operator resumes it or herald restarts, so a
//!   wrong password is not retried
//!   until the relay locks the account.
//!
//! Each server's state (ok, failing, stopped) and last error are kept for
//! the operator: the worker writes changes to the database, where /health,
//! the digest API and `herald digest status` read them. Each change is
//! logged once at warn (info when a server recovers).
//!
//! This state is per process; rate limits shared across workers live in
//! `delivery::rate`.

use super::pool::SmtpPool;
use super::Outgoing;
use super::SendError;
use crate::domain::time::{now_millis, Millis};
use rand::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rate limits of one server, enforced across all workers.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub per_second: Option<f64>,
    /// At most `.0` messages in any `.1`.
    pub per_window: Option<(u64, Duration)>,
    /// The longest one send can take, connecting included: how long a
    /// granted send may still be in flight.
    pub send_timeout: Duration,
}

/// How a server's health is judged (from `[delivery]`).
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub failures_before_cooldown: u32,
    pub cooldown: Duration,
    pub throttle_max_pause: Duration,
}

const FIRST_THROTTLE_PAUSE: Duration = Duration::from_secs(1);

/// How long a stopped server counts as blocked at a time (it stays stopped).
const STOPPED_WAIT: Duration = Duration::from_secs(3600);

/// What the operator is told about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Ok,
    /// New connections fail (refused, no greeting, TLS handshake); tried
    /// again after each cool-down.
    Failing,
    /// A configuration error; not tried again until an operator resumes it
    /// (`Store::resume_smtp_server`) or herald restarts.
    Stopped,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failing => "failing",
            Self::Stopped => "stopped",
        }
    }
}

/// One server's state, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHealth {
    pub name: String,
    pub state: ServerState,
    pub last_error: Option<String>,
    /// When the server entered `state`.
    pub since: Millis,
}

#[derive(Debug)]
struct Health {
    failures_in_a_row: u32,
    cooling_until: Option<Instant>,
    paused_until: Option<Instant>,
    throttle_pause: Duration,
    /// Messages allowed at once; below the pool size after throttling.
    allowed: usize,
    in_flight: usize,
    /// Messages through since `allowed` last changed.
    successes: u32,
    throttles_in_a_row: u32,
    state: ServerState,
    since: Millis,
    last_error: Option<String>,
}

pub struct Server {
    pub name: String,
    pub rate: Option<RateLimit>,
    weight: u32,
    pool: SmtpPool,
    size: usize,
    policy: HealthPolicy,
    health: Mutex<Health>,
    /// The state or last error changed since `Servers::health(true)`.
    is_changed: AtomicBool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} weight {}",
            self.name,
            self.pool.target(),
            self.weight
        )
    }
}

impl Server {
    pub fn new(
        name: String,
        pool: SmtpPool,
        size: usize,
        weight: u32,
        rate: Option<RateLimit>,
        policy: HealthPolicy,
    ) -> Self {
        Self {
            name,
            rate,
            weight: weight.max(1),
            pool,
            size: size.max(1),
            policy,
            health: Mutex::new(Health {
                failures_in_a_row: 0,
                cooling_until: None,
                paused_until: None,
                throttle_pause: FIRST_THROTTLE_PAUSE,
                allowed: size.max(1),
                in_flight: 0,
                successes: 0,
                throttles_in_a_row: 0,
                state: ServerState::Ok,
                since: now_millis(),
                last_error: None,
            }),
            is_changed: AtomicBool::new(true),
        }
    }

    /// None unless the server is cooling down or paused; else for how long.
    fn blocked_for(&self, h: &Health, now: Instant) -> Option<Duration> {
        if h.state == ServerState::Stopped {
            return Some(STOPPED_WAIT);
        }
        [h.cooling_until, h.paused_until]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
            .map(|t| t - now)
    }

    /// None when the server can take a message now; else how long until it
    /// may (cooling down, paused, or as many in flight as allowed).
    fn wait(&self, h: &Health, now: Instant) -> Option<Duration> {
        match self.blocked_for(h, now) {
            None if h.in_flight >= h.allowed => Some(Duration::from_millis(5)),
            other => other,
        }
    }

    fn finish(&self, result: &Result<String, SendError>) {
        let Ok(mut h) = self.health.lock() else {
            return;
        };
        h.in_flight = h.in_flight.saturating_sub(1);
        let now = Instant::now();
        match result {
            Ok(_)
            | Err(SendError::Permanent(_))
            | Err(SendError::Transient(_))
            | Err(SendError::Refused(_)) => {
                // The server answered: it is up.
                if h.state == ServerState::Failing {
                    h.state = ServerState::Ok;
                    h.since = now_millis();
                    self.is_changed.store(true, Ordering::Relaxed);
                    tracing::info!(server = %self.name, "SMTP server reachable again");
                }
                h.failures_in_a_row = 0;
                h.throttles_in_a_row = 0;
                // Each message through halves the next pause; one more at
                // once per `allowed` messages through (additive increase).
                h.throttle_pause = (h.throttle_pause / 2).max(FIRST_THROTTLE_PAUSE);
                h.successes += 1;
                if h.successes >= h.allowed as u32 && h.allowed < self.size {
                    h.successes = 0;
                    h.allowed += 1;
                    if h.allowed == self.size {
                        tracing::info!(server = %self.name, "SMTP server back to full speed after throttling");
                    }
                }
            }
            Err(SendError::Throttled(reply)) => {
                h.throttles_in_a_row += 1;
                // A lone 4.7.x among accepted messages is often greylisting
                // of one recipient: that copy is retried later, the server
                // is not slowed. A 421 (the server hangs up) or throttles in
                // a row are the server asking for less.
                let is_server_wide = reply.contains("(421)") || h.throttles_in_a_row >= 2;
                let pause = h.throttle_pause;
                // Concurrent messages throttled together count once.
                if is_server_wide && h.paused_until.is_none_or(|t| t <= now) {
                    h.allowed = (h.allowed / 2).max(1);
                    h.successes = 0;
                    h.paused_until = Some(now + pause);
                    h.throttle_pause = (pause * 2).min(self.policy.throttle_max_pause);
                    tracing::warn!(server = %self.name, %reply, pause_ms = pause.as_millis() as u64, at_once = h.allowed, "SMTP server is throttling; slowing down");
                }
            }
            // A connection that broke mid-message may be a stale pooled one;
            // only failing to open fresh ones says the server is down.
            Err(SendError::Broken(_)) => {}
            Err(SendError::Unreachable(error)) => {
                if h.state == ServerState::Ok {
                    h.state = ServerState::Failing;
                    h.since = now_millis();
                    tracing::warn!(server = %self.name, %error, "SMTP server failing: connections cannot be opened");
                }
                if h.last_error.as_ref() != Some(error) {
                    h.last_error = Some(error.clone());
                    self.is_changed.store(true, Ordering::Relaxed);
                }
                h.failures_in_a_row += 1;
                if h.failures_in_a_row >= self.policy.failures_before_cooldown.max(1) {
                    h.failures_in_a_row = 0;
                    h.cooling_until = Some(now + self.policy.cooldown);
                    tracing::debug!(server = %self.name, %error, cooldown_secs = self.policy.cooldown.as_secs(), "SMTP server keeps failing; cooling down");
                }
            }
            Err(SendError::Config(error)) => {
                if h.state != ServerState::Stopped {
                    h.state = ServerState::Stopped;
                    h.since = now_millis();
                    h.last_error = Some(error.clone());
                    self.is_changed.store(true, Ordering::Relaxed);
                    tracing::error!(server = %self.name, %error, "SMTP server stopped: it cannot be used as configured; herald will not try it again until it is resumed, or restarted with a corrected configuration");
                }
            }
        }
    }
}

/// The servers a mailer sends through; picks one per message.
#[derive(Debug)]
pub struct Servers {
    servers: Vec<Arc<Server>>,
}

/// A server picked for one message; counted in flight until sent or dropped.
pub struct Picked {
    server: Arc<Server>,
    is_done: bool,
}

impl Servers {
    pub fn new(servers: Vec<Arc<Server>>) -> Self {
        Self { servers }
    }

    pub fn list(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// A server for the next message: a weighted draw among the servers
    /// that can take one now. Err: none can; try again after the duration.
    pub fn pick(&self) -> Result<Picked, Duration> {
        let now = Instant::now();
        let mut guards = Vec::with_capacity(self.servers.len());
        for s in &self.servers {
            match s.health.lock() {
                Ok(h) => guards.push(h),
                Err(_) => return Err(Duration::from_millis(5)),
            }
        }
        let mut soonest = Duration::from_secs(3600);
        let mut total = 0u64;
        let mut ready = Vec::with_capacity(self.servers.len());
        for (i, s) in self.servers.iter().enumerate() {
            match s.wait(&guards[i], now) {
                None => {
                    total += u64::from(s.weight);
                    ready.push(i);
                }
                Some(w) => soonest = soonest.min(w),
            }
        }
        if total == 0 {
            return Err(soonest);
        }
        let mut draw = rand::rng().random_range(0..total);
        let mut chosen = ready[0];
        for i in ready {
            let w = u64::from(self.servers[i].weight);
            if draw < w {
                chosen = i;
                break;
            }
            draw -= w;
        }
        guards[chosen].in_flight += 1;
        Ok(Picked {
            server: self.servers[chosen].clone(),
            is_done: false,
        })
    }

    /// Whether any server was stopped for a configuration error.
    pub fn is_any_stopped(&self) -> bool {
        self.servers.iter().any(|s| {
            s.health
                .lock()
                .is_ok_and(|h| h.state == ServerState::Stopped)
        })
    }

    /// Takes a stopped server back into use (an operator fixed what was
    /// wrong at the relay). Returns whether `name` was stopped.
    pub fn resume(&self, name: &str) -> bool {
        let Some(s) = self.servers.iter().find(|s| s.name == name) else {
            return false;
        };
        let Ok(mut h) = s.health.lock() else {
            return false;
        };
        if h.state != ServerState::Stopped {
            return false;
        }
        h.state = ServerState::Ok;
        h.since = now_millis();
        h.failures_in_a_row = 0;
        h.cooling_until = None;
        s.is_changed.store(true, Ordering::Relaxed);
        tracing::warn!(server = %s.name, "SMTP server resumed by an operator; trying it again");
        true
    }

    /// Whether every server was stopped for a configuration error.
    pub fn are_all_stopped(&self) -> bool {
        self.servers.iter().all(|s| {
            s.health
                .lock()
                .is_ok_and(|h| h.state == ServerState::Stopped)
        })
    }

    /// Every server's state, or (`only_changed`) those that changed since
    /// the last such call.
    pub fn health(&self, only_changed: bool) -> Vec<ServerHealth> {
        self.servers
            .iter()
            .filter(|s| !only_changed || s.is_changed.swap(false, Ordering::Relaxed))
            .filter_map(|s| {
                let h = s.health.lock().ok()?;
                Some(ServerHealth {
                    name: s.name.clone(),
                    state: h.state,
                    last_error: h.last_error.clone(),
                    since: h.since,
                })
            })
            .collect()
    }

    /// None unless every server is cooling down or paused (busy servers
    /// count as available); else how long until one is not.
    pub fn blocked_for(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut soonest: Option<Duration> = None;
        for s in &self.servers {
            let Ok(h) = s.health.lock() else { continue };
            match s.blocked_for(&h, now) {
                None => return None,
                Some(w) => soonest = Some(soonest.map_or(w, |x| x.min(w))),
            }
        }
        soonest
    }
}

impl Picked {
    pub fn server(&self) -> &Server {
        &self.server
    }

    pub async fn send(mut self, out: &Outgoing<'_>) -> Result<String, SendError> {
        let result = self.server.pool.send_outgoing(out).await;
        self.is_done = true;
        self.server.finish(&result);
        result
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        if !self.is_done {
            if let Ok(mut h) = self.server.health.lock() {
                h.in_flight = h.in_flight.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::pool::SmtpTarget;

    fn server(name: &str, weight: u32, size: usize) -> Arc<Server> {
        let target = SmtpTarget::parse("smtp://127.0.0.1:9").unwrap();
        Arc::new(Server::new(
            name.into(),
            SmtpPool::new(target, size as u32, Duration::from_secs(1)),
            size,
            weight,
            None,
            HealthPolicy {
                failures_before_cooldown: 2,
                cooldown: Duration::from_secs(60),
                throttle_max_pause: Duration::from_secs(8),
            },
        ))
    }

    #[test]
    fn weights_share_the_messages() {
        let servers = Servers::new(vec![server("a", 3, 5000), server("b", 1, 5000)]);
        let mut a = 0;
        let mut held = Vec::new();
        for _ in 0..4000 {
            let p = servers.pick().unwrap();
            if p.server().name == "a" {
                a += 1;
            }
            held.push(p);
        }
        // 3:1 of 4000 is 3000; a binomial spread of ±5 standard deviations.
        assert!((2860..=3140).contains(&a), "{a}");
    }

    #[test]
    fn a_failing_server_cools_down_and_the_other_carries_on() {
        let servers = Servers::new(vec![server("a", 1, 10), server("b", 1, 10)]);
        let a = servers.list()[0].clone();
        for _ in 0..2 {
            a.health.lock().unwrap().in_flight += 1;
            a.finish(&Err(SendError::Unreachable("refused".into())));
        }
        for _ in 0..100 {
            assert_eq!(servers.pick().unwrap().server().name, "b");
        }
        // A connection broken mid-message does not count: it may have been
        // a stale pooled one.
        let b = servers.list()[1].clone();
        for _ in 0..5 {
            b.finish(&Err(SendError::Broken("dropped".into())));
        }
        assert!(servers.pick().is_ok());
        for _ in 0..2 {
            b.finish(&Err(SendError::Unreachable("no greeting".into())));
        }
        let wait = servers.pick().err().expect("both cooling down");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(servers.blocked_for().is_some());
    }

    #[test]
    fn a_server_with_a_configuration_error_is_stopped_and_said_so_once() {
        let servers = Servers::new(vec![server("a", 1, 10), server("b", 1, 10)]);
        let a = servers.list()[0].clone();
        // Every server starts as changed: the worker writes its state once.
        assert_eq!(servers.health(true).len(), 2);
        assert!(servers.health(true).is_empty());
        a.finish(&Err(SendError::Config("535 credentials refused".into())));
        let changed = servers.health(true);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].state, ServerState::Stopped);
        assert_eq!(
            changed[0].last_error.as_deref(),
            Some("535 credentials refused")
        );
        // Not picked again, for any number of messages, and not un-stopped
        // by a message that was already under way and went through.
        a.finish(&Ok("250 ok".into()));
        for _ in 0..100 {
            assert_eq!(servers.pick().unwrap().server().name, "b");
        }
        assert!(!servers.are_all_stopped());
        assert!(servers.health(true).is_empty(), "said once");
        let b = servers.list()[1].clone();
        b.finish(&Err(SendError::Config("certificate not trusted".into())));
        assert!(servers.are_all_stopped());
        assert!(servers.blocked_for().is_some());
        // An operator resumes one: it is picked again, and said so.
        assert!(servers.resume("a"));
        assert!(!servers.resume("a"), "not stopped any more");
        assert_eq!(servers.health(true)[0].state, ServerState::Ok);
        assert_eq!(servers.pick().unwrap().server().name, "a");
    }

    #[test]
    fn a_failing_server_is_reported_failing_then_ok_again() {
        let s = server("a", 1, 10);
        let servers = Servers::new(vec![s.clone()]);
        let _ = servers.health(true);
        s.finish(&Err(SendError::Unreachable("connection refused".into())));
        let changed = servers.health(true);
        assert_eq!(changed[0].state, ServerState::Failing);
        assert_eq!(changed[0].last_error.as_deref(), Some("connection refused"));
        // The same error again changes nothing to report.
        s.finish(&Err(SendError::Unreachable("connection refused".into())));
        assert!(servers.health(true).is_empty());
        s.finish(&Ok("250 ok".into()));
        assert_eq!(servers.health(true)[0].state, ServerState::Ok);
    }

    #[test]
    fn throttling_halves_what_is_sent_at_once_and_pauses_with_growing_pauses() {
        let s = server("a", 1, 8);
        // One 451 4.7.1 among accepted messages (greylisting) changes nothing.
        s.finish(&Err(SendError::Throttled(
            "transient error (451): 4.7.1 try later".into(),
        )));
        s.finish(&Ok("250 ok".into()));
        {
            let h = s.health.lock().unwrap();
            assert_eq!(h.allowed, 8);
            assert!(s.wait(&h, Instant::now()).is_none());
        }
        s.finish(&Err(SendError::Throttled(
            "transient error (421): 4.7.0 slow down".into(),
        )));
        {
            let h = s.health.lock().unwrap();
            assert_eq!(h.allowed, 4);
            assert_eq!(h.throttle_pause, Duration::from_secs(2));
            assert!(s.wait(&h, Instant::now()).is_some());
        }
        // Once the pause is over, a second throttle doubles the pause.
        s.health.lock().unwrap().paused_until = Some(Instant::now());
        s.finish(&Err(SendError::Throttled(
            "transient error (452): 4.3.1".into(),
        )));
        assert_eq!(s.health.lock().unwrap().allowed, 2);
        assert_eq!(
            s.health.lock().unwrap().throttle_pause,
            Duration::from_secs(4)
        );
        // Pauses stop growing at the configured maximum.
        for _ in 0..5 {
            s.health.lock().unwrap().paused_until = Some(Instant::now());
            s.finish(&Err(SendError::Throttled(
                "transient error (421): busy".into(),
            )));
        }
        assert_eq!(
            s.health.lock().unwrap().throttle_pause,
            Duration::from_secs(8)
        );
        // Messages going through again bring it back to full speed.
        for _ in 0..100 {
            s.finish(&Ok("250 ok".into()));
        }
        let h = s.health.lock().unwrap();
        assert_eq!((h.allowed, h.throttle_pause), (8, FIRST_THROTTLE_PAUSE));
    }
}
