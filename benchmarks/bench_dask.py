"""The Dask executor (SPEC §16): per-task overhead, and scale-out of waiting work.

Command (from the repository root, in the venv where ``runstore[dask,test]`` is installed)::

    python benchmarks/bench_dask.py [--repeat 3] [--tasks 200] [--sleep-tasks 1000] [--sleep 0.5]

Writes ``benchmarks/results/bench_dask.txt`` (and prints it).

1. Per-task overhead: a foreach of ``--tasks`` trivial tasks (square a number) minus a
   3-step linear run, divided by the number of tasks — on the local executor
   (2 forked workers) and on Dask (a LocalCluster of 2 worker processes x 1 thread,
   started once before timing, as an existing cluster would be). The Dask figure
   is what each task costs in the scheduler (payload, submit, answer, hash checks,
   commit) plus the round trip through the Dask scheduler. Start-up of a
   LocalCluster for a run (``--executor dask`` without an address) is timed apart.
2. Waiting work: a foreach of ``--sleep-tasks`` tasks that each sleep ``--sleep`` s —
   a LocalCluster with 32 threads (2 processes x 16) against the local executor with 2
   workers. On a 2-core machine this shows what a cluster buys for work that waits
   (I/O, remote services), and the cost per task at that width.

Every run goes to a fresh store in a temporary directory; times are medians of
``--repeat`` runs (the sleeping foreach runs once: it is long, and sleep does not vary).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe  # noqa: E402

FLOWS = textwrap.dedent('''
    import time
    from runstore import FlowSpec, Parameter, step

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
            pass
''')

FOREACH = textwrap.dedent('''
    import time
    from runstore import FlowSpec, Parameter, step

    class ForeachFlow(FlowSpec):
        n = Parameter("n", default=100)
        sleep = Parameter("sleep", default=0.0)

        @step
        def start(self):
            self.items = list(range(self.n))
            self.next(self.work, foreach="items")

        @step
        def work(self):
            if self.sleep:
                time.sleep(self.sleep)
            self.result = self.input * self.input
            self.next(self.join)

        @step
        def join(self, inputs):
            self.total = sum(i.result for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass
''')


def timed_run(flow_file: Path, workdir: Path, **kwargs: object) -> float:
    from runstore import Runner, Store

    run_kwargs = dict(kwargs)
    executor = run_kwargs.pop("executor", None)
    address = run_kwargs.pop("dask_address", None)
    store = Store(workdir / f"bench-{time.monotonic_ns()}.db")
    runner = Runner(flow_file, store=store, executor=executor, dask_address=address)  # type: ignore[arg-type]
    start = time.perf_counter()
    run = runner.run(max_num_splits=100_000, **run_kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    assert run.successful
    store.close()
    return elapsed


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--sleep-tasks", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=0.5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_dask.txt"))
    args = parser.parse_args()

    import dask
    import distributed

    lines = [f"bench_dask: the Dask executor vs the local one (medians of {args.repeat} runs)",
             f"machine: {describe()}",
             f"dask {dask.__version__}, distributed {distributed.__version__}",
             f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", ""]
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        work = Path(tmp)
        (work / "linear_flow.py").write_text(FLOWS)
        (work / "foreach_flow.py").write_text(FOREACH)
        linear, foreach = work / "linear_flow.py", work / "foreach_flow.py"

        # LocalCluster start-up, as `--executor dask` without an address pays it per run
        starts = []
        for _ in range(args.repeat):
            begin = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.ERROR)
            client = distributed.Client(cluster, set_as_default=False)
            client.wait_for_workers(2)
            starts.append(time.perf_counter() - begin)
            client.close()
            cluster.close()

        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.ERROR)
        address = cluster.scheduler_address
        results: dict[str, dict[str, float]] = {}
        for name, extra in (("local (2 workers)", {"max_workers": 2}),
                            ("dask (2 procs x 1 thread)", {"executor": "dask", "dask_address": address})):
            timed_run(linear, work, **extra)  # warm-up: imports, code package on the workers
            lin = median([timed_run(linear, work, **extra) for _ in range(args.repeat)])
            fe = median([timed_run(foreach, work, n=args.tasks, **extra) for _ in range(args.repeat)])
            results[name] = {"linear": lin, "foreach": fe, "per_task": (fe - lin) / args.tasks}
        cluster.close()

        lines.append(f"1. per-task overhead: {args.tasks}-task foreach of trivial tasks minus a 3-step linear run")
        lines.append(f"{'executor':28} {'3-step s':>9} {'foreach s':>10} {'per task ms':>12}")
        for name, r in results.items():
            lines.append(f"{name:28} {r['linear']:9.3f} {r['foreach']:10.3f} {r['per_task'] * 1000:12.2f}")
        base = results["local (2 workers)"]["per_task"]
        ratio = results["dask (2 procs x 1 thread)"]["per_task"] / base if base > 0 else float("nan")
        lines.append(f"dask per-task cost / local per-task cost: {ratio:.1f}x")
        lines.append(f"LocalCluster start-up (2 processes), paid by a run without --dask-address: "
                     f"{median(starts):.2f} s (min {min(starts):.2f}, max {max(starts):.2f})")
        lines.append("")

        n, sleep = args.sleep_tasks, args.sleep
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            big = distributed.LocalCluster(n_workers=2, threads_per_worker=16, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        dask_s = timed_run(foreach, work, n=n, sleep=sleep, executor="dask", dask_address=big.scheduler_address)
        big.close()
        local_s = timed_run(foreach, work, n=n, sleep=sleep, max_workers=2)
        ideal_dask, ideal_local = n * sleep / 32, n * sleep / 2
        lines.append(f"2. waiting work: {n}-task foreach, each task sleeps {sleep} s (one run each)")
        lines.append(f"{'executor':34} {'run s':>8} {'ideal s':>8} {'overhead per task ms':>21}")
        lines.append(f"{'dask LocalCluster, 32 threads':34} {dask_s:8.1f} {ideal_dask:8.1f} "
                     f"{(dask_s - ideal_dask) / n * 1000:21.1f}")
        lines.append(f"{'local executor, 2 workers':34} {local_s:8.1f} {ideal_local:8.1f} "
                     f"{(local_s - ideal_local) / n * 1000:21.1f}")
        lines.append(f"speed-up of the Dask run: {local_s / dask_s:.1f}x "
                     "(ideal = tasks x sleep / slots; overhead = (run - ideal) / tasks)")
    lines.append(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
