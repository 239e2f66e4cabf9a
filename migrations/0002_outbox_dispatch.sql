-- The dispatcher's bookkeeping on outbox rows.
-- uncertain: a previous attempt may have reached GHL without an answer (timeout, reset after
--   the request was written, 5xx, a crash while in flight). A create in this state is looked
--   up in GHL before it is sent again, so it never creates a duplicate (DESIGN §8).
-- last_status: the HTTP status of the last attempt (NULL when none arrived).
-- claimed_at: when the row went in flight, so a crash can be told from a slow call.
ALTER TABLE outbox ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_status INTEGER;
ALTER TABLE outbox ADD COLUMN claimed_at TEXT;

-- Pending work per entity, oldest first: the dispatcher's main query.
CREATE INDEX outbox_pending_entity ON outbox(state, entity, entity_id, id);
