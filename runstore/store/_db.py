"""The SQLite connection policy, transactions, schema upgrades, backup and checks.

This is the only place that opens SQLite connections. Every pragma is in
:data:`PRAGMAS` and applied to every new connection. Connections are per thread and
per process: after ``fork`` a child opens its own instead of sharing its parent's.
Writes take the write lock up front (``BEGIN IMMEDIATE``), so a transaction never
fails half way on lock upgrade; every ``sqlite3`` error is translated into a
:class:`~runstore.errors.StoreError` subclass at this boundary.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar
from urllib.parse import quote

from ..errors import (
    NotAStoreError,
    RunstoreError,
    SchemaVersionError,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreReadOnlyError,
)
from ..schema import MIGRATIONS, SCHEMA_VERSION
from ..util import new_uuid, now
from ._schemacheck import schema_problems, split_sql

__all__ = ["Database", "PRAGMAS", "BUSY_TIMEOUT", "translate_error", "harden", "altered_error",
           "Row", "Progress", "dict_rows", "dict_row", "placeholders", "batches", "human_size"]

#: A row as the store hands it out: ``{column: value}``.
Row = dict[str, Any]

#: Called as ``progress(done, total)`` while a long operation advances.
Progress = Callable[[int, int], None]

#: Ids per ``IN (...)`` list in statements over many rows.
BATCH = 500

_T = TypeVar("_T")

#: Seconds a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT = 60.0

#: Page size of new files. SQLite's default: small transactions (a task's rows) stay
#: cheap and the file grows in 4 KiB steps. Larger pages make 100 MiB values save
#: ~2x faster but double per-task write cost (see benchmarks/results/bench_blobs.txt).
PAGE_SIZE = 4096

#: WAL pages after which a commit checkpoints automatically (SQLite's default).
WAL_AUTOCHECKPOINT = 1000

#: Longest wait (seconds) of the end-of-run checkpoint for other connections.
CHECKPOINT_WAIT = 2.0

#: Applied to every connection, in this order (journal_mode only when writable).
#: ``trusted_schema = OFF`` until the schema check has found every view and trigger to be
#: runstore's own: nothing from a file's views runs a function SQLite does not call
#: innocuous while we look at it. Then ON, because SQLite (3.40 at least) does not mark
#: ``json()``, ``json_extract()`` or ``json_group_array()`` innocuous, and runstore's
#: own views use them (tests/test_security_open.py::test_trusted_schema_off_until_checked).
PRAGMAS: tuple[tuple[str, str], ...] = (
    ("trusted_schema", "OFF"),
    ("busy_timeout", str(int(BUSY_TIMEOUT * 1000))),
    ("journal_mode", "wal"),
    ("synchronous", "NORMAL"),
    ("foreign_keys", "ON"),
)

_SQLITE_MAGIC = b"SQLite format 3\x00"

# Connections inherited from a parent process across fork: kept alive, never used.
_INHERITED: list[sqlite3.Connection] = []

# Descriptors of store files whose header this process has checked, kept open for the
# life of the process. Closing *any* descriptor of a file drops every POSIX lock the
# process holds on it, SQLite's included (sqlite.org/howtocorrupt.html, 2.2): a second
# Store(path) in a process that already has a connection to path would then let another
# process take the file for its last connection and delete the WAL under the live one
# (its later commits are lost). tests/test_store_locks.py pins this.
_HEADER_FDS: dict[tuple[int, int], int] = {}


def _read_header(path: Path) -> tuple[int, bytes]:
    """``(size, first 100 bytes)`` of a store file, without ever closing a descriptor of it."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    fd = _HEADER_FDS.get(key)
    if fd is not None and os.fstat(fd).st_nlink == 0:  # a deleted file whose inode number came back
        del _HEADER_FDS[key]
        os.close(fd)  # no lock of ours can be on a deleted file's descriptor that matters
        fd = None
    if fd is None:
        fd = os.open(path, os.O_RDONLY)
        st = os.fstat(fd)
        _HEADER_FDS.setdefault((st.st_dev, st.st_ino), fd)
    return os.fstat(fd).st_size, os.pread(fd, 100, 0)


