-- Feeds herald polls for new articles, and what articles keep from them.
CREATE TABLE feeds (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                  TEXT NOT NULL UNIQUE,
    title                TEXT,
    site_url             TEXT,
    etag                 TEXT,
    last_modified        TEXT,
    poll_interval_secs   BIGINT NOT NULL,
    backfill_days        BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    first_polled_at      BIGINT,
    last_polled_at       BIGINT,
    last_success_at      BIGINT,
    last_status          TEXT,
    last_error           TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    next_poll_at         BIGINT NOT NULL
);
CREATE INDEX feeds_next_poll_at ON feeds (next_poll_at);

-- JSON array of the item's categories.
ALTER TABLE articles ADD COLUMN categories TEXT;
-- 1 for items that were already in the feed when herald first polled it
-- (older than the backfill window): stored, so edits are recognised, but
-- never put in a digest.
ALTER TABLE articles ADD COLUMN held_back BIGINT NOT NULL DEFAULT 0;
