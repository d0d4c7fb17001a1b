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

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "HEARTBEAT_INTERVAL", "STALE_AFTER", "RUN_STATUS_SQL", "RUN_STATUSES",
           "FINAL_RUN_STATUSES", "TASK_STATUSES"]

#: Seconds between two heartbeats of a running scheduler.
HEARTBEAT_INTERVAL = 5.0
#: A run whose heartbeat is older than this (seconds) is reported as crashed.
STALE_AFTER = 30.0

#: What a run's status can be as users see it (``crashed``: ``running`` with its owner gone).
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "crashed")
#: The statuses a scheduler finishes a run with (``interrupted``: Ctrl-C or SIGTERM stopped it).
FINAL_RUN_STATUSES = ("succeeded", "failed", "interrupted")
#: What a task's (and, but for ``pending``, an attempt's) status can be.
TASK_STATUSES = ("pending", "running", "succeeded", "failed", "caught", "interrupted")

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

# Views are the documented SQL surface (docs/sql.md): stable names and columns.
# Times appear twice: ``*_at`` as ISO-8601 UTC text for people, ``*_ts`` as epoch
# seconds (REAL) for ordering through the indexes. Every view is a plain join that
# SQLite flattens into the outer query, so ``WHERE tag = ? AND flow = ? ORDER BY
# created_ts DESC`` on tags_view is a range scan of run_tags_by_tag
# (tests/test_sql_views.py pins the plans).
def _iso(column: str) -> str:
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {column}, 'unixepoch')"


def _timings(alias: str) -> str:
    """created_at, finished_at (ISO text), created_ts, finished_ts (epoch) and duration_s."""
    return (f"{_iso(alias + '.created_at')} AS created_at, {_iso(alias + '.finished_at')} AS finished_at, "
            f"{alias}.created_at AS created_ts, {alias}.finished_at AS finished_ts, "
            f"{alias}.finished_at - {alias}.created_at AS duration_s")


#: A run's status as users see it: a running run whose heartbeat is stale is crashed
#: (only ``running``: a finished run, ``interrupted`` included, keeps its status).
#: (The client also reports a run as crashed at once when its local owner process is
#: gone, which SQL cannot see, and when its heartbeat lies in the future — an edited
#: row; changing this view would need a migration.) julianday, not unixepoch: SQLite < 3.38 lacks unixepoch.
RUN_STATUS_SQL = (
    "CASE WHEN r.status = 'running' AND coalesce(r.heartbeat_at, r.created_at) "
    f"< (julianday('now') - 2440587.5) * 86400.0 - {STALE_AFTER} THEN 'crashed' ELSE r.status END"
)

_TASK_PATH = "f.name || '/' || r.run_number || '/' || s.name || '/' || t.task_id"
#: From a task row ``t`` to its step ``s``, run ``r`` and flow ``f``.
_TASK_JOINS = """JOIN steps s ON s.step_id = t.step_id
JOIN runs r ON r.run_id = t.run_id
JOIN flows f ON f.flow_id = r.flow_id"""

