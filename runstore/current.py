"""``current``: what the running task knows about itself, from a ContextVar.

Inside a step, ``current.flow_name``, ``current.run_id``, ``current.step_name``,
``current.task_id``, ``current.retry_count``, ``current.pathspec`` ... describe the
task that is running *in this context*: tasks that run concurrently in one process
(threads started with ``contextvars.copy_context().run``) each see their own. Outside
a flow ``current.is_running_flow`` is False and every id is ``None``.

Example
-------
>>> from runstore import current
>>> current.is_running_flow, current.run_id, current.pathspec
(False, None, None)
>>> "run_id" in current
False
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

__all__ = ["current", "Current", "TaskContext", "task_context"]


class TaskContext:
    """Everything ``current`` reports about one running task (set by the runtime).

    A plain class, not a dataclass: it is on the start-up path of every flow run.
    """

    __slots__ = ("flow_name", "run_id", "step_name", "task_id", "retry_count", "origin_run_id",
                 "namespace", "username", "parameter_names", "tags", "is_production", "graph", "store", "extra")

    def __init__(self, flow_name: str, run_id: str, step_name: str, task_id: str, retry_count: int = 0,
                 origin_run_id: str | None = None, namespace: str | None = None, username: str | None = None,
                 parameter_names: tuple[str, ...] = (), tags: frozenset[str] = frozenset(),
                 is_production: bool = False, graph: dict[str, Any] | None = None, store: Any = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.flow_name = flow_name
        self.run_id = run_id
        self.step_name = step_name
        self.task_id = task_id
        self.retry_count = retry_count
        self.origin_run_id = origin_run_id
        self.namespace = namespace
        self.username = username
        self.parameter_names = parameter_names
        self.tags = tags
        self.is_production = is_production
        self.graph = graph
        self.store = store
        self.extra = extra or {}


_context: ContextVar[TaskContext | None] = ContextVar("runstore_current", default=None)

#: The fields a run of a ``@project`` flow adds (``current.project_name`` ...).
_PROJECT_FIELDS = ("project_name", "branch_name", "project_flow_name", "is_user_branch")

_FIELDS = (
    "flow_name", "run_id", "origin_run_id", "step_name", "task_id", "retry_count", "pathspec",
    "namespace", "username", "parameter_names", "tags", "is_running_flow", "is_production",
)


@contextmanager
def task_context(ctx: TaskContext) -> Iterator[TaskContext]:
    """Make ``ctx`` what ``current`` reports inside the block (the runtime uses this)."""
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


def _field(name: str, doc: str) -> Any:
    """A read-only property reading ``name`` of the running task's context (``None`` outside)."""

    def get(self: "Current") -> Any:
        ctx = _context.get()
        return getattr(ctx, name) if ctx is not None else None

    return property(get, doc=doc)


def _extra(name: str, doc: str) -> Any:
    """A read-only property reading ``name`` of the running task's ``extra`` fields (``None`` when unset)."""

    def get(self: "Current") -> Any:
        ctx = _context.get()
        return ctx.extra.get(name) if ctx is not None else None

    return property(get, doc=doc)


class Current:
    """The object behind ``runstore.current``; read-only views of the running task.

    Example
    -------
    >>> from runstore import current
    >>> current.get("flow_name", "no flow")
    'no flow'
    """

    # ------------------------------------------------------------ ids, who and how

    flow_name = _field("flow_name", "Name of the flow class, e.g. ``'HelloFlow'``.")
    run_id = _field("run_id", "The run number as a string, e.g. ``'5'``.")
    origin_run_id = _field("origin_run_id", "The run this one resumed (``None`` for a normal run).")
    step_name = _field("step_name", "The running step's name.")
    task_id = _field("task_id", "The running task's id (store-wide integer, as a string).")
    retry_count = _field("retry_count", "The attempt number: 0 first, 1 on the first retry ...")
    namespace = _field("namespace", "The run's identity: ``user:<name>`` or ``production:<Flow>-<gen>-<id>``")
    username = _field("username", "The user the run is recorded under.")
    is_production = _field("is_production", "True in a run triggered in a production namespace; for a "
                                            "@project flow, True on a --production branch (as in Metaflow).")

    # ------------------------------------------------------------ @project (None without it)

    project_name = _extra("project_name", "The ``@project`` name, e.g. ``'fraud'``.")
    branch_name = _extra("branch_name", "The project branch: ``user.<name>``, ``test.<branch>``, ``prod`` or "
                                        "``prod.<branch>``.")
    project_flow_name = _extra("project_flow_name", "``<project>.<branch>.<Flow>``, the name deployments use.")
    is_user_branch = _extra("is_user_branch", "True on the default ``user.<name>`` branch.")

    @property
    def is_running_flow(self) -> bool:
        """True inside a step of a running flow."""
        return _context.get() is not None

    @property
    def pathspec(self) -> str | None:
        """``Flow/run/step/task`` of the running task."""
        ctx = _context.get()
        return f"{ctx.flow_name}/{ctx.run_id}/{ctx.step_name}/{ctx.task_id}" if ctx else None

    @property
    def parameter_names(self) -> list[str] | None:
        """Artifact names of the flow's parameters."""
        ctx = _context.get()
        return list(ctx.parameter_names) if ctx else None

    @property
    def tags(self) -> set[str] | None:
        """The run's user tags (from ``--tag``)."""
        ctx = _context.get()
        return set(ctx.tags) if ctx else None

    @property
    def graph(self) -> dict[str, Any]:
        """The flow graph as stored in ``_graph_info``."""
        ctx = _context.get()
        if ctx is None or ctx.graph is None:
            raise RuntimeError("Graph is not available")
        return ctx.graph

    @property
    def tempdir(self) -> str:
        """A directory for scratch files (the working directory, as in Metaflow)."""
        return "."

    @property
    def card(self) -> Any:
        """The step's cards (``current.card.append(...)``, ``current.card["id"]``); with ``@card`` only."""
        ctx = _context.get()
        collector = ctx.extra.get("card") if ctx is not None else None
        if collector is None:
            raise AttributeError("current.card exists only inside a step decorated with @card")
        return collector

    # ------------------------------------------------------------ client objects

    @property
    def run(self) -> Any:
        """The running ``Run`` as a client object (``None`` outside a flow)."""
        ctx = _context.get()
        if ctx is None:
            return None
        from .client import Run

        return Run(f"{ctx.flow_name}/{ctx.run_id}", store=ctx.store, _namespace_check=False)

    @property
    def task(self) -> Any:
        """The running ``Task`` as a client object (``None`` outside a flow)."""
        ctx = _context.get()
        if ctx is None:
            return None
        from .client import Task

        return Task(self.pathspec, store=ctx.store, _namespace_check=False)

    # ------------------------------------------------------------ mapping-ish

    def get(self, key: str, default: Any = None) -> Any:
        """The attribute ``key`` when it is set (not ``None``), else ``default``."""
        if key not in _FIELDS and key not in ("graph", "run", "task", "tempdir") and key not in _PROJECT_FIELDS:
            ctx = _context.get()
            return ctx.extra.get(key, default) if ctx else default
        try:
            value = getattr(self, key)
        except RuntimeError:
            return default
        return default if value is None else value

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def as_dict(self) -> dict[str, Any]:
        """Every SPEC §8 field (except the client objects) as a dict."""
        return {name: getattr(self, name) for name in _FIELDS}

    def __repr__(self) -> str:
        if not self.is_running_flow:
            return "<current: not running a flow>"
        return f"<current {self.pathspec} attempt {self.retry_count}>"


#: The one ``current`` object; its values come from the running task's context.
current = Current()
