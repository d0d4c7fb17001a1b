"""The scheduler: creates the run, walks the graph, hands tasks to workers, records the end.

One scheduler per run. It allocates the run (number, tags, code snapshot), stores
the ``_parameters`` task, then keeps a queue of ready tasks: a task becomes ready
when its parent succeeded (linear steps, branches, foreach children) or when every
input of a join has arrived. Ready tasks go to an executor (:mod:`.executors`):
reusable forked worker processes (:mod:`.workers`), inline in this process when the
store is in memory or ``max_workers == 1``, or a Dask cluster (``executor="dask"``);
a step pinned with ``@executor("local")`` stays on this machine. The scheduler heartbeats while it waits and finishes the run
as ``succeeded`` (the end task succeeded) or ``failed``, or ``interrupted`` when Ctrl-C
(``KeyboardInterrupt``) or SIGTERM (:class:`~runstore.util.Terminated`, raised while a
run executes in the main thread) stops it: the attempts still running are recorded as
interrupted, workers are killed, and the interrupt goes on to the caller (the command
line exits 130 or 143). An interrupt is never retried and never caught by ``@catch``.

Resume slots in at :meth:`Scheduler._launch`: a resumed run gives the scheduler a
clone plan, and a task whose step and foreach path match a successful origin task
is cloned (rows copied by reference) instead of executed; the walk is the same.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any, Callable, Sequence, TextIO

from ..errors import RunstoreError
from ..flowspec import FlowSpec, ForeachFrame
from ..schema import HEARTBEAT_INTERVAL
from ..util import pause_point, signals_held, terminate_on_sigterm
from .task import TaskResult, TaskSpec

__all__ = ["Scheduler", "RunOutcome", "MAX_LOOPS"]

#: How many times one step may run at one foreach position in a run (a switch looping back).
MAX_LOOPS = 100


class RunOutcome:
    """How a run ended: flow, internal run id, run number, status and the failed steps."""

    def __init__(self, flow_name: str, run_id: int, run_number: int, status: str,
                 failed_steps: list[str] | None = None) -> None:
        self.flow_name = flow_name
        self.run_id = run_id
        self.run_number = run_number
        self.status = status
        self.failed_steps = failed_steps or []
        self.used_workers = False

    def __repr__(self) -> str:
        return f"RunOutcome({self.pathspec!r}, {self.status!r})"

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_number}"

    @property
    def successful(self) -> bool:
        return self.status == "succeeded"


def parse_with(specs: Sequence[str]) -> list[dict[str, Any]]:
    """``--with`` values (``retry``, ``catch:var=err``, ``timeout:seconds=5``) as decorator records.

    Values are read as JSON when they parse (``5``, ``true``, ``{"A": "1"}``), else kept as
    strings, as Metaflow does; the decorator checks them. A bad spec raises
    :class:`~runstore.errors.FlowDefinitionError`.

    >>> parse_with(["retry:times=2", "catch"])[0]["attributes"]["times"]
    2
    """
    from ..errors import FlowDefinitionError
    from ..flowspec import DECORATORS

    records = []
    for text in specs:
        name, _, rest = text.partition(":")
        if name not in DECORATORS:
            raise FlowDefinitionError(f"--with {text!r}: unknown decorator {name!r} "
                                      f"(one of {', '.join(sorted(DECORATORS))}; e.g. --with timeout:seconds=5)")
        kwargs: dict[str, Any] = {}
        for item in filter(None, rest.split(",")) if rest else ():
            key, eq, value = item.partition("=")
            if not eq or not key.isidentifier():
                raise FlowDefinitionError(f"--with {text!r}: expected NAME:key=value,key2=value2")
            try:
                kwargs[key] = json.loads(value)
            except ValueError:
                kwargs[key] = value
        if any(r["name"] == name for r in records):
            raise FlowDefinitionError(f"--with {name} is given twice")

        def probe(self: Any) -> None:
            pass

        try:
            DECORATORS[name](**kwargs)(probe)
        except TypeError as exc:
            raise FlowDefinitionError(f"--with {text!r}: {exc}".replace("wrap() ", "").replace(
                DECORATORS[name].__name__ + "() ", "")) from None
        record = probe._runstore_decorators[-1]  # type: ignore[attr-defined]
        records.append(dict(record, statically_defined=False))
    return records


class _Done:
    """A finished task, as the graph walk needs it."""

    __slots__ = ("task_id", "step", "frames")

    def __init__(self, task_id: int, step: str, frames: list[ForeachFrame]) -> None:
        self.task_id = task_id
        self.step = step
        self.frames = frames


class Scheduler:
    """Runs one flow run against a store.

    Parameters
    ----------
    flow_class : type
        The ``FlowSpec`` subclass (its graph is already checked).
    store : Store
        Where the run is recorded.
    params : dict
        Parameter values by attribute name (already converted and validated).
    """

    def __init__(self, flow_class: type[FlowSpec], store: Any, params: dict[str, Any], *,
                 tags: list[str] | tuple[str, ...] = (), max_workers: int | None = None,
                 max_num_splits: int = 100, client_namespace: Any = None, set_namespace: bool = False,
                 quiet: bool = False, flow_file: str | None = None,
                 on_run_created: Callable[[Any], None] | None = None,
                 console: TextIO | None = None, executor: str | None = None,
                 dask_address: str | None = None, max_loops: int = MAX_LOOPS,
                 with_decorators: Sequence[str] = (), launch: Any = None) -> None:
        from .executors import InlineExecutor, make_executors, resolve_executor

        self.flow_class = flow_class
        self.graph = flow_class._graph()
        self.with_decorators = parse_with(with_decorators)  # before anything starts: a bad spec is a usage error
        #: Configs and project branch asked for (runtime.configs.LaunchOptions); read by _run.
        self.launch = launch
        self.store = store
        self.params = params
        self.param_task: int | None = None  # the run's _parameters task, once stored
        self.tags = list(tags)
        self.max_workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
        self.max_num_splits = max_num_splits
        self.max_loops = max_loops
        self.visits: dict[tuple[str, str], int] = {}
        self.client_namespace = client_namespace
        self.set_namespace = set_namespace
        self.quiet = quiet
        self.flow_file = flow_file
        self.on_run_created = on_run_created
        self.console = console
        self.executor_name, address = resolve_executor(executor, dask_address)
        self.executors = make_executors(self.executor_name, store, flow_class, self.max_workers, address)
        self.inline = isinstance(self.executors["local"], InlineExecutor)
        self.pending_joins: dict[tuple[Any, ...], dict[int, _Done]] = {}
        self.ready: list[TaskSpec] = []
        self.failed: list[str] = []
        self.end_ok = False
        self._last_beat = 0.0

    # ------------------------------------------------------------ console

    def say(self, message: str) -> None:
        if not self.quiet:
            out = self.console or sys.stderr
            out.write(message + "\n")
            out.flush()

    # ------------------------------------------------------------ run

    def run(self) -> RunOutcome:
        """Create the run, execute it, return how it ended (never raises for step failures)."""
        name = self.flow_class.__name__
        # Before anything is written: an unreachable cluster is one line and no run (SPEC §16).
        for executor in self.executors.values():
            executor.connect()
        try:
            with terminate_on_sigterm():
                return self._run(name)
        finally:
            for executor in self.executors.values():
                executor.close()

    def _run(self, name: str) -> RunOutcome:
        from .production import TOKEN_ENV, production_identity
        from ..util import resolve_username
        from .environment import CELL_SCRIPT, cell_code_package, cell_source, code_package, environment_metadata, \
            flow_module_of, system_tags

        from .configs import evaluate_parameters, prepare

        store = self.store
        self.username = resolve_username()
        # Configs read, decorators written with them resolved, project branch known:
        # a bad value is one line before anything is stored (tests/test_project_config.py).
        self.prepared = prepare(self.flow_class, self.launch, username=self.username,
                                base_dir=os.path.dirname(self.flow_file) if self.flow_file else None)
        self.params = {**evaluate_parameters(self.flow_class, self.params, self.prepared.configs),
                       **self.prepared.configs}
        project = self.prepared.project
        # Production only with the deployment's token, checked here against its hash
        # (tests/test_security_namespaces.py); then out of the environment, so the
        # flow's own code and any flow it starts never see the secret. A @project
        # flow has one deployment per branch, named by its project flow name.
        production = production_identity(store, project.project_flow_name if project else name)
        os.environ.pop(TOKEN_ENV, None)
        self.identity = production or f"user:{self.username}"
        code_id = None
        self.code_package: bytes | None = None
        if self.flow_file:
            # The whole tree, or CodeSnapshotError before any run exists (never a truncated snapshot).
            self.code_package = code_package(self.flow_file, name, flow_module_of(self.flow_class))
            code_id = store.add_code_package(self.code_package, os.path.basename(self.flow_file))
        cell = None if self.flow_file else cell_source(self.flow_class)
        if cell is not None:  # defined in a notebook cell: the cell is the snapshot (not shipped to executors)
            code_id = store.add_code_package(cell_code_package(cell, name), CELL_SCRIPT)
        tags = system_tags() + ([f"executor:{self.executor_name}"] if self.executor_name != "local" else []) \
            + (project.tags if project else [])
        record = self._create_run(name, tags, code_id)
        self.record = record
        if self.on_run_created:
            self.on_run_created(record)
        self.metadata = environment_metadata(self.flow_file)
        if cell is not None:
            self.metadata["script-name"] = CELL_SCRIPT
        self.say(f"Workflow starting (run {record.pathspec}, {store.describe()}):")
        try:
            self._store_parameters()
            self._store_constants()
            self._schedule(self.graph.start.name, [], [])
            self._loop()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (a Terminated): recorded, then passed on
            with signals_held():
                store.finish_run(record.run_id, "interrupted")
                self.say(f"Workflow interrupted: {record.pathspec} is recorded as interrupted (resume re-runs it "
                         "from the interrupted step).")
            raise
        except BaseException:
            store.finish_run(record.run_id, "failed")
            raise
        status = "succeeded" if self.end_ok and not self.failed else "failed"
        pause_point("run_finish")
        store.finish_run(record.run_id, status)
        if status == "succeeded":
            self.say(f"Done! {record.pathspec} succeeded.")
        else:
            self.say("Workflow failed.")
            for line in self.failed:
                self.say(f"    {line}")
        outcome = RunOutcome(name, record.run_id, record.run_number, status, list(self.failed))
        # exit_with() may skip interpreter teardown when no user code ran in this process
        outcome.used_workers = self.executor_name == "local" and not self.inline
        return outcome

    def _create_run(self, name: str, tags: list[str], code_id: int | None) -> Any:
        """Allocate the run record (resume overrides this to record its origin).

        ``trigger`` runs the deployed flow file with ``RUNSTORE_INVOCATION=trigger``.
        """
        # popped: a flow launched from inside a step is a plain run again
        invocation = "trigger" if os.environ.pop("RUNSTORE_INVOCATION", None) == "trigger" else "run"
        return self.store.create_run(
            name, user=self.username, namespace=self.identity, system_tags=tags, user_tags=self.tags,
            invocation=invocation, code_id=code_id, end_step="end",
        )

    def _store_parameters(self) -> None:
        store, record = self.store, self.record
        params = self.flow_class._parameters()
        info = self.graph_info_of(params)
        self.graph_info = info
        task_id = store.create_task(record.run_id, "_parameters")
        store.start_attempt(task_id, 0, os.getpid())
        prepared = {name: store.prepare_value(value) for name, value in self.params.items()}
        graph_blob = store.prepare_value(info)
        meta = dict(self.metadata, attempt="0", **self._launch_metadata())
        store.finish_attempt(task_id, 0, "succeeded", artifacts={**prepared, "_graph_info": graph_blob},
                             metadata=meta)
        # Read back with their rows' ids: every task binds the parameters by reference.
        refs = store.list_artifact_refs(task_id)
        self.param_task = task_id
        self.param_refs = {name: refs[name] for name in prepared}

    def graph_info_of(self, params: list[Any]) -> dict[str, Any]:
        """The run's ``_graph_info``: the graph with this launch's decorator values."""
        info = self.graph.info([{"name": p.attr_name, "type": p.type_name} for p in params])
        for name, records in self.prepared.decorators.items():
            info["steps"][name] = dict(info["steps"][name], decorators=records)
        return info

    def _launch_metadata(self) -> dict[str, str]:
        """Metadata of the ``_parameters`` task: the run's configs (JSON) and project branch."""
        from ..config import flow_configs

        meta = {}
        configs = {c.name: self.prepared.configs.get(c.attr_name) for c in flow_configs(self.flow_class)}
        if configs:
            try:
                meta["configs"] = json.dumps(configs, sort_keys=True)
            except (TypeError, ValueError):  # a parser gave non-JSON values: they are in the artifacts
                meta["configs"] = json.dumps(configs, sort_keys=True, default=repr)
        project = self.prepared.project
        if project is not None:
            meta.update({"project-name": project.project_name, "project-branch": project.branch_name,
                         "project-flow-name": project.project_flow_name})
        return meta

    def _store_constants(self) -> None:
        """The flow's class-level constants, stored once: artifacts of every task, as in Metaflow."""
        from ..errors import CodecError

        self.constant_refs: dict[str, Any] = {}
        for name, value in self.flow_class._constants().items():
            try:
                self.constant_refs[name] = self.store.put_value(value)
            except CodecError as exc:
                raise CodecError(f"the class-level constant {name!r} of {self.flow_class.__name__} cannot be "
                                 f"stored: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - pickling user objects can fail any way
                raise CodecError(f"the class-level constant {name!r} of {self.flow_class.__name__} cannot be "
                                 f"stored: {type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------ graph walk

    def _schedule(self, step: str, inputs: list[_Done], frames: list[ForeachFrame]) -> None:
        path = ",".join(f"{f.step}:{f.index}" for f in frames)
        visits = self.visits[(step, path)] = self.visits.get((step, path), 0) + 1
        if visits > self.max_loops:  # only a switch can bring a step back
            self.failed.append(f"Step {step}{' at ' + path if path else ''} would run more than {self.max_loops} "
                               f"times: a switch looped past the bound of {self.max_loops} runs of one step")
            return
        task_id = self.store.create_task(
            self.record.run_id, step,
            foreach_path=path or None,
            foreach_index=frames[-1].index if frames else None,
        )
        self.ready.append(self._spec(task_id, step, inputs, frames))

    def _schedule_foreach(self, step: str, parent: _Done, refs: list[Any], split: str, var: str) -> None:
        n = len(refs)
        children = [parent.frames + [ForeachFrame(split, var, i, n, ref)] for i, ref in enumerate(refs)]
        ids = self.store.create_tasks(self.record.run_id, step, [
            {"foreach_path": ",".join(f"{f.step}:{f.index}" for f in frames), "foreach_index": frames[-1].index}
            for frames in children
        ])
        for task_id, frames in zip(ids, children):
            self.ready.append(self._spec(task_id, step, [parent], frames))

    def _spec(self, task_id: int, step: str, inputs: list[_Done], frames: list[ForeachFrame]) -> TaskSpec:
        from ..flowspec import timeout_seconds

        node = self.graph[step]
        retries = catch_var = pinned = seconds = None
        catch_enabled, catch_print = False, True
        env: dict[str, str] = {}
        metadata = self.metadata
        own_decorators = self.prepared.decorators.get(step, node.decorators)  # config expressions filled in
        decorators = own_decorators + [
            d for d in self.with_decorators if not any(own["name"] == d["name"] for own in own_decorators)
            and not (d["name"] == "catch" and node.type == "split-foreach")]  # refused there (graph.py)
        for deco in decorators:
            if deco["name"] == "timeout":
                seconds = timeout_seconds(deco["attributes"])
            elif deco["name"] == "environment":
                env = dict(deco["attributes"]["vars"])
            elif deco["name"] == "resources":
                metadata = dict(metadata, resources=json.dumps(deco["attributes"], sort_keys=True))
        for deco in decorators:
            if deco["name"] == "retry":
                retries = deco["attributes"]["times"]
            elif deco["name"] == "catch":
                catch_enabled = True
                catch_var = deco["attributes"]["var"]
                catch_print = bool(deco["attributes"].get("print_exception", True))
            elif deco["name"] == "executor":
                pinned = deco["attributes"]["name"]
        return TaskSpec(
            task_id=task_id, step=step, attempt=0, run_id=self.record.run_id,
            run_number=self.record.run_number, flow_name=self.record.flow,
            inputs=[(d.task_id, d.step) for d in inputs], frames=list(frames), params=self.param_refs,
            retries=retries or 0, catch_var=catch_var, catch_enabled=catch_enabled, catch_print=catch_print,
            tags=tuple(self.tags),
            identity=self.identity, username=self.username, client_namespace=self.client_namespace,
            set_client_namespace=self.set_namespace, max_num_splits=self.max_num_splits, quiet=self.quiet,
            metadata=metadata, graph_info=self.graph_info, executor=pinned, timeout=seconds, env=env,
            cards=tuple(d["attributes"] for d in own_decorators if d["name"] == "card"),
            constants=self.constant_refs,
            project=self.prepared.project.as_current() if self.prepared.project else None,
        )

    def _on_result(self, spec: TaskSpec, result: TaskResult) -> None:
        if result.status == "failed":
            if spec.attempt < spec.retries:
                self.ready.append(dataclasses.replace(spec, attempt=spec.attempt + 1))
                return
            self.failed.append(f"Step {spec.step} (task-id {spec.task_id}) failed: {result.error}")
            return
        done = _Done(spec.task_id, spec.step, spec.frames)
        node = self.graph[spec.step]
        if node.type == "end":
            self.end_ok = True
            return
        if node.foreach_var and result.status == "succeeded":
            self._schedule_foreach(node.out_funcs[0], done, result.foreach_refs or [], node.name, node.foreach_var)
            return
        children = [result.next_step] if node.switch_cases is not None else node.out_funcs
        for child in children:
            if child is None:  # a switch task handled by @catch: no case was chosen
                self.failed.append(f"Step {spec.step} (task-id {spec.task_id}) chose no case of its switch")
                continue
            cnode = self.graph[child]
            if cnode.is_join:
                self._arrive(cnode, done)
            else:
                self._schedule(child, [done], done.frames)

    def _arrive(self, join: Any, done: _Done) -> None:
        split = self.graph[next(n.name for n in self.graph if n.matching_join == join.name)]
        if split.type == "split-foreach":
            outer = done.frames[:-1]
            expected, slot = done.frames[-1].num_splits, done.frames[-1].index
        else:  # one input per branch; after a switch, whichever case ran stands for its branch
            outer = done.frames
            expected, slot = len(split.out_funcs), join.branch_of[done.step]
        key = (join.name, tuple((f.step, f.index) for f in outer))
        arrived = self.pending_joins.setdefault(key, {})
        arrived[slot] = done
        if len(arrived) == expected:
            del self.pending_joins[key]
            inputs = [arrived[i] for i in range(expected)]
            if split.type != "split-foreach":
                inputs.sort(key=lambda d: join.in_funcs.index(d.step))
            self._schedule(join.name, inputs, list(outer))

    # ------------------------------------------------------------ execution

    def _launch(self, spec: TaskSpec) -> bool:
        """Hook for resume: return True when the task was cloned instead of run."""
        return False

    def _beat(self) -> None:
        stamp = time.monotonic()
        if stamp - self._last_beat >= HEARTBEAT_INTERVAL:
            self._last_beat = stamp
            self.store.heartbeat(self.record.run_id)

    def _submit_ready(self) -> None:
        """Hand ready tasks to their executors, in order, while they have capacity."""
        executors = self.executors
        default = executors[self.executor_name]
        held: list[TaskSpec] = []
        while self.ready and not self.failed:
            spec = self.ready[0]
            executor = executors.get(spec.executor or "", default)
            if not executor.has_capacity():
                if len(executors) == 1 or not any(e.has_capacity() for e in executors.values()):
                    break
                held.append(self.ready.pop(0))  # its executor is full: let others' tasks pass
                continue
            self.ready.pop(0)
            if not self._launch(spec):
                executor.submit(spec)
        if held:
            self.ready[:0] = held

    def _loop(self) -> None:
        """Submit, wait, record answers, heartbeat — until nothing is running or ready."""
        from .executors import Lost

        for executor in self.executors.values():
            executor.open(self)
        beat = not self.store.in_memory
        self._last_beat = time.monotonic()
        interrupted = False
        try:
            while True:
                self._submit_ready()
                busy = [e for e in self.executors.values() if e.busy]
                if not busy:
                    break
                # one busy executor: block on it; several: poll each in turn
                timeout = HEARTBEAT_INTERVAL if len(busy) == 1 else 0.05
                for executor in busy:
                    for spec, result in executor.wait(timeout):
                        if isinstance(result, Lost):
                            message, kind = result.message, result.kind
                            self.store.abandon_attempt(spec.task_id, spec.attempt, (kind, message, ""))
                            result = TaskResult(spec.task_id, spec.attempt, "failed", error=message)
                            self.say(f"{spec.prefix} {message}")
                            if spec.catch_enabled and spec.attempt >= spec.retries and spec.fallback is None:
                                # no process left to catch it in: one more attempt records it (@catch);
                                # it runs no user code, so here, with no timeout
                                self.ready.append(dataclasses.replace(
                                    spec, attempt=spec.attempt + 1, retries=spec.attempt + 1,
                                    fallback=(kind, message, ""), timeout=None, executor="local"))
                                continue
                        elif isinstance(result, KeyboardInterrupt):
                            raise result  # the step raised it itself (a worker ignores the signals)
                        elif isinstance(result, RunstoreError):
                            # the worker's store failed (e.g. StoreFullError): the run cannot go on,
                            # but its attempt is not left running (when the store still takes a write)
                            self._abandon([spec], result)
                            raise result
                        elif isinstance(result, BaseException):
                            self._abandon([spec], result)
                            raise RunstoreError(f"the runtime failed while running {spec.prefix}: {result!r}")
                        self._on_result(spec, result)
                if beat:
                    self._beat()
        except KeyboardInterrupt as exc:
            interrupted = True
            with signals_held():
                running = [spec for executor in self.executors.values() for spec in executor.busy]
                for executor in self.executors.values():
                    executor.close(kill=True)  # first: a worker still running must not commit after us
                kind = type(exc)
                info = (f"{kind.__module__}.{kind.__qualname__}", str(exc) or "the run was interrupted", "")
                for spec in running:  # a task that recorded its own interrupt (inline) is left as it is
                    self.store.abandon_attempt(spec.task_id, spec.attempt, info, "interrupted")
            raise
        except Exception as exc:  # an inline attempt whose store write failed: not left running
            self._abandon([spec for executor in self.executors.values() for spec in executor.busy], exc)
            raise
        finally:
            for executor in self.executors.values():
                executor.close(kill=interrupted)

    def _abandon(self, specs: list[TaskSpec], exc: BaseException) -> None:
        """Record ``exc`` as the failure of attempts the run stops on (best effort: the store may be what failed)."""
        kind = type(exc)
        for spec in specs:
            try:
                self.store.abandon_attempt(spec.task_id, spec.attempt,
                                           (f"{kind.__module__}.{kind.__qualname__}", str(exc), ""))
            except RunstoreError:
                pass