_V2_VIEWS = f"""
CREATE VIEW runs_view AS
SELECT
    r.run_id                                     AS run_id,
    r.flow_id                                    AS flow_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    f.name || '/' || r.run_number                AS pathspec,
    r.uuid                                       AS uuid,
    r.user_name                                  AS user,
    r.namespace                                  AS namespace,
    {RUN_STATUS_SQL}                             AS status,
    {_timings('r')},
    r.invocation                                 AS invocation,
    r.origin_pathspec                            AS origin_pathspec,
    r.end_step                                   AS end_step,
    (SELECT json_group_array(tag) FROM
        (SELECT tag FROM run_tags t WHERE t.run_id = r.run_id AND t.is_system = 0 ORDER BY tag))
                                                 AS user_tags,
    (SELECT json_group_array(tag) FROM
        (SELECT tag FROM run_tags t WHERE t.run_id = r.run_id AND t.is_system = 1 ORDER BY tag))
                                                 AS system_tags,
    (SELECT json_group_array(tag) FROM
        (SELECT tag FROM run_tags t WHERE t.run_id = r.run_id ORDER BY tag))
                                                 AS tags
FROM runs r JOIN flows f ON f.flow_id = r.flow_id;

CREATE VIEW tags_view AS
SELECT
    t.run_id                                     AS run_id,
    t.flow_id                                    AS flow_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    f.name || '/' || r.run_number                AS pathspec,
    t.tag                                        AS tag,
    CASE t.is_system WHEN 1 THEN 'system' ELSE 'user' END AS kind,
    r.user_name                                  AS user,
    {RUN_STATUS_SQL}                             AS status,
    {_iso('t.created_at')}                       AS created_at,
    t.created_at                                 AS created_ts
FROM run_tags t
JOIN flows f ON f.flow_id = t.flow_id
JOIN runs r ON r.run_id = t.run_id;

CREATE VIEW tasks_view AS
SELECT
    t.task_id                                    AS task_id,
    t.run_id                                     AS run_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    s.name                                       AS step,
    {_TASK_PATH}                                 AS pathspec,
    t.status                                     AS status,
    t.attempt                                    AS attempt,
    r.user_name                                  AS user,
    {_timings('t')},
    t.foreach_path                               AS foreach_path,
    t.foreach_index                              AS foreach_index,
    t.origin_pathspec                            AS origin_pathspec,
    a.exception_type                             AS exception_type,
    a.exception_message                          AS exception_message
FROM tasks t
{_TASK_JOINS}
LEFT JOIN attempts a ON a.task_id = t.task_id AND a.attempt = t.attempt;

-- One row per artifact of the attempt the client shows by default: the task's
-- latest finished attempt (else its current one).
CREATE VIEW artifacts_view AS
SELECT
    a.artifact_id                                AS artifact_id,
    a.task_id                                    AS task_id,
    t.run_id                                     AS run_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    s.name                                       AS step,
    {_TASK_PATH}                                 AS task_pathspec,
    {_TASK_PATH} || '/' || a.name                AS pathspec,
    a.name                                       AS name,
    a.attempt                                    AS attempt,
    json_extract(a.json_value, '$')              AS value,
    a.json_value                                 AS value_json,
    a.encoding                                   AS encoding,
    a.type                                       AS type,
    a.size                                       AS size,
    a.blob_key                                   AS blob_key,
    r.user_name                                  AS user,
    {_iso('a.created_at')}                       AS created_at,
    a.created_at                                 AS created_ts
FROM artifacts a
JOIN tasks t ON t.task_id = a.task_id
{_TASK_JOINS}
WHERE a.attempt = coalesce(
    (SELECT max(x.attempt) FROM attempts x WHERE x.task_id = a.task_id AND x.finished_at IS NOT NULL),
    t.attempt);

CREATE VIEW metadata_view AS
SELECT
    m.task_id                                    AS task_id,
    t.run_id                                     AS run_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    s.name                                       AS step,
    {_TASK_PATH}                                 AS pathspec,
    m.attempt                                    AS attempt,
    m.name                                       AS name,
    m.value                                      AS value,
    m.type                                       AS type,
    {_iso('m.created_at')}                       AS created_at,
    m.created_at                                 AS created_ts
FROM metadata m
JOIN tasks t ON t.task_id = m.task_id
{_TASK_JOINS};

-- One row per run: its parameters as a JSON object (values larger than 64 KiB or not
-- JSON-encodable appear as null; read them through the client).
CREATE VIEW parameters_view AS
SELECT
    r.run_id                                     AS run_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    f.name || '/' || r.run_number                AS pathspec,
    r.user_name                                  AS user,
    (SELECT json_group_object(name, json(json_value)) FROM
        (SELECT a.name AS name, a.json_value AS json_value
           FROM steps s
           JOIN tasks t ON t.step_id = s.step_id
           JOIN artifacts a ON a.task_id = t.task_id AND a.attempt = t.attempt
          WHERE s.run_id = r.run_id AND s.name = '_parameters' AND substr(a.name, 1, 1) <> '_'
          ORDER BY a.name))                      AS parameters,
    {_iso('r.created_at')}                       AS created_at,
    r.created_at                                 AS created_ts
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

# run_tags carries a copy of its run's status, kept true by triggers whoever writes,
# so "the newest successful run of flow F in namespace N" is one range scan of a
# partial index however many newer runs failed (tests/test_client_queries.py).
_V4_CLIENT_INDEXES = """
ALTER TABLE run_tags ADD COLUMN run_status TEXT NOT NULL DEFAULT 'running';

