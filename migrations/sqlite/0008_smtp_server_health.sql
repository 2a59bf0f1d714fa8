-- What the delivery workers last saw of each SMTP server, for the operator
-- (/health, the digest API, `herald digest status`): 'ok'; 'failing'
-- (connections cannot be opened; tried again after each cool-down);
-- 'stopped' (a configuration error: credentials refused, certificate not
-- trusted, STARTTLS missing; not tried again until herald restarts); or
-- 'resumed' (an operator asked the workers to try a stopped server again).
-- Written on each change of state, not per message.
CREATE TABLE smtp_server_health (
    server     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    last_error TEXT,
    since      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
