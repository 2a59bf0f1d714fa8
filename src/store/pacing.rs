//! Send slots for SMTP servers with rate limits, shared by every worker on
//! the database. One short write transaction hands out a block of slots, so
//! two workers never get the same slot and their sum never exceeds the limit.

use super::{in_write_tx, Result, Store};

/// What a worker may send to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotGrant {
    /// Time of the first slot (µs since the epoch); the others follow at
    /// the requested interval.
    pub first_us: i64,
    /// How many slots were granted; 0 when the window is full.
    pub granted: i64,
    /// With nothing granted: when to ask again.
    pub retry_at_us: i64,
}

/// The window limit: at most `limit` sends in any `window_us`.
#[derive(Debug, Clone, Copy)]
pub struct WindowLimit {
    pub limit: i64,
    pub window_us: i64,
}

impl WindowLimit {
    /// Sends are counted in 60 buckets per window; a bucket counts until
    /// its last moment has left the window, so the count errs high (herald
    /// may send up to a 60th less than allowed, never more).
    fn bucket_us(&self) -> i64 {
        (self.window_us / 60).max(1)
    }
}

impl Store {
    /// Grants up to `want` slots `interval_us` apart, starting at the
    /// server's next free slot or `now_us`, whichever is later, and within
    /// the window limit if there is one.
    pub async fn reserve_send_slots(
        &self,
        server: &str,
        now_us: i64,
        interval_us: i64,
        want: i64,
        window: Option<WindowLimit>,
    ) -> Result<SlotGrant> {
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR UPDATE",
        };
        let select = format!("SELECT next_slot_us FROM smtp_pacing WHERE server = $1{lock}");
        in_write_tx!(self, tx => {
            sqlx::query("INSERT INTO smtp_pacing (server, next_slot_us) VALUES ($1, 0) ON CONFLICT (server) DO NOTHING")
                .bind(server)
                .execute(&mut *tx)
                .await?;
            let next: i64 = sqlx::query_scalar(&select)
                .bind(server)
                .fetch_one(&mut *tx)
                .await?;
            let first_us = next.max(now_us);
            let mut granted = want.max(1);
            if let Some(w) = window {
                let bucket_us = w.bucket_us();
                sqlx::query("DELETE FROM smtp_window WHERE server = $1 AND bucket + $2 <= $3")
                    .bind(server)
                    .bind(bucket_us)
                    .bind(now_us - w.window_us)
                    .execute(&mut *tx)
                    .await?;
                let (used, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(sends), 0) AS BIGINT), MIN(bucket) FROM smtp_window WHERE server = $1",
                )
                .bind(server)
                .fetch_one(&mut *tx)
                .await?;
                let room = w.limit - used;
                if room <= 0 {
                    tx.commit().await?;
                    let retry_at_us = oldest.map_or(now_us + bucket_us, |b| b + bucket_us + w.window_us);
                    return Ok(SlotGrant { first_us, granted: 0, retry_at_us });
                }
                granted = granted.min(room);
                // Counted in the bucket of the block's last slot: a window
                // that holds any of these sends also holds that bucket.
                let last_us = first_us + (granted - 1) * interval_us;
                sqlx::query(
                    "INSERT INTO smtp_window (server, bucket, sends) VALUES ($1, $2, $3)
                     ON CONFLICT (server, bucket) DO UPDATE SET sends = smtp_window.sends + excluded.sends",
                )
                .bind(server)
                .bind(last_us - last_us.rem_euclid(bucket_us))
                .bind(granted)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE smtp_pacing SET next_slot_us = $2 WHERE server = $1")
                .bind(server)
                .bind(first_us + granted * interval_us)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(SlotGrant { first_us, granted, retry_at_us: first_us })
        })
    }
}
