"""Save and load a 1,000,000-key plain dict through a file store, against Metaflow (issue #18, SPEC §11).

Run from the repository root (a few minutes; Metaflow from a peers venv)::

    python benchmarks/bench_big_dict.py --repeat 7 --peers-python /work/peers/bin/python \\
        | tee benchmarks/results/bench_big_dict.txt

The value is the artifact benchmark's dict (``benchmarks/peers/values.py``: ``{"key0": 0, ...}``,
built the same way in both venvs). runstore: ``Store.put_value`` into a fresh file store (the
codec choice, encoding, hashing, compression, commit) and ``Store.load_value`` (read, decompress,
verify, decode), and the same load as a colleague would (without the writer's MAC: the
safepickle opcode check runs first). Metaflow: its local datastore as a task uses it (``peers/metaflow_artifacts.py
--case dict``: ``save_artifacts`` + ``done()`` into a fresh root, ``load_artifacts``; pickle
protocol 4 + gzip), one fresh process per round. The two are measured alternately, one sample
of each per round, so a busy machine slows both alike; wall and CPU time (``time.process_time``,
steadier when the 2 cores are shared with other work) are medians of ``--repeat`` rounds, ratio =
Metaflow / runstore (issue #18 asks >= 1.5 each way). Also: which codec took the dict, the time of the C-speed
plainness walk alone (``codecs._classify``), of encoding it with the codec alone, and a cProfile
of one load (where the time goes). A second value, ``mixed`` (values cycling through int, float,
str, None, bool and a short list), is measured for runstore only.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE))

from _machine import describe  # noqa: E402
from values import big_dict  # noqa: E402

from runstore import Store  # noqa: E402
from runstore.codecs import SafePickleCodec, _classify  # noqa: E402

TARGET = 1.5


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed2(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine CPU time is the steadier one."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


# One Metaflow save + load in the peers venv, timed like runstore's (wall and CPU), fresh root.
METAFLOW_ROUND = """
import json, os, sys, tempfile, time, shutil
sys.path.insert(0, sys.argv[1])
from metaflow_artifacts import save, load
from values import big_dict
import metaflow
value = big_dict()
folder = tempfile.mkdtemp(prefix="bench-mf-")
save(os.path.join(folder, "warm"), [("w", b"warm up")])
root = os.path.join(folder, ".metaflow")
out = {"version": metaflow.__version__}
for op, fn in (("save", lambda: save(root, [("x", value)])), ("load", lambda: load(root, ["x"]))):
    wall, cpu = time.perf_counter(), time.process_time()
    got = fn()
    out[op] = [time.perf_counter() - wall, time.process_time() - cpu]
    del got
shutil.rmtree(folder, ignore_errors=True)
print(json.dumps(out))
"""


def fresh_store(folder: Path, n: int) -> Store:
    return Store(folder / f"bench{n}.db")


def runstore_round(value: object, folder: Path, n: int, stranger: bool = False) -> dict[str, object]:
    """{save, load, stranger: (wall, cpu) seconds; encoding}."""
    store = fresh_store(folder, n)
    refs: list[object] = []
    out: dict[str, object] = {"save": timed2(lambda: refs.append(store.put_value(value)))}
    ref = refs[0]
    loaded: list[object] = []
    out["load"] = timed2(lambda: loaded.append(store.load_value(ref.blob_key, ref.encoding)))
    assert loaded[0] == value
    del loaded[:]
    if stranger:  # as a colleague loads it: no MAC of theirs, so the opcode check runs first
        with store.write() as conn:
            conn.execute("DELETE FROM blob_trust")
        out["stranger"] = timed2(lambda: loaded.append(store.load_value(ref.blob_key, ref.encoding)))
        del loaded[:]
    out["encoding"] = ref.encoding
    store.close()
    return out


def metaflow_round(python: str) -> dict[str, object]:
    proc = subprocess.run([python, "-c", METAFLOW_ROUND, str(HERE / "peers")], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{med(xs):6.3f} s ({min(xs):.3f}-{max(xs):.3f})"


def profile_load(value: object, folder: Path) -> str:
    store = fresh_store(folder, 999)
    ref = store.put_value(value)
    store.load_value(ref.blob_key, ref.encoding)  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    store.load_value(ref.blob_key, ref.encoding)
    profiler.disable()
    store.close()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(6)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start - 1 : start + 7])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peers-python", default=os.environ.get("RUNSTORE_BENCH_PEERS_PYTHON"),
                        help="a Python with metaflow installed (omit: runstore only)")
    args = parser.parse_args()
    value = big_dict()
    n = len(value)
    print(f"machine: {describe()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{n:,}-key dict {{'key0': 0, ...}}, median of {args.repeat} alternating rounds")
    walk = [timed(lambda: _classify(value, 64 * 1024)) for _ in range(args.repeat)]
    encode = [timed(lambda: SafePickleCodec.encode_tree(value, io.BytesIO())) for _ in range(args.repeat)]
    rs: dict[str, list[tuple[float, float]]] = {"save": [], "load": [], "stranger": []}
    mf: dict[str, list[tuple[float, float]]] = {"save": [], "load": []}
    version = None
    with tempfile.TemporaryDirectory(prefix="bench-dict-") as tmp:
        folder = Path(tmp)
        for i in range(args.repeat):
            got = runstore_round(value, folder, i, stranger=True)
            encoding = got["encoding"]
            for op in rs:
                rs[op].append(got[op])  # type: ignore[arg-type]
            if args.peers_python:
                theirs = metaflow_round(args.peers_python)
                for op in mf:
                    mf[op].append(tuple(theirs[op]))  # type: ignore[arg-type]
                version = theirs.get("version")
        profile = profile_load(value, folder)
    print(f"codec: {encoding}; plainness walk alone {spread(walk)}; safepickle encoding alone {spread(encode)}")
    for k, label in ((0, "wall time"), (1, "CPU time of the process (steadier on a shared machine)")):
        print()
        print(f"{label}:")
        print(f"{'':6s} {'runstore':24s} {'Metaflow ' + str(version or ''):24s} Metaflow / runstore "
              f"(target >= {TARGET})")
        for op in ("save", "load"):
            ours = [x[k] for x in rs[op]]
            if mf[op]:
                theirs_ = [x[k] for x in mf[op]]
                ratio = med(theirs_) / med(ours)
                verdict = "met" if ratio >= TARGET else "MISSED"
                print(f"{op:6s} {spread(ours):24s} {spread(theirs_):24s} {ratio:.2f}x  {verdict}")
            else:
                print(f"{op:6s} {spread(ours):24s} {'not measured':24s}")
        print(f"load of the same value as a stranger (no MAC: opcode check first): "
              f"{spread([x[k] for x in rs['stranger']])}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("cProfile of one runstore load (tottime):")
    print(profile)
    mixed_cycle = [1, 2.5, "s", None, True, [1, 2]]
    mixed = {f"k{i}": mixed_cycle[i % 6] if i % 6 != 5 else [i, i] for i in range(n)}
    with tempfile.TemporaryDirectory(prefix="bench-dict-") as tmp:
        rounds = [runstore_round(mixed, Path(tmp), i) for i in range(args.repeat)]
    print()
    print(f"mixed values (runstore only, {rounds[0]['encoding']}, wall): "
          f"save {spread([r['save'][0] for r in rounds])}, load {spread([r['load'][0] for r in rounds])}")


if __name__ == "__main__":
    main()
