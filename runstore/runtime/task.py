"""Running one attempt of one task: load inputs, run the step, capture output, commit.

The same function runs a task inline (in the scheduler's process) or in a worker
process. Store writes happen before and after the user's code, never during: the
attempt is recorded as started (one short transaction), the step runs with no
transaction open, then its artifacts, logs, exception and metadata are committed
together (one transaction).

Output: ``sys.stdout``/``sys.stderr`` are replaced once per process by proxies that
write into the capture of the task running *in the current context* (a ContextVar),
so concurrent tasks never mix their logs; complete lines are echoed to the real
stream prefixed ``[RUN/STEP/TASK]`` unless the run is quiet. In a worker the capture
writes to file descriptors 1 and 2, which :class:`~.logtap.LogTap` streams into the
store; inline, :class:`~.logtap.InlineLog` streams the text in the same batches.
"""

from __future__ import annotations

import contextvars
from contextlib import nullcontext
import os
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..current import TaskContext, task_context
from ..errors import CodecError, FlowDefinitionError, RunstoreError, StoreError, TimeoutException, ValueVanished
from ..codecs import CaughtException
from ..flowspec import FlowSpec, ForeachFrame, Inputs, TaskState
from ..util import pause_point
from .logtap import MAX_LOG_BYTES, InlineLog, LogTap

__all__ = ["TaskSpec", "TaskResult", "run_task", "install_output_capture", "MAX_LOG_BYTES"]

