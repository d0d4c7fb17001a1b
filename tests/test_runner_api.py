"""The Python API as in Metaflow (issue #12, SPEC §14): ``Runner(...).run()`` as an ``ExecutingRun``
context manager, ``resume()``, ``async_run()``/``async_resume()`` in real child processes with an
awaitable ``wait()`` and ``stream_log``, ``decospecs`` (``--with``) and ``NBRunner`` for a flow class
defined in a cell (here: inside a test function)."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest

from runstore import NBRunner, Run, Runner, Store
from runstore.errors import ParameterError, RunFailed, RunstoreError
from runstore.runtime import ExecutingRun

FLOW = """
    import os
    import time
    from runstore import FlowSpec, Parameter, current, step

    class ApiFlow(FlowSpec):
        alpha = Parameter("alpha", default=1)
        fail = Parameter("fail", default=False, type=bool)

        @step
        def start(self):
            print(f"start alpha={self.alpha}")
            block = os.environ.get("API_BLOCK_FILE")
            while block and os.path.exists(block):
                time.sleep(0.05)
            self.nap = float(os.environ.get("API_NAP", "0"))
            time.sleep(self.nap)
            self.next(self.middle)

        @step
        def middle(self):
            flag = os.environ.get("API_FLAKY_FILE")
            if flag and not os.path.exists(flag):
                open(flag, "w").close()
                raise RuntimeError("flaky the first time")
            if self.fail:
                raise ValueError("asked to fail")
            self.double = self.alpha * 2
            self.next(self.end)

        @step
        def end(self):
            print(f"end double={self.double} origin={current.origin_run_id}")

    if __name__ == "__main__":
        ApiFlow()
