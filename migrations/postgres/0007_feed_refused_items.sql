-- Items a poll refused (too large, nested too deep, too slow to clean, a
-- link that is not http(s)): how many at the last poll that read the feed,
-- and the latest reason, for `herald feed list` and GET /api/feeds.
ALTER TABLE feeds ADD COLUMN refused_items BIGINT NOT NULL DEFAULT 0;
ALTER TABLE feeds ADD COLUMN last_refusal TEXT;
-- Feed numbers used to be cast, not checked: a poll interval of
-- 18446744073709551615 was stored as -1 (a poll every second). Out-of-range
-- values go back to the defaults (900 s, no backfill).
UPDATE feeds SET poll_interval_secs = 900 WHERE poll_interval_secs < 60 OR poll_interval_secs > 604800;
UPDATE feeds SET backfill_days = 0 WHERE backfill_days < 0 OR backfill_days > 365;
