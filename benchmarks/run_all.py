"""Every runstore benchmark in one run, side by side with Metaflow and MLflow -> RESULTS.md.

Command (from the repository root; runstore's venv runs this script, a separate venv
holds the peers)::

    python3 -m venv .peers && .peers/bin/pip install metaflow mlflow
    .venv/bin/python benchmarks/run_all.py --peers-python .peers/bin/python

``--quick`` uses tiny repeat counts (a dry run of every case in a few minutes);
``--only flows,queries`` runs some sections; ``--out`` writes elsewhere than
``benchmarks/RESULTS.md``. The raw samples go to ``benchmarks/results/run_all.json``;
``--from-json benchmarks/results/run_all.json`` rewrites the report from them without
measuring again.

Sections (see ``benchmarks/README.md`` for how each is measured):

* ``startup``: ``python -c pass`` (floor), ``import runstore``, ``runstore --help``,
  and ``import metaflow`` / ``import mlflow`` for context;
* ``flows``: ``python flow.py run`` of a 3-step flow and of a 100-task foreach
  (``--max-workers 2`` and the default) as a user runs it, runstore vs Metaflow's
  local mode (``benchmarks/bench_runtime.py`` holds the flows);
* ``artifacts``: save and load of a 100 MiB array, a 1,000,000-key dict and 1,000 small
  artifacts: runstore vs raw file I/O of the same bytes vs Metaflow's local datastore
  (``bench_blobs.py``, ``peers/metaflow_artifacts.py``);
* ``dedup``: a flow storing the same 100 MiB array, run twice: bytes the second run
  adds, runstore vs Metaflow;
* ``queries``: client queries at 1k, 10k and 100k runs (``bench_client.py``);
* ``search``: listing and filtering 10k runs by a parameter value, runstore
  (``params_view``, ``Flow.runs(where=...)``, the older views) vs MLflow ``search_runs``
  on ``sqlite:///``, and the two files' sizes with their bytes per table and index
  (``bench_search.py``, ``peers/mlflow_search.py``); targets (issue #18): the filter
  ≥ 3× faster than ``search_runs``, the file ≤ 1× MLflow's;
* ``sql_stream``: ``runstore sql`` of 200,000 and 2,000,000 rows in every format under a
  180 MiB address-space limit (peak RSS flat, time to the first row) and ``| head -2``
  (``bench_sql_stream.py``).
* ``width``: a foreach over n = 1,000 / 4,000 / 8,000 items where ``start`` sets
  ``items = list(range(n))`` (``--max-workers 2``): store bytes, scheduler peak RSS and wall
  time, and 8,000 over 1,000 for each (target ≤ 9×, issue #18; ``bench_width.py``).

Every measured command runs in a fresh process; peak memory is that process's VmHWM
(or, for whole commands, GNU time's maxrss of the largest process of the tree). A peer
that is not installed in ``--peers-python`` is reported as missing and its columns say
so: nothing is ever estimated in its place.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _machine import cpu_model, ram_gib  # noqa: E402
from bench_runtime import DEDUP, FOREACH, LINEAR, run_measured  # noqa: E402

MiB = 1024 * 1024
SECTIONS = ("startup", "flows", "artifacts", "dedup", "queries", "search", "sql_stream", "width")

#: RESULTS.md's figures before logs streamed into the store (main at 1aae353, issue #13): per-task
#: overhead in warm workers and the 100-task foreach at --max-workers 2. Streaming may cost at most
#: +10 % over them; ``bench_streaming.py`` measures both trees alternately on the same machine load.
PRE_STREAMING = {"per_task_ms": 1.37, "foreach_workers_2_ms": 326.0}
STREAMING_BOUND = 1.10

# Repeat counts: (full, --quick).
REPEATS = {
    "startup": (20, 3), "startup_peer": (10, 2),
    "linear": (5, 2), "linear_mf": (5, 1),
    "foreach": (5, 2), "foreach_mf": (3, 1),
    "artifacts": (5, 1), "artifacts_mf": (3, 1),
    "per_task": (3, 1), "queries": (300, 20), "search": (5, 2), "search_mlflow": (5, 1),
    "sql_stream_rows": (2_000_000, 200_000),
}

# What a profile showed for a target that was missed (printed only when it is missed
# in the run being written). Keys are the target ids used in `verdict()` calls.
_FLOW_CAUSE = (
    "start-up and process contention, not the work. `python -X importtime flow.py run` of the "
    "3-step flow (bytecode cached, #18): ~80 ms of imports, ~190 modules. #18 took off the run "
    "path what a run never calls (the store's admin modules `_sql`/`_gc`/`_transfer`/`_doctor`, "
    "tempfile/shutil/bz2/lzma, string; uuid/platform, socket and inspect for `import runstore`): "
    "201 -> 188 modules, pinned by `tests/test_layering.py::test_a_flow_run_loads_only_what_it_uses`. "
    "What is left is used: click (~10 ms, paid by the `import sqlite3, click` floor too, and "
    "importing inspect and uuid itself), the store and codecs (~25 ms, dataclasses included), the "
    "runtime (~20 ms), zstandard (~5 ms, to compress the run's ~450-byte graph-info artifact) and, "
    "in the forked worker before its first task, ctypes (~4-8 ms, for prctl(PR_SET_PDEATHSIG)). "
    "cProfile: store creation ~8 ms, three tasks ~11 ms, the scheduler then waits on its worker. "
    "Metaflow's 1.2-1.8 s (quiet machine) divided by 15 leaves 80-120 ms a run, only a few tens of "
    "ms above the floor, and a run of two processes (scheduler + worker) loses more than the "
    "one-process floor when the 2 CPUs are shared (this verdict moves with machine load; the same "
    "run was 11.7x on a quieter machine). A quieter A/B at load ~3 (#18, 10 runs each): this branch "
    "115 ms, main before #18 120 ms, the floor 48 ms, Metaflow 1.20 s (10.4x); `--max-workers 1` "
    "(inline, no forked worker) ~106 ms against ~132 ms in the same batch: the worker (fork, "
    "ctypes/prctl, socket hand-offs) costs ~20 ms of the ~35 ms still missing. Next steps: no zstd "
    "for artifacts under ~1 KiB, and fork the first worker while the run record is written so its "
    "start overlaps the scheduler's work."
)
CAUSES: dict[str, str] = {
    "flow:3-step flow": _FLOW_CAUSE,
    "flow:3-step flow, store exists": _FLOW_CAUSE,
    "import": (
        "`python -X importtime`: the statement's cost is the modules it pulls in (module counts in "
        "Start-up). Without cached bytecode (`PYTHONDONTWRITEBYTECODE=1`, as in this project's "
        "shells) every import recompiles runstore's modules. Next step: keep heavy modules lazy."
    ),
    "array-save": (
        "profiled, and see docs/storage.md. The baseline is SPEC §11's raw `write()` + `fsync`. "
        "Since #18 the store hashes each byte once (chunk keys; the blob key is derived from them; "
        "the one-pass sha256 line below is the floor content addressing costs), and SQLite appends "
        "every 4 KiB page to the WAL as its own frame: the bare-sqlite3 line below (the same bytes, "
        "no runstore code) is itself a large part of the time. 64 KiB pages make large values 2-4x "
        "faster to write (bare line below) but make every small transaction write up to 16x more "
        "WAL bytes (one task's store calls 0.97 -> 2.35 ms in docs/storage.md), so the store keeps "
        "4 KiB on purpose (docs/storage.md, page size)."
    ),
    "array-load": (
        "cProfile: `sqlite3.Blob.read` copies each 4 MiB piece out of SQLite's page cache into a new "
        "bytes object (it has no read-into-a-buffer call in Python 3.11), which is then copied into "
        "the array and hashed: two copies and a sha256 pass against the raw `readinto`'s one copy. "
        "#18 reads each chunk through one blob handle (the overflow chain walked once: half the CPU of "
        "the read); `PRAGMA mmap_size` would save the kernel copy but counts the mapped file in the "
        "process's resident memory (load peak 2.05x the array against SPEC's 1.5x), so it is not "
        "used (docs/storage.md). The bare-sqlite3 lines below are the floor for the 4 KiB page size."
    ),
}

# Profile findings shown when the condition they explain holds in the run being written.
DICT_NOTE = (
    "The dict is stored with the safepickle codec: one C-speed walk (~0.04 s CPU) proves it a plain "
    "tree, so the standard pickler writes it without its memo (~0.03 s, where Metaflow's memo-based "
    "`pickle.dumps` takes ~0.26 s and `json.dumps` took ~0.39 s), zstd compresses it; that is why save "
    "wins. Loading is the restricted `Unpickler.load` (~0.45 s CPU) plus ~0.1 s of read, zstd and "
    "sha256; cProfile (benchmarks/results/bench_big_dict.txt) puts ~85-90 % of a load in "
    "`Unpickler.load`, i.e. creating 1,000,000 str and int objects and inserting them into the dict. "
    "Metaflow's `pickle.loads` of the same dict does the same work (~0.47 s CPU), so load cannot be "
    "1.5x faster while both build the same Python objects: measured ~1.0-1.1x in CPU time "
    "(`json.loads`, the old codec, was ~0.86 s). A colleague's value (no MAC) adds the Python opcode "
    "check (~0.35 s). Measured on a quiet machine (load 0.8; benchmarks/results/bench_big_dict.txt): "
    "save 0.15 s vs 0.41 s (2.7x), load 0.40 s vs 0.39 s (1.0x), of which `Unpickler.load` 0.39 s (96 %)."
)
CAUSES["dict-save"] = CAUSES["dict-load"] = DICT_NOTE
SEARCH_NOTE = (
    "`parameters_view` builds a JSON object per run (`json_group_object` over that run's parameter "
    "artifacts) before `json_extract` can filter it, so a filter reads every run. The filtering forms "
    "are `params_view` (`name = ? AND value = ?`, one search of the index `run_params_by_value`) and "
    "`Flow.runs(where={...})`, measured above."
)
CAUSES["search:size"] = (
    "the bytes per table and index (dbstat, in `benchmarks/results/bench_search.txt` and "
    "docs/storage.md): about 60 % of the file is the blob layer and the artifact rows, whose 64-character "
    "hex sha256 keys appear up to seven times per small value (`blobs`, `blob_parts` and its index, "
    "`blob_chunks` and its unique index, `artifacts` and `artifacts_by_blob`); each run also has "
    "`_parameters` step, task and attempt rows. MLflow stores a parameter as one `params` row. Next "
    "step (docs/storage.md): keys as 32-byte BLOBs, no `blob_parts` row for a one-chunk blob (its "
    "chunk key is the blob key), small JSON values inline in their artifact row."
)


# ----------------------------------------------------------------------------- helpers

def stats(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def iqr(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 4:
        return min(samples), max(samples)
    q = statistics.quantiles(samples, n=4)
    return q[0], q[2]


def fmt_s(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    if seconds >= 0.001:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.3f} ms"


def cell(samples: list[float] | None, spread: str = "range") -> str:
    """'median (min–max)' or 'median (p25–p75)'."""
    if not samples:
        return "—"
    med = statistics.median(samples)
    lo, hi = (min(samples), max(samples)) if spread == "range" else iqr(samples)
    if len(samples) == 1:
        return f"{fmt_s(med)} (n=1)"
    return f"{fmt_s(med)} ({fmt_s(lo)}–{fmt_s(hi)})"


def mib(n: int | float | None) -> str:
    return "—" if n is None else f"{n / MiB:.0f} MiB"


def kib(n: int | float) -> str:
    return f"{n / 1024:,.1f} KiB" if n < MiB else f"{n / MiB:,.1f} MiB"


def med(samples: list[float] | None) -> float | None:
    return statistics.median(samples) if samples else None


def ratio_text(slow: float | None, fast: float | None, unit: str = "×") -> str:
    if slow is None or fast is None or fast == 0:
        return "—"
    return f"{slow / fast:.1f}{unit}"


class Peers:
    """Which peers the peers interpreter can import, and their versions (never guessed)."""

    def __init__(self, python: str | None) -> None:
        self.python = python
        self.versions: dict[str, str | None] = {"metaflow": None, "mlflow": None}
        self.problems: dict[str, str] = {}
        for name in self.versions:
            if not python:
                self.problems[name] = "no --peers-python given"
                continue
            if not Path(python).exists():
                self.problems[name] = f"{python} does not exist"
                continue
            proc = subprocess.run([python, "-c", f"import {name}; print({name}.__version__)"],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                self.versions[name] = proc.stdout.strip().splitlines()[-1]
            else:
                self.problems[name] = f"`import {name}` fails in {python}: " + (
                    proc.stderr.strip().splitlines() or ["?"])[-1]

    def has(self, name: str) -> bool:
        return self.versions.get(name) is not None

    def missing(self, name: str) -> str:
        return f"{name} not measured: {self.problems.get(name, 'missing')}"


def base_env(home: Path) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set in some shells and CI images) would make every run
    # recompile runstore from source (~85 ms here): users run with bytecode caching on.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNSTORE_", "METAFLOW_", "MLFLOW_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"HOME": str(home), "USER": "bench", "USERNAME": "bench", "RUNSTORE_USER": "bench",
                "METAFLOW_USER": "bench", "METAFLOW_DEFAULT_DATASTORE": "local",
                "METAFLOW_DEFAULT_METADATA": "local"})
    return env


def own_store(env: dict[str, str], folder: Path) -> dict[str, str]:
    """``./runstore.db`` of the run's directory, even if a stray runstore.db sits in /tmp (discovery walks up)."""
    return dict(env, RUNSTORE_DB=str(folder / "runstore.db"))


