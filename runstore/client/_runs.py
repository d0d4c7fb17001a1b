"""The root, flows and runs: listings newest first through the store's indexed queries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from ..errors import NotFound, ParameterError, RunstoreError, TaggingError
from ..namespace import get_namespace, resolve_store
from ..schema import FINAL_RUN_STATUSES
from ..store import effective_status, param_texts
from ..tags import is_reserved, validate_tag
from ..util import parse_id
from ._base import ClientObject, Row, _filter_by_tags, _utc
from ._display import MAX_ROWS, runs_html, store_label
from ._values import Code

if TYPE_CHECKING:
    import os

    from ..store import Store
    from ._tasks import Step, Task
    from ._values import TaskData

__all__ = ["Runstore", "Flow", "Run"]

#: Runs fetched by the first query of a listing; later pages grow up to _MAX_PAGE.
_FIRST_PAGE = 20
_MAX_PAGE = 1000


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
    [Flow('HelloFlow') [in-memory store]]
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
    >>> str(flow.latest_run), "1" in flow, [r.id for r in flow]
    ("Run('HelloFlow/1')", True, ['1'])
    """

    _EXPECTS = "Flow('FlowName')"
    _DEPTH = 1

    def _lookup(self) -> Row | None:
        return self._store.find_flow(self._parts[0])

    def _in_namespace(self, ns: str) -> bool:
        return self._store.flow_in_namespace(self._row["flow_id"], ns)

    def _mismatch_message(self, ns: str) -> str:
        other = self._store.latest_namespace(self._row["flow_id"])
        hint = f"namespace('{other}')" if other else "namespace('<tag>')"
        return (f"Object not in namespace '{ns}': {self} has no run in it. "
                f"Switch with {hint}, or namespace(None) to see every namespace")

    @property
    def tags(self) -> frozenset[str]:
        """Flows carry no tags: always empty."""
        return frozenset()

    user_tags = tags
    system_tags = tags

    def _runs(self, tags: tuple[str, ...] = (), successful: bool = False,
              first_page: int = _FIRST_PAGE, where: dict[str, Any] | None = None) -> Iterator["Run"]:
        flow_id = self._row["flow_id"]
        before: float | None = None
        seen: set[int] = set()
        size = first_page
        while True:
            rows = self._store.list_runs(flow_id, namespace=self._namespace, tags=tags,
                                         successful=successful, before=before, limit=size, param_values=where)
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

    def runs(self, *tags: str, where: Mapping[str, Any] | None = None) -> "Runs":
        """Runs in the namespace carrying **all** of ``tags`` (and parameters ``where``), newest first.

        An iterator (fetched page by page) that also shows itself as a table in a
        notebook (status, user, times, tags, parameters of the first 50).

        ``where={"alpha": 0.1, "x": "a"}`` keeps the runs whose parameters equal all of
        these values, compared as JSON: ``0.1`` matches the stored float, ``1`` both
        ``1`` and ``1.0``, ``True`` only a boolean, ``None`` only null, ``"a"`` the
        string; a list or dict matches the same JSON text (keys in the same order).
        A value JSON cannot hold (a tuple, a set, NaN, an object) raises
        :class:`~runstore.errors.ParameterError`. A parameter larger than 64 KiB or not
        JSON never matches. Served by the ``run_params_by_value`` index (docs/client.md).

        Example
        -------
        >>> from runstore import Store, Flow, namespace
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne", user_tags=["crazy_test", "gpu"])
        >>> _ = store.create_run("HelloFlow", user="anne", user_tags=["crazy_test"])
        >>> _ = namespace("user:anne")
        >>> [str(r) for r in Flow("HelloFlow", store=store).runs("crazy_test", "gpu")]
        ["Run('HelloFlow/1')"]
        >>> for alpha in (0.1, 0.5):
        ...     run = store.create_run("HelloFlow", user="anne")
        ...     task = store.create_task(run.run_id, "_parameters")
        ...     store.start_attempt(task, 0)
        ...     store.finish_attempt(task, 0, "succeeded", artifacts={"alpha": store.put_value(alpha)})
        >>> [str(r) for r in Flow("HelloFlow", store=store).runs(where={"alpha": 0.1})]
        ["Run('HelloFlow/3')"]
        """
        checked: dict[str, Any] | None = None
        if where is not None:
            if not isinstance(where, Mapping) or not all(isinstance(k, str) for k in where):
                raise ParameterError("where= is a dict of parameter names to values, not "
                                     f"{type(where).__name__}")
            checked = dict(where)
            for name, value in checked.items():
                param_texts(name, value)  # a value JSON cannot hold fails here, not at the first next()
        return Runs(self, tuple(validate_tag(t) for t in tags), checked or None)

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
        number = parse_id(run_id)
        return number is not None and self._store.run_exists(self._parts[0], number)


class Runs(Iterator["Run"]):
    """The runs ``Flow.runs(*tags)`` returns: an iterator, and a table in a notebook.

    ``next()`` walks it once as any iterator; ``_repr_html_`` (the notebook display) and
    ``repr`` read the first runs again without consuming it.

    Example
    -------
    >>> from runstore import Store, Flow, namespace
    >>> store = Store(":memory:")
    >>> _ = store.create_run("HelloFlow", user="anne")
    >>> _ = namespace(None)
    >>> runs = Flow("HelloFlow", store=store).runs()
    >>> "HelloFlow/1" in runs._repr_html_(), next(runs).id
    (True, '1')
    """

    def __init__(self, flow: Flow, tags: tuple[str, ...] = (), where: dict[str, Any] | None = None) -> None:
        self._flow, self._tags, self._where = flow, tags, where
        self._walk = flow._runs(tags, where=where)

    def __iter__(self) -> "Runs":
        return self

    def __next__(self) -> "Run":
        return next(self._walk)

    def __repr__(self) -> str:
        tags = f", tags={list(self._tags)}" if self._tags else ""
        where = f", where={self._where!r}" if self._where else ""
        return f"<runs of {self._flow}{tags}{where} in {store_label(self._flow._store.where)}>"

    def _repr_html_(self) -> str:
        title = f"{self._flow.id} runs" + (f" tagged {' '.join(self._tags)}" if self._tags else "")
        title += f" where {self._where!r}" if self._where else ""
        return runs_html(self._flow._runs(self._tags, first_page=MAX_ROWS + 1, where=self._where),
                         self._flow._store.where, title)