#: Artifacts the runtime writes itself and never passes down.
RUNTIME_ARTIFACTS = frozenset({"_foreach_stack", "_foreach_input", "_graph_info"})


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs to run one attempt (picklable, small, immutable).

    ``executor``: the executor the step is pinned to with ``@executor``, or None.
    ``cards``: the attributes of each ``@card`` of the step, in order.
    A misspelled field is a ``TypeError``; a retry is a new spec
    (``dataclasses.replace(spec, attempt=spec.attempt + 1)``).

    Example
    -------
    >>> spec = TaskSpec(task_id=7, step="start", attempt=0, run_id=1, run_number=3, flow_name="F",
    ...                 inputs=[], frames=[], params={})
    >>> spec.prefix, spec.foreach_path, spec.retries
    ('[3/start/7]', None, 0)
    >>> TaskSpec(task_id=7, step="start", attempt=0, run_id=1, run_number=3, flow_name="F",
    ...          inputs=[], frames=[], params={}, retires=2)
    Traceback (most recent call last):
    ...
    TypeError: TaskSpec.__init__() got an unexpected keyword argument 'retires'
    """

    task_id: int
    step: str
    attempt: int
    run_id: int
    run_number: int
    flow_name: str
    inputs: list[tuple[int, str]]  # [(task_id, step)] of the input tasks
    frames: list[ForeachFrame]
    params: dict[str, Any]  # name -> StoredValue
    retries: int = 0
    catch_var: str | None = None
    catch_enabled: bool = False
    catch_print: bool = True
    tags: tuple[str, ...] = ()
    identity: str | None = None
    username: str | None = None
    client_namespace: Any = None
    set_client_namespace: bool = False
    origin_run_id: str | None = None
    max_num_splits: int = 100
    quiet: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    graph_info: dict[str, Any] | None = None
    cards: tuple[dict[str, Any], ...] = ()
    executor: str | None = None
    timeout: float | None = None  # seconds, from @timeout
    env: dict[str, str] = field(default_factory=dict)  # @environment(vars=...)
    fallback: tuple[str, str, str] | None = None  # the attempt only records this failure (see below)
    project: dict[str, Any] | None = None  # @project: the current.project_* fields of the run
    constants: dict[str, Any] = field(default_factory=dict)  # class-level constant name -> StoredValue

    @property
    def prefix(self) -> str:
        return f"[{self.run_number}/{self.step}/{self.task_id}]"

    @property
    def foreach_path(self) -> str | None:
        return ",".join(f"{f.step}:{f.index}" for f in self.frames) or None


class TaskResult:
    """What the scheduler learns from an attempt."""

    def __init__(self, task_id: int, attempt: int, status: str, foreach_refs: list[Any] | None = None,
                 error: str | None = None, next_step: str | None = None) -> None:
        self.task_id = task_id
        #: After a switch: the step of the case that was taken.
        self.next_step = next_step
        self.attempt = attempt
        self.status = status
        self.foreach_refs = foreach_refs
        self.error = error


# ---------------------------------------------------------------- output capture


class _Capture:
    """A task's output without a :class:`LogTap` (inline, or on a remote executor's worker).

    Kept as a worker's is (head and tail past the cap) and, given a ``store`` (inline), streamed
    into it while the step runs (:class:`~.logtap.InlineLog`); complete lines are echoed.
    """

    def __init__(self, prefix: str, echo: bool, real_out: TextIO, real_err: TextIO,
                 store: Any = None, task_id: int = 0, attempt: int = 0) -> None:
        self.prefix = prefix
        self.echo = echo
        self.log = InlineLog(store, task_id, attempt)
        self.partial = {"stdout": "", "stderr": ""}
        self.real = {"stdout": real_out, "stderr": real_err}

    def write(self, stream: str, text: str) -> None:
        """Keep ``text`` (the head and tail past :data:`MAX_LOG_BYTES`) and echo its complete lines."""
        self.log.write(stream, text)
        if self.echo:
            pending = self.partial[stream] + text
            *lines, rest = pending.split("\n")
            self.partial[stream] = rest
            if lines:
                out = self.real[stream]
                out.write("".join(f"{self.prefix} {line}\n" for line in lines))
                out.flush()

    def close(self) -> tuple[str, str]:
        if self.echo:
            for stream, rest in self.partial.items():
                if rest:
                    self.real[stream].write(f"{self.prefix} {rest}\n")
                    self.real[stream].flush()
        return self.log.close()

    def say(self, message: str) -> None:
        if self.echo:
            self.real["stderr"].write(f"{self.prefix} {message}\n")
            self.real["stderr"].flush()


class _TapCapture:
    """A task's output in a worker: written to fds 1/2, which the process's :class:`LogTap` streams."""

    def __init__(self, tap: LogTap, real_out: TextIO, real_err: TextIO) -> None:
        self.tap = tap
        self.real = {"stdout": real_out, "stderr": real_err}

    def write(self, stream: str, text: str) -> None:
        # Straight to the descriptor: ``sys.stdout`` may be another file (pytest's capture).
        self.real[stream].flush()
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        while data:
            data = data[os.write(1 if stream == "stdout" else 2, data):]

    def close(self) -> tuple[str, str]:
        return self.tap.end()

    def say(self, message: str) -> None:
        self.tap.say(message)


_capture: ContextVar[_Capture | _TapCapture | None] = ContextVar("runstore_capture", default=None)


class _StreamProxy:
    """Stands in for sys.stdout / sys.stderr; routes writes to the current task's capture."""

    def __init__(self, name: str, real: TextIO) -> None:
        self._name = name
        self._real = real

    def write(self, text: str) -> int:
        cap = _capture.get()
        if cap is None:
            return self._real.write(text)
        cap.write(self._name, text)
        return len(text)

    def flush(self) -> None:
        if _capture.get() is None:
            self._real.flush()

    def isatty(self) -> bool:
        return False if _capture.get() is not None else self._real.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install_output_capture() -> tuple[TextIO, TextIO]:
    """Route this process's ``sys.stdout``/``sys.stderr`` through task captures (idempotent).

    Returns the real streams.
    """
    out, err = sys.stdout, sys.stderr
    if not isinstance(out, _StreamProxy):
        sys.stdout = _StreamProxy("stdout", out)  # type: ignore[assignment]
    if not isinstance(err, _StreamProxy):
        sys.stderr = _StreamProxy("stderr", err)  # type: ignore[assignment]
    return sys.stdout._real, sys.stderr._real  # type: ignore[attr-defined]


# ---------------------------------------------------------------- running a task


_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))


