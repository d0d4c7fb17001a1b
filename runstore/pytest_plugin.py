"""pytest fixtures for testing flows against a fresh in-memory store (``pytest11`` entry point).

Installed with runstore, so any project's tests can use them without imports:

``runstore_store``
    A new ``Store(":memory:")`` made the default store (``use_store``) for the test:
    client objects (``Flow``, ``Run``...) read from it. Closed afterwards.
``run_flow``
    ``run_flow(FlowClass or "flow.py", tags=(), **params)`` runs the flow against
    ``runstore_store`` with :class:`runstore.Runner` and returns the finished ``Run``.

Example
-------
A test module in any project::

    from runstore import FlowSpec, Flow, Parameter, step

    class AddFlow(FlowSpec):
        n = Parameter("n", default=1)

        @step
        def start(self):
            self.total = self.n + 1
            self.next(self.end)

        @step
        def end(self):
            pass

    def test_add(run_flow):
        run = run_flow(AddFlow, n=41)
        assert run.successful and run.data.total == 42
        assert Flow("AddFlow").latest_run == run
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import pytest

if TYPE_CHECKING:
    from .store import Store

__all__ = ["runstore_store", "run_flow"]


@pytest.fixture
def runstore_store() -> Iterator["Store"]:
    """A fresh in-memory store, the default store of every client object during the test.

    Example
    -------
    ::

        def test_empty(runstore_store):
            assert runstore_store.sql("SELECT count(*) FROM runs").rows == [(0,)]
    """
    from .namespace import use_store
    from .store import Store

    store = Store(":memory:")
    try:
        with use_store(store):
            yield store
    finally:
        store.close()


@pytest.fixture
def run_flow(runstore_store: "Store") -> Callable[..., Any]:
    """Run a flow class (or flow file) against ``runstore_store``; returns the finished ``Run``.

    Call it as ``run_flow(FlowClass, tags=("a",), **params)``. A failed run raises
    ``RunFailed`` as ``Runner.run`` does.

    Example
    -------
    ::

        def test_hello(run_flow):
            assert run_flow(HelloFlow).successful
    """
    from .runtime import Runner

    def run(flow: "type | str | os.PathLike[str]", /, *, tags: Iterable[str] = (), **params: Any) -> Any:
        return Runner(flow, store=runstore_store).run(tags=list(tags), **params).run

    return run
