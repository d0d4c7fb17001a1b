"""What ``Runner.run()`` and ``Runner.async_run()`` hand back: an :class:`ExecutingRun`.

As Metaflow's ``ExecutingRun``: ``.run`` is the client ``Run``, ``.status`` is
``"running"``, ``"successful"`` or ``"failed"``, ``.returncode``, ``.stdout``/``.stderr``,
``wait(timeout=)``, and it is a context manager. It also stands for its ``Run``
(``running.data``, ``running["start"]``, ``running.successful`` ...), so code written
for runstore's earlier ``Runner(...).run()``, which returned the ``Run``, keeps working.

A run started by ``async_run()`` is the command ``python flow.py --db STORE run ...`` in
a child process (the flow file, or for a class a script written to a temporary
directory); its ``wait()`` is a coroutine (``await running.wait()``) and
``stream_log()`` an async iterator over its output lines.

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
>>> with Runner(Tiny, store=Store(":memory:")).run() as running:  # doctest: +SKIP
...     print(running.status, running.run.data.x)
successful 1
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence

if TYPE_CHECKING:  # asyncio, subprocess and tempfile are imported where used: not on a run's path
    import subprocess

from ..errors import ParameterError, RunFailed, RunstoreError

__all__ = ["ExecutingRun", "launch", "flow_script", "option_args"]

#: Seconds a child gets to stop after SIGINT (``wait(timeout=)`` ran out) before SIGKILL.
STOP_GRACE = 10.0


class ExecutingRun:
    """A run started by :class:`~runstore.Runner`: the client ``Run`` plus how its execution went.

    Attributes
    ----------
    run : Run or None
        The client ``Run`` (None only while an ``async_run`` child has not created it).
    returncode : int or None
        0 when the run succeeded, 1 when it failed, None while it runs (as the exit
        status of ``python flow.py run``).

    Example
    -------
    >>> # with Runner("train.py").run(alpha=0.1) as running:
    >>> #     print(running.status, running.run.data.model)
    """

    def __init__(self, runner: Any, run: Any = None, *, returncode: int | None = None,
                 process: subprocess.Popen[bytes] | None = None, out_dir: str | None = None,
                 is_async: bool = False) -> None:
        self.runner = runner
        self.run = run
        self._returncode = returncode
        self._process = process
        self._out_dir = out_dir
        self._is_async = is_async

    # ------------------------------------------------------------ Metaflow's ExecutingRun

    @property
    def returncode(self) -> int | None:
        """The exit status: 0 succeeded, 1 failed (2 a usage error), None while running."""
        if self._process is not None:
            return self._process.poll()
        return self._returncode

    @property
    def status(self) -> str:
        """``"running"``, ``"successful"`` or ``"failed"`` (Metaflow's words, not ``Run.status``'s)."""
        code = self.returncode
        return "running" if code is None else "successful" if code == 0 else "failed"

    @property
    def stdout(self) -> str:
        """What the run printed on stdout: for a child process its output so far, for a run
        in this process the tasks' stored stdout, each line prefixed ``[RUN/STEP/TASK]``."""
        return self._output("stdout")

    @property
    def stderr(self) -> str:
        """As :attr:`stdout`, for stderr."""
        return self._output("stderr")

    def wait(self, timeout: float | None = None, stream: str | None = None) -> Any:
        """Wait for the run to end; past ``timeout`` seconds it is stopped (as Metaflow).

        A run from ``run()``/``resume()`` has ended already: returns ``self``. A run from
        ``async_run()``/``async_resume()`` returns a coroutine: ``await running.wait()``.
        ``stream="stdout"`` (or ``"stderr"``) echoes that output while waiting (async only).
        """
        if self._is_async:
            return self._async_wait(timeout, stream)
        return self

    async def _async_wait(self, timeout: float | None, stream: str | None) -> "ExecutingRun":
        import asyncio
        assert self._process is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        position = 0
        while self._process.poll() is None:
            if stream:
                position = self._echo(stream, position)
            if deadline is not None and time.monotonic() > deadline:
                self._stop()
                break
            await asyncio.sleep(0.05)
        if stream:
            self._echo(stream, position)
        self._connect_run()
        self.cleanup()  # the output is kept in memory; the temporary files go
        return self

    async def stream_log(self, stream: str = "stdout", position: int | None = None) -> AsyncIterator[tuple[int, str]]:
        """Yield ``(position, line)`` of ``stream`` as the child writes it, until it ends (async runs).

        Example
        -------
        >>> # async for position, line in running.stream_log("stdout"):
        >>> #     print(line)
        """
        import asyncio
        if self._process is None or self._out_dir is None:  # ended and cleaned up: what it printed
            for number, line in enumerate(self._output(stream).splitlines()):
                if position is None or number >= position:
                    yield number, line
            return
        path = self._path(stream)
        offset, number = 0, 0
        while True:
            done = self._process.poll() is not None
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
            complete = data if done else data[:data.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                if position is None or number >= position:
                    yield number, line
                number += 1
            if done:
                return
            await asyncio.sleep(0.05)

    def __enter__(self) -> "ExecutingRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    async def __aenter__(self) -> "ExecutingRun":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop a child that still runs and remove its temporary files (the context manager's exit)."""
        if self._process is not None and self._process.poll() is None:
            self._stop()
        if self._out_dir is not None:
            import shutil

            if self._process is not None:
                self._cached = {name: self._output(name) for name in ("stdout", "stderr")}
            shutil.rmtree(self._out_dir, ignore_errors=True)
            self._out_dir = None

    # ------------------------------------------------------------ standing in for the Run

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("run", "runner"):
            raise AttributeError(name)
        run = self.__dict__.get("run")
        if run is None:
            raise AttributeError(f"{name!r}: the run has not been created yet")
        return getattr(run, name)

    def __getitem__(self, key: str) -> Any:
        return self.run[key]

    def __iter__(self) -> Any:
        return iter(self.run)

    def __contains__(self, key: object) -> bool:
        return key in self.run

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExecutingRun):
            other = other.run
        return self.run is not None and self.run == other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"ExecutingRun({self.run!r}, status={self.status!r})"

    def _repr_html_(self) -> str | None:
        """A notebook shows the run as it shows a ``Run``."""
        html = getattr(self.run, "_repr_html_", None)
        return html() if html is not None else None

    def _ipython_key_completions_(self) -> list[str]:
        return [step.id for step in self.run] if self.run is not None else []

    # ------------------------------------------------------------ internals

    def _path(self, stream: str) -> str:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
        assert self._out_dir is not None
        return os.path.join(self._out_dir, stream)

    def _output(self, stream: str) -> str:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
        cached = self.__dict__.get("_cached")
        if cached is not None:
            return cached[stream]
        if self._process is not None and self._out_dir is not None:
            with open(self._path(stream), "rb") as fh:
                return fh.read().decode(errors="replace")
        if self.run is None:
            return ""
        lines = []
        for step in reversed(list(self.run)):
            for task in reversed(list(step)):
                text = getattr(task, stream) or ""
                lines += [f"[{task.pathspec.split('/', 1)[1]}] {line}\n" for line in text.splitlines()]
        return "".join(lines)

    def _echo(self, stream: str, position: int) -> int:
        with open(self._path(stream), "rb") as fh:
            fh.seek(position)
            data = fh.read()
        if data:
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()
        return position + len(data)

    def _stop(self) -> None:
        import subprocess
        assert self._process is not None
        try:
            self._process.send_signal(signal.SIGINT)  # the run ends interrupted (exit 130), its workers stopped
            self._process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        except ProcessLookupError:
            pass

    def _connect_run(self) -> None:
        if self.run is None and self._out_dir is not None:
            self.run = self.runner._run_from_file(os.path.join(self._out_dir, "run-id"))