UPDATE run_tags SET run_status = (SELECT status FROM runs WHERE runs.run_id = run_tags.run_id);

CREATE INDEX run_tags_succeeded ON run_tags(tag, flow_id, created_at DESC)
    WHERE run_status = 'succeeded';

CREATE TRIGGER run_tags_follow_run_status AFTER UPDATE OF status ON runs
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE run_tags SET run_status = NEW.status WHERE run_id = NEW.run_id;
END;

CREATE TRIGGER run_tags_copy_run_status AFTER INSERT ON run_tags
WHEN NEW.run_status IS NOT (SELECT status FROM runs WHERE run_id = NEW.run_id)
BEGIN
    UPDATE run_tags SET run_status = (SELECT status FROM runs WHERE run_id = NEW.run_id)
     WHERE run_id = NEW.run_id AND tag = NEW.tag;
END;
"""

# Cards (SPEC §15, docs/cards.md): one row per @card of a task, pointing to its HTML
# stored as a content-addressed ``bytes`` blob (an identical card costs one row). The
# row is replaced on each live refresh; it goes with its task (delete), is copied by
# export/merge and by resume's clone, and keeps its blob from gc.
_V5_CARDS = """
CREATE TABLE cards (
    task_id    INTEGER NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    card_id    TEXT,
    type       TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    blob_key   TEXT REFERENCES blobs(blob_key),
    error      TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX cards_by_blob ON cards(blob_key);
"""

# Tombstones (issue #19): the UUID of every deleted run, so that merging a file that
# still holds it does not bring it back (merge skips and reports it unless asked to
# include deleted runs). ``pathspec`` is what the run was called when it was deleted.
_V6_DELETED_RUNS = """
CREATE TABLE deleted_runs (
    uuid       TEXT PRIMARY KEY,
    pathspec   TEXT NOT NULL,
    deleted_at REAL NOT NULL
) WITHOUT ROWID;
"""

# Streamed logs (#13): a running attempt's output is appended to attempts.stdout/stderr
# in batches, so every reader of those columns sees what is there so far. Each batch
# also records when it was captured: the lines of ``stream`` from ``line`` (0-based,
# in the stored text) up to the next stamp were read at ``ts``. Task.loglines() joins
# the two; an attempt without stamps (inline, remote, merged) dates its lines by started_at.
_V7_LOG_STAMPS = """
CREATE TABLE log_stamps (
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    stream  TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    line    INTEGER NOT NULL,
    ts      REAL NOT NULL,
    PRIMARY KEY (task_id, attempt, stream, line),
    FOREIGN KEY (task_id, attempt) REFERENCES attempts(task_id, attempt) ON DELETE CASCADE
) WITHOUT ROWID;
"""

# Inherited artifacts by reference (#18). ``artifacts`` holds one row per value a task
# stored (its own writes; a resume clone's snapshot); ``task_values`` binds each name a
# task attempt *has* to such a row of the same run: a value a task inherits or a join
# merges is one small binding row, not a copy. The JSON preview moves to ``blobs``
# (one text per value, not per task). Existing files: the first row of each
# (run, name, value) is kept, the duplicates become bindings to it, so every task shows
# exactly what it showed before. docs/storage.md "Inherited artifacts by reference".
_V8_VALUE_REFS = f"""
ALTER TABLE blobs ADD COLUMN json_value TEXT;

CREATE TABLE task_values (
    task_id     INTEGER NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    artifact_id INTEGER NOT NULL REFERENCES artifacts(artifact_id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, attempt, name)
) WITHOUT ROWID;
CREATE INDEX task_values_by_artifact ON task_values(artifact_id);

UPDATE blobs SET json_value = (
    SELECT a.json_value FROM artifacts a
     WHERE a.blob_key = blobs.blob_key AND a.encoding = 'json' AND a.json_value IS NOT NULL LIMIT 1);

INSERT INTO task_values(task_id, attempt, name, artifact_id)
SELECT a.task_id, a.attempt, a.name,
       min(a.artifact_id) OVER (PARTITION BY t.run_id, a.name, a.blob_key, a.encoding, a.type, a.size)
  FROM artifacts a JOIN tasks t ON t.task_id = a.task_id;

DELETE FROM artifacts WHERE NOT EXISTS (SELECT 1 FROM task_values v WHERE v.artifact_id = artifacts.artifact_id);

UPDATE artifacts SET json_value = NULL WHERE json_value IS NOT NULL;

DROP VIEW artifacts_view;

-- One row per artifact a task has (set or inherited), of the attempt the client shows
-- by default: the task's latest finished attempt (else its current one). A binding
-- whose row belongs to another run or carries another name is not shown.
CREATE VIEW artifacts_view AS
SELECT
    a.artifact_id                                AS artifact_id,
    v.task_id                                    AS task_id,
    t.run_id                                     AS run_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    s.name                                       AS step,
    {_TASK_PATH}                                 AS task_pathspec,
    {_TASK_PATH} || '/' || v.name                AS pathspec,
    v.name                                       AS name,
    v.attempt                                    AS attempt,
    json_extract(CASE WHEN a.encoding = 'json' THEN b.json_value END, '$') AS value,
    CASE WHEN a.encoding = 'json' THEN b.json_value END AS value_json,
    a.encoding                                   AS encoding,
    a.type                                       AS type,
    a.size                                       AS size,
    a.blob_key                                   AS blob_key,
    r.user_name                                  AS user,
    {_iso('coalesce(x.finished_at, a.created_at)')} AS created_at,
    coalesce(x.finished_at, a.created_at)        AS created_ts
FROM task_values v
JOIN artifacts a ON a.artifact_id = v.artifact_id AND a.name = v.name
JOIN tasks t ON t.task_id = v.task_id
JOIN tasks o ON o.task_id = a.task_id AND o.run_id = t.run_id
LEFT JOIN blobs b ON b.blob_key = a.blob_key
LEFT JOIN attempts x ON x.task_id = v.task_id AND x.attempt = v.attempt
{_TASK_JOINS}
WHERE v.attempt = coalesce(
    (SELECT max(y.attempt) FROM attempts y WHERE y.task_id = v.task_id AND y.finished_at IS NOT NULL),
    t.attempt);

DROP VIEW parameters_view;

CREATE VIEW parameters_view AS
SELECT
    r.run_id                                     AS run_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    f.name || '/' || r.run_number                AS pathspec,
    r.user_name                                  AS user,
    (SELECT json_group_object(name, json(json_value)) FROM
        (SELECT v.name AS name, CASE WHEN a.encoding = 'json' THEN b.json_value END AS json_value
           FROM steps s
           JOIN tasks t ON t.step_id = s.step_id
           JOIN task_values v ON v.task_id = t.task_id AND v.attempt = t.attempt
           JOIN artifacts a ON a.artifact_id = v.artifact_id AND a.name = v.name
           JOIN tasks o ON o.task_id = a.task_id AND o.run_id = r.run_id
           LEFT JOIN blobs b ON b.blob_key = a.blob_key
          WHERE s.run_id = r.run_id AND s.name = '_parameters' AND substr(v.name, 1, 1) <> '_'
          ORDER BY v.name))                      AS parameters,
    {_iso('r.created_at')}                       AS created_at,
    r.created_at                                 AS created_ts
FROM runs r JOIN flows f ON f.flow_id = r.flow_id;
"""

# Parameters by value (#18): one row per run and parameter, the JSON text of the value
# of the run's ``_parameters`` task (NULL when it is not JSON or larger than 64 KiB), so
# ``params_view WHERE name = ? AND value = ?`` and ``Flow.runs(where=...)`` are one
# index search (run_params_by_value), and the UI sorts by a parameter through the same
# index. Filled when the ``_parameters`` task commits (store/_writes.py: sync_run_params,
# from the blobs themselves), by resume's clone, and by merge from the verified blobs
# (never from the source's table); filled here for existing runs from artifacts_view.
_V9_RUN_PARAMS = f"""
CREATE TABLE run_params (
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    value  TEXT,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX run_params_by_value ON run_params(name, value);

INSERT OR REPLACE INTO run_params(run_id, name, value)
SELECT run_id, name, value_json FROM artifacts_view
 WHERE step = '_parameters' AND substr(name, 1, 1) <> '_' ORDER BY task_id;

-- Page fill: the newest-first indexes were declared "created_at DESC", so every new run
-- went to the front of its range and each page split left two half-empty pages (about
-- 50 % unused). Ascending, a new run goes to the end of its range and pages fill up;
-- SQLite reads them backwards for "newest first" just as fast (docs/storage.md).
DROP INDEX runs_by_flow_created;
CREATE INDEX runs_by_flow_created ON runs(flow_id, created_at);
DROP INDEX runs_by_flow_status;
CREATE INDEX runs_by_flow_status ON runs(flow_id, status, created_at);
DROP INDEX run_tags_by_tag;
CREATE INDEX run_tags_by_tag ON run_tags(tag, flow_id, created_at);
DROP INDEX run_tags_succeeded;
CREATE INDEX run_tags_succeeded ON run_tags(tag, flow_id, created_at) WHERE run_status = 'succeeded';

CREATE VIEW params_view AS
SELECT
    p.run_id                                     AS run_id,
    r.flow_id                                    AS flow_id,
    f.name                                       AS flow,
    r.run_number                                 AS run_number,
    f.name || '/' || r.run_number                AS pathspec,
    p.name                                       AS name,
    p.value                                      AS value,
    json_extract(p.value, '$')                   AS value_sql,
    r.user_name                                  AS user,
    r.namespace                                  AS namespace,
    {RUN_STATUS_SQL}                             AS status,
    {_iso('r.created_at')}                       AS created_at,
    r.created_at                                 AS created_ts
FROM run_params p
JOIN runs r ON r.run_id = p.run_id
JOIN flows f ON f.flow_id = r.flow_id;
"""

# Interrupts (#13): Ctrl-C or SIGTERM ends a run, its running task and attempt as
# ``interrupted`` (neither ``failed`` nor ``crashed``). The status CHECKs are part of the
# tables, so runs, tasks and attempts are rebuilt (SQLite's 12-step procedure,
# sqlite.org/lang_altertable.html#otheralter): a copy with the new CHECK, rows copied
# verbatim, the old table dropped, the copy renamed, its indexes and triggers made
# again. The store runs migrations with foreign keys off (store/_db.py), so dropping a
# table cascades nothing; ``legacy_alter_table`` keeps the rename from re-parsing the
# views and triggers that name the table while it is briefly missing (they keep naming
# it, and find the new one). AUTOINCREMENT counters carry over, so a deleted run's or
# task's id is never handed out again. Why not sqlite-utils' Table.transform():
# docs/architecture.md.
_V10_INTERRUPTED = """
PRAGMA legacy_alter_table = ON;

CREATE TABLE runs_v10 (
    run_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id           INTEGER NOT NULL REFERENCES flows(flow_id),
    run_number        INTEGER NOT NULL,
    uuid              TEXT NOT NULL UNIQUE,
    user_name         TEXT,
    namespace         TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
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
INSERT INTO runs_v10(run_id, flow_id, run_number, uuid, user_name, namespace, status, created_at,
                     finished_at, heartbeat_at, owner_host, owner_pid, invocation, origin_run_id,
                     origin_pathspec, code_id, end_step, source_store, source_run_number)
SELECT run_id, flow_id, run_number, uuid, user_name, namespace, status, created_at,
       finished_at, heartbeat_at, owner_host, owner_pid, invocation, origin_run_id,
       origin_pathspec, code_id, end_step, source_store, source_run_number
  FROM runs ORDER BY run_id;

CREATE TABLE tasks_v10 (
    task_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    step_id         INTEGER NOT NULL REFERENCES steps(step_id) ON DELETE CASCADE,
    created_at      REAL NOT NULL,
    finished_at     REAL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'caught', 'interrupted')),
    attempt         INTEGER NOT NULL DEFAULT 0,
    foreach_path    TEXT,
    foreach_index   INTEGER,
    origin_task_id  INTEGER,
    origin_pathspec TEXT
);
INSERT INTO tasks_v10(task_id, run_id, step_id, created_at, finished_at, status, attempt, foreach_path,
                      foreach_index, origin_task_id, origin_pathspec)
SELECT task_id, run_id, step_id, created_at, finished_at, status, attempt, foreach_path,
       foreach_index, origin_task_id, origin_pathspec
  FROM tasks ORDER BY task_id;

CREATE TABLE attempts_v10 (
    task_id           INTEGER NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL,
    started_at        REAL NOT NULL,
    finished_at       REAL,
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed', 'caught', 'interrupted')),
    pid               INTEGER,
    exception_type    TEXT,
    exception_message TEXT,
    traceback         TEXT,
    stdout            TEXT NOT NULL DEFAULT '',
    stderr            TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, attempt)
);
INSERT INTO attempts_v10(task_id, attempt, started_at, finished_at, status, pid, exception_type,
                         exception_message, traceback, stdout, stderr)
