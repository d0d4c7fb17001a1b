"""End-to-end runtime benchmark: ``python flow.py run`` as a user runs it, runstore vs Metaflow.

Command (from the repository root, in the venv where runstore is installed)::

    python benchmarks/bench_runtime.py [--repeat 5] [--metaflow-repeat 3] [--metaflow-python PATH]

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
import resource
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


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its reaped children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def run_once(python: str, source: str, pkg: str, extra: list[str], env: dict[str, str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flow.py"
        path.write_text(textwrap.dedent(source.format(pkg=pkg)))
        return timed([python, str(path), *extra, "run"], Path(tmp), env)


def median_pair(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def per_task_overhead(n: int = 200) -> tuple[float, float]:
    """Milliseconds per task of a trivial foreach in this process: warm workers, and inline."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from runstore import Runner, Store
    from runstore.runtime import load_flow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flow.py"
        path.write_text(textwrap.dedent(FOREACH.format(pkg="runstore")).replace("range(100)", f"range({n})"))
        flow = load_flow(path)
        store = Store(Path(tmp) / "bench.db")
        results = []
        for workers in (2, 1):
            Runner(flow, store=store).run(max_workers=workers, max_num_splits=n)  # warm up
            start = time.perf_counter()
            Runner(flow, store=store).run(max_workers=workers, max_num_splits=n)
            results.append((time.perf_counter() - start) / (n + 4) * 1000)
        store.close()
    return results[0], results[1]


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
    parser.add_argument("--metaflow-repeat", type=int, default=3,
                        help="Metaflow runs per flow (median); runstore's runs are interleaved with them")
    parser.add_argument("--metaflow-python", default=os.environ.get("RUNSTORE_BENCH_METAFLOW_PYTHON",
                                                                    str(here / ".mfvenv" / "bin" / "python")))
    args = parser.parse_args()
    env = {**os.environ, "USER": os.environ.get("BENCH_USER", "bench"), "RUNSTORE_USER": "bench",
           "METAFLOW_USER": "bench"}
    env.pop("RUNSTORE_DB", None)
    # As a user runs it: installed packages have their bytecode cached. (pip compiles
    # Metaflow at install time; runstore's editable checkout gets __pycache__ from the
    # warm-up runs below.) A shell with PYTHONDONTWRITEBYTECODE=1 would otherwise make
    # every run recompile runstore from source.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    floor = median_pair([timed([sys.executable, "-c", "import sqlite3, click"], here, env)
                         for _ in range(args.repeat)])
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"floor    python -c 'import sqlite3, click'       wall {floor[0]:6.3f} s  cpu {floor[1]:6.3f} s")
    mf = Path(args.metaflow_python)
    has_mf = mf.exists() and subprocess.run([str(mf), "-c", "import metaflow"], capture_output=True).returncode == 0
    version = ""
    if has_mf:
        version = subprocess.run([str(mf), "-c", "import metaflow; print(metaflow.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
    targets = {"3-step linear": 15, "100-task foreach": 30}
    for source in (LINEAR, FOREACH):  # warm-up: writes runstore's bytecode cache
        run_once(sys.executable, source, "runstore", [], env)
    for label, source in (("3-step linear", LINEAR), ("100-task foreach", FOREACH)):
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        # Interleave the two so that both see the same machine load.
        for _ in range(max(1, args.metaflow_repeat if has_mf else 1)):
            if has_mf:
                theirs.append(run_once(str(mf), source, "metaflow", ["--no-pylint"], env))
            ours += [run_once(sys.executable, source, "runstore", [], env) for _ in range(args.repeat)]
        rs = median_pair(ours)
        print(f"runstore {label:<18} python flow.py run    wall {rs[0]:6.3f} s  cpu {rs[1]:6.3f} s"
              f"  ({rs[0] / floor[0]:.1f}x the floor)")
        if has_mf:
            theirs_t = median_pair(theirs)
            ratio, cpu_ratio = theirs_t[0] / rs[0], theirs_t[1] / rs[1]
            verdict = "meets" if ratio >= targets[label] else "MISSES"
            print(f"metaflow {version} {label:<18} run   wall {theirs_t[0]:6.3f} s  cpu {theirs_t[1]:6.3f} s"
                  f"  -> runstore {ratio:5.1f}x faster (wall), {cpu_ratio:5.1f}x less CPU;"
                  f" target {targets[label]}x: {verdict}")
    warm, inline = per_task_overhead()
    print(f"per-task overhead, 204-task run in one process: {warm:.2f} ms with 2 warm workers, "
          f"{inline:.2f} ms inline (target <= 5 ms)")
    if not has_mf:
        print(f"Metaflow: not found at {mf} -- comparison skipped "
              "(python -m venv .mfvenv && .mfvenv/bin/pip install metaflow)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
