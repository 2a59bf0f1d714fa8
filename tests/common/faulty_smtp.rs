//! A small SMTP server for faults smtp-sink cannot express: a random share
//! of temporary (451) rejections at RCPT, permanent (550) rejections for
//! chosen addresses, throttling (421 4.7.0 and hang up) for a while,
//! silence (no greeting) for a while, and a stall in the middle of DATA. It records every message it accepted,
//! and when.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct Record {
    /// Envelope recipient of every accepted message, in order.
    pub accepted: Mutex<Vec<String>>,
    /// When each accepted message's final "250" was sent, in order.
    pub accepted_at: Mutex<Vec<Instant>>,
    pub temporary_rejections: AtomicU64,
    pub permanent_rejections: AtomicU64,
    /// 421 replies sent while throttling.
    pub throttled: AtomicU64,
    /// Connections opened (and, while silent, left without a greeting).
    pub connections: AtomicU64,
}

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of RCPTs answered "451 4.7.1 Try again later".
    pub temp_failure_percent: u32,
    /// Addresses containing this get "550 5.1.1".
    pub reject_marker: Option<&'static str>,
    /// Until then, every MAIL FROM gets "421 4.7.0" and the connection is closed.
    pub throttle_until: Option<Instant>,
    /// Until then, connections are accepted but never greeted.
    pub silent_until: Option<Instant>,
    /// Until then, the server stops answering halfway through DATA.
    pub stall_data_until: Option<Instant>,
    /// Every RCPT gets this reply (CRLF added), e.g. a relay that refuses
    /// to relay: "554 5.7.1 Relay access denied".
    pub every_rcpt_reply: Option<&'static str>,
    /// Every new connection waits this long for its greeting.
    pub slow_greeting: Option<Duration>,
    /// While this is true, addresses containing "full" get
    /// "552 5.2.2 Mailbox full": about the recipient, but not beyond doubt.
    pub mailbox_full: Option<Arc<std::sync::atomic::AtomicBool>>,
}

pub struct FaultySmtp {
    pub port: u16,
    pub record: Arc<Record>,
}

/// `temp_failure_percent` of RCPTs get 451; any address containing
/// `reject_marker` gets 550.
pub async fn start(temp_failure_percent: u32, reject_marker: &'static str) -> FaultySmtp {
    start_with(Faults {
        temp_failure_percent,
        reject_marker: Some(reject_marker),
        ..Faults::default()
    })
    .await
}

pub async fn start_with(faults: Faults) -> FaultySmtp {
    let Faults {
        temp_failure_percent,
        reject_marker,
        throttle_until,
        silent_until,
        stall_data_until,
        every_rcpt_reply,
        slow_greeting,
        mailbox_full,
    } = faults;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let record = Arc::new(Record::default());
    let shared = record.clone();
    tokio::spawn(async move {
        let seed = AtomicU64::new(0x2545_f491_4f6c_dd1d);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = shared.clone();
            let mailbox_full = mailbox_full.clone();
            let mut state = seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
            record.connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                if silent_until.is_some_and(|t| Instant::now() < t) {
                    // Say nothing; wait for the client to give up.
                    let mut sink = String::new();
                    while lines.read_line(&mut sink).await.unwrap_or(0) > 0 {
                        sink.clear();
                    }
                    return;
                }
                if let Some(pause) = slow_greeting {
                    tokio::time::sleep(pause).await;
                }
                let _ = write.write_all(b"220 faulty.test ESMTP\r\n").await;
                let mut rcpt: Option<String> = None;
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250-faulty.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n".into()
                    } else if upper.starts_with("MAIL") {
                        rcpt = None;
                        if throttle_until.is_some_and(|t| Instant::now() < t) {
                            record.throttled.fetch_add(1, Ordering::Relaxed);
                            let _ = write
                                .write_all(b"421 4.7.0 Too many messages, slow down\r\n")
                                .await;
                            return;
                        }
                        "250 2.1.0 Ok\r\n".into()
                    } else if upper.starts_with("RCPT") {
                        let addr = line
                            .split('<')
                            .nth(1)
                            .and_then(|s| s.split('>').next())
                            .unwrap_or("")
                            .to_string();
                        // xorshift: a different draw for every RCPT.
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        if let Some(reply) = every_rcpt_reply {
                            record.permanent_rejections.fetch_add(1, Ordering::Relaxed);
                            format!("{reply}\r\n")
                        } else if addr.contains("full")
                            && mailbox_full
                                .as_ref()
                                .is_some_and(|f| f.load(Ordering::Relaxed))
                        {
                            record.permanent_rejections.fetch_add(1, Ordering::Relaxed);
                            format!("552 5.2.2 <{addr}>: Mailbox full\r\n")
                        } else if reject_marker.is_some_and(|m| addr.contains(m)) {
                            record.permanent_rejections.fetch_add(1, Ordering::Relaxed);
                            format!(
                                "550 5.1.1 <{addr}>: Recipient address rejected: User unknown\r\n"
                            )
                        } else if (state % 100) < u64::from(temp_failure_percent) {
                            record.temporary_rejections.fetch_add(1, Ordering::Relaxed);
                            "451 4.7.1 Try again later\r\n".into()
                        } else {
                            rcpt = Some(addr);
                            "250 2.1.5 Ok\r\n".into()
                        }
                    } else if upper.starts_with("DATA") {
                        let _ = write
                            .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                            .await;
                        if stall_data_until.is_some_and(|t| Instant::now() < t) {
                            // Read on, answer nothing, until the client hangs up.
                            while lines.read_line(&mut line).await.unwrap_or(0) > 0 {
                                line.clear();
                            }
                            return;
                        }
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                        }
                        if let Some(addr) = rcpt.take() {
                            if let Ok(mut accepted) = record.accepted.lock() {
                                accepted.push(addr);
                            }
                            if let Ok(mut at) = record.accepted_at.lock() {
                                at.push(Instant::now());
                            }
                        }
                        "250 2.0.0 Ok: queued\r\n".into()
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        "250 2.0.0 Ok\r\n".into()
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    FaultySmtp { port, record }
}

/// Messages per second over the middle 80% of arrivals, as the slope of a
/// least-squares line through (time, count): one message delayed (say by a
/// new connection's set-up) barely moves it, where first-to-last would.
pub fn fitted_rate(times: &[Instant]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    let (from, to) = (sorted.len() / 10, sorted.len() - sorted.len() / 10);
    let middle = &sorted[from..to];
    let t0 = middle[0];
    let xs: Vec<f64> = middle.iter().map(|t| (*t - t0).as_secs_f64()).collect();
    let n = xs.len() as f64;
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = (n - 1.0) / 2.0;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, x) in xs.iter().enumerate() {
        sxy += (x - mean_x) * (i as f64 - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    sxy / sxx
}