SELECT task_id, attempt, started_at, finished_at, status, pid, exception_type,
       exception_message, traceback, stdout, stderr
  FROM attempts;

-- The AUTOINCREMENT high-water marks, not just the largest id still present.
DELETE FROM sqlite_sequence WHERE name IN ('runs_v10', 'tasks_v10');
INSERT INTO sqlite_sequence(name, seq)
SELECT name || '_v10', seq FROM sqlite_sequence WHERE name IN ('runs', 'tasks');

DROP TABLE attempts;
DROP TABLE tasks;
DROP TABLE runs;
ALTER TABLE runs_v10 RENAME TO runs;
ALTER TABLE tasks_v10 RENAME TO tasks;
ALTER TABLE attempts_v10 RENAME TO attempts;

CREATE INDEX runs_by_flow_created ON runs(flow_id, created_at);
CREATE INDEX runs_by_flow_status ON runs(flow_id, status, created_at);
CREATE INDEX runs_by_origin ON runs(origin_run_id);
CREATE INDEX tasks_by_step ON tasks(step_id, created_at);
CREATE INDEX tasks_by_run ON tasks(run_id);

CREATE TRIGGER run_tags_follow_run_status AFTER UPDATE OF status ON runs
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE run_tags SET run_status = NEW.status WHERE run_id = NEW.run_id;
END;

PRAGMA legacy_alter_table = OFF;
"""

#: Ordered migrations; entry i takes a file from user_version i to i + 1.
MIGRATIONS: list[str] = [_V1_TABLES, _V2_VIEWS, _V3_DEPLOYMENTS, _V4_CLIENT_INDEXES, _V5_CARDS,
                         _V6_DELETED_RUNS, _V7_LOG_STAMPS, _V8_VALUE_REFS, _V9_RUN_PARAMS,
                         _V10_INTERRUPTED]

#: The schema version this runstore writes.
SCHEMA_VERSION = len(MIGRATIONS)
