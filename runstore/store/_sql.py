"""Read-only SQL over a store: what ``runstore sql`` and ``Store.sql`` run.

The statement runs on a connection that cannot write: the file is opened with
``mode=ro`` (same connection policy as the store's own, ``_db.py``), ``PRAGMA
query_only`` is on, and an authorizer allows only reads — no ``ATTACH``, no pragma
that sets anything, no function that touches files or leaks addresses. Read-only
table-valued functions (``json_each``, ``json_tree``, ``pragma_table_info('runs')``)
and pragmas that only report (``PRAGMA journal_mode``) are allowed. Ctrl-C stops
a query (every connection has ``harden()``'s progress handler).

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> sql(store, "SELECT 1 AS one").as_dicts()
[{'one': 1}]
>>> sql(store, "SELECT value FROM json_each('[1, 2]')").rows
[(1,), (2,)]
>>> sql(store, "DELETE FROM runs")
Traceback (most recent call last):
...
runstore.errors.StoreError: SQL error: only reading queries are allowed (not authorized)
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..errors import StoreError
from ._db import Database

__all__ = ["SqlResult", "SqlStream", "sql", "sql_stream"]

# Statements the read-only SQL connection may run (anything else: "not authorized").
_SQL_ALLOWED = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}


@dataclass(frozen=True)
class SqlResult:
    """Columns and rows of a read-only query (see ``Store.sql``).

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


# Functions a read-only query may not call: fts3_tokenizer('simple') returns a raw C
# pointer (an address leak; its 2-argument form installs code), the others touch files.
# Pinned by tests/test_reliability_input.py::test_sql_command_stays_read_only.
_SQL_DENIED_FUNCTIONS = {"fts3_tokenizer", "load_extension", "readfile", "writefile", "edit"}


# Pragmas whose argument names a table or index (reading about it), and pragmas that
# only report when given no argument (with one they would set). A pragma named in
# neither is refused, as is every pragma with an argument it would set.
_PRAGMAS_ABOUT_A_TABLE = frozenset({
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "table_list",
})
_PRAGMAS_TO_READ = frozenset({
    "user_version", "schema_version", "application_id", "page_count", "page_size", "freelist_count",
    "compile_options", "journal_mode", "encoding", "auto_vacuum", "foreign_keys", "data_version",
    "database_list", "collation_list", "function_list", "module_list", "pragma_list",
})

# Connecting an eponymous virtual table (json_each, json_tree, pragma_*) declares its
# columns, which SQLite checks as an SQLITE_UPDATE of these columns of main's schema
# table. Allowing exactly that is safe: a real UPDATE of sqlite_master is refused by
# SQLite before the authorizer is asked (the table is read-only unless
# writable_schema, a setting pragma refused here), and the connection is read-only
# and query_only besides. Pinned by tests/test_reliability_input.py.
_VTAB_DECLARE = frozenset({"type", "name", "tbl_name", "rootpage", "sql"})


def _sql_authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None) -> int:
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _SQL_DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _SQL_ALLOWED:
        return sqlite3.SQLITE_OK
    if (action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and db == "main"
            and src is None and arg2 in _VTAB_DECLARE):
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


def _sql_error(exc: sqlite3.Error | sqlite3.Warning) -> Exception:
    """The one-line error (or the KeyboardInterrupt) a failed read-only query becomes."""
    text = str(exc)
    if text == "interrupted":
        return KeyboardInterrupt()
    if "not authorized" in text or "readonly" in text or "query_only" in text:
        text = f"only reading queries are allowed ({text})"
    return StoreError(f"SQL error: {text}")


#: Rows fetched from SQLite at a time while streaming.
_FETCH = 512


@dataclass(frozen=True)
class SqlStream:
    """Columns of a running read-only query and an iterator over its rows (see ``Store.sql_stream``).

    Rows are fetched a few hundred at a time while ``rows`` is consumed, so memory
    stays constant whatever the size of the result.

    Example
    -------
    >>> from runstore import Store
    >>> with Store(":memory:").sql_stream("SELECT 1 AS one UNION ALL SELECT 2") as stream:
    ...     stream.columns, list(stream.rows)
    (['one'], [(1,), (2,)])
    """

    columns: list[str]
    rows: Iterator[tuple[Any, ...]]


def _fetch(cursor: sqlite3.Cursor) -> Iterator[tuple[Any, ...]]:
    while True:
        try:
            batch = cursor.fetchmany(_FETCH)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise _sql_error(exc) from None
        if not batch:
            return
        yield from batch


@contextmanager
def sql_stream(db: Database, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[SqlStream]:
    """Run one read-only SQL statement; yield its columns and a lazy iterator over its rows.

    ``Store.sql_stream`` documents it, with an example.
    """
    if db.path is None:
        conn = db.connection()
        with db.read():
            with _stream_on(conn, query, params, restore=True) as stream:
                yield stream
        return
    conn = db.open_connection()  # same policy as the store's own; closed below
    try:
        with _stream_on(conn, query, params, restore=False) as stream:
            yield stream
    finally:
        conn.close()


@contextmanager
def _stream_on(conn: sqlite3.Connection, query: str, params: Sequence[Any] | dict[str, Any], *,
               restore: bool) -> Iterator[SqlStream]:
    cursor = None
    try:
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(_sql_authorizer)
            # Ctrl-C stops the query: every connection has harden()'s progress handler.
            cursor = conn.execute(query, params)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise _sql_error(exc) from None
        yield SqlStream([d[0] for d in cursor.description or ()], _fetch(cursor))
    finally:
        if cursor is not None:
            cursor.close()
        _clear_authorizer(conn)
        if restore:
            conn.execute("PRAGMA query_only = OFF")


def sql(db: Database, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> SqlResult:
    """Run one read-only SQL statement and return its columns and rows.

    ``Store.sql`` documents it, with an example.
    """
    with sql_stream(db, query, params) as stream:
        return SqlResult(stream.columns, list(stream.rows))
