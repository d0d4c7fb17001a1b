"""Running flows from Python: :class:`Runner`, and :func:`execute` shared with the CLI.

Example
-------
>>> from runstore import FlowSpec, Runner, Store, step
>>> class Tiny(FlowSpec):
...     @step
...     def start(self):
...         self.x = 1
...         self.next(self.end)
...     @step
...     def end(self):
...         pass
>>> store = Store(":memory:")
>>> run = Runner(Tiny, store=store).run()  # doctest: +SKIP
>>> run.successful, run["start"].task.data.x  # doctest: +SKIP
(True, 1)
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import FlowDefinitionError, ParameterError, RunFailed
from ..flowspec import FlowSpec
from .executing import ExecutingRun
from .parameters import resolve_parameters
from .scheduler import RunOutcome, Scheduler

__all__ = ["Runner", "NBRunner", "ExecutingRun", "execute", "load_flow", "resolve_parameters"]


def execute(flow_class: type[FlowSpec], store: Any, params: dict[str, Any], *, tags: Sequence[str] = (),
            max_workers: int | None = None, max_num_splits: int = 100, namespace: str | None = None,
            namespace_given: bool = False, quiet: bool = False,
            on_run_created: Callable[[Any], None] | None = None, executor: str | None = None,
            dask_address: str | None = None, with_decorators: Sequence[str] = (), launch: Any = None) -> RunOutcome:
    """Run ``flow_class`` with checked parameter values; returns the outcome.

    ``with_decorators``: ``--with`` specs (``"retry"``, ``"timeout:seconds=5"``) added to every
    step that does not have that decorator.

    ``launch``: the configs and ``@project`` branch asked for (``runtime.configs.LaunchOptions``).

    ``executor``: ``"local"`` or ``"dask"`` (default ``RUNSTORE_EXECUTOR``, else local);
    ``dask_address``: a Dask scheduler (default ``RUNSTORE_DASK_ADDRESS``, else a
    ``LocalCluster`` for the run). See docs/executors.md.
    """
    from .environment import flow_file_of

    scheduler = Scheduler(
        flow_class, store, params, tags=list(tags), max_workers=max_workers, max_num_splits=max_num_splits,
        client_namespace=namespace or None, set_namespace=namespace_given, quiet=quiet,
        flow_file=flow_file_of(flow_class), on_run_created=on_run_created, executor=executor,
        dask_address=dask_address, with_decorators=with_decorators, launch=launch,
    )
    return scheduler.run()


def load_flow(path: str | os.PathLike[str], name: str | None = None) -> type[FlowSpec]:
    """Import a flow file and return its ``FlowSpec`` subclass (``name`` picks one of several)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FlowDefinitionError(f"{path} does not exist")
    module_name = f"_runstore_flow_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FlowDefinitionError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    flows = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, FlowSpec) and obj is not FlowSpec
             and obj.__module__ == module_name]
    if name is not None:
        flows = [f for f in flows if f.__name__ == name]
    if len(flows) != 1:
        found = ", ".join(f.__name__ for f in flows) or "none"
        raise FlowDefinitionError(f"{path} must define exactly one flow (found: {found}); pass name=")
    return flows[0]


