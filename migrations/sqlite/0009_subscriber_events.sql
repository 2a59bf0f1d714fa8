-- What reached herald about a subscriber after sending: a bounce (a
-- delivery status notification or a relay's webhook; 'soft_bounce' for a
-- transient one, only recorded), a complaint (a feedback-loop report), an
-- unsubscribe by mail. digest_id is the newest digest sent to the
-- subscriber when the event arrived. reference (the report's Message-ID or a
-- digest of it, a webhook's event id) makes a report that arrives twice
-- count once.
CREATE TABLE subscriber_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id BIGINT NOT NULL,
    digest_id     BIGINT,
    kind          TEXT NOT NULL CHECK (kind IN ('bounce', 'soft_bounce', 'complaint', 'unsubscribe')),
    source        TEXT NOT NULL,
    detail        TEXT NOT NULL,
    reference     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (reference, subscriber_id, kind)
);
CREATE INDEX subscriber_events_digest ON subscriber_events (digest_id, kind);
CREATE INDEX subscriber_events_subscriber ON subscriber_events (subscriber_id, created_at);
