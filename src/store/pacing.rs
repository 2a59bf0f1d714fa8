//! Send slots for SMTP servers with rate limits, shared by every worker on
//! the database. One short write transaction hands out a block of slots, so
//! two workers never get the same slot and their sum never exceeds the limit.
//!
//! A window limit is what the server counts: messages it accepted in any
//! window. herald cannot know when a granted send will be accepted (a new
//! connection, a slow relay), so a block of sends is counted at the latest
//! moment it could still be in flight (`WindowLimit::hold_us` ahead) until
//! its sends are done; `settle_send_slots` then moves the count to when the
//! last of them finished. A worker that dies mid-block leaves its count
//! where it was: the window stays full a little longer, never overfull.

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
    /// The window bucket the grant was counted in, to be settled once its
    /// sends are done; `None` without a window limit.
    pub counted_bucket: Option<i64>,
}

/// The window limit: at most `limit` sends in any `window_us`.
#[derive(Debug, Clone, Copy)]
pub struct WindowLimit {
    pub limit: i64,
    pub window_us: i64,
    /// How long after its slot a send may still be in flight: its grant is
    /// counted that far ahead until it is settled.
    pub hold_us: i64,
}

impl WindowLimit {
    /// Sends are counted in 60 buckets per window; a bucket counts until
    /// its last moment has left the window, so the count errs high (herald
    /// may send up to a 60th less than allowed, never more).
    fn bucket_us(&self) -> i64 {
        (self.window_us / 60).max(1)
    }

    fn bucket_of(&self, t_us: i64) -> i64 {
        t_us - t_us.rem_euclid(self.bucket_us())
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
            let mut counted = None;
            if let Some(w) = window {
                let bucket_us = w.bucket_us();
                sqlx::query("DELETE FROM smtp_window WHERE server = $1 AND bucket + $2 <= $3")
                    .bind(server)
                    .bind(bucket_us)
                    .bind(now_us - w.window_us)
                    .execute(&mut *tx)
                    .await?;
                // Buckets still ahead of now hold sends in flight; the
                // oldest past one is the first to leave the window.
                let (used, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(sends), 0) AS BIGINT),
                            MIN(CASE WHEN bucket <= $2 THEN bucket END)
                     FROM smtp_window WHERE server = $1",
                )
                .bind(server)
                .bind(now_us)
                .fetch_one(&mut *tx)
                .await?;
                let room = w.limit - used;
                if room <= 0 {
                    tx.commit().await?;
                    let retry_at_us = oldest.map_or(now_us + bucket_us, |b| b + bucket_us + w.window_us);
                    return Ok(SlotGrant { first_us, granted: 0, retry_at_us, counted_bucket: None });
                }
                granted = granted.min(room);
                // Counted as if every send were still in flight at the
                // block's last slot plus the hold; settled when done.
                let last_us = first_us + (granted - 1) * interval_us;
                let bucket = w.bucket_of(last_us + w.hold_us);
                add_sends(&mut tx, server, bucket, granted).await?;
                counted = Some(bucket);
            }
            sqlx::query("UPDATE smtp_pacing SET next_slot_us = $2 WHERE server = $1")
                .bind(server)
                .bind(first_us + granted * interval_us)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(SlotGrant { first_us, granted, retry_at_us: first_us, counted_bucket: counted })
        })
    }

    /// Moves a grant of `granted` sends counted in `counted_bucket` to the
    /// moment its `used` sends were done (the rest were never sent).
    pub async fn settle_send_slots(
        &self,
        server: &str,
        window: WindowLimit,
        counted_bucket: i64,
        granted: i64,
        used: i64,
        done_us: i64,
    ) -> Result<()> {
        in_write_tx!(self, tx => {
            add_sends(&mut tx, server, counted_bucket, -granted).await?;
            if used > 0 {
                add_sends(&mut tx, server, window.bucket_of(done_us), used).await?;
            }
            sqlx::query("DELETE FROM smtp_window WHERE server = $1 AND sends <= 0")
                .bind(server)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}

/// Adds `sends` (negative to take away) to one bucket of a server's window.
async fn add_sends<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    server: &str,
    bucket: i64,
    sends: i64,
) -> Result<()>
where
    DB: sqlx::Database,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'e> &'e mut <DB as sqlx::Database>::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO smtp_window (server, bucket, sends) VALUES ($1, $2, $3)
         ON CONFLICT (server, bucket) DO UPDATE SET sends = smtp_window.sends + excluded.sends",
    )
    .bind(server)
    .bind(bucket)
    .bind(sends)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
