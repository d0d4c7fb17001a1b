"""The client in a notebook (#20): one namespace per process, the namespace a run's steps
read, and runs started from interactive code."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from storefill import fill_run

from runstore import Flow, FlowSpec, Run, Runner, Store, namespace, step
from runstore.errors import NamespaceMismatch
from runstore.namespace import get_namespace, namespace_scope, use_store


class ReadsModel(FlowSpec):
    """Like the seed's predict.py: reads the latest successful TrainFlow run's model."""

    @step
    def start(self):
        self.seen_namespace = get_namespace()
        self.model = Flow("TrainFlow").latest_successful_run.data.model
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture(params=["inline", "workers"])
def two_users(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """TrainFlow runs by anne (older) and will (newer); this process is anne."""
    monkeypatch.setenv("RUNSTORE_USER", "anne")
    store = Store(":memory:") if request.param == "inline" else Store(tmp_path / "runstore.db")
    fill_run(store, "TrainFlow", user="anne", artifacts={"end": {"model": "anne's"}})
    fill_run(store, "TrainFlow", user="will", artifacts={"end": {"model": "will's"}})
    yield store
    store.close()


@pytest.mark.parametrize("interactive", ["user:will", None, "production:TrainFlow-0-abcd"])
def test_steps_read_the_runners_identity_never_the_callers_namespace(two_users, interactive):
    namespace(interactive)
    run = Runner(ReadsModel, store=two_users).run()
    assert run.data.model == "anne's"
    assert run["start"].task["seen_namespace"].data == "user:anne"
    assert get_namespace() == (interactive or None)  # the caller's choice is untouched


def test_runner_namespace_argument_is_what_steps_read(two_users):
    namespace("user:anne")
    assert Runner(ReadsModel, store=two_users, namespace="user:will").run().data.model == "will's"
    # per call, overriding the constructor
    assert Runner(ReadsModel, store=two_users, namespace="user:will").run(namespace="user:anne").data.model == "anne's"
    assert get_namespace() == "user:anne"


class SetsNamespace(FlowSpec):
    @step
    def start(self):
        namespace(None)  # inside a step: changes the step's scope, not the caller's process
        self.inside = get_namespace()
        self.next(self.end)

    @step
    def end(self):
        self.after = get_namespace()


def test_namespace_call_inside_an_inline_step_stays_in_the_step(memory_store):
    namespace("user:will")
    run = Runner(SetsNamespace, store=memory_store).run()
    assert get_namespace() == "user:will"
    namespace(None)
    assert run.data.inside is None and run.data.after == "user:tester"


# ------------------------------------------------------------ process-wide namespace


@pytest.fixture
def will_and_anne(client_store: Store) -> Store:
    fill_run(client_store, "TrainFlow", user="will", artifacts={"end": {"x": 1}})
    fill_run(client_store, "TrainFlow", user="will", artifacts={"end": {"x": 2}})
    return client_store


def test_namespace_holds_in_every_thread(will_and_anne):
    namespace(None)

    with ThreadPoolExecutor(4) as pool:  # no copied context: plain worker threads
        # use_store is a with-block (context-local): threads name the store
        xs = list(pool.map(lambda i: Run(f"TrainFlow/{i}", store=will_and_anne).data.x, [1, 2]))
        found = list(pool.map(lambda _: get_namespace(), range(4)))
    assert xs == [1, 2] and found == [None] * 4
    namespace("user:anne")
    with ThreadPoolExecutor(2) as pool, pytest.raises(NamespaceMismatch):
        list(pool.map(lambda i: Run(f"TrainFlow/{i}", store=will_and_anne), [1]))


def test_namespace_set_in_one_task_holds_after_await_and_in_other_tasks(will_and_anne):
    async def cell_one() -> None:
        namespace(None)
        await asyncio.sleep(0)

    async def cell_two() -> Any:
        await asyncio.sleep(0)
        return get_namespace(), Run("TrainFlow/2").data.x

    async def main() -> Any:
        await asyncio.create_task(cell_one())  # a task runs in a copy of the context
        return await asyncio.create_task(cell_two())

    assert asyncio.run(main()) == (None, 2)
    assert get_namespace() is None


def test_namespace_scope_overrides_only_its_context(will_and_anne):
    namespace(None)
    seen: dict[str, Any] = {}
    with namespace_scope("user:anne") as ns:
        assert ns == "user:anne" and get_namespace() == "user:anne"
        with pytest.raises(NamespaceMismatch):
            Run("TrainFlow/1")
        plain = threading.Thread(target=lambda: seen.update(plain=get_namespace()))
        copied = threading.Thread(target=contextvars.copy_context().run,
                                  args=(lambda: seen.update(copied=get_namespace()),))
        for t in (plain, copied):
            t.start()
            t.join()
        namespace("user:will")  # changes the scope only
        assert get_namespace() == "user:will"
    assert seen == {"plain": None, "copied": "user:anne"}
    assert get_namespace() is None and Run("TrainFlow/1").data.x == 1


def test_namespace_scope_refuses_what_namespace_refuses():
    from runstore.errors import TaggingError

    with pytest.raises(TaggingError):
        with namespace_scope(123):  # type: ignore[arg-type]
            pass
    assert get_namespace() == "user:tester"


# ------------------------------------------------------------ merge_artifacts(include=)


class MergeIncludes(FlowSpec):
    from runstore import Parameter

    alpha = Parameter("alpha", default=0.5)
    ask = Parameter("ask", default="alpha,x,done")

    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self.next(self.join)

    @step
    def b(self):
        self.x = 1
        self.next(self.join)

    @step
    def join(self, inputs):
        self.done = True
        self.merge_artifacts(inputs, include=self.ask.split(","))
        self.next(self.end)

    @step
    def end(self):
        pass


def test_merge_include_skips_names_already_on_self(memory_store):
    run = Runner(MergeIncludes, store=memory_store).run(alpha=2.0)
    assert (run.data.x, run.data.alpha, run.data.done) == (1, 2.0, True)
    from runstore.errors import RunFailed

    with pytest.raises(RunFailed):
        Runner(MergeIncludes, store=memory_store).run(ask="alpha,nothere")
    task = Run(f"MergeIncludes/{memory_store.run_ref('MergeIncludes')[0]}", store=memory_store,
               _namespace_check=False)["join"].task
    assert "include= names artifacts no input has: nothere" in task.exception.message
    assert "alpha" not in task.exception.message.split("has:")[1]


# ------------------------------------------------------------ never-started tasks


class FailsFirstFold(FlowSpec):
    @step
    def start(self):
        self.folds = [0, 1, 2, 3]
        self.next(self.train_fold, foreach="folds")

    @step
    def train_fold(self):
        if self.input == 0:
            raise ValueError("fold 0 diverged")
        self.acc = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_never_started_task_is_marked_and_never_picked_over_a_failed_one(memory_store):
    run = Runner(FailsFirstFold, store=memory_store).run(raise_on_failure=False, max_workers=1)
    step = run["train_fold"]
    statuses = {t.index: t.status for t in step}
    assert statuses[0] == "failed"
    never = [t for t in step if t.status == "never-started"]
    assert never, statuses  # the run stopped before starting every split
    assert all(t.never_started and t.exception is None and not t.successful for t in never)
    assert step.task.status == "failed"
    assert step.task.exception.type.endswith("ValueError")
    started = [t for t in step if not t.successful and not t.never_started]
    assert started[0].exception.message == "fold 0 diverged"


# ------------------------------------------------------------ rich display


def test_rich_display_of_runs_steps_tasks_flow_escapes_a_foreign_store(tmp_path):
    import sqlite3

    from runstore.client import RunList

    db = tmp_path / "colleague.db"
    store = Store(db)
    fill_run(store, "TrainFlow", user="anne", params={"label": "<script>alert('p')</script>"},
             tags=["sweep"], artifacts={"end": {"model": 1}})
    fill_run(store, "TrainFlow", user="anne", fail_at="end")
    store.close()
    with sqlite3.connect(db) as conn:  # the colleague's store says what it likes
        conn.execute("UPDATE runs SET user_name = '<img src=x onerror=alert(1)>' WHERE run_number = 1")
    store = Store(db)
    namespace(None)
    flow = Flow("TrainFlow", store=store)
    run = flow["1"]
    shown = {
        "run": run._repr_html_(), "flow": flow._repr_html_(), "runs": flow.runs()._repr_html_(),
        "list": RunList(flow.runs())._repr_html_(), "step": run["end"]._repr_html_(),
        "task": flow["2"]["end"].task._repr_html_(),
    }
    for name, page in shown.items():
        assert "<script>" not in page and "<img" not in page, name
        assert f"store {store.where}" in page, name
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown["run"]
    assert "label=&quot;&lt;script&gt;" in shown["runs"]
    for page in (shown["flow"], shown["runs"], shown["list"]):
        assert page.index("TrainFlow/2") < page.index("TrainFlow/1")  # newest first
        assert "failed" in page and "succeeded" in page and "sweep" in page
        assert "2 in store" in page
    assert "failed" in shown["task"] and "exception" in shown["task"]
    store.close()


# ------------------------------------------------------------ flows defined in a cell


CELL = '''
from runstore import FlowSpec, step

class CellFlow(FlowSpec):
    @step
    def start(self):
        self.x = 41
        self.next(self.end)

    @step
    def end(self):
        self.x += 1
'''


def test_flow_defined_in_a_cell_records_the_cell_as_its_code(memory_store):
    """What IPython does for a cell: compile under a pseudo file name known to linecache."""
    import linecache

    name = "/tmp/ipykernel_0/cell-7.py"  # does not exist on disk, as ipykernel's
    linecache.cache[name] = (len(CELL), None, CELL.splitlines(True), name)
    try:
        scope: dict[str, Any] = {}
        exec(compile(CELL, name, "exec"), scope)
        run = Runner(scope["CellFlow"], store=memory_store).run()
    finally:
        linecache.cache.pop(name, None)
    assert run.data.x == 42
    assert run.code is not None and run.code.script_name == "notebook_cell.py"
    assert "class CellFlow(FlowSpec)" in run.code.flowspec
    assert run["start"].task.metadata_dict["script-name"] == "notebook_cell.py"


def test_flow_whose_source_cannot_be_read_says_how_to_define_it(memory_store):
    from runstore.errors import FlowDefinitionError

    scope: dict[str, Any] = {}
    exec(compile(CELL.replace("CellFlow", "ExecFlow"), "<timed exec>", "exec"), scope)  # as %%time compiles
    with pytest.raises(FlowDefinitionError) as info:
        Runner(scope["ExecFlow"], store=memory_store)
    message = str(info.value)
    assert "cannot read the source" in message and "%%time" in message and "exec()" in message
    assert "docs/notebooks.md" in message


def test_rich_display_links_to_a_running_ui_of_the_same_store_only(tmp_path: Path) -> None:
    """Issue #20: a run's display links to `runstore ui` when one serves this store (and is alive)."""
    import json
    import os
    import subprocess
    import sys

    from runstore.util import config_dir, running_ui_url

    db = tmp_path / "runstore.db"
    store = Store(db)
    fill_run(store, user="tester")
    run = next(iter(Flow("PredictionFlow", store=store).runs()))
    assert "<a href" not in run._repr_html_()  # no UI running
    folder = config_dir() / "ui"
    folder.mkdir(exist_ok=True)
    (folder / "1.json").write_text(json.dumps({"pid": os.getpid(), "url": "http://127.0.0.1:9/", "db": store.where}))
    assert f'<a href="http://127.0.0.1:9/run/{run.pathspec}">{run.pathspec}</a>' in run._repr_html_()
    task = run["start"].task
    assert f'<a href="http://127.0.0.1:9/run/{task.pathspec}">' in task._repr_html_()
    # another store's UI, a dead server, a non-http URL: no link
    (folder / "1.json").write_text(json.dumps({"pid": os.getpid(), "url": "http://127.0.0.1:9/", "db": "/other.db"}))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / "2.json").write_text(json.dumps({"pid": int(dead.stdout), "url": "http://127.0.0.1:8/", "db": store.where}))
    (folder / "3.json").write_text(json.dumps({"pid": os.getpid(), "url": "javascript:alert(1)//", "db": store.where}))
    (folder / "4.json").write_text("not json")
    assert running_ui_url(store.where) is None and "<a href" not in run._repr_html_()
