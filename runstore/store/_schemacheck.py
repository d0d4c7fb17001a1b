"""Is every object in a file's schema one that runstore made? (SPEC §13, promise 2.)

A file someone sends you can carry a VIEW where runstore has a table, a TRIGGER that
rewrites rows when runstore writes, or an extra object whose SQL never ends. Any of
them runs inside runstore's own statements. So on open, ``sqlite_master`` is compared
with what runstore's migrations create at the file's schema version: same names, same
types, same tables, the same SQL (whitespace aside). Building that expected set means
applying migrations ``1..N`` to an in-memory database once per version and process.

Allowed besides: SQLite's own bookkeeping that appears without anyone asking for it
(``sqlite_sequence``, ``sqlite_autoindex_*`` of our tables, ``sqlite_stat1..4`` from
``ANALYZE``) — but only as the kind of object SQLite makes under that name.

Example
-------
>>> import sqlite3
>>> from runstore.schema import SCHEMA_VERSION
>>> conn = sqlite3.connect(":memory:")
>>> apply_migrations(conn, SCHEMA_VERSION)
>>> schema_problems(conn, SCHEMA_VERSION)
[]
>>> _ = conn.execute("CREATE VIEW sneaky AS SELECT 1")
>>> schema_problems(conn, SCHEMA_VERSION)
["view 'sneaky' is not one runstore made"]
"""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache

from ..schema import MIGRATIONS

__all__ = ["apply_migrations", "expected_objects", "index_problems", "schema_problems", "split_sql"]

#: name -> (type, tbl_name, normalized sql or None)
Objects = dict[str, tuple[str, str, str | None]]

_STAT_TABLE = re.compile(r"^sqlite_stat[1-4]$")


def split_sql(script: str) -> list[str]:
    """The statements of a migration script, in order.

    Example
    -------
    >>> split_sql("CREATE TABLE a(x);\\nCREATE TABLE b(y);")
    ['CREATE TABLE a(x);', 'CREATE TABLE b(y);']
    """
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def apply_migrations(conn: sqlite3.Connection, version: int, start: int = 0) -> None:
    """Run migrations ``start+1 .. version`` on ``conn`` (no transaction, no user_version).

    Example
    -------
    >>> conn = sqlite3.connect(":memory:")
    >>> apply_migrations(conn, 1)
    >>> conn.execute("SELECT count(*) FROM runs").fetchone()
    (0,)
    """
    for target in range(start, version):
        for statement in split_sql(MIGRATIONS[target]):
            conn.execute(statement)


def _normalized(sql: str | None) -> str | None:
    return None if sql is None else " ".join(sql.split())


def _objects(conn: sqlite3.Connection) -> Objects:
    return {name: (kind, table, _normalized(sql)) for kind, name, table, sql in conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master")}


@lru_cache(maxsize=None)
def expected_objects(version: int) -> Objects:
    """What runstore's migrations create at schema ``version`` (cached per process).

    Example
    -------
    >>> expected_objects(1)["runs"][0]
    'table'
    """
    conn = sqlite3.connect(":memory:")
    try:
        apply_migrations(conn, version)
        conn.execute("INSERT INTO flows(name, created_at) VALUES ('x', 0)")  # makes sqlite_sequence
        return _objects(conn)
    finally:
        conn.close()


def _sqlite_bookkeeping(name: str, kind: str, table: str, sql: str | None, ours: Objects) -> bool:
    if name == "sqlite_sequence":
        return kind == "table" and sql == "CREATE TABLE sqlite_sequence(name,seq)"
    if _STAT_TABLE.match(name):
        return kind == "table" and (sql or "").startswith(f"CREATE TABLE {name}(")
    if name.startswith("sqlite_autoindex_"):
        return kind == "index" and sql is None and ours.get(table, ("",))[0] == "table"
    return False


def schema_problems(conn: sqlite3.Connection, version: int) -> list[str]:
    """What differs between the file's schema and runstore's at ``version``; [] when none.

    Each problem names the object: ``"view 'blob_chunks' replaces runstore's table"``,
    ``"trigger 'x' on 'runs' is not one runstore made"``, ``"table 'runs' was
    redefined"``, ``"index 'y' is missing"``. Reading ``sqlite_master`` runs nothing
    from the file.

    Example
    -------
    >>> conn = sqlite3.connect(":memory:")
    >>> apply_migrations(conn, 1)
    >>> _ = conn.execute("CREATE TRIGGER t AFTER INSERT ON runs BEGIN SELECT 1; END")
    >>> schema_problems(conn, 1)
    ["trigger 't' on 'runs' is not one runstore made"]
    """
    ours = expected_objects(version)
    found = _objects(conn)
    problems = []
    # Triggers and views first: they are what runs inside runstore's own statements.
    order = {"trigger": 0, "view": 1, "table": 2, "index": 3}
    for name, (kind, table, sql) in sorted(found.items(), key=lambda item: (order.get(item[1][0], 4), item[0])):
        want = ours.get(name)
        if want is None:
            if not _sqlite_bookkeeping(name, kind, table, sql, ours):
                where = f" on '{table}'" if kind in ("index", "trigger") else ""
                problems.append(f"{kind} '{name}'{where} is not one runstore made")
        elif want[0] != kind:
            problems.append(f"{kind} '{name}' replaces runstore's {want[0]}")
        elif want[1] != table or want[2] != sql:
            problems.append(f"{kind} '{name}' was redefined (its SQL is not the one runstore made)")
    for name, (kind, _, _) in sorted(ours.items()):
        if name not in found and name != "sqlite_sequence":
            problems.append(f"{kind} '{name}' is missing")
    return problems


_INDEX_LINE = re.compile(r"\bindex (?P<name>[A-Za-z0-9_]+)\b")


def index_problems(integrity_rows: list[str]) -> tuple[list[str], list[str]]:
    """Split ``PRAGMA integrity_check`` lines into damaged indexes (one line each, with
    the fix) and everything else.

    A damaged index loses nothing (its table still holds every row) and is rebuilt
    by ``REINDEX``, which ``runstore doctor --reindex`` runs.

    Example
    -------
    >>> index_problems(["row 3 missing from index runs_flow_created", "ok"])[0]
    ['index runs_flow_created is damaged (1 problem: row 3 missing from index runs_flow_created); fix: runstore doctor --reindex']
    """
    damaged: dict[str, list[str]] = {}
    other = []
    for line in integrity_rows:
        if line == "ok":
            continue
        match = _INDEX_LINE.search(line)
        if match and ("missing from index" in line or "wrong # of entries in index" in line
                      or "non-unique entry in index" in line):
            damaged.setdefault(match["name"], []).append(line)
        else:
            other.append(line)
    problems = [
        f"index {name} is damaged ({len(lines)} problem{'s' if len(lines) > 1 else ''}: {lines[0]});"
        " fix: runstore doctor --reindex"
        for name, lines in damaged.items()
    ]
    return problems, other
