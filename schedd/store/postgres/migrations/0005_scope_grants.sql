-- Scopes whose maintenance windows a user may write (`schedd user grant NAME --scope S`).
-- A scope is kept by its config id, the id windows carry; admins need no grant.
CREATE TABLE scope_grants (
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope_id    bigint NOT NULL,
    granted_at  double precision NOT NULL,
    PRIMARY KEY (user_id, scope_id)
);

-- Who wrote a window event. The content no longer names the user: public reads show the
-- content, and only those who may write the window see the author.
ALTER TABLE window_events ADD COLUMN author_id bigint REFERENCES users(id) ON DELETE SET NULL;

-- Events written before this column named their user in the text; move the name out.
-- User names hold no whitespace, so the first ': ' ends the name in an update event.
UPDATE window_events
SET author_id = (SELECT id FROM users WHERE users.name = substr(window_events.content, 24)),
    content = 'Maintenance created'
WHERE type = 'create' AND substr(content, 1, 23) = 'Maintenance created by ';

UPDATE window_events
SET author_id = (SELECT id FROM users
                 WHERE users.name = substr(window_events.content, 24, strpos(window_events.content, ': ') - 24)),
    content = 'Maintenance updated' || substr(content, strpos(content, ': '))
WHERE type = 'update' AND substr(content, 1, 23) = 'Maintenance updated by '
  AND strpos(content, ': ') > 24;
