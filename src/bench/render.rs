//! `herald bench render`: what building one subscriber's copy of a digest
//! costs, lettre's builder per copy against the message built once and
//! spliced per copy.

use super::tempdir;
use crate::config::Config;
use anyhow::Context;

/// `herald bench render`: what building a subscriber's copy costs, the old
/// way (lettre's builder per copy) against the digest built once and
/// spliced per copy, on a ~20 KB digest.
pub fn render(copies: u32) -> anyhow::Result<()> {
    let (html, text) = crate::mail::sample_digest_bodies();
    let bodies = crate::mail::sample_digest();
    let from: lettre::message::Mailbox = "The Daily Herald <news@news.example>"
        .parse()
        .context("the bench's From address")?;
    let (builder, spliced) = crate::mail::time_per_copy(&from, &bodies, copies)?;
    println!(
        "digest of {} bytes (HTML {} + text {}), {copies} copies",
        html.len() + text.len(),
        html.len(),
        text.len()
    );
    println!(
        "per copy: lettre builder {:.2} µs, built once and spliced {:.2} µs: {:.1}x faster",
        builder.as_secs_f64() * 1e6,
        spliced.as_secs_f64() * 1e6,
        builder.as_secs_f64() / spliced.as_secs_f64().max(1e-12)
    );
    let news = news_layout_digest()?;
    let (builder, spliced) = crate::mail::time_per_copy(&from, &news, copies)?;
    println!(
        "news layout, twelve stories ({} bytes): per copy, lettre builder {:.2} µs, spliced {:.2} µs: {:.1}x faster",
        news.html.byte_len() + news.text.byte_len(),
        builder.as_secs_f64() * 1e6,
        spliced.as_secs_f64() * 1e6,
        builder.as_secs_f64() / spliced.as_secs_f64().max(1e-12)
    );
    let (from_template, whole) = crate::mail::time_body_hash(&from, &bodies, copies)?;
    println!(
        "DKIM body hash per copy: from the template's precomputed state {:.2} µs, over the whole copy {:.2} µs",
        from_template.as_secs_f64() * 1e6,
        whole.as_secs_f64() * 1e6,
    );
    use crate::mail::dkim::{Algorithm, Dkim, DkimKey};
    let dir = tempdir()?.join("render-keys");
    crate::private_files::create_private_dir(&dir)?;
    let key = |algorithm: Algorithm| -> anyhow::Result<DkimKey> {
        let path = dir.join(format!("{}.pem", algorithm.key_type()));
        if !path.exists() {
            crate::mail::dkim::generate(algorithm, &path)?;
        }
        Ok(DkimKey::load(&path, "bench", "news.example")?)
    };
    for (label, algorithms) in [
        ("Ed25519", &[Algorithm::Ed25519][..]),
        ("RSA-2048", &[Algorithm::Rsa][..]),
        (
            "RSA-2048 + Ed25519",
            &[Algorithm::Rsa, Algorithm::Ed25519][..],
        ),
    ] {
        let keys = algorithms
            .iter()
            .map(|a| key(*a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dkim = std::sync::Arc::new(Dkim::new(keys));
        // RSA signing is slow: fewer copies keep the bench short.
        let n = if algorithms.contains(&Algorithm::Rsa) {
            copies.min(2000)
        } else {
            copies
        };
        let signed = crate::mail::time_per_signed_copy(&from, &bodies, n, Some(dkim))?;
        println!(
            "per copy, spliced and DKIM-signed with {label}: {:.2} µs (signing adds {:.2} µs; one core: {:.0} copies/s)",
            signed.as_secs_f64() * 1e6,
            (signed.as_secs_f64() - spliced.as_secs_f64()) * 1e6,
            1.0 / signed.as_secs_f64().max(1e-12)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A twelve-story digest rendered by herald's own template (pictures,
/// categories, authors), its archive link filled in as the worker does.
fn news_layout_digest() -> anyhow::Result<crate::digest::slots::SlottedBodies> {
    use crate::digest::render::{self, ArticleView, Excerpt};
    let body = "<p>Relations between the two countries have presented a series of warning signs. The recent drills at the border signal an escalation. Both capitals watch closely, and neighbours ask for talks.</p>";
    let views: Vec<ArticleView> = (0..12)
        .filter_map(|i| {
            let row = crate::store::ArticleRow {
                id: i,
                feed_id: None,
                guid: format!("bench-{i}"),
                url: format!("https://news.example.com/2026/11/benchmark-story-{i}/"),
                title: format!("Benchmark story number {i} with a headline of ordinary length"),
                summary: String::new(),
                html: body.to_string(),
                image_url: Some(format!(
                    "https://news.example.com/wp-content/uploads/2026/11/story-{i}.jpg"
                )),
                image_width: Some(1200),
                author: Some("Staff Writer".into()),
                published_at: 0,
                created_at: 0,
                categories: Some(r#"["World","Politics"]"#.into()),
                held_back: 0,
            };
            let excerpt = if i == 0 {
                Excerpt::Lead
            } else {
                Excerpt::Brief
            };
            ArticleView::with_excerpt(&row, excerpt)
        })
        .collect();
    let config = Config::default();
    let (rendered, _) = render::render(&config, &views, "Monday 30 November 2026")
        .context("rendering the news layout")?;
    Ok(rendered
        .bodies
        .with_archive_url("https://news.example.com/newsletter/archive/1"))
}
