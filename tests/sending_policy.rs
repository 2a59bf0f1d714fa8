//! Sending policy against real SMTP servers: a per-second rate limit, a
//! sliding-window limit, several weighted servers with one down,
//! a throttling relay, a relay down for a minute, and one that never answers.

mod common;

use common::faulty_smtp::{self, Faults};
use common::{spawn_app_role, Backend, SmtpSink, TestApp};
use herald::config::{Config, SmtpServerConfig};
use herald::startup::Role;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn server(port: u16) -> SmtpServerConfig {
    SmtpServerConfig {
        url: format!("smtp://127.0.0.1:{port}"),
        ..SmtpServerConfig::default()
    }
}

fn recipients(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("reader{i}@example.com")).collect()
}

/// An app without a worker, `n` confirmed readers and one queued digest.
async fn queued_digest(
    backend: Backend,
    n: usize,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, i64, Vec<String>) {
    let app = spawn_app_role(backend, SmtpSink::start(&[]), Role::Web, |c| {
        c.smtp_url = None;
        tweak(c);
    })
    .await;
    let emails = recipients(n);
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    app.import_confirmed(&refs).await;
    app.add_article("Story", "https://news.example.com/story/", "<p>Text.</p>")
        .await;
    let id = app.send_digest_now().await;
    (app, id, emails)
}

fn assert_each_got_exactly_one(accepted: &[String], emails: &[String]) {
    let unique: HashSet<&String> = accepted.iter().collect();
    assert_eq!(accepted.len(), emails.len(), "one message per reader");
    assert_eq!(unique.len(), emails.len(), "nobody got two copies");
    for e in emails {
        assert!(unique.contains(e), "{e} got nothing");
    }
}