def translate_error(exc: BaseException, where: str,
                    busy_timeout: float = BUSY_TIMEOUT) -> RunstoreError | KeyboardInterrupt:
    """Turn a ``sqlite3`` (or OS) error into the runstore error a user can act on.

    The message is always one line and names the file. A statement stopped by Ctrl-C
    (see :func:`harden`) comes back as the ``KeyboardInterrupt`` it was.

    Example
    -------
    >>> import sqlite3
    >>> type(translate_error(sqlite3.OperationalError("database is locked"), "x.db")).__name__
    'StoreBusyError'
    """
    if isinstance(exc, RunstoreError):
        return exc
    text = " ".join(str(exc).split())
    low = text.lower()
    if low == "interrupted":
        return KeyboardInterrupt()
    if "locked" in low or "busy" in low:
        return StoreBusyError(
            f"{where}: another process held the write lock for more than {busy_timeout:g} s; "
            "try again when it has finished"
        )
    if "readonly" in low or "read-only" in low or "permission denied" in low:
        return StoreReadOnlyError(f"{where} is read-only ({text}); open it with readonly=True to read it")
    if "unable to open" in low:
        parent = Path(where).parent
        if where != ":memory:" and parent.is_dir() and not os.access(parent, os.W_OK):
            return StoreReadOnlyError(
                f"{where}: its directory is not writable, so SQLite cannot create its -wal/-shm files; "
                "open it with readonly=True or copy it somewhere writable"
            )
        return StoreError(f"{where}: SQLite cannot open the file ({text})")
    if "full" in low or "too big" in low or "file too large" in low:
        return StoreFullError(f"{where}: the disk is full ({text}); nothing was half written")
    if _out_of_room(exc, low):
        return StoreFullError(
            f"{where}: no room to write: the file-size limit (ulimit -f) is reached ({text}); "
            "nothing was half written")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return NotAStoreError(f"{where} is damaged or not a runstore database ({text})")
    return StoreError(f"{where}: {text}")


#: SQLite virtual-machine steps between two calls of the progress handler (~1 ms of work).
PROGRESS_STEPS = 100_000


def _let_signals_in() -> int:
    # Running any Python code lets a pending SIGINT raise KeyboardInterrupt here; the
    # sqlite3 module then stops the statement ("interrupted"), which translate_error turns
    # back into KeyboardInterrupt. Without it Ctrl-C waits for the statement to end.
    # Pinned by tests/test_security_open.py::test_ctrl_c_stops_an_endless_sql_query_with_130.
    return 0


