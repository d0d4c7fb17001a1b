"""Deleting runs and collecting what nothing uses any more: delete, gc, vacuum.

Each is one write transaction, so a crash or an error in the middle leaves the
store exactly as it was.

The garbage-collection rule (``gc``)
------------------------------------
A blob is garbage when no artifact and no code package still in use references it.
A chunk is garbage when no blob references it. Values that a *live* run (status
``running`` and not crashed, see :func:`~runstore.store._reads.effective_status`) is
writing right now may not be referenced yet: their chunks are written in short
transactions before the artifact rows that use them. So gc only collects a blob,
code package or chunk whose last write or re-use (``created_at`` / ``touched_at``)
is older than the start of the oldest live run; when no run is live everything
unreferenced goes. Blobs that another run still uses are never touched.

Re-use is a reservation: a task that finds a large chunk of its value already stored
(dedup; it does not keep those bytes) touches it at once (``_blobs._reserve_chunk``),
so the chunk, and the old blob made of it, are younger than its live run and stay until
the task's commit references them. Small chunks are kept in the task's memory and
written again at the commit if gc took them. Should a chunk go anyway (gc did not see
the run as live), the commit raises :class:`~runstore.errors.ValueVanished` and the
runtime fails that attempt cleanly; ``@retry`` saves the value again
(docs/reliability.md, tests/test_reliability_concurrency.py).

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> _ = store.put_value("nobody uses me")
>>> gc(store, dry_run=True).summary()
'would free 16 B: 1 blobs, 1 chunks, 0 code packages'
>>> delete_runs(store, ["F"])
Traceback (most recent call last):
...
runstore.errors.NotFound: Flow('F') has no runs in :memory:
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Iterable

from ..errors import StoreError, StoreReadOnlyError
from ..util import now
from ._db import Database, Progress, batches, human_size, placeholders
from ._reads import effective_status, list_run_ids

__all__ = ["GcReport", "delete_runs", "gc", "vacuum", "live_since"]


@dataclass
class GcReport:
    """What ``Store.gc`` removed (or would remove, with ``dry_run``).

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
        text = (f"{verb} {human_size(self.bytes_freed)}: {self.blobs} blobs, {self.chunks} chunks, "
                f"{self.code_packages} code packages")
        if self.file_before is not None and self.file_after is not None and not self.dry_run:
            text += f"; file {human_size(self.file_before)} -> {human_size(self.file_after)}"
        return text


def delete_runs(db: Database, pathspecs: Iterable[str], *, force: bool = False) -> list[str]:
    """Delete runs (``Flow/N``) or every run of flows (``Flow``) with all they own.

    ``Store.delete_runs`` documents it, with an example.
    """
    with db.write() as conn:
        run_ids = list_run_ids(conn, pathspecs, db.where)
        for batch in batches([] if force else run_ids):
            for flow, number, created, beat, host, pid in conn.execute(
                f"SELECT f.name, r.run_number, r.created_at, r.heartbeat_at, r.owner_host, r.owner_pid"
                f" FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE r.status = 'running'"
                f" AND r.run_id IN ({placeholders(len(batch))})", batch):
                if effective_status("running", beat, created, host, pid) == "running":
                    raise StoreError(f"{flow}/{number} is still running (process {pid} on {host});"
                                     " delete it when it has ended (or with --force if it is stuck)")
        deleted = []
        for batch in batches(run_ids):
            marks = placeholders(len(batch))
            deleted += [f"{flow}/{number}" for flow, number in conn.execute(
                f"SELECT f.name, r.run_number FROM runs r JOIN flows f ON f.flow_id = r.flow_id"
                f" WHERE r.run_id IN ({marks}) ORDER BY r.run_id", batch)]
            # A tombstone per run: a later merge of a file still holding it skips it.
            conn.execute(
                f"INSERT OR REPLACE INTO deleted_runs(uuid, pathspec, deleted_at)"
                f" SELECT r.uuid, f.name || '/' || r.run_number, ? FROM runs r"
                f" JOIN flows f ON f.flow_id = r.flow_id WHERE r.run_id IN ({marks})", [now(), *batch])
            conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", batch)
    return deleted


def live_since(conn: sqlite3.Connection) -> float | None:
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


def gc(db: Database, *, dry_run: bool = False, progress: Progress | None = None) -> GcReport:
    """Drop blobs, chunks and code packages nothing references; reclaim the space.

    ``Store.gc`` documents it, with an example.
    """
    report = GcReport(dry_run=dry_run, file_before=_file_size(db))

    class _Rollback(Exception):
        pass

    try:
        with db.write() as conn:
            live = live_since(conn)
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
            for batch in batches(dead_blobs):
                conn.execute(f"DELETE FROM blobs WHERE blob_key IN ({placeholders(len(batch))})", batch)
                done += len(batch)
                if progress:
                    progress(done, len(dead_blobs))
            report.blobs = len(dead_blobs)
            dead_chunks = conn.execute(
                "SELECT chunk_id, length(data) FROM blob_chunks k WHERE touched_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM blob_parts p WHERE p.chunk_key = k.chunk_key)",
                (cutoff,)).fetchall()
            for batch in batches(dead_chunks):
                conn.execute(f"DELETE FROM blob_chunks WHERE chunk_id IN ({placeholders(len(batch))})",
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
    if not dry_run and (report.blobs or report.chunks or report.code_packages or _mostly_free(db)):
        vacuum(db)
    report.file_after = _file_size(db)
    return report


def _mostly_free(db: Database) -> bool:
    """Whether a quarter of the file is free pages (e.g. the copies migration 8 dropped)."""
    with db.read() as conn:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return bool(pages) and free * 4 >= pages


def vacuum(db: Database) -> None:
    """Compact the file (``VACUUM``) and fold the WAL in, so freed pages go back to the disk.

    ``Store.vacuum`` documents it, with an example.
    """
    if db.readonly:
        raise StoreReadOnlyError(f"{db.where} was opened read-only")
    with db.read() as conn:
        conn.execute("VACUUM")
    db.checkpoint()


def _file_size(db: Database) -> int | None:
    if db.path is None:
        return None
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(str(db.path) + suffix).st_size
        except OSError:
            pass
    return total
