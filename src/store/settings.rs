use super::{with_pool, Result, Store};

impl Store {
    /// Returns the stored value for `key`, storing `candidate` first if the
    /// key is new. Safe under concurrent first starts: whoever inserts first
    /// wins and everybody reads that value.
    pub async fn setting_or_insert(&self, key: &str, candidate: &str) -> Result<String> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(candidate)
                .execute(pool)
                .await?;
            let value: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(pool)
                .await?;
            Ok(value)
        })
    }

    /// Stores `value` for `key`, replacing what was there.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The stored value for `key`, if any; never writes.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?)
        })
    }
}