"""


@pytest.fixture()
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "api_flow.py"
    path.write_text(textwrap.dedent(FLOW))
    return path


def run_rows(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_number, status FROM runs ORDER BY run_number").fetchall()


# ---------------------------------------------------------------- run() / resume(): ExecutingRun


def test_run_is_an_executing_run_context_manager(flow_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with Runner(flow_file, store=db).run(alpha=21) as running:
        assert isinstance(running, ExecutingRun)
        assert (running.status, running.returncode) == ("successful", 0)
        assert isinstance(running.run, Run) and running.run.pathspec == "ApiFlow/1"
        assert running.run.data.double == 42
        assert running.data.double == 42 and running["middle"].task.data.double == 42  # stands for the Run
        assert running.wait(timeout=1) is running  # already ended
        assert "start alpha=21" in running.stdout and "end double=42 origin=None" in running.stdout
        assert running.stdout.splitlines()[0].startswith("[1/start/")
        assert running._repr_html_() == running.run._repr_html_()  # a notebook shows the Run
        assert running._ipython_key_completions_() == [s.id for s in running.run]
    assert run_rows(db) == [(1, "succeeded")]


def test_raise_on_failure(flow_file: Path, tmp_path: Path) -> None:
    runner = Runner(flow_file, store=tmp_path / "runs.db")
    with pytest.raises(RunFailed) as info:
        runner.run(fail=True)  # the default: a failed run raises, with the run attached
    assert info.value.run.pathspec == "ApiFlow/1" and not info.value.run.successful
    running = runner.run(fail=True, raise_on_failure=False)
    assert (running.status, running.returncode, running.successful) == ("failed", 1, False)
    assert "asked to fail" in running["middle"].task.stderr


def test_resume_returns_an_executing_run(flow_file: Path, tmp_path: Path) -> None:
    runner = Runner(flow_file, store=tmp_path / "runs.db")
    runner.run(alpha=5, fail=True, raise_on_failure=False)
    with pytest.raises(RunFailed):
        runner.resume()  # the parameters are the origin's: it fails again
    # fixing the flow is what resume is for: here, a flow file that no longer fails
    flow_file.write_text(flow_file.read_text().replace("if self.fail:", "if False:"))
    with Runner(flow_file, store=tmp_path / "runs.db").resume(origin_run_id=1) as running:
        assert running.status == "successful" and running.run.origin_pathspec == "ApiFlow/1"
        assert running.data.double == 10 and "origin=1" in running.stdout


def test_decospecs_add_decorators_as_with(flow_file: Path, tmp_path: Path) -> None:
    flaky = tmp_path / "flaky-marker"
    env_key = "API_FLAKY_FILE"
    import os

    os.environ[env_key] = str(flaky)
    try:
        runner = Runner(flow_file, store=tmp_path / "runs.db", decospecs=["retry:times=1"])
        running = runner.run()
        assert running.status == "successful" and running["middle"].task.current_attempt == 1
        flaky.unlink()
        caught = Runner(flow_file, store=tmp_path / "runs.db").run(decospecs=["catch"])
        assert caught.status == "successful" and caught["middle"].task.status == "caught"
    finally:
        del os.environ[env_key]
    with pytest.raises(RunstoreError, match="unknown"):
        Runner(flow_file, decospecs=["teleport"])


# ---------------------------------------------------------------- async_run(): a child process


def test_async_run_returns_when_started_and_wait_is_awaitable(flow_file: Path, tmp_path: Path) -> None:
    db, block = tmp_path / "runs.db", tmp_path / "block"
    block.touch()

    async def main() -> tuple[str, str, ExecutingRun]:
        runner = Runner(flow_file, store=db, env={"API_BLOCK_FILE": str(block)})
        running = await runner.async_run(alpha=4, tags=["async"])
        first = running.status  # the run exists, its start step waits for the block file
        assert running.run.pathspec == "ApiFlow/1" and running.run.user_tags == frozenset({"async"})
        lines = []
        block.unlink()
        async for _, line in running.stream_log("stdout"):
            lines.append(line)
        waited = await running.wait()
        return first, "\n".join(lines), waited

    first, streamed, running = asyncio.run(asyncio.wait_for(main(), 120))
    assert first == "running"
    assert running.status == "successful" and running.returncode == 0
    assert running.run.data.double == 8
    assert "start alpha=4" in streamed and "end double=8" in streamed
    assert "end double=8" in running.stdout
    running.cleanup()
    assert "end double=8" in running.stdout  # kept after the temporary files are gone
    assert run_rows(db) == [(1, "succeeded")]


def test_async_wait_timeout_stops_the_run(flow_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"

    async def main() -> ExecutingRun:
        running = await Runner(flow_file, store=db, env={"API_NAP": "120"}).async_run()
        return await running.wait(timeout=1)

    start = time.monotonic()
    running = asyncio.run(asyncio.wait_for(main(), 120))
    assert time.monotonic() - start < 60  # the step asked for 120 s
    assert running.status == "failed" and running.returncode not in (0, None)
    assert running.returncode == 130  # stopped as by Ctrl-C
    assert run_rows(db) == [(1, "interrupted")]  # recorded as interrupted, not left running


def test_async_run_refuses_a_bad_parameter_and_an_in_memory_store(flow_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with pytest.raises(ParameterError, match="Invalid value for '--alpha'"):
        asyncio.run(Runner(flow_file, store=db).async_run(alpha="many"))
    with pytest.raises(ParameterError, match="no parameter 'beta'"):
        asyncio.run(Runner(flow_file, store=db).async_run(beta=1))
    assert not db.exists() or run_rows(db) == []
    with pytest.raises(RunstoreError, match="store file"):
        asyncio.run(Runner(flow_file, store=Store(":memory:")).async_run())


def test_async_resume(flow_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    Runner(flow_file, store=db).run(alpha=3, fail=True, raise_on_failure=False)
    flow_file.write_text(flow_file.read_text().replace("if self.fail:", "if False:"))

    async def main() -> ExecutingRun:
        running = await Runner(flow_file, store=db).async_resume(origin_run_id=1, tags=["again"])
        return await running.wait(timeout=100)

    running = asyncio.run(asyncio.wait_for(main(), 120))
    assert running.status == "successful" and running.run.origin_pathspec == "ApiFlow/1"
    assert running.data.double == 6 and running.run.user_tags == frozenset({"again"})


# ---------------------------------------------------------------- NBRunner


def test_nbrunner_runs_a_class_defined_in_a_cell(tmp_path: Path) -> None:
    from runstore import FlowSpec, Parameter, step

    class CellFlow(FlowSpec):
        """Defined inside this test, as in a notebook cell."""

        scale = Parameter("scale", default=2)

        @step
        def start(self):
            self.value = self.scale * 10
            self.next(self.end)

        @step
        def end(self):
            print("value", self.value)

    run = NBRunner(CellFlow, store=Store(":memory:")).nbrun(scale=3)
    assert run.data.value == 30 and isinstance(run, Run)
    db = tmp_path / "runs.db"

    async def main() -> ExecutingRun:  # in a child process: the class source written to a file
        running = await NBRunner(CellFlow, store=db).async_run(scale=4)
        return await running.wait(timeout=100)

    running = asyncio.run(asyncio.wait_for(main(), 120))
    assert running.status == "successful", running.stderr
    assert running.data.value == 40 and "value 40" in running.stdout
    with pytest.raises(RunstoreError, match="flow class"):
        NBRunner(str(tmp_path / "x.py"))


def test_async_run_of_a_class_imported_from_a_package(tmp_path: Path, monkeypatch) -> None:
    """A class (not a file) from an importable module: the child imports it from its package."""
    package = tmp_path / "src" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(textwrap.dedent('''
        from runstore import FlowSpec, Parameter, step

        class PackagedFlow(FlowSpec):
            n = Parameter("n", default=1)

            @step
            def start(self):
                self.square = self.n * self.n
                self.next(self.end)

            @step
            def end(self):
                pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    from mypkg.flows import PackagedFlow

    async def main() -> ExecutingRun:
        running = await Runner(PackagedFlow, store=tmp_path / "runs.db").async_run(n=6)
        return await running.wait(timeout=100)

    running = asyncio.run(asyncio.wait_for(main(), 120))
    assert running.status == "successful", running.stderr
    assert running.data.square == 36
    assert running.run.code is not None and "PackagedFlow" in running.run.code.flowspec  # flows.py itself
