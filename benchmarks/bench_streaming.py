"""What streaming logs cost: per-task overhead and the 100-task foreach, before vs now (#13).

Command (from the repository root, in the venv where runstore is installed)::

    python benchmarks/bench_streaming.py [--before 1aae353] [--rounds 2] [--repeat 5] [--foreach-repeat 9]

The tree before streaming (default: main at ``1aae353``, the commit RESULTS.md's pre-streaming
figures come from) is unpacked with ``git archive`` into a temporary directory and imported
through ``PYTHONPATH``; the current tree likewise. The two are measured alternately (before, now,
now, before, ... for ``--rounds``), in the same venv, so both see the same machine load:

* per-task overhead: ``bench_runtime.per_task_overhead`` (a 204-task foreach in one process
  through ``Runner``, after a warm-up run), with 2 warm workers and inline; median of ``--repeat``;
* the 100-task foreach (``bench_runtime.FOREACH``) as ``python flow.py --quiet run
  --max-workers 2``, a fresh process and directory per run; median of ``--foreach-repeat``.

Output: one line per measurement and tree, then now / before ratios and the verdict against the
issue's bound (streaming costs at most +10 %), with RESULTS.md's pre-streaming figures (1.37 ms
per task, 326 ms for the foreach at --max-workers 2) for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _machine import describe  # noqa: E402
from bench_runtime import FOREACH, run_measured  # noqa: E402

#: RESULTS.md's figures before streaming logs (main at 1aae353).
PRE_STREAMING = {"per_task_ms": 1.37, "foreach_workers_2_ms": 326.0}
#: The issue's bound: streaming may cost at most this much more.
BOUND = 1.10


def per_task(tree: Path, repeat: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    code = (f"import json, sys; sys.path[:0] = [{str(tree)!r}, {str(HERE)!r}]; import runstore, runstore.runtime; "
            f"assert runstore.__file__.startswith({str(tree)!r}), runstore.__file__; "
            "from bench_runtime import per_task_overhead; print(json.dumps(per_task_overhead()))")
    warm, inline = [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        pair = json.loads(out.stdout.strip().splitlines()[-1])
        warm.append(pair[0])
        inline.append(pair[1])
    return warm, inline


def foreach(tree: Path, repeat: int, env: dict[str, str]) -> list[float]:
    times = []
    for i in range(-1, repeat):  # run -1 warms the bytecode and page caches
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "flow.py").write_text(textwrap.dedent(FOREACH.format(pkg="runstore")))
            seconds, _ = run_measured([sys.executable, "flow.py", "--quiet", "run", "--max-workers", "2"], folder,
                                      {**env, "PYTHONPATH": str(tree), "RUNSTORE_DB": str(folder / "runstore.db")})
            if i >= 0:
                times.append(seconds)
    return times


def unpack(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "runstore"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="1aae353", help="the git ref of the tree before streaming logs")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of before and now")
    parser.add_argument("--repeat", type=int, default=5, help="per-task measurements per round (median)")
    parser.add_argument("--foreach-repeat", type=int, default=9, help="foreach runs per round (median)")
    args = parser.parse_args()
    env = {**os.environ, "RUNSTORE_USER": "bench"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"machine: {describe()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    samples: dict[str, dict[str, list[float]]] = {t: {"warm": [], "inline": [], "foreach": []}
                                                  for t in ("before", "now")}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": unpack(args.before, Path(tmp)), "now": ROOT}
        order = []
        for i in range(args.rounds):
            order += ["before", "now"] if i % 2 == 0 else ["now", "before"]
        for name in order:
            warm, inline = per_task(trees[name], args.repeat, env)
            times = foreach(trees[name], args.foreach_repeat, env)
            samples[name]["warm"] += warm
            samples[name]["inline"] += inline
            samples[name]["foreach"] += times
            print(f"{name:<6} round: per task {statistics.median(warm):.2f} ms (2 warm workers), "
                  f"{statistics.median(inline):.2f} ms inline; 100-task foreach --max-workers 2 "
                  f"{statistics.median(times) * 1000:.0f} ms")
    med = {name: {key: statistics.median(values) for key, values in rows.items()} for name, rows in samples.items()}
    ok = True
    for key, label, unit, scale in (("warm", "per-task overhead, 2 warm workers", "ms", 1),
                                    ("inline", "per-task overhead, inline", "ms", 1),
                                    ("foreach", "100-task foreach, --max-workers 2", "ms", 1000)):
        ratio = med["now"][key] / med["before"][key]
        within = ratio <= BOUND
        ok = ok and within
        print(f"{label}: before {med['before'][key] * scale:.2f} {unit}, now {med['now'][key] * scale:.2f} {unit} "
              f"-> now/before {ratio:.3f} ({'within' if within else 'OVER'} +10 %)")
    print(f"RESULTS.md before streaming: {PRE_STREAMING['per_task_ms']} ms per task, "
          f"{PRE_STREAMING['foreach_workers_2_ms']:.0f} ms foreach (--max-workers 2); now, this run: "
          f"{med['now']['warm']:.2f} ms, {med['now']['foreach'] * 1000:.0f} ms")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("verdict: streaming costs at most +10 %: " + ("met" if ok else "MISSED"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
