//! `herald serve` and `herald migrate`: the two commands that may create
//! herald's database and its link secret.

use crate::config::Config;
use crate::startup::{self, Application, Role};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Applies the migrations, and makes the link secret unless the
/// configuration gives one.
pub(super) async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = crate::store::Store::connect(&config.database_url())
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    // The link secret is made here or by serve, never by another command.
    if config.secret.is_none() {
        store
            .setting_or_insert("link_secret", &crate::domain::token::new_secret())
            .await
            .context("storing the link secret")?;
    }
    println!("migrations applied ({})", store.backend_name());
    Ok(())
}

pub(super) async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    if config.site_name_derived {
        tracing::warn!(
            site_name = %config.site_name,
            "no site_name configured (HERALD_SITE_NAME): pages and mail call the site by this name; set site_name to the name readers know"
        );
    }
    if config
        .postal_address
        .as_deref()
        .is_none_or(|a| a.trim().is_empty())
    {
        tracing::warn!(
            "no postal_address configured: digests carry no postal address in their footer, which the US CAN-SPAM Act requires of commercial mail"
        );
    }
    if config.api_token.as_deref().is_none_or(str::is_empty) {
        tracing::warn!(
            "no api_token configured (HERALD_API_TOKEN): the /api endpoints refuse every request"
        );
    }
    if config.smtp_url.is_none() && config.smtp_servers.is_empty() {
        tracing::info!(outbox = %config.outbox_dir().display(), "no SMTP server configured (HERALD_SMTP_URL): outgoing mail is written as .eml files");
    }
    let app = Application::build(config, role).await.map_err(|e| {
        let doing = format!("starting herald: {}", e.doing());
        anyhow::Error::new(e).context(doing)
    })?;
    let cancel = CancellationToken::new();
    startup::cancel_on_signals(cancel.clone());
    app.run(cancel).await.context("running herald")?;
    tracing::info!("herald stopped");
    Ok(())
}
