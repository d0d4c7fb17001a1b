"""Which namespace and which store the client uses.

``namespace(ns)`` sets the namespace for the whole process, as in Metaflow: every
thread, every asyncio task and every notebook cell (also after an ``await``) sees it.
``with namespace_scope(ns):`` overrides it for the current context only (a ContextVar):
code inside the block, and the tasks and threads started from it with a copied context,
see ``ns``; a ``namespace()`` call inside a scope changes that scope, not the process.
Every step of a run executes in such a scope holding the run's identity namespace (or
``--namespace`` / ``Runner(..., namespace=...)``), so a flow started from a notebook
never inherits the notebook's interactive choice. ``use_store(store)`` is context-local
too (a ContextVar), for a ``with`` block.

Example
-------
>>> import os
>>> os.environ["RUNSTORE_USER"] = "anne"
>>> namespace(None) is None
True
>>> default_namespace()
'user:anne'
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .util import resolve_username

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "namespace",
    "get_namespace",
    "default_namespace",
    "identity",
    "use_store",
    "get_store",
    "get_metadata",
    "resolve_store",
    "reset_namespace",
    "namespace_scope",
]

_UNSET = object()
#: The process-wide namespace (``_UNSET``: follow the identity), shared by every thread.
_process_namespace: list[object] = [_UNSET]
#: A context-local override set by :func:`namespace_scope` (``_UNSET``: none).
_scoped: ContextVar[object] = ContextVar("runstore_namespace_scope", default=_UNSET)
_store: ContextVar["Store | None"] = ContextVar("runstore_store", default=None)
_discovered: dict[str, "Store"] = {}


def identity() -> str:
    """This process's default namespace: ``user:<name>``, or the production namespace in a triggered run.

    ``trigger`` sets ``RUNSTORE_PRODUCTION_NAMESPACE`` (public) for the run it starts, so
    client code inside a production run reads production by default. This only
    chooses what the client *reads*: the namespace a new run is *tagged* with comes
    from :func:`runstore.runtime.production.production_identity`, which checks the secret
    token (SPEC §13, promise 5).

    Example
    -------
    >>> import os
    >>> os.environ["RUNSTORE_USER"] = "will"
    >>> identity()
    'user:will'
    """
    production = os.environ.get("RUNSTORE_PRODUCTION_NAMESPACE", "").strip()
    if production.startswith("production:"):
        return production
    return f"user:{resolve_username()}"


def _checked(ns: object) -> str | None:
    if ns is not None and ns != "":
        if not isinstance(ns, str):
            from .errors import TaggingError

            raise TaggingError(f"a namespace is a tag string or None, not {type(ns).__name__} {ns!r}")
        from .tags import validate_tag

        validate_tag(ns)
    return ns or None


def _set(value: object) -> None:
    if _scoped.get() is not _UNSET:
        _scoped.set(value)
    else:
        _process_namespace[0] = value


def namespace(ns: str | None) -> str | None:
    """Switch the client namespace for the whole process; ``None`` or ``""`` means global.

    Every thread, asyncio task and notebook cell sees the new namespace; inside a
    :func:`namespace_scope` block (and inside a running step) only that scope changes.

    Any tag can be a namespace: ``user:will``, ``production:TrainFlow-0-x7k2``, or a
    user tag such as ``crazy_test``. Returns the new namespace. Anything that is not
    ``None`` or a valid tag string (``123``, ``b"x"``, a 501-character string)
    raises ``TaggingError`` (a ``ValueError``) and leaves the namespace unchanged.

    Example
    -------
    >>> namespace("user:will")
    'user:will'
    >>> namespace("") is None
    True
    """
    _set(_checked(ns))
    return get_namespace()


@contextmanager
def namespace_scope(ns: str | None) -> Iterator[str | None]:
    """Use ``ns`` as the namespace in this context only, for the ``with`` block.

    The process-wide namespace (other threads, other asyncio tasks) is untouched;
    threads and tasks started inside the block with a copied context see ``ns``.

    Example
    -------
    >>> _ = namespace("user:anne")
    >>> with namespace_scope(None):
    ...     get_namespace() is None
    True
    >>> get_namespace()
    'user:anne'
    """
    token = _scoped.set(_checked(ns))
    try:
        yield get_namespace()
    finally:
        _scoped.reset(token)


def get_namespace() -> str | None:
    """The current client namespace (the identity until ``namespace()`` is called).

    Example
    -------
    >>> _ = namespace("crazy_test")
    >>> get_namespace()
    'crazy_test'
    """
    value = _scoped.get()
    if value is _UNSET:
        value = _process_namespace[0]
    if value is _UNSET:
        return default_namespace()
    return value  # type: ignore[return-value]


def reset_namespace() -> None:
    """Forget any process-wide ``namespace()`` call: the namespace follows the identity again.

    Unlike :func:`default_namespace`, nothing is fixed now: the identity is read when the
    namespace is next asked for, so a test fixture can reset first and set ``RUNSTORE_USER``
    after. Meant for test fixtures and long-lived processes that serve several users.

    Example
    -------
    >>> import os
    >>> _ = namespace(None)
    >>> reset_namespace()
    >>> os.environ["RUNSTORE_USER"] = "zoe"
    >>> get_namespace()
    'user:zoe'
    """
    _process_namespace[0] = _UNSET


def default_namespace() -> str:
    """Reset the namespace to this user's identity and return it.

    Example
    -------
    >>> import os
    >>> os.environ["RUNSTORE_USER"] = "anne"
    >>> default_namespace()
    'user:anne'
    """
    ns = identity()
    _set(ns)
    return ns


@contextmanager
def use_store(store: "Store | str | os.PathLike[str]") -> Iterator["Store"]:
    """Make ``store`` the default store of every client object inside the block.

    Example
    -------
    >>> from runstore import Store
    >>> with use_store(Store(":memory:")) as store:
    ...     get_store() is store
    True
    """
    from .store import Store

    if not isinstance(store, Store):
        store = Store(store)
    token = _store.set(store)
    try:
        yield store
    finally:
        _store.reset(token)


def get_store() -> "Store":
    """The store client objects use: the ``use_store`` one, else the discovered one (SPEC §2).

    Example
    -------
    >>> from runstore import Store
    >>> with use_store(Store(":memory:")):
    ...     get_store().describe()
    'sqlite@:memory:'
    """
    active = _store.get()
    if active is not None:
        return active
    from .store import Store, discover_path

    path, _ = discover_path()
    key = str(path)
    store = _discovered.get(key)
    if store is None:
        store = _discovered[key] = Store(path)
    return store


def get_metadata() -> str:
    """Name the store in use, e.g. ``sqlite@/home/anne/proj/runstore.db``.

    Example
    -------
    >>> from runstore import Store
    >>> with use_store(Store(":memory:")):
    ...     get_metadata()
    'sqlite@:memory:'
    """
    return get_store().describe()


def resolve_store(store: "Store | str | os.PathLike[str] | None" = None) -> "Store":
    """The store a client object uses: ``store`` itself, the path of an existing store
    (opened once per process and reused; a missing file is a ``StoreError``, never
    created), or :func:`get_store` when ``None``.

    Example
    -------
    >>> from runstore import Store
    >>> memory = Store(":memory:")
    >>> resolve_store(memory) is memory
    True
    """
    if store is None:
        return get_store()
    from .store import Store

    if isinstance(store, Store):
        return store
    if str(store) == ":memory:":
        raise ValueError("pass Store(':memory:') itself: the path ':memory:' would open a new empty store")
    key = str(Path(store).expanduser().resolve())
    opened = _discovered.get(key)
    if opened is None:
        opened = _discovered[key] = Store(key, create=False)  # a typo must not create a file
    return opened
