-- A disabled user can neither log in nor use a token or a session.
ALTER TABLE users ADD COLUMN disabled_at double precision;

-- Moved on in the commit of every revocation (a token revoked, a user disabled, a password
-- changed, a membership removed). A daemon reads it before it trusts the tokens it
-- remembers, so a revocation made by another process counts from its next request.
CREATE TABLE auth_epoch (
    id     integer PRIMARY KEY CHECK (id = 1),
    epoch  bigint NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);