def json_child(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> dict[str, Any]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def runstore_cli() -> str:
    script = Path(sys.executable).with_name("runstore")
    if script.exists():
        return str(script)
    found = shutil.which("runstore")
    if not found:
        raise SystemExit("the `runstore` console script is not installed next to this Python "
                         "(pip install -e . in this venv)")
    return found


def repeat(key: str, quick: bool) -> int:
    return REPEATS[key][1 if quick else 0]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine

def machine() -> dict[str, str]:
    ram = f"{ram_gib():.1f} GiB"
    osname = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = f"{line.split('=', 1)[1].strip(chr(34))}, kernel {platform.release()}"
    except OSError:
        pass
    import runstore

    try:
        import numpy

        numpy_version = numpy.__version__
    except ImportError:
        numpy_version = "not installed"
    try:
        disk = subprocess.run(["df", "-hT", tempfile.gettempdir()], capture_output=True, text=True).stdout
        disk = disk.strip().splitlines()[-1].split()
        disk_text = f"{tempfile.gettempdir()} on {disk[1]} ({disk[0]})"
    except (OSError, IndexError):
        disk_text = tempfile.gettempdir()
    return {
        "cpu": f"{cpu_model()}, {os.cpu_count()} logical CPUs",
        "ram": ram,
        "os": osname,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "sqlite": sqlite3.sqlite_version,
        "runstore": getattr(runstore, "__version__", "?"),
        "numpy": numpy_version,
        "temp dir": disk_text,
    }


# ----------------------------------------------------------------------------- sections

def bench_startup(peers: Peers, quick: bool, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    n, n_peer = repeat("startup", quick), repeat("startup_peer", quick)
    cases: list[tuple[str, list[str], int]] = [
        ("python -c pass (floor)", [sys.executable, "-c", "pass"], n),
        ("python -c 'import runstore'", [sys.executable, "-c", "import runstore"], n),
        ("runstore --help", [runstore_cli(), "--help"], n),
        ("python -c 'import sqlite3, click' (flow floor)", [sys.executable, "-c", "import sqlite3, click"], n),
    ]
    if peers.has("metaflow"):
        cases.append(("python -c 'import metaflow'", [peers.python, "-c", "import metaflow"], n_peer))
    if peers.has("mlflow"):
        cases.append(("python -c 'import mlflow'", [peers.python, "-c", "import mlflow"], n_peer))
    out: dict[str, Any] = {}
    for label, cmd, count in cases:
        times, peaks = [], []
        run_measured(cmd, tmp, env)  # warm the page cache
        for _ in range(count):
            seconds, peak = run_measured(cmd, tmp, env)
            times.append(seconds)
            peaks.append(peak)
        out[label] = {"samples": times, "peak_rss": max((p for p in peaks if p), default=None)}
        log(f"startup {label}: {fmt_s(statistics.median(times))}")
    counts = {}
    for label, stmt in (("import runstore", "import runstore"), ("import sqlite3, click", "import sqlite3, click"),
                        ("flow run path (runstore + runstore.cli.flow)",
                         "import runstore, runstore.cli.flow")):
        counts[label] = int(json_child([sys.executable, "-c", f"import sys; n = len(sys.modules); {stmt}; "
                                        "print(len(sys.modules) - n)"], env, tmp))
    out["_modules"] = counts
    # in-process import time, which excludes interpreter start-up
    code = "import time; t = time.perf_counter(); import runstore; print(time.perf_counter() - t)"
    out["import runstore (in-process)"] = {
        "samples": [float(json_child([sys.executable, "-c", code], env, tmp)) for _ in range(n)], "peak_rss": None}
    return out


def run_flow(python: str, source: str, pkg: str, args: list[str], env: dict[str, str], tmp: Path,
             count: int, same_dir: bool = False) -> dict[str, Any]:
    """``count`` timed runs, each in a fresh directory (a first run: the store is created),
    or with ``same_dir`` all in one directory whose store the untimed warm-up run created."""
    times, peaks = [], []
    # Run -1 warms up (bytecode caches, page cache); Metaflow's slow foreach is warm
    # already from its 3-step runs just before.
    first = 0 if (pkg == "metaflow" and source is not LINEAR) else -1
    folder = None
    for i in range(first, count):
        if folder is None or not same_dir:
            folder = Path(tempfile.mkdtemp(dir=tmp))
            (folder / "flow.py").write_text(textwrap.dedent(source.format(pkg=pkg)))
        cmd = [python, "flow.py", *(["--no-pylint"] if pkg == "metaflow" else []), "run", *args]
        seconds, peak = run_measured(cmd, folder, own_store(env, folder))
        if not same_dir:
            shutil.rmtree(folder, ignore_errors=True)
        if i < 0:
            continue
        times.append(seconds)
        peaks.append(peak)
    if same_dir and folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return {"samples": times, "peak_rss": statistics.median([p for p in peaks if p]) if any(peaks) else None}


def bench_flows(peers: Peers, quick: bool, env: dict[str, str], tmp: Path,
                foreach: bool = True) -> dict[str, Any]:
    cases = [
        ("3-step flow", LINEAR, [], "linear"),
        ("3-step flow, store exists", LINEAR, [], "linear"),
        ("100-task foreach, --max-workers 2", FOREACH, ["--max-workers", "2"], "foreach"),
        ("100-task foreach, default workers", FOREACH, [], "foreach"),
    ]
    if not foreach:
        cases = [case for case in cases if case[3] != "foreach"]
    out: dict[str, Any] = {}
    for label, source, args, key in cases:
        same = label.endswith("store exists")
        row: dict[str, Any] = {"runstore": run_flow(sys.executable, source, "runstore", args, env, tmp,
                                                    repeat(key, quick), same)}
        log(f"flows runstore {label}: {fmt_s(med(row['runstore']['samples']))}")
        if peers.has("metaflow"):
            row["metaflow"] = run_flow(peers.python, source, "metaflow", args, env, tmp,
                                       repeat(key + "_mf", quick), same)
            log(f"flows metaflow {label}: {fmt_s(med(row['metaflow']['samples']))}")
        out[label] = row
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); "
            "from bench_runtime import per_task_overhead; print(json.dumps(per_task_overhead()))")
    pairs = [json_child([sys.executable, "-c", code], env, tmp) for _ in range(repeat("per_task", quick))]
    out["_per_task_ms"] = {"warm workers": [p[0] for p in pairs], "inline": [p[1] for p in pairs]}
    log(f"flows per-task overhead: {statistics.median(out['_per_task_ms']['warm workers']):.2f} ms")
    return out


