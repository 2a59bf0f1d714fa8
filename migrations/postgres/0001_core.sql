-- herald core schema (PostgreSQL). Timestamps are UTC milliseconds since the Unix epoch.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE subscribers (
    id                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email                     TEXT NOT NULL UNIQUE,
    name                      TEXT,
    status                    TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    source                    TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
    confirmed_at              BIGINT,
    unsubscribed_at           BIGINT,
    consent_ip                TEXT,
    consent_user_agent        TEXT,
    consent_at                BIGINT,
    last_confirmation_sent_at BIGINT,
    hard_bounces              BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX subscribers_status_id ON subscribers (status, id);

CREATE TABLE confirmation_tokens (
    token_hash    TEXT PRIMARY KEY,
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE INDEX confirmation_tokens_subscriber ON confirmation_tokens (subscriber_id);

CREATE TABLE articles (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed_id      BIGINT,
    guid         TEXT NOT NULL,
    url          TEXT NOT NULL,
    title        TEXT NOT NULL,
    summary      TEXT NOT NULL,
    html         TEXT NOT NULL,
    image_url    TEXT,
    author       TEXT,
    published_at BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX articles_feed_guid ON articles (COALESCE(feed_id, 0), guid);
CREATE INDEX articles_published_at ON articles (published_at);

CREATE TABLE digests (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot         TEXT NOT NULL UNIQUE,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    subject      TEXT NOT NULL,
    body_html    TEXT NOT NULL,
    body_text    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'paused', 'cancelled', 'done')),
    recipients   BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);

CREATE TABLE digest_articles (
    digest_id  BIGINT NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    article_id BIGINT NOT NULL REFERENCES articles (id),
    position   BIGINT NOT NULL,
    PRIMARY KEY (digest_id, article_id)
);
CREATE INDEX digest_articles_article ON digest_articles (article_id);

-- No foreign keys here on purpose: rows are only ever created by one
-- INSERT … SELECT from subscribers, in the digest's own transaction, and
-- per-row foreign-key checks doubled the time to queue a million of them.
-- Whoever deletes a subscriber or a digest deletes its deliveries too.
CREATE TABLE deliveries (
    digest_id       BIGINT NOT NULL,
    subscriber_id   BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    smtp_response   TEXT,
    sent_at         BIGINT,
    PRIMARY KEY (digest_id, subscriber_id)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id, status);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    subscriber_id   BIGINT REFERENCES subscribers (id) ON DELETE CASCADE,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_html       TEXT,
    body_text       TEXT,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
