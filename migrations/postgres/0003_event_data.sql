-- Structured details of a timeline event (JSON text): direction and sender
-- of messages, old and new status, command and result, extension dates.
ALTER TABLE events ADD COLUMN data TEXT;
