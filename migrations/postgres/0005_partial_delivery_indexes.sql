-- Each copy of a digest is updated twice (claimed, then recorded), and
-- neither update can be HOT because `status` is indexed: every update
-- inserted an entry into all three indexes. The two secondary indexes are
-- only ever searched for open rows, so they now hold only those: a row
-- recorded as sent (or failed, or skipped) leaves no new entry behind, and
-- a claimed row none in the subscriber index.
--   deliveries_due: claims (queued by next_attempt_at, sending by lease),
--     lease renewal, and "is this digest finished".
--   deliveries_subscriber: an unsubscribe skips the address's queued copies.
-- PostgreSQL only: SQLite would not use a partial index for these queries
-- (it does not prove `status = 'queued'` implies `status IN (…)`).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)
    WHERE status IN ('queued', 'sending');
DROP INDEX deliveries_subscriber;
CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id)
    WHERE status = 'queued';
