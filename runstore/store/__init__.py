"""The store: one SQLite file holding flows, runs, tasks, tags, metadata and blobs.

``Store`` is one facade over modules of plain functions, one per concern, each
taking the connection (``sqlite3.Connection``) of a transaction or the
:class:`~runstore.store._db.Database` that opens them:

* ``_db``: the connection policy, transactions, schema upgrades, backup (``Database``);
* ``_schemacheck``: is every object in a file one runstore made;
* ``_reads``: every read (``find_*`` one row or None, ``list_*`` many);
* ``_writes``: runs, tasks, attempts, logs, metadata, code packages, tag edits, clones;
* ``_blobs``: values as content-addressed chunked blobs, verified when read;
* ``_trust``: whose pickles this user loads;
* ``_deploy``: production deployments;
* ``_sql``, ``_gc``, ``_transfer``, ``_doctor``: read-only SQL, delete/gc/vacuum,
  export/merge, doctor.

Imports point one way: this package imports its modules, never the reverse. A
method's owner is one hop away: ``Store.find_run`` calls ``_reads.find_run``. This
package is the only part of runstore that imports ``sqlite3``.

Example
-------
>>> store = Store(":memory:")
>>> run = store.create_run("HelloFlow", user="anne")
>>> store.find_run("HelloFlow")["run_number"], store.sql("SELECT count(*) FROM runs").rows
(1, [(1,)])
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Concatenate, ContextManager, Iterable, Mapping, ParamSpec, Sequence, TypeVar

from ..errors import StoreError
from . import _blobs, _deploy, _executors, _reads, _trust, _writes
from ._blobs import PreparedValue, StoredValue
from ._cards import CardRow
from ._cards import task_cards as _task_cards
from ._cards import upsert_card as _upsert_card
from ._db import BUSY_TIMEOUT, Database, Progress, Row
from ._deploy import Deployment
from ._reads import effective_status, param_texts
from ._writes import RunRecord

if TYPE_CHECKING:
    from ._doctor import DoctorReport
    from ._gc import GcReport
    from ._sql import SqlResult, SqlStream
    from ._transfer import TransferReport

# The admin modules (read-only SQL, delete/gc, export/merge, doctor) are imported by the
# methods that use them: a run never calls them, so `python flow.py run` does not load them
# (tests/test_layering.py::test_a_flow_run_loads_only_what_it_uses).
_LAZY = {"SqlResult": "_sql", "SqlStream": "_sql", "GcReport": "_gc", "TransferReport": "_transfer",
         "DoctorReport": "_doctor"}


def __getattr__(name: str) -> Any:
    """The admin modules' public dataclasses, imported on first use (``from runstore.store import GcReport``)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Store", "CardRow", "Deployment", "StoredValue", "PreparedValue", "RunRecord", "discover_path", "effective_status",
           "param_texts", "SqlResult", "SqlStream", "GcReport", "TransferReport", "DoctorReport"]

DEFAULT_NAME = "runstore.db"

_P = ParamSpec("_P")
_T = TypeVar("_T")


