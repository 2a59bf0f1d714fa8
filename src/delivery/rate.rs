//! Per-server rate limits, enforced across every worker on the database.
//!
//! Each worker asks the store for a small block of send slots at a time
//! (`Store::reserve_send_slots`): slots are `1 / max_per_second` apart and
//! the blocks of all workers never overlap, so together they never send
//! faster than the limit; a sliding-window limit is checked in the same
//! transaction. A slot that was not used in time is dropped, never used
//! late, so a stalled worker cannot catch up in a burst. Unused slots are
//! lost, which only ever makes herald slower than the limit, not faster.
//!
//! The window limit counts what the server counts: a send takes its place
//! in the window when its slot is granted and keeps it until its reply
//! came back plus the window (`SendTicket`), so sends slowed by a new
//! connection cannot bunch up with the next window's.

use crate::mail::RateLimit;
use crate::store::{Store, WindowLimit};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A block of slots this worker holds for one server.
#[derive(Default)]
struct Block {
    first_us: i64,
    interval_us: i64,
    granted: i64,
    used: i64,
    reservation: Option<Arc<Reservation>>,
}

impl Block {
    /// With only a window limit the slots have no times: they may be used
    /// for `WINDOW_ONLY_VALID_US` after the grant.
    fn has_slots(&self, now: i64) -> bool {
        self.used < self.granted
            && (self.interval_us > 0 || now <= self.first_us + WINDOW_ONLY_VALID_US)
    }

    /// Takes the next slot: its time, and the reservation its send is
    /// counted in (closed with the block's last slot).
    fn take(&mut self) -> (i64, Option<Arc<Reservation>>) {
        let slot = self.first_us + self.used * self.interval_us;
        self.used += 1;
        if let Some(r) = &self.reservation {
            r.take();
            if self.used == self.granted {
                r.close();
            }
        }
        (slot, self.reservation.clone())
    }
}

/// The window count of one block: held in the store until every send
/// taken from the block is done, then moved to when the last one finished
/// (`Store::settle_send_slots`).
struct Reservation {
    store: Store,
    server: String,
    window: WindowLimit,
    counted_bucket: i64,
    granted: i64,
    state: Mutex<ReservationState>,
}

#[derive(Default)]
struct ReservationState {
    taken: i64,
    done: i64,
    /// No more sends will be taken from the block.
    closed: bool,
    last_done_us: i64,
}

impl Reservation {
    fn take(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.taken += 1;
        }
    }

    fn close(self: &Arc<Self>) {
        self.update(|st| st.closed = true);
    }

    fn finish(self: &Arc<Self>) {
        self.update(|st| {
            st.done += 1;
            st.last_done_us = st.last_done_us.max(now_us());
        });
    }

    /// Applies `change`; settles once the block is closed and all its
    /// sends are done. A settle that fails or never runs leaves the count
    /// ahead, which only holds the window full longer.
    fn update(self: &Arc<Self>, change: impl FnOnce(&mut ReservationState)) {
        let settle = match self.state.lock() {
            Ok(mut st) => {
                let was_settled = st.closed && st.done == st.taken;
                change(&mut st);
                (!was_settled && st.closed && st.done == st.taken)
                    .then_some((st.taken, st.last_done_us))
            }
            Err(_) => None,
        };
        let (Some((used, done_us)), Ok(runtime)) = (settle, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let settled = this
                .store
                .settle_send_slots(
                    &this.server,
                    this.window,
                    this.counted_bucket,
                    this.granted,
                    used,
                    done_us,
                )
                .await;
            if let Err(e) = settled {
                tracing::warn!(server = %this.server, error = %e, "could not settle send slots; the window stays full a little longer");
            }
        });
    }
}

/// A granted send slot. Dropped once the send is done (or given up), which
/// lets the window limit count the send from when it finished.
pub struct SendTicket(Option<Arc<Reservation>>);

impl Drop for SendTicket {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.finish();
        }
    }
}

#[derive(Default)]
pub struct RateLimiter {
    blocks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Block>>>>,
}

/// How far ahead a block reaches: short, so workers share a server fairly
/// and a worker that stops wastes little.
const BLOCK_SPAN_US: f64 = 200_000.0;
const MAX_BLOCK: i64 = 100;
/// Slots per block when only a window limit is set, and how long they
/// keep.
const WINDOW_ONLY_BLOCK: i64 = 10;
const WINDOW_ONLY_VALID_US: i64 = 1_000_000;

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl RateLimiter {
    fn block(&self, server: &str) -> Arc<tokio::sync::Mutex<Block>> {
        match self.blocks.lock() {
            Ok(mut map) => map.entry(server.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Waits for this worker's next slot on `server`. Keep the ticket until
    /// the send is done.
    pub async fn wait_turn(
        &self,
        store: &Store,
        server: &str,
        limit: &RateLimit,
    ) -> Result<SendTicket, crate::store::Error> {
        let interval_us = limit
            .per_second
            .map_or(0, |r| (1_000_000.0 / r).ceil() as i64);
        let want = match limit.per_second {
            Some(r) => ((r * BLOCK_SPAN_US / 1_000_000.0) as i64).clamp(1, MAX_BLOCK),
            None => WINDOW_ONLY_BLOCK,
        };
        // A slot is used at most one interval (or, window only, the
        // validity) after its time, then in flight for at most the send
        // timeout.
        let hold_us = interval_us.max(WINDOW_ONLY_VALID_US) + limit.send_timeout.as_micros() as i64;
        let window = limit.per_window.map(|(n, w)| WindowLimit {
            limit: n as i64,
            window_us: w.as_micros() as i64,
            hold_us,
        });
        let block = self.block(server);
        let (slot_us, reservation) = loop {
            let mut b = block.lock().await;
            let now = now_us();
            // Drop slots whose time has passed by more than one interval.
            if b.interval_us > 0 && b.used < b.granted {
                let late = (now - (b.first_us + b.used * b.interval_us)) / b.interval_us;
                if late > 0 {
                    b.used = (b.used + late).min(b.granted);
                }
            }
            if b.has_slots(now) {
                break b.take();
            }
            if let Some(r) = b.reservation.take() {
                r.close();
            }
            let grant = store
                .reserve_send_slots(server, now, interval_us, want, window)
                .await?;
            if grant.granted == 0 {
                drop(b);
                let wait = (grant.retry_at_us - now_us()).clamp(1_000, 1_000_000);
                tracing::debug!(server, wait_ms = wait / 1000, "send window full; waiting");
                tokio::time::sleep(Duration::from_micros(wait as u64)).await;
                continue;
            }
            let reservation = match (window, grant.counted_bucket) {
                (Some(window), Some(counted_bucket)) => Some(Arc::new(Reservation {
                    store: store.clone(),
                    server: server.to_string(),
                    window,
                    counted_bucket,
                    granted: grant.granted,
                    state: Mutex::default(),
                })),
                _ => None,
            };
            *b = Block {
                first_us: grant.first_us,
                interval_us,
                granted: grant.granted,
                used: 0,
                reservation,
            };
            break b.take();
        };
        let ticket = SendTicket(reservation);
        let wait = slot_us - now_us();
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait as u64)).await;
        }
        Ok(ticket)
    }
}
