//! Building messages and handing them to a transport: SMTP (pooled lettre
//! transport) or, with no SMTP server configured, .eml files in the outbox
//! directory. No SMTP code lives outside this module.

mod build;
pub mod pool;

pub use build::{confirmation_message, digest_message, DigestBodies, DigestCopy};

use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use pool::{SmtpPool, SmtpTarget};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid SMTP URL: {0}")]
    SmtpUrl(String),
    #[error("invalid From address {0:?}: {1}")]
    From(String, String),
    #[error("could not create the outbox directory {0}: {1}")]
    OutboxDir(PathBuf, std::io::Error),
    #[error("could not build the message: {0}")]
    Build(String),
}

/// Why a send did not go through, as delivery needs to know it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: 4xx reply, connection refused or dropped, timeout.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: 5xx reply.
    #[error("{0}")]
    Permanent(String),
}

#[derive(Clone)]
enum Transport {
    Smtp(Arc<SmtpPool>),
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    pub from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.transport {
            Transport::Smtp(p) => write!(f, "Mailer(smtp {:?}, from {})", p.target(), self.from),
            Transport::File(_, dir) => {
                write!(f, "Mailer(outbox {}, from {})", dir.display(), self.from)
            }
        }
    }
}

impl Mailer {
    pub fn smtp(url: &str, from: &str, pool_size: u32, timeout: Duration) -> Result<Self, Error> {
        let pool = SmtpPool::new(SmtpTarget::parse(url)?, pool_size, timeout);
        Ok(Self {
            transport: Transport::Smtp(Arc::new(pool)),
            from: parse_from(from)?,
        })
    }

    pub fn outbox(dir: PathBuf, from: &str) -> Result<Self, Error> {
        std::fs::create_dir_all(&dir).map_err(|e| Error::OutboxDir(dir.clone(), e))?;
        Ok(Self {
            transport: Transport::File(AsyncFileTransport::new(&dir), dir),
            from: parse_from(from)?,
        })
    }

    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(p) => format!("SMTP {:?}", p.target()),
            Transport::File(_, dir) => format!("outbox directory {}", dir.display()),
        }
    }

    /// Sends one message; on success returns the server's reply (or the
    /// .eml file written).
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match &self.transport {
            Transport::Smtp(pool) => pool.send(message.envelope(), &message.formatted()).await,
            Transport::File(t, dir) => match t.send(message).await {
                Ok(id) => {
                    let path = dir.join(format!("{id}.eml"));
                    tracing::info!(path = %path.display(), "no SMTP server configured: message written to the outbox");
                    Ok(format!("written to {}", path.display()))
                }
                Err(e) => Err(SendError::Transient(e.to_string())),
            },
        }
    }
}

fn parse_from(from: &str) -> Result<Mailbox, Error> {
    from.parse::<Mailbox>()
        .map_err(|e| Error::From(from.to_string(), e.to_string()))
}
