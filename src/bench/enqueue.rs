//! `herald bench enqueue` seeds N confirmed subscribers and times queueing one
//! digest for all of them.

use super::*;

pub async fn enqueue(
    subscribers: i64,
    which: Databases,
    postgres_url: Option<&str>,
) -> anyhow::Result<()> {
    let dir = tempdir()?;
    for kind in kinds(which) {
        let name = kind.label();
        let url = fresh_database(kind, postgres_url, &dir, "enqueue").await?;
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        let started = Instant::now();
        store
            .seed_bench_subscribers(subscribers, now_millis())
            .await?;
        let seeded = started.elapsed();
        let config = Config {
            database_url: Some(url.clone()),
            site_name: "herald".into(),
            ..Config::default()
        };
        crate::articles::add_article(
            &store,
            crate::articles::ArticleInput {
                title: "Benchmark story".into(),
                url: "https://news.example.com/bench/".into(),
                html: "<p>Text.</p>".into(),
                published_at: None,
                author: None,
                image_url: None,
                guid: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let started = Instant::now();
        let outcome = digest::create(&store, &config, "manual:bench-enqueue", now_millis()).await?;
        let queued = started.elapsed();
        let CreateOutcome::Created(id) = outcome else {
            bail!("digest not created");
        };
        let recipients = store
            .digest_by_id(id)
            .await?
            .map(|d| d.recipients)
            .unwrap_or(0);
        println!(
            "{name:<9} seeded {subscribers} subscribers in {:.1} s; queued a digest for {recipients} in {:.2} s",
            seeded.as_secs_f64(),
            queued.as_secs_f64()
        );
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
