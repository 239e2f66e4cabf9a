-- The dispatcher claims pending rows oldest first and stops after a few: an index in that
-- order lets it read just those rows instead of sorting the whole backlog on every claim
-- (measured: claiming dominated the database thread with 100k events queued).
CREATE INDEX outbox_state_id ON outbox(state, id);
