//! What an operator can do about an SMTP server that herald stopped using
//! (a refused password, an untrusted certificate): see it, and take it back
//! into use once the relay or its account is fixed.

use crate::domain::time::now_millis;
use crate::store::{SmtpHealthRow, Store};

/// Each server's state as the workers last recorded it.
pub async fn list(store: &Store) -> Result<Vec<SmtpHealthRow>, crate::store::Error> {
    store.smtp_health().await
}

/// Takes a stopped server back into use: the workers see it within seconds
/// and try it again (once: if the configuration is still wrong it is
/// stopped again and says so). Returns whether the server was stopped.
pub async fn resume(store: &Store, server: &str) -> Result<bool, crate::store::Error> {
    let resumed = store.resume_smtp_server(server, now_millis()).await?;
    if resumed {
        tracing::info!(server, "SMTP server resumed by an operator");
    }
    Ok(resumed)
}
