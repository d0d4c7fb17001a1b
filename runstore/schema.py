"""The SQL schema: tables, indexes, views, and the ordered list of migrations.

``PRAGMA user_version`` holds the number of migrations applied. A new file gets all
of them in one transaction; an older file is upgraded in place (after a backup copy)
by applying the missing ones in order. A released migration is never edited: a
change to the schema is a new entry at the end of :data:`MIGRATIONS`.

Why the tables look the way they do is written down in ``docs/architecture.md``.

Example
-------
>>> SCHEMA_VERSION == len(MIGRATIONS)
True
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "HEARTBEAT_INTERVAL", "STALE_AFTER"]

#: Seconds between two heartbeats of a running scheduler.
HEARTBEAT_INTERVAL = 5.0
#: A run whose heartbeat is older than this (seconds) is reported as crashed.
STALE_AFTER = 30.0

_V1_TABLES = """
CREATE TABLE store_info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE flows (
    flow_id         INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    created_at      REAL NOT NULL,
    last_run_number INTEGER NOT NULL DEFAULT 0
);

-- Blobs are content addressed: blob_key = sha256 of the encoded value. A blob is an
-- ordered list of chunks; chunks are content addressed too (sha256 of the raw chunk),
-- so a large value can be written chunk by chunk in short transactions and a second
-- copy of it costs a few rows.
CREATE TABLE blob_chunks (
    chunk_id    INTEGER PRIMARY KEY,
    chunk_key   TEXT NOT NULL UNIQUE,
    compression TEXT NOT NULL CHECK (compression IN ('none', 'zstd')),
    raw_size    INTEGER NOT NULL,
    touched_at  REAL NOT NULL,
    data        BLOB NOT NULL
);

CREATE TABLE blobs (
    blob_key    TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    n_chunks    INTEGER NOT NULL,
    created_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE blob_parts (
    blob_key  TEXT NOT NULL REFERENCES blobs(blob_key) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    chunk_key TEXT NOT NULL REFERENCES blob_chunks(chunk_key),
    PRIMARY KEY (blob_key, seq)
) WITHOUT ROWID;
CREATE INDEX blob_parts_by_chunk ON blob_parts(chunk_key);

-- Reader-side trust for pickled blobs: mac = HMAC(reader's secret, blob_key).
CREATE TABLE blob_trust (
    blob_key TEXT NOT NULL REFERENCES blobs(blob_key) ON DELETE CASCADE,
    mac      TEXT NOT NULL,
    PRIMARY KEY (blob_key, mac)
) WITHOUT ROWID;

CREATE TABLE code_packages (
    code_id     INTEGER PRIMARY KEY,
    blob_key    TEXT NOT NULL UNIQUE REFERENCES blobs(blob_key),
    script_name TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE runs (
    run_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id           INTEGER NOT NULL REFERENCES flows(flow_id),
    run_number        INTEGER NOT NULL,
    uuid              TEXT NOT NULL UNIQUE,
    user_name         TEXT,
    namespace         TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed')),
    created_at        REAL NOT NULL,
    finished_at       REAL,
    heartbeat_at      REAL,
    owner_host        TEXT,
    owner_pid         INTEGER,
    invocation        TEXT NOT NULL DEFAULT 'run',
    origin_run_id     INTEGER REFERENCES runs(run_id) ON DELETE SET NULL,
    origin_pathspec   TEXT,
    code_id           INTEGER REFERENCES code_packages(code_id),
    end_step          TEXT NOT NULL DEFAULT 'end',
    source_store      TEXT,
    source_run_number INTEGER,
    UNIQUE (flow_id, run_number)
);
CREATE INDEX runs_by_flow_created ON runs(flow_id, created_at DESC);
CREATE INDEX runs_by_flow_status ON runs(flow_id, status, created_at DESC);
CREATE INDEX runs_by_origin ON runs(origin_run_id);

-- flow_id and created_at are copied from runs (both immutable) so that "newest runs
-- of flow F carrying tag T" is one range scan of run_tags_by_tag, whatever the
-- number of runs.
CREATE TABLE run_tags (
    run_id     INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    is_system  INTEGER NOT NULL CHECK (is_system IN (0, 1)),
    flow_id    INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, tag)
) WITHOUT ROWID;
CREATE INDEX run_tags_by_tag ON run_tags(tag, flow_id, created_at DESC);

CREATE TABLE steps (
    step_id    INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (run_id, name)
);

CREATE TABLE tasks (
    task_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    step_id         INTEGER NOT NULL REFERENCES steps(step_id) ON DELETE CASCADE,
    created_at      REAL NOT NULL,
    finished_at     REAL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'caught')),
    attempt         INTEGER NOT NULL DEFAULT 0,
    foreach_path    TEXT,
    foreach_index   INTEGER,
    origin_task_id  INTEGER,
    origin_pathspec TEXT
);
CREATE INDEX tasks_by_step ON tasks(step_id, created_at);
CREATE INDEX tasks_by_run ON tasks(run_id);

