-- A mail to staff whose Message-ID (the token that authenticates an answer)
-- was seen going to someone outside the staff no longer counts for commands.
ALTER TABLE outbox ADD COLUMN burned_at TEXT;
