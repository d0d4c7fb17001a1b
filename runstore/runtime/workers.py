"""Reusable worker processes that run tasks for the scheduler.

Workers are forked from the scheduler (Linux 'fork' start method): the flow class is
already in memory, so a worker starts in a few milliseconds and runs many tasks.
Each worker opens its *own* store connection by path; it never touches the
connections of the scheduler's ``Store`` object it inherited (they are left open
and unused, and the worker leaves with ``os._exit``, so SQLite never closes a
handle that belongs to the parent).

A worker that dies (segfault, OOM kill, ``os._exit`` in user code) is noticed
through its process sentinel; the scheduler records the attempt as failed and
starts a replacement, so it never waits forever.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = ["WorkerPool", "Worker"]


def _worker_main(conn: Connection, db_path: str, flow_class: type) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler decides what Ctrl-C means
    from ..store import Store
    from .task import run_task

    store = Store(db_path)
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            break
        if spec is None:
            break
        try:
            result = run_task(spec, store, flow_class)
        except BaseException as exc:  # noqa: BLE001 - report, then let the scheduler decide
            result = exc
        try:
            conn.send(result)
        except (OSError, ValueError):
            break
    try:
        store.close()
    finally:
        conn.close()


@dataclass
class Worker:
    process: Any
    conn: Connection
    spec: Any = None  # the TaskSpec it is running, if any


class WorkerPool:
    """Up to ``size`` forked worker processes, started on demand and reused.

    Example
    -------
    >>> # pool = WorkerPool(2, "/tmp/runstore.db", MyFlow); pool.submit(spec) ... pool.close()
    """

    def __init__(self, size: int, db_path: str, flow_class: type) -> None:
        self.size = max(1, size)
        self.db_path = db_path
        self.flow_class = flow_class
        self.workers: list[Worker] = []
        self._ctx = multiprocessing.get_context("fork")

    def _spawn(self) -> Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, self.db_path, self.flow_class),
                                    daemon=True, name="runstore-worker")
        process.start()
        child.close()
        worker = Worker(process, parent)
        self.workers.append(worker)
        return worker

    @property
    def busy(self) -> list[Worker]:
        return [w for w in self.workers if w.spec is not None]

    def has_capacity(self) -> bool:
        return len(self.busy) < self.size

    def submit(self, spec: Any) -> None:
        """Send a task to an idle worker (starting one if needed)."""
        worker = next((w for w in self.workers if w.spec is None), None)
        if worker is None:
            worker = self._spawn()
        worker.spec = spec
        try:
            worker.conn.send(spec)
        except (OSError, ValueError):
            pass  # the worker is dead: wait() reports it through its sentinel

    def wait(self, timeout: float | None) -> list[tuple[Any, Any]]:
        """Wait for results: ``[(spec, TaskResult | Exception | None-if-worker-died)]``."""
        busy = self.busy
        if not busy:
            return []
        handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(handles, timeout))
        done: list[tuple[Any, Any]] = []
        for worker in busy:
            result: Any = None
            got = False
            if worker.conn in ready or worker.process.sentinel in ready:
                try:
                    if worker.conn.poll():
                        result, got = worker.conn.recv(), True
                except (EOFError, OSError):
                    got = False
                if not got and (worker.process.sentinel in ready or worker.conn in ready):
                    worker.process.join(timeout=1)
                    result = _Died(worker.process.exitcode, worker.process.pid)
                    self.workers.remove(worker)
                    got = True
            if got:
                done.append((worker.spec, result))
                worker.spec = None
        return done

    def close(self, kill: bool = False) -> None:
        """Stop every worker (``kill``: at once, for the failure/Ctrl-C path)."""
        for worker in self.workers:
            try:
                if kill and worker.spec is not None:
                    worker.process.kill()
                else:
                    worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=1)
            worker.conn.close()
        self.workers = []


@dataclass
class _Died:
    exitcode: int | None
    pid: int | None

    def describe(self) -> str:
        code = self.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"worker process {self.pid} was killed by {name}"
        return f"worker process {self.pid} exited (code {code}) while running the task"


def died(result: Any) -> bool:
    return isinstance(result, _Died)


_ = os  # os is used by forked children through run_task
