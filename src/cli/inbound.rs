//! `herald inbound`: one mail on stdin (a bounce, a complaint or an
//! unsubscribe by mail), acted on by `crate::inbound`.

use super::{load_config, shown, state, GlobalArgs};
use anyhow::Context;

/// `herald inbound`: one message on stdin. Anything herald does not act
/// on exits 0 (the mail is consumed, not bounced back). Every failure exits
/// 75, EX_TEMPFAIL, so the MTA keeps the message and tries again: a
/// missing, unreadable or invalid configuration (Postfix's pipe would treat
/// exit 1 as permanent and drop the DSN), no database, a database that is
/// down, an I/O error, and a panic anywhere in the process.
pub(super) async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    const EX_TEMPFAIL: i32 = 75;
    std::panic::set_hook(Box::new(|info| {
        eprintln!("herald inbound: {info}");
        std::process::exit(EX_TEMPFAIL);
    }));
    let handled = async {
        let mut raw = Vec::new();
        std::io::stdin()
            .take(crate::inbound::MAX_MESSAGE_BYTES as u64 + 1)
            .read_to_end(&mut raw)
            .context("reading the message on stdin")?;
        let config = load_config(global)?;
        let state = state(config).await?;
        let handled = crate::inbound::handle(&state, raw, "stdin").await?;
        let line = serde_json::to_string(&handled)?;
        writeln!(std::io::stdout(), "{line}").context("writing the outcome")?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = handled {
        eprintln!("herald inbound: {}", shown(&format!("{e:#}")));
        std::process::exit(EX_TEMPFAIL);
    }
    Ok(())
}
