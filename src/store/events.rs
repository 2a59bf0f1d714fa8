//! Bounces, complaints and unsubscribes that arrive after sending (inbound
//! reports and relay webhooks), recorded once each and acted on in the same
//! transaction.

use super::{in_write_tx, with_pool, Result, Store};
use crate::domain::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A permanent failure for this recipient: counts towards `bounced`.
    Bounce,
    /// A transient failure: recorded, nothing else.
    SoftBounce,
    /// A spam complaint: unsubscribed at once.
    Complaint,
    /// An unsubscribe by mail: unsubscribed at once.
    Unsubscribe,
}

impl EventKind {
    pub const ALL: [Self; 4] = [
        Self::Bounce,
        Self::SoftBounce,
        Self::Complaint,
        Self::Unsubscribe,
    ];

    /// The kind named `name` ("bounce", "soft_bounce", "complaint", "unsubscribe").
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "bounce",
            Self::SoftBounce => "soft_bounce",
            Self::Complaint => "complaint",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}

/// One report about one subscriber.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub subscriber_id: i64,
    pub kind: EventKind,
    /// "dsn", "arf", "mailto", "ses", "sendgrid", "postmark".
    pub source: &'a str,
    pub detail: &'a str,
    /// The same reference twice is one event.
    pub reference: &'a str,
    pub now: Millis,
}

/// What recording an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EventOutcome {
    /// False: the same report was recorded before; nothing changed.
    pub recorded: bool,
    /// The subscriber's status changed (to unsubscribed or bounced).
    pub status_changed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DigestEventCounts {
    pub bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
    pub unsubscribes_by_mail: i64,
}

/// An event's detail as stored: text from outside (a Diagnostic-Code, a
/// relay's reason, an SMTP reply) kept as one line of at most 1000
/// characters without control characters, so that no terminal escape or
/// log line break reaches an operator from here.
pub(super) fn event_detail(text: &str) -> String {
    crate::domain::single_line(text)
        .chars()
        .take(1000)
        .collect()
}

impl Store {
    /// Records `event` once (by reference, subscriber and kind) and acts on
    /// it: a bounce counts towards `bounce_threshold`, a complaint or an
    /// unsubscribe by mail unsubscribes and skips queued copies.
    pub async fn record_subscriber_event(
        &self,
        event: &NewEvent<'_>,
        bounce_threshold: i64,
    ) -> Result<EventOutcome> {
        let detail = event_detail(event.detail);
        let source = crate::domain::single_line(event.source);
        in_write_tx!(self, tx => {
            let digest_id: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(digest_id) FROM deliveries WHERE subscriber_id = $1 AND status = 'sent'",
            )
            .bind(event.subscriber_id)
            .fetch_one(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO subscriber_events (subscriber_id, digest_id, kind, source, detail, reference, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (reference, subscriber_id, kind) DO NOTHING",
            )
            .bind(event.subscriber_id)
            .bind(digest_id)
            .bind(event.kind.as_str())
            .bind(&source)
            .bind(&detail)
            .bind(event.reference)
            .bind(event.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.commit().await?;
                return Ok(EventOutcome { recorded: false, status_changed: false });
            }
            let changed = match event.kind {
                EventKind::SoftBounce => 0,
                EventKind::Bounce => {
                    // The same rule as a recipient's 5xx at RCPT.
                    let before: Option<String> =
                        sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1")
                            .bind(event.subscriber_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let after: Option<String> = sqlx::query_scalar(
                        "UPDATE subscribers SET hard_bounces = hard_bounces + 1,
                         status = CASE WHEN hard_bounces + 1 >= $2 AND status = 'confirmed' THEN 'bounced' ELSE status END
                         WHERE id = $1 RETURNING status",
                    )
                    .bind(event.subscriber_id)
                    .bind(bounce_threshold)
                    .fetch_optional(&mut *tx)
                    .await?;
                    u64::from(before != after)
                }
                EventKind::Complaint | EventKind::Unsubscribe => {
                    let changed = sqlx::query(
                        "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = $2
                         WHERE id = $1 AND status IN ('pending', 'confirmed', 'bounced')",
                    )
                    .bind(event.subscriber_id)
                    .bind(event.now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    sqlx::query(
                        "UPDATE deliveries SET status = 'skipped', last_error = $2
                         WHERE subscriber_id = $1 AND status = 'queued'",
                    )
                    .bind(event.subscriber_id)
                    .bind(if event.kind == EventKind::Complaint { "complained" } else { "unsubscribed" })
                    .execute(&mut *tx)
                    .await?;
                    changed
                }
            };
            tx.commit().await?;
            Ok(EventOutcome { recorded: true, status_changed: changed > 0 })
        })
    }

    /// Bounces, complaints and unsubscribes by mail attributed to a digest.
    pub async fn digest_event_counts(&self, digest_id: i64) -> Result<DigestEventCounts> {
        let rows: Vec<(String, i64)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT kind, COUNT(*) FROM subscriber_events WHERE digest_id = $1 GROUP BY kind")
                .bind(digest_id)
                .fetch_all(pool)
                .await?
        });
        let mut counts = DigestEventCounts::default();
        for (kind, n) in rows {
            match kind.as_str() {
                "bounce" => counts.bounces = n,
                "soft_bounce" => counts.soft_bounces = n,
                "complaint" => counts.complaints = n,
                "unsubscribe" => counts.unsubscribes_by_mail = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

/// One recorded event, with the subscriber's address, for the operator.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SubscriberEventRow {
    pub id: i64,
    pub subscriber_id: i64,
    pub email: String,
    pub digest_id: Option<i64>,
    pub kind: String,
    pub source: String,
    pub detail: String,
    #[serde(serialize_with = "crate::domain::time::rfc3339::ser")]
    pub created_at: Millis,
}

impl Store {
    /// The newest events, of one kind or all.
    pub async fn recent_subscriber_events(
        &self,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SubscriberEventRow>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT e.id, e.subscriber_id, s.email, e.digest_id, e.kind, e.source, e.detail, e.created_at
                 FROM subscriber_events e JOIN subscribers s ON s.id = e.subscriber_id
                 WHERE ($1 IS NULL OR e.kind = $1)
                 ORDER BY e.id DESC LIMIT $2",
            )
            .bind(kind)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }
}
