-- Identities (DESIGN §9): mirror ids that are never reused, and several Speak4 ids per contact.
--
-- Stable ids. With a plain INTEGER PRIMARY KEY, SQLite gives a new row max(id) + 1, so deleting
-- the newest row and inserting another reuses its id, and an old `changes` row would then name
-- a different record. AUTOINCREMENT never hands out an id twice (sqlite_sequence keeps the
-- highest ever used). SQLite cannot add it to a table, so contacts, tasks, notes and
-- appointments are rebuilt: same columns in the same order, same rows and ids, same indexes.
-- The tables that reference them (reminders, pull_queue) are rebuilt with them, so no dropped
-- table is ever referenced (foreign keys are on; a migration runs inside one transaction). Each
-- new table is created referencing the new parent; RENAME rewrites those references to the
-- final names.
--
-- contacts gains `merged_into`: a contact linked into another (one person, DESIGN §9) keeps its
-- row and id, pointing at the row that now holds everything (its Speak4 ids, children, queued
-- work). Such a row carries no GHL id, is not a live contact, and is never deleted.
--
-- contact_aliases: every Speak4 id of a contact. contacts.speak4_id stays the first one (the
-- DESIGN §4 contract); triggers add it here whenever it is set, so every path that writes
-- contacts keeps this table complete. Intake resolves a Speak4 id through this table.
--
-- changes gains `detail` (JSON): what a `linked` or `revived` change needs to say, e.g. the
-- Speak4 ids a link joined.

CREATE TABLE contacts_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    speak4_id         TEXT UNIQUE,
    ghl_id            TEXT UNIQUE,
    first_name        TEXT,
    last_name         TEXT,
    email             TEXT,
    phone             TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    custom_fields     TEXT NOT NULL DEFAULT '{}',
    fields            TEXT NOT NULL DEFAULT '{}',
    workflow          TEXT,
    business_id       TEXT,
    deleted           INTEGER NOT NULL DEFAULT 0,
    remote_updated_at TEXT,
    raw               TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    merged_into       INTEGER REFERENCES contacts_new(id),
    CHECK (speak4_id IS NOT NULL OR ghl_id IS NOT NULL OR merged_into IS NOT NULL)
);
INSERT INTO contacts_new(id, speak4_id, ghl_id, first_name, last_name, email, phone, tags,
                         custom_fields, fields, workflow, business_id, deleted, remote_updated_at,
                         raw, created_at, updated_at)
SELECT id, speak4_id, ghl_id, first_name, last_name, email, phone, tags, custom_fields, fields,
       workflow, business_id, deleted, remote_updated_at, raw, created_at, updated_at
FROM contacts;

CREATE TABLE tasks_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    speak4_id         TEXT UNIQUE,
    ghl_id            TEXT UNIQUE,
    contact_id        INTEGER NOT NULL REFERENCES contacts_new(id),
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
INSERT INTO tasks_new SELECT id, speak4_id, ghl_id, contact_id, title, body, due_date, completed,
                             assigned_to, deleted, remote_updated_at, raw, created_at, updated_at
FROM tasks;

CREATE TABLE notes_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    speak4_id         TEXT UNIQUE,
    ghl_id            TEXT UNIQUE,
    contact_id        INTEGER NOT NULL REFERENCES contacts_new(id),
    title             TEXT,
    body              TEXT,
    deleted           INTEGER NOT NULL DEFAULT 0,
    remote_updated_at TEXT,
    raw               TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    CHECK (speak4_id IS NOT NULL OR ghl_id IS NOT NULL)
);
INSERT INTO notes_new SELECT id, speak4_id, ghl_id, contact_id, title, body, deleted,
                             remote_updated_at, raw, created_at, updated_at
FROM notes;

CREATE TABLE appointments_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ghl_id      TEXT NOT NULL UNIQUE,
    contact_id  INTEGER NOT NULL REFERENCES contacts_new(id),
    title       TEXT,
    start_time  TEXT,
    end_time    TEXT,
    status      TEXT,
    deleted     INTEGER NOT NULL DEFAULT 0,
    raw         TEXT,
    updated_at  TEXT NOT NULL
);
INSERT INTO appointments_new SELECT id, ghl_id, contact_id, title, start_time, end_time, status,
                                    deleted, raw, updated_at
FROM appointments;

CREATE TABLE reminders_new (
    id             INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL UNIQUE REFERENCES appointments_new(id),
    remind_at      TEXT NOT NULL,
    fired          INTEGER NOT NULL DEFAULT 0,
    fired_at       TEXT
);
INSERT INTO reminders_new SELECT id, appointment_id, remind_at, fired, fired_at FROM reminders;

CREATE TABLE pull_queue_new (
    contact_id      INTEGER PRIMARY KEY REFERENCES contacts_new(id),
    what            TEXT NOT NULL CHECK (what IN ('tasks', 'all')),
    reason          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL
);
INSERT INTO pull_queue_new SELECT contact_id, what, reason, attempts, next_attempt_at, last_error,
                                  created_at
FROM pull_queue;

CREATE TABLE contact_aliases (
    speak4_id  TEXT PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts_new(id),
    created_at TEXT NOT NULL
);
INSERT INTO contact_aliases(speak4_id, contact_id, created_at)
SELECT speak4_id, id, created_at FROM contacts_new WHERE speak4_id IS NOT NULL;

-- Children first: no table is dropped while another still references it.
DROP TABLE reminders;
DROP TABLE pull_queue;
DROP TABLE appointments;
DROP TABLE notes;
DROP TABLE tasks;
DROP TABLE contacts;

ALTER TABLE contacts_new RENAME TO contacts;
ALTER TABLE tasks_new RENAME TO tasks;
ALTER TABLE notes_new RENAME TO notes;
ALTER TABLE appointments_new RENAME TO appointments;
ALTER TABLE reminders_new RENAME TO reminders;
ALTER TABLE pull_queue_new RENAME TO pull_queue;

CREATE INDEX contacts_email ON contacts(email) WHERE email IS NOT NULL;
CREATE INDEX contacts_phone ON contacts(phone) WHERE phone IS NOT NULL;
CREATE INDEX tasks_contact ON tasks(contact_id);
CREATE INDEX notes_contact ON notes(contact_id);
CREATE INDEX appointments_contact ON appointments(contact_id);
CREATE INDEX reminders_due ON reminders(remind_at) WHERE fired = 0;
CREATE INDEX pull_queue_due ON pull_queue(next_attempt_at);
CREATE INDEX contact_aliases_contact ON contact_aliases(contact_id);

CREATE TRIGGER contacts_alias_insert AFTER INSERT ON contacts
WHEN NEW.speak4_id IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO contact_aliases(speak4_id, contact_id, created_at)
    VALUES (NEW.speak4_id, NEW.id, NEW.updated_at);
END;

CREATE TRIGGER contacts_alias_update AFTER UPDATE OF speak4_id ON contacts
WHEN NEW.speak4_id IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO contact_aliases(speak4_id, contact_id, created_at)
    VALUES (NEW.speak4_id, NEW.id, NEW.updated_at);
END;

ALTER TABLE changes ADD COLUMN detail TEXT;
