"""End-to-end runtime benchmark: ``python flow.py run`` as a user runs it, runstore vs Metaflow.

Command (from the repository root, in the venv where runstore is installed)::

    python benchmarks/bench_runtime.py [--repeat 5] [--metaflow-python PATH]

``benchmarks/run_all.py`` imports the flow sources and :func:`run_measured` from here.

Two flows, each written once for runstore and once for Metaflow (same steps, same
work): a 3-step linear flow and a 100-task foreach with a join. Each is run as a
fresh subprocess (``python flow.py run``) in a fresh directory, so the times include
interpreter start-up, imports, store creation and the run itself. Metaflow runs in
its local mode from a separate venv (default ``.mfvenv/bin/python``, or
``--metaflow-python`` / ``RUNSTORE_BENCH_METAFLOW_PYTHON``); when it is missing the
comparison is skipped with a message, never faked. The floor is ``python -c
"import sqlite3, click"``. Output: median seconds and ratios (SPEC §11 targets:
3-step >= 15x, 100-task foreach >= 30x faster than Metaflow).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe  # noqa: E402

LINEAR = """
from {pkg} import FlowSpec, step

class LinearFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.middle)

    @step
    def middle(self):
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        print("y =", self.y)

if __name__ == "__main__":
    LinearFlow()
"""

FOREACH = """
from {pkg} import FlowSpec, step

class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(100))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.result = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.result for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total =", self.total)

if __name__ == "__main__":
    ForeachFlow()
"""


# A flow whose start step sets the same 100 MiB array in every run (dedup case).
DEDUP = """
import numpy as np
from {pkg} import FlowSpec, step

class DedupFlow(FlowSpec):
    @step
    def start(self):
        self.x = np.random.default_rng(0).random(100 * 1024 * 1024 // 8)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    DedupFlow()
"""

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int | None]:
    """Run ``cmd`` to completion: (wall seconds, peak resident bytes or None).

    The peak is ``ru_maxrss`` reported by GNU ``/usr/bin/time`` for its child: the
    largest resident set of any process of the tree (the command and the children it
    waited for, e.g. Metaflow's task subprocesses), not their sum. ``time`` itself is
    a tiny C program, so the figure does not inherit this (Python) process's size as a
    ``ru_maxrss`` read from here would. Without GNU time the peak is None.
    """
    report = None
    if GNU_TIME:
        fd, report = tempfile.mkstemp(prefix="bench-time-")
        os.close(fd)
        cmd = [GNU_TIME, "-f", "%M", "-o", report, *cmd]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    peak = None
    if report:
        text = Path(report).read_text().strip().splitlines()
        os.unlink(report)
        peak = int(text[-1]) * 1024 if text and text[-1].isdigit() else None
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return elapsed, peak


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    return run_measured(cmd, cwd, env)[0]


def bench(python: str, source: str, pkg: str, repeat: int, extra: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "flow.py"
            path.write_text(textwrap.dedent(source.format(pkg=pkg)))
            times.append(timed([python, str(path), *extra, "run"], Path(tmp), env))
    return statistics.median(times)


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--metaflow-repeat", type=int, default=1, help="Metaflow runs per flow (median)")
    parser.add_argument("--metaflow-python", default=os.environ.get("RUNSTORE_BENCH_METAFLOW_PYTHON",
                                                                    str(here / ".mfvenv" / "bin" / "python")))
    args = parser.parse_args()
    env = {**os.environ, "USER": os.environ.get("BENCH_USER", "bench"), "RUNSTORE_USER": "bench",
           "METAFLOW_USER": "bench"}
    env.pop("RUNSTORE_DB", None)
    # Users run with bytecode caching on; without it every run recompiles runstore (~85 ms).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"machine: {describe()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    floor = statistics.median(
        timed([sys.executable, "-c", "import sqlite3, click"], here, env) for _ in range(args.repeat))
    print(f"floor  python -c 'import sqlite3, click'          {floor:7.3f} s")
    results = {}
    for label, source in (("3-step linear", LINEAR), ("100-task foreach", FOREACH)):
        results[label] = bench(sys.executable, source, "runstore", args.repeat, [], env)
        print(f"runstore  {label:<18} python flow.py run  {results[label]:7.3f} s"
              f"  ({results[label] / floor:.1f}x the floor)")
    mf = Path(args.metaflow_python)
    has_mf = mf.exists() and subprocess.run([str(mf), "-c", "import metaflow"], capture_output=True).returncode == 0
    if not has_mf:
        print(f"Metaflow: not found at {mf} -- comparison skipped "
              "(python -m venv .mfvenv && .mfvenv/bin/pip install metaflow)")
        return
    version = subprocess.run([str(mf), "-c", "import metaflow; print(metaflow.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    targets = {"3-step linear": 15, "100-task foreach": 30}
    for label, source in (("3-step linear", LINEAR), ("100-task foreach", FOREACH)):
        seconds = bench(str(mf), source, "metaflow", args.metaflow_repeat, ["--no-pylint"], env)
        ratio = seconds / results[label]
        verdict = "meets" if ratio >= targets[label] else "MISSES"
        print(f"metaflow {version} {label:<18} python flow.py run  {seconds:7.3f} s  "
              f"-> runstore is {ratio:5.1f}x faster (target {targets[label]}x: {verdict})")


if __name__ == "__main__":
    main()
