"""Resume and clone: re-run a flow from where an earlier run failed, reusing what succeeded.

``python flow.py resume [STEP]`` picks an origin run (``--origin-run-id N``, else the
newest ``python flow.py run`` of this flow by this user, successful or not), then runs
the flow again as a new run. The graph walk is the normal one; a task is *cloned*
instead of executed when

* its step is not STEP nor downstream of STEP,
* every input task was cloned too (nothing upstream changed), and
* the origin has a successful (or ``@catch``-handled) task of the same step and
  foreach path.

A clone is rows only: its artifacts point at the origin's blobs, its one attempt
carries the origin's outcome and logs, and it records ``origin-run-id`` /
``origin-task-id``. Parameters are frozen: the ``_parameters`` task is cloned too.
Everything is checked (origin exists, STEP is in the graph) before the new run is
created, so a bad resume leaves no trace.

``python flow.py run --clone N`` is different: a fresh run (nothing cloned) whose
parameters default to run N's values (:func:`clone_parameters`).

Example
-------
>>> from runstore import FlowSpec, step
>>> class Three(FlowSpec):
...     @step
...     def start(self):
...         self.next(self.a)
...     @step
...     def a(self):
...         self.next(self.end)
...     @step
...     def end(self):
...         pass
>>> sorted(downstream(Three._graph(), "a"))  # what `resume a` runs again
['a', 'end']
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from ..errors import NotFound, ResumeError
from ..flowspec import FlowSpec
from ..util import parse_id
from .parameters import environment_values, resolve_parameters
from .scheduler import RunOutcome, Scheduler
from .task import TaskResult, TaskSpec

__all__ = ["ResumePlan", "plan_resume", "resume", "ResumeScheduler", "downstream", "clone_parameters", "clone_launch",
           "parse_run_number"]

#: Origin task statuses that are reused by a resume.
REUSABLE = ("succeeded", "caught")


def parse_run_number(flow_name: str, value: Any) -> int:
    """``5``, ``"5"`` or ``"Flow/5"`` -> 5; anything else is a ``ResumeError``.

    Example
    -------
    >>> parse_run_number("F", "F/5"), parse_run_number("F", 7)
    (5, 7)
    """
    text = str(value).strip()
    if text.startswith(flow_name + "/"):
        text = text[len(flow_name) + 1:]
    # Pinned by tests/test_reliability_input.py::test_resume_refuses_bad_origin_run_ids_in_one_line
    number = parse_id(text, canonical=False)
    if number is None:
        raise ResumeError(f"{value!r} is not a run of {flow_name}: give its run number (e.g. 3) or {flow_name}/3")
    return number


def downstream(graph: Any, step: str) -> set[str]:
    """``step`` and every step reachable from it (see the module example)."""
    seen: set[str] = set()
    todo = [step]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name].out_funcs)
    return seen


class ResumePlan:
    """What a resume reuses: the origin run, its tasks by (step, foreach path), the forced steps."""

    def __init__(self, flow_name: str, origin: dict[str, Any], tasks: list[dict[str, Any]], rerun: set[str]) -> None:
        self.flow_name = flow_name
        self.origin = origin
        self.rerun = rerun
        self.tasks = {(t["step"], t["foreach_path"]): t for t in tasks if t["step"] != "_parameters"}
        #: Every origin task of a (step, foreach path) in order: a switch looping back runs a step again.
        self.visits: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for t in tasks:
            if t["step"] != "_parameters":
                self.visits.setdefault((t["step"], t["foreach_path"]), []).append(t)
        self.parameters_task = next((t for t in tasks if t["step"] == "_parameters" and t["status"] == "succeeded"),
                                    None)

    @property
    def origin_number(self) -> int:
        return int(self.origin["run_number"])

    @property
    def origin_pathspec(self) -> str:
        return f"{self.flow_name}/{self.origin_number}"

    def task_pathspec(self, task: dict[str, Any]) -> str:
        return f"{self.origin_pathspec}/{task['step']}/{task['task_id']}"


def plan_resume(store: Any, flow_class: type[FlowSpec], step: str | None = None,
                origin_run_id: Any = None) -> ResumePlan:
    """Check and plan a resume; nothing is written.

    Raises
    ------
    ResumeError
        ``step`` is not a step of the flow's current graph, or the run id is malformed.
    NotFound
        The origin run does not exist (or, by default, this user has no run of the flow).
    """
    from ..util import resolve_username

    graph = flow_class._graph()
    name = flow_class.__name__
    if step is not None and step not in {n.name for n in graph}:
        valid = ", ".join(sorted(n.name for n in graph))
        raise ResumeError(f"invalid step name {step!r}: resume takes a step of the flow's current graph "
                          f"({valid})")
    if origin_run_id is None:
        user = resolve_username()
        origin = store.find_origin_run(name, user)
        if origin is None:
            raise NotFound(f"{user} has no run of {name} to resume in {store.where}; "
                           "start one with 'run', or pass --origin-run-id")
    else:
        number = parse_run_number(name, origin_run_id)
        origin = store.find_run(name, number)
        if origin is None:
            raise NotFound(f"Resume could not find run {name}/{number} in {store.where}")
    rerun = downstream(graph, step) if step is not None else set()
    plan = ResumePlan(name, origin, store.list_run_tasks(origin["run_id"]), rerun)
    if plan.parameters_task is None:
        required = [p.option for p in flow_class._parameters() if p.required]
        if required:
            raise ResumeError(f"{plan.origin_pathspec} stored no parameters (it died first) and "
                              f"{', '.join(required)} has no default: start a new run instead")
    return plan


class ResumeScheduler(Scheduler):
    """The scheduler of a resumed run: clones what the plan allows, runs the rest."""

    def __init__(self, flow_class: type[FlowSpec], store: Any, plan: ResumePlan, **kwargs: Any) -> None:
        super().__init__(flow_class, store, {}, **kwargs)
        self.plan = plan
        self.cloned: set[int] = set()
        self._stacks: dict[str, dict[int, list[dict[str, Any]]]] = {}

    def _create_run(self, name: str, tags: list[str], code_id: int | None) -> Any:
        from ..store import effective_status

        plan, origin = self.plan, self.plan.origin
        status = effective_status(origin["status"], origin["heartbeat_at"], origin["created_at"],
                                  origin["owner_host"], origin["owner_pid"])
        self.say(f"Resuming {plan.origin_pathspec} (by {origin['user_name'] or 'unknown'}, {status}).")
        return self.store.create_run(
            name, user=self.username, namespace=self.identity, system_tags=tags, user_tags=self.tags,
            invocation="resume", origin_run_id=plan.origin["run_id"], origin_pathspec=plan.origin_pathspec,
            code_id=code_id, end_step="end",
        )

    def _store_parameters(self) -> None:
        plan, store = self.plan, self.store
        self.metadata = dict(self.metadata, **{"origin-run-id": str(plan.origin_number)})
        origin = plan.parameters_task
        configs = self.prepared.configs
        if origin is None:  # the origin died before storing its parameters: use the defaults
            self.params = {**resolve_parameters(self.flow_class, {}), **configs}
            super()._store_parameters()
            return
        params = self.flow_class._parameters()
        self.graph_info = self.graph_info_of(params)
        task_id = self.param_task = store.create_task(self.record.run_id, "_parameters")
        meta = dict(self.metadata, attempt="0", **{"origin-task-id": str(origin["task_id"])},
                    **self._launch_metadata())
        # Configs are the origin's unless given again (equal values are the same blobs).
        config_refs = dict(zip(configs, store.put_values(configs.values()))) if configs else {}
        store.clone_task(task_id, origin["task_id"], plan.task_pathspec(origin), meta,
                         artifacts={"_graph_info": store.put_value(self.graph_info), **config_refs})
        refs = store.list_artifact_refs(task_id)
        self.param_refs = {p.attr_name: refs[p.attr_name] for p in params if p.attr_name in refs}
        self.param_refs.update({name: refs[name] for name in config_refs})
        missing = [p for p in params if p.attr_name not in refs]
        if missing:  # parameters added to the flow since the origin ran: their defaults
            from ..flowspec import ParameterContext
            from .configs import evaluate_parameters

            context = ParameterContext.for_flow(self.flow_class.__name__)
            values = evaluate_parameters(self.flow_class, {p.attr_name: p.default_value(context) for p in missing},
                                         configs)
            self.param_refs.update(zip(values, store.put_values(values.values())))

    def _spec(self, task_id: int, step: str, inputs: list[Any], frames: list[Any]) -> TaskSpec:
        spec = super()._spec(task_id, step, inputs, frames)
        return dataclasses.replace(spec, origin_run_id=str(self.plan.origin_number))

    # ------------------------------------------------------------ cloning

    def _launch(self, spec: TaskSpec) -> bool:
        plan = self.plan
        if spec.attempt or spec.step in plan.rerun:
            return False
        if any(task_id not in self.cloned for task_id, _ in spec.inputs):
            return False
        key = (spec.step, spec.foreach_path)
        visit = self.visits.get((spec.step, spec.foreach_path or ""), 1) - 1  # counted by _schedule
        tasks = plan.visits.get(key, [])
        origin = tasks[visit] if visit < len(tasks) else None
        if origin is None or origin["status"] not in REUSABLE:
            return False
        node = self.graph[spec.step]
        refs = None
        next_step = None
        origin_meta: dict[str, Any] = {}
        if node.switch_cases is not None and origin["status"] == "succeeded":
            # clone the taken path: the case the origin chose, if the graph still has it
            origin_meta = {m["name"]: m["value"] for m in self.store.list_metadata(origin["task_id"])}
            next_step = origin_meta.get("switch-next-step")
            if next_step not in node.out_funcs:
                return False
        if node.foreach_var and origin["status"] == "succeeded":
            refs = self._foreach_refs(origin, spec, node)
            if refs is None:
                return False  # the children's inputs cannot be recovered: run the split again
        meta = dict(self.metadata, attempt="0", **{"origin-task-id": str(origin["task_id"])})
        if spec.frames:
            meta["foreach-execution-path"] = spec.foreach_path or ""
        if next_step is not None:
            meta["switch-case"] = str(origin_meta.get("switch-case", ""))
            meta["switch-next-step"] = next_step
        source = plan.task_pathspec(origin)
        status = self.store.clone_task(spec.task_id, origin["task_id"], source, meta,
                                       inputs=[self.param_task, *(task_id for task_id, _ in spec.inputs)])
        self.cloned.add(spec.task_id)
        self.say(f"{spec.prefix} Cloning previously run task {source}")
        self._on_result(spec, TaskResult(spec.task_id, 0, status, refs, next_step=next_step))
        return True

    def _foreach_refs(self, origin: dict[str, Any], spec: TaskSpec, node: Any) -> list[Any] | None:
        """The values the origin's split handed to its children, by reference (index order)."""

        child = node.out_funcs[0]
        prefix = f"{spec.foreach_path}," if spec.foreach_path else ""
        if child not in self._stacks:
            self._stacks[child] = self.store.list_foreach_stacks(self.plan.origin["run_id"], child)
        stacks = self._stacks[child]
        found: dict[int, Any] = {}
        count = None
        for (step, path), task in self.plan.tasks.items():
            if step != child or not path or not path.startswith(prefix) or "," in path[len(prefix):]:
                continue
            stack = stacks.get(task["task_id"])
            if not stack:
                continue
            frame = stack[-1]
            if frame.get("step") != node.name:
                continue
            # The child's _foreach_input row keeps its element's blob alive (gc, export);
            # without it the blob named in the stack may be gone: split again instead.
            ref = self.store.list_artifact_refs(task["task_id"]).get("_foreach_input")
            if ref is None:
                return self._foreach_refs_from_value(origin, node)
            count = frame["num_splits"]
            found[frame["index"]] = ref
        if count is not None and len(found) == count and set(found) == set(range(count)):
            return [found[i] for i in range(count)]
        return self._foreach_refs_from_value(origin, node)

    def _foreach_refs_from_value(self, origin: dict[str, Any], node: Any) -> list[Any] | None:
        # Some children never finished (a crashed origin): split the stored foreach
        # variable again; equal values encode to the same blobs.
        from ..errors import RunstoreError

        ref = self.store.list_artifact_refs(origin["task_id"]).get(node.foreach_var)
        if ref is None:
            return None
        try:
            values = list(self.store.load_value(ref.blob_key, ref.encoding))
        except (RunstoreError, TypeError):
            return None
        if not values or len(values) > self.max_num_splits:
            return None
        return self.store.put_values(values)


