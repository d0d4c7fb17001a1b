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
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import FlowDefinitionError, ParameterError, RunFailed
from ..flowspec import FlowSpec
from .parameters import resolve_parameters
from .scheduler import RunOutcome, Scheduler

__all__ = ["Runner", "execute", "load_flow", "resolve_parameters"]


def execute(flow_class: type[FlowSpec], store: Any, params: dict[str, Any], *, tags: Sequence[str] = (),
            max_workers: int | None = None, max_num_splits: int = 100, namespace: str | None = None,
            namespace_given: bool = False, quiet: bool = False,
            on_run_created: Callable[[Any], None] | None = None, executor: str | None = None,
            dask_address: str | None = None, with_decorators: Sequence[str] = ()) -> RunOutcome:
    """Run ``flow_class`` with checked parameter values; returns the outcome.

    ``with_decorators``: ``--with`` specs (``"retry"``, ``"timeout:seconds=5"``) added to every
    step that does not have that decorator.

    ``executor``: ``"local"`` or ``"dask"`` (default ``RUNSTORE_EXECUTOR``, else local);
    ``dask_address``: a Dask scheduler (default ``RUNSTORE_DASK_ADDRESS``, else a
    ``LocalCluster`` for the run). See docs/executors.md.
    """
    from .environment import flow_file_of

    scheduler = Scheduler(
        flow_class, store, params, tags=list(tags), max_workers=max_workers, max_num_splits=max_num_splits,
        client_namespace=namespace or None, set_namespace=namespace_given, quiet=quiet,
        flow_file=flow_file_of(flow_class), on_run_created=on_run_created, executor=executor,
        dask_address=dask_address, with_decorators=with_decorators,
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

    Example
    -------
    >>> # run = Runner(TrainFlow, store=Store(":memory:")).run(alpha=0.1, tags=["exp"])
    >>> # run.data.model
    """

    def __init__(self, flow: type[FlowSpec] | str | os.PathLike[str], store: Any = None, *,
                 quiet: bool = True, flow_name: str | None = None, executor: str | None = None,
                 dask_address: str | None = None, namespace: Any = ...) -> None:
        from .executors import resolve_executor

        resolve_executor(executor, dask_address)  # an unknown name fails here, not at run()
        self.executor = executor
        self.dask_address = dask_address
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
        self.outcome: RunOutcome | None = None

    def _store(self) -> Any:
        if self.store is None:
            from ..namespace import get_store

            self.store = get_store()
        return self.store

    def run(self, *, tags: list[str] | tuple[str, ...] = (), max_workers: int | None = None,
            max_num_splits: int = 100, namespace: Any = ..., raise_on_failure: bool = True,
            clone: Any = None, **params: Any) -> Any:
        """Run the flow with ``params`` (by attribute or parameter name) and return the ``Run``.

        Raises
        ------
        ParameterError
            For an unknown or bad parameter (nothing is stored).
        RunFailed
            When a step failed (its ``run`` attribute is the failed ``Run``); pass
            ``raise_on_failure=False`` to get the failed ``Run`` returned instead.

        ``clone=N`` takes the parameter values of run N for those not given.
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
        if clone is None:
            values = resolve_parameters(self.flow_class, given)
        else:
            from .resume import clone_parameters

            values = clone_parameters(self.flow_class, self._store(), clone, given)
        outcome = execute(self.flow_class, self._store(), values, tags=list(tags), max_workers=max_workers,
                          max_num_splits=max_num_splits, namespace=None if namespace is ... else namespace,
                          namespace_given=namespace is not ..., quiet=self.quiet, executor=self.executor,
                          dask_address=self.dask_address)
        self.outcome = outcome
        run = self._client_run(outcome)
        if raise_on_failure and not outcome.successful:
            raise RunFailed(f"{outcome.pathspec} failed: " + "; ".join(outcome.failed_steps), run=run)
        return run

    def resume(self, step: str | None = None, *, origin_run_id: Any = None,
               tags: list[str] | tuple[str, ...] = (), max_workers: int | None = None,
               max_num_splits: int = 100, namespace: Any = ..., raise_on_failure: bool = True) -> Any:
        """Resume a run (default: your latest ``run`` of this flow) and return the new ``Run``.

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
                         quiet=self.quiet, executor=self.executor, dask_address=self.dask_address)
        self.outcome = outcome
        run = self._client_run(outcome)
        if raise_on_failure and not outcome.successful:
            raise RunFailed(f"{outcome.pathspec} failed: " + "; ".join(outcome.failed_steps), run=run)
        return run

    def _client_run(self, outcome: RunOutcome) -> Any:
        try:
            from ..client import Run
        except ImportError:
            return outcome
        return Run(outcome.pathspec, store=self.store, _namespace_check=False)
