//! Per-server rate limits, enforced across every worker on the database.
//!
//! Each worker asks the store for a small block of send slots at a time
//! (`Store::reserve_send_slots`): slots are `1 / max_per_second` apart and
//! the blocks of all workers never overlap, so together they never send
//! faster than the limit; a sliding-window limit is checked in the same
//! transaction. A slot that was not used in time is dropped, never used
//! late, so a stalled worker cannot catch up in a burst. Unused slots are
//! lost, which only ever makes herald slower than the limit, not faster.

use crate::mail::RateLimit;
use crate::store::{Store, WindowLimit};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A block of slots this worker holds for one server.
#[derive(Debug, Default)]
struct Block {
    first_us: i64,
    interval_us: i64,
    granted: i64,
    used: i64,
}

#[derive(Default)]
pub struct RateLimiter {
    blocks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Block>>>>,
}

/// How far ahead a block reaches: short, so workers share a server fairly
/// and a worker that stops wastes little.
const BLOCK_SPAN_US: f64 = 200_000.0;
const MAX_BLOCK: i64 = 100;
/// Slots per block when only a window limit is set.
const WINDOW_ONLY_BLOCK: i64 = 10;

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

    /// Waits for this worker's next slot on `server`.
    pub async fn wait_turn(
        &self,
        store: &Store,
        server: &str,
        limit: &RateLimit,
    ) -> Result<(), crate::store::Error> {
        let interval_us = limit
            .per_second
            .map_or(0, |r| (1_000_000.0 / r).ceil() as i64);
        let want = match limit.per_second {
            Some(r) => ((r * BLOCK_SPAN_US / 1_000_000.0) as i64).clamp(1, MAX_BLOCK),
            None => WINDOW_ONLY_BLOCK,
        };
        let window = limit.per_window.map(|(n, w)| WindowLimit {
            limit: n as i64,
            window_us: w.as_micros() as i64,
        });
        let block = self.block(server);
        let slot_us = loop {
            let mut b = block.lock().await;
            let now = now_us();
            // Drop slots whose time has passed by more than one interval.
            if b.interval_us > 0 && b.used < b.granted {
                let late = (now - (b.first_us + b.used * b.interval_us)) / b.interval_us;
                if late > 0 {
                    b.used = (b.used + late).min(b.granted);
                }
            }
            if b.used < b.granted {
                let slot = b.first_us + b.used * b.interval_us;
                b.used += 1;
                break slot;
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
            *b = Block {
                first_us: grant.first_us,
                interval_us,
                granted: grant.granted,
                used: 1,
            };
            break grant.first_us;
        };
        let wait = slot_us - now_us();
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait as u64)).await;
        }
        Ok(())
    }
}
