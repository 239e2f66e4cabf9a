-- speak4-sync schema v1: the mirror, the outbox, the audit log, cursors and the change feed.
-- Column names listed in DESIGN §4 are the public contract; the rest are ours.
-- Timestamps are ISO-8601 UTC text with milliseconds ("2026-11-27T13:02:10.123Z").

CREATE TABLE contacts (
    id                INTEGER PRIMARY KEY,
    speak4_id         TEXT UNIQUE,
    ghl_id            TEXT UNIQUE,
    first_name        TEXT,
    last_name         TEXT,
    email             TEXT,
    phone             TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    custom_fields     TEXT NOT NULL DEFAULT '{}',   -- JSON object: custom field id -> value
    fields            TEXT NOT NULL DEFAULT '{}',   -- JSON object: other GHL fields (companyName, …)
    workflow          TEXT,                         -- Speak4 workflow from [rules.tag_routes]
    business_id       TEXT,
    deleted           INTEGER NOT NULL DEFAULT 0,
    remote_updated_at TEXT,                         -- GHL dateUpdated of the last pulled version
    raw               TEXT,                         -- last GHL JSON seen for this contact
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    CHECK (speak4_id IS NOT NULL OR ghl_id IS NOT NULL)
);
CREATE INDEX contacts_email ON contacts(email) WHERE email IS NOT NULL;
CREATE INDEX contacts_phone ON contacts(phone) WHERE phone IS NOT NULL;

CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY,
    speak4_id         TEXT UNIQUE,
    ghl_id            TEXT UNIQUE,
    contact_id        INTEGER NOT NULL REFERENCES contacts(id),
    title             TEXT,
    body              TEXT,
    due_date          TEXT,
    completed         INTEGER NOT NULL DEFAULT 0,
    assigned_to       TEXT,
    deleted           INTEGER NOT NULL DEFAULT 0,
    remote_updated_at TEXT,
    raw               TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    CHECK (speak4_id IS NOT NULL OR ghl_id IS NOT NULL)
);
CREATE INDEX tasks_contact ON tasks(contact_id);

CREATE TABLE notes (
    id                INTEGER PRIMARY KEY,
    speak4_id         TEXT UNIQUE,
    ghl_id            TEXT UNIQUE,
    contact_id        INTEGER NOT NULL REFERENCES contacts(id),
    title             TEXT,
    body              TEXT,
    deleted           INTEGER NOT NULL DEFAULT 0,
    remote_updated_at TEXT,
    raw               TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    CHECK (speak4_id IS NOT NULL OR ghl_id IS NOT NULL)
);
CREATE INDEX notes_contact ON notes(contact_id);

CREATE TABLE appointments (
    id          INTEGER PRIMARY KEY,
    ghl_id      TEXT NOT NULL UNIQUE,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id),
    title       TEXT,
    start_time  TEXT,
    end_time    TEXT,
    status      TEXT,
    deleted     INTEGER NOT NULL DEFAULT 0,
    raw         TEXT,
    updated_at  TEXT NOT NULL
);
CREATE INDEX appointments_contact ON appointments(contact_id);

CREATE TABLE reminders (
    id             INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL UNIQUE REFERENCES appointments(id),
    remind_at      TEXT NOT NULL,
    fired          INTEGER NOT NULL DEFAULT 0,
    fired_at       TEXT
);
CREATE INDEX reminders_due ON reminders(remind_at) WHERE fired = 0;

-- Accepted Speak4 events. event_id makes intake idempotent; the body is kept for inspection.
CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT UNIQUE,
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- The transactional outbox: written in the same transaction as the mirror change.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    op              TEXT NOT NULL CHECK (op IN ('create','update','delete','complete','tag_add','tag_remove','pull')),
    entity          TEXT NOT NULL CHECK (entity IN ('contact','task','note')),
    entity_id       INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','inflight','done','dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,                 -- for dead letters: status and response body
    payload         TEXT NOT NULL DEFAULT '{}',  -- JSON: the GHL fields to send (update/create), tags (tag_*)
    inbox_id        INTEGER REFERENCES inbox(id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
CREATE INDEX outbox_entity ON outbox(entity, entity_id, state);

-- One row per HTTP request sent to GHL. No bodies, no tokens.
CREATE TABLE audit_log (
    id                    INTEGER PRIMARY KEY,
    ts                    TEXT NOT NULL,
    method                TEXT NOT NULL,
    path                  TEXT NOT NULL,
    status                INTEGER,          -- NULL when no response arrived
    latency_ms            INTEGER,
    attempt               INTEGER,
    outbox_id             INTEGER,
    error                 TEXT,
    rate_limit_remaining  INTEGER,
    trace_id              TEXT
);
CREATE INDEX audit_log_ts ON audit_log(ts);

CREATE TABLE sync_cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The change feed (GET /v1/changes): every change applied to the mirror, in order.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    entity    TEXT NOT NULL,
    entity_id INTEGER NOT NULL,
    kind      TEXT NOT NULL,     -- created | updated | deleted | tagged | untagged | completed | pulled | reminder_fired | …
    source    TEXT NOT NULL,     -- local (a Speak4 event) | remote (pulled from GHL) | push (GHL answered a push)
    ts        TEXT NOT NULL
);

-- OAuth tokens per location. GHL's refresh token is single-use: the new pair is committed here
-- before the new access token is used.
CREATE TABLE oauth_tokens (
    location_id   TEXT PRIMARY KEY,
    access_token  TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    scope         TEXT,
    user_type     TEXT,
    company_id    TEXT,
    state         TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok','needs_reauth')),
    state_reason  TEXT,
    updated_at    TEXT NOT NULL
);

-- Field-level conflicts between a pending local change and a pulled remote change.
CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY,
    entity       TEXT NOT NULL,
    entity_id    INTEGER NOT NULL,
    field        TEXT NOT NULL,
    local_value  TEXT,
    remote_value TEXT,
    policy       TEXT NOT NULL,
    winner       TEXT NOT NULL CHECK (winner IN ('local','remote')),
    ts           TEXT NOT NULL
);

-- Webhook ids already processed (replay protection); pruned by age.
CREATE TABLE webhook_seen (
    webhook_id  TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);

-- Which migrations ran, and when; PRAGMA user_version holds the version itself.
CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
