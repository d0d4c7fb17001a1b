"""Executors: where the scheduler's tasks run (SPEC §16).

The scheduler walks the graph and decides *what* runs; an executor decides *where*.
Every executor has the same small interface (:class:`Executor`):

- ``connect()`` — before the run exists: reach the engine, check it can serve us
  (an unreachable Dask address is one line here, and no run is created);
- ``open(scheduler)`` — the run exists: whatever needs it (code package, store);
- ``has_capacity()`` / ``submit(spec)`` — hand one attempt (:class:`~..task.TaskSpec`) over;
- ``busy`` — the specs handed over and not answered yet;
- ``wait(timeout)`` — answers so far: ``[(spec, TaskResult | Lost | BaseException)]``.
  A :class:`~..task.TaskResult` means the attempt is committed to the store; ``Lost``
  means the process running it died (the scheduler records the attempt as failed and
  may retry it); an exception means the runtime itself failed (the run stops);
- ``close(kill)`` — stop; ``kill`` (failure, Ctrl-C) cancels what is still running.

Implementations: :class:`InlineExecutor` (tasks run in the scheduler's process: in-memory
stores, ``--max-workers 1``), :class:`LocalExecutor` (reusable forked workers,
:mod:`..workers`) and :class:`~.dask.DaskExecutor` (``--executor dask``; dask is imported
only there). A step pinned with ``@executor("local")`` goes to the local executor of
the run whatever the run's executor is.

Example
-------
>>> from runstore import Store
>>> ex = local_executor(Store(":memory:"), max_workers=4)
>>> type(ex).__name__, ex.has_capacity(), ex.busy
('InlineExecutor', True, [])
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import ExecutorError
from ..task import TaskResult, TaskSpec, run_task

__all__ = ["Executor", "Lost", "InlineExecutor", "LocalExecutor", "local_executor", "make_executors",
           "resolve_executor", "EXECUTORS", "ExecutorError"]

#: Executor names ``--executor`` / ``RUNSTORE_EXECUTOR`` / ``Runner(executor=...)`` accept.
EXECUTORS = ("local", "dask")


class Lost:
    """Stands in for a result when the process running the attempt died.

    Example
    -------
    >>> Lost("worker process 12 was killed by SIGKILL").message
    'worker process 12 was killed by SIGKILL'
    """

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class Executor:
    """Runs attempts for one scheduler (see the module docstring for the contract)."""

    #: The name runs and ``@executor`` use.
    name = "local"

    def connect(self) -> None:
        """Reach the engine before the run is created (raise ``ExecutorError`` if it cannot serve)."""

    def open(self, scheduler: Any) -> None:
        """The run exists (``scheduler.record``): prepare what tasks will need."""

    def has_capacity(self) -> bool:
        raise NotImplementedError

    def submit(self, spec: TaskSpec) -> None:
        raise NotImplementedError

    @property
    def busy(self) -> list[TaskSpec]:
        raise NotImplementedError

    def wait(self, timeout: float | None) -> list[tuple[TaskSpec, Any]]:
        raise NotImplementedError

    def close(self, kill: bool = False) -> None:
        """Stop (``kill``: cancel what still runs)."""


class InlineExecutor(Executor):
    """Runs each attempt in the scheduler's own process, one at a time.

    Used for in-memory stores (which cannot be shared with another process) and
    ``--max-workers 1``. A thread heartbeats for file stores while user code runs.
    """

    def __init__(self, store: Any, flow_class: type) -> None:
        self.store = store
        self.flow_class = flow_class
        self._queued: TaskSpec | None = None
        self._heartbeat: Any = None

    def open(self, scheduler: Any) -> None:
        if not self.store.in_memory:
            from ..scheduler import _Heartbeat

            self._heartbeat = _Heartbeat(self.store, scheduler.record.run_id)

    def has_capacity(self) -> bool:
        return self._queued is None

    def submit(self, spec: TaskSpec) -> None:
        self._queued = spec

    @property
    def busy(self) -> list[TaskSpec]:
        return [] if self._queued is None else [self._queued]

    def wait(self, timeout: float | None) -> list[tuple[TaskSpec, Any]]:
        spec, self._queued = self._queued, None
        if spec is None:
            return []
        return [(spec, run_task(spec, self.store, self.flow_class))]

    def close(self, kill: bool = False) -> None:
        self._queued = None
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None


class LocalExecutor(Executor):
    """Up to ``max_workers`` forked, reusable worker processes on this machine (:mod:`..workers`)."""

    def __init__(self, store: Any, flow_class: type, max_workers: int) -> None:
        from ..workers import WorkerPool

        self.pool = WorkerPool(max_workers, str(store.path), flow_class)

    def has_capacity(self) -> bool:
        return self.pool.has_capacity()

    def submit(self, spec: TaskSpec) -> None:
        self.pool.submit(spec)

    @property
    def busy(self) -> list[TaskSpec]:
        return [w.spec for w in self.pool.busy]

    def wait(self, timeout: float | None) -> list[tuple[TaskSpec, Any]]:
        from ..workers import died

        return [(spec, Lost(result.describe()) if died(result) else result)
                for spec, result in self.pool.wait(timeout)]

    def close(self, kill: bool = False) -> None:
        self.pool.close(kill=kill)


def local_executor(store: Any, flow_class: type | None = None, max_workers: int | None = None) -> Executor:
    """The local executor a run gets: inline for in-memory stores or one worker, else forked workers."""
    workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
    if store.in_memory or workers <= 1:
        return InlineExecutor(store, flow_class or object)
    return LocalExecutor(store, flow_class or object, workers)


def resolve_executor(executor: str | None = None, dask_address: str | None = None) -> tuple[str, str | None]:
    """``(name, dask address)`` from the arguments, else ``RUNSTORE_EXECUTOR`` / ``RUNSTORE_DASK_ADDRESS``.

    An address alone means Dask. Raises ``ExecutorError`` for an unknown name.

    Example
    -------
    >>> resolve_executor("dask", "tcp://10.0.0.5:8786")
    ('dask', 'tcp://10.0.0.5:8786')
    >>> resolve_executor("local")
    ('local', None)
    """
    name = executor or os.environ.get("RUNSTORE_EXECUTOR") or None
    address = dask_address or os.environ.get("RUNSTORE_DASK_ADDRESS") or None
    if name is None:
        name = "dask" if dask_address else "local"
    name = name.strip().lower()
    if name not in EXECUTORS:
        raise ExecutorError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    if name == "local":
        if dask_address:
            raise ExecutorError("--dask-address needs --executor dask")
        address = None
    return name, address


def make_executors(name: str, store: Any, flow_class: type, max_workers: int | None,
                   dask_address: str | None = None) -> dict[str, Executor]:
    """The executors of one run by name; ``"local"`` is always there (for ``@executor("local")``)."""
    if name == "dask":
        from .dask import DaskExecutor

        # Steps pinned with @executor("local") run in this process: no fork after Dask's
        # client has started its threads.
        return {"local": InlineExecutor(store, flow_class),
                "dask": DaskExecutor(store, flow_class, address=dask_address, max_workers=max_workers)}
    return {"local": local_executor(store, flow_class, max_workers)}


def is_result(outcome: Any) -> bool:
    """Whether an executor's answer is a committed :class:`~..task.TaskResult`."""
    return isinstance(outcome, TaskResult)