class Runner:
    """Run a flow from Python and get the client ``Run`` back.

    Parameters
    ----------
    flow : FlowSpec subclass or str
        The flow class, or the path of a flow file.
    store : Store or str, optional
        Where to record the run (``Store(":memory:")`` works: tasks then run in this
        process). Default: the store ``python flow.py run`` would use.
    quiet : bool
        Do not echo task output (it is stored either way). Default True.
    executor : str, optional
        ``"local"`` (forked workers on this machine) or ``"dask"`` (a Dask cluster;
        docs/executors.md). Default: ``RUNSTORE_EXECUTOR``, else local.
    dask_address : str, optional
        The Dask scheduler, e.g. ``tcp://10.0.0.5:8786`` (default ``RUNSTORE_DASK_ADDRESS``,
        else a ``LocalCluster`` started for each run).
    namespace : str or None, optional
        The client namespace the steps read (``--namespace``); ``None`` for every
        namespace. Default: the identity namespace of whoever runs it, never the
        caller's interactive ``namespace()`` choice.
    branch, production : optional
        The ``@project`` branch (``--branch NAME``, ``--production``).
    config, config_value : dict or (name, value) pairs, optional
        Config files (``--config NAME FILE``) and values (``--config-value NAME JSON``;
        a dict is taken as it is).

    Example
    -------
    >>> # run = Runner(TrainFlow, store=Store(":memory:")).run(alpha=0.1, tags=["exp"])
    >>> # run.data.model
    """

    def __init__(self, flow: type[FlowSpec] | str | os.PathLike[str], store: Any = None, *,
                 quiet: bool = True, flow_name: str | None = None, executor: str | None = None,
                 dask_address: str | None = None, namespace: Any = ..., branch: str | None = None,
                 production: bool = False, config: Any = None, config_value: Any = None,
                 decospecs: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        from .configs import LaunchOptions, config_pairs
        from .executors import resolve_executor
        from .scheduler import parse_with

        resolve_executor(executor, dask_address)  # an unknown name fails here, not at run()
        parse_with(decospecs)  # a bad --with spec too
        self.executor = executor
        self.dask_address = dask_address
        self.decospecs = tuple(decospecs)
        self.env = dict(env or {})
        self.flow_file = None if isinstance(flow, type) else str(Path(flow).resolve())
        self.flow_class = flow if isinstance(flow, type) else load_flow(flow, flow_name)
        if not issubclass(self.flow_class, FlowSpec):
            raise FlowDefinitionError(f"{flow!r} is not a FlowSpec subclass")
        self.flow_class._graph()
        if store is not None and not hasattr(store, "create_run"):
            from ..store import Store

            store = Store(store)
        self.store = store
        self.quiet = quiet
        self.namespace = namespace
        self.launch = LaunchOptions(config_pairs(config, "config"), config_pairs(config_value, "config_value"),
                                    branch, production)
        self.outcome: RunOutcome | None = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass  # nothing held between runs (Metaflow's Runner removes its temporary files here)

    def _store(self) -> Any:
        if self.store is None:
            from ..namespace import get_store

            self.store = get_store()
        return self.store

    def run(self, *, tags: list[str] | tuple[str, ...] = (), max_workers: int | None = None,
            max_num_splits: int = 100, namespace: Any = ..., raise_on_failure: bool = True,
            clone: Any = None, decospecs: Sequence[str] = (), **params: Any) -> ExecutingRun:
        """Run the flow with ``params`` (by attribute or parameter name); returns when it ended.

        The result is an :class:`ExecutingRun` (``.run`` the client ``Run``, ``.status``,
        ``.returncode``, ``.stdout``; a context manager) that also stands for the ``Run``
        itself (``.data``, ``["start"]``, ``.successful``).

        Raises
        ------
        ParameterError
            For an unknown or bad parameter (nothing is stored).
        RunFailed
            When a step failed (its ``run`` attribute is the failed ``Run``). Unlike
            Metaflow's Runner, this is the default; ``raise_on_failure=False`` returns the
            ``ExecutingRun`` of the failed run instead (``status == "failed"``).

        ``clone=N`` takes the parameter values of run N for those not given;
        ``decospecs=["retry", "timeout:seconds=60"]`` adds decorators as ``run --with``.
        Parameters left out come from ``RUNSTORE_RUN_<NAME>`` / ``METAFLOW_RUN_<NAME>``
        or their defaults, as on the command line.
        """
        from ..tags import validate_user_tags

        validate_user_tags(list(tags))
        namespace = self.namespace if namespace is ... else namespace
        known = {p.attr_name: p for p in self.flow_class._parameters()}
        by_name = {p.name.replace("-", "_"): p.attr_name for p in known.values()}
        given: dict[str, Any] = {}
        for key, value in params.items():
            attr = key if key in known else by_name.get(key)
            if attr is None:
                raise ParameterError(f"{self.flow_class.__name__} has no parameter {key!r}; "
                                     f"parameters are: {', '.join(known) or 'none'}")
            given[attr] = value
        launch = self.launch
        if clone is None:
            values = resolve_parameters(self.flow_class, given)
        else:
            from .resume import clone_launch, clone_parameters

            values = clone_parameters(self.flow_class, self._store(), clone, given)
            launch = clone_launch(launch, self._store(), self.flow_class, clone)
        outcome = execute(self.flow_class, self._store(), values, tags=list(tags), max_workers=max_workers,
                          max_num_splits=max_num_splits, namespace=None if namespace is ... else namespace,
                          namespace_given=namespace is not ..., quiet=self.quiet, executor=self.executor,
                          dask_address=self.dask_address, launch=launch,
                          with_decorators=self.decospecs + tuple(decospecs))
        return self._finish(outcome, raise_on_failure)

    def resume(self, step: str | None = None, *, origin_run_id: Any = None,
               tags: list[str] | tuple[str, ...] = (), max_workers: int | None = None,
               max_num_splits: int = 100, namespace: Any = ..., raise_on_failure: bool = True,
               decospecs: Sequence[str] = ()) -> ExecutingRun:
        """Resume a run (default: your latest ``run`` of this flow); returns the new run's :class:`ExecutingRun`.

        Successful tasks before the first failure (or before ``step``) are cloned,
        the rest runs again; parameters are the origin's. See ``docs/resume.md``.

        Raises
        ------
        NotFound
            The origin run does not exist (nothing is stored).
        ResumeError
            ``step`` is not a step of the flow (nothing is stored).
        RunFailed
            When a step failed again (its ``run`` attribute is the new ``Run``);
            ``raise_on_failure=False`` returns the failed ``Run`` instead.

        Example
        -------
        >>> # Runner(TrainFlow).resume(origin_run_id=3).origin_pathspec
        >>> # 'TrainFlow/3'
        """
        from .resume import resume

        namespace = self.namespace if namespace is ... else namespace
        outcome = resume(self.flow_class, self._store(), step=step, origin_run_id=origin_run_id, tags=list(tags),
                         max_workers=max_workers, max_num_splits=max_num_splits,
                         namespace=None if namespace is ... else namespace, namespace_given=namespace is not ...,
                         quiet=self.quiet, executor=self.executor, dask_address=self.dask_address,
                         launch=self.launch, with_decorators=self.decospecs + tuple(decospecs))
        return self._finish(outcome, raise_on_failure)

    # ------------------------------------------------------------ in a child process (asyncio)

    async def async_run(self, *, tags: Sequence[str] = (), max_workers: int | None = None,
                        max_num_splits: int = 100, namespace: Any = ..., clone: Any = None,
                        decospecs: Sequence[str] = (), **params: Any) -> ExecutingRun:
        """Start the flow as ``python flow.py run`` in a child process; returns once the run exists.

        ``await running.wait()`` waits for it to end (``wait(timeout=)`` stops it past the
        timeout), ``running.stream_log("stdout")`` yields its output lines as they come.
        Needs a store file (the child writes into it). A failed run does not raise:
        check ``running.status``, as in Metaflow.

        Raises
        ------
        ParameterError
            The child refused a parameter (exit 2; nothing stored).

        Example
        -------
        >>> # running = await Runner("train.py", store="runs.db").async_run(alpha=0.1)
        >>> # await running.wait(timeout=600); running.status
        """
        from ..tags import validate_user_tags
        from .executing import launch, option_args, started

        validate_user_tags(list(tags))
        command = ["run", *option_args(self.flow_class, params), *self._launch_args(
            tags, max_workers, max_num_splits, namespace, decospecs)]
        if clone is not None:
            command += ["--clone", str(clone)]
        return await started(launch(self, command, self.env))

    async def async_resume(self, step: str | None = None, *, origin_run_id: Any = None,
                           tags: Sequence[str] = (), max_workers: int | None = None, max_num_splits: int = 100,
                           namespace: Any = ..., decospecs: Sequence[str] = ()) -> ExecutingRun:
        """Resume a run as ``python flow.py resume`` in a child process (see :meth:`async_run`).

        Example
        -------
        >>> # running = await Runner("train.py", store="runs.db").async_resume(origin_run_id=3)
        """
        from ..tags import validate_user_tags
        from .executing import launch, started

        validate_user_tags(list(tags))
        command = ["resume", *([step] if step else [])]
        if origin_run_id is not None:
            command += ["--origin-run-id", str(origin_run_id)]
        command += self._launch_args(tags, max_workers, max_num_splits, namespace, decospecs)
        return await started(launch(self, command, self.env))

    def _launch_args(self, tags: Sequence[str], max_workers: int | None, max_num_splits: int, namespace: Any,
                     decospecs: Sequence[str]) -> list[str]:
        args = [arg for tag in tags for arg in ("--tag", tag)]
        if max_workers is not None:
            args += ["--max-workers", str(max_workers)]
        args += ["--max-num-splits", str(max_num_splits)]
        namespace = self.namespace if namespace is ... else namespace
        if namespace is not ...:
            args += ["--namespace", namespace or ""]
        if self.executor:
            args += ["--executor", self.executor]
        if self.dask_address:
            args += ["--dask-address", self.dask_address]
        for name, path in self.launch.config_files.items():
            args += ["--config", name, str(path)]
        for name, value in self.launch.config_values.items():
            args += ["--config-value", name, value if isinstance(value, str) else json.dumps(value)]
        if self.launch.branch is not None:
            args += ["--branch", self.launch.branch]
        if self.launch.production:
            args.append("--production")
        return args + [arg for spec in (*self.decospecs, *decospecs) for arg in ("--with", spec)]

    def _run_from_file(self, path: str) -> Any:
        from ..client import Run

        with open(path) as fh:
            number = fh.read().strip()
        return Run(f"{self.flow_class.__name__}/{number}", store=self._store(), _namespace_check=False)

    def _finish(self, outcome: RunOutcome, raise_on_failure: bool) -> ExecutingRun:
        self.outcome = outcome
        run = self._client_run(outcome)
        if raise_on_failure and not outcome.successful:
            raise RunFailed(f"{outcome.pathspec} failed: " + "; ".join(outcome.failed_steps), run=run)
        return ExecutingRun(self, run, returncode=0 if outcome.successful else 1)

    def _client_run(self, outcome: RunOutcome) -> Any:
        try:
            from ..client import Run
        except ImportError:
            return outcome
        return Run(outcome.pathspec, store=self.store, _namespace_check=False)


class NBRunner(Runner):
    """Run a flow defined in a notebook cell, as Metaflow's ``NBRunner``.

    ``nbrun(**params)`` runs it (in this process, its workers forked) and returns the
    client ``Run``; ``nbresume()`` resumes. ``run()``/``resume()`` give the
    :class:`ExecutingRun`, and ``async_run()`` runs it in a child process from the
    cell's source written to a temporary file (define the flow and its imports in a
    cell of their own, as Metaflow asks).

    Example
    -------
    >>> # run = NBRunner(TrainFlow, store="runs.db").nbrun(alpha=0.1)
    >>> # run.data.model
    """

    def __init__(self, flow: type[FlowSpec], store: Any = None, **kwargs: Any) -> None:
        if not isinstance(flow, type):
            raise FlowDefinitionError(f"NBRunner takes a flow class (Runner takes a file), not {flow!r}")
        super().__init__(flow, store, **kwargs)

    def nbrun(self, **kwargs: Any) -> Any:
        """Run the flow and return the client ``Run`` (raises ``RunFailed`` unless ``raise_on_failure=False``)."""
        return self.run(**kwargs).run

    def nbresume(self, **kwargs: Any) -> Any:
        """Resume the flow's latest run (or ``origin_run_id=``) and return the new client ``Run``."""
        return self.resume(**kwargs).run
