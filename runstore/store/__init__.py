"""The store: one SQLite file holding flows, runs, tasks, tags, metadata and blobs.

``Store`` is assembled from mixins, one module each: the connection policy and
schema (``_db``), blobs (``_blobs``), run records (``_runs``), the client's
reads and tag edits (``_queries``), resume's origin lookups and clones
(``_resume``), maintenance and sharing (``_admin``: read-only
SQL, delete, gc, export, merge, trust, doctor). This package is the
only part of runstore that imports ``sqlite3``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterable

from ..errors import StoreError
from . import _executors
from ._admin import AdminMixin, DoctorReport, GcReport, SqlResult, TransferReport
from ._blobs import BlobsMixin, PreparedValue, StoredValue
from ._db import BUSY_TIMEOUT, Database
from ._deploy import Deployment, DeployMixin
from ._queries import QueriesMixin
from ._resume import ResumeMixin
from ._runs import RunRecord, RunsMixin, effective_status

__all__ = ["Store", "Deployment", "StoredValue", "PreparedValue", "RunRecord", "discover_path", "effective_status",
           "SqlResult", "GcReport", "TransferReport", "DoctorReport"]

DEFAULT_NAME = "runstore.db"


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


class Store(AdminMixin, QueriesMixin, DeployMixin, ResumeMixin, RunsMixin, BlobsMixin, Database):
    """A runstore database: a file path, ``":memory:"``, or discovered (SPEC §2).

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


def _open_readonly(path: str) -> Store:
    return Store(path, readonly=True)
