-- An article the operator removed (`herald article remove`, DELETE
-- /api/articles/{id}): kept as a row so that the feed that still carries
-- it does not bring it back at the next poll, but never listed and never
-- put in a digest again.
ALTER TABLE articles ADD COLUMN removed_at BIGINT;
-- The held-back articles of each feed (items that were already in the feed
-- when herald first read it): few, counted by `feed list` and released by
-- `feed backfill`.
CREATE INDEX articles_held_back ON articles (feed_id) WHERE held_back = 1;