def _exception_info(exc: BaseException) -> tuple[str, str, str]:
    """``(type qualname, message, traceback)`` with the runtime's own frames left out."""
    import traceback

    kind = type(exc)
    qual = f"{kind.__module__}.{kind.__qualname__}"
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_RUNTIME_DIR):
        tb = tb.tb_next
    return qual, str(exc), "".join(traceback.format_exception(kind, exc, tb))


def run_task(spec: TaskSpec, store: Any, flow_class: type[FlowSpec], tap: LogTap | None = None) -> TaskResult:
    """Run one attempt of one task against ``store``; never raises for user errors.

    With an installed ``tap`` (worker processes) the output is captured at the file
    descriptors and streamed into the store while the step runs; without one (inline) it is
    captured from ``sys.stdout``/``sys.stderr`` and streamed the same way (on a remote
    executor's worker: kept, and stored when the attempt's result arrives).
    """
    real_out, real_err = install_output_capture()
    store.start_attempt(spec.task_id, spec.attempt, os.getpid())
    pause_point("task_start", spec.step)
    cap: _Capture | _TapCapture
    if tap is not None and tap.installed:
        tap.begin(store, spec.task_id, spec.attempt, spec.prefix, not spec.quiet)
        cap = _TapCapture(tap, real_out, real_err)
    else:
        # Inline: streamed into the store as it is written; on a remote executor's worker
        # (no store there) kept and sent back with the result.
        stream_to = None if getattr(store, "remote", False) else store
        cap = _Capture(spec.prefix, not spec.quiet, real_out, real_err, stream_to, spec.task_id, spec.attempt)
    cap.say("Task is starting (retry)." if spec.attempt else "Task is starting.")
    graph = flow_class._graph()
    node = graph[spec.step]
    load = _loader(store)
    state = TaskState(step_name=spec.step, load=load, params=dict(spec.params),
                      foreach=list(spec.frames), is_join=node.is_join)
    inputs = None
    if node.is_join:
        flows, steps = [], []
        for task_id, step_name in spec.inputs:
            refs = _inheritable(store.list_artifact_refs(task_id), {**spec.params, **spec.constants})
            flows.append(flow_class._new_task(TaskState(step_name=step_name, load=load, inherited=refs,
                                                        params=dict(spec.params), readonly=True)))
            steps.append(step_name)
        inputs = Inputs(flows, steps)
    elif spec.inputs:
        state.inherited = _inheritable(store.list_artifact_refs(spec.inputs[0][0]), {**spec.params, **spec.constants})
    flow = flow_class._new_task(state)
    # A task on a remote executor gets a stand-in (executors/remote.py) that serves
    # its inputs and collects its outputs: the client inside such a step has no store.
    client_store = None if getattr(store, "remote", False) else store
    ctx = TaskContext(
        flow_name=spec.flow_name, run_id=str(spec.run_number), step_name=spec.step,
        task_id=str(spec.task_id), retry_count=spec.attempt, origin_run_id=spec.origin_run_id,
        namespace=spec.identity, username=spec.username, parameter_names=tuple(sorted(spec.params)),
        tags=frozenset(spec.tags), graph=spec.graph_info, store=client_store,
        # @project: the --production branch, as in Metaflow; else a triggered production run
        is_production=bool(spec.project["is_production"]) if spec.project
        else bool(spec.identity and spec.identity.startswith("production:")),
        extra=dict(spec.project) if spec.project else None,
    )
    collector = None
    if spec.cards:  # only steps with @card load the cards package
        from ..cards._runtime import make_collector

        collector = make_collector(store, spec.task_id, spec.attempt, ctx_pathspec(ctx), list(spec.cards), cap.say)
        ctx.extra["card"] = collector
    error: BaseException | None = None

    def body() -> None:
        from ..namespace import namespace_scope, use_store

        _capture.set(cap)
        # The run's identity namespace (or the one asked for), never the caller's
        # interactive namespace(): a flow started from a notebook reads what a shell run reads.
        ns = spec.client_namespace if spec.set_client_namespace else spec.identity
        with namespace_scope(ns), use_store(client_store) if client_store is not None else nullcontext(), \
                task_context(ctx):
            func = getattr(flow, spec.step)
            func(inputs) if node.is_join else func()

    saved_env = {name: os.environ.get(name) for name in spec.env}
    try:
        if spec.fallback is not None:
            # The previous attempt's process was killed (its @timeout, a crash): this
            # attempt runs no user code and records that failure for @catch (Metaflow's
            # fallback step).
            raise _Recorded(*spec.fallback)
        os.environ.update(spec.env)
        with _deadline(spec):
            contextvars.copy_context().run(body)
        _check_transition(flow, state, node)
    except BaseException as exc:  # noqa: BLE001 - the task records any failure, even SystemExit
        error = exc
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C or SIGTERM: the run stops (never retried, never caught)
        _record_interrupt(spec, store, cap, error)
        raise error
    next_step = case = None
    if error is None and node.switch_cases is not None:
        try:
            case, next_step = _switch_case(flow, node)
        except KeyboardInterrupt:
            raise  # the scheduler records the attempt as interrupted
        except BaseException as exc:  # noqa: BLE001
            error = exc
    foreach_refs = None
    if error is None and node.foreach_var:
        try:
            foreach_refs = _split(store, flow, node, spec.max_num_splits)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001
            error = exc
    status = "succeeded"
    exception = None
    catching = error is not None and spec.catch_enabled and spec.attempt >= spec.retries
    if error is not None:
        exception = error.info if isinstance(error, _Recorded) else _exception_info(error)
        if not (catching and not spec.catch_print):  # @catch(print_exception=False): kept, not printed
            cap.write("stderr", exception[2])
        status = "caught" if catching else "failed"
    if spec.catch_enabled and spec.catch_var:
        flow.__dict__[spec.catch_var] = CaughtException(*exception) if catching and exception else None
    artifacts, encode_error = _collect(store, flow, state, spec)
    if encode_error is not None and status == "succeeded":
        status, exception = "failed", _exception_info(encode_error)
        cap.write("stderr", exception[2])
    stdout, stderr = cap.close()
    metadata = dict(spec.metadata)
    metadata["attempt"] = str(spec.attempt)
    if spec.frames:
        metadata["foreach-execution-path"] = spec.foreach_path or ""
    if next_step is not None and status == "succeeded":
        metadata["switch-case"] = str(case)
        metadata["switch-next-step"] = next_step
    pause_point("task_persist", spec.step)
    try:
        store.finish_attempt(spec.task_id, spec.attempt, status, artifacts=artifacts, stdout=stdout,
                             stderr=stderr, exception=exception, metadata=metadata)
    except ValueVanished as exc:
        # A concurrent gc took a chunk an artifact re-used (it did not see this run as live):
        # the attempt fails cleanly, its output and this exception kept; @retry saves again.
        status, exception = "failed", _exception_info(exc)
        stderr += exception[2]
        store.finish_attempt(spec.task_id, spec.attempt, status, stdout=stdout, stderr=stderr,
                             exception=exception, metadata=metadata)
    if collector is not None:
        from ..cards._runtime import finish_cards

        finish_cards(collector, store, spec.task_id, spec.attempt, ctx_pathspec(ctx), ctx.parameter_names,
                     spec.graph_info, spec.step, status, cap.say)
    if status == "succeeded":
        cap.say("Task finished successfully.")
    elif status == "caught":
        cap.say("@catch caught an exception; the flow goes on. Task finished.")
    else:
        cap.say("Task failed.")
    return TaskResult(spec.task_id, spec.attempt, status, foreach_refs,
                      None if exception is None else f"{exception[0]}: {exception[1]}",
                      next_step if status == "succeeded" else None)


