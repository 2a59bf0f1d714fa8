-- Throttling replies (421, 452, 4.7.x) are attempts too, but they say
-- nothing about the recipient: they do not count towards max_attempts.
ALTER TABLE deliveries ADD COLUMN throttled BIGINT NOT NULL DEFAULT 0;

-- Per-server rate limits shared by every worker on this database.
-- Pacing: the next free send slot, in microseconds since the epoch.
CREATE TABLE smtp_pacing (
    server       TEXT PRIMARY KEY,
    next_slot_us BIGINT NOT NULL
);

-- Sliding window: sends granted per server per bucket (a 60th of the window),
-- keyed by the bucket's start in microseconds.
CREATE TABLE smtp_window (
    server TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    sends  BIGINT NOT NULL,
    PRIMARY KEY (server, bucket)
);
