-- The location's contact custom fields as GHL last listed them
-- (GET /locations/:locationId/customFields?model=contact), so that [rules.field_map] entries
-- naming a field by name or fieldKey resolve at an offline start and in offline CLI commands
-- (`emit`). Replaced as a whole on every successful listing (start, SIGHUP, `fields`).
CREATE TABLE custom_fields (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    field_key  TEXT NOT NULL,
    data_type  TEXT NOT NULL,
    model      TEXT NOT NULL,
    options    TEXT NOT NULL DEFAULT '[]', -- JSON array of picklist option values
    fetched_at TEXT NOT NULL
);

-- When GHL last listed them (one row; absent = never): an empty listing is a fact too.
CREATE TABLE custom_fields_listing (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    fetched_at TEXT NOT NULL
);