def option_args(flow_class: Any, params: dict[str, Any]) -> list[str]:
    """``--name value`` for each parameter value (by attribute or parameter name), as the command line takes it.

    Raises
    ------
    ParameterError
        For a name that is not a parameter of the flow.

    Example
    -------
    >>> from runstore import FlowSpec, Parameter, JSONType
    >>> class P(FlowSpec):
    ...     learning_rate = Parameter("learning-rate", default=0.1)
    ...     cfg = Parameter("cfg", type=JSONType, default="{}")
    >>> option_args(P, {"learning_rate": 0.5, "cfg": {"k": [1]}})
    ['--learning-rate', '0.5', '--cfg', '{"k": [1]}']
    """
    known = {p.attr_name: p for p in flow_class._parameters()}
    by_name = {p.name.replace("-", "_"): p for p in known.values()}
    args: list[str] = []
    for key, value in params.items():
        param = known.get(key) or by_name.get(key)
        if param is None:
            raise ParameterError(f"{flow_class.__name__} has no parameter {key!r}; "
                                 f"parameters are: {', '.join(known) or 'none'}")
        if isinstance(value, (list, tuple)) and param.separator is not None:
            text = param.separator.join(str(v) for v in value)
        elif isinstance(value, (dict, list, tuple)) or (value is None and param.type_name == "JSONType"):
            text = json.dumps(value)
        else:
            text = str(value)
        args += [param.option, text]
    return args