def harden(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Settings no file may undo, for every connection runstore opens (SPEC §13.2, §13.3).

    ``trusted_schema = OFF``; SQLite's defensive mode where Python exposes it (3.12+
    ``setconfig``: no ``writable_schema``, no corrupting pragmas); a progress handler,
    so Ctrl-C stops any statement, however long the file makes it.

    Example
    -------
    >>> import sqlite3
    >>> harden(sqlite3.connect(":memory:")).execute("PRAGMA trusted_schema").fetchone()
    (0,)
    """
    defensive = getattr(sqlite3, "SQLITE_DBCONFIG_DEFENSIVE", None)
    if defensive is not None and hasattr(conn, "setconfig"):
        conn.setconfig(defensive, True)
    conn.execute(f"PRAGMA trusted_schema = {dict(PRAGMAS)['trusted_schema']}")
    conn.set_progress_handler(_let_signals_in, PROGRESS_STEPS)
    return conn


def _out_of_room(exc: BaseException, low: str) -> bool:
    """A write error that means "no room": SQLite reports a file-size limit (EFBIG) as an I/O error.

    Pinned by tests/test_reliability_input.py::test_full_disk_while_writing_a_large_artifact.
    """
    name = getattr(exc, "sqlite_errorname", "")
    if name not in ("SQLITE_IOERR_WRITE", "SQLITE_IOERR_TRUNCATE", "SQLITE_IOERR_SHMSIZE") and not (
            not name and low == "disk i/o error"):
        return False
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return False
    return resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY


def _publish(tmp: Path, target: Path) -> bool:
    """Give a finished file its final name unless that name exists; False if it did."""
    try:
        os.link(tmp, target)  # atomic and never overwrites
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system
        if target.exists():
            return False
        os.replace(tmp, target)
    return True


def _remove_database_files(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass


_split_sql = split_sql  # the name tests/test_migration.py imports


def altered_error(where: str, problems: list[str]) -> NotAStoreError:
    """The one-line refusal of a file whose schema is not runstore's (SPEC §13.2).

    Example
    -------
    >>> str(altered_error("x.db", ["view 'blob_chunks' replaces runstore's table"]))[:60]
    "x.db was altered after runstore wrote it: view 'blob_chunks'"
    """
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return NotAStoreError(
        f"{where} was altered after runstore wrote it: {problems[0]}{more}; runstore does not "
        "open such a file (`runstore doctor` lists what changed)")


def dict_rows(cursor: sqlite3.Cursor) -> list[Row]:
    """Every row of ``cursor`` as ``{column: value}`` (the store's one row-to-dict).

    Example
    -------
    >>> import sqlite3
    >>> dict_rows(sqlite3.connect(":memory:").execute("SELECT 1 AS one, 2 AS two"))
    [{'one': 1, 'two': 2}]
    """
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def dict_row(cursor: sqlite3.Cursor) -> Row | None:
    """The first row of ``cursor`` as a dict, or None when there is none.

    Example
    -------
    >>> import sqlite3
    >>> dict_row(sqlite3.connect(":memory:").execute("SELECT 1 AS one WHERE 0")) is None
    True
    """
    names = [d[0] for d in cursor.description or ()]
    row = cursor.fetchone()
    return None if row is None else dict(zip(names, row))


def placeholders(n: int) -> str:
    """``?,?,…`` for an ``IN`` list of ``n`` values.

    Example
    -------
    >>> placeholders(3)
    '?,?,?'
    """
    return ",".join("?" * n)


def batches(items: Sequence[_T], size: int = BATCH) -> Iterator[Sequence[_T]]:
    """``items`` in slices of at most ``size`` (SQLite bounds the number of parameters).

    Example
    -------
    >>> [list(b) for b in batches([1, 2, 3], 2)]
    [[1, 2], [3]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


def human_size(n: int | float) -> str:
    """A byte count for people, as report lines print it.

    Example
    -------
    >>> human_size(512), human_size(3 << 20)
    ('512 B', '3.0 MiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


class Database:
    """One SQLite file (or ``":memory:"``) opened with runstore's connection policy.

    Parameters
    ----------
    path : str or Path
        The database file, or ``":memory:"`` for a private in-memory store.
    readonly : bool
        Only read: reads work, any write raises ``StoreReadOnlyError``, and nothing
        is left next to the file (see :meth:`open_connection`).
    create : bool
        Create the file when it does not exist (otherwise ``StoreError``).
    busy_timeout : float
        Seconds a write waits for another process's write lock before
        ``StoreBusyError`` (default :data:`BUSY_TIMEOUT`).
    diagnose : bool
        With ``readonly``: open an altered or older file anyway, only to report on it
        (``runstore doctor``); its problems are in ``schema_problems``. Never migrates.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True,
                 busy_timeout: float = BUSY_TIMEOUT, diagnose: bool = False) -> None:
        self.in_memory = str(path) == ":memory:"
        self.readonly = readonly or diagnose
        self.diagnose = diagnose
        #: What the schema check found (only ever non-empty with ``diagnose``).
        self.schema_problems: list[str] = []
        #: The file's ``PRAGMA user_version`` when it was opened.
        self.schema_version = SCHEMA_VERSION
        self.busy_timeout = float(busy_timeout)
        self.path: Path | None = None if self.in_memory else Path(path).expanduser().resolve()
        self._local = threading.local()
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._connections: list[sqlite3.Connection] = []
        self._memory_conn: sqlite3.Connection | None = None
        self._uuid: str | None = None
        self._closed = False
        self._verified = False
        self._schema_checked = False  # every object in the file is one runstore made
        if self.path is not None and self._check_file(create):
            self._create_file()
        try:
            self._ensure_schema()
        except BaseException:
            self.close()  # leave no connection (and no -wal/-shm) behind a refused file
            raise

    # ------------------------------------------------------------ identity

    @property
    def where(self) -> str:
        """How error messages name this store (its path, or ``:memory:``)."""
        return ":memory:" if self.path is None else str(self.path)

    @property
    def uuid(self) -> str:
        """This store's UUID, fixed when the file was created.

        Example
        -------
        >>> from runstore import Store
        >>> len(Store(":memory:").uuid)
        36
        """
        if self._uuid is None:
            with self.read() as conn:
                row = conn.execute("SELECT value FROM store_info WHERE key = 'uuid'").fetchone()
            self._uuid = row[0]
        return self._uuid

    # ------------------------------------------------------------ opening

    def _check_file(self, create: bool) -> bool:
        """Refuse what is not a usable store file; True when the file must be created."""
        assert self.path is not None
        path = self.path
        try:
            if path.is_dir():
                raise StoreError(f"{path} is a directory, not a runstore database file")
            if not path.exists():
                if self.readonly or not create:
                    raise StoreError(f"{path} does not exist")
                if not path.parent.is_dir():
                    raise StoreError(f"cannot create {path}: directory {path.parent} does not exist")
                if not os.access(path.parent, os.W_OK):
                    raise StoreReadOnlyError(f"cannot create {path}: directory {path.parent} is not writable")
                return True
            if not os.access(path, os.R_OK):
                raise StoreReadOnlyError(f"cannot read {path}: permission denied")
            if not self.readonly and not os.access(path, os.W_OK):
                raise StoreReadOnlyError(
                    f"{path} is not writable: reading works (in Python: Store(path, readonly=True)), "
                    "writing does not"
                )
            size, header = _read_header(path)
        except RunstoreError:
            raise
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from exc
        if size == 0:
            # runstore never leaves an empty file behind (see _create_file), so this one
            # is someone else's: refuse rather than silently turning it into a store.
            raise NotAStoreError(f"{path} is an empty file, not a runstore database; remove it to start a new store")
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise NotAStoreError(f"{path} is not a runstore database (not a SQLite file)")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        counter_valid = header[24:28] == header[92:96]
        wal = path.with_name(path.name + "-wal")
        if counter_valid and pages and not wal.exists() and size < pages * page_size:
            raise NotAStoreError(
                f"{path} is truncated: {size} bytes, but its header promises {pages * page_size}"
            )
        return False

    def _create_file(self) -> None:
        """Create a complete, migrated store file atomically.

        The schema is written to a private temporary file which is then hard-linked
        to the final name; ``link`` fails if the name exists, so when two processes
        create the same store at once the first one wins and the other simply opens
        its file. Nobody ever sees a half-initialised store (or an empty file).
        """
        assert self.path is not None
        path = self.path
        with self._new_file(path, "create") as tmp:
            conn = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}").fetchall()
                conn.execute("PRAGMA journal_mode = wal").fetchall()
                # Nobody can see this file yet: no syncs while it is built, one fsync
                # of the finished file below, before it gets its name.
                conn.execute("PRAGMA synchronous = OFF").fetchall()
                self._migrate(conn)
            finally:
                conn.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _publish(tmp, path)  # False: another process created it first; use theirs

    @contextmanager
    def _new_file(self, target: Path, verb: str) -> Iterator[Path]:
        """A private temporary name next to ``target``; errors translated, leftovers removed."""
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{new_uuid()[:8]}.new")
        try:
            yield tmp
        except sqlite3.Error as exc:
            raise translate_error(exc, str(target), self.busy_timeout) from exc
        except OSError as exc:
            raise StoreError(f"cannot {verb} {target}: {exc.strerror or exc}") from exc
        finally:
            _remove_database_files(tmp)

    def _connect(self) -> sqlite3.Connection:
        conn = self.open_connection()
        self._connections.append(conn)
        return conn

    def open_connection(self) -> sqlite3.Connection:
        """A new connection with the connection policy, not shared: the caller closes it.

        Read-only stores (SPEC §13, "Read-only stores") never leave a ``-wal``/``-shm``
        behind: a file we could write, with no WAL beside it, is opened read-write with
        ``query_only`` (SQLite removes the WAL it made when the connection closes); a
        file with a live WAL is opened ``mode=ro``; a file we cannot write and nobody is
        writing (no WAL), or one whose ``-shm`` cannot be made, is read ``immutable``.
        Pinned by tests/test_security_open.py::test_read_only_file_leaves_nothing_behind.
        """
        try:
            if self.path is None:
                conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                self._apply_pragmas(conn)
                return conn
            if not self.readonly:
                conn = self._connect_uri("rw")
                self._apply_pragmas(conn)
                return conn
            return self._connect_read_only()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.where, self.busy_timeout) from exc

    def _connect_uri(self, query: str) -> sqlite3.Connection:
        assert self.path is not None
        return sqlite3.connect(f"file:{quote(str(self.path))}?{query}", uri=True, timeout=self.busy_timeout,
                               isolation_level=None, check_same_thread=False)

    def _connect_read_only(self) -> sqlite3.Connection:
        assert self.path is not None
        wal_present = Path(f"{self.path}-wal").exists()
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        attempts = []
        if writable and not wal_present:
            attempts.append(("mode=rw", True))
        if wal_present or writable:
            attempts.append(("mode=ro", False))
        attempts.append(("mode=ro&immutable=1", False))
        for n, (query, query_only) in enumerate(attempts, 1):
            conn = self._connect_uri(query)
            try:
                self._apply_pragmas(conn)
                if query_only:
                    conn.execute("PRAGMA query_only = ON")
                # A read-only WAL file needs its -shm; in a read-only directory SQLite
                # cannot create it and fails on the first read, so probe now.
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.Error:
                conn.close()
                if n == len(attempts):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply_pragmas(self, conn: sqlite3.Connection) -> None:
        harden(conn)
        for name, value in PRAGMAS:
            if name == "busy_timeout":
                value = str(int(self.busy_timeout * 1000))
            if name == "trusted_schema" and self._schema_checked:
                value = "ON"
            if name == "journal_mode" and (self.readonly or self.path is None or not self._verified):
                continue  # never change a file before knowing it is ours (_ensure_schema)
            conn.execute(f"PRAGMA {name} = {value}").fetchall()

    def connection(self) -> sqlite3.Connection:
        """This thread's (and this process's) connection, opened on first use.

        A child process made by ``fork`` never reuses its parent's connection.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").connection().execute("SELECT 1").fetchone()
        (1,)
        """
        if self._closed:
            raise StoreError(f"{self.where}: the store was closed")
        if self.path is None:
            conn = self._memory_conn
            if conn is None:
                conn = self._memory_conn = self._connect()
            return conn
        if os.getpid() != self._pid:
            # Forked child: never touch the parent's connections. They are kept
            # referenced (not closed), since closing a connection inherited across fork
            # could release or reset state that belongs to the parent.
            _INHERITED.extend(self._connections)
            self._pid = os.getpid()
            self._local = threading.local()
            self._connections = []
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _ensure_schema(self) -> None:
        conn = self.connection()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            foreign = version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
            # Before anything else reads the file through its schema (SPEC §13.2).
            problems = schema_problems(conn, version) if 0 < version <= SCHEMA_VERSION else []
        except sqlite3.Error as exc:
            raise translate_error(exc, self.where, self.busy_timeout) from exc
        self.schema_version = version
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.where} has schema version {version}, but this runstore reads up to "
                f"version {SCHEMA_VERSION}; upgrade runstore to open it"
            )
        if foreign:
            raise NotAStoreError(f"{self.where} is a SQLite database of another program, not a runstore store")
        if not problems:
            self._schema_checked = version > 0 or self.path is None
            if self._schema_checked:
                self._trust_schema(conn)
        if problems:
            self.schema_problems = problems
            if self.diagnose:
                return
            raise altered_error(self.where, problems)
        if version == SCHEMA_VERSION:
            self._verified = True
            self._set_journal_mode(conn)
            return
        if self.readonly:
            if self.diagnose:
                return  # an older file, opened only to report on it: never migrated
            raise StoreReadOnlyError(
                f"{self.where} has schema version {version} and needs an upgrade to "
                f"{SCHEMA_VERSION}; open it once writable"
            )
        self._verified = True
        self._set_journal_mode(conn)
        if version > 0 and self.path is not None:
            self._backup_before_migration(version)
        with self._memory_lock():
            self._migrate(conn)

    def _trust_schema(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA trusted_schema = ON")
        except sqlite3.Error as exc:
            raise translate_error(exc, self.where, self.busy_timeout) from exc

    def _set_journal_mode(self, conn: sqlite3.Connection) -> None:
        if self.readonly or self.path is None:
            return
        try:
            conn.execute(f"PRAGMA journal_mode = {dict(PRAGMAS)['journal_mode']}").fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.where, self.busy_timeout) from exc

    def _backup_before_migration(self, version: int) -> Path:
        assert self.path is not None
        target = self.path.with_name(f"{self.path.stem}.v{version}-backup{self.path.suffix or '.db'}")
        counter = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.stem}.v{version}-backup-{counter}{self.path.suffix or '.db'}")
            counter += 1
        self.backup(target)
        return target

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply the missing migrations in one exclusive transaction.

        Foreign keys are off while they run (``PRAGMA foreign_keys`` cannot change inside
        a transaction): a migration that rebuilds a table (schema ``_V10_INTERRUPTED``)
        drops the old copy, and with them on that drop would cascade into every table
        pointing at it. Rows are copied verbatim, so no reference changes.
        """
        try:
            conn.execute("PRAGMA foreign_keys = OFF")
            try:
                self._migrate_locked(conn)
            finally:
                conn.execute("PRAGMA legacy_alter_table = OFF")  # should a rebuild stop half way
                conn.execute(f"PRAGMA foreign_keys = {dict(PRAGMAS)['foreign_keys']}")
        except sqlite3.Error as exc:
            raise translate_error(exc, self.where, self.busy_timeout) from exc

    def _migrate_locked(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN EXCLUSIVE")
            try:
                # Re-read under the lock: another process may have migrated meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"{self.where} has schema version {version}, but this runstore reads up to "
                        f"version {SCHEMA_VERSION}; upgrade runstore to open it"
                    )
                for target in range(version, SCHEMA_VERSION):
                    for statement in _split_sql(MIGRATIONS[target]):
                        conn.execute(statement)
                if version == 0:
                    conn.execute(
                        "INSERT INTO store_info(key, value) VALUES ('uuid', ?), ('created_at', ?)",
                        (new_uuid(), repr(now())),
                    )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
                if conn is self._memory_conn or conn in self._connections:
                    self._schema_checked = True  # we just wrote every object ourselves
                    conn.execute("PRAGMA trusted_schema = ON")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise translate_error(exc, self.where, self.busy_timeout) from exc

    # ------------------------------------------------------------ transactions

    def _memory_lock(self) -> Any:
        # One shared connection for :memory:, so threads take turns; files need no lock.
        return self._lock if self.path is None else nullcontext()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its first statement.

        Nested calls join the outer transaction. Any error rolls everything back and
        ``sqlite3`` errors come out as :class:`~runstore.errors.StoreError`.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> with store.write() as conn:
        ...     _ = conn.execute("INSERT INTO flows(name, created_at) VALUES ('A', 0)")
        """
        if self.readonly:
            raise StoreReadOnlyError(f"{self.where} was opened read-only")
        with self._memory_lock():
            conn = self.connection()
            if conn.in_transaction:
                yield conn
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate_error(exc, self.where, self.busy_timeout) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(exc, sqlite3.Error):
                    raise translate_error(exc, self.where, self.busy_timeout) from exc
                raise

    @contextmanager
    def deferred_checkpoint(self) -> Iterator[None]:
        """Suspend this connection's automatic WAL checkpoints inside the block.

        Used while a large value's chunks are written in several transactions: the
        WAL then holds them until the next commit after the block checkpoints them
        all at once, instead of one checkpoint (and fsync) per 4 MiB of WAL.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> with store.deferred_checkpoint():
        ...     store.create_run("F", user="anne").run_number
        1
        """
        if self.path is None or self.readonly:
            yield
            return
        conn = self.connection()
        conn.execute("PRAGMA wal_autocheckpoint = 0").fetchall()
        try:
            yield
        finally:
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}").fetchall()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads; ``sqlite3`` errors come out as ``StoreError``.

        Example
        -------
        >>> from runstore import Store
        >>> with Store(":memory:").read() as conn:
        ...     conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        0
        """
        with self._memory_lock():
            conn = self.connection()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise translate_error(exc, self.where, self.busy_timeout) from exc

    # ------------------------------------------------------------ maintenance

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so copying the ``.db`` alone shares everything.

        Best effort: when another process is reading, SQLite checkpoints what it can.
        """
        if self.readonly or self.path is None:
            return
        with self.read() as conn:
            if conn.in_transaction:
                return
            # TRUNCATE waits (busy handler) for other writers and readers; a run's end
            # must not stall behind another process's long transaction, so wait briefly.
            conn.execute(f"PRAGMA busy_timeout = {int(min(self.busy_timeout, CHECKPOINT_WAIT) * 1000)}")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def backup(self, target: str | os.PathLike[str]) -> Path:
        """Write a consistent copy of the whole store to ``target`` (which must not exist).

        Safe while other processes write: it uses SQLite's online backup API. The copy
        is written to a temporary name first, so a crash never leaves half a file.

        Example
        -------
        >>> import tempfile, pathlib
        >>> from runstore import Store
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "copy.db"
        >>> Store(":memory:").backup(out).exists()
        True
        """
        out = Path(target).expanduser().resolve()
        if out.exists():
            raise StoreError(f"{out} already exists; choose a new file name for the backup")
        if not out.parent.is_dir():
            raise StoreError(f"cannot write {out}: directory {out.parent} does not exist")
        if not os.access(out.parent, os.W_OK):
            raise StoreReadOnlyError(f"cannot write {out}: directory is not writable")
        with self._new_file(out, "write") as tmp:
            dest = sqlite3.connect(str(tmp))
            try:
                with self.read() as conn:
                    conn.backup(dest)
                dest.execute("PRAGMA journal_mode = wal").fetchall()
                dest.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                dest.close()
            if not _publish(tmp, out):
                raise StoreError(f"{out} already exists; choose a new file name for the backup")
        return out

    def integrity_problems(self) -> list[str]:
        """Problems SQLite finds in the file (``integrity_check`` and foreign keys).

        An empty list means the file is sound.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").integrity_problems()
        []
        """
        with self.read() as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            problems = [] if rows == ["ok"] else rows
            for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall():
                problems.append(f"{table} row {rowid} points to a missing {parent} row")
        return problems

    def close(self) -> None:
        """Close every connection this object opened (in this process).

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").close()
        """
        if self._pid == os.getpid():
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
        self._connections = []
        self._local = threading.local()
        self._memory_conn = None
        self._closed = True

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
