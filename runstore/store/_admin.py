"""Store maintenance: read-only SQL, delete, gc, export, merge, trust and doctor.

These are the library side of the ``runstore`` command's admin verbs. Each one is a
short sequence of SQL statements inside one transaction, so a crash or an error in
the middle leaves the store exactly as it was.

The garbage-collection rule (``gc``)
------------------------------------
A blob is garbage when no artifact and no code package still in use references it.
A chunk is garbage when no blob references it. Values that a *live* run (status
``running`` and not crashed, see :func:`~runstore.store._runs.effective_status`) is
writing right now may not be referenced yet: their chunks are written in short
transactions before the artifact rows that use them. So gc only collects a blob,
code package or chunk whose last write or re-use (``created_at`` / ``touched_at``)
is older than the start of the oldest live run; when no run is live everything
unreferenced goes. Blobs that another run still uses are never touched.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sqlite3
import stat
import sys
import uuid as uuidlib
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..blobs import CHUNK_SIZE, CODECS
from ..errors import InvalidPathspec, NotAStoreError, NotFound, RunstoreError, StoreError, StoreReadOnlyError
from ..trust import trust_in_home, trust_mac
from ..schema import MIGRATIONS, SCHEMA_VERSION, STALE_AFTER
from ..tags import check_merged_tags
from ..util import config_dir, now, pid_alive
from ._cards import run_card_rows
from ._db import _publish, _split_sql, altered_error
from ._runs import effective_status
from ._schemacheck import index_problems

__all__ = ["AdminMixin", "SqlResult", "GcReport", "TransferReport", "DoctorReport"]

#: Called as ``progress(done, total)`` while a long operation advances.
Progress = Callable[[int, int], None]

_BATCH = 500
_UNSAFE_ENCODINGS = tuple(name for name, codec in CODECS.items() if not codec.safe)
_RUN_PATHSPEC = re.compile(r"^(?P<flow>[A-Za-z_][A-Za-z0-9_]*)(?:/(?P<number>[0-9]+))?$")

# Statements the read-only SQL connection may run (anything else: "not authorized").
_SQL_ALLOWED = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}


@dataclass(frozen=True)
class SqlResult:
    """Columns and rows of a read-only query (see :meth:`AdminMixin.sql`).

    Example
    -------
    >>> from runstore import Store
    >>> Store(":memory:").sql("SELECT 1 AS one").rows
    [(1,)]
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}`` dicts."""
        return [dict(zip(self.columns, row)) for row in self.rows]


@dataclass
class GcReport:
    """What :meth:`AdminMixin.gc` removed (or would remove, with ``dry_run``).

    Example
    -------
    >>> from runstore import Store
    >>> Store(":memory:").gc().blobs
    0
    """

    blobs: int = 0
    chunks: int = 0
    code_packages: int = 0
    bytes_freed: int = 0
    file_before: int | None = None
    file_after: int | None = None
    dry_run: bool = False
    kept_after: float | None = None

    def summary(self) -> str:
        """One line for people."""
        verb = "would free" if self.dry_run else "freed"
        text = (f"{verb} {_human(self.bytes_freed)}: {self.blobs} blobs, {self.chunks} chunks, "
                f"{self.code_packages} code packages")
        if self.file_before is not None and self.file_after is not None and not self.dry_run:
            text += f"; file {_human(self.file_before)} -> {_human(self.file_after)}"
        return text


@dataclass
class TransferReport:
    """What :meth:`AdminMixin.merge_from` or :meth:`AdminMixin.export_runs` copied.

    ``renumbered`` maps a source pathspec to its new pathspec when the run number
    was taken in the target; ``skipped`` lists source runs already present (same
    UUID).

    Example
    -------
    >>> TransferReport().summary()
    'copied 0 runs (0 already present), 0 blobs, 0 chunks (0 B)'
    """

    copied: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    renumbered: dict[str, str] = field(default_factory=dict)
    blobs: int = 0
    chunks: int = 0
    bytes: int = 0
    target: str = ""

    def summary(self) -> str:
        """One line for people."""
        return (f"copied {len(self.copied)} runs ({len(self.skipped)} already present), "
                f"{self.blobs} blobs, {self.chunks} chunks ({_human(self.bytes)})")


@dataclass
class DoctorReport:
    """Result of :meth:`AdminMixin.doctor`: problems (the file is damaged or
    inconsistent), warnings (worth knowing, nothing is broken) and facts.

    Example
    -------
    >>> from runstore import Store
    >>> Store(":memory:").doctor().ok
    True
    """

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _human(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _batches(items: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


# Functions a read-only query may not call: fts3_tokenizer('simple') returns a raw C
# pointer (an address leak; its 2-argument form installs code), the others touch files.
# Pinned by tests/test_reliability_input.py::test_sql_command_stays_read_only.
_SQL_DENIED_FUNCTIONS = {"fts3_tokenizer", "load_extension", "readfile", "writefile", "edit"}


_PRAGMAS_ABOUT_A_TABLE = frozenset({
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
})
_PRAGMAS_TO_READ = frozenset({
    "user_version", "schema_version", "page_count", "page_size", "freelist_count", "table_list",
    "compile_options",
})


def _sql_authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None) -> int:
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _SQL_DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _SQL_ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in _PRAGMAS_ABOUT_A_TABLE:  # the argument names a table or index
            return sqlite3.SQLITE_OK
        if name in _PRAGMAS_TO_READ and arg2 is None:  # with an argument they would set
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _allow_all(*_: object) -> int:
    return sqlite3.SQLITE_OK


def _clear_authorizer(conn: sqlite3.Connection) -> None:
    # Python 3.10 cannot remove an authorizer (None became "remove" in 3.11; before, it
    # makes every later statement "not authorized"), so install one that allows all.
    conn.set_authorizer(None if sys.version_info >= (3, 11) else _allow_all)


class AdminMixin:
    """Maintenance and sharing operations of a store. Mixed into ``Store``."""

    # provided by Database / the other mixins
    path: Path | None
    in_memory: bool
    readonly: bool
    where: str
    uuid: str
    write: Any
    read: Any
    connection: Any
    checkpoint: Any
    rehash_problems: Callable[[], list[str]]
    integrity_problems: Any
    is_trusted: Any
    open_connection: Any
    schema_problems: list[str]
    schema_version: int

    # ------------------------------------------------------------ read-only SQL

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> SqlResult:
        """Run one read-only SQL statement and return its columns and rows.

        The statement runs on a connection that cannot write: the file is opened
        with ``mode=ro``, ``PRAGMA query_only`` is on, and an authorizer allows only
        reads (no ``ATTACH``, no pragma changes). Values come back as stored —
        blobs as raw bytes; nothing is ever unpickled.

        Raises
        ------
        StoreError
            For a syntax error or any attempt to write (one line, no traceback).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne")
        >>> store.sql("SELECT pathspec, status FROM runs_view").rows
        [('HelloFlow/1', 'running')]
        """
        if self.path is None:
            conn = self.connection()
            with self.read():
                return self._sql_on(conn, query, params, restore=True)
        conn = self.open_connection()  # same policy as the store's own; closed below
        try:
            return self._sql_on(conn, query, params, restore=False)
        finally:
            conn.close()

    def _sql_on(self, conn: sqlite3.Connection, query: str, params: Any, *, restore: bool) -> SqlResult:
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(_sql_authorizer)
            # Ctrl-C stops the query: every connection has harden()'s progress handler.
            try:
                cursor = conn.execute(query, params)
                rows = cursor.fetchall()
                columns = [d[0] for d in cursor.description or ()]
            finally:
                _clear_authorizer(conn)
                if restore:
                    conn.execute("PRAGMA query_only = OFF")
        except (sqlite3.Error, sqlite3.Warning) as exc:
            text = str(exc)
            if text == "interrupted":
                raise KeyboardInterrupt from None
            if "not authorized" in text or "readonly" in text or "query_only" in text:
                text = f"only reading queries are allowed ({text})"
            raise StoreError(f"SQL error: {text}") from None
        return SqlResult(columns, rows)

    # ------------------------------------------------------------ pathspecs

    def _resolve_runs(self, conn: sqlite3.Connection, pathspecs: Iterable[str]) -> list[int]:
        """Run ids for ``Flow`` (every run of it) or ``Flow/N`` pathspecs, in order, no repeats."""
        run_ids: dict[int, None] = {}
        for spec in pathspecs:
            match = _RUN_PATHSPEC.match(spec.strip().strip("/"))
            if not match:
                raise InvalidPathspec(f"{spec!r} is not a flow name or a run pathspec like HelloFlow/5")
            flow, number = match["flow"], match["number"]
            if number is None:
                rows = conn.execute(
                    "SELECT r.run_id FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE f.name = ?"
                    " ORDER BY r.run_id", (flow,)).fetchall()
                if not rows:
                    raise NotFound(f"Flow('{flow}') has no runs in {self.where}")
            else:
                rows = conn.execute(
                    "SELECT r.run_id FROM runs r JOIN flows f ON f.flow_id = r.flow_id"
                    " WHERE f.name = ? AND r.run_number = ?", (flow, int(number))).fetchall()
                if not rows:
                    raise NotFound(f"Run('{flow}/{number}') does not exist in {self.where}")
            run_ids.update((row[0], None) for row in rows)
        return list(run_ids)

    # ------------------------------------------------------------ delete and gc

    def delete_runs(self, pathspecs: Iterable[str], *, force: bool = False) -> list[str]:
        """Delete runs (``Flow/N``) or every run of flows (``Flow``) with all they own.

        Steps, tasks, attempts, logs, artifacts rows, metadata and tags go with the
        run, in one transaction. Blobs stay until :meth:`gc` (another run may share
        them). Run numbers are never reused: the flow's counter is kept. A run that
        is still going is refused (a crashed one can be deleted) unless ``force``:
        that is for a run stuck as ``running`` whose owner you know is gone (for
        instance a hand-edited heartbeat). Returns the deleted pathspecs.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> for _ in range(3):
        ...     store.finish_run(store.create_run("F", user="anne").run_id, "succeeded")
        >>> store.delete_runs(["F/2"])
        ['F/2']
        >>> [r[0] for r in store.sql("SELECT run_number FROM runs").rows]
        [1, 3]
        """
        with self.write() as conn:
            run_ids = self._resolve_runs(conn, pathspecs)
            for batch in _batches([] if force else run_ids):
                for flow, number, created, beat, host, pid in conn.execute(
                    f"SELECT f.name, r.run_number, r.created_at, r.heartbeat_at, r.owner_host, r.owner_pid"
                    f" FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE r.status = 'running'"
                    f" AND r.run_id IN ({_placeholders(len(batch))})", batch):
                    if effective_status("running", beat, created, host, pid) == "running":
                        raise StoreError(f"{flow}/{number} is still running (process {pid} on {host});"
                                         " delete it when it has ended (or with --force if it is stuck)")
            deleted = []
            for batch in _batches(run_ids):
                marks = _placeholders(len(batch))
                deleted += [f"{flow}/{number}" for flow, number in conn.execute(
                    f"SELECT f.name, r.run_number FROM runs r JOIN flows f ON f.flow_id = r.flow_id"
                    f" WHERE r.run_id IN ({marks}) ORDER BY r.run_id", batch)]
                conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", batch)
        return deleted

    def _live_since(self, conn: sqlite3.Connection) -> float | None:
        """Start of the oldest live (running, not crashed) run, or None.

        A start in the future is taken as now: a genuine scheduler records ``now()``,
        so such a row was edited, and trusting it would make gc collect values that
        runs started before it are still writing
        (tests/test_sec_merge.py::test_running_run_from_2100_arrives_crashed_and_gc_completes).
        """
        starts = [
            min(created, now()) for created, beat, host, pid in conn.execute(
                "SELECT created_at, heartbeat_at, owner_host, owner_pid FROM runs WHERE status = 'running'")
            if effective_status("running", beat, created, host, pid) == "running"
        ]
        return min(starts) if starts else None

    def gc(self, *, dry_run: bool = False, progress: Progress | None = None) -> GcReport:
        """Drop blobs, chunks and code packages nothing references; reclaim the space.

        Everything is decided and deleted in one write transaction; then the file is
        compacted (``VACUUM``) and the WAL folded in, so the file shrinks. Values
        written moments ago by a live run survive (see the module docstring for the
        exact rule). With ``dry_run`` nothing changes and the report says what would go.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.put_value("nobody uses me")
        >>> store.gc().blobs
        1
        """
        report = GcReport(dry_run=dry_run, file_before=self._file_size())

        class _Rollback(Exception):
            pass

        try:
            with self.write() as conn:
                live = self._live_since(conn)
                cutoff = live if live is not None else float("inf")
                report.kept_after = live
                report.code_packages = conn.execute(
                    "DELETE FROM code_packages WHERE created_at < ? AND code_id NOT IN"
                    " (SELECT code_id FROM runs WHERE code_id IS NOT NULL) AND code_id NOT IN"
                    " (SELECT code_id FROM deployments WHERE code_id IS NOT NULL)", (cutoff,)).rowcount
                dead_blobs = [row[0] for row in conn.execute(
                    "SELECT b.blob_key FROM blobs b WHERE b.created_at < :cut"
                    " AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.blob_key = b.blob_key)"
                    " AND NOT EXISTS (SELECT 1 FROM code_packages c WHERE c.blob_key = b.blob_key)"
                    " AND NOT EXISTS (SELECT 1 FROM cards d WHERE d.blob_key = b.blob_key)"
                    " AND NOT EXISTS (SELECT 1 FROM blob_parts p JOIN blob_chunks k ON k.chunk_key = p.chunk_key"
                    "                 WHERE p.blob_key = b.blob_key AND k.touched_at >= :cut)",
                    {"cut": cutoff})]
                dead_chunks_total = 0
                done = 0
                for batch in _batches(dead_blobs):
                    conn.execute(f"DELETE FROM blobs WHERE blob_key IN ({_placeholders(len(batch))})", batch)
                    done += len(batch)
                    if progress:
                        progress(done, len(dead_blobs))
                report.blobs = len(dead_blobs)
                dead_chunks = conn.execute(
                    "SELECT chunk_id, length(data) FROM blob_chunks k WHERE touched_at < ?"
                    " AND NOT EXISTS (SELECT 1 FROM blob_parts p WHERE p.chunk_key = k.chunk_key)",
                    (cutoff,)).fetchall()
                for batch in _batches(dead_chunks):
                    conn.execute(f"DELETE FROM blob_chunks WHERE chunk_id IN ({_placeholders(len(batch))})",
                                 [chunk_id for chunk_id, _ in batch])
                    dead_chunks_total += len(batch)
                    if progress:
                        progress(dead_chunks_total, len(dead_chunks))
                report.chunks = len(dead_chunks)
                report.bytes_freed = sum(size for _, size in dead_chunks)
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
        if not dry_run and (report.blobs or report.chunks or report.code_packages):
            self.vacuum()
        report.file_after = self._file_size()
        return report

    def vacuum(self) -> None:
        """Compact the file (``VACUUM``) and fold the WAL in, so freed pages go back to the disk.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").vacuum()
        """
        if self.readonly:
            raise StoreReadOnlyError(f"{self.where} was opened read-only")
        with self.read() as conn:
            conn.execute("VACUUM")
        self.checkpoint()

    def _file_size(self) -> int | None:
        if self.path is None:
            return None
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(str(self.path) + suffix).st_size
            except OSError:
                pass
        return total

    # ------------------------------------------------------------ export and merge

    def export_runs(self, pathspecs: Iterable[str], out: str | os.PathLike[str], *,
                    progress: Progress | None = None) -> TransferReport:
        """Write a new, self-contained store holding only the chosen runs.

        The copy keeps run numbers, task ids and UUIDs, and carries every step,
        task, attempt, log, artifact, metadata row, tag, code package and blob those
        runs use (and their trust, SPEC §3) — nothing else. The file appears only when
        complete (it is built in a private, randomly named ``.OUT.PID.*.tmp``
        directory next to ``out``, removed on failure; one left by a killed export
        is removed by the next export to the same directory), and never replaces an
        existing file. Every chunk and blob is re-hashed on the way, as in
        :meth:`merge_from`.

        Example
        -------
        >>> import tempfile, pathlib
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = [store.create_run("F", user="anne") for _ in range(3)]
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "two.db"
        >>> len(store.export_runs(["F/1", "F/3"], out).copied)
        2
        """
        from . import Store

        pathspecs = list(pathspecs)
        if not pathspecs:
            raise InvalidPathspec("export_runs needs at least one run (Flow/N, or Flow for all its runs)")
        target = Path(out).expanduser().resolve()
        if target.exists():
            raise StoreError(f"{target} already exists; choose a new file name for the export")
        if not target.parent.is_dir():
            raise StoreError(f"cannot export to {target}: directory {target.parent} does not exist")
        with self.read() as conn:
            run_ids = self._resolve_runs(conn, pathspecs)
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
            dest = Store(tmp)
            try:
                report = _Transfer(self, dest, keep_ids=True, progress=progress).run(run_ids)
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

    def merge_from(self, other: "str | os.PathLike[str] | AdminMixin", *,
                   progress: Progress | None = None) -> TransferReport:
        """Import every run of another store into this one; merging again changes nothing.

        Runs are matched by UUID (already present: skipped) and keep their UUIDs;
        ``runs.source_store`` / ``source_run_number`` record where each came from. A
        run number already taken here is replaced by the flow's next number (see
        ``report.renumbered``). Blobs and chunks are copied by hash only when
        missing, with the trust they had in the source. Task ids are new (they are
        store-wide); links between cloned tasks follow. One transaction: all or nothing.

        Example
        -------
        >>> from runstore import Store
        >>> a, b = Store(":memory:"), Store(":memory:")
        >>> _ = a.create_run("F", user="anne"), b.create_run("F", user="bob")
        >>> a.merge_from(b).renumbered
        {'F/1': 'F/2'}
        >>> a.merge_from(b).copied
        []
        """
        if isinstance(other, AdminMixin):
            source = other
        else:
            other_path = Path(other).expanduser().resolve()
            if self.path is not None and other_path == self.path:
                raise StoreError(f"cannot merge {other_path} into itself")
            if other_path.is_dir():
                raise StoreError(f"{other_path} is a directory, not a runstore database file")
            if not other_path.is_file():
                raise StoreError(f"{other_path} does not exist")
            source = _open_source(other_path)
        try:
            with source.read() as conn:
                run_ids = [row[0] for row in conn.execute("SELECT run_id FROM runs ORDER BY run_id")]
            return _Transfer(source, self, keep_ids=False, progress=progress).run(run_ids)
        finally:
            if source is not other:
                source.close()  # type: ignore[attr-defined]

    # ------------------------------------------------------------ trust

    def trust_all(self) -> int:
        """Record this user's trust for every pickled value in the store; returns how many.

        Afterwards :meth:`~runstore.store._blobs.BlobsMixin.load_value` loads them.
        Only do this for a file whose author you trust: loading a pickle can run any
        code. This is what ``runstore trust FILE`` does. On a store opened
        ``readonly`` nothing is written to the file: the trust is kept in this user's
        home, under the store's UUID (:mod:`runstore.trust`).

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").trust_all()
        0
        """
        marks = _placeholders(len(_UNSAFE_ENCODINGS))
        query = (f"SELECT DISTINCT a.blob_key FROM artifacts a JOIN blobs b ON b.blob_key = a.blob_key"
                 f" WHERE a.encoding IN ({marks})")
        if self.readonly:
            # A file this user cannot (or chose not to) write: the MACs go to their home.
            with self.read() as conn:
                keys = [row[0] for row in conn.execute(query, _UNSAFE_ENCODINGS)]
            try:
                trust_in_home(self.uuid, keys)
            except ValueError as exc:
                raise NotAStoreError(f"{self.where}: its store UUID is damaged ({exc})") from None
            except OSError as exc:
                raise StoreError(f"cannot record trust in {config_dir()}: {exc.strerror or exc}") from None
            return len(keys)
        with self.write() as conn:
            keys = [row[0] for row in conn.execute(query, _UNSAFE_ENCODINGS)]
            conn.executemany("INSERT OR IGNORE INTO blob_trust(blob_key, mac) VALUES (?, ?)",
                             [(key, trust_mac(key)) for key in keys])
        return len(keys)

    def untrusted_count(self) -> int:
        """How many distinct pickled values this user would be refused (never unpickles).

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").untrusted_count()
        0
        """
        marks = _placeholders(len(_UNSAFE_ENCODINGS))
        with self.read() as conn:
            keys = [row[0] for row in conn.execute(
                f"SELECT DISTINCT blob_key FROM artifacts WHERE encoding IN ({marks})", _UNSAFE_ENCODINGS)]
        return sum(not self.is_trusted(key) for key in keys)

    # ------------------------------------------------------------ doctor

    def _doctor_structure(self, report: DoctorReport) -> bool:
        """The file's structure: schema check, integrity, indexes. False: stop here.

        When the schema is not runstore's, the other checks are skipped: they would
        read the file through its altered views and tables.
        """
        report.facts["schema_version"] = self.schema_version
        report.problems += [f"schema: {problem}" for problem in self.schema_problems]
        with self.read() as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            damaged, other = index_problems(rows)
            report.problems += damaged + other
            if not self.schema_problems:
                for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall():
                    report.problems.append(f"{table} row {rowid} points to a missing {parent} row")
        if self.schema_problems:
            report.warnings.append("runs and blobs were not checked: the file's schema is not runstore's")
            return False
        if self.schema_version < SCHEMA_VERSION:
            report.warnings.append(
                f"schema version {self.schema_version} is older than {SCHEMA_VERSION}: opening the file"
                " writable upgrades it (after a backup copy)")
        return True

    def reindex(self) -> None:
        """Rebuild every index from its table (SQLite's ``REINDEX``): the fix for damaged indexes.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").reindex()
        """
        with self.write() as conn:
            conn.execute("REINDEX")

    def doctor(self, *, deep: bool = False) -> DoctorReport:
        """Check the file and its consistency; never changes or unpickles anything.

        Problems: an altered schema (objects runstore did not make, SPEC §13.2),
        damaged indexes (with the fix), SQLite integrity or foreign-key errors, blobs
        whose chunks are missing or incomplete, artifacts or code packages pointing at
        missing blobs. Open a damaged, altered or older file with
        ``Store(path, diagnose=True)`` to report on it without migrating it. With
        ``deep``, every chunk and blob is re-hashed against its key
        (:meth:`~runstore.store._blobs.BlobsMixin.rehash_problems`).
        Warnings: runs left ``running`` by a dead owner (shown as crashed), a large
        WAL, space ``runstore gc`` could reclaim.

        Example
        -------
        >>> from runstore import Store
        >>> report = Store(":memory:").doctor()
        >>> report.ok, report.facts["runs"]
        (True, 0)
        """
        report = DoctorReport()
        if not self._doctor_structure(report):
            return report
        with self.read() as conn:
            q = lambda sql, *args: conn.execute(sql, args).fetchall()  # noqa: E731
            for table in ("flows", "runs", "tasks", "artifacts", "blobs", "blob_chunks"):
                report.facts[table] = q(f"SELECT count(*) FROM {table}")[0][0]
            report.facts["stored_bytes"] = q("SELECT coalesce(sum(length(data)), 0) FROM blob_chunks")[0][0]
            for key, n_chunks, parts, present in q(
                "SELECT b.blob_key, b.n_chunks, count(p.seq), count(c.chunk_key) FROM blobs b"
                " LEFT JOIN blob_parts p ON p.blob_key = b.blob_key"
                " LEFT JOIN blob_chunks c ON c.chunk_key = p.chunk_key"
                " GROUP BY b.blob_key HAVING count(p.seq) != b.n_chunks OR count(c.chunk_key) != count(p.seq)"
            ):
                report.problems.append(
                    f"blob {key[:16]}… has {present} of {n_chunks} chunks ({parts} listed): its value is lost")
            for pathspec, name, key in q(
                "SELECT f.name || '/' || r.run_number || '/' || s.name || '/' || t.task_id, a.name, a.blob_key"
                " FROM artifacts a JOIN tasks t ON t.task_id = a.task_id JOIN steps s ON s.step_id = t.step_id"
                " JOIN runs r ON r.run_id = t.run_id JOIN flows f ON f.flow_id = r.flow_id"
                " WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob_key = a.blob_key)"
            ):
                report.problems.append(f"artifact {pathspec}.{name} points at missing blob {key[:16]}…")
            for code_id, key in q("SELECT code_id, blob_key FROM code_packages c"
                                  " WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob_key = c.blob_key)"):
                report.problems.append(f"code package {code_id} points at missing blob {key[:16]}…")
            crashed = [
                f"{flow}/{number}" for flow, number, created, beat, host, pid in q(
                    "SELECT f.name, r.run_number, r.created_at, r.heartbeat_at, r.owner_host, r.owner_pid"
                    " FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE r.status = 'running'")
                if effective_status("running", beat, created, host, pid) == "crashed"
            ]
            if crashed:
                report.warnings.append(
                    f"{len(crashed)} run(s) left 'running' by an owner that is gone (shown as crashed): "
                    + ", ".join(crashed[:10]) + (" …" if len(crashed) > 10 else ""))
            cards = q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cards'")  # since v5
            unused = q("SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE"
                       " a.blob_key = b.blob_key) AND NOT EXISTS (SELECT 1 FROM code_packages c"
                       " WHERE c.blob_key = b.blob_key)" + (" AND NOT EXISTS (SELECT 1 FROM cards d"
                       " WHERE d.blob_key = b.blob_key)" if cards else ""))[0][0]
            if unused:
                report.warnings.append(f"{unused} blob(s) no longer used; `runstore gc` reclaims their space")
        report.facts["file_bytes"] = None
        if self.path is not None:
            report.facts["file_bytes"] = self.path.stat().st_size if self.path.exists() else 0
            wal = Path(f"{self.path}-wal")
            report.facts["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
            if report.facts["wal_bytes"] > 64 * 1024 * 1024:
                report.warnings.append(
                    f"the WAL holds {_human(report.facts['wal_bytes'])} not yet in the main file; it is folded"
                    " in when runs end (copy with `runstore backup` meanwhile)")
        report.facts["untrusted_pickles"] = self.untrusted_count()
        if deep:
            report.problems += self.rehash_problems()
        return report


def _open_source(path: Path) -> AdminMixin:
    """Open another store to read from, without ever writing to it.

    A file written by an older runstore is upgraded in a private temporary copy.
    """
    from . import Store

    probe = Store(path, diagnose=True)  # read-only, never migrated; refuses what is not a store
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
        store = Store(target)
        weakref.finalize(store, shutil.rmtree, scratch, True)
        return store
    return Store(path, readonly=True)


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


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_list(table: str, alias: str = "") -> str:
    """``"a", "b", ...`` (or ``x."a", ...``) of runstore's own columns of ``table``."""
    return ", ".join(f"{alias}{_quoted(column)}" for column in _own_columns()[table])


def _checked_uuid(value: object, what: str, where: str) -> str:
    """``value`` when it is a UUID in runstore's canonical text form, else NotAStoreError."""
    try:
        if isinstance(value, str) and str(uuidlib.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise NotAStoreError(f"{where}: {what} {str(value)[:60]!r} is not a UUID; refusing to copy from this file")


class _Tampered(Exception):
    """A chunk or blob whose content does not match its key (reason in args[0])."""


def _raw_chunk(compression: object, data: object, raw_size: int) -> bytes:
    """A chunk's raw bytes, never producing more than ``raw_size`` bytes (+1 to detect excess)."""
    if not isinstance(data, bytes):
        raise _Tampered("its data is not a blob")
    if compression == "none":
        return data
    if compression != "zstd":
        raise _Tampered(f"unknown compression {str(compression)[:20]!r}")
    import zstandard

    # Not ZstdDecompressor.decompress(max_output_size=...): that trusts the size a
    # frame header claims, and a 270 KB frame can claim 3 GiB.
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            while len(out) <= raw_size:
                piece = reader.read(raw_size + 1 - len(out))
                if not piece:
                    break
                out += piece
    except zstandard.ZstdError as exc:
        raise _Tampered(f"it does not decompress ({exc})") from None
    return bytes(out)


class _Transfer:
    """Copies runs with everything they own from one store into another (one transaction).

    Nothing from the source is trusted (SPEC §13.4): rows are read and written with
    runstore's own column lists, every chunk and blob is re-hashed from the very
    bytes that are written, runs that claim to be running arrive crashed, and UUIDs
    and flow names are validated. Any violation raises before the target's
    transaction commits, so a refused transfer writes nothing.
    """

    def __init__(self, source: AdminMixin, target: AdminMixin, *, keep_ids: bool,
                 progress: Progress | None) -> None:
        self.source = source
        self.target = target
        self.keep_ids = keep_ids
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
    def _rows(conn: sqlite3.Connection, table: str, where: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of ``table`` with runstore's own columns (a renamed or extra source column is never read)."""
        names = _own_columns()[table]
        cursor = conn.execute(f"SELECT {_column_list(table)} FROM {_quoted(table)} WHERE {where}", args)
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    @classmethod
    def _row(cls, conn: sqlite3.Connection, table: str, where: str, *args: Any) -> dict[str, Any] | None:
        rows = cls._rows(conn, table, where, *args)
        return rows[0] if rows else None

    @staticmethod
    def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
        cols = [column for column in _own_columns()[table] if column in row]
        return conn.execute(
            f"INSERT INTO {_quoted(table)}({', '.join(map(_quoted, cols))}) VALUES ({_placeholders(len(cols))})",
            [row[c] for c in cols]).lastrowid

    def _copy_run(self, src: sqlite3.Connection, dst: sqlite3.Connection, run_id: int, source_uuid: str) -> None:
        run = self._row(src, "runs", "run_id = ?", run_id)
        assert run is not None
        flow_row = src.execute("SELECT name FROM flows WHERE flow_id = ?", (run["flow_id"],)).fetchone()
        flow, number = (flow_row[0] if flow_row else None), run["run_number"]
        where = self.source.where
        if not isinstance(flow, str) or not _RUN_PATHSPEC.match(flow) or "/" in flow:
            raise NotAStoreError(f"{where}: run {run_id} has an invalid flow name {str(flow)[:60]!r};"
                                 " refusing to copy from this file")
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
        if run["status"] == "running":
            # The run cannot go on here: its owner writes (if at all) to the source file.
            # It arrives crashed, whatever heartbeat it claims (a heartbeat in 2100
            # would otherwise keep it "running" and gc waiting for ever).
            stamp = now()
            run["heartbeat_at"] = min(_as_time(run["heartbeat_at"], run["created_at"]), stamp) - 2 * STALE_AFTER
            run["owner_host"] = run["owner_pid"] = None
        dst.execute("INSERT OR IGNORE INTO flows(name, created_at) VALUES (?, ?)", (flow, now()))
        flow_id = dst.execute("SELECT flow_id FROM flows WHERE name = ?", (flow,)).fetchone()[0]
        taken = dst.execute("SELECT 1 FROM runs WHERE flow_id = ? AND run_number = ?", (flow_id, number)).fetchone()
        if taken:
            number = dst.execute("UPDATE flows SET last_run_number = last_run_number + 1 WHERE flow_id = ?"
                                 " RETURNING last_run_number", (flow_id,)).fetchone()[0]
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
        for row in self._rows(src, "artifacts", tasks, run_id):
            self._copy_blob(src, dst, row["blob_key"])
            del row["artifact_id"]
            self._insert(dst, "artifacts", dict(row, task_id=self.task_map[row["task_id"]]))
        for row in self._rows(src, "metadata", tasks, run_id):
            if not self.keep_ids and row["name"] == "origin-task-id" and str(row["value"]).isdigit():
                row["value"] = str(self.task_map.get(int(row["value"]), row["value"]))
            if not self.keep_ids and row["name"] == "origin-run-id" and str(row["value"]).isdigit():
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

    def _copy_code(self, src: sqlite3.Connection, dst: sqlite3.Connection, code_id: int) -> int:
        if code_id not in self.code_map:
            code = self._row(src, "code_packages", "code_id = ?", code_id)
            if code is None:
                raise NotAStoreError(f"{self.source.where}: the code package of {self.pathspec} is missing;"
                                     " run `runstore doctor` on it")
            self._copy_blob(src, dst, code["blob_key"], what="code package")
            dst.execute("INSERT OR IGNORE INTO code_packages(blob_key, script_name, created_at) VALUES (?, ?, ?)",
                        (code["blob_key"], code["script_name"], code["created_at"]))
            self.code_map[code_id] = dst.execute(
                "SELECT code_id FROM code_packages WHERE blob_key = ?", (code["blob_key"],)).fetchone()[0]
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
        have its size, and the chunks in order must hash to the blob key and add up
        to the blob's size. The target's transaction is open, so raising
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
        digest, total, stamp = hashlib.sha256(), 0, now()
        for _, chunk_key in parts:
            chunk = src.execute("SELECT compression, raw_size, data FROM blob_chunks WHERE chunk_key = ?",
                                (chunk_key,)).fetchone()
            if chunk is None:
                raise NotAStoreError(f"{self.source.where}: a chunk of blob {str(key)[:16]}… of {self.pathspec}"
                                     " is missing; run `runstore doctor` on it")
            compression, raw_size, data = chunk
            if not isinstance(raw_size, int) or not 0 <= raw_size <= CHUNK_SIZE:
                raise _Tampered(f"a chunk claims {str(raw_size)[:20]} bytes, more than a chunk holds")
            raw = _raw_chunk(compression, data, raw_size)
            if len(raw) != raw_size or hashlib.sha256(raw).hexdigest() != chunk_key:
                raise _Tampered(f"chunk {str(chunk_key)[:16]}… does not hash to its key")
            digest.update(raw)
            total += raw_size
            del raw
            if dst.execute("SELECT 1 FROM blob_chunks WHERE chunk_key = ?", (chunk_key,)).fetchone() is None:
                dst.execute("INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
                            " VALUES (?, ?, ?, ?, ?)", (chunk_key, compression, raw_size, stamp, data))
                self.report.chunks += 1
                self.report.bytes += len(data)
        if total != blob["size"] or digest.hexdigest() != key:
            raise _Tampered(f"its {len(parts)} chunks ({total} bytes) do not hash to it")
        self._insert(dst, "blobs", blob)
        dst.executemany("INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, ?, ?)",
                        [(key, seq, chunk_key) for seq, chunk_key in parts])
        self.report.blobs += 1


def _as_time(*candidates: object) -> float:
    """The first candidate that is a number, as a float (0.0 when none is)."""
    for value in candidates:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.0
