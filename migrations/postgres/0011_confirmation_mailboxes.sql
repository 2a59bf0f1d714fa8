-- When a confirmation mail last went to each receiving mailbox (the
-- address key without its +tag, and without dots at Gmail): the resend
-- limit counts per mailbox, so sub-addresses of one reader
-- (victim+1@, victim+2@, v.ictim@gmail.com) get one confirmation mail
-- between them per resend interval, though each stays its own subscriber.
CREATE TABLE confirmation_mailboxes (
    mailbox_key  TEXT PRIMARY KEY,
    last_sent_at BIGINT NOT NULL
);