class RunList(list):  # type: ignore[type-arg]
    """A list of runs that shows itself as a table in a notebook.

    Example
    -------
    >>> # RunList(Flow("TrainFlow").runs("sweep"))   # in a notebook cell: a table
    """

    def _repr_html_(self) -> str:
        where = self[0]._store.where if self else ":memory:"
        return runs_html(self, where, title="runs")


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

    _EXPECTS = "Run('FlowName/RunID')"
    _DEPTH = 2

    def _lookup(self) -> Row | None:
        return self._find_run()

    _tag_list: list[tuple[str, bool]] | None = None

    def _tags(self) -> list[tuple[str, bool]]:
        # A run's tags as read with the run (one query for both), refreshed by this
        # object's own edits; steps, tasks and artifacts read the current ones.
        if self._tag_list is None:
            raw = self._row.get("tags_json")
            self._tag_list = sorted((tag, bool(system)) for tag, system in json.loads(raw)) if raw \
                else self._store.run_tags(self._row["run_id"])
        return self._tag_list

    def _in_namespace(self, ns: str) -> bool:
        # a reserved namespace (user:, production:) counts only as a system tag (SPEC §13)
        reserved = is_reserved(ns)
        return any(tag == ns and (system or not reserved) for tag, system in self._tags())

    @property
    def _fresh(self) -> Row:
        row = self._store.find_run_by_id(self._row["run_id"])
        if row is None:
            raise NotFound(f"{self} does not exist any more")
        return row

    def _repr_details(self) -> list[str]:
        try:
            created = self.created_at
            return [str(v) for v in (self.status, self.user,
                                     created.strftime("%Y-%m-%d %H:%M:%S UTC") if created else None) if v]
        except (RunstoreError, LookupError):
            return []

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
        """The run's namespace tag: ``user:<name>`` or ``production:<Flow>-<gen>-<id>``."""
        return self._row["namespace"]

    @property
    def invocation(self) -> str:
        """How the run was started: ``run``, ``resume`` or ``trigger``."""
        return self._row["invocation"]

    @property
    def parent(self) -> Flow:
        """The run's :class:`Flow` (no namespace check)."""
        return self._PARENT(self._parts[0], _namespace_check=False, _context=self._context())

    # ------------------------------------------------------------ status

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed``, ``interrupted`` (Ctrl-C or SIGTERM stopped it) or
        ``crashed`` (owner gone while running).

        Example
        -------
        >>> from runstore import Store, Run, namespace
        >>> store = Store(":memory:")
        >>> record = store.create_run("HelloFlow", user="anne")
        >>> _ = namespace(None)
        >>> run = Run("HelloFlow/1", store=store)
        >>> run.status
        'running'
        >>> store.finish_run(record.run_id, "failed")
        >>> run.status, run.successful
        ('failed', False)
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
        """True when the run's end step finished (Metaflow's meaning: ``end_task.finished``).

        So False for a run that failed before its end step completed, while it runs,
        and for a crashed run; to wait for any outcome, poll ``run.status != "running"``.

        Example
        -------
        >>> from runstore import FlowSpec, Runner, Store, step
        >>> class Done(FlowSpec):
        ...     @step
        ...     def start(self):
        ...         self.next(self.end)
        ...     @step
        ...     def end(self):
        ...         pass
        >>> run = Runner(Done, store=Store(":memory:"), quiet=True).run()
        >>> run.finished, run.end_task.finished
        (True, True)
        """
        if self._fresh["status"] not in FINAL_RUN_STATUSES:  # running, or crashed: not (yet) finished
            return False
        end = self.end_task
        return end is not None and end.finished

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended (UTC), interrupted runs included; None while running or when it crashed."""
        row = self._fresh
        return _utc(row["finished_at"]) if row["status"] in FINAL_RUN_STATUSES else None

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
        return self._CHILD._from_row(  # type: ignore[union-attr]
            self, [*self._parts, row["name"]], row)

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
        >>> from runstore import Store, Run, namespace
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne")
        >>> _ = namespace(None)
        >>> run = Run("HelloFlow/1", store=store)
        >>> run.add_tag("best")
        >>> sorted(run.user_tags)
        ['best']
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
        >>> from runstore import Store, Run, namespace
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne", user_tags=["candidate"])
        >>> _ = namespace(None)
        >>> run = Run("HelloFlow/1", store=store)
        >>> run.replace_tags(["candidate"], ["best", "v2"])
        >>> sorted(run.user_tags)
        ['best', 'v2']
        """
        remove = _tag_list(tags_to_remove, "tags_to_remove")
        add = _tag_list(tags_to_add, "tags_to_add")
        if not remove and not add:
            raise TaggingError("Must add or remove at least one tag")
        self._tag_list = self._store.update_run_tags(self._row["run_id"], add=add, remove=remove)


def _tag_list(tags: Any, what: str) -> list[str]:
    if isinstance(tags, (str, bytes)):
        raise TaggingError(f"{what} may not be a string")
    try:
        items = list(tags)
    except TypeError:
        raise TaggingError(f"{what} must be iterable") from None
    return [validate_tag(t) for t in items]