/// Most messages accepted in any span of `span` (counting from each arrival).
fn busiest(times: &[Instant], span: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut j = 0;
    for i in 0..sorted.len() {
        while j < sorted.len() && sorted[j] < sorted[i] + span {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

async fn per_second_limit_holds(backend: Backend) {
    let relay = faulty_smtp::start_with(Faults::default()).await;
    let (app, id, emails) = queued_digest(backend, 160, |c| {
        c.smtp_servers = vec![SmtpServerConfig {
            max_per_second: Some(40.0),
            ..server(relay.port)
        }];
        c.delivery.concurrency = 8;
    })
    .await;
    // One worker here; two worker processes sharing the limit through the
    // database are in `process::two_worker_processes_share_a_rate_limit`.
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(30)).await;
    assert_eq!(status["counts"]["sent"], 160, "{status}");
    assert_each_got_exactly_one(&relay.record.accepted.lock().unwrap(), &emails);
    let times = relay.record.accepted_at.lock().unwrap().clone();
    let rate = faulty_smtp::fitted_rate(&times);
    let peak = busiest(&times, Duration::from_secs(1));
    eprintln!("limit 40/s: measured {rate:.2} msg/s, busiest second {peak}");
    assert!(rate <= 40.0 * 1.01, "measured {rate:.2} msg/s against 40/s");
    // Not slower than the limit needs either.
    assert!(rate >= 40.0 * 0.9, "measured {rate:.2} msg/s against 40/s");
    // In any one second: 40 slots, plus one at the boundary, plus up to
    // three for the jitter between a slot and the relay's timestamp. The
    // limit holds on when copies are sent; the relay sees them arrive, and
    // on two cores shared with PostgreSQL and other tests one copy can
    // arrive two or three 25 ms slots late and land beside the next ones
    // (43 was seen once in CI while the fitted rate was 40.00/s).
    assert!(peak <= 44, "{peak} messages within one second");
    app.shutdown().await;
}

async fn window_limit_holds(backend: Backend) {
    window_limit_holds_at_the_relay(backend, Faults::default()).await;
}

/// New connections that take long to set up, so the first window's sends
/// reach the relay late and later ones (on pooled connections) at once:
/// the window must count sends from when they arrived, not from when their
/// slot was granted. Before it did, the relay saw 35 in one 2 s window
/// here on both databases, and 32-33 in `window_limit_holds` under load.
async fn window_limit_holds_when_connecting_is_slow(backend: Backend) {
    let faults = Faults {
        slow_greeting: Some(Duration::from_millis(400)),
        ..Faults::default()
    };
    window_limit_holds_at_the_relay(backend, faults).await;
}

async fn window_limit_holds_at_the_relay(backend: Backend, faults: Faults) {
    let relay = faulty_smtp::start_with(faults).await;
    let (app, id, emails) = queued_digest(backend, 75, |c| {
        c.smtp_servers = vec![SmtpServerConfig {
            max_per_window: Some(25),
            window_secs: 2,
            ..server(relay.port)
        }];
    })
    .await;
    let started = Instant::now();
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(30)).await;
    assert_eq!(status["counts"]["sent"], 75, "{status}");
    assert_each_got_exactly_one(&relay.record.accepted.lock().unwrap(), &emails);
    // 75 messages at 25 per 2 s take three windows: at least 4 s.
    assert!(started.elapsed() >= Duration::from_secs(4));
    // At most 25 in any 2 s as the relay counts them: herald counts a send
    // from when the relay's reply reached it, which is after the relay
    // recorded it.
    let mut times = relay.record.accepted_at.lock().unwrap().clone();
    times.sort();
    let peak = busiest(&times, Duration::from_secs(2));
    let arrivals: Vec<u128> = times
        .iter()
        .map(|t| t.duration_since(started).as_millis())
        .collect();
    eprintln!(
        "limit 25 per 2 s: busiest 2 s held {peak}, 75 took {:?}; arrivals (ms): {arrivals:?}",
        started.elapsed()
    );
    assert!(peak <= 25, "{peak} messages within one window");
    app.shutdown().await;
}

async fn weighted_servers_share_the_list_and_a_dead_one_is_left_out(backend: Backend) {
    let heavy = faulty_smtp::start_with(Faults::default()).await;
    let light = faulty_smtp::start_with(Faults::default()).await;
    let dead_port = common::free_port();
    let (app, id, emails) = queued_digest(backend, 400, |c| {
        c.smtp_servers = vec![
            SmtpServerConfig {
                weight: 3,
                ..server(heavy.port)
            },
            server(light.port),
            // Nothing listens here: it cools down and the others carry on.
            SmtpServerConfig {
                weight: 5,
                ..server(dead_port)
            },
        ];
        c.delivery.cooldown_secs = 60;
    })
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(40)).await;
    assert_eq!(status["counts"]["sent"], 400, "{status}");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    let mut all = heavy.record.accepted.lock().unwrap().clone();
    let to_light = light.record.accepted.lock().unwrap().clone();
    let to_heavy = all.len();
    all.extend(to_light.iter().cloned());
    assert_each_got_exactly_one(&all, &emails);
    // 3:1, i.e. 300 and 100, within about seven standard deviations.
    assert!(
        (240..=360).contains(&to_heavy),
        "heavy {to_heavy}, light {}",
        to_light.len()
    );
    // The dead server never had a message under way: no attempt was used.
    assert_eq!(app.store.delivery_attempts(id).await.unwrap(), 400);
    app.shutdown().await;
}

async fn throttling_relay_slows_herald_down_and_nobody_fails(backend: Backend) {
    // For 4 s every MAIL FROM gets "421 4.7.0 … slow down" and the relay hangs up.
    let relay = faulty_smtp::start_with(Faults {
        throttle_until: Some(Instant::now() + Duration::from_secs(4)),
        ..Faults::default()
    })
    .await;
    let (app, id, emails) = queued_digest(backend, 60, |c| {
        c.smtp_servers = vec![server(relay.port)];
        c.delivery.concurrency = 8;
        // Throttles must not use up attempts: two would fail everybody.
        c.delivery.max_attempts = 2;
    })
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(40)).await;
    assert_eq!(status["digest"]["status"], "done", "never paused: {status}");
    assert_eq!(status["counts"]["sent"], 60, "{status}");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    assert_each_got_exactly_one(&relay.record.accepted.lock().unwrap(), &emails);
    let throttled = relay.record.throttled.load(Ordering::Relaxed);
    assert!(throttled > 0, "the relay did throttle");
    // herald backed off: pauses of 1, 2 and 4 s with 8, 4 and 2 messages at
    // once. Without back-off it would have been hundreds in 4 s.
    assert!(
        throttled <= 30,
        "{throttled} throttled attempts: herald kept pushing"
    );
    // Every throttled try is on record as an attempt.
    assert_eq!(
        app.store.delivery_attempts(id).await.unwrap(),
        60 + throttled as i64
    );
    app.shutdown().await;
}

