"""ClientObject: what Flow, Run, Step, Task and DataArtifact share.

One generic class drives every level through class attributes: its pathspec shape
(``_DEPTH``, ``_EXPECTS``), whether it takes ``attempt=`` (``_ATTEMPTS``), and its
parent and child classes (``_PARENT``, ``_CHILD``, wired in ``client/__init__.py``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from ..errors import InvalidPathspec, NamespaceMismatch, NotFound
from ..namespace import get_namespace, resolve_store
from ..util import MAX_ID, parse_id
from ._display import object_html, store_label

if TYPE_CHECKING:
    import os

    from ..store import Store

__all__ = ["ClientObject"]

Row = dict[str, Any]


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


class ClientObject:
    """What every client object shares: pathspec, store, namespace, children.

    Subclasses set ``_DEPTH`` (number of pathspec components), ``_EXPECTS`` (the
    shape named in ``InvalidPathspec``), ``_ATTEMPTS``, ``_PARENT`` / ``_CHILD``, and
    implement ``_lookup`` (fetch the row, None when missing) and, when they have
    children, ``_child_rows`` / ``_make_child``. The namespace check of every level
    below a flow is "does the run carry the namespace tag" (a primary-key lookup).

    Parameters
    ----------
    pathspec : str
        ``Flow/RunNumber/Step/TaskId/Artifact`` cut to this class's depth.
    attempt : int, optional
        Only for :class:`Task` and :class:`DataArtifact`: read this attempt.
    store : Store or path, optional
        The store to read; default: the ``use_store`` one, else the discovered file.
    """

    _EXPECTS: ClassVar[str] = ""
    _DEPTH: ClassVar[int] = 0
    _ATTEMPTS: ClassVar[bool] = False
    _CHILD: ClassVar[type["ClientObject"] | None] = None
    _PARENT: ClassVar[type["ClientObject"] | None] = None

    _store: "Store"
    _namespace: str | None
    _attempt: int | None
    _parts: list[str]
    _row: Row
    _run_row: Row | None

    def __init__(
        self,
        pathspec: str | None = None,
        *,
        attempt: int | None = None,
        store: "Store | str | os.PathLike[str] | None" = None,
        _namespace_check: bool = True,
        _context: tuple["Store", str | None] | None = None,
    ) -> None:
        if _context is not None:
            self._store, self._namespace = _context
        else:
            self._store = resolve_store(store)
            self._namespace = get_namespace()
        if not _namespace_check:
            self._namespace = None
        self._attempt = self._check_attempt(attempt)
        self._parts = self._split(pathspec)
        self._run_row = None
        row = self._lookup()
        if row is None:
            raise NotFound(f"{self} does not exist")
        self._row = row
        if self._namespace is not None and not self._in_namespace(self._namespace):
            raise NamespaceMismatch(self._mismatch_message(self._namespace))

    # ------------------------------------------------------------ construction

    @classmethod
    def _check_attempt(cls, attempt: Any) -> int | None:
        if attempt is None:
            return None
        if not cls._ATTEMPTS:
            raise NotFound("Attempts can only be specified for Task or DataArtifact")
        if isinstance(attempt, bool) or not isinstance(attempt, int):
            try:
                attempt = int(attempt)
            except (TypeError, ValueError, OverflowError):
                raise NotFound("Attempt can only be an integer") from None
        if attempt < 0:
            raise NotFound("Attempt can only be non-negative")
        if attempt > MAX_ID:
            raise NotFound(f"Attempt {attempt} does not exist")
        return attempt

    def _split(self, pathspec: str | None) -> list[str]:
        if not isinstance(pathspec, str):
            raise InvalidPathspec(f"Expects {self._EXPECTS}")
        parts = pathspec.split("/")
        if len(parts) != self._DEPTH or not all(parts):
            raise InvalidPathspec(f"Expects {self._EXPECTS}")
        return parts

    @classmethod
    def _from_row(cls, parent: "ClientObject", parts: list[str], row: Row,
                  attempt: int | None = None) -> Any:
        """A child built from a row its parent already fetched (no query, no check)."""
        obj = cls.__new__(cls)
        obj._store, obj._namespace = parent._store, parent._namespace
        obj._attempt = attempt
        obj._parts = parts
        obj._row = row
        obj._run_row = row if cls._DEPTH == 2 else parent._row if parent._DEPTH == 2 else parent._run_row
        return obj

    def _context(self) -> tuple["Store", str | None]:
        return (self._store, self._namespace)

    def _lookup(self) -> Row | None:
        raise NotImplementedError

    def _find_run(self) -> Row | None:
        run_number = parse_id(self._parts[1])
        if run_number is None:
            return None
        self._run_row = self._store.find_run(self._parts[0], run_number)
        return self._run_row

    def _find_task(self) -> Row | None:
        run = self._find_run()
        task_id = parse_id(self._parts[3])
        if run is None or task_id is None:
            return None
        return self._store.find_task(run["run_id"], self._parts[2], task_id)

    # ------------------------------------------------------------ namespace

    def _in_namespace(self, ns: str) -> bool:
        assert self._run_row is not None
        return self._store.run_has_tag(self._run_row["run_id"], ns)

    def _mismatch_message(self, ns: str) -> str:
        owner = self._run_row["namespace"] if self._run_row else None
        where = f"; it belongs to namespace '{owner}'" if owner else ""
        switch = f"namespace('{owner}')" if owner else "namespace('<tag>')"
        return (
            f"Object not in namespace '{ns}': {self} is outside it{where}. "
            f"Switch with {switch}, or namespace(None) to see every namespace"
        )

    def is_in_namespace(self) -> bool:
        """Whether this object is in the *current* namespace (not the captured one).

        Example
        -------
        >>> from runstore import Store, Run, namespace
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne")
        >>> _ = namespace(None)
        >>> run = Run("HelloFlow/1", store=store)
        >>> _ = namespace("user:will")
        >>> run.is_in_namespace()
        False
        """
        ns = get_namespace()
        return ns is None or self._in_namespace(ns)

    # ------------------------------------------------------------ identity

    @property
    def id(self) -> str:
        """The last pathspec component: run number, step name, task id or artifact name."""
        return self._parts[-1]

    @property
    def pathspec(self) -> str:
        """The ``/``-joined path, e.g. ``HelloFlow/3/start/12``."""
        return "/".join(self._parts)

    @property
    def path_components(self) -> list[str]:
        """The pathspec's components, as a new list."""
        return list(self._parts)

    @property
    def store(self) -> "Store":
        """The store this object reads."""
        return self._store

    @property
    def parent(self) -> "ClientObject | None":
        """The object one level up (built without a namespace check); None for a flow."""
        return None

    # ------------------------------------------------------------ tags

    def _tags(self) -> list[tuple[str, bool]]:
        if self._run_row is None:
            return []
        return self._store.run_tags(self._run_row["run_id"])

    @property
    def tags(self) -> frozenset[str]:
        """All tags (system and user) of the run this object belongs to, as they are now.

        Example
        -------
        >>> from runstore import Store, Task, namespace
        >>> store = Store(":memory:")
        >>> run = store.create_run("HelloFlow", user="anne", user_tags=["crazy_test"])
        >>> task_id = store.create_task(run.run_id, "start")
        >>> store.start_attempt(task_id, 0)
        >>> store.finish_attempt(task_id, 0, "succeeded", artifacts={"x": store.put_value(42)},
        ...                      stdout="hi\\n", metadata={"user": "anne"})
        >>> _ = namespace(None)
        >>> "crazy_test" in Task(f"HelloFlow/1/start/{task_id}", store=store).tags
        True
        """
        return frozenset(tag for tag, _ in self._tags())

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's user tags (mutable with ``Run.add_tag`` and friends)."""
        return frozenset(tag for tag, system in self._tags() if not system)

    @property
    def system_tags(self) -> frozenset[str]:
        """The run's system tags (``user:…``, ``runtime:local``, …); never change."""
        return frozenset(tag for tag, system in self._tags() if system)

    # ------------------------------------------------------------ times

    @property
    def created_at(self) -> datetime | None:
        """When this object was created (timezone-aware, UTC)."""
        return _utc(self._row.get("created_at"))

    # ------------------------------------------------------------ children

    def _child_rows(self) -> list[Row]:
        return []

    def _make_child(self, row: Row) -> "ClientObject":
        raise NotImplementedError

    def _child_visible(self, row: Row) -> bool:
        return True

    def __iter__(self) -> Iterator[Any]:
        for row in self._child_rows():
            if self._child_visible(row):
                yield self._make_child(row)

    def _child_pathspec(self, child_id: Any) -> str:
        return f"{self.pathspec}/{child_id}"

    def __getitem__(self, child_id: Any) -> Any:
        if self._CHILD is None:
            raise TypeError(f"{type(self).__name__} has no children")
        attempt = self._attempt if self._CHILD._ATTEMPTS else None
        return self._CHILD(self._child_pathspec(child_id), attempt=attempt, _context=self._context())

    def __contains__(self, child_id: Any) -> bool:
        """Whether the child exists; no namespace check."""
        if self._CHILD is None:
            return False
        try:
            self._CHILD(self._child_pathspec(child_id), _namespace_check=False, _context=self._context())
        except (NotFound, InvalidPathspec):
            return False
        return True

    def _ipython_key_completions_(self) -> list[str]:
        return [child.id for child in self]

    # ------------------------------------------------------------ dunder

    def __str__(self) -> str:
        """The short form, as Metaflow prints it: ``Run('HelloFlow/3')`` (used in messages)."""
        parts = getattr(self, "_parts", None)
        path = "/".join(parts) if parts else ""
        attempt = getattr(self, "_attempt", None)
        extra = f", attempt={attempt}" if attempt is not None else ""
        return f"{type(self).__name__}('{path}'{extra})"

    def _repr_details(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        """The short form, what it is now and which store it reads.

        Example
        -------
        >>> # Run('TrainFlow/5') [succeeded, anne, 2026-11-29 18:00:03 UTC, in-memory store]
        """
        store = getattr(self, "_store", None)
        details = self._repr_details() if store is not None else []
        if store is not None:
            details.append(store_label(store.where))
        return f"{self} [{', '.join(details)}]" if details else str(self)

    def _repr_html_(self) -> str:
        """The rich display in a notebook (escaped: values may come from a colleague's store)."""
        return object_html(self)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ClientObject)
        return (self._parts, self._attempt, self._store.where) == (other._parts, other._attempt,
                                                                   other._store.where)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec, self._attempt))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.pathspec, self._attempt, self._store, self._namespace))


def _restore(cls: type[ClientObject], pathspec: str, attempt: int | None, store: "Store",
             namespace: str | None) -> ClientObject:
    return cls(pathspec, attempt=attempt, _context=(store, namespace))


def _filter_by_tags(obj: ClientObject, tags: tuple[str, ...]) -> bool:
    if not tags:
        return True
    have = obj.tags
    return all(tag in have for tag in tags)
