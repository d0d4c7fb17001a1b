"""Metaflow's local datastore saving and loading the artifact benchmark's values.

Runs in the peers venv (metaflow + numpy), called by ``benchmarks/run_all.py``; alone::

    .peers/bin/python benchmarks/peers/metaflow_artifacts.py --case array --repeat 3
    .peers/bin/python benchmarks/peers/metaflow_artifacts.py --case array --mem

This drives the same code a Metaflow task runs when it persists its artifacts:
``FlowDataStore`` over ``LocalStorage`` -> ``TaskDataStore(mode="w")``,
``save_artifacts([(name, value), ...])`` (pickle, sha1, gzip, one file per blob in the
content-addressed store) and ``done()``; loading opens a fresh ``TaskDataStore(mode="r")``
and calls ``load_artifacts``. Each save goes to a fresh datastore root, so nothing is
deduplicated away. The 1,000 small values are 1,000 artifacts of one task, saved in one
call (as at the end of a task) and loaded in one call.

Prints one JSON object: ``save`` and ``load`` seconds per repeat and ``bytes`` on disk,
or with ``--mem`` the peak resident bytes (VmHWM) above a warmed-up baseline of one
save and of one load, each in a fresh process (the value itself included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from values import make, peak_rss  # noqa: E402

from metaflow.datastore import FlowDataStore  # noqa: E402
from metaflow.plugins.datastores.local_storage import LocalStorage  # noqa: E402

FLOW = "ArtifactBenchFlow"


def artifacts(case: str, value: object) -> list[tuple[str, object]]:
    if case == "small":
        return [(f"a{i:04d}", v) for i, v in enumerate(value)]  # type: ignore[arg-type]
    return [("x", value)]


def save(root: str, items: list[tuple[str, object]], run_id: str = "1") -> None:
    flow_ds = FlowDataStore(FLOW, storage_impl=LocalStorage, ds_root=root)
    task_ds = flow_ds.get_task_datastore(run_id, "start", "1", attempt=0, mode="w")
    task_ds.init_task()
    task_ds.save_artifacts(iter(items), len_hint=len(items))
    task_ds.done()


def load(root: str, names: list[str], run_id: str = "1") -> dict[str, object]:
    flow_ds = FlowDataStore(FLOW, storage_impl=LocalStorage, ds_root=root)
    task_ds = flow_ds.get_task_datastore(run_id, "start", "1", mode="r")
    return dict(task_ds.load_artifacts(names))


def disk_bytes(root: str) -> int:
    return sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file())


def timings(case: str, repeat: int, folder: str) -> dict[str, object]:
    items = artifacts(case, make(case))
    names = [n for n, _ in items]
    out: dict[str, object] = {"save": [], "load": []}
    root = os.path.join(folder, ".metaflow")
    save(os.path.join(folder, "warm"), [("w", b"warm up")])
    for _ in range(repeat):
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        save(root, items)
        out["save"].append(time.perf_counter() - t0)  # type: ignore[union-attr]
        t0 = time.perf_counter()
        loaded = load(root, names)
        out["load"].append(time.perf_counter() - t0)  # type: ignore[union-attr]
        assert len(loaded) == len(names)
        del loaded
    out["bytes"] = disk_bytes(root)
    return out


def memory(case: str, op: str, root: str) -> dict[str, object]:
    """Peak resident bytes of one save or load above a warmed-up baseline (fresh process)."""
    warm = root + "-warm"
    save(warm, [("w", b"warm up")])
    load(warm, ["w"])
    names = [n for n, _ in artifacts(case, [None] * 1000 if case == "small" else None)]
    base = peak_rss()
    if op == "save":
        save(root, artifacts(case, make(case)))
    else:
        load(root, names)
    return {"extra": peak_rss() - base, "base": base}


def memory_both(case: str, folder: str) -> dict[str, object]:
    """Save then load, each in its own fresh process, so one does not count the other's peak."""
    root = os.path.join(folder, ".metaflow")
    out: dict[str, object] = {}
    for op in ("save", "load"):
        proc = subprocess.run([sys.executable, __file__, "--case", case, "--mem-child", op, root],
                              capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr)
        out[op] = json.loads(proc.stdout)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["array", "dict", "small"], required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mem", action="store_true", help="peak memory of one save and one load instead")
    parser.add_argument("--mem-child", nargs=2, metavar=("OP", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mem_child:
        print(json.dumps(memory(args.case, *args.mem_child)))
        return
    folder = tempfile.mkdtemp(prefix="bench-mf-")
    try:
        if args.mem:
            result = memory_both(args.case, folder)
        else:
            result = timings(args.case, args.repeat, folder)
        import metaflow

        result["version"] = metaflow.__version__
        print(json.dumps(result))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