async fn relay_down_for_a_minute_then_back(backend: Backend) {
    let sink = SmtpSink::start(&[]);
    let port = sink.port;
    let (app, id, emails) = queued_digest(backend, 30, |c| {
        c.smtp_servers = vec![server(port)];
        c.delivery.cooldown_secs = 5;
        // Shorter than the outage: the worker must renew what it holds.
        c.delivery.lease_secs = 9;
    })
    .await;
    let (port, tmp, dir) = sink.stop();
    app.start_worker();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = app.digest_status(id).await;
    assert_eq!(during["counts"]["sent"], 0, "{during}");
    assert_eq!(during["counts"]["failed"], 0, "nobody failed: {during}");
    assert_eq!(during["counts"]["stuck"], 0, "leases renewed: {during}");
    assert_ne!(during["status"], "done");
    let sink = SmtpSink::start_on(port, &[], Some((tmp, dir)));
    let status = app.wait_digest_done(id, Duration::from_secs(40)).await;
    assert_eq!(status["counts"]["sent"], 30, "{status}");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    let got: Vec<String> = sink
        .wait_for(30, Duration::from_secs(10))
        .await
        .into_iter()
        .map(|m| m.envelope_to)
        .collect();
    assert_each_got_exactly_one(&got, &emails);
    // Failing to connect is not an attempt on the recipient.
    assert_eq!(app.store.delivery_attempts(id).await.unwrap(), 30);
    app.shutdown().await;
}

async fn relay_that_never_answers_then_recovers(backend: Backend) {
    // Connections are accepted but get no greeting for 12 s.
    let relay = faulty_smtp::start_with(Faults {
        silent_until: Some(Instant::now() + Duration::from_secs(12)),
        ..Faults::default()
    })
    .await;
    let (app, id, emails) = queued_digest(backend, 30, |c| {
        c.smtp_servers = vec![server(relay.port)];
        c.delivery.smtp_timeout_secs = 2;
        c.delivery.cooldown_secs = 3;
    })
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(60)).await;
    assert_eq!(status["counts"]["sent"], 30, "{status}");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    assert_each_got_exactly_one(&relay.record.accepted.lock().unwrap(), &emails);
    assert_eq!(app.store.delivery_attempts(id).await.unwrap(), 30);
    // Cool-downs kept herald from hammering the silent relay: a few
    // connections per cool-down, not one per message and timeout.
    let connections = relay.record.connections.load(Ordering::Relaxed);
    assert!(connections <= 60, "{connections} connections");
    app.shutdown().await;
}

async fn relay_that_stalls_mid_data_then_recovers(backend: Backend) {
    // For 6 s the relay stops answering in the middle of DATA.
    let relay = faulty_smtp::start_with(Faults {
        stall_data_until: Some(Instant::now() + Duration::from_secs(6)),
        ..Faults::default()
    })
    .await;
    let (app, id, emails) = queued_digest(backend, 20, |c| {
        c.smtp_servers = vec![server(relay.port)];
        c.delivery.smtp_timeout_secs = 2;
    })
    .await;
    app.start_worker();
    let status = app.wait_digest_done(id, Duration::from_secs(60)).await;
    assert_eq!(status["counts"]["sent"], 20, "{status}");
    assert_eq!(status["counts"]["failed"], 0, "{status}");
    // A stalled message was never accepted, so nobody got two.
    assert_each_got_exactly_one(&relay.record.accepted.lock().unwrap(), &emails);
    // The timed-out tries are attempts on record (the server might have
    // taken the message).
    assert!(app.store.delivery_attempts(id).await.unwrap() > 20);
    app.shutdown().await;
}

both_backends!(
    relay_that_stalls_mid_data_then_recovers,
    per_second_limit_holds,
    window_limit_holds,
    window_limit_holds_when_connecting_is_slow,
    weighted_servers_share_the_list_and_a_dead_one_is_left_out,
    throttling_relay_slows_herald_down_and_nobody_fails,
    relay_down_for_a_minute_then_back,
    relay_that_never_answers_then_recovers,
);
