"""The Client API: read runs back as ``Flow``, ``Run``, ``Step``, ``Task``, ``DataArtifact``.

The objects behave like Metaflow's (``Flow('HelloFlow').latest_run.data.x``) with a
few deliberate fixes (SPEC §5): tag edits never change ``created_at``,
``namespace("")`` is the global namespace, a normal run's ``origin_pathspec`` is
``None`` and ``Code.flowspec`` is ``str``.

One generic base class, :class:`ClientObject`, drives every level through class
attributes (its name, pathspec shape, parent and child classes). Every object

* remembers the store it reads (``store=``, else the ``use_store`` one, else the
  discovered ``runstore.db``) and the namespace current when it was created;
* lists its children newest first (``iter(obj)``), gives one by id (``obj[id]``,
  namespace-checked) and tests existence (``id in obj``, not namespace-checked);
* never reads an artifact's payload until ``.data`` is asked for.

Times are timezone-aware ``datetime`` objects in UTC — the same instants the SQL
views show as ISO-8601 ``…Z`` text.

Example
-------
>>> from runstore import Store, Flow, use_store, namespace
>>> store = Store(":memory:")
>>> run = store.create_run("HelloFlow", user="anne")
>>> with use_store(store):
...     _ = namespace("user:anne")
...     Flow("HelloFlow").latest_run
Run('HelloFlow/1')
"""

from __future__ import annotations

import io
import json
from collections import namedtuple
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, NamedTuple

from .errors import InvalidPathspec, NamespaceMismatch, NotFound, TaggingError
from .namespace import get_namespace, resolve_store
from .store import effective_status
from .tags import validate_tag

if TYPE_CHECKING:
    import os
    import tarfile
    import tempfile

    from .store import Store

__all__ = [
    "ClientObject",
    "Runstore",
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "TaskData",
    "Code",
    "TaskException",
    "Metadata",
]

Row = dict[str, Any]

#: Runs fetched by the first query of a listing; later pages grow up to _MAX_PAGE.
_FIRST_PAGE = 20
_MAX_PAGE = 1000


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


class Metadata(NamedTuple):
    """One metadata record of a task attempt (``task.metadata``).

    Example
    -------
    >>> Metadata("user", "anne", None, "user", "F/1/start/2", 0).value
    'anne'
    """

    name: str
    value: str
    created_at: datetime | None
    type: str
    task: str
    attempt: int


class TaskException:
    """The exception a task attempt raised: ``type``, ``message`` and ``traceback``.

    ``str()`` is the formatted traceback. ``exception`` and ``stacktrace`` are the
    Metaflow names of ``message`` and ``traceback``.

    Example
    -------
    >>> exc = TaskException("builtins.ValueError", "bad", "Traceback ...\\nValueError: bad\\n")
    >>> exc.type, exc.message
    ('builtins.ValueError', 'bad')
    """

    def __init__(self, type: str, message: str, traceback: str) -> None:
        self.type = type
        self.message = message
        self.traceback = traceback

    @property
    def exception(self) -> str:
        """The message (Metaflow's name for it)."""
        return self.message

    @property
    def stacktrace(self) -> str:
        """The traceback (Metaflow's name for it)."""
        return self.traceback

    def __str__(self) -> str:
        return self.traceback or f"{self.type}: {self.message}"

    def __repr__(self) -> str:
        return f"TaskException({self.type!r}, {self.message!r})"


