-- The pull path's bookkeeping (lib/sync/reconciler).
--
-- pull_queue: contacts whose tasks/notes/appointments are to be fetched in the background
--   (sync.fetch_children). Kept apart from the outbox on purpose: the dispatcher claims outbox
--   rows in id order, so thousands of low-priority child pulls queued by an initial import would
--   sit in front of every push. The reconciler drains this table itself, one contact at a time,
--   and only while the rate budget has room to spare for pushes. One row per contact
--   (re-queueing widens `what`, never duplicates). A row is deleted once its fetch is applied.
--   what: 'tasks' (tasks only) or 'all' (tasks, notes and appointments).
CREATE TABLE pull_queue (
    contact_id      INTEGER PRIMARY KEY REFERENCES contacts(id),
    what            TEXT NOT NULL CHECK (what IN ('tasks', 'all')),
    reason          TEXT NOT NULL,       -- initial | changed | resync
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX pull_queue_due ON pull_queue(next_attempt_at);

-- sweep_seen: the GHL contact ids listed by the running delete sweep (sync.full_sweep_hours).
-- On disk rather than in memory so a sweep over any number of contacts stays in bounded memory
-- and resumes after a crash; emptied when a sweep starts and when it ends.
CREATE TABLE sweep_seen (
    ghl_id TEXT PRIMARY KEY
) WITHOUT ROWID;

