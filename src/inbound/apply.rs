//! Acting on a classified inbound message: at most one subscriber changes,
//! the one its verified token names.

use super::classify::{classify, Mailboxes, Report};
use crate::domain::time::now_millis;
use crate::domain::SubscriberEmail;
use crate::state::AppState;
use crate::store::{EventKind, NewEvent, SubscriberRow};

/// What herald did with an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Handled {
    /// "bounce", "soft_bounce", "complaint", "unsubscribe", "duplicate",
    /// or, changing nothing: "auto_reply", "unparseable", "ignored".
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_id: Option<i64>,
    /// Why, for the log and the caller.
    pub detail: String,
}

impl Handled {
    fn ignored(detail: impl Into<String>) -> Self {
        Self::not_acted_on("ignored", detail.into())
    }

    fn not_acted_on(outcome: &'static str, detail: String) -> Self {
        Self {
            outcome,
            subscriber_id: None,
            detail,
        }
    }
}

/// Classifies `raw` (on the blocking pool: a message may be large) and
/// acts on it. `source` names the entry point in the log.
pub async fn handle(state: &AppState, raw: Vec<u8>, source: &str) -> anyhow::Result<Handled> {
    let mut handled = handle_inner(state, raw).await?;
    // The detail quotes the message (a Diagnostic-Code, a header): one
    // line without control characters before it is logged or answered.
    handled.detail = crate::domain::single_line(&handled.detail);
    tracing::info!(
        source,
        outcome = handled.outcome,
        subscriber_id = handled.subscriber_id,
        detail = %handled.detail,
        "inbound message"
    );
    Ok(handled)
}

async fn handle_inner(state: &AppState, raw: Vec<u8>) -> anyhow::Result<Handled> {
    if raw.len() > super::MAX_MESSAGE_BYTES {
        return Ok(Handled::ignored(format!(
            "message of {} bytes is over the limit of {}",
            raw.len(),
            super::MAX_MESSAGE_BYTES
        )));
    }
    let mailboxes = Mailboxes::from_config(&state.config.inbound);
    let classified = tokio::task::spawn_blocking(move || classify(&raw, &mailboxes)).await?;
    let (kind, source, detail) = match &classified.report {
        Report::Other(why) => return Ok(Handled::ignored(why.clone())),
        Report::AutoReply(why) => return Ok(Handled::not_acted_on("auto_reply", why.clone())),
        Report::Unparseable(why) => return Ok(Handled::not_acted_on("unparseable", why.clone())),
        Report::OtherFeedback(t) => {
            return Ok(Handled::ignored(format!(
                "a feedback report of type {t:?}, not a complaint"
            )))
        }
        Report::Unsubscribe => (
            EventKind::Unsubscribe,
            "mailto",
            "unsubscribe by mail".to_string(),
        ),
        Report::Complaint { feedback_type, .. } => (
            EventKind::Complaint,
            "arf",
            format!("feedback report: {feedback_type}"),
        ),
        Report::Dsn { format, .. } => (EventKind::SoftBounce, *format, String::new()),
    };
    let Some(subscriber) = one_subscriber(state, &classified.tokens).await? else {
        return Ok(Handled::ignored(if classified.tokens.is_empty() {
            "no herald token in the message".to_string()
        } else {
            "no token whose signature holds for exactly one subscriber".to_string()
        }));
    };
    let key = SubscriberEmail::from_trusted(subscriber.email.clone()).key();
    let names_subscriber =
        |address: &str| SubscriberEmail::parse(address).is_ok_and(|e| e.key() == key);
    let (kind, detail) = match &classified.report {
        Report::Dsn { recipients, .. } => {
            let Some(r) = recipients.iter().find(|r| names_subscriber(&r.recipient)) else {
                return Ok(Handled::ignored(
                    "the report's recipients are not the subscriber its token names",
                ));
            };
            let detail = format!("{} {} {}", r.action, r.status, r.diagnostic);
            if r.is_permanent() {
                (EventKind::Bounce, detail)
            } else if matches!(r.action.as_str(), "failed" | "delayed") {
                (EventKind::SoftBounce, detail)
            } else {
                return Ok(Handled::ignored(format!("a delivery report: {}", r.action)));
            }
        }
        Report::Complaint { recipients, .. }
            if !recipients.is_empty() && !recipients.iter().any(|r| names_subscriber(r)) =>
        {
            return Ok(Handled::ignored(
                "the complaint's recipient is not the subscriber its token names",
            ));
        }
        _ => (kind, detail),
    };
    let outcome = state
        .store
        .record_subscriber_event(
            &NewEvent {
                subscriber_id: subscriber.id,
                kind,
                source,
                detail: &detail,
                reference: &classified.reference,
                now: now_millis(),
            },
            i64::from(state.config.delivery.bounce_threshold.max(1)),
        )
        .await?;
    Ok(Handled {
        outcome: if outcome.recorded {
            kind.as_str()
        } else {
            "duplicate"
        },
        subscriber_id: Some(subscriber.id),
        detail,
    })
}

/// The one subscriber the message's valid tokens name; none when no token
/// holds or valid tokens name different subscribers.
async fn one_subscriber(
    state: &AppState,
    tokens: &[String],
) -> anyhow::Result<Option<SubscriberRow>> {
    let mut found: Option<SubscriberRow> = None;
    // A report carries a handful of tokens at most; more is not herald's.
    for token in tokens.iter().take(8) {
        if let Some(s) =
            crate::subscriptions::subscriber_for_unsubscribe_token(state, token).await?
        {
            match &found {
                Some(f) if f.id != s.id => return Ok(None),
                _ => found = Some(s),
            }
        }
    }
    Ok(found)
}
