"""What the commands share: opening the store ``--db`` names, finding what a pathspec names.

Example
-------
>>> import click
>>> from click.testing import CliRunner
>>> from runstore.cli.errors import OneLineErrors
>>> @click.group(cls=OneLineErrors)
... @click.pass_context
... def tool(ctx):
...     ctx.obj = {"db": "/nonexistent/x.db"}
>>> @tool.command()
... @click.pass_context
... def look(ctx):
...     open_store(ctx)
>>> print(CliRunner().invoke(tool, ["look"]).output.strip())
Error: no store at /nonexistent/x.db; pass --db PATH or set RUNSTORE_DB
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..errors import NotFound
from ..util import parse_pathspec

if TYPE_CHECKING:
    from ..client import ClientObject, Task
    from ..store import Store

__all__ = ["open_store", "find_object", "tasks_of", "client_object", "echo_json", "global_namespace"]


def open_store(ctx: click.Context, *, readonly: bool = False, **open_options: Any) -> "Store":
    """The store named by --db / RUNSTORE_DB / discovery; never creates one."""
    from ..errors import StoreError
    from ..store import Store, discover_path

    path, found = discover_path((ctx.find_root().obj or {}).get("db"))
    if str(path) == ":memory:":
        raise StoreError("--db :memory: makes a new empty store; name a file")
    if not found or not path.exists():
        raise StoreError(f"no store at {path}; pass --db PATH or set RUNSTORE_DB")
    store = Store(path, readonly=readonly, create=False, **open_options)
    ctx.call_on_close(store.close)  # closing is what lets SQLite remove its -wal/-shm files
    return store


def find_object(store: "Store", parts: tuple[str, ...]) -> "ClientObject":
    """The Run, Step or Task that ``parts`` (from :func:`runstore.util.parse_pathspec`) names.

    Any namespace: the user named the object. A missing object is
    :class:`~runstore.errors.NotFound` naming the first missing level and the store.
    """
    from .. import client

    classes = (client.Run, client.Step, client.Task)
    found: Any = None
    for depth in range(2, len(parts) + 1):
        try:
            found = classes[depth - 2]("/".join(parts[:depth]), store=store, _namespace_check=False)
        except NotFound as exc:
            raise NotFound(f"{exc} in {store.where}") from None
    return found


def tasks_of(obj: "ClientObject") -> list["Task"]:
    """The tasks of a Task (itself), Step or Run, in the order they ran (task id)."""
    from .. import client

    if isinstance(obj, client.Task):
        return [obj]
    steps = [obj] if isinstance(obj, client.Step) else list(obj)
    return sorted((t for s in steps for t in s), key=lambda t: int(t.id))


def global_namespace() -> None:
    """Pathspec-addressed commands see every namespace: the user named the object."""
    from ..namespace import namespace

    namespace(None)


def client_object(kind: str, pathspec: str, store: "Store") -> Any:
    """The client object a pathspec names: Run (Flow/N), Step (+/step) or Task (+/id)."""
    parts = parse_pathspec(pathspec, depths=(2,) if kind == "run" else (2, 3, 4))
    global_namespace()
    return find_object(store, parts)


def jsonable(value: Any) -> Any:
    """``json.dumps``'s ``default`` for CLI output: binary values become ``<N bytes>``.

    Example
    -------
    >>> jsonable(b"abc")
    '<3 bytes>'
    """
    return f"<{len(value)} bytes>" if isinstance(value, (bytes, bytearray, memoryview)) else value


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=jsonable))
