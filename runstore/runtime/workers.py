"""Reusable worker processes that run tasks for the scheduler.

Workers are forked from the scheduler (``os.fork``): the flow class is already in
memory, so a worker starts in about a millisecond and then runs many tasks. The
scheduler and a worker talk over a socket pair with length-prefixed pickles. This
deliberately avoids ``multiprocessing`` (which costs more to import than a whole
3-step run should take).

Each worker opens its *own* store connection by path; it never touches the
connections of the scheduler's ``Store`` object it inherited (they stay open and
unused, and the worker leaves with ``os._exit``), so SQLite never sees a handle
used across a fork.

A worker that dies (segfault, OOM kill, ``os._exit`` in user code) closes its end
of the socket: the scheduler sees end-of-file, reaps the process, records the
attempt as failed and starts a replacement when needed; it never waits forever.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from .logtap import Shadow, drain

__all__ = ["WorkerPool", "Worker", "died"]

_HEADER = struct.Struct("!Q")


def _send(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> Any:
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return pickle.loads(_recv_exactly(sock, size))


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when the scheduler dies (kill -9 included).

    Without it, a worker whose scheduler was killed would finish its task and commit
    it to a run already reported as crashed. Elsewhere this is a no-op: the worker
    still leaves at its next task, when the socket to the scheduler is closed.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the scheduler died before prctl took effect
        os._exit(1)


def _ignore(signum: int, frame: Any) -> None:
    """A worker's SIGTERM handler: the scheduler decides (a handler, not SIG_IGN, which a step's subprocesses would inherit)."""


def _worker_main(sock: socket.socket, db_path: str, flow_class: type,
                 pipes: dict[str, tuple[int, int]] | None = None, shadow: Shadow | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler decides what Ctrl-C means
    signal.signal(signal.SIGTERM, _ignore)  # and SIGTERM (`kill -TERM -PGID`); it kills the workers
    from ..errors import RunstoreError
    from ..store import Store
    from .logtap import LogTap
    from .task import run_task

    store = Store(db_path)
    tap = LogTap()  # fds 1 and 2 become pipes streamed into the store (logtap.py)
    tap.install(pipes, shadow)
    while True:
        try:
            spec = _recv(sock)
        except (EOFError, OSError):
            break
        if spec is None:
            break
        try:
            result: Any = run_task(spec, store, flow_class, tap)
        except RunstoreError as exc:  # the store failed (disk full, read-only): sent as is, so the
            result = exc              # user sees e.g. "Store is full: ..." (test_reliability_input.py)
        except KeyboardInterrupt:     # raised by the step itself (recorded as interrupted): the run stops
            result = KeyboardInterrupt()
        except BaseException as exc:  # noqa: BLE001 - report, then let the scheduler decide
            result = RuntimeError(f"{type(exc).__name__}: {exc}")
        try:
            _send(sock, result)
        except OSError:
            break
    store.close()


class Worker:
    """One worker process, its socket, and the TaskSpec it is running (if any)."""

    def __init__(self, pid: int, sock: socket.socket, pipes: dict[str, int] | None = None,
                 shadow: Shadow | None = None) -> None:
        self.pid = pid
        self.sock = sock
        #: The read ends of the worker's stdout/stderr pipes: drained here if it dies.
        self.pipes = pipes or {}
        #: What the worker read from them but has not stored yet (shared memory).
        self.shadow = shadow
        self.spec: Any = None
        self.started = 0.0  # time.monotonic() when the running spec was sent
        self.timed_out = False


class WorkerPool:
    """Up to ``size`` forked worker processes, started on demand and reused.

    Example
    -------
    >>> pool = WorkerPool(2, "/tmp/never-used.db", object)
    >>> pool.has_capacity(), pool.busy
    (True, [])
    >>> pool.close()
    """

    def __init__(self, size: int, db_path: str, flow_class: type) -> None:
        self.size = max(1, size)
        self.db_path = db_path
        self.flow_class = flow_class
        self.workers: list[Worker] = []

    def _spawn(self) -> Worker:
        parent, child = socket.socketpair()
        # The worker's fds 1 and 2 become these pipes (logtap.py); the scheduler keeps the
        # read ends, so what a dying worker wrote but never read is still read (wait()).
        pipes = {"stdout": os.pipe(), "stderr": os.pipe()}
        shadow = Shadow()
        sys.stdout.flush()
        sys.stderr.flush()
        scheduler_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                _die_with_parent(scheduler_pid)
                parent.close()
                for other in self.workers:
                    other.sock.close()
                    _close_all(other.pipes.values())
                _worker_main(child, self.db_path, self.flow_class, pipes, shadow)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        child.close()
        _close_all(w for _, w in pipes.values())
        worker = Worker(pid, parent, {stream: r for stream, (r, _) in pipes.items()}, shadow)
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
        worker.started = time.monotonic()
        try:
            _send(worker.sock, spec)
        except OSError:
            pass  # the worker is dead: wait() sees end-of-file

    def kill_overdue(self, grace: float) -> float | None:
        """SIGKILL each worker whose attempt ran ``grace`` seconds past its ``@timeout``.

        Its end-of-file then comes back from :meth:`wait` as a death with
        ``timed_out`` set. Returns the seconds until the next such deadline (None: none).
        """
        now, nearest = time.monotonic(), None
        for worker in self.busy:
            seconds = getattr(worker.spec, "timeout", None)
            if not seconds or worker.timed_out:
                continue
            left = worker.started + seconds + grace - now
            if left <= 0:
                worker.timed_out = True
                try:
                    os.kill(worker.pid, signal.SIGKILL)
                except OSError:
                    pass
            elif nearest is None or left < nearest:
                nearest = left
        return nearest

    def wait(self, timeout: float | None) -> list[tuple[Any, Any]]:
        """Wait for results: ``[(spec, TaskResult | Exception | _Died)]``."""
        busy = self.busy
        if not busy:
            return []
        try:
            ready, _, _ = select.select([w.sock for w in busy], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries select
            return []
        done: list[tuple[Any, Any]] = []
        for worker in busy:
            if worker.sock not in ready:
                continue
            try:
                result = _recv(worker.sock)
            except (EOFError, OSError, pickle.UnpicklingError):
                result = _Died(self._reap(worker), worker.pid, worker.timed_out)
                # Dead: what it read but had not stored is in the shared memory, and what
                # it wrote last may still be in its pipes, never read by its reader.
                result.drained = {stream: (worker.shadow.take(stream) if worker.shadow else b"") + drain(fd)
                                  for stream, fd in worker.pipes.items()}
                self.workers.remove(worker)
                worker.sock.close()
                _close_worker_files(worker)
            done.append((worker.spec, result))
            worker.spec = None
        return done

    @staticmethod
    def _reap(worker: Worker) -> int | None:
        try:
            _, status = os.waitpid(worker.pid, 0)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status)

    def close(self, kill: bool = False) -> None:
        """Stop every worker (``kill``: busy ones, for the failure/Ctrl-C path).

        Before the SIGKILL, busy workers get one log batch interval (their output streams
        into the store every :data:`~.logtap.BATCH_SECONDS`), so what an interrupted
        attempt printed is stored whole.
        """
        if kill and self.busy:
            from .logtap import BATCH_SECONDS

            time.sleep(BATCH_SECONDS * 1.5)
        for worker in self.workers:
            try:
                if kill and worker.spec is not None:
                    os.kill(worker.pid, signal.SIGKILL)
                else:
                    _send(worker.sock, None)
            except OSError:
                pass
        for worker in self.workers:
            worker.sock.close()
            _close_worker_files(worker)
            self._reap(worker)
        self.workers = []


def _close_worker_files(worker: Worker) -> None:
    _close_all(worker.pipes.values())
    worker.pipes = {}
    if worker.shadow is not None:
        worker.shadow.close()
        worker.shadow = None


def _close_all(fds: Any) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class _Died:
    """Stands in for a result when the worker died instead of answering."""

    def __init__(self, exitcode: int | None, pid: int | None, timed_out: bool = False) -> None:
        self.exitcode = exitcode
        self.pid = pid
        self.timed_out = timed_out
        #: What was left in the worker's stdout/stderr pipes when it died (never read by it).
        self.drained: dict[str, bytes] = {}

    def describe(self) -> str:
        code = self.exitcode
        if self.timed_out:
            return f"the attempt ran past its @timeout; its worker process {self.pid} was killed"
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"worker process {self.pid} was killed by {name}"
        return f"worker process {self.pid} exited (code {code}) while running the task"


def died(result: Any) -> bool:
    """Whether ``result`` says the worker died instead of answering."""
    return isinstance(result, _Died)