def bench_artifacts(peers: Peers, quick: bool, env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"runstore": json_child(
        [sys.executable, str(HERE / "bench_blobs.py"), "--json", "--repeat", str(repeat("artifacts", quick))], env)}
    log("artifacts runstore done")
    if peers.has("metaflow"):
        script = str(HERE / "peers" / "metaflow_artifacts.py")
        out["metaflow"] = {}
        for case in ("array", "dict", "small"):
            timing = json_child([peers.python, script, "--case", case,
                                 "--repeat", str(repeat("artifacts_mf", quick))], env)
            timing["mem"] = {op: v["extra"] for op, v in json_child(
                [peers.python, script, "--case", case, "--mem"], env).items() if op in ("save", "load")}
            out["metaflow"][case] = timing
            log(f"artifacts metaflow {case} done")
    return out


def store_bytes(folder: Path, tool: str) -> int:
    if tool == "runstore":
        return sum(p.stat().st_size for p in folder.glob("runstore.db*"))
    root = folder / ".metaflow"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def bench_dedup(peers: Peers, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    tools = [("runstore", sys.executable)]
    if peers.has("metaflow"):
        tools.append(("metaflow", peers.python))
    out: dict[str, Any] = {}
    for tool, python in tools:
        folder = Path(tempfile.mkdtemp(dir=tmp))
        (folder / "flow.py").write_text(textwrap.dedent(DEDUP.format(pkg=tool)))
        cmd = [python, "flow.py", *(["--no-pylint"] if tool == "metaflow" else []), "run"]
        sizes, runs = [store_bytes(folder, tool)], []
        for _ in range(2):
            runs.append(run_measured(cmd, folder, own_store(env, folder)))
            sizes.append(store_bytes(folder, tool))
        out[tool] = {"sizes": sizes, "seconds": [r[0] for r in runs], "peak_rss": [r[1] for r in runs]}
        shutil.rmtree(folder, ignore_errors=True)
        log(f"dedup {tool}: second run added {sizes[2] - sizes[1]} bytes")
    return out


def bench_queries(quick: bool, env: dict[str, str]) -> dict[str, Any]:
    result = json_child([sys.executable, str(HERE / "bench_client.py"), "--json",
                         "--repeat", str(repeat("queries", quick))], env)
    log("queries done")
    return result


def bench_search(peers: Peers, quick: bool, env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"runstore": json_child(
        [sys.executable, str(HERE / "bench_search.py"), "--json", "--runs", "10000",
         "--repeat", str(repeat("search", quick))], env)}
    log("search runstore done")
    if peers.has("mlflow"):
        out["mlflow"] = json_child([peers.python, str(HERE / "peers" / "mlflow_search.py"), "--runs", "10000",
                                    "--repeat", str(repeat("search_mlflow", quick))], env)
        log("search mlflow done")
    return out


def bench_sql_stream(quick: bool, env: dict[str, str]) -> dict[str, Any]:
    """``runstore sql`` at a tenth of the rows and at the full count: is peak RSS flat?"""
    rows = repeat("sql_stream_rows", quick)
    out = {str(n): json_child([sys.executable, str(HERE / "bench_sql_stream.py"), "--json-out", "--rows", str(n)],
                              env) for n in (rows // 10, rows)}
    log("sql_stream done")
    return out


def bench_width(env: dict[str, str]) -> dict[str, Any]:
    result = json_child([sys.executable, str(HERE / "bench_width.py"), "--json", "--max-workers", "2"], env)
    log("width done")
    return result


# ----------------------------------------------------------------------------- report

class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.missed: list[str] = []
        self.missed_text: dict[str, str] = {}
        self.unmeasured: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.add("| " + " | ".join(row) + " |")
        self.add("")

    def verdict(self, key: str, ok: bool | None, what: str) -> str:
        """'met' / '**MISSED**' for a SPEC §11 target; a miss is listed at the end with its cause."""
        if ok is None:
            self.unmeasured.append(what.split(":")[0])
            return "not measured"
        if ok:
            return "met"
        self.missed.append(key)
        cause = CAUSES.get(key)
        if cause and any(cause in text for text in self.missed_text.values()):
            cause = "the same as the item above."
        self.missed_text[key] = what + (f" Cause: {cause}" if cause else "")
        return "**MISSED**"


def write_report(data: dict[str, Any], args: argparse.Namespace) -> str:
    r = Report()
    peers: dict[str, Any] = data["peers"]
    mf_v, ml_v = peers["versions"]["metaflow"], peers["versions"]["mlflow"]
    mach = data["machine"]
    r.add("# runstore benchmarks: results",
          "",
          f"Produced by `{data['command']}` on {data['started']} (took {data['took_s'] / 60:.1f} min). "
          "Do not edit by hand: rerun the command. How each case is measured: `benchmarks/README.md`.",
          "")
    r.add("## Machine", "")
    rows = [[k, v] for k, v in mach.items()]
    rows += [["metaflow", mf_v or f"missing ({peers['problems'].get('metaflow')})"],
             ["mlflow", ml_v or f"missing ({peers['problems'].get('mlflow')})"],
             ["load average", f"{data['load_start']} at start, {data['load_end']} at end (1/5/15 min)"]]
    r.table(["", ""], rows)
    if data.get("busy_note"):
        r.add(f"> {data['busy_note']}", "")
    r.add("Times are the median of repeated runs with the spread in brackets: (min–max), or "
          "(p25–p75) where a case is repeated hundreds of times. Each measured command or case "
          "runs in a fresh process; peak memory is that process's peak resident set (VmHWM, or "
          "GNU time's maxrss of the largest process of the tree for whole commands). "
          "Ratios are peer time / runstore time (higher = runstore faster) unless said otherwise.", "")
    if args.quick:
        r.add("> **--quick run: repeat counts are tiny, numbers are indicative only.**", "")

    summary: list[list[str]] = []

    # ---- flows
    if "flows" in data:
        flows = data["flows"]
        r.add("## `python flow.py run`, end to end", "",
              "A fresh process per run, as a user runs it: interpreter start, imports, opening (or "
              "creating) the store, the run. Each run in a fresh directory (so the store is created: "
              "a first run), except *store exists*: repeated runs in one directory, as a user "
              "iterating on a flow does. Metaflow: local mode (local datastore and metadata), "
              "`--no-pylint`. Peak RSS: the largest process of the run (not the sum over workers).", "")
        rows = []
        targets = {"3-step flow": 15, "3-step flow, store exists": 15,
                   "100-task foreach, --max-workers 2": 30, "100-task foreach, default workers": 30}
        for label, row in flows.items():
            if label.startswith("_"):
                continue
            rs, mf = row["runstore"], row.get("metaflow")
            ratio = ratio_text(med(mf["samples"]), med(rs["samples"])) if mf else "—"
            target = targets[label]
            ok = (med(mf["samples"]) / med(rs["samples"]) >= target) if mf else None
            verdict = r.verdict(f"flow:{label}", ok,
                                f"{label}: runstore is {ratio} faster than Metaflow, SPEC §11 asks for ≥ {target}×.")
            rows.append([label, cell(rs["samples"]), mib(rs["peak_rss"]),
                         cell(mf["samples"]) if mf else f"not measured ({peers['problems'].get('metaflow')})",
                         mib(mf["peak_rss"]) if mf else "—", ratio, f"≥ {target}×: {verdict}"])
            summary.append([f"`python flow.py run`, {label}", fmt_s(med(rs["samples"])),
                            fmt_s(med(mf["samples"])) if mf else "—", f"{ratio} faster" if mf else "—",
                            f"≥ {target}×: {verdict}"])
        r.table(["case", "runstore", "peak RSS", f"Metaflow {mf_v or ''}", "peak RSS", "Metaflow / runstore",
                 "target (SPEC §11, issue #18)"], rows)
        counts = "; ".join(
            f"{label}: runstore {len(row['runstore']['samples'])}"
            + (f", Metaflow {len(row['metaflow']['samples'])}" if "metaflow" in row else "")
            for label, row in flows.items() if not label.startswith("_"))
        r.add(f"Timed runs per case ({counts}), after one untimed warm-up run (none for Metaflow's "
              "foreach, which takes ~20–40 s a run here and follows its warm 3-step runs).")
        floor = data.get("startup", {}).get("python -c 'import sqlite3, click' (flow floor)")
        lin, fe = flows.get("3-step flow"), flows.get("100-task foreach, default workers")
        if floor:
            r.add(f"Floor (`python -c 'import sqlite3, click'`): {cell(floor['samples'])}; the 3-step run is "
                  f"{med(lin['runstore']['samples']) / med(floor['samples']):.1f}× the floor.")
        per = flows.get("_per_task_ms")
        if per:
            warm = med(per["warm workers"])
            verdict = r.verdict("per-task", warm <= 5.0,
                                f"per-task overhead {warm:.2f} ms in warm workers, SPEC §11 asks ≤ 5 ms.")
            r.add(f"Per-task overhead (`bench_runtime.per_task_overhead`: a 204-task foreach run in one "
                  f"process through `Runner`, after a warm-up run; median of {len(per['inline'])}): "
                  f"{warm:.2f} ms with 2 warm workers, {med(per['inline']):.2f} ms inline "
                  f"(SPEC §11: ≤ 5 ms in a warm worker: {verdict}).")
            summary.append(["per-task overhead, warm workers", f"{warm:.2f} ms", "", "", f"≤ 5 ms: {verdict}"])
        fe2 = flows.get("100-task foreach, --max-workers 2")
        if per or fe2:
            # Streaming logs (#13) against the figures measured before it: at most +10 %.
            now_task = med(per["warm workers"]) if per else None
            now_fe = med(fe2["runstore"]["samples"]) * 1000 if fe2 else None
            parts, oks = [], []
            for what, now_value, before, digits in (("per-task overhead", now_task, PRE_STREAMING["per_task_ms"], 2),
                                                    ("100-task foreach, --max-workers 2", now_fe,
                                                     PRE_STREAMING["foreach_workers_2_ms"], 0)):
                if now_value is None:
                    continue
                ratio = now_value / before
                oks.append(ratio <= STREAMING_BOUND)
                parts.append(f"{what} {now_value:.{digits}f} ms vs {before:g} ms before streaming "
                             f"({(ratio - 1) * 100:+.0f} %)")
            verdict = r.verdict("streaming", all(oks),
                                "streaming logs: " + "; ".join(parts) + ", issue #13 allows at most +10 %.")
            r.add(f"Streaming logs (#13) against RESULTS.md's figures before it (main at 1aae353): "
                  + "; ".join(parts) + f". At most +10 %: {verdict}. Absolute times move with this shared "
                  "machine's load; `benchmarks/bench_streaming.py` measures both trees alternately "
                  "(results/bench_streaming.txt).")
            summary.append(["streaming logs vs before (per task, foreach --max-workers 2)",
                            " / ".join(f"{v:.{d}f} ms" for v, d in ((now_task, 2), (now_fe, 0)) if v is not None),
                            "", "", f"≤ +10 %: {verdict}"])
        if lin and fe and "metaflow" in lin and "metaflow" in fe:
            ours = (med(fe["runstore"]["samples"]) - med(lin["runstore"]["samples"])) * 10
            theirs = (med(fe["metaflow"]["samples"]) - med(lin["metaflow"]["samples"])) * 10
            r.add(f"End to end, (foreach − 3-step) / 100 extra tasks = {ours:.2f} ms per task (runstore) "
                  f"vs {theirs:.0f} ms (Metaflow).")
        r.add("")

    # ---- startup
    if "startup" in data:
        st = data["startup"]
        r.add("## Start-up", "", "`python -c ...` of each import in a fresh process (the runstore venv's "
              "Python; Metaflow and MLflow from the peers venv, same base interpreter).", "")
        floor = med(st["python -c pass (floor)"]["samples"])
        rows = []
        for label, row in st.items():
            if label.startswith("_"):
                continue
            m = med(row["samples"])
            extra = "" if "in-process" in label or "floor)" in label and "pass" in label else fmt_s(max(m - floor, 0.0))
            rows.append([label, cell(row["samples"]), extra, mib(row["peak_rss"])])
        r.table(["command", "time", "above `python -c pass`", "peak RSS"], rows)
        if st.get("_modules"):
            r.add("Modules each statement adds to `sys.modules`: "
                  + "; ".join(f"{label}: {n}" for label, n in st["_modules"].items()) + ".", "")
        whole = med(st["python -c 'import runstore'"]["samples"])
        imp = med(st["import runstore (in-process)"]["samples"])
        ok = imp <= 0.100
        verdict = r.verdict("import", ok, f"`import runstore` takes {fmt_s(imp)} in-process "
                                          f"({fmt_s(whole)} for the whole `python -c`), SPEC §11 asks ≤ 100 ms.")
        r.add(f"SPEC §11: `import runstore` ≤ 100 ms — the import statement itself (timed inside the "
              f"process, bytecode cached) {fmt_s(imp)}: {verdict}. The whole `python -c 'import runstore'` "
              f"process, interpreter start and exit included, takes {fmt_s(whole)} "
              f"({fmt_s(max(whole - floor, 0.0))} above `python -c pass`).", "")
        summary.append(["`import runstore` (statement; whole `python -c` process)",
                        f"{fmt_s(imp)}; {fmt_s(whole)}", "", "", f"≤ 100 ms: {verdict}"])
        help_ = med(st["runstore --help"]["samples"])
        summary.append(["`runstore --help`", fmt_s(help_), "", "", ""])

    # ---- artifacts
    if "artifacts" in data:
        art = data["artifacts"]
        rs, mf = art["runstore"], art.get("metaflow")
        r.add("## Artifacts: save and load", "",
              "runstore: `Store.put_value` / `load_value` on a fresh file store (the 1,000 small values "
              "prepared and committed in one transaction, as at the end of a task). Raw: `write()` / "
              "`readinto()` of the very same encoded bytes to/from plain files, no fsync (the store "
              "runs `synchronous=NORMAL`), except for the 100 MiB array's save, which SPEC §11 measures "
              "against a raw write + fsync. Metaflow: its local datastore as a task uses it "
              "(`TaskDataStore.save_artifacts` + `done()`, `load_artifacts`; pickle + gzip). "
              "Peak memory: above a warmed-up interpreter, the value itself included, one save or "
              "one load per fresh process.", "")
        rows = []
        labels = {"array": "100 MiB float64 array", "dict": "1,000,000-key dict", "small": "1,000 small artifacts"}
        for case, label in labels.items():
            c = rs[case]
            m = mf.get(case) if mf else None
            for op, raw in (("save", "raw_write"), ("load", "raw_read")):
                if case == "array" and op == "save" and c.get("raw_write_fsync"):
                    raw = "raw_write_fsync"  # SPEC §11: "save ≥ 50 % of raw write+fsync speed"
                raw_ratio = med(c[raw]) / med(c[op])
                target = ""
                if case == "array":
                    ok = raw_ratio >= 0.5
                    base = "raw write+fsync" if raw == "raw_write_fsync" else "raw read"
                    v = r.verdict(f"array-{op}", ok,
                                  f"100 MiB array {op}: {raw_ratio:.0%} of {base} speed, SPEC §11 asks ≥ 50 %.")
                    target = f"≥ 50 % of {base}: {v}"
                    summary.append([f"100 MiB array {op}", fmt_s(med(c[op])),
                                    fmt_s(med(m[op])) if m else "—",
                                    f"{ratio_text(med(m[op]), med(c[op]))} faster" if m else "—",
                                    f"{target} ({raw_ratio:.0%})"])
                elif case == "dict":  # issue #18: at least 1.5x faster than Metaflow, each way
                    mf_ratio = med(m[op]) / med(c[op]) if m else None
                    v = r.verdict(f"dict-{op}", None if m is None else mf_ratio >= 1.5,
                                  f"1,000,000-key dict {op}: {mf_ratio or 0:.2f}× Metaflow's speed, "
                                  "issue #18 asks ≥ 1.5×.")
                    target = f"≥ 1.5× Metaflow: {v}"
                    summary.append([f"1,000,000-key dict {op}", fmt_s(med(c[op])),
                                    fmt_s(med(m[op])) if m else "—",
                                    f"{ratio_text(med(m[op]), med(c[op]))} faster" if m else "—", target])
                rows.append([f"{label}: {op}", cell(c[op]),
                             cell(c[raw]) + (" (write+fsync)" if raw == "raw_write_fsync" else ""), f"{raw_ratio:.0%}",
                             cell(m[op]) if m else "not measured",
                             ratio_text(med(m[op]), med(c[op])) if m else "—",
                             mib(c["mem"][op]), mib(m["mem"][op]) if m else "—", target])
        r.table(["case", "runstore", "raw file I/O", "runstore speed as % of raw",
                 f"Metaflow {mf_v or ''}", "Metaflow / runstore", "peak mem runstore", "peak mem Metaflow",
                 "target (SPEC §11, issue #18)"], rows)
        a = rs["array"]
        for op in ("save", "load"):
            x = a["mem"][op] / (100 * MiB)
            v = r.verdict(f"array-mem-{op}", x <= 1.5,
                          f"100 MiB array {op} peaks at {x:.2f}× the array, SPEC §11 asks ≤ 1.5×.")
            r.add(f"- 100 MiB array {op}: peak memory {x:.2f}× the array (SPEC §11: ≤ 1.5×: {v}).")
        for page in (4096, 65536):
            w, rd = a.get(f"sqlite{page}_write"), a.get(f"sqlite{page}_read")
            if w and rd:
                r.add(f"- The same 100 MiB through plain sqlite3, no runstore code ({page // 1024} KiB pages"
                      f"{', as the store uses' if page == 4096 else ''}; zeroblob + incremental blob I/O, "
                      f"WAL, one transaction): write {cell(w)} = {med(a['raw_write']) / med(w):.0%} of raw, "
                      f"read {cell(rd)} = {med(a['raw_read']) / med(rd):.0%} of raw.")
        if a.get("sha256"):
            r.add(f"- One sha256 pass over the same 100 MiB (content addressing needs at least one): "
                  f"{cell(a['sha256'])} = {med(a['raw_write']) / med(a['sha256']):.0%} of the raw write time.")
        r.add(f"- 100 MiB array save including the WAL checkpoint a run ends with: {cell(a['save_ckpt'])}.",
              f"- 1,000 small artifacts, one `put_value` (one transaction) each: {cell(rs['small']['save_each'])}.",
              f"- Encoded sizes: array {kib(a['bytes'][0])}, dict {kib(rs['dict']['bytes'][0])} (safepickle), "
              f"1,000 small {kib(rs['small']['bytes'][0])}" + (
                  f"; Metaflow on disk: array {kib(mf['array']['bytes'])}, dict {kib(mf['dict']['bytes'])}, "
                  f"small {kib(mf['small']['bytes'])}." if mf else "."),
              f"- Runs: runstore {len(a['save'])}, Metaflow {len(mf['array']['save']) if mf else 0} per case.", "")
        if not mf:
            r.add(f"Metaflow {peers['problems'].get('metaflow')}: its columns are empty.", "")

    # ---- dedup
    if "dedup" in data or "artifacts" in data:
        r.add("## Dedup: the same 100 MiB array in a second run", "")
        rows = []
        if "artifacts" in data:
            g = max(data["artifacts"]["runstore"]["array"]["growth"])
            v = r.verdict("dedup", g <= 4096, f"putting the same array again grew the file by {g} bytes (≤ 4 KiB asked).")
            rows.append(["runstore, `put_value` of the same array again (file size after checkpoint)",
                         f"{g:,} bytes", f"≤ 4 KiB: {v}"])
            summary.append(["same 100 MiB array stored again", f"+{g:,} bytes", "", "", f"≤ 4 KiB: {v}"])
        for tool, d in data.get("dedup", {}).items():
            added = d["sizes"][2] - d["sizes"][1]
            rows.append([f"{tool}: `python flow.py run` twice of a flow setting the array "
                         f"(first run {kib(d['sizes'][1] - d['sizes'][0])}; run times {fmt_s(d['seconds'][0])}, "
                         f"{fmt_s(d['seconds'][1])})",
                         f"{added:,} bytes ({kib(added)})",
                         "whole run: new run, task, log and metadata rows; peak RSS "
                         + ", ".join(mib(p) for p in d["peak_rss"])])
        r.table(["what", "bytes added by the second copy", "note"], rows)
        r.add("Files grow in whole pages: the second run's few rows (run, tags, tasks, artifact rows "
              "pointing at the blob already stored) can fit in free space of pages the first run left, "
              "so 0 bytes is a genuine result, not a missed measurement.", "")

    # ---- width
    if "width" in data:
        w = data["width"]
        first, last = w["widths"][0], w["widths"][-1]
        r.add(f"## Foreach width: store bytes, peak RSS and time grow linearly (`--max-workers {w['max_workers']}`)",
              "", "`start` sets `items = list(range(n))` and foreaches over it; one run per width, each "
              "in a fresh folder (`bench_width.py`). Before #18 every child stored its own copy of "
              "`items`' JSON text: 11 MiB at 1,000, 339 MiB at 8,000.", "")
        r.table(["n", "store", "peak RSS", "wall", "artifacts rows", "task_values rows"],
                [[f"{x['n']:,}", mib(x["store_bytes"]), mib(x["peak_rss"]) if x["peak_rss"] else "?",
                  fmt_s(x["seconds"]), f"{x['rows']['artifacts']:,}", f"{x['rows']['task_values']:,}"]
                 for x in w["widths"]])
        rows = []
        for key, what in (("store_bytes", "store bytes"), ("peak_rss", "scheduler peak RSS"), ("seconds", "wall time")):
            ratio = w["ratios"].get(key)
            v = r.verdict(f"width:{key}", None if ratio is None else ratio <= 9.0,
                          f"foreach width {what}: {last['n']:,} over {first['n']:,} is "
                          f"{'?' if ratio is None else f'{ratio:.1f}'}× (≤ 9× asked).")
            rows.append([what, "?" if ratio is None else f"{ratio:.2f}×", f"≤ 9×: {v}"])
            summary.append([f"foreach width {what}, {last['n']:,} over {first['n']:,}",
                            "?" if ratio is None else f"{ratio:.2f}×", "", "", f"≤ 9×: {v}"])
        r.table(["measure", f"{last['n']:,} over {first['n']:,}", "target"], rows)

    # ---- queries
    if "queries" in data:
        q = data["queries"]
        sizes = [k for k in q if k.isdigit()]
        r.add("## Client queries at 1k, 10k and 100k runs", "",
              "Fresh client objects per call on an open store; one flow, four users, a tag on every "
              "10th run, the newest 2 % failed. Populated in bulk through the store's connection "
              "(" + ", ".join(f"{int(n):,} runs in {q['populate_s'][n]:.1f} s" for n in sizes) + "). "
              f"Median (p25–p75) of {len(next(iter(q[sizes[0]].values())))} calls per size, timed in "
              "alternating batches of 20 across the sizes so background load hits all alike.", "")
        rows = []
        names = list(q[sizes[0]])
        worst = 0.0
        ok_all = True
        for name in names:
            meds = [med(q[n][name]) for n in sizes]
            growth = meds[-1] / meds[0]
            ok = meds[-1] <= 0.005 and growth <= 2.0
            ok_all &= ok
            worst = max(worst, meds[-1])
            v = r.verdict(f"query:{name}", ok, f"{name}: {fmt_s(meds[-1])} at 100k, {growth:.2f}× the 1k time.")
            rows.append([name, *[cell(q[n][name], "iqr") for n in sizes], f"{growth:.2f}×", v])
        rows.append(["peak RSS of the query process (all three stores open)", mib(q["peak_rss"]),
                     *["" for _ in sizes[1:]], "", ""])
        r.table(["query", *[f"{int(n):,} runs" for n in sizes], "100k / 1k", "SPEC §11 (≤ 5 ms, ≤ 2×)"], rows)
        summary.append(["client queries at 100k runs (slowest of 8)", fmt_s(worst), "", "",
                        f"≤ 5 ms and ≤ 2× the 1k time: {'met' if ok_all else '**MISSED**'}"])

    # ---- search
    if "search" in data:
        s = data["search"]
        rs, ml = s["runstore"], s.get("mlflow")
        r.add("## Listing and filtering 10,000 runs by a parameter value", "",
              "Same runs on both sides: three parameters per run (`x` takes 100 values, so a filter "
              "matches 100 runs). runstore: written through the store API (a `_parameters` task per "
              "run, as the runtime records parameters) in one transaction; queried through the "
              "documented SQL views and the client. MLflow: `sqlite:///` tracking store created by "
              "MLflow, one run logged through `MlflowClient`, the rest bulk-copied from its rows in "
              "one transaction (logging 10k runs through the API takes minutes); only the queries "
              "are timed.", "")
        ml_filter = med(ml["filter_client"]) if ml else None
        rows = [
            ["filter `x = 'v042'`: `params_view` (`name`, `value`) ⋈ `parameters_view`",
             cell(rs.get("filter_params_view")), "`MlflowClient.search_runs(filter_string=\"params.x = 'v042'\")`",
             cell(ml["filter_client"]) if ml else "not measured",
             ratio_text(ml_filter, med(rs.get("filter_params_view")))],
            ["filter `x = 'v042'`: `list(Flow('SearchFlow').runs(where={'x': 'v042'}))` (client `Run` objects)",
             cell(rs.get("filter_client")), "same", cell(ml["filter_client"]) if ml else "—",
             ratio_text(ml_filter, med(rs.get("filter_client")))],
            ["filter `x = 'v042'`: `parameters_view` + `json_extract`", cell(rs["filter_view"]),
             "`MlflowClient.search_runs(filter_string=\"params.x = 'v042'\")`",
             cell(ml["filter_client"]) if ml else "not measured",
             ratio_text(med(ml["filter_client"]), med(rs["filter_view"])) if ml else "—"],
            ["filter `x = 'v042'`: `artifacts_view` (step `_parameters`, name, value)",
             cell(rs["filter_artifacts"]), "same", cell(ml["filter_client"]) if ml else "—",
             ratio_text(med(ml["filter_client"]), med(rs["filter_artifacts"])) if ml else "—"],
            ["same filter, as a DataFrame", "—", "`mlflow.search_runs(...)` (pandas)",
             cell(ml["filter_dataframe"]) if ml else "—", ""],
            ["list all 10k runs with status, tags, parameters (`runs_view` ⋈ `parameters_view`)",
             cell(rs["list_sql"]), "`MlflowClient.search_runs(max_results=10000)`",
             cell(ml["list_client"]) if ml else "not measured",
             ratio_text(med(ml["list_client"]), med(rs["list_sql"])) if ml else "—"],
            ["list all 10k runs: `list(Flow('SearchFlow'))` (client `Run` objects)", cell(rs["list_client"]),
             "same", cell(ml["list_client"]) if ml else "—",
             ratio_text(med(ml["list_client"]), med(rs["list_client"])) if ml else "—"],
            ["peak RSS of the process (populate + queries)", mib(rs["peak_rss"]), "",
             mib(ml["peak_rss"]) if ml else "—", ""],
            ["file size", kib(rs["bytes"]), "", kib(ml["bytes"]) if ml else "—",
             ratio_text(ml["bytes"], rs["bytes"]) if ml else "—"],
        ]
        r.table(["runstore query", "runstore", f"MLflow {ml_v or ''} query", "MLflow", "MLflow / runstore"], rows)
        if rs.get("tables"):
            top = sorted(rs["tables"].items(), key=lambda kv: -kv[1]["bytes"])[:8]
            r.add("Where runstore's bytes go (`dbstat`, the largest tables and indexes; "
                  f"after `VACUUM` the file is {kib(rs.get('bytes_vacuumed', rs['bytes']))}): "
                  + ", ".join(f"`{name}` {kib(t['bytes'])}" for name, t in top) + ".", "")
        if ml:
            client_form = med(rs.get("filter_client"))
            fast = client_form is not None and ml_filter is not None and ml_filter >= 3 * client_form
            v = r.verdict("search:filter", fast if client_form is not None else None,
                          f"filter 10k runs by a parameter: `Flow.runs(where=...)` {fmt_s(client_form or 0)}, MLflow "
                          f"`search_runs` {fmt_s(ml_filter or 0)} (target ≥ 3× faster).")
            summary.append(["filter 10k runs by a parameter (vs MLflow `search_runs`)",
                            f"{fmt_s(client_form or 0)} (`Flow.runs(where=)`), "
                            f"{fmt_s(med(rs.get('filter_params_view')) or 0)} (`params_view`)", fmt_s(ml_filter or 0),
                            ratio_text(ml_filter, client_form), f"≥ 3× faster (issue #18): {v}"])
            small = rs["bytes"] <= ml["bytes"]
            v = r.verdict("search:size", small, f"file of 10k runs × 3 parameters: {kib(rs['bytes'])}, MLflow "
                          f"{kib(ml['bytes'])} (target ≤ 1×).")
            summary.append(["file size, 10k runs × 3 parameters", kib(rs["bytes"]), kib(ml["bytes"]),
                            ratio_text(ml["bytes"], rs["bytes"]), f"≤ 1× MLflow's (issue #18): {v}"])
            summary.append(["list 10k runs with parameters", fmt_s(med(rs["list_sql"])), fmt_s(med(ml["list_client"])),
                            ratio_text(med(ml["list_client"]), med(rs["list_sql"])), "no target"])
        else:
            r.add(f"MLflow {peers['problems'].get('mlflow')}: its columns are empty.", "")

    # ---- sql_stream
    if "sql_stream" in data:
        ss = data["sql_stream"]
        small, big = sorted(ss, key=int)
        a, b = ss[small], ss[big]
        r.add(f"## `runstore sql` of {int(big):,} rows, streamed", "",
              f"`bench_sql_stream.py --json-out`: narrow rows (an int and a 20-digit text) from a recursive "
              f"CTE, each format a fresh `python -m runstore sql` under a {a['limit_bytes'] >> 20} MiB "
              "address-space limit, output drained by the parent; `| head -2` through a shell pipe.", "")
        rows, flat = [], True
        for fmt in ("table", "csv", "jsonl", "json"):
            ok = a[fmt]["exit"] == 0 and b[fmt]["exit"] == 0 and b[fmt]["peak_rss"] <= 1.25 * a[fmt]["peak_rss"]
            flat &= ok
            rows.append([fmt, f"{fmt_s(b[fmt]['wall_s'])}", fmt_s(b[fmt]["first_byte_s"]),
                         f"{mib(a[fmt]['peak_rss'])} → {mib(b[fmt]['peak_rss'])}", "flat" if ok else "**grows**"])
        r.table(["format", f"wall, {int(big):,} rows", "first row", f"peak RSS {int(small):,} → {int(big):,} rows",
                 "memory"], rows)
        v = r.verdict("sql:flat", flat, f"`runstore sql` peak RSS from {int(small):,} to {int(big):,} rows "
                      "(target: flat, ≤ 1.25×, and within the address-space limit).")
        first = max(b[fmt]["first_byte_s"] for fmt in ("table", "csv", "jsonl", "json"))
        summary.append([f"`runstore sql` of {int(big):,} rows: peak RSS, first row",
                        f"{mib(max(b[f]['peak_rss'] for f in ('table', 'csv', 'jsonl', 'json')))}, {fmt_s(first)}",
                        "", "", f"flat memory (issue #18): {v}"])
        head_ok = b["head2_lines"] == 2 and b["head2_s"] <= 1.0
        v = r.verdict("sql:head", head_ok, f"`runstore sql` of {int(big):,} rows piped to `head -2`: {fmt_s(b['head2_s'])}"
                      " (target ≤ 1 s: the pipe closes, the query stops).")
        summary.append([f"`runstore sql` of {int(big):,} rows piped to `head -2`", fmt_s(b["head2_s"]), "", "",
                        f"≤ 1 s (issue #18): {v}"])

    notes = []
    if "artifacts" in data and data["artifacts"].get("metaflow"):
        art = data["artifacts"]
        if any(med(art["runstore"]["dict"][op]) > med(art["metaflow"]["dict"][op]) for op in ("save", "load")):
            notes.append("1,000,000-key dict: runstore is slower than Metaflow here. " + DICT_NOTE)
    if "search" in data and data["search"].get("mlflow"):
        s_ = data["search"]
        if med(s_["runstore"]["filter_view"]) > med(s_["mlflow"]["filter_client"]):
            notes.append("Filtering by a parameter through `parameters_view` is slower than MLflow. " + SEARCH_NOTE)

    # ---- summary + misses at the top
    head = ["## Summary", "", "| case | runstore | peer | peer / runstore | SPEC §11 |", "|---|---|---|---|---|"]
    head += ["| " + " | ".join(row) + " |" for row in summary]
    head.append("")
    head.append("Peer column: Metaflow (local mode) for flows and artifacts, MLflow (`sqlite:///`) for "
                "search. Details and spreads below.")
    head.append("")
    if r.missed:
        head += ["## Missed SPEC §11 targets", ""]
        head += [f"- {r.missed_text[k]}" for k in r.missed]
        head.append("")
    else:
        head += ["All measured SPEC §11 targets are met in this run.", ""]
    if r.unmeasured:
        head += [f"Not measured (a peer is missing, see Machine): {', '.join(r.unmeasured)}.", ""]
    if notes:
        head += ["## Slower than a peer (no SPEC target)", ""] + [f"- {n}" for n in notes] + [""]
    body = r.lines
    split = body.index("## Machine")
    return "\n".join(body[:split] + head + body[split:]) + "\n"


# ----------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", default=os.environ.get("RUNSTORE_BENCH_PEERS_PYTHON"),
                        help="Python of a venv with metaflow and mlflow installed (missing peers are skipped)")
    parser.add_argument("--quick", action="store_true", help="tiny repeat counts: a dry run")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--json-out", default=str(HERE / "results" / "run_all.json"))
    parser.add_argument("--no-foreach", action="store_true",
                        help="flows: skip the 100-task foreach cases (Metaflow's take minutes a run on a loaded machine)")
    parser.add_argument("--busy-note", default="", help="a sentence on machine load printed in RESULTS.md")
    parser.add_argument("--from-json", help="only rewrite the report from a run_all.json written earlier")
    args = parser.parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        args.quick = data.get("quick", False)
        if args.busy_note:
            data["busy_note"] = args.busy_note
        Path(args.out).write_text(write_report(data, args))
        log(f"rewrote {args.out} from {args.from_json}")
        return 0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")

    if args.peers_python:
        args.peers_python = os.path.abspath(args.peers_python)  # not resolved: a venv's python is a symlink
    peers = Peers(args.peers_python)
    for name in ("metaflow", "mlflow"):
        log(f"{name} {peers.versions[name]}" if peers.has(name) else f"SKIPPED: {peers.missing(name)}")
    started = time.time()
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    data: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/run_all.py", *(a for a in sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": machine(), "load_start": load_start, "quick": args.quick,
        "peers": {"python": args.peers_python, "versions": peers.versions, "problems": peers.problems},
    }
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        home.mkdir()
        env = base_env(home)
        if "startup" in only:
            data["startup"] = bench_startup(peers, args.quick, env, tmp)
        if "flows" in only:
            data["flows"] = bench_flows(peers, args.quick, env, tmp, foreach=not args.no_foreach)
        if "artifacts" in only:
            data["artifacts"] = bench_artifacts(peers, args.quick, env)
        if "dedup" in only:
            data["dedup"] = bench_dedup(peers, env, tmp)
        if "queries" in only:
            data["queries"] = bench_queries(args.quick, env)
        if "search" in only:
            data["search"] = bench_search(peers, args.quick, env)
        if "sql_stream" in only:
            data["sql_stream"] = bench_sql_stream(args.quick, env)
        if "width" in only:
            data["width"] = bench_width(env)
    data["took_s"] = time.time() - started
    data["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.busy_note:
        data["busy_note"] = args.busy_note
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(data, indent=1) + "\n")
    text = write_report(data, args)
    Path(args.out).write_text(text)
    log(f"wrote {args.out} and {args.json_out} in {data['took_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