def _record_interrupt(spec: TaskSpec, store: Any, cap: "_Capture | _TapCapture", error: KeyboardInterrupt) -> None:
    """Commit the interrupted attempt with what it printed (no artifacts: the step did not finish).

    Further Ctrl-C are held until it is written; should the write fail, the scheduler
    still marks the attempt interrupted.
    """
    from ..util import signals_held

    with signals_held():
        exception = _exception_info(error)
        if not exception[1]:
            exception = (exception[0], "the run was interrupted", exception[2])
        cap.say("Task interrupted.")
        stdout, stderr = cap.close()
        metadata = dict(spec.metadata, attempt=str(spec.attempt))
        try:
            store.finish_attempt(spec.task_id, spec.attempt, "interrupted", stdout=stdout, stderr=stderr,
                                 exception=exception, metadata=metadata)
        except RunstoreError:
            pass


class _Recorded(Exception):
    """A failure recorded by the scheduler (``TaskSpec.fallback``), replayed as this attempt's."""

    def __init__(self, kind: str, message: str, traceback: str) -> None:
        super().__init__(message)
        self.info = (kind, message, traceback)


class _deadline:
    """Raise :class:`TimeoutException` in the step when it runs past ``spec.timeout``.

    In the main thread (a worker process, or inline) through ``SIGALRM``, which also
    interrupts ``time.sleep`` and most blocking calls. In another thread (a Dask
    worker's task thread, a scheduler started from a thread) through an asynchronous
    exception, delivered at the step's next Python bytecode: a step blocked inside C
    code sees it only when that call returns; the scheduler's own deadline (a few
    seconds later) covers that case by killing or cancelling the attempt.
    """

    def __init__(self, spec: TaskSpec) -> None:
        self.seconds = spec.timeout
        self.message = f"Step {spec.step} (task-id {spec.task_id}) timed out after {_human(spec.timeout or 0)}"
        self.previous: Any = None
        self.timer: Any = None
        self.lock: Any = None
        self.fired = False

    def __enter__(self) -> "_deadline":
        import signal
        import threading

        if not self.seconds:
            return self
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            def expired(signum: int, frame: Any) -> None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                raise TimeoutException(self.message)

            self.previous = signal.signal(signal.SIGALRM, expired)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            return self
        import ctypes

        self.lock = threading.Lock()
        thread_id = threading.get_ident()

        def expire() -> None:
            with self.lock:
                if self.timer is None:
                    return
                self.fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(_AsyncTimeout))

        self.timer = threading.Timer(self.seconds, expire)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        import signal
        import threading

        if not self.seconds:
            return
        if self.lock is None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
            return
        with self.lock:
            self.timer.cancel()
            self.timer = None
            if self.fired:  # clear it if still pending, so it never lands in the runtime's code
                import ctypes

                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)
        if self.fired and (kind is None or kind is _AsyncTimeout):
            raise TimeoutException(self.message).with_traceback(tb) from None


