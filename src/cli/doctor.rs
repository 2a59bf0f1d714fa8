//! `herald doctor`: what receivers will find (SPF, DKIM, DMARC), checked
//! by `crate::doctor`.

use crate::config::Config;
use anyhow::Context;

pub(super) async fn run(config: Config, resolver: Option<String>) -> anyhow::Result<()> {
    let resolver = match resolver.or_else(|| config.doctor.resolver.clone()) {
        Some(r) => Some(
            r.parse::<std::net::SocketAddr>()
                .with_context(|| format!("resolver {r:?}: expected IP:PORT, e.g. 127.0.0.1:53"))?,
        ),
        None => None,
    };
    let timeout = std::time::Duration::from_secs(config.doctor.timeout_secs.clamp(1, 60));
    let mut findings = crate::doctor::check(&config, resolver, timeout).await?;
    findings.extend(crate::doctor::seen_by_herald(&config).await);
    if !crate::doctor::print(&findings) {
        std::process::exit(1);
    }
    Ok(())
}
