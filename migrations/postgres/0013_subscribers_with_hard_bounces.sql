-- Subscribers with a run of ambiguous permanent failures: almost none. A
-- delivered copy resets the run, and the reset of each recorded batch
-- (WHERE hard_bounces > 0 AND id IN the batch) reads this index instead of
-- the table.
CREATE INDEX subscribers_with_hard_bounces ON subscribers (id) WHERE hard_bounces > 0;
