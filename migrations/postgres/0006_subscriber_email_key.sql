-- The identity of a subscriber is its normalised address (local part
-- compared case-insensitively, domain in IDNA ASCII form), computed by the
-- application (SubscriberEmail::key) and written with every new row. Rows
-- from before this migration get theirs at start-up (Store::backfill_email_keys),
-- which also settles addresses that turn out to be one.
ALTER TABLE subscribers ADD COLUMN email_key TEXT;
CREATE UNIQUE INDEX subscribers_identity ON subscribers (email_key);
-- The key is a function of the address, so its uniqueness implies the
-- address's: the address's own unique index is one index too many on the
-- signup path. (SQLite cannot drop a column constraint without rebuilding
-- the table: Store::migrate rebuilds it once, store/sqlite_rebuild.rs.)
ALTER TABLE subscribers DROP CONSTRAINT IF EXISTS subscribers_email_key;
-- The global cap on confirmation mails counts the ones sent in the last
-- minute. Partial, so that queueing a confirmation (sent_at NULL: every
-- signup) adds nothing to it.
CREATE INDEX outbox_confirmations_sent ON outbox (sent_at)
    WHERE kind = 'confirmation' AND sent_at IS NOT NULL;
