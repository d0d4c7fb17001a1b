"""The Dask executor: tasks run on a ``dask.distributed`` cluster, the file stays here (SPEC §16).

``python flow.py run --executor dask [--dask-address tcp://HOST:8786]``. Without an
address a ``LocalCluster`` is started for the run and shut down after it. dask is
imported only in this module (``pip install 'runstore[dask]'``).

What travels (docs/executors.md):

- the run's code package (the snapshot the run stores anyway), scattered once and
  cached per worker process by its sha256 (:func:`.remote.flow_from_code`);
- per attempt: the ``TaskSpec``, the artifact references of its inputs, and the
  encoded bytes of the values it may read. Values up to :data:`INLINE_MAX` travel
  with the task; larger ones are scattered once per run and shared, by blob key, by
  every task that reads them (Dask moves each to a worker at most once);
- back: the task's result, its attempt record (status, exception, stdout, stderr,
  metadata) and the encoded chunks of the values it created. Here every hash is
  checked again and the attempt is committed with the same ``finish_attempt`` a
  local worker uses, so both executors write the same rows.

Failures: a task exception, ``@retry`` and ``@catch`` work inside :func:`run_task` as
locally. A worker that dies while running a task makes the attempt fail
(``runstore.WorkerDied``, retried by ``@retry``); the LocalCluster started here is
told not to re-run such tasks itself (``allowed-failures: 0``). Ctrl-C or a failing
runtime cancels the run's Dask tasks; if this process is killed, its Dask client
disappears and the cluster drops the run's tasks — nothing they compute can reach
the file, since only this process writes it.

Example
-------
>>> from runstore import Store
>>> ex = DaskExecutor(Store(":memory:"), object, address=None)
>>> ex.name, ex.stats["scattered"]
('dask', 0)
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import uuid
from collections import OrderedDict
from typing import Any

from ...errors import ExecutorError, RunstoreError, StoreError
from ..task import TaskResult, TaskSpec
from .base import TIMEOUT_GRACE, TIMEOUT_KIND, Executor, Lost
from .remote import Answer, environment, run_remote

__all__ = ["DaskExecutor", "INLINE_MAX", "CONNECT_TIMEOUT"]

#: Values up to this size travel inside the task; larger ones are scattered once and shared.
INLINE_MAX = 256 * 1024
#: Seconds to reach a Dask scheduler (and to wait for its first worker) before giving up
#: (``RUNSTORE_DASK_CONNECT_TIMEOUT`` overrides it).
CONNECT_TIMEOUT = 10.0


def _connect_timeout() -> float:
    try:
        return max(0.5, float(os.environ.get("RUNSTORE_DASK_CONNECT_TIMEOUT") or CONNECT_TIMEOUT))
    except ValueError:
        raise ExecutorError("RUNSTORE_DASK_CONNECT_TIMEOUT must be a number of seconds") from None
#: Bytes of small values kept in memory between tasks (a foreach's children read the same ones).
_SMALL_CACHE_BYTES = 64 * 1024 * 1024


class DaskExecutor(Executor):
    """Runs attempts on a Dask cluster; commits their answers to the store in this process.

    Parameters
    ----------
    store : Store
        The run's store (file or in-memory: only this process touches it).
    flow_class : type
        The flow being run.
    address : str, optional
        A Dask scheduler address; None starts a ``LocalCluster`` for the run.
    max_workers : int, optional
        For the LocalCluster only: threads in all (default: one per CPU).
    """

    name = "dask"

    def __init__(self, store: Any, flow_class: type, address: str | None = None,
                 max_workers: int | None = None) -> None:
        self.store = store
        self.flow_class = flow_class
        self.address = address
        self.max_workers = max_workers
        self.client: Any = None
        self.cluster: Any = None
        self.stats = {"scattered": 0, "scattered_bytes": 0, "submitted": 0}
        #: Dask keys of everything scattered (code, large values), in order: tests watch their transfers.
        self.sent_keys: list[str] = []
        self._running: dict[str, tuple[TaskSpec, Any, frozenset[str]]] = {}
        self._deadlines: dict[str, float] = {}  # key -> when to cancel it for its @timeout
        self._scattered: dict[str, Any] = {}
        self._small: OrderedDict[str, bytes] = OrderedDict()
        self._small_bytes = 0
        self._refs: dict[int, dict[str, Any]] = {}
        self._capacity = 1
        self._capacity_at = 0.0
        self._environment = environment()

    # ---------------------------------------------------------------- connecting

    def connect(self) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ExecutorError("--executor dask needs dask.distributed: pip install 'runstore[dask]'") from None
        timeout = _connect_timeout()
        try:
            if self.address:
                self.client = Client(self.address, timeout=timeout, set_as_default=False)
            else:
                cpus = os.cpu_count() or 1
                threads = self.max_workers or cpus
                workers = max(1, min(cpus, threads))
                # A task whose worker died is a failed attempt for runstore (@retry decides),
                # not something Dask quietly runs again elsewhere.
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    self.cluster = LocalCluster(n_workers=workers, threads_per_worker=math.ceil(threads / workers),
                                                processes=True, dashboard_address=":0",
                                                silence_logs=logging.ERROR)
                self.client = Client(self.cluster, set_as_default=False)
            self.client.wait_for_workers(1, timeout=timeout)
        except ExecutorError:
            self.close()
            raise
        except (OSError, TimeoutError) as exc:
            self.close()
            where = f"the Dask scheduler at {self.address}" if self.address else "a local Dask cluster"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ExecutorError(f"cannot reach {where}: {reason}") from None
        self._check_workers()

    def _check_workers(self) -> None:
        """Every worker must run this Python (X.Y) and this runstore release: one line if not."""
        found = self.client.run(environment)
        for address, env in sorted(found.items()):
            if tuple(env) != self._environment:
                self.close()
                raise ExecutorError(
                    f"Dask worker {address} runs Python {env[0]} with runstore {env[1]}, but this machine "
                    f"runs Python {self._environment[0]} with runstore {self._environment[1]}; workers need "
                    "the same environment (docs/executors.md)")

    def open(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.run_key = f"runstore-{scheduler.record.flow}-{scheduler.record.run_number}-{uuid.uuid4().hex[:8]}"
        kind, data = self._code(scheduler)
        self.code_key = hashlib.sha256(data).hexdigest()
        self.code_kind = kind
        self._code_data = data
        # Every worker gets the code once (a worker that joins later fetches it once), and a
        # worker that dies does not take the only copy with it.
        self._code_future = self._scatter(data, broadcast=True)

    def _code(self, scheduler: Any) -> tuple[str, bytes]:
        """The run's code package when the flow class comes from its file, else the pickled class."""
        module = getattr(self.flow_class, "__module__", "")
        if scheduler.code_package is not None and (module == "__main__" or module.startswith("_runstore_flow_")):
            return "package", scheduler.code_package
        import sys

        import cloudpickle

        owner = sys.modules.get(module)
        if owner is not None and module != "__main__":
            cloudpickle.register_pickle_by_value(owner)
            try:
                return "pickle", cloudpickle.dumps(self.flow_class)
            finally:
                cloudpickle.unregister_pickle_by_value(owner)
        return "pickle", cloudpickle.dumps(self.flow_class)

    # ---------------------------------------------------------------- values

    def _scatter(self, data: bytes, broadcast: bool = False) -> Any:
        self.stats["scattered"] += 1
        self.stats["scattered_bytes"] += len(data)
        future = self.client.scatter(data, hash=False, broadcast=broadcast)
        self.sent_keys.append(future.key)
        return future

    def _read(self, blob_key: str) -> bytes:
        data = self._small.get(blob_key)
        if data is not None:
            self._small.move_to_end(blob_key)
            return data
        size = self.store.value_size(blob_key)  # bounded by the chunk rows
        buffer = bytearray(size)
        got = 0
        with self.store.open_blob(blob_key) as stream, memoryview(buffer) as view:
            # readinto with the whole buffer: 4 MiB pieces (read() would go 8 KiB at a time);
            # the final read hashes the value and raises UntrustedArtifact if it was altered.
            while got < size and (n := stream.readinto(view[got:])):
                got += n
            if got != size or stream.read(1):
                raise StoreError(f"{self.store.where}: stored value {blob_key[:16]}… is not {size} bytes long")
        data: bytes = buffer if size > INLINE_MAX else bytes(buffer)  # type: ignore[assignment]
        if len(data) <= INLINE_MAX:
            self._small[blob_key] = data
            self._small_bytes += len(data)
            while self._small_bytes > _SMALL_CACHE_BYTES:
                _, dropped = self._small.popitem(last=False)
                self._small_bytes -= len(dropped)
        return data

    def _task_refs(self, task_id: int) -> dict[str, Any]:
        refs = self._refs.get(task_id)
        if refs is None:  # a finished task's artifacts never change: read once per run
            refs = self._refs[task_id] = self.store.list_artifact_refs(task_id)
        return refs

    def _payload(self, spec: TaskSpec) -> tuple[dict[str, Any], list[Any], frozenset[str]]:
        from ...codecs import get_codec
        from ..task import RUNTIME_ARTIFACTS

        store = self.store
        refs = {task_id: self._task_refs(task_id) for task_id, _ in spec.inputs}
        wanted: dict[str, str] = {}
        for task_refs in refs.values():
            for name, ref in task_refs.items():
                if name not in RUNTIME_ARTIFACTS and name not in spec.params:
                    wanted[ref.blob_key] = ref.encoding
        for ref in spec.params.values():
            wanted[ref.blob_key] = ref.encoding
        for frame in spec.frames:
            if frame.value_ref is not None:
                wanted[frame.value_ref.blob_key] = frame.value_ref.encoding
        blobs: dict[str, bytes] = {}
        untrusted: dict[str, str] = {}
        large_keys: list[str] = []
        large: list[Any] = []
        for key, encoding in wanted.items():
            if not get_codec(encoding).safe and not store.is_trusted(key):
                untrusted[key] = (f"a pickled value in {store.where} was written by someone else; loading it "
                                  f"could run their code. If you trust this file, run: runstore trust {store.where}")
                continue
            future = self._scattered.get(key)
            if future is not None and future.status == "finished":
                large_keys.append(key)
                large.append(future)
                continue
            data = self._read(key)
            if len(data) <= INLINE_MAX:
                blobs[key] = data
            else:
                future = self._scattered[key] = self._scatter(data)
                large_keys.append(key)
                large.append(future)
        remote_spec = TaskSpec(**dict(spec.__dict__, quiet=True))  # the worker's stdout is not the user's
        payload = {"spec": remote_spec, "refs": refs, "blobs": blobs, "untrusted": untrusted,
                   "large_keys": large_keys, "code_key": self.code_key, "code_kind": self.code_kind,
                   "flow_name": self.flow_class.__name__, "flow_file": self.scheduler.flow_file,
                   "environment": self._environment}
        return payload, large, frozenset(wanted)

    # ---------------------------------------------------------------- the executor interface

    def has_capacity(self) -> bool:
        now = time.monotonic()
        if now - self._capacity_at > 5.0:  # workers come and go: ask the cluster now and then
            self._capacity_at = now
            # Eight tasks in flight per thread hide the round trip through the Dask scheduler
            # (a 100-task foreach of trivial tasks: 2x per thread 1.3 s, 8x 0.85 s, 16x no better).
            self._capacity = max(2, 8 * sum(self.client.nthreads().values()))
        return len(self._running) < self._capacity

    @property
    def busy(self) -> list[TaskSpec]:
        return [spec for spec, _, _ in self._running.values()]

    def submit(self, spec: TaskSpec) -> None:
        if self._code_future.status != "finished":  # every copy was on workers that left
            self._code_future = self._scatter(self._code_data, broadcast=True)
        payload, large, shipped = self._payload(spec)  # before the attempt row: reading may fail
        self.store.start_attempt(spec.task_id, spec.attempt, os.getpid())
        if not spec.quiet:
            self.scheduler.say(f"{spec.prefix} Task is starting{' (retry)' if spec.attempt else ''}.")
        key = f"{self.run_key}-{spec.step}-{spec.task_id}-{spec.attempt}"
        future = self.client.submit(run_remote, payload, self._code_future, *large, key=key, pure=False,
                                    retries=0)
        self.stats["submitted"] += 1
        self._running[future.key] = (spec, future, shipped)
        if spec.timeout:
            # The task's own thread raises TimeoutException at spec.timeout (task.py); this
            # backstop, counted from submission, cancels a step stuck in C code (e.g. sleep).
            self._deadlines[future.key] = time.monotonic() + spec.timeout + TIMEOUT_GRACE

    def wait(self, timeout: float | None) -> list[tuple[TaskSpec, Any]]:
        from distributed.client import _wait

        if not self._running:
            return []
        answers = self._cancel_overdue()
        if answers:
            return answers
        if self._deadlines:
            nearest = max(0.0, min(self._deadlines.values()) - time.monotonic())
            timeout = nearest if timeout is None else min(timeout, nearest)
        futures = [future for _, future, _ in self._running.values()]
        try:  # distributed.wait() would look for a default client; ours is private to the run
            done, _ = self.client.sync(_wait, futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        for future in done:
            spec, _, shipped = self._running.pop(future.key)
            self._deadlines.pop(future.key, None)
            answers.append((spec, self._answer(spec, future, shipped)))
        return answers

    def _cancel_overdue(self) -> list[tuple[TaskSpec, Any]]:
        """Cancel the tasks past their @timeout backstop; their answers are never committed."""
        now = time.monotonic()
        answers = []
        for key in [k for k, at in self._deadlines.items() if at <= now]:
            del self._deadlines[key]
            spec, future, _ = self._running.pop(key)
            if future.status in ("finished", "error"):  # it ended meanwhile: answer as usual
                self._running[key] = (spec, future, _)
                continue
            self.client.cancel([future], force=True)
            answers.append((spec, Lost(f"the attempt ran past its @timeout of {spec.timeout:g} s; "
                                       "its Dask task was cancelled", TIMEOUT_KIND)))
        return answers

    def _answer(self, spec: TaskSpec, future: Any, shipped: frozenset[str]) -> Any:
        from distributed import KilledWorker

        if future.status == "finished":
            try:
                return self._commit(spec, future.result(), shipped)
            except RunstoreError as exc:
                return exc
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                worker = getattr(getattr(exc, "last_worker", None), "address", None) or "address unknown"
                return Lost(f"the Dask worker running the task died ({worker})")
            if isinstance(exc, RunstoreError):
                return exc
            return RunstoreError(f"the Dask task failed outside the step: {type(exc).__name__}: {exc}")
        # cancelled or lost (its inputs lived on a worker that died): scatter again next time
        self._scattered = {k: f for k, f in self._scattered.items() if f.status == "finished"}
        return Lost(f"the Dask task was {future.status} (a worker holding its inputs left the cluster)")

    def _commit(self, spec: TaskSpec, answer: Answer, shipped: frozenset[str]) -> TaskResult:
        """Check the worker's values against their keys and commit the attempt as a local worker does."""
        store = self.store
        prepared = {key: store.prepare_encoded(stored, chunks) for key, (stored, chunks) in answer.new.items()}

        def resolve(ref: Any) -> Any:
            item = prepared.get(ref.blob_key)
            if item is not None:
                return type(item)(ref, item.chunk_keys, item.pending, item.touched)
            if ref.blob_key not in shipped:
                raise ExecutorError(f"{spec.prefix} a worker answered with value {ref.blob_key[:16]}… "
                                    "that it was neither sent nor sent back")
            return ref

        result: TaskResult = answer.result
        if result.foreach_refs:  # the split's values are committed before the attempt, as put_values does
            items = [resolve(ref) for ref in result.foreach_refs]
            with store.write() as conn:
                store.commit_values(conn, [i for i in items if hasattr(i, "pending")])
        finished = answer.finished
        artifacts = {name: resolve(ref) for name, ref in finished["artifacts"].items()}
        store.finish_attempt(spec.task_id, spec.attempt, finished["status"], artifacts=artifacts,
                             stdout=finished["stdout"], stderr=finished["stderr"],
                             exception=finished["exception"], metadata=finished["metadata"])
        self._echo(spec, finished)
        return result

    def _echo(self, spec: TaskSpec, finished: dict[str, Any]) -> None:
        if spec.quiet:
            return
        say = self.scheduler.say
        for stream in ("stdout", "stderr"):
            for line in finished[stream].splitlines():
                say(f"{spec.prefix} {line}")
        status = finished["status"]
        say(f"{spec.prefix} " + ("Task finished successfully." if status == "succeeded" else
                                 "@catch caught an exception; the flow goes on. Task finished."
                                 if status == "caught" else "Task failed."))

    def close(self, kill: bool = False) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        if client is not None:
            try:
                running = [future for _, future, _ in self._running.values()]
                if running:
                    client.cancel(running, force=True)
                self._running.clear()
                self._scattered.clear()
                client.close(timeout=CONNECT_TIMEOUT)
            except Exception:  # noqa: BLE001 - closing must not hide why the run stopped
                pass
        if cluster is not None:
            try:
                cluster.close(timeout=CONNECT_TIMEOUT)
            except Exception:  # noqa: BLE001
                pass