def resume(flow_class: type[FlowSpec], store: Any, *, step: str | None = None, origin_run_id: Any = None,
           tags: list[str] | tuple[str, ...] = (), max_workers: int | None = None, max_num_splits: int = 100,
           namespace: str | None = None, namespace_given: bool = False, quiet: bool = False,
           on_run_created: Callable[[Any], None] | None = None, executor: str | None = None,
           dask_address: str | None = None, with_decorators: Sequence[str] = (), launch: Any = None) -> RunOutcome:
    """Resume a run of ``flow_class`` (see the module docstring); returns the new run's outcome.

    Raises ``ResumeError`` / ``NotFound`` before anything is written when the step or
    the origin is wrong.
    """
    from ..tags import validate_user_tags
    from .environment import flow_file_of

    validate_user_tags(list(tags))
    plan = plan_resume(store, flow_class, step, origin_run_id)
    launch = _with_origin_configs(launch, store, flow_class, plan)
    scheduler = ResumeScheduler(
        flow_class, store, plan, tags=list(tags), max_workers=max_workers, max_num_splits=max_num_splits,
        client_namespace=namespace or None, set_namespace=namespace_given, quiet=quiet,
        flow_file=flow_file_of(flow_class), on_run_created=on_run_created, executor=executor,
        dask_address=dask_address, with_decorators=with_decorators, launch=launch,
    )
    return scheduler.run()


