"""Copying runs between stores: ``export_runs`` (a new file of chosen runs) and ``merge_from``.

Nothing from a source file is trusted (SPEC §13.4): rows are read and written with
runstore's own column lists taken from ``schema.MIGRATIONS``, every chunk is
decompressed within its bounds and re-hashed from the very bytes written
(:func:`~runstore.store._blobs.chunk_bytes`, the same check as ``doctor --deep``),
runs that claim to be running arrive crashed, UUIDs and flow names are validated.
Merging is idempotent by run UUID and renumbers colliding run numbers; an export is
built in a private ``mkdtemp`` directory and hard-linked into place. See
``docs/security.md`` §4.

Example
-------
>>> from runstore import Store
>>> a, b = Store(":memory:"), Store(":memory:")
>>> _ = a.create_run("F", user="anne"), b.create_run("F", user="bob")
>>> merge_from(a, b).summary()
'copied 1 runs (0 already present), 0 blobs, 0 chunks (0 B)'
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import stat
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..codecs import JSON_SQL_LIMIT, chunk_list_key, is_chunk_list_key
from ..errors import CodecError, InvalidPathspec, NotAStoreError, RunstoreError, StoreError
from ..schema import MIGRATIONS, SCHEMA_VERSION, STALE_AFTER
from ..tags import check_merged_tags
from ..util import check_flow_name, check_uuid, now, parse_id, pid_alive
from ._blobs import chunk_bytes
from ._cards import run_card_rows
from ._db import Database, Progress, Row, _publish, _split_sql, altered_error, dict_rows, human_size, placeholders
from ._reads import list_run_ids
from ._writes import PARAMETERS_STEP, code_package_id, next_run_number, sync_run_params
from ._writes import flow_id as flow_id_of

__all__ = ["TransferReport", "export_runs", "merge_from"]


@dataclass
class TransferReport:
    """What ``Store.merge_from`` or ``Store.export_runs`` copied.

    ``renumbered`` maps a source pathspec to its new pathspec when the run number
    was taken in the target; ``skipped`` lists source runs already present (same
    UUID); ``deleted`` lists source runs not copied because they were deleted from
    the target before (their UUID has a tombstone; ``include_deleted`` copies them).

    Example
    -------
    >>> TransferReport().summary()
    'copied 0 runs (0 already present), 0 blobs, 0 chunks (0 B)'
    """

    copied: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    renumbered: dict[str, str] = field(default_factory=dict)
    blobs: int = 0
    chunks: int = 0
    bytes: int = 0
    target: str = ""

    def summary(self) -> str:
        """One line for people."""
        deleted = f", {len(self.deleted)} deleted here before" if self.deleted else ""
        return (f"copied {len(self.copied)} runs ({len(self.skipped)} already present{deleted}), "
                f"{self.blobs} blobs, {self.chunks} chunks ({human_size(self.bytes)})")


def export_runs(db: Database, pathspecs: Iterable[str], out: str | os.PathLike[str], *,
                progress: Progress | None = None) -> TransferReport:
    """Write a new, self-contained store holding only the chosen runs.

    ``Store.export_runs`` documents it, with an example.
    """
    pathspecs = list(pathspecs)
    if not pathspecs:
        raise InvalidPathspec("export_runs needs at least one run (Flow/N, or Flow for all its runs)")
    target = Path(out).expanduser().resolve()
    if target.exists():
        raise StoreError(f"{target} already exists; choose a new file name for the export")
    if not target.parent.is_dir():
        raise StoreError(f"cannot export to {target}: directory {target.parent} does not exist")
    with db.read() as conn:
        run_ids = list_run_ids(conn, pathspecs, db.where)
    import shutil
    import tempfile

    _remove_stale_exports(target)
    # A private directory (mkdtemp: O_EXCL-like mkdir, random name, mode 0700) holds the
    # file being built with its -wal/-shm; nothing planted next to the target is ever
    # opened (tests/test_sec_merge.py::test_export_ignores_a_planted_temp_file).
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                        dir=target.parent))
    except OSError as exc:
        raise StoreError(f"cannot export to {target}: {exc.strerror or exc}") from exc
    tmp = scratch / target.name
    try:
        dest = Database(tmp)
        try:
            report = _Transfer(db, dest, keep_ids=True, progress=progress).run(run_ids)
            dest.checkpoint()
        finally:
            dest.close()
        if not _publish(tmp, target):
            raise StoreError(f"{target} appeared while exporting; choose a new file name for the export")
    except RunstoreError as exc:
        # Name the output the user asked for, not the private file it was built in.
        exc.message = exc.message.replace(str(tmp), str(target))
        exc.args = (exc.message, *exc.args[1:])
        raise
    except OSError as exc:
        raise StoreError(f"cannot export to {target}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.target = str(target)
    return report


def merge_from(db: Database, other: str | os.PathLike[str] | Database, *,
               include_deleted: bool = False, progress: Progress | None = None) -> TransferReport:
    """Import every run of another store into this one; merging again changes nothing.

    ``Store.merge_from`` documents it, with an example.
    """
    if isinstance(other, Database):
        source = other
    else:
        other_path = Path(other).expanduser().resolve()
        if db.path is not None and other_path == db.path:
            raise StoreError(f"cannot merge {other_path} into itself")
        if other_path.is_dir():
            raise StoreError(f"{other_path} is a directory, not a runstore database file")
        if not other_path.is_file():
            raise StoreError(f"{other_path} does not exist")
        source = _open_source(other_path)
    try:
        with source.read() as conn:
            run_ids = [row[0] for row in conn.execute("SELECT run_id FROM runs ORDER BY run_id")]
        return _Transfer(source, db, keep_ids=False, progress=progress,
                         include_deleted=include_deleted).run(run_ids)
    finally:
        if source is not other:
            source.close()  # type: ignore[attr-defined]


def _open_source(path: Path) -> Database:
    """Open another store to read from, without ever writing to it.

    A file written by an older runstore is upgraded in a private temporary copy.
    """
    probe = Database(path, diagnose=True)  # read-only, never migrated; refuses what is not a store
    try:
        version, problems = probe.schema_version, probe.schema_problems
    finally:
        probe.close()
    if problems:
        raise altered_error(str(path), problems)
    if 0 < version < SCHEMA_VERSION:
        import shutil
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix="runstore-merge-"))
        target = scratch / path.name
        shutil.copyfile(path, target)
        if Path(f"{path}-wal").exists():
            shutil.copyfile(f"{path}-wal", f"{target}-wal")
        store = Database(target)
        weakref.finalize(store, shutil.rmtree, scratch, True)
        return store
    return Database(path, readonly=True)


def _remove_stale_exports(target: Path) -> None:
    """Remove the scratch directories of exports to ``target`` whose process is gone.

    Only our own directories named ``.NAME.PID.RANDOM.tmp`` with a dead PID go; a
    file of that shape (an old runstore's, or a planted one) is never opened or
    removed. Pinned by tests/test_sec_merge.py::test_export_killed_then_again_leaves_nothing.
    """
    import shutil

    prefix, suffix = f".{target.name}.", ".tmp"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        pid, _, rest = name[len(prefix):-len(suffix)].partition(".")
        if not pid.isdigit() or not rest or pid_alive(int(pid)):
            continue
        path = target.parent / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def _own_columns() -> dict[str, tuple[str, ...]]:
    """Every table's columns as runstore's own schema defines them (never the source's).

    Built once by applying :data:`~runstore.schema.MIGRATIONS` to an empty in-memory
    database, so it follows the schema without a second list to keep in step.
    """
    conn = sqlite3.connect(":memory:")
    try:
        for migration in MIGRATIONS:
            for statement in _split_sql(migration):
                conn.execute(statement)
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")]
        return {table: tuple(row[1] for row in conn.execute(f"PRAGMA table_info({_quoted(table)})"))
                for table in tables}
    finally:
        conn.close()


def _line_count(column: str) -> str:
    """SQL for the number of lines of a log column (newlines, plus an unterminated last line)."""
    text = f"CAST({column} AS TEXT)"
    return f"(length({text}) - length(replace({text}, char(10), '')) + (substr({text}, -1) NOT IN ('', char(10))))"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_list(table: str, alias: str = "") -> str:
    """``"a", "b", ...`` (or ``x."a", ...``) of runstore's own columns of ``table``."""
    return ", ".join(f"{alias}{_quoted(column)}" for column in _own_columns()[table])


def _checked_uuid(value: object, what: str, where: str) -> str:
    """``value`` when it is a UUID in runstore's canonical text form, else NotAStoreError."""
    try:
        return check_uuid(value, what)
    except NotAStoreError:
        raise NotAStoreError(f"{where}: {what} {str(value)[:60]!r} is not a UUID;"
                             " refusing to copy from this file") from None


class _Tampered(Exception):
    """A chunk or blob whose content does not match its key (reason in args[0])."""


class _Transfer:
    """Copies runs with everything they own from one store into another (one transaction).

    Nothing from the source is trusted (SPEC §13.4): rows are read and written with
    runstore's own column lists, every chunk and blob is re-hashed from the very
    bytes that are written, runs that claim to be running arrive crashed, and UUIDs
    and flow names are validated. Any violation raises before the target's
    transaction commits, so a refused transfer writes nothing.
    """

    def __init__(self, source: Database, target: Database, *, keep_ids: bool,
                 progress: Progress | None, include_deleted: bool = False) -> None:
        self.source = source
        self.target = target
        self.keep_ids = keep_ids
        self.include_deleted = include_deleted
        self.progress = progress
        self.report = TransferReport(target=target.where)
        self.run_map: dict[int, tuple[int, str, int]] = {}  # source run_id -> (run_id, flow, number)
        self.task_map: dict[int, int] = {}
        self.code_map: dict[int, int] = {}
        self.blobs_done: set[str] = set()
        self.pathspec = ""  # the source run being copied, for error messages

    def run(self, run_ids: list[int]) -> TransferReport:
        with self.source.read() as src:
            began = not src.in_transaction
            if began:
                src.execute("BEGIN")  # one consistent snapshot of the source
            try:
                source_uuid = _checked_uuid(self.source.uuid, "its store UUID", self.source.where)
                with self.target.write() as dst:
                    for done, run_id in enumerate(run_ids, 1):
                        self._copy_run(src, dst, run_id, source_uuid)
                        if self.progress:
                            self.progress(done, len(run_ids))
            finally:
                if began and src.in_transaction:
                    src.execute("COMMIT")
        return self.report

    @staticmethod
    def _rows(conn: sqlite3.Connection, table: str, where: str, *args: Any) -> list[Row]:
        """Rows of ``table`` with runstore's own columns (a renamed or extra source column is never read)."""
        return dict_rows(conn.execute(f"SELECT {_column_list(table)} FROM {_quoted(table)} WHERE {where}", args))

    @classmethod
    def _row(cls, conn: sqlite3.Connection, table: str, where: str, *args: Any) -> Row | None:
        rows = cls._rows(conn, table, where, *args)
        return rows[0] if rows else None

    @staticmethod
    def _insert(conn: sqlite3.Connection, table: str, row: Row) -> int:
        cols = [column for column in _own_columns()[table] if column in row]
        return conn.execute(
            f"INSERT INTO {_quoted(table)}({', '.join(map(_quoted, cols))}) VALUES ({placeholders(len(cols))})",
            [row[c] for c in cols]).lastrowid or 0  # never 0: every table here has a rowid

    def _copy_run(self, src: sqlite3.Connection, dst: sqlite3.Connection, run_id: int, source_uuid: str) -> None:
        run = self._row(src, "runs", "run_id = ?", run_id)
        assert run is not None
        flow_row = src.execute("SELECT name FROM flows WHERE flow_id = ?", (run["flow_id"],)).fetchone()
        flow, number = (flow_row[0] if flow_row else None), run["run_number"]
        where = self.source.where
        try:
            check_flow_name(flow)
        except InvalidPathspec:
            raise NotAStoreError(f"{where}: run {run_id} has an invalid flow name {str(flow)[:60]!r};"
                                 " refusing to copy from this file") from None
        if not isinstance(number, int) or number < 1:
            raise NotAStoreError(f"{where}: a run of {flow} has an invalid run number {str(number)[:20]!r};"
                                 " refusing to copy from this file")
        self.pathspec = f"{flow}/{number}"
        _checked_uuid(run["uuid"], f"run {self.pathspec} has a UUID", where)
        if run["source_store"] is not None:
            _checked_uuid(run["source_store"], f"run {self.pathspec} has a source store", where)
        existing = dst.execute("SELECT r.run_id, r.run_number FROM runs r WHERE r.uuid = ?", (run["uuid"],)).fetchone()
        if existing:
            self.run_map[run_id] = (existing[0], flow, existing[1])
            self.report.skipped.append(f"{flow}/{number}")
            return
        if self.include_deleted:
            dst.execute("DELETE FROM deleted_runs WHERE uuid = ?", (run["uuid"],))
        elif dst.execute("SELECT 1 FROM deleted_runs WHERE uuid = ?", (run["uuid"],)).fetchone():
            self.report.deleted.append(f"{flow}/{number}")
            return
        if run["status"] == "running":
            # The run cannot go on here: its owner writes (if at all) to the source file.
            # It arrives crashed, whatever heartbeat it claims (a heartbeat in 2100
            # would otherwise keep it "running" and gc waiting for ever).
            stamp = now()
            run["heartbeat_at"] = min(_as_time(run["heartbeat_at"], run["created_at"]), stamp) - 2 * STALE_AFTER
            run["owner_host"] = run["owner_pid"] = None
        flow_id = flow_id_of(dst, flow)
        taken = dst.execute("SELECT 1 FROM runs WHERE flow_id = ? AND run_number = ?", (flow_id, number)).fetchone()
        if taken:
            number = next_run_number(dst, flow_id)
            self.report.renumbered[f"{flow}/{run['run_number']}"] = f"{flow}/{number}"
        dst.execute("UPDATE flows SET last_run_number = max(last_run_number, ?) WHERE flow_id = ?",
                    (number, flow_id))
        origin = self.run_map.get(run["origin_run_id"]) if run["origin_run_id"] else None
        if run["code_id"] is not None:
            run["code_id"] = self._copy_code(src, dst, run["code_id"])
        new_run = dict(run, flow_id=flow_id, run_number=number,
                       origin_run_id=origin[0] if origin else None,
                       origin_pathspec=f"{origin[1]}/{origin[2]}" if origin else run["origin_pathspec"],
                       source_store=run["source_store"] or source_uuid,
                       source_run_number=run["source_run_number"] or run["run_number"])
        if not self.keep_ids:
            del new_run["run_id"]
        new_id = self._insert(dst, "runs", new_run)
        self.run_map[run_id] = (new_id, flow, number)
        self.report.copied.append((f"{flow}/{run['run_number']}", f"{flow}/{number}"))
        tags = src.execute("SELECT tag, is_system, created_at FROM run_tags WHERE run_id = ?", (run_id,)).fetchall()
        check_merged_tags(f"{flow}/{run['run_number']}", [(tag, system) for tag, system, _ in tags])
        dst.executemany(
            "INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at) VALUES (?, ?, ?, ?, ?)",
            [(new_id, tag, system, flow_id, created) for tag, system, created in tags])
        step_map = {}
        for step in self._rows(src, "steps", "run_id = ? ORDER BY step_id", run_id):
            old = step.pop("step_id")
            step_map[old] = self._insert(dst, "steps", dict(step, run_id=new_id))
        for task in self._rows(src, "tasks", "run_id = ? ORDER BY task_id", run_id):
            old = task["task_id"]
            if not self.keep_ids:
                del task["task_id"]
                origin_task = self.task_map.get(task["origin_task_id"]) if task["origin_task_id"] else None
                task["origin_task_id"] = origin_task
                if origin_task is not None and task["origin_pathspec"]:
                    origin_run = self._task_run(dst, origin_task)
                    task["origin_pathspec"] = f"{origin_run}/{task['origin_pathspec'].split('/')[2]}/{origin_task}"
            self.task_map[old] = self._insert(dst, "tasks", dict(task, run_id=new_id, step_id=step_map[task["step_id"]]))
        self._copy_task_rows(src, dst, run_id)
        # Parameters by value are derived here from the blobs just verified, never
        # read from the source's run_params (tests/test_params.py::test_merge_*).
        for (task_id,) in dst.execute(
                "SELECT t.task_id FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                " WHERE t.run_id = ? AND s.name = ?", (new_id, PARAMETERS_STEP)).fetchall():
            sync_run_params(dst, task_id)

    @staticmethod
    def _task_run(dst: sqlite3.Connection, task_id: int) -> str:
        flow, number = dst.execute(
            "SELECT f.name, r.run_number FROM tasks t JOIN runs r ON r.run_id = t.run_id"
            " JOIN flows f ON f.flow_id = r.flow_id WHERE t.task_id = ?", (task_id,)).fetchone()
        return f"{flow}/{number}"

    def _copy_task_rows(self, src: sqlite3.Connection, dst: sqlite3.Connection, run_id: int) -> None:
        tasks = "task_id IN (SELECT task_id FROM tasks WHERE run_id = ?)"
        for row in self._rows(src, "attempts", tasks, run_id):
            self._insert(dst, "attempts", dict(row, task_id=self.task_map[row["task_id"]]))
        self._copy_log_stamps(src, dst, run_id)
        artifact_map: dict[tuple[int, str], int] = {}
        for row in self._rows(src, "artifacts", tasks, run_id):
            self._copy_blob(src, dst, row["blob_key"])
            old_id = row.pop("artifact_id")
            artifact_map[old_id, row["name"]] = self._insert(
                dst, "artifacts", dict(row, task_id=self.task_map[row["task_id"]]))
        # Bindings to a row of this run under the same name only (what readers show):
        # one pointing into another run, to another name or to nothing is not copied.
        dst.executemany(
            "INSERT INTO task_values(task_id, attempt, name, artifact_id) VALUES (?, ?, ?, ?)",
            [(self.task_map[row["task_id"]], row["attempt"], row["name"], artifact_map[row["artifact_id"], row["name"]])
             for row in self._rows(src, "task_values", tasks, run_id) if (row["artifact_id"], row["name"]) in artifact_map])
        for row in self._rows(src, "metadata", tasks, run_id):
            if not self.keep_ids and row["name"] == "origin-task-id" and parse_id(row["value"]) is not None:
                row["value"] = str(self.task_map.get(parse_id(row["value"]) or 0, row["value"]))
            if not self.keep_ids and row["name"] == "origin-run-id" and parse_id(row["value"]) is not None:
                flow = src.execute("SELECT f.name FROM runs r JOIN flows f ON f.flow_id = r.flow_id"
                                   " WHERE r.run_id = ?", (run_id,)).fetchone()[0]
                renamed = self.report.renumbered.get(f"{flow}/{row['value']}")
                if renamed:
                    row["value"] = renamed.split("/")[1]
            self._insert(dst, "metadata", dict(row, task_id=self.task_map[row["task_id"]]))
        for row in run_card_rows(src, run_id):  # cards (store/_cards.py)
            if row["blob_key"] is not None:
                self._copy_blob(src, dst, row["blob_key"], what="card")
            self._insert(dst, "cards", dict(row, task_id=self.task_map[row["task_id"]]))

    def _copy_log_stamps(self, src: sqlite3.Connection, dst: sqlite3.Connection, run_id: int) -> None:
        """Copy the per-line times of the run's attempts (``log_stamps``), as hostile input.

        Only stamps of an attempt just copied (joined to its ``attempts`` row of a task of
        this run), of a known stream, at an integer line inside that stream's text (so
        there are never more stamps than log lines), dated by a finite time between 1970
        and 5000: anything else is dropped and its lines take the previous stamp (or the
        attempt's start), as ``Task.loglines`` dates unstamped lines. Pinned by
        tests/test_log_stamps_travel.py::test_hostile_log_stamps_are_bounded_on_merge.
        """
        rows = src.execute(
            "SELECT s.task_id, s.attempt, s.stream, s.line, s.ts FROM log_stamps s"
            " JOIN attempts a ON a.task_id = s.task_id AND a.attempt = s.attempt"
            " JOIN tasks t ON t.task_id = a.task_id"
            " WHERE t.run_id = ? AND s.stream IN ('stdout', 'stderr')"
            " AND typeof(s.line) = 'integer' AND s.line >= 0"
            " AND typeof(s.ts) IN ('real', 'integer') AND s.ts >= 0 AND s.ts < 95617584000"
            f" AND s.line < CASE s.stream WHEN 'stdout' THEN {_line_count('a.stdout')} ELSE {_line_count('a.stderr')} END",
            (run_id,))
        while True:
            batch = rows.fetchmany(1000)
            if not batch:
                return
            dst.executemany(
                "INSERT OR IGNORE INTO log_stamps(task_id, attempt, stream, line, ts) VALUES (?, ?, ?, ?, ?)",
                [(self.task_map[task_id], attempt, stream, line, float(ts))
                 for task_id, attempt, stream, line, ts in batch if task_id in self.task_map])

    def _copy_code(self, src: sqlite3.Connection, dst: sqlite3.Connection, code_id: int) -> int:
        if code_id not in self.code_map:
            code = self._row(src, "code_packages", "code_id = ?", code_id)
            if code is None:
                raise NotAStoreError(f"{self.source.where}: the code package of {self.pathspec} is missing;"
                                     " run `runstore doctor` on it")
            self._copy_blob(src, dst, code["blob_key"], what="code package")
            self.code_map[code_id] = code_package_id(dst, code["blob_key"], code["script_name"], code["created_at"])
        return self.code_map[code_id]

    def _copy_blob(self, src: sqlite3.Connection, dst: sqlite3.Connection, key: str, what: str = "value") -> None:
        if key in self.blobs_done:
            return
        if dst.execute("SELECT 1 FROM blobs WHERE blob_key = ?", (key,)).fetchone() is None:
            try:
                self._copy_verified_blob(src, dst, key)
            except _Tampered as exc:
                raise NotAStoreError(
                    f"{self.source.where}: refusing to merge: {self.pathspec} has a {what} {str(key)[:16]}… whose"
                    f" stored content does not match its key ({exc.args[0]}); the file was altered, nothing was"
                    " copied") from None
        self.blobs_done.add(key)
        # Merged artifacts keep their source's trust (SPEC §3): the MACs only
        # vouch for readers whose secret made them, so copying them grants nothing new.
        dst.executemany("INSERT OR IGNORE INTO blob_trust(blob_key, mac) VALUES (?, ?)",
                        src.execute("SELECT blob_key, mac FROM blob_trust WHERE blob_key = ?", (key,)).fetchall())

    def _copy_verified_blob(self, src: sqlite3.Connection, dst: sqlite3.Connection, key: str) -> None:
        """Copy blob ``key``, re-hashing every chunk from the very bytes that are written.

        Each chunk row is read once; its raw bytes (decompressed, never beyond its
        claimed size, which may not exceed the chunk size) must hash to its key and
        have its size, and the chunks in order must add up to the blob's size and hash
        to the blob key (a chunk-list key: the chunk keys in order derive it). The target's transaction is open, so raising
        :class:`_Tampered` part way rolls back every chunk already inserted.
        """
        blob = self._row(src, "blobs", "blob_key = ?", key)
        if blob is None:
            raise NotAStoreError(f"{self.source.where}: blob {str(key)[:16]}… of {self.pathspec} is missing;"
                                 " run `runstore doctor` on it")
        parts = src.execute("SELECT seq, chunk_key FROM blob_parts WHERE blob_key = ? ORDER BY seq",
                            (key,)).fetchall()
        if [seq for seq, _ in parts] != list(range(len(parts))) or len(parts) != blob["n_chunks"]:
            raise _Tampered(f"{len(parts)} parts listed for {blob['n_chunks']!r} chunks")
        # A value keyed by its chunk list (#18) is checked by its chunks and that list; an
        # older value of several chunks, keyed by the sha256 of all its bytes, is hashed whole.
        listed = is_chunk_list_key(key)
        digest, total, stamp = hashlib.sha256(), 0, now()
        small = blob["size"] <= JSON_SQL_LIMIT and len(parts) == 1
        text = b""
        for _, chunk_key in parts:
            chunk = src.execute("SELECT compression, raw_size, data FROM blob_chunks WHERE chunk_key = ?",
                                (chunk_key,)).fetchone()
            if chunk is None:
                raise NotAStoreError(f"{self.source.where}: a chunk of blob {str(key)[:16]}… of {self.pathspec}"
                                     " is missing; run `runstore doctor` on it")
            compression, raw_size, data = chunk
            try:
                raw = chunk_bytes(compression, data, raw_size, chunk_key)
            except CodecError as exc:
                raise _Tampered(f"chunk {str(chunk_key)[:16]}…: {exc}") from None
            if not listed:
                digest.update(raw)
            total += raw_size
            if small:
                text = bytes(raw)
            del raw
            if dst.execute("SELECT 1 FROM blob_chunks WHERE chunk_key = ?", (chunk_key,)).fetchone() is None:
                dst.execute("INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
                            " VALUES (?, ?, ?, ?, ?)", (chunk_key, compression, raw_size, stamp, data))
                self.report.chunks += 1
                self.report.bytes += len(data)
        expected = chunk_list_key(total, [chunk_key for _, chunk_key in parts]) if listed else digest.hexdigest()
        if total != blob["size"] or expected != key:
            raise _Tampered(f"its {len(parts)} chunks ({total} bytes) do not hash to it")
        # The JSON preview SQL shows is the verified bytes themselves, never the sender's text.
        blob["json_value"] = _preview(text) if small and blob.get("json_value") is not None else None
        self._insert(dst, "blobs", blob)
        dst.executemany("INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, ?, ?)",
                        [(key, seq, chunk_key) for seq, chunk_key in parts])
        self.report.blobs += 1


def _preview(data: bytes) -> str | None:
    """The JSON text of a verified small value's bytes (None when they are not UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _as_time(*candidates: object) -> float:
    """The first candidate that is a number, as a float (0.0 when none is)."""
    for value in candidates:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.0