CREATE TABLE attempts (
    task_id           INTEGER NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL,
    started_at        REAL NOT NULL,
    finished_at       REAL,
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed', 'caught')),
    pid               INTEGER,
    exception_type    TEXT,
    exception_message TEXT,
    traceback         TEXT,
    stdout            TEXT NOT NULL DEFAULT '',
    stderr            TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE artifacts (
    artifact_id INTEGER PRIMARY KEY,
    task_id     INTEGER NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    blob_key    TEXT NOT NULL REFERENCES blobs(blob_key),
    encoding    TEXT NOT NULL,
    type        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    json_value  TEXT,
    UNIQUE (task_id, attempt, name)
);
CREATE INDEX artifacts_by_blob ON artifacts(blob_key);
CREATE INDEX artifacts_by_name ON artifacts(name);

CREATE TABLE metadata (
    task_id    INTEGER NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    type       TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (task_id, attempt, name)
);
"""

# Views are the documented SQL surface (docs/sql.md). Times are ISO-8601 UTC text.
_V2_VIEWS = f"""
CREATE VIEW runs_view AS
SELECT
    r.run_id                                     AS run_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    f.name || '/' || r.run_number                AS pathspec,
    r.uuid                                       AS uuid,
    r.user_name                                  AS user,
    r.namespace                                  AS namespace,
    CASE WHEN r.status = 'running'
              AND coalesce(r.heartbeat_at, r.created_at) < unixepoch('now') - {STALE_AFTER}
         THEN 'crashed' ELSE r.status END       AS status,
    strftime('%Y-%m-%dT%H:%M:%fZ', r.created_at, 'unixepoch')  AS created_at,
    strftime('%Y-%m-%dT%H:%M:%fZ', r.finished_at, 'unixepoch') AS finished_at,
    r.finished_at - r.created_at                 AS duration_s,
    r.origin_pathspec                            AS origin_pathspec,
    (SELECT json_group_array(tag) FROM
        (SELECT tag FROM run_tags t WHERE t.run_id = r.run_id AND t.is_system = 0 ORDER BY tag))
                                                 AS user_tags,
    (SELECT json_group_array(tag) FROM
        (SELECT tag FROM run_tags t WHERE t.run_id = r.run_id AND t.is_system = 1 ORDER BY tag))
                                                 AS system_tags
FROM runs r JOIN flows f ON f.flow_id = r.flow_id;
"""

# Production deployments (SPEC §7): one row per deployed flow. Only a hash of the token
# that authorizes the next deploy is kept; the deployer keeps the token itself.
_V3_DEPLOYMENTS = """
CREATE TABLE deployments (
    flow_id     INTEGER PRIMARY KEY REFERENCES flows(flow_id) ON DELETE CASCADE,
    generation  INTEGER NOT NULL,
    namespace   TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL,
    owner       TEXT NOT NULL,
    code_id     INTEGER REFERENCES code_packages(code_id),
    script_name TEXT,
    deployed_at REAL NOT NULL
);
"""

#: Ordered migrations; entry i takes a file from user_version i to i + 1.
MIGRATIONS: list[str] = [_V1_TABLES, _V2_VIEWS, _V3_DEPLOYMENTS]

#: The schema version this runstore writes.
SCHEMA_VERSION = len(MIGRATIONS)