def discover_path(db: str | os.PathLike[str] | None = None, *, cwd: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """Where the store is, following SPEC §2; returns ``(path, found)``.

    Order: ``db`` (the ``--db`` option) > ``RUNSTORE_DB`` > the first ``runstore.db``
    walking up from ``cwd`` > ``./runstore.db`` (``found`` is False: it will be created).

    Example
    -------
    >>> import os, tempfile
    >>> os.environ.pop("RUNSTORE_DB", None) and None
    >>> path, found = discover_path(cwd=tempfile.mkdtemp())
    >>> path.name, found
    ('runstore.db', False)
    """
    if db is not None and str(db) != "":
        return (Path(db) if str(db) == ":memory:" else Path(db).expanduser().resolve()), True
    env = os.environ.get("RUNSTORE_DB")
    if env:
        return Path(env).expanduser().resolve(), True
    start = Path(cwd or os.getcwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / DEFAULT_NAME
        if candidate.is_file():
            return candidate, True
    return start / DEFAULT_NAME, False


class Store(Database):
    """A runstore database: a file path, ``":memory:"``, or discovered (SPEC §2).

    The one object users and the runtime hold. It *is* the connection owner
    (:class:`~runstore.store._db.Database`: connections, transactions, backup) and
    every other method is a short call into the module that owns it.

    Parameters
    ----------
    path : str or Path, optional
        The file; ``":memory:"`` for an in-memory store with every feature. Without
        it: ``RUNSTORE_DB``, then the nearest ``runstore.db`` above the current
        directory, else ``./runstore.db`` is created (said once on stderr).
    readonly : bool
        Open read-only: reads work, writes raise ``StoreReadOnlyError``.
    busy_timeout : float
        Seconds a write waits for another process's write lock before raising
        ``StoreBusyError`` (default 60).
    diagnose : bool
        Open a file whose schema was altered, or an older one, read-only and only to
        report on it with :meth:`doctor` (what ``runstore doctor`` does); never migrates.

    Example
    -------
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> store.create_run("HelloFlow", user="anne").pathspec
    'HelloFlow/1'
    >>> store.describe()
    'sqlite@:memory:'
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, readonly: bool = False,
                 create: bool = True, busy_timeout: float = BUSY_TIMEOUT, diagnose: bool = False) -> None:
        if path is None:
            found_path, found = discover_path()
            if not found and create and not readonly:
                print(f"runstore: creating a new store at {found_path}", file=sys.stderr)
            path = found_path
        super().__init__(path, readonly=readonly, create=create, busy_timeout=busy_timeout, diagnose=diagnose)

    def describe(self) -> str:
        """``sqlite@<path>``: how ``get_metadata()`` names this store.

        Example
        -------
        >>> Store(":memory:").describe()
        'sqlite@:memory:'
        """
        return f"sqlite@{self.where}"

    # ------------------------------------------------------------ cards (store/_cards.py)

    #: Largest card HTML read back (a hostile file cannot make a reader allocate more).
    CARD_MAX_BYTES = 64 << 20

    def save_card(self, task_id: int, seq: int, *, card_id: str | None, type: str, attempt: int,
                  status: str, html: str, error: str | None = None) -> str:
        """Store the HTML of card ``seq`` of ``task_id`` (replacing it); returns its blob key.

        The HTML is a content-addressed ``bytes`` blob, so an identical card is stored
        once. One short write transaction; see :mod:`runstore.store._cards`.
        """
        from ..util import now

        prepared = self.prepare_value(html.encode("utf-8"))
        with self.write() as conn:
            self.commit_values(conn, [prepared])
            _upsert_card(conn, CardRow(task_id, seq, card_id, type, attempt, status, prepared.stored.blob_key,
                                       error, now()))
        return prepared.stored.blob_key

    def task_cards(self, task_id: int) -> list[CardRow]:
        """The cards of a task, in the order of its step's ``@card`` decorators."""
        with self.read() as conn:
            return _task_cards(conn, task_id)

    def card_html(self, blob_key: str) -> str:
        """A card's HTML, verified against its key (never unpickles: it is a ``bytes`` blob)."""
        data = self.load_value(blob_key, "bytes", max_size=self.CARD_MAX_BYTES)
        return bytes(data).decode("utf-8", errors="replace")

    def prepare_encoded(self, stored: StoredValue, chunks: Iterable[tuple[str, bytes]]) -> PreparedValue:
        """Like :meth:`prepare_value`, for a value encoded elsewhere; every hash is checked.

        See :func:`runstore.store._executors.prepare_encoded` (remote executors' results).
        """
        return _executors.prepare_encoded(self, stored, chunks)

    def __repr__(self) -> str:
        return f"Store({self.where!r}{', readonly=True' if self.readonly else ''})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self.path is None:
            raise StoreError("an in-memory store cannot be sent to another process")
        return (Store, (str(self.path),), None, None, None) if not self.readonly else (
            _open_readonly, (str(self.path),))

    def _read(self, query: Callable[Concatenate[sqlite3.Connection, _P], _T], *args: _P.args,
              **kwargs: _P.kwargs) -> _T:
        """Run one of ``_reads``' functions on this thread's connection."""
        with self.read() as conn:
            return query(conn, *args, **kwargs)

    # ------------------------------------------------------------ runs, tasks and attempts (_writes.py)

    def create_run(
        self,
        flow: str,
        *,
        user: str | None,
        namespace: str | None = None,
        system_tags: Iterable[str] = (),
        user_tags: Iterable[str] = (),
        invocation: str = "run",
        origin_run_id: int | None = None,
        origin_pathspec: str | None = None,
        code_id: int | None = None,
        end_step: str = "end",
        owner_pid: int | None = None,
    ) -> RunRecord:
        """Allocate the next run number of ``flow`` and record a running run.

        The number comes from a per-flow counter incremented inside a
        ``BEGIN IMMEDIATE`` transaction: unique and increasing across processes,
        never reused after a delete. The namespace tag (``user:<name>`` unless given)
        is stored as a system tag; ``user_tags`` with a reserved prefix raise
        ``TaggingError`` before anything is written.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> [store.create_run("F", user="anne").run_number for _ in range(3)]
        [1, 2, 3]
        """
        with self.write() as conn:
            return _writes.create_run(
                conn, flow, user=user, namespace=namespace, system_tags=system_tags, user_tags=user_tags,
                invocation=invocation, origin_run_id=origin_run_id, origin_pathspec=origin_pathspec, code_id=code_id,
                end_step=end_step, owner_pid=owner_pid)

    def heartbeat(self, run_id: int) -> None:
        """Mark the run's owner as alive (the scheduler calls this every few seconds)."""
        with self.write() as conn:
            _writes.heartbeat(conn, run_id)

    def finish_run(self, run_id: int, status: str) -> None:
        """Record the run's final status and fold the WAL into the main file.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> store.finish_run(run.run_id, "succeeded")
        """
        with self.write() as conn:
            _writes.finish_run(conn, run_id, status)
        self.checkpoint()

    def set_run_code(self, run_id: int, code_id: int) -> None:
        """Attach a code package (see :meth:`add_code_package`) to a run."""
        with self.write() as conn:
            _writes.set_run_code(conn, run_id, code_id)

    def add_code_package(self, tarball: bytes, script_name: str) -> int:
        """Store a code archive once per distinct content and return its ``code_id``.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> store.add_code_package(b"tar", "flow.py") == store.add_code_package(b"tar", "flow.py")
        True
        """
        prepared = _blobs.prepare_value(self, tarball)
        with self.write() as conn:
            return _writes.add_code_package(conn, prepared, script_name, self.where)

    def create_task(
        self,
        run_id: int,
        step: str,
        *,
        foreach_path: str | None = None,
        foreach_index: int | None = None,
        origin_task_id: int | None = None,
        origin_pathspec: str | None = None,
    ) -> int:
        """Create a pending task of ``step`` (and the step, on first use); returns the task id.

        Task ids are unique in the whole store and never reused.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> a, b = store.create_task(run.run_id, "start"), store.create_task(run.run_id, "end")
        >>> b > a
        True
        """
        return self.create_tasks(run_id, step, [{"foreach_path": foreach_path, "foreach_index": foreach_index,
                                                 "origin_task_id": origin_task_id, "origin_pathspec": origin_pathspec}])[0]

    def create_tasks(self, run_id: int, step: str, tasks: Iterable[Mapping[str, Any]]) -> list[int]:
        """Create many pending tasks of one step in one transaction (foreach fan-out).

        Each item may give ``foreach_path``, ``foreach_index``, ``origin_task_id`` and
        ``origin_pathspec``. Returns the task ids in the order given.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> ids = store.create_tasks(run.run_id, "each", [{"foreach_index": i} for i in range(3)])
        >>> ids == sorted(ids) and len(ids) == 3
        True
        """
        with self.write() as conn:
            return _writes.create_tasks(conn, run_id, step, tasks)

    def start_attempt(self, task_id: int, attempt: int, pid: int | None = None) -> None:
        """Record that ``attempt`` of a task has started (in process ``pid``)."""
        with self.write() as conn:
            _writes.start_attempt(conn, task_id, attempt, pid, where=self.where)

    def finish_attempt(
        self,
        task_id: int,
        attempt: int,
        status: str,
        *,
        artifacts: Mapping[str, PreparedValue | StoredValue] = {},
        stdout: str = "",
        stderr: str = "",
        exception: tuple[str, str, str] | None = None,
        metadata: Mapping[str, Any] = {},
    ) -> None:
        """Commit an attempt's outcome, artifacts, logs and metadata in one transaction.

        ``status`` is ``succeeded``, ``failed``, ``caught`` (failed, handled by
        ``@catch``) or ``interrupted`` (Ctrl-C or SIGTERM stopped it). ``exception`` is ``(type, message, traceback)``. Nothing of the
        attempt is visible to readers until this commits. An artifact given as a
        reference read from a task of the same run (``list_artifact_refs``) is bound to
        that task's row, not stored again (docs/storage.md); anything else gets a row.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne").run_id
        >>> a, b = store.create_task(run, "start"), store.create_task(run, "end")
        >>> store.start_attempt(a, 0); store.finish_attempt(a, 0, "succeeded", artifacts={"x": store.put_value(1)})
        >>> store.start_attempt(b, 0); store.finish_attempt(b, 0, "succeeded", artifacts=store.list_artifact_refs(a))
        >>> store.find_artifact(b, 0, "x")["artifact_id"] == store.find_artifact(a, 0, "x")["artifact_id"]
        True
        """
        with self.write() as conn:
            _writes.finish_attempt(conn, task_id, attempt, status, artifacts=artifacts, stdout=stdout, stderr=stderr,
                                   exception=exception, metadata=metadata, where=self.where)

    def add_metadata(self, task_id: int, attempt: int, metadata: Mapping[str, Any]) -> None:
        """Record metadata of a task attempt (strings as is, anything else as JSON).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> store.add_metadata(store.create_task(run.run_id, "start"), 0, {"user": "anne"})
        """
        with self.write() as conn:
            _writes.insert_metadata(conn, task_id, attempt, metadata)

    def abandon_attempt(self, task_id: int, attempt: int, exception: tuple[str, str, str],
                        status: str = "failed") -> None:
        """Mark an attempt failed whose process died before it could say so itself.

        ``status="interrupted"``: the run was stopped (Ctrl-C, SIGTERM) while it ran.
        Safe whether or not the attempt had started (its row is created if missing);
        an attempt already finished is left as it is.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> task = store.create_task(run.run_id, "start")
        >>> store.abandon_attempt(task, 0, ("builtins.KeyboardInterrupt", "interrupted", ""), "interrupted")
        >>> store.find_attempt(task)["status"]
        'interrupted'
        """
        with self.write() as conn:
            _writes.abandon_attempt(conn, task_id, attempt, exception, status)

    def clone_task(self, task_id: int, origin_task_id: int, origin_pathspec: str,
                   metadata: Mapping[str, Any] = {}, *, artifacts: Mapping[str, StoredValue] | None = None,
                   inputs: Sequence[int] = ()) -> str:
        """Make pending task ``task_id`` a clone of ``origin_task_id``; returns the clone's status.

        The origin's latest attempt becomes attempt 0 of the clone: same status,
        exception and logs; its artifacts point to the same blobs, bound by reference
        to the rows of ``inputs`` (the clone's input tasks in its own run) that hold the
        same value under the same name, else copied as the clone's own rows
        (``artifacts`` replaces some of them by other references, e.g. a new
        ``_graph_info``). ``metadata`` is recorded on the clone's attempt.

        Raises
        ------
        NotFound
            When either task does not exist.
        """
        with self.write() as conn:
            return _writes.clone_task(conn, task_id, origin_task_id, origin_pathspec, metadata, artifacts=artifacts,
                                      inputs=inputs, where=self.where)

    def update_run_tags(
        self, run_id: int, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> list[tuple[str, bool]]:
        """Remove then add user tags of a run in one write transaction; return its tags.

        Read, check and write happen under one ``BEGIN IMMEDIATE`` lock, so edits from
        several processes at once are serialized and none is lost. System tags cannot
        be removed; adding a tag that is already a system tag changes nothing; a tag
        with a reserved prefix (``user:``, ``production:`` …) cannot be added (it can
        be removed, should a hand-edited file carry one). The run's ``created_at``
        (and so its place in every listing) never changes.

        Raises
        ------
        TaggingError
            Removing a system tag, adding a reserved-prefix tag, or growing the user
            tags beyond 50.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne", user_tags=["a"])
        >>> store.update_run_tags(run.run_id, add=["b"], remove=["a"])
        [('b', False), ('user:anne', True)]
        """
        with self.write() as conn:
            return _writes.update_run_tags(conn, run_id, add, remove, where=self.where)

    # ------------------------------------------------------------ values (_blobs.py) and trust (_trust.py)

    def prepare_value(self, value: Any) -> PreparedValue:
        """Encode ``value`` and write its large chunks; the blob is not visible yet.

        Pass the result to :meth:`commit_values` (or to the runtime's attempt
        commit) inside a write transaction to make it visible atomically with the
        rows that use it. Memory stays bounded by about two chunks plus the value.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> prepared = store.prepare_value({"a": 1})
        >>> with store.write() as conn:
        ...     store.commit_values(conn, [prepared])
        >>> store.load_value(prepared.stored.blob_key, "json")
        {'a': 1}
        """
        return _blobs.prepare_value(self, value)

    def commit_values(self, conn: sqlite3.Connection, prepared: Iterable[PreparedValue]) -> None:
        """Make prepared values visible, inside the caller's write transaction."""
        _blobs.commit_values(conn, prepared, self.where)

    def put_value(self, value: Any) -> StoredValue:
        """Store ``value`` as a blob (once per distinct encoding) and return its reference.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> a = store.put_value(list(range(10)))
        >>> b = store.put_value(list(range(10)))
        >>> a.blob_key == b.blob_key
        True
        """
        return _blobs.put_value(self, value)

    def put_values(self, values: Iterable[Any]) -> list[StoredValue]:
        """Store several values in one transaction; returns their references in order.

        Example
        -------
        >>> from runstore import Store
        >>> refs = Store(":memory:").put_values(["a", "b", "a"])
        >>> refs[0].blob_key == refs[2].blob_key
        True
        """
        prepared = [_blobs.prepare_value(self, v) for v in values]
        with self.write() as conn:
            _blobs.commit_values(conn, prepared, self.where)
        return [p.stored for p in prepared]

    def value_size(self, blob_key: str) -> int:
        """The size of a stored value's encoding, as its chunks bound it.

        Unlike the ``size`` an artifact row records, this is checked against the
        chunk rows (each at most 16 MiB, adding up to it), so it is what previews
        use to decide whether a value is small enough to show.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> store.value_size(store.put_value(b"hello").blob_key)
        5
        """
        return _blobs.value_size(self, blob_key)

    def open_blob(self, blob_key: str) -> IO[bytes]:
        """A binary file over a stored blob's encoded bytes (no decoding, no trust needed).

        Every stored byte is read once and hashed as it is handed out; reading to
        the end raises :class:`~runstore.errors.UntrustedArtifact` if the bytes do not
        match the key, so act on them only after reading them all.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> ref = store.put_value(b"hello")
        >>> store.open_blob(ref.blob_key).read()
        b'hello'
        """
        return _blobs.open_blob(self, blob_key)

    def load_value(self, blob_key: str, encoding: str, *, check_chunks: bool = False,
                   max_size: int | None = None) -> Any:
        """Decode a stored value. Pickles load only when :meth:`is_trusted`.

        The value is returned only when the bytes decoded hash to ``blob_key``.
        ``check_chunks`` also checks every chunk against its own key (always done
        for pickles; asked for by code that runs what it loads, like ``trigger``).
        ``max_size`` refuses a value whose verified size is larger (previews).

        Raises
        ------
        UntrustedArtifact
            For a pickled value this user neither wrote nor trusted, or any value
            whose bytes do not match its key (the file was altered).
        StoreError
            When the chunk rows break the bounds (sizes not adding up, a chunk
            larger than 16 MiB, a compressed chunk that inflates beyond its size).
        CodecError
            When the value cannot be decoded, or is larger than ``max_size``.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> ref = store.put_value((1, "two"))
        >>> store.load_value(ref.blob_key, ref.encoding)
        (1, 'two')
        """
        return _blobs.load_value(self, blob_key, encoding, check_chunks=check_chunks, max_size=max_size)

    def is_trusted(self, blob_key: str) -> bool:
        """Whether this user wrote or trusted the blob (only matters for pickles).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> store.is_trusted(store.put_value(object()).blob_key)
        True
        """
        return _trust.is_trusted(self, blob_key)

    def trust_all(self) -> int:
        """Record this user's trust for every pickled value in the store; returns how many.

        Afterwards :meth:`load_value` loads them.
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
        return _trust.trust_all(self)

    def untrusted_count(self) -> int:
        """How many distinct pickled values this user would be refused (never unpickles).

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").untrusted_count()
        0
        """
        return _trust.untrusted_count(self)

    def rehash_problems(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Re-hash every chunk and every blob; one line per mismatch (``runstore doctor --deep``).

        Streams one chunk at a time (memory stays near one 16 MiB chunk), checks each
        chunk's bounds and that its bytes hash to its key, then each blob of several
        chunks against its own key (a one-chunk blob *is* its chunk). Every line names
        the chunk or blob and the runs' artifacts or code packages that use it. Never
        decodes a value.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.put_value(list(range(1000)))
        >>> store.rehash_problems()
        []
        """
        return _blobs.rehash_problems(self, progress)

    # ------------------------------------------------------------ reads (_reads.py): find_* one row or None, list_* many

    def find_flow(self, name: str) -> Row | None:
        """The ``flows`` row of ``name`` (``flow_id``, ``name``, ``created_at``), or None.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne")
        >>> store.find_flow("HelloFlow")["name"]
        'HelloFlow'
        """
        return self._read(_reads.find_flow, name)

    def list_flows(self, namespace: str | None = None) -> list[Row]:
        """Flows with at least one run (in ``namespace`` when given), newest first.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("A", user="anne"); _ = store.create_run("B", user="will")
        >>> [f["name"] for f in store.list_flows("user:anne")]
        ['A']
        """
        return self._read(_reads.list_flows, namespace)

    def flow_in_namespace(self, flow_id: int, namespace: str) -> bool:
        """Whether the flow has at least one run carrying the tag ``namespace``.

        A reserved namespace (``user:…``, ``production:…``) matches system tags only.
        """
        return self._read(_reads.flow_in_namespace, flow_id, namespace)

    def latest_namespace(self, flow_id: int) -> str | None:
        """The namespace of the flow's newest run (to suggest in error messages)."""
        return self._read(_reads.latest_namespace, flow_id)

    def find_run(self, flow: str, run_number: int | None = None) -> Row | None:
        """Run ``run_number`` of ``flow`` (None: its newest run), whoever made it; or None.

        The row has the run's columns, ``flow`` and ``tags_json`` = ``[[tag, is_system], …]``.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne"); _ = store.create_run("HelloFlow", user="will")
        >>> store.find_run("HelloFlow", 1)["user_name"], store.find_run("HelloFlow")["run_number"]
        ('anne', 2)
        """
        return self._read(_reads.find_run, flow, run_number)

    def find_run_by_id(self, run_id: int) -> Row | None:
        """One run by its internal ``run_id`` (same columns as :meth:`find_run`), or None.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> store.find_run_by_id(store.create_run("F", user="anne").run_id)["flow"]
        'F'
        """
        return self._read(_reads.find_run_by_id, run_id)

    def find_origin_run(self, flow: str, user: str | None) -> Row | None:
        """The newest run of ``flow`` that ``user`` started with ``python flow.py run``: resume's default origin.

        Resumes never become the default origin, successful or not.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> first = store.create_run("F", user="anne")
        >>> _ = store.create_run("F", user="anne", invocation="resume")
        >>> store.find_origin_run("F", "anne")["run_number"], store.find_origin_run("F", "will")
        (1, None)
        """
        return self._read(_reads.find_origin_run, flow, user)

    def run_exists(self, flow: str, run_number: int) -> bool:
        """Whether ``flow/run_number`` exists (no namespace involved)."""
        return self._read(_reads.run_exists, flow, run_number)

    def run_tags(self, run_id: int) -> list[tuple[str, bool]]:
        """``[(tag, is_system), …]`` of a run, sorted by tag.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne", user_tags=["x"])
        >>> store.run_tags(run.run_id)
        [('user:anne', True), ('x', False)]
        """
        return self._read(_reads.list_run_tags, run_id)

    def run_has_tag(self, run_id: int, tag: str) -> bool:
        """Whether the run carries ``tag`` (a primary-key lookup); a reserved tag as a system tag.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> store.run_has_tag(run.run_id, "user:anne"), store.run_has_tag(run.run_id, "user:will")
        (True, False)
        """
        return self._read(_reads.run_has_tag, run_id, tag)

    def list_runs(
        self,
        flow_id: int,
        *,
        namespace: str | None = None,
        tags: Sequence[str] = (),
        successful: bool = False,
        before: float | None = None,
        limit: int = 100,
        param_values: Mapping[str, Any] | None = None,
    ) -> list[Row]:
        """A page of a flow's runs, newest first, carrying ``namespace`` and all ``tags``.

        A reserved tag or namespace (``user:…``, ``production:…``, SPEC §13) matches
        system tags only, so a hand-edited user tag cannot put a run into a
        production namespace. ``successful`` keeps only runs whose status is ``succeeded``. ``before``
        continues a listing: runs created at or before that time (the caller drops
        the ones it has already seen at exactly that time). ``param_values`` keeps
        only runs whose parameters equal these values as JSON (``Flow.runs(where=)``;
        ``_reads.param_texts`` says what matches; ``ParameterError`` for a value JSON
        cannot hold).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> for _ in range(3):
        ...     _ = store.create_run("F", user="anne")
        >>> flow_id = store.find_flow("F")["flow_id"]
        >>> [r["run_number"] for r in store.list_runs(flow_id, namespace="user:anne")]
        [3, 2, 1]
        """
        return self._read(_reads.list_runs, flow_id, namespace=namespace, tags=tags, successful=successful,
                          before=before, limit=limit, param_values=param_values)

    def list_steps(self, run_id: int) -> list[Row]:
        """A run's steps (``step_id``, ``name``, ``created_at``), newest first."""
        return self._read(_reads.list_steps, run_id)

    def find_step(self, run_id: int, name: str) -> Row | None:
        """One step of a run by name, or None."""
        return self._read(_reads.find_step, run_id, name)

    def step_finished_at(self, step_id: int) -> float | None:
        """When the step's last task finished; None while any task has not finished."""
        return self._read(_reads.step_finished_at, step_id)

    def list_tasks(self, step_id: int, *, limit: int | None = None) -> list[Row]:
        """A step's tasks, newest first (``done_attempt`` = latest finished attempt)."""
        return self._read(_reads.list_tasks, step_id, limit=limit)

    def list_run_tasks(self, run_id: int, step: str | None = None, task_id: int | None = None) -> list[Row]:
        """Tasks of a run (optionally of one step / one task), oldest first.

        Each row: ``task_id``, ``step``, ``status``, ``attempt``, ``foreach_index``, ``foreach_path``.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> _ = store.create_task(run.run_id, "start")
        >>> [(t["step"], t["status"]) for t in store.list_run_tasks(run.run_id)]
        [('start', 'pending')]
        """
        return self._read(_reads.list_run_tasks, run_id, step, task_id)

    def find_task(self, run_id: int, step: str, task_id: int) -> Row | None:
        """One task, checked to belong to ``run_id`` and ``step``; or None."""
        return self._read(_reads.find_task, run_id, step, task_id)

    def find_attempt(self, task_id: int, attempt: int | None = None, *, logs: bool = False) -> Row | None:
        """An attempt's outcome (status, times, exception, log sizes); the task's latest attempt by default.

        With ``logs`` the row also carries the ``stdout`` and ``stderr`` text. None
        when the task or the attempt does not exist.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> task = store.create_task(store.create_run("F", user="anne").run_id, "start")
        >>> store.start_attempt(task, 0)
        >>> store.finish_attempt(task, 0, "succeeded", stdout="hi\\n")
        >>> row = store.find_attempt(task, logs=True)
        >>> row["status"], row["stdout"], row["stdout_size"]
        ('succeeded', 'hi\\n', 3)
        """
        return self._read(_reads.find_attempt, task_id, attempt, logs=logs)

    def read_log(self, task_id: int, attempt: int, stream: str) -> str:
        """The ``stdout`` or ``stderr`` text of one attempt ('' when there is none)."""
        return self._read(_reads.read_log, task_id, attempt, stream)

    def list_log_lines(self, task_id: int, attempt: int, stream: str) -> list[tuple[float, str]]:
        """``[(epoch seconds, line)]`` of one attempt's log (each line dated by the batch that streamed it).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> task = store.create_task(store.create_run("F", user="anne").run_id, "start")
        >>> store.start_attempt(task, 0)
        >>> store.append_log(task, 0, "stdout", "a\\nb\\n", [(0, 1.5)])
        >>> store.list_log_lines(task, 0, "stdout")
        [(1.5, 'a'), (1.5, 'b')]
        """
        return self._read(_reads.list_log_lines, task_id, attempt, stream)

    def append_log(self, task_id: int, attempt: int, stream: str, text: str, stamps: list[tuple[int, float]], *,
                   replace_from: int | None = None, keep_chars: int = 0) -> None:
        """Stream a batch of a running attempt's output into the store (one short transaction).

        See :func:`runstore.store._writes.append_log`; readers of ``stdout``/``stderr``
        see the text at once. ``Task.loglines`` reads the stamps back.
        """
        with self.write() as conn:
            _writes.append_log(conn, task_id, attempt, stream, text, stamps, replace_from=replace_from,
                               keep_chars=keep_chars)

    def list_metadata(self, task_id: int, attempt: int | None = None) -> list[Row]:
        """Metadata rows of a task (of one attempt when given), oldest first."""
        return self._read(_reads.list_metadata, task_id, attempt)

    def list_artifacts(self, task_id: int, attempt: int, *, private: bool = False) -> list[Row]:
        """Artifact rows (no payload) of one attempt, newest first then by name."""
        return self._read(_reads.list_artifacts, task_id, attempt, private=private)

    def list_artifact_refs(self, task_id: int, attempt: int | None = None) -> dict[str, StoredValue]:
        """The artifacts of a task's latest (or given) attempt, as references by name (nothing loaded).

        Each carries the ``artifact_id`` of the row it was read from, so a task that
        passes it on stores a binding, not a copy; no JSON preview (``find_artifact`` has it).

        Raises
        ------
        NotFound
            When the task does not exist.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> task = store.create_task(store.create_run("F", user="anne").run_id, "start")
        >>> store.start_attempt(task, 0)
        >>> store.finish_attempt(task, 0, "succeeded", artifacts={"x": store.put_value(1)})
        >>> ref = store.list_artifact_refs(task)["x"]
        >>> ref.encoding, ref.type, ref.json_value, ref.artifact_id is not None
        ('json', 'int', None, True)
        """
        return self._read(_reads.list_artifact_refs, task_id, attempt, self.where)

    def find_artifact(self, task_id: int, attempt: int, name: str) -> Row | None:
        """One artifact row (no payload), or None."""
        return self._read(_reads.find_artifact, task_id, attempt, name)

    def find_code_package(self, code_id: int) -> Row | None:
        """A code package row (``blob_key``, ``script_name``, ``created_at``), or None."""
        return self._read(_reads.find_code_package, code_id)

    def list_foreach_stacks(self, run_id: int, step: str) -> dict[int, list[dict[str, Any]]]:
        """The ``_foreach_stack`` (list of frames, JSON) of every finished task of ``step``, by task id.

        Tasks that never finished an attempt have none. Read from the JSON column,
        never by decoding a pickle.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> store.list_foreach_stacks(store.create_run("F", user="anne").run_id, "each")
        {}
        """
        return self._read(_reads.list_foreach_stacks, run_id, step)

    # ------------------------------------------------------------ names kept from before #17
    # One line each over the reads above, for code written against them (the tests use
    # them); runstore itself calls the find_*/list_* names.

    def lookup_run(self, flow: str, run_number: int) -> Row | None:
        """Same as :meth:`find_run` with a run number.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne")
        >>> store.lookup_run("HelloFlow", 1)["user_name"]
        'anne'
        """
        return self.find_run(flow, run_number)

    def lookup_run_by_id(self, run_id: int) -> Row | None:
        """Same as :meth:`find_run_by_id`.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").lookup_run_by_id(1) is None
        True
        """
        return self.find_run_by_id(run_id)

    def run_ref(self, flow: str, run_number: int | None = None) -> tuple[int, int] | None:
        """``(run_id, run_number)`` of :meth:`find_run`'s run, or None.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> store.run_ref("F") == (run.run_id, 1)
        True
        """
        row = self.find_run(flow, run_number)
        return (row["run_id"], row["run_number"]) if row else None

    def origin_run(self, flow: str, run_number: int | None = None, *, user: str | None = None) -> Row | None:
        """Run ``run_number`` of ``flow`` (:meth:`find_run`), or without it :meth:`find_origin_run` of ``user``.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> first = store.create_run("F", user="anne")
        >>> _ = store.create_run("F", user="anne", invocation="resume")
        >>> store.origin_run("F", user="anne")["run_number"], store.origin_run("F", 2)["invocation"]
        (1, 'resume')
        """
        return self.find_run(flow, run_number) if run_number is not None else self.find_origin_run(flow, user)

    def run_tasks(self, run_id: int, step: str | None = None, task_id: int | None = None) -> list[Row]:
        """Same as :meth:`list_run_tasks`.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").run_tasks(1)
        []
        """
        return self.list_run_tasks(run_id, step, task_id)

    def origin_tasks(self, run_id: int) -> list[Row]:
        """Every task of a run: :meth:`list_run_tasks` without a filter.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> _ = store.create_task(run.run_id, "start")
        >>> [t["step"] for t in store.origin_tasks(run.run_id)]
        ['start']
        """
        return self.list_run_tasks(run_id)

    def attempt_record(self, task_id: int, attempt: int | None = None) -> Row | None:
        """:meth:`find_attempt` with the logs.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").attempt_record(1) is None
        True
        """
        return self.find_attempt(task_id, attempt, logs=True)

    def task_artifact_refs(self, task_id: int, attempt: int | None = None) -> dict[str, StoredValue]:
        """Same as :meth:`list_artifact_refs`.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> task = store.create_task(store.create_run("F", user="anne").run_id, "start")
        >>> store.task_artifact_refs(task)
        {}
        """
        return self.list_artifact_refs(task_id, attempt)

    def foreach_stacks(self, run_id: int, step: str) -> dict[int, list[dict[str, Any]]]:
        """Same as :meth:`list_foreach_stacks`.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").foreach_stacks(1, "each")
        {}
        """
        return self.list_foreach_stacks(run_id, step)

    # ------------------------------------------------------------ deployments (_deploy.py)

    def get_deployment(self, flow: str) -> Deployment | None:
        """The current production deployment of ``flow``, or None.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").get_deployment("TrainFlow") is None
        True
        """
        return self._read(_deploy.find_deployment, flow)

    def swap_deployment(self, new: Deployment, expected_token_hash: str | None) -> bool:
        """Install ``new`` if the deployment still has ``expected_token_hash`` (None: no deployment).

        Returns False when another deploy got there first, so the caller can re-check
        authorization against the new state instead of overwriting it.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> d = Deployment("F", 0, "production:F-0-abc", "h", "anne", None, None, 0.0)
        >>> store.swap_deployment(d, None), store.swap_deployment(d, None)
        (True, False)
        """
        with self.write() as conn:
            return _deploy.swap_deployment(conn, new, expected_token_hash)

    # ------------------------------------------------------------ read-only SQL (_sql.py), delete and gc (_gc.py), export and merge (_transfer.py), doctor (_doctor.py)

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
        from . import _sql

        return _sql.sql(self, query, params)

    def sql_stream(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> ContextManager[SqlStream]:
        """Like :meth:`sql`, but the rows arrive lazily: constant memory for any result size.

        A context manager giving a :class:`~runstore.store._sql.SqlStream` (``columns``,
        ``rows`` iterator); the read-only connection is released when the block ends.
        ``runstore sql`` prints through it. Errors are those of :meth:`sql`.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> with store.sql_stream("SELECT 1 AS n UNION ALL SELECT 2") as stream:
        ...     stream.columns, [row[0] for row in stream.rows]
        (['n'], [1, 2])
        """
        from . import _sql

        return _sql.sql_stream(self, query, params)

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
        from . import _gc

        return _gc.delete_runs(self, pathspecs, force=force)

    def gc(self, *, dry_run: bool = False, progress: Progress | None = None) -> GcReport:
        """Drop blobs, chunks and code packages nothing references; reclaim the space.

        Everything is decided and deleted in one write transaction; then the file is
        compacted (``VACUUM``) and the WAL folded in, so the file shrinks (also when
        nothing was collected but a quarter of the file is free pages). Values
        written moments ago by a live run survive (see ``store/_gc.py`` for the
        exact rule). With ``dry_run`` nothing changes and the report says what would go.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.put_value("nobody uses me")
        >>> store.gc().blobs
        1
        """
        from . import _gc

        return _gc.gc(self, dry_run=dry_run, progress=progress)

    def vacuum(self) -> None:
        """Compact the file (``VACUUM``) and fold the WAL in, so freed pages go back to the disk.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").vacuum()
        """
        from . import _gc

        _gc.vacuum(self)

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
        from . import _transfer

        return _transfer.export_runs(self, pathspecs, out, progress=progress)

    def merge_from(self, other: "str | os.PathLike[str] | Database", *,
                   include_deleted: bool = False, progress: Progress | None = None) -> TransferReport:
        """Import every run of another store into this one; merging again changes nothing.

        Runs are matched by UUID (already present: skipped) and keep their UUIDs;
        ``runs.source_store`` / ``source_run_number`` record where each came from. A
        run number already taken here is replaced by the flow's next number (see
        ``report.renumbered``). Blobs and chunks are copied by hash only when
        missing, with the trust they had in the source. Task ids are new (they are
        store-wide); links between cloned tasks follow. One transaction: all or nothing.
        A run deleted here before (:meth:`delete_runs` keeps its UUID as a tombstone)
        is not brought back: it is listed in ``report.deleted`` instead, unless
        ``include_deleted`` (which copies it and forgets the tombstone).

        Example
        -------
        >>> from runstore import Store
        >>> a, b = Store(":memory:"), Store(":memory:")
        >>> _ = a.create_run("F", user="anne"), b.create_run("F", user="bob")
        >>> a.merge_from(b).renumbered
        {'F/1': 'F/2'}
        >>> a.merge_from(b).copied
        []
        >>> a.delete_runs(["F/2"])
        ['F/2']
        >>> a.merge_from(b).deleted
        ['F/1']
        """
        from . import _transfer

        return _transfer.merge_from(self, other, include_deleted=include_deleted, progress=progress)

    def doctor(self, *, deep: bool = False) -> DoctorReport:
        """Check the file and its consistency; never changes or unpickles anything.

        Problems: an altered schema (objects runstore did not make, SPEC §13.2),
        damaged indexes (with the fix), SQLite integrity or foreign-key errors, blobs
        whose chunks are missing or incomplete, artifacts or code packages pointing at
        missing blobs. Open a damaged, altered or older file with
        ``Store(path, diagnose=True)`` to report on it without migrating it. With
        ``deep``, every chunk and blob is re-hashed against its key
        (:meth:`rehash_problems`).
        Warnings: runs left ``running`` by a dead owner (shown as crashed), a large
        WAL, space ``runstore gc`` could reclaim.

        Example
        -------
        >>> from runstore import Store
        >>> report = Store(":memory:").doctor()
        >>> report.ok, report.facts["runs"]
        (True, 0)
        """
        from . import _doctor

        return _doctor.doctor(self, deep=deep)

    def reindex(self) -> None:
        """Rebuild every index from its table (SQLite's ``REINDEX``): the fix for damaged indexes.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").reindex()
        """
        from . import _doctor

        _doctor.reindex(self)


def _open_readonly(path: str) -> Store:
    return Store(path, readonly=True)