class Code:
    """The code snapshot of a run: the flow's directory as a deterministic tar.gz.

    Example
    -------
    >>> # run.code.script_name -> 'hello.py'; run.code.flowspec -> the script's text
    """

    def __init__(self, store: "Store", row: Row) -> None:
        self._store = store
        self._row = row
        self._bytes: bytes | None = None
        self._tar: "tarfile.TarFile | None" = None

    @property
    def script_name(self) -> str:
        """The flow script's file name, e.g. ``hello.py``."""
        return self._row["script_name"]

    @property
    def path(self) -> None:
        """Always ``None``: the archive lives inside the store, not at a path."""
        return None

    @property
    def sha(self) -> str:
        """The archive's blob key (sha256 of the tar.gz bytes)."""
        return self._row["blob_key"]

    def _data(self) -> bytes:
        if self._bytes is None:
            self._bytes = self._store.load_value(self._row["blob_key"], "bytes")
        return self._bytes

    @property
    def tarball(self) -> "tarfile.TarFile":
        """The archive as an open :class:`tarfile.TarFile`."""
        if self._tar is None:
            import tarfile

            self._tar = tarfile.open(fileobj=io.BytesIO(self._data()), mode="r:gz")
        return self._tar

    def _member_text(self, name: str) -> str | None:
        try:
            handle = self.tarball.extractfile(name)
        except KeyError:
            return None
        return None if handle is None else handle.read().decode("utf-8")

    @property
    def info(self) -> dict[str, Any]:
        """The archive's ``.runstore/INFO`` (``flow_name``, ``script``, ``runstore_version``)."""
        text = self._member_text(".runstore/INFO")
        return json.loads(text) if text else {}

    @property
    def flowspec(self) -> str:
        """The text of the flow script (``str``)."""
        name = self.info.get("script") or self.script_name
        text = self._member_text(name)
        if text is None:
            raise NotFound(f"the code package has no file {name!r}")
        return text

    def extract(self) -> "tempfile.TemporaryDirectory[str]":
        """Unpack the archive into a new temporary directory and return it."""
        import tempfile

        import tarfile

        tmp = tempfile.TemporaryDirectory(prefix="runstore-code-")
        if hasattr(tarfile, "data_filter"):  # refuse absolute paths and links out of the tree
            self.tarball.extractall(tmp.name, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            self.tarball.extractall(tmp.name)
        return tmp

    def __repr__(self) -> str:
        return f"<Code: {self.script_name}>"


class ClientObject:
    """What every client object shares: pathspec, store, namespace, children.

    Subclasses set ``_NAME`` (its pathspec shape, for messages), ``_DEPTH`` (number
    of pathspec components), ``_CHILD`` (the class of its children, or None) and
    implement ``_lookup`` / ``_child_rows`` / ``_tag_run_id``.

    Parameters
    ----------
    pathspec : str
        ``Flow/RunNumber/Step/TaskId/Artifact`` cut to this class's depth.
    attempt : int, optional
        Only for :class:`Task` and :class:`DataArtifact`: read this attempt.
    store : Store or path, optional
        The store to read; default: the ``use_store`` one, else the discovered file.
    """

    _NAME: ClassVar[str] = ""
    _EXPECTS: ClassVar[str] = ""
    _DEPTH: ClassVar[int] = 0
    _CHILD: ClassVar[type["ClientObject"] | None] = None

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
            raise NotFound(f"{self!r} does not exist")
        self._row = row
        if self._namespace is not None and not self._in_namespace(self._namespace):
            raise NamespaceMismatch(self._mismatch_message(self._namespace))

    # ------------------------------------------------------------ construction

    @classmethod
    def _check_attempt(cls, attempt: Any) -> int | None:
        if attempt is None:
            return None
        if cls not in (Task, DataArtifact):
            raise NotFound("Attempts can only be specified for Task or DataArtifact")
        if isinstance(attempt, bool) or not isinstance(attempt, int):
            try:
                attempt = int(attempt)
            except (TypeError, ValueError):
                raise NotFound("Attempt can only be an integer") from None
        if attempt < 0:
            raise NotFound("Attempt can only be non-negative")
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
        obj._run_row = row if cls is Run else parent._row if isinstance(parent, Run) else parent._run_row
        return obj

    def _context(self) -> tuple["Store", str | None]:
        return (self._store, self._namespace)

    def _lookup(self) -> Row | None:
        raise NotImplementedError

    def _find_run(self) -> Row | None:
        flow, number = self._parts[0], self._parts[1]
        try:
            run_number = int(number)
        except ValueError:
            return None
        if str(run_number) != number:
            return None
        self._run_row = self._store.find_run(flow, run_number)
        return self._run_row

    # ------------------------------------------------------------ namespace

    def _in_namespace(self, ns: str) -> bool:
        assert self._run_row is not None
        return self._store.run_has_tag(self._run_row["run_id"], ns)

    def _mismatch_message(self, ns: str) -> str:
        owner = self._run_row["namespace"] if self._run_row else None
        where = f"; it belongs to namespace '{owner}'" if owner else ""
        switch = f"namespace('{owner}')" if owner else "namespace('<tag>')"
        return (
            f"Object not in namespace '{ns}': {self!r} is outside it{where}. "
            f"Switch with {switch}, or namespace(None) to see every namespace"
        )

    def is_in_namespace(self) -> bool:
        """Whether this object is in the *current* namespace (not the captured one).

        Example
        -------
        >>> # Run('HelloFlow/3').is_in_namespace() -> True for your own runs
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
        >>> # 'crazy_test' in Run('HelloFlow/3')['start'].task.tags -> True
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
        attempt = self._attempt if self._CHILD is DataArtifact else None
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

    def __repr__(self) -> str:
        parts = getattr(self, "_parts", None)
        path = "/".join(parts) if parts else ""
        attempt = getattr(self, "_attempt", None)
        extra = f", attempt={attempt}" if attempt is not None else ""
        return f"{type(self).__name__}('{path}'{extra})"

    __str__ = __repr__

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


# ---------------------------------------------------------------- root


class Runstore:
    """The root: every flow with at least one run in the current namespace.

    runstore's counterpart of Metaflow's ``Metaflow()``.

    Parameters
    ----------
    store : Store or path, optional
        The store to read (default: ``use_store``'s, else the discovered file).

    Example
    -------
    >>> from runstore import Store, Runstore, namespace
    >>> store = Store(":memory:")
    >>> _ = store.create_run("HelloFlow", user="anne")
    >>> _ = namespace(None)
    >>> Runstore(store=store).flows
    [Flow('HelloFlow')]
    """

    def __init__(self, store: "Store | str | os.PathLike[str] | None" = None) -> None:
        self._store = resolve_store(store)
        self._namespace = get_namespace()

    @property
    def flows(self) -> list["Flow"]:
        """The visible flows, newest first (by when each flow first ran)."""
        return list(self)

    def __iter__(self) -> Iterator["Flow"]:
        for row in self._store.list_flows(self._namespace):
            flow = Flow.__new__(Flow)
            flow._store, flow._namespace, flow._attempt = self._store, self._namespace, None
            flow._parts, flow._row, flow._run_row = [row["name"]], row, None
            yield flow

    def __getitem__(self, name: str) -> "Flow":
        return Flow(name, _context=(self._store, self._namespace))

    def __contains__(self, name: str) -> bool:
        return self._store.find_flow(name) is not None

    def __repr__(self) -> str:
        return "Runstore()"


# ---------------------------------------------------------------- flow


class Flow(ClientObject):
    """A flow: all its runs, newest first.

    Parameters
    ----------
    name : str
        The flow's class name, e.g. ``"HelloFlow"``.
    store : Store or path, optional
        The store to read.

    Raises
    ------
    NotFound
        The flow never ran in this store.
    NamespaceMismatch
        It has no run in the current namespace.

    Example
    -------
    >>> from runstore import Store, Flow, namespace
    >>> store = Store(":memory:")
    >>> _ = store.create_run("HelloFlow", user="anne")
    >>> _ = namespace("user:anne")
    >>> flow = Flow("HelloFlow", store=store)
    >>> flow.latest_run, "1" in flow, list(flow)
    (Run('HelloFlow/1'), True, [Run('HelloFlow/1')])
    """

    _NAME = "flow"
    _EXPECTS = "Flow('FlowName')"
    _DEPTH = 1

    def _lookup(self) -> Row | None:
        return self._store.find_flow(self._parts[0])

    def _in_namespace(self, ns: str) -> bool:
        return self._store.flow_in_namespace(self._row["flow_id"], ns)

    def _mismatch_message(self, ns: str) -> str:
        other = self._store.latest_namespace(self._row["flow_id"])
        hint = f"namespace('{other}')" if other else "namespace('<tag>')"
        return (f"Object not in namespace '{ns}': {self!r} has no run in it. "
                f"Switch with {hint}, or namespace(None) to see every namespace")

    @property
    def tags(self) -> frozenset[str]:
        """Flows carry no tags: always empty."""
        return frozenset()

    user_tags = tags
    system_tags = tags

    def _runs(self, tags: tuple[str, ...] = (), successful: bool = False,
              first_page: int = _FIRST_PAGE) -> Iterator["Run"]:
        flow_id = self._row["flow_id"]
        before: float | None = None
        seen: set[int] = set()
        size = first_page
        while True:
            rows = self._store.list_runs(flow_id, namespace=self._namespace, tags=tags,
                                         successful=successful, before=before, limit=size)
            for row in rows:
                if row["run_id"] not in seen:
                    yield Run._from_row(self, [self._parts[0], str(row["run_number"])], row)
            if len(rows) < size:
                return
            last = rows[-1]["created_at"]
            if before is not None and last == before:
                size *= 2  # a page full of runs created at the same instant: widen it
            else:
                seen = set()
                size = min(max(size * 5, 100), _MAX_PAGE)
            seen |= {row["run_id"] for row in rows if row["created_at"] == last}
            before = last

    def __iter__(self) -> Iterator["Run"]:
        """Runs in the namespace, newest first (fetched page by page)."""
        return self._runs()

    def runs(self, *tags: str) -> Iterator["Run"]:
        """Runs in the namespace carrying **all** of ``tags``, newest first.

        Example
        -------
        >>> # list(Flow('HelloFlow').runs('crazy_test', 'gpu'))[0]
        """
        return self._runs(tuple(validate_tag(t) for t in tags))

    @property
    def latest_run(self) -> "Run | None":
        """The newest run in the namespace, whatever its status; None if there is none."""
        return next(self._runs(first_page=1), None)

    @property
    def latest_successful_run(self) -> "Run | None":
        """The newest run in the namespace that succeeded; None if there is none."""
        return next(self._runs(successful=True, first_page=1), None)

    def __getitem__(self, run_id: Any) -> "Run":
        return Run(f"{self._parts[0]}/{run_id}", _context=self._context())

    def __contains__(self, run_id: Any) -> bool:
        try:
            number = int(run_id)
        except (TypeError, ValueError):
            return False
        return str(number) == str(run_id) and self._store.run_exists(self._parts[0], number)


# ---------------------------------------------------------------- run


class Run(ClientObject):
    """One run of a flow: its steps, status, data, code and tags.

    Parameters
    ----------
    pathspec : str
        ``"FlowName/RunNumber"``, e.g. ``"HelloFlow/3"``.
    store : Store or path, optional
        The store to read.

    Raises
    ------
    InvalidPathspec
        ``Expects Run('FlowName/RunID')``.
    NotFound
        ``Run('HelloFlow/9') does not exist`` (also a ``KeyError``).
    NamespaceMismatch
        The run is outside the current namespace; the message says how to switch.

    Example
    -------
    >>> from runstore import Store, Run, namespace
    >>> store = Store(":memory:")
    >>> _ = store.create_run("HelloFlow", user="anne", user_tags=["exp"])
    >>> _ = namespace("user:anne")
    >>> run = Run("HelloFlow/1", store=store)
    >>> run.id, run.user, sorted(run.user_tags)
    ('1', 'anne', ['exp'])
    """

    _NAME = "run"
    _EXPECTS = "Run('FlowName/RunID')"
    _DEPTH = 2

    def _lookup(self) -> Row | None:
        return self._find_run()

    @property
    def _fresh(self) -> Row:
        row = self._store.find_run_by_id(self._row["run_id"])
        if row is None:
            raise NotFound(f"{self!r} does not exist any more")
        return row

    # ------------------------------------------------------------ identity

    @property
    def run_number(self) -> int:
        """The per-flow run number (``3`` in ``HelloFlow/3``)."""
        return self._row["run_number"]

    @property
    def uuid(self) -> str:
        """The run's globally unique id (kept when stores are merged)."""
        return self._row["uuid"]

    @property
    def user(self) -> str | None:
        """Who started the run."""
        return self._row["user_name"]

    @property
    def namespace(self) -> str:
        """The run's namespace tag: ``user:<name>`` or ``production:<token>``."""
        return self._row["namespace"]

    @property
    def invocation(self) -> str:
        """How the run was started: ``run``, ``resume`` or ``trigger``."""
        return self._row["invocation"]

    @property
    def parent(self) -> Flow:
        """The run's :class:`Flow` (no namespace check)."""
        return Flow(self._parts[0], _namespace_check=False, _context=self._context())

    # ------------------------------------------------------------ status

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed`` or ``crashed`` (owner gone while running).

        Example
        -------
        >>> # Run('HelloFlow/3').status -> 'succeeded'
        """
        row = self._fresh
        return effective_status(row["status"], row["heartbeat_at"], row["created_at"],
                                row["owner_host"], row["owner_pid"])

    @property
    def successful(self) -> bool:
        """True when the run succeeded (its end step completed)."""
        return self._fresh["status"] == "succeeded"

    @property
    def finished(self) -> bool:
        """True when the run has ended, successfully or not (a crashed run never finished)."""
        return self._fresh["status"] in ("succeeded", "failed")

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended (UTC); None while running or when it crashed."""
        row = self._fresh
        return _utc(row["finished_at"]) if row["status"] in ("succeeded", "failed") else None

    @property
    def origin_pathspec(self) -> str | None:
        """``Flow/<origin run>`` for a resumed run; None for a normal run."""
        if self._row["origin_pathspec"]:
            return self._row["origin_pathspec"]
        if self._row["origin_run_id"] is not None:
            origin = self._store.find_run_by_id(self._row["origin_run_id"])
            if origin is not None:
                return f"{origin['flow']}/{origin['run_number']}"
        return None

    # ------------------------------------------------------------ steps

    def _child_rows(self) -> list[Row]:
        return self._store.list_steps(self._row["run_id"])

    def _child_visible(self, row: Row) -> bool:
        return not row["name"].startswith("_")

    def _make_child(self, row: Row) -> "Step":
        return Step._from_row(self, [*self._parts, row["name"]], row)

    def __iter__(self) -> Iterator["Step"]:
        """Steps newest first; the ``_parameters`` pseudo-step is hidden (``run['_parameters']`` works)."""
        return super().__iter__()

    def steps(self, *tags: str) -> Iterator["Step"]:
        """The steps, if the run carries all ``tags`` (tags live on runs)."""
        return iter(self) if _filter_by_tags(self, tags) else iter(())

    def __getitem__(self, step: str) -> "Step":
        row = self._store.find_step(self._row["run_id"], step) if isinstance(step, str) else None
        if row is None:
            raise NotFound(f"Step('{self.pathspec}/{step}') does not exist")
        return self._make_child(row)

    def __contains__(self, step: Any) -> bool:
        return isinstance(step, str) and self._store.find_step(self._row["run_id"], step) is not None

    @property
    def end_task(self) -> "Task | None":
        """The task of the end step, or None while the run has not reached it."""
        row = self._store.find_step(self._row["run_id"], self._row["end_step"])
        if row is None:
            return None
        return self._make_child(row).task

    @property
    def data(self) -> "TaskData | None":
        """The end task's artifacts (``run.data.model``); None before the end step ran."""
        end = self.end_task
        return None if end is None else end.data

    @property
    def code(self) -> Code | None:
        """The run's code snapshot, or None when none was recorded."""
        code_id = self._row["code_id"]
        if code_id is None:
            code_id = self._fresh["code_id"]
        if code_id is None:
            return None
        row = self._store.find_code_package(code_id)
        return None if row is None else Code(self._store, row)

    # ------------------------------------------------------------ tag edits

    def add_tag(self, tag: str | Iterable[str]) -> None:
        """Add one user tag (an iterable of tags is accepted too).

        Example
        -------
        >>> # Run('HelloFlow/3').add_tag('best')
        """
        self.replace_tags([], [tag] if isinstance(tag, (str, bytes)) else tag)

    def add_tags(self, tags: Iterable[str]) -> None:
        """Add user tags; tags equal to a system tag are ignored."""
        self.replace_tags([], tags)

    def remove_tag(self, tag: str | Iterable[str]) -> None:
        """Remove one user tag (absent tags are ignored; system tags cannot be removed)."""
        self.replace_tags([tag] if isinstance(tag, (str, bytes)) else tag, [])

    def remove_tags(self, tags: Iterable[str]) -> None:
        """Remove user tags."""
        self.replace_tags(tags, [])

    def replace_tag(self, tag_to_remove: str | Iterable[str], tag_to_add: str | Iterable[str]) -> None:
        """Remove one tag and add another, atomically."""
        self.replace_tags([tag_to_remove] if isinstance(tag_to_remove, (str, bytes)) else tag_to_remove,
                          [tag_to_add] if isinstance(tag_to_add, (str, bytes)) else tag_to_add)

    def replace_tags(self, tags_to_remove: Iterable[str], tags_to_add: Iterable[str]) -> None:
        """Remove then add user tags in one transaction (safe against concurrent edits).

        Raises
        ------
        TaggingError
            Empty or too long tags, more than 50 user tags, removing a system tag,
            nothing to do.

        Example
        -------
        >>> # run.replace_tags(['candidate'], ['best'])
        """
        remove = _tag_list(tags_to_remove, "tags_to_remove")
        add = _tag_list(tags_to_add, "tags_to_add")
        if not remove and not add:
            raise TaggingError("Must add or remove at least one tag")
        self._store.update_run_tags(self._row["run_id"], add=add, remove=remove)


def _tag_list(tags: Any, what: str) -> list[str]:
    if isinstance(tags, (str, bytes)):
        raise TaggingError(f"{what} may not be a string")
    try:
        items = list(tags)
    except TypeError:
        raise TaggingError(f"{what} must be iterable") from None
    return [validate_tag(t) for t in items]


# ---------------------------------------------------------------- step


class Step(ClientObject):
    """One step of a run: its tasks (one, or one per foreach split).

    Example
    -------
    >>> # Step('HelloFlow/3/start').task.data.x
    """

    _NAME = "step"
    _EXPECTS = "Step('FlowName/RunID/StepName')"
    _DEPTH = 3

    def _lookup(self) -> Row | None:
        run = self._find_run()
        return None if run is None else self._store.find_step(run["run_id"], self._parts[2])

    @property
    def parent(self) -> Run:
        """The step's :class:`Run` (no namespace check)."""
        return Run("/".join(self._parts[:2]), _namespace_check=False, _context=self._context())

    def _child_rows(self) -> list[Row]:
        return self._store.list_tasks(self._row["step_id"])

    def _make_child(self, row: Row) -> "Task":
        return Task._from_row(self, [*self._parts, str(row["task_id"])], row)

    def __iter__(self) -> Iterator["Task"]:
        """Tasks newest first."""
        return super().__iter__()

    def tasks(self, *tags: str) -> Iterator["Task"]:
        """The tasks, if the run carries all ``tags``."""
        return iter(self) if _filter_by_tags(self, tags) else iter(())

    @property
    def task(self) -> "Task | None":
        """The newest task (for a foreach step: the last one created)."""
        rows = self._store.list_tasks(self._row["step_id"], limit=1)
        return self._make_child(rows[0]) if rows else None

    def __getitem__(self, task_id: Any) -> "Task":
        return Task(f"{self.pathspec}/{task_id}", _context=self._context())

    @property
    def finished_at(self) -> datetime | None:
        """When the step's last task finished; None while any task is unfinished."""
        return _utc(self._store.step_finished_at(self._row["step_id"]))

    @property
    def origin_pathspec(self) -> str | None:
        """``<origin run>/<step>`` for a resumed run; None otherwise."""
        origin = self.parent.origin_pathspec
        return None if origin is None else f"{origin}/{self.id}"


# ---------------------------------------------------------------- task


class Task(ClientObject):
    """One task: its artifacts, logs, outcome, metadata; attempt-aware.

    Parameters
    ----------
    pathspec : str
        ``"FlowName/RunNumber/StepName/TaskId"``.
    attempt : int, optional
        Read this attempt (retries). Default: artifacts and outcome of the latest
        finished attempt, logs of the latest started one.

    Example
    -------
    >>> # task = Task('HelloFlow/3/start/12'); task.data.x, task.stdout, task.successful
    """

    _NAME = "task"
    _EXPECTS = "Task('FlowName/RunID/StepName/TaskID')"
    _DEPTH = 4

    def _lookup(self) -> Row | None:
        run = self._find_run()
        if run is None:
            return None
        try:
            task_id = int(self._parts[3])
        except ValueError:
            return None
        row = self._store.find_task(run["run_id"], self._parts[2], task_id)
        if row is not None and self._attempt is not None and \
                self._store.find_attempt(task_id, self._attempt) is None:
            return None
        return row

    @property
    def parent(self) -> Step:
        """The task's :class:`Step` (no namespace check)."""
        return Step("/".join(self._parts[:3]), _namespace_check=False, _context=self._context())

    # ------------------------------------------------------------ attempts

    @property
    def _data_attempt(self) -> int:
        if self._attempt is not None:
            return self._attempt
        done = self._row.get("done_attempt")
        return self._row["attempt"] if done is None else done

    @property
    def current_attempt(self) -> int:
        """The attempt this object reads (explicit, else the latest finished one)."""
        return self._data_attempt

    def _outcome(self) -> Row | None:
        if self._attempt is not None:
            attempt = self._attempt
        else:
            fresh = self._store.find_task(self._row["run_id"], self._parts[2], self._row["task_id"])
            if fresh is None:
                return None
            attempt = fresh["done_attempt"]
            if attempt is None:
                return None
        return self._store.find_attempt(self._row["task_id"], attempt)

    @property
    def successful(self) -> bool:
        """True when the attempt (default: the latest finished one) succeeded."""
        outcome = self._outcome()
        return outcome is not None and outcome["status"] == "succeeded"

    @property
    def finished(self) -> bool:
        """True when the attempt succeeded, or failed and was handled by ``@catch``."""
        outcome = self._outcome()
        return outcome is not None and outcome["status"] in ("succeeded", "caught")

    @property
    def finished_at(self) -> datetime | None:
        """When the attempt finished, if :attr:`finished`; else None."""
        outcome = self._outcome()
        if outcome is None or outcome["status"] not in ("succeeded", "caught"):
            return None
        return _utc(outcome["finished_at"])

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``succeeded``, ``failed`` or ``caught`` (of this attempt)."""
        if self._attempt is None:
            fresh = self._store.find_task(self._row["run_id"], self._parts[2], self._row["task_id"])
            return fresh["status"] if fresh else self._row["status"]
        outcome = self._store.find_attempt(self._row["task_id"], self._attempt)
        return outcome["status"] if outcome else "pending"

    @property
    def exception(self) -> TaskException | None:
        """The exception the attempt raised (``type``, ``message``, ``traceback``), or None."""
        outcome = self._outcome()
        if outcome is None or not outcome["exception_type"]:
            return None
        return TaskException(outcome["exception_type"], outcome["exception_message"] or "",
                             outcome["traceback"] or "")

    @property
    def index(self) -> int | None:
        """The index of this task in its innermost foreach; None outside foreach."""
        return self._row["foreach_index"]

    @property
    def foreach_path(self) -> str | None:
        """``step:index[,step:index…]`` from the outermost foreach in; None outside foreach."""
        return self._row["foreach_path"]

    @property
    def origin_pathspec(self) -> str | None:
        """The task this one was cloned from by ``resume``; None for executed tasks."""
        return self._row["origin_pathspec"]

    @property
    def runtime_name(self) -> str | None:
        """The run's runtime (``local``), from its ``runtime:`` system tag."""
        for tag in self.system_tags:
            if tag.startswith("runtime:"):
                return tag.split(":", 1)[1]
        return None

    # ------------------------------------------------------------ logs

    @property
    def _log_attempt(self) -> int:
        return self._attempt if self._attempt is not None else self._row["attempt"]

    @property
    def stdout(self) -> str:
        """Everything the attempt printed to stdout (default: the latest started attempt)."""
        return self._store.read_log(self._row["task_id"], self._log_attempt, "stdout")

    @property
    def stderr(self) -> str:
        """Everything the attempt printed to stderr (default: the latest started attempt)."""
        return self._store.read_log(self._row["task_id"], self._log_attempt, "stderr")

    @property
    def stdout_size(self) -> int:
        """Size of :attr:`stdout` in bytes (UTF-8)."""
        outcome = self._store.find_attempt(self._row["task_id"], self._log_attempt)
        return outcome["stdout_size"] if outcome else 0

    @property
    def stderr_size(self) -> int:
        """Size of :attr:`stderr` in bytes (UTF-8)."""
        outcome = self._store.find_attempt(self._row["task_id"], self._log_attempt)
        return outcome["stderr_size"] if outcome else 0

    # ------------------------------------------------------------ metadata

    @property
    def metadata(self) -> list[Metadata]:
        """Metadata of every attempt (or of the chosen attempt), oldest first.

        Example
        -------
        >>> # [m.name for m in task.metadata] -> ['user', 'runtime', 'python_version', …]
        """
        rows = self._store.list_metadata(self._row["task_id"], self._attempt)
        return [Metadata(r["name"], r["value"], _utc(r["created_at"]), r["type"], self.pathspec, r["attempt"])
                for r in rows]

    @property
    def metadata_dict(self) -> dict[str, str]:
        """``{name: value}`` keeping the newest value of each name."""
        return {m.name: m.value for m in self.metadata}

    # ------------------------------------------------------------ artifacts

    def _child_rows(self) -> list[Row]:
        return self._store.list_artifacts(self._row["task_id"], self._data_attempt)

    def _make_child(self, row: Row) -> "DataArtifact":
        return DataArtifact._from_row(self, [*self._parts, row["name"]], row, self._attempt)

    def __iter__(self) -> Iterator["DataArtifact"]:
        """Public artifacts (names not starting with ``_``)."""
        return super().__iter__()

    def __getitem__(self, name: str) -> "DataArtifact":
        row = self._store.find_artifact(self._row["task_id"], self._data_attempt, name) \
            if isinstance(name, str) else None
        if row is None:
            raise NotFound(f"DataArtifact('{self.pathspec}/{name}') does not exist")
        return self._make_child(row)

    def __contains__(self, name: Any) -> bool:
        return isinstance(name, str) and \
            self._store.find_artifact(self._row["task_id"], self._data_attempt, name) is not None

    @property
    def artifacts(self) -> Any:
        """A namedtuple of the public artifacts: ``task.artifacts.x.data``."""
        children = list(self)
        cls = namedtuple("Artifacts", [a.id for a in children], rename=True)  # type: ignore[misc]
        return cls(*children)

    @property
    def data(self) -> "TaskData":
        """The public artifacts' values, loaded on attribute access: ``task.data.x``."""
        return TaskData(self)

    @property
    def code(self) -> Code | None:
        """The run's code snapshot, or None."""
        return self.parent.parent.code


# ---------------------------------------------------------------- artifacts


class DataArtifact(ClientObject):
    """One artifact: its value (loaded on demand) and what is known without loading it.

    Example
    -------
    >>> # art = Task('HelloFlow/3/start/12')['x']; art.size, art.encoding, art.data
    """

    _NAME = "artifact"
    _EXPECTS = "DataArtifact('FlowName/RunID/StepName/TaskID/ArtifactName')"
    _DEPTH = 5

    _loaded: bool = False
    _value: Any = None

    def _lookup(self) -> Row | None:
        run = self._find_run()
        if run is None:
            return None
        try:
            task_id = int(self._parts[3])
        except ValueError:
            return None
        task = self._store.find_task(run["run_id"], self._parts[2], task_id)
        if task is None:
            return None
        if self._attempt is not None:
            attempt = self._attempt
        else:
            attempt = task["attempt"] if task["done_attempt"] is None else task["done_attempt"]
        return self._store.find_artifact(task_id, attempt, self._parts[4])

    @property
    def parent(self) -> Task:
        """The artifact's :class:`Task`, with the same attempt (no namespace check)."""
        return Task("/".join(self._parts[:4]), attempt=self._attempt, _namespace_check=False,
                    _context=self._context())

    @property
    def data(self) -> Any:
        """The value, decoded on first access (pickles only when trusted)."""
        if not self._loaded:
            self._value = self._store.load_value(self._row["blob_key"], self._row["encoding"])
            self._loaded = True
        return self._value

    @property
    def size(self) -> int:
        """Size of the encoded value in bytes."""
        return self._row["size"]

    @property
    def sha(self) -> str:
        """The blob key: sha256 of the encoded value."""
        return self._row["blob_key"]

    @property
    def encoding(self) -> str:
        """How the value is stored: ``json``, ``bytes``, ``npy`` or ``pickle``."""
        return self._row["encoding"]

    @property
    def type(self) -> str:
        """The value's type name, e.g. ``float`` or ``numpy.ndarray``."""
        return self._row["type"]

    @property
    def attempt(self) -> int:
        """The task attempt that produced this artifact."""
        return self._row["attempt"]

    @property
    def finished_at(self) -> datetime | None:
        """Same as :attr:`created_at` (artifacts are written when their task ends)."""
        return self.created_at

    @property
    def origin_pathspec(self) -> str | None:
        """``<origin task>/<name>`` for a cloned task's artifact; None otherwise."""
        origin = self.parent.origin_pathspec
        return None if origin is None else f"{origin}/{self.id}"

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class TaskData:
    """Attribute access to a task's public artifacts, each loaded when first read.

    Example
    -------
    >>> # data = Task('HelloFlow/3/end/14').data; data.accuracy, 'model' in data
    """

    def __init__(self, task: Task) -> None:
        self._task = task
        self._artifacts = {a.id: a for a in task}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_task", "_artifacts"):
            raise AttributeError(name)
        try:
            return self._artifacts[name].data
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._artifacts

    def __dir__(self) -> list[str]:
        return list(self._artifacts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._artifacts)

    def __repr__(self) -> str:
        return f"<TaskData: {', '.join(self._artifacts)}>"


Flow._CHILD = Run
Run._CHILD = Step
Step._CHILD = Task
Task._CHILD = DataArtifact