def _with_origin_configs(launch: Any, store: Any, flow_class: type[FlowSpec], plan: ResumePlan) -> Any:
    """The launch options of a resume: the origin run's configs for those not given again."""
    from .configs import LaunchOptions, stored_configs

    launch = launch or LaunchOptions()
    if launch.base is not None:
        return launch
    return dataclasses.replace(launch, base=stored_configs(store, flow_class, plan.origin["run_id"]))


def clone_launch(launch: Any, store: Any, flow_class: type[FlowSpec], clone: Any) -> Any:
    """The launch options of ``run --clone RUN``: RUN's configs for those not given again.

    Raises ``NotFound`` when RUN does not exist.
    """
    from .configs import LaunchOptions, stored_configs

    name = flow_class.__name__
    number = parse_run_number(name, clone)
    origin = store.find_run(name, number)
    if origin is None:
        raise NotFound(f"cannot clone {name}/{number}: no such run in {store.where}")
    launch = launch or LaunchOptions()
    return dataclasses.replace(launch, base=stored_configs(store, flow_class, origin["run_id"]))


def clone_parameters(flow_class: type[FlowSpec], store: Any, clone: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Parameter values for ``run --clone RUN``: ``given`` ones win, the rest are RUN's.

    ``given`` holds raw values by attribute name (as from the command line or
    ``Runner.run``); they are converted as in a normal run. Parameters RUN did not
    have take their defaults.

    Raises
    ------
    NotFound
        RUN does not exist.
    """
    name = flow_class.__name__
    number = parse_run_number(name, clone)
    origin = store.find_run(name, number)
    if origin is None:
        raise NotFound(f"cannot clone {name}/{number}: no such run in {store.where}")
    task = next((t for t in store.list_run_tasks(origin["run_id"]) if t["step"] == "_parameters"), None)
    refs = store.list_artifact_refs(task["task_id"]) if task is not None else {}
    # A value from RUNSTORE_RUN_<NAME> counts as given (it wins over the cloned one).
    given = {**{attr: text for attr, (_, text) in environment_values(flow_class).items()}, **given}
    inherited = {}
    for param in flow_class._parameters():
        if param.attr_name not in given and param.attr_name in refs:
            ref = refs[param.attr_name]
            inherited[param.attr_name] = store.load_value(ref.blob_key, ref.encoding)
    # Convert what was given; inherited values are already converted (and a required
    # parameter that the origin had is not missing).
    values = resolve_parameters(_WithoutInherited(flow_class, set(inherited)), given)
    values.update(inherited)
    return values


class _WithoutInherited:
    """A view of a flow class whose ``_parameters()`` leaves out the inherited ones."""

    def __init__(self, flow_class: type[FlowSpec], skip: set[str]) -> None:
        self._flow_class = flow_class
        self._skip = skip
        self.__name__ = flow_class.__name__

    def _parameters(self) -> list[Any]:
        return [p for p in self._flow_class._parameters() if p.attr_name not in self._skip]
