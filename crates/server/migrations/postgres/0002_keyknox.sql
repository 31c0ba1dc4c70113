-- Keyknox (spec §4, §5) and rate limits, PostgreSQL flavour. Keep in step with
-- ../sqlite/0002_keyknox.sql. Like cards, these rows carry the app id without a foreign key.

-- Keyknox v1: one blob per (app, identity). A reset empties `meta` and `value` and keeps the row
-- (the version goes on counting); a never-written blob has no row.
CREATE TABLE keyknox_v1 (
    app_id   TEXT   NOT NULL,
    identity TEXT   NOT NULL,
    meta     TEXT   NOT NULL,
    value    TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    hash     TEXT   NOT NULL,
    PRIMARY KEY (app_id, identity)
);

-- Keyknox v2 entries: the address and the entry-level hash (the compare-and-swap token; writers
-- lock the row). An entry exists exactly while it has at least one copy.
CREATE TABLE keyknox_entries (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id TEXT   NOT NULL,
    owner  TEXT   NOT NULL,
    root   TEXT   NOT NULL,
    path   TEXT   NOT NULL,
    key    TEXT   NOT NULL,
    hash   TEXT   NOT NULL,
    CONSTRAINT keyknox_entries_address UNIQUE (app_id, owner, root, path, key)
);

-- One encrypted copy per recipient identity.
CREATE TABLE keyknox_copies (
    entry_id BIGINT NOT NULL REFERENCES keyknox_entries (id) ON DELETE CASCADE,
    identity TEXT   NOT NULL,
    meta     TEXT   NOT NULL,
    value    TEXT   NOT NULL,
    PRIMARY KEY (entry_id, identity)
);

-- Token buckets shared by every replica: fractional tokens left at `updated_ms` (Unix ms).
CREATE TABLE rate_limits (
    key        TEXT             NOT NULL PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT           NOT NULL
);
