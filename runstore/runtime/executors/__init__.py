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
from .base import Executor, InlineExecutor, LocalExecutor, Lost, is_result, local_executor

__all__ = ["Executor", "Lost", "InlineExecutor", "LocalExecutor", "local_executor", "make_executors",
           "resolve_executor", "is_result", "EXECUTORS", "ExecutorError"]

#: Executor names ``--executor`` / ``RUNSTORE_EXECUTOR`` / ``Runner(executor=...)`` accept.
EXECUTORS = ("local", "dask")


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
