"""Which namespace and which store the client uses, held in ContextVars.

``namespace(ns)`` sets the namespace for the current context (the main thread of a
script, or one running task); ``use_store(store)`` does the same for the store
within a ``with`` block. Nothing here is process-global mutable state: a task
running in a worker thread sees its own values. A new thread starts from the
defaults (identity namespace, discovered store) unless it is started with
``contextvars.copy_context().run``.

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
]

_UNSET = object()
_namespace: ContextVar[object] = ContextVar("runstore_namespace", default=_UNSET)
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


def namespace(ns: str | None) -> str | None:
    """Switch the client namespace; ``None`` or ``""`` means global (no filtering).

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
    if ns is not None and ns != "":
        if not isinstance(ns, str):
            from .errors import TaggingError

            raise TaggingError(f"a namespace is a tag string or None, not {type(ns).__name__} {ns!r}")
        from .tags import validate_tag

        validate_tag(ns)
    _namespace.set(ns or None)
    return get_namespace()


def get_namespace() -> str | None:
    """The current client namespace (the identity until ``namespace()`` is called).

    Example
    -------
    >>> _ = namespace("crazy_test")
    >>> get_namespace()
    'crazy_test'
    """
    value = _namespace.get()
    if value is _UNSET:
        return default_namespace()
    return value  # type: ignore[return-value]


def reset_namespace() -> None:
    """Forget any ``namespace()`` call in this context: the namespace follows the identity again.

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
    _namespace.set(_UNSET)


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
    _namespace.set(ns)
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
