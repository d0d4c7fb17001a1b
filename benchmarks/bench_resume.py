"""What resume and version information cost on the run path.

Run from the repository root (about half a minute):

    .venv/bin/python benchmarks/bench_resume.py --repeat 5 | tee benchmarks/results/bench_resume.txt

Measured in one run, in one temporary directory, medians of ``--repeat`` runs:

* ``get_version()`` in a fresh interpreter: the first call with a warm cache (what
  every ``python flow.py run`` pays for the ``runstore_version:`` tag) vs asking git
  (the cache removed), and vs reading the package version (the floor);
* a 100-task foreach flow whose end step fails: ``python flow.py run`` (everything
  executes) vs ``python flow.py resume`` (101 tasks cloned by reference, the end step
  runs again) — ratio = run time / resume time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOW = '''
import os
from runstore import FlowSpec, step


class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(100))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        if os.path.exists(os.environ["FAIL_FILE"]):
            raise RuntimeError("end fails")


if __name__ == "__main__":
    WideFlow()
'''

VERSION = "import time; t = time.perf_counter(); import runstore.version as v; s = time.perf_counter(); {call}; print(time.perf_counter() - s)"


def _timed(argv: list[str], env: dict[str, str], expect: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{argv} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed


def _in_process(call: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", VERSION.format(call=call)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    env = {**os.environ, "RUNSTORE_HOME": str(work / "home"), "RUNSTORE_USER": "bench",
           "FAIL_FILE": str(work / "fail")}

    from runstore.version import _git_dirs, _git_top, get_version

    top = _git_top()
    cache = _git_dirs(top)[0] / "runstore-version.json" if top else None
    floor = statistics.median(_in_process("v.__version__", env) for _ in range(args.repeat))
    hit = statistics.median(_in_process("v.get_version()", env) for _ in range(args.repeat))
    misses = []
    for _ in range(args.repeat if cache else 0):
        cache.unlink(missing_ok=True)
        misses.append(_in_process("v.get_version()", env))
    miss = statistics.median(misses) if misses else float("nan")

    flow = work / "wide_flow.py"
    flow.write_text(FLOW)
    runs, resumes = [], []
    for i in range(args.repeat):
        db = work / f"r{i}.db"
        (work / "fail").touch()
        runs.append(_timed([sys.executable, str(flow), "--db", str(db), "--quiet", "run"], env, 1))
        (work / "fail").unlink()
        resumes.append(_timed([sys.executable, str(flow), "--db", str(db), "--quiet", "resume"], env, 0))
    run, resume = statistics.median(runs), statistics.median(resumes)

    print(f"machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"runstore version: {get_version()} ({'git checkout' if top else 'installed'})")
    print(f"get_version() first call, cache warm  {hit * 1000:7.2f} ms   (package version constant: {floor * 1000:.3f} ms)")
    print(f"get_version() first call, asking git  {miss * 1000:7.2f} ms   -> the cache saves {miss / hit:.0f}x")
    print(f"100-task foreach, end fails:  run     {run:.3f} s")
    print(f"same, resume (101 tasks cloned): {resume:.3f} s   -> resume is {run / resume:.1f}x faster than the run")


if __name__ == "__main__":
    main()
