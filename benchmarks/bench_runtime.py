"""End-to-end runtime benchmark: ``python flow.py run`` as a user runs it, runstore vs Metaflow.

Command (from the repository root, in the venv where runstore is installed)::

    python benchmarks/bench_runtime.py [--repeat 5] [--metaflow-python PATH]

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
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

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


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def bench(python: str, source: str, pkg: str, repeat: int, extra: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "flow.py"
            path.write_text(textwrap.dedent(source.format(pkg=pkg)))
            times.append(timed([python, str(path), *extra, "run"], Path(tmp), env))
    return statistics.median(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--metaflow-repeat", type=int, default=1, help="Metaflow runs per flow (median)")
    parser.add_argument("--metaflow-python", default=os.environ.get("RUNSTORE_BENCH_METAFLOW_PYTHON",
                                                                    str(here / ".mfvenv" / "bin" / "python")))
    args = parser.parse_args()
    env = {**os.environ, "USER": os.environ.get("BENCH_USER", "bench"), "RUNSTORE_USER": "bench",
           "METAFLOW_USER": "bench", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("RUNSTORE_DB", None)
    print(f"machine: {machine()}")
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
