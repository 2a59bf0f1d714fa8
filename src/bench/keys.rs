//! `herald bench keys` seeds N subscribers as an installation from before
//! address keys stored them (no key), and times the keying every command
//! runs at connect (`Store::backfill_email_keys`: keys computed in herald,
//! written set-based per batch) against a baseline in the same run on the
//! same rows: one `UPDATE … SET email_key = lower(email)` in the database.

use super::*;

pub async fn keys(
    subscribers: i64,
    which: Databases,
    postgres_url: Option<&str>,
) -> anyhow::Result<()> {
    let dir = tempdir()?;
    for kind in kinds(which) {
        let name = kind.label();
        let url = fresh_database(kind, postgres_url, &dir, "keys").await?;
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        store
            .seed_bench_subscribers(subscribers, now_millis())
            .await?;
        let rows = store.forget_email_keys_for_bench().await?;
        let started = Instant::now();
        store.key_by_lowercase_for_bench().await?;
        let baseline = started.elapsed().as_secs_f64();
        store.forget_email_keys_for_bench().await?;
        let started = Instant::now();
        store.backfill_email_keys().await?;
        let herald = started.elapsed().as_secs_f64();
        println!(
            "{name:<9} {rows} rows without a key: herald keyed them in {herald:.1} s ({:.0}/s), one SQL UPDATE in {baseline:.1} s; herald/baseline time {:.1}x",
            rows as f64 / herald.max(1e-9),
            herald / baseline.max(1e-9)
        );
    }
    Ok(())
}