class _AsyncTimeout(BaseException):
    """Delivered into a step's thread by :class:`_deadline`; turned into TimeoutException."""


def _human(seconds: float) -> str:
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def ctx_pathspec(ctx: TaskContext) -> str:
    return f"{ctx.flow_name}/{ctx.run_id}/{ctx.step_name}/{ctx.task_id}"


def _loader(store: Any) -> Any:
    def load(ref: Any) -> Any:
        return store.load_value(ref.blob_key, ref.encoding)

    return load


def _inheritable(refs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {n: r for n, r in refs.items() if n not in params and n not in RUNTIME_ARTIFACTS}


def _same_value(a: Any, b: Any) -> bool:
    return bool(a.blob_key == b.blob_key and a.encoding == b.encoding and a.type == b.type)


def _check_transition(flow: FlowSpec, state: TaskState, node: Any) -> None:
    if node.type == "end":
        if state.transition is not None:
            raise FlowDefinitionError(f"the end step must not call self.next() (step {node.name!r})")
        return
    if state.transition is None:
        raise FlowDefinitionError(f"step {node.name!r} (line {node.line}) finished without calling self.next()")
    targets, foreach = state.transition
    called = state.switch[0] if state.switch else None
    if called != node.switch_cases or (state.switch and state.switch[1] != node.condition):
        raise FlowDefinitionError(
            f"step {node.name!r} called self.next({called or ', '.join(targets)}"
            f"{', condition=' + repr(state.switch[1]) if state.switch else ''}) but its last statement says "
            f"self.next({node.switch_cases or ', '.join(node.out_funcs)}"
            f"{', condition=' + repr(node.condition) if node.condition else ''})")
    if list(targets) != node.out_funcs or foreach != node.foreach_var:
        raise FlowDefinitionError(
            f"step {node.name!r} called self.next({', '.join(targets)}"
            f"{', foreach=' + repr(foreach) if foreach else ''}) but its last statement says "
            f"self.next({', '.join(node.out_funcs)}"
            f"{', foreach=' + repr(node.foreach_var) if node.foreach_var else ''})")


def _switch_case(flow: FlowSpec, node: Any) -> tuple[str, str]:
    """The case a switch takes (equal to ``self.<condition>``) and its step."""
    try:
        value = getattr(flow, node.condition)
    except AttributeError:
        raise FlowDefinitionError(f"switch condition self.{node.condition} of step {node.name!r} "
                                  f"(line {node.next_line}) is not set") from None
    if not isinstance(value, str) or value not in node.switch_cases:
        raise FlowDefinitionError(
            f"switch condition self.{node.condition} of step {node.name!r} (line {node.next_line}) is {value!r}, "
            f"which is not one of its cases: {', '.join(map(repr, node.switch_cases))}")
    return value, node.switch_cases[value]


def _split(store: Any, flow: FlowSpec, node: Any, max_num_splits: int) -> list[Any]:
    var = node.foreach_var
    try:
        values = list(getattr(flow, var))
    except AttributeError:
        raise FlowDefinitionError(f"foreach variable self.{var} of step {node.name!r} is not set") from None
    except TypeError:
        raise FlowDefinitionError(f"foreach variable self.{var} of step {node.name!r} is not iterable") from None
    if len(values) > max_num_splits:
        raise RunstoreError(
            f"Foreach in step {node.name} yielded {len(values)} child steps which is more than the current "
            f"maximum of {max_num_splits} children. You can raise the maximum with the --max-num-splits option.")
    if not values:
        raise RunstoreError(f"Foreach over self.{var} in step {node.name} has no elements; nothing to run")
    return store.put_values(values)


def _collect(store: Any, flow: FlowSpec, state: TaskState, spec: TaskSpec) -> tuple[dict[str, Any], BaseException | None]:
    """Encode what the step set; pass everything else down by reference.

    A value the step only read (``self.x`` caches it) or set to what it already had
    encodes to the same blob: the inherited reference is kept, so the commit binds
    the existing row instead of storing a new one (docs/storage.md).
    """
    artifacts: dict[str, Any] = dict(spec.params)
    error: BaseException | None = None
    for name, ref in state.inherited.items():
        if name not in flow.__dict__:
            artifacts[name] = ref
    artifacts.update(spec.constants)  # read-only: never in flow.__dict__
    for name, value in list(flow.__dict__.items()):
        if name.startswith("_runstore"):
            continue
        try:
            prepared = store.prepare_value(value)
            had = state.inherited.get(name)
            # (a remote executor's stand-in store prepares a StoredValue directly)
            same = had is not None and _same_value(had, getattr(prepared, "stored", prepared))
            artifacts[name] = had if same and had.artifact_id is not None else prepared
        except (CodecError, StoreError) as exc:  # StoreError: e.g. disk full, kept as is (not a CodecError)
            error = error or exc
        except Exception as exc:  # noqa: BLE001 - pickling user objects can fail any way
            error = error or CodecError(f"artifact {name!r} cannot be stored: {exc}")
    if spec.frames:
        artifacts["_foreach_stack"] = store.prepare_value([f.as_json() for f in spec.frames])
        # The element this task got (self.input) is a blob of its own, written by the split.
        # This row is what makes it "used": gc, export, merge and doctor follow artifact
        # rows, and resume re-reads the children's inputs through them.
        if spec.frames[-1].value_ref is not None:
            artifacts["_foreach_input"] = spec.frames[-1].value_ref
    return artifacts, error
