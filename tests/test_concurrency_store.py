"""Several real processes on one store file: run numbers and file creation never race."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from runstore import Store

# Every worker imports runstore, says "ready", then waits for the go file so that all of
# them hit the store at the same moment.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from runstore import Store

    path, go, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    store = Store(path)
    numbers = [store.create_run("RaceFlow", user="w%d" % os.getpid()).run_number for _ in range(count)]
    print(json.dumps({"uuid": store.uuid, "numbers": numbers}), flush=True)
    """
)


def race(tmp_path: Path, db: Path, workers: int, count: int) -> list[dict]:
    go = tmp_path / f"go-{db.name}"
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(go), "runs", str(count)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err  # no "database is locked", no traceback
        results.append(json.loads(out))
    return results


def test_four_processes_allocate_200_distinct_increasing_run_numbers(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    Store(db).close()
    results = race(tmp_path, db, workers=4, count=50)
    every = [n for result in results for n in result["numbers"]]
    assert sorted(every) == list(range(1, 201))  # 200 distinct, none lost, none skipped
    for result in results:
        assert result["numbers"] == sorted(result["numbers"])  # increasing per process
        assert len(result["numbers"]) == 50
    store = Store(db)
    with store.read() as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT uuid) FROM runs").fetchone() == (200, 200)
        assert conn.execute("SELECT last_run_number FROM flows WHERE name = 'RaceFlow'").fetchone()[0] == 200
    assert store.integrity_problems() == []


def test_processes_creating_a_new_file_at_once_do_not_race(tmp_path: Path) -> None:
    for attempt in range(3):
        db = tmp_path / f"fresh-{attempt}.db"
        results = race(tmp_path, db, workers=4, count=1)
        assert len({result["uuid"] for result in results}) == 1  # one store, created once
        assert sorted(result["numbers"][0] for result in results) == [1, 2, 3, 4]
        assert Store(db).integrity_problems() == []
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")]
        assert leftovers == []