def flow_script(flow_class: Any, flow_file: str | None, directory: str) -> str:
    """The file ``python FILE run`` runs the flow from: its own file, or one written in ``directory``.

    A flow class from a flow file (``Runner("flow.py")``, ``load_flow``) runs from that
    file. A class importable from a module gets a two-line launcher. A class defined in
    a notebook cell (or inside a function) is written out from its source, as Metaflow's
    ``NBRunner`` does: the whole cell when IPython kept it (the cell should hold the flow
    and its imports, not the ``NBRunner`` call), else the class's own source after
    ``from runstore import *``.
    """
    import inspect
    import textwrap
    if flow_file is not None:
        return flow_file
    name = flow_class.__name__
    module = sys.modules.get(flow_class.__module__)
    module_file = getattr(module, "__file__", None)
    path = os.path.join(directory, f"{name.lower()}_flow.py")
    if flow_class.__module__.startswith("_runstore_flow_") and module_file:
        return str(module_file)  # loaded by load_flow from a flow file
    if module_file and flow_class.__module__ != "__main__" and "<locals>" not in flow_class.__qualname__:
        root = Path(module_file).resolve().parent  # the directory the module's top package is in
        for _ in range(flow_class.__module__.count(".") + (Path(module_file).name == "__init__.py")):
            root = root.parent
        source = (f"import sys\nsys.path[:0] = {[str(root)]!r}\n"
                  f"from {flow_class.__module__} import {name}\n\nif __name__ == '__main__':\n    {name}()\n")
    else:
        from .environment import cell_source, flow_file_of

        # A notebook cell's "file" (ipykernel: /tmp/ipykernel_N/M.py, IPython: <ipython-input-...>)
        # is not on disk; its text is in linecache, as the run's code snapshot takes it.
        cell = cell_source(flow_class) if flow_file_of(flow_class) is None else None
        if cell is not None:
            body = cell.decode()
        else:
            try:
                body = "from runstore import *\n\n" + textwrap.dedent(inspect.getsource(flow_class))
            except (OSError, TypeError) as exc:
                raise RunstoreError(f"cannot write {name} to a file to run it ({exc}); "
                                    "define it in a .py file or a notebook cell") from None
        source = f"{body}\n\nif __name__ == '__main__':\n    {name}()\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(source)
    return path


def launch(runner: Any, command: Sequence[str], env: dict[str, str] | None = None) -> ExecutingRun:
    """Start ``python SCRIPT --db STORE COMMAND...`` and return once it created its run.

    Raises
    ------
    ParameterError
        The child refused its options (exit 2), with its message.
    RunFailed
        The child ended before it created a run, with its last error line.
    """
    import subprocess
    import tempfile
    out_dir = tempfile.mkdtemp(prefix="runstore-runner-")
    run_id_file = os.path.join(out_dir, "run-id")
    script = flow_script(runner.flow_class, runner.flow_file, out_dir)
    store = runner._store()
    if getattr(store, "path", None) is None:
        raise RunstoreError("async_run needs a store file (the run happens in a child process): "
                            "pass store='runs.db' or a Store on a file, not an in-memory store")
    cmd = [sys.executable, script, "--db", str(store.path), *command, "--run-id-file", run_id_file]
    with open(os.path.join(out_dir, "stdout"), "wb") as out, open(os.path.join(out_dir, "stderr"), "wb") as err:
        process = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **(env or {})}, cwd=os.getcwd(),
                                   # the run must stop on our SIGINT even if ours is ignored (`pytest &`)
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    executing = ExecutingRun(runner, process=process, out_dir=out_dir, is_async=True)
    return executing


async def started(executing: ExecutingRun) -> ExecutingRun:
    """Wait until the child wrote its run id (or ended first: its error is raised)."""
    import asyncio
    process = executing._process
    assert process is not None and executing._out_dir is not None
    run_id_file = os.path.join(executing._out_dir, "run-id")
    while not _has_content(run_id_file):
        if process.poll() is not None:
            if _has_content(run_id_file):
                break
            lines = [line for line in executing.stderr.splitlines() if line.strip()]
            message = lines[-1] if lines else f"the run command exited with {process.returncode}"
            message = message[len("Error: "):] if message.startswith("Error: ") else message
            executing.cleanup()
            raise (ParameterError if process.returncode == 2 else RunFailed)(message)
        await asyncio.sleep(0.02)
    executing._connect_run()
    return executing


def _has_content(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False
