"""The executor interface and the local executors (see :mod:`runstore.runtime.executors`).

Example
-------
>>> from runstore import Store
>>> ex = local_executor(Store(":memory:"), max_workers=4)
>>> type(ex).__name__, ex.has_capacity(), ex.busy
('InlineExecutor', True, [])
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ...errors import RunstoreError
from ...schema import HEARTBEAT_INTERVAL
from ..task import TaskResult, TaskSpec, run_task

#: Seconds past a step's @timeout before the scheduler kills (or cancels) the attempt
#: itself: the step's own TimeoutException normally ends it first (runtime/task.py).
TIMEOUT_GRACE = 3.0
#: The exception type recorded for an attempt killed for its @timeout.
TIMEOUT_KIND = "runstore.errors.TimeoutException"

__all__ = ["Executor", "Lost", "TIMEOUT_GRACE", "TIMEOUT_KIND", "InlineExecutor", "LocalExecutor", "Heartbeat", "local_executor", "is_result"]


class Lost:
    """Stands in for a result when the process running the attempt died.

    Example
    -------
    >>> Lost("worker process 12 was killed by SIGKILL").message
    'worker process 12 was killed by SIGKILL'
    """

    __slots__ = ("message", "kind")

    def __init__(self, message: str, kind: str = "runstore.WorkerDied") -> None:
        self.message = message
        self.kind = kind


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
    The attempt in progress stays ``busy`` until it returns, so when Ctrl-C escapes
    it the scheduler still knows which attempt was interrupted.
    """

    def __init__(self, store: Any, flow_class: type) -> None:
        self.store = store
        self.flow_class = flow_class
        self._queued: TaskSpec | None = None
        self._heartbeat: Any = None

    def open(self, scheduler: Any) -> None:
        if not self.store.in_memory:
            self._heartbeat = Heartbeat(self.store, scheduler.record.run_id)

    def has_capacity(self) -> bool:
        return self._queued is None

    def submit(self, spec: TaskSpec) -> None:
        self._queued = spec

    @property
    def busy(self) -> list[TaskSpec]:
        return [] if self._queued is None else [self._queued]

    def wait(self, timeout: float | None) -> list[tuple[TaskSpec, Any]]:
        spec = self._queued
        if spec is None:
            return []
        result = run_task(spec, self.store, self.flow_class)  # a KeyboardInterrupt leaves it busy
        self._queued = None
        return [(spec, result)]

    def close(self, kill: bool = False) -> None:
        self._queued = None
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None


class LocalExecutor(Executor):
    """Up to ``max_workers`` forked, reusable worker processes on this machine (:mod:`..workers`)."""

    def __init__(self, store: Any, flow_class: type, max_workers: int) -> None:
        from ..workers import WorkerPool

        self.store = store
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

        nearest = self.pool.kill_overdue(TIMEOUT_GRACE)
        if nearest is not None:
            timeout = nearest if timeout is None else min(timeout, nearest)
        done = self.pool.wait(timeout)
        for spec, result in done:
            if died(result):
                self._keep_last_words(spec, result.drained)
        return [(spec, Lost(result.describe(), TIMEOUT_KIND if result.timed_out else "runstore.WorkerDied")
                 if died(result) else result)
                for spec, result in done]

    def _keep_last_words(self, spec: TaskSpec, drained: dict[str, bytes]) -> None:
        """Append to a dead worker's attempt what was left in its pipes (written, never read by it).

        Pinned by tests/test_logs_stream.py::test_output_right_before_a_worker_dies_is_kept.
        """
        stamp = time.time()
        for stream, data in drained.items():
            if not data:
                continue
            text = data.decode("utf-8", "replace")
            text += "" if text.endswith("\n") else "\n"
            try:
                row = self.store.find_attempt(spec.task_id, spec.attempt, logs=True)
                if row is None:
                    continue
                stored = row[stream] or ""
                line = stored.count("\n") + (1 if stored and not stored.endswith("\n") else 0)
                self.store.append_log(spec.task_id, spec.attempt, stream, text, [(line, stamp)])
            except RunstoreError:  # the attempt is recorded as failed all the same
                continue

    def close(self, kill: bool = False) -> None:
        self.pool.close(kill=kill)


def local_executor(store: Any, flow_class: type | None = None, max_workers: int | None = None) -> Executor:
    """The local executor a run gets: inline for in-memory stores or one worker, else forked workers."""
    workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
    if store.in_memory or workers <= 1:
        return InlineExecutor(store, flow_class or object)
    return LocalExecutor(store, flow_class or object, workers)


def is_result(outcome: Any) -> bool:
    """Whether an executor's answer is a committed :class:`~..task.TaskResult`."""
    return isinstance(outcome, TaskResult)


class Heartbeat:
    """A thread that heartbeats while inline tasks run (no forks happen in inline mode)."""

    def __init__(self, store: Any, run_id: int) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(store, run_id), daemon=True,
                                        name="runstore-heartbeat")
        self._thread.start()

    def _run(self, store: Any, run_id: int) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            try:
                store.heartbeat(run_id)
            except RunstoreError:
                pass

    def stop(self) -> None:
        # No join: the thread wakes, sees the event and ends; a heartbeat in flight
        # is one short transaction and harmless after the run is finished.
        self._stop.set()
