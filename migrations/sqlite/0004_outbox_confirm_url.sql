-- A confirmation in the outbox keeps its link, not its rendered bodies: the
-- mail is rendered when it is sent. A signup writes ~100 bytes here instead
-- of ~2 KB of HTML and text (which PostgreSQL would also compress).
-- Rows queued before this keep their bodies and are sent as they are.
-- Like the bodies, the link is cleared once the mail is sent or has failed.
ALTER TABLE outbox ADD COLUMN confirm_url TEXT;
