//! Mail that comes back: delivery status notifications (RFC 3464), spam
//! complaints from feedback loops (RFC 5965 ARF), and unsubscribes sent to
//! the List-Unsubscribe mailto address. One raw RFC 5322 message in,
//! through `herald inbound` (stdin, for a Postfix pipe transport or a
//! procmail rule) or `POST /inbound`.
//!
//! Nothing in a message is trusted to name a subscriber by address alone:
//! every action needs a herald unsubscribe token whose signature holds (in
//! a VERP return path `bounces+TOKEN@…`, the `unsubscribe+TOKEN@…` address,
//! the Subject herald writes into the mailto link, or the returned copy's
//! List-Unsubscribe header), and a report that also names a recipient must
//! name that same subscriber. A forged report naming someone else's
//! address changes nothing.
//!
//! The bounce channel and the unsubscribe channel are separate: a token
//! in the bounce address acts only through a delivery report that names
//! its subscriber (a permanent failure bounces, a delay or a transient
//! failure is recorded as a soft bounce); only the unsubscribe address or
//! the unsubscribe Subject unsubscribes. Auto-replies, out-of-office
//! notices and unparseable mail change nothing, whatever they carry.

mod apply;
mod classify;
#[cfg(test)]
mod fuzz;
pub mod limits;
mod plain_bounce;

pub use apply::{handle, Handled};
pub use classify::{classify, Classified, DsnRecipient, Mailboxes, Report};

/// Largest message read (a DSN with the whole returned digest fits).
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
