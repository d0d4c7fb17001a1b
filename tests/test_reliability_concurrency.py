"""Many real processes on one store file: flow runs, readers and taggers at the same time.

tests/test_concurrency_store.py races ``Store.create_run`` itself; here the racers are
whole ``python flow.py run`` commands (scheduler + forked workers each), plus a reader
walking the client and editing tags while a foreach writes. Afterwards: no run lost,
run numbers unique and gapless, no "database is locked" in any output, every tag edit
kept, and ``PRAGMA integrity_check`` / ``foreign_key_check`` clean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runstore import Flow, Run, Store, namespace, use_store

pytestmark = pytest.mark.stress

FLOW = Path(__file__).parent / "flows" / "busy_flow.py"


def spawn(*argv: str) -> subprocess.Popen[str]:
    """``python argv…`` with its output captured."""
    return subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def launch(db: Path, *args: str, flow: Path = FLOW) -> subprocess.Popen[str]:
    """``python flow.py --db DB --quiet run args…``."""
    return spawn(str(flow), "--db", str(db), "--quiet", "run", *args)


def python(script: str, *args: str) -> subprocess.Popen[str]:
    """``python -c script args…``."""
    return spawn("-c", script, *args)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[str]:
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        outputs.append(out + err)
        assert proc.returncode == 0, out + err
    for text in outputs:
        assert "locked" not in text.lower() and "Traceback" not in text, text
    return outputs


def runs_table(db: Path) -> list[tuple[int, str, int, int]]:
    """(run_number, status, tasks, succeeded tasks) of every BusyFlow run."""
    store = Store(db)
    try:
        with store.read() as conn:
            return conn.execute(
                "SELECT r.run_number, r.status, count(t.task_id), sum(t.status = 'succeeded')"
                " FROM runs r JOIN flows f ON f.flow_id = r.flow_id LEFT JOIN tasks t ON t.run_id = r.run_id"
                " WHERE f.name = 'BusyFlow' GROUP BY r.run_id ORDER BY r.run_number"
            ).fetchall()
    finally:
        store.close()


def assert_sound(db: Path) -> None:
    store = Store(db)
    assert store.integrity_problems() == []
    store.close()


def test_six_processes_run_the_same_flow_at_once(tmp_path: Path) -> None:
    """Two waves of 6 concurrent `run`s (2 workers each); the first wave also creates the file."""
    db = tmp_path / "runstore.db"
    waves, per_wave, n = 2, 6, 3
    for _ in range(waves):
        finish([launch(db, "--max-workers", "2", "--n", str(n)) for _ in range(per_wave)])
    table = runs_table(db)
    # every run there, numbered 1..12 without gaps or duplicates, each complete
    assert [row[0] for row in table] == list(range(1, waves * per_wave + 1))
    tasks_per_run = 1 + 1 + n + 1 + 1  # _parameters, start, n x work, join, end
    assert all(row[1:] == ("succeeded", tasks_per_run, tasks_per_run) for row in table), table
    store = Store(db)
    with store.read() as conn:
        assert conn.execute("SELECT last_run_number FROM flows WHERE name = 'BusyFlow'").fetchone()[0] == 12
        assert conn.execute("SELECT count(DISTINCT uuid) FROM runs").fetchone()[0] == 12
    store.close()
    assert_sound(db)


# A reader/tagger: walks every run through the client (loading every artifact it
# lists) and edits tags, until the stop file appears. It prints what the tags of each
# run it touched must be, and the number of artifacts it loaded.
READER = textwrap.dedent(
    """
    import json, os, sys
    from runstore import Flow, Store, namespace, use_store

    db, stop, me = sys.argv[1], sys.argv[2], sys.argv[3]
    store = Store(db)
    expected = {}   # run number -> set of this process's tags that must be there at the end
    loaded = edits = rounds = 0
    with use_store(store):
        namespace(None)
        while True:
            done = os.path.exists(stop)
            try:
                runs = list(Flow("BusyFlow"))
            except KeyError:  # the flow's first run is not created yet
                runs = []
            for run in runs:
                for step in run:
                    for task in step:
                        for artifact in task:
                            artifact.data
                            loaded += 1
                number = run.id
                mine = expected.setdefault(number, set())
                tag = "%s-%d" % (me, rounds % 3)
                if tag in mine:
                    run.remove_tag(tag)
                    mine.discard(tag)
                else:
                    run.add_tag(tag)
                    mine.add(tag)
                edits += 1
            rounds += 1
            if done:
                break
    print(json.dumps({"expected": {k: sorted(v) for k, v in expected.items()}, "loaded": loaded,
                      "edits": edits, "rounds": rounds}))
    """
)


def test_foreach_writers_while_other_processes_read_and_tag(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    stop = tmp_path / "stop"
    first = launch(db, "--max-workers", "3", "--n", "12")
    finish([first])  # the store and the flow exist before the readers start
    readers = [python(READER, str(db), str(stop), f"r{i}") for i in range(2)]
    try:
        for _ in range(2):  # two rounds of two concurrent foreach runs, 3 workers each
            finish([launch(db, "--max-workers", "3", "--n", "12") for _ in range(2)])
    finally:
        stop.touch()
    reports = []
    for proc in readers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in (out + err).lower()
        reports.append(json.loads(out))
    table = runs_table(db)
    assert [row[0] for row in table] == [1, 2, 3, 4, 5]
    assert all(row[1:] == ("succeeded", 16, 16) for row in table), table
    assert all(report["edits"] > 0 and report["loaded"] > 0 for report in reports)
    # no tag edit lost: each run carries exactly what the readers' last edits left
    store = Store(db)
    with use_store(store):
        namespace(None)
        for number in range(1, 6):
            run = Flow("BusyFlow")[str(number)]
            want = set()
            for report in reports:
                want |= set(report["expected"].get(str(number), []))
            assert set(run.user_tags) == want, (number, run.user_tags, want)
    assert store.integrity_problems() == []
    store.close()


def test_tag_edits_from_four_processes_on_one_run_are_all_kept(tmp_path: Path) -> None:
    """Read-modify-write of tags under BEGIN IMMEDIATE: 4 processes x 12 adds and 2 removes, none lost."""
    db = tmp_path / "runstore.db"
    finish([launch(db, "--max-workers", "1", "--n", "1")])
    go = tmp_path / "go"
    script = textwrap.dedent(
        """
        import os, sys, time
        from runstore import Run, Store, use_store
        db, go, me = sys.argv[1], sys.argv[2], sys.argv[3]
        store = Store(db)
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.001)
        with use_store(store):
            run = Run("BusyFlow/1")
            for i in range(12):
                run.add_tag("%s-%d" % (me, i))
                if i in (4, 9):
                    run.remove_tag("%s-%d" % (me, i - 1))
        """
    )
    procs = [python(script, str(db), str(go), f"p{i}") for i in range(4)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "locked" not in err.lower(), err
    want = {f"p{p}-{i}" for p in range(4) for i in range(12) if i not in (3, 8)}
    store = Store(db)
    with use_store(store):
        assert set(Run("BusyFlow/1").user_tags) == want  # 40 tags: the 50-tag limit is not reached
    assert store.integrity_problems() == []
    store.close()


# ------------------------------------------------------------------ gc and backup while runs write


def test_gc_keeps_a_reused_value_that_a_live_run_holds_only_by_reference(tmp_path: Path) -> None:
    """A foreach split stores its items and passes references; an identical, unreferenced,
    old blob (an earlier run's item) must not be collected while the live run holds it.

    Found by test_gc_and_backup_loop_while_runs_write: gc deleted the blob of a foreach item
    (the JSON ``2``) under a running foreach, whose task then failed with NotFound.
    """
    store = Store(tmp_path / "runstore.db")
    earlier = store.put_values([2])[0]
    with store.write() as conn:  # written long ago, referenced by nothing
        conn.execute("UPDATE blobs SET created_at = 0 WHERE blob_key = ?", (earlier.blob_key,))
    store.create_run("SplitFlow", user="tester")  # live: its owner (this process) is alive
    item = store.put_values([2])[0]  # the live run's foreach split: a reference, no artifact row yet
    assert item.blob_key == earlier.blob_key
    store.gc()
    assert store.load_value(item.blob_key, item.encoding) == 2
    store.close()


def test_gc_between_encoding_and_commit_of_an_identical_value(tmp_path: Path) -> None:
    """A task encodes a value whose chunk is already stored (an old, unreferenced blob); gc runs
    before the task commits. The commit must still succeed and the value load."""
    store = Store(tmp_path / "runstore.db")
    old = store.put_value({"model": "small", "weights": list(range(100))})
    with store.write() as conn:  # e.g. left by a deleted run: referenced by nothing, written long ago
        conn.execute("UPDATE blobs SET created_at = 0 WHERE blob_key = ?", (old.blob_key,))
        conn.execute("UPDATE blob_chunks SET touched_at = 0")
    run = store.create_run("GcFlow", user="tester")
    task = store.create_task(run.run_id, "start")
    store.start_attempt(task, 0)
    prepared = store.prepare_value({"model": "small", "weights": list(range(100))})  # the step's artifact
    assert prepared.stored.blob_key == old.blob_key
    gc = store.gc()  # another process's `runstore gc`, between encoding and commit
    assert gc.blobs == 1 and gc.chunks == 1  # the old copy was garbage at that moment
    store.finish_attempt(task, 0, "succeeded", artifacts={"model": prepared})
    ref = store.task_artifact_refs(task)["model"]
    assert store.load_value(ref.blob_key, ref.encoding)["weights"][-1] == 99
    assert store.doctor().problems == []
    store.close()


GC_LOOP = textwrap.dedent(
    """
    import json, os, sys
    from runstore import Store

    db, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
    store = Store(db)
    report = {"gcs": 0, "freed": 0, "backups": 0, "problems": []}
    while True:  # at least one round, however fast the runs are
        stopping = os.path.exists(stop)
        gc = store.gc()
        report["gcs"] += 1
        report["freed"] += gc.blobs + gc.chunks
        copy = os.path.join(out, "backup-%d.db" % report["backups"])
        store.backup(copy)
        report["backups"] += 1
        backup = Store(copy)
        report["problems"] += backup.integrity_problems()
        backup.close()
        os.unlink(copy)
        if stopping:
            break
    print(json.dumps(report))
    """
)


def test_gc_and_backup_loop_while_runs_write(tmp_path: Path) -> None:
    """`gc` and `backup` in a loop while foreach runs and a 17 MiB artifact are written.

    Every run succeeds (gc never takes a value a live run still needs), every backup
    is sound, and afterwards every stored value loads.
    """
    db = tmp_path / "runstore.db"
    crash = Path(__file__).parent / "flows" / "crash_flow.py"

    def crash_run() -> subprocess.Popen[str]:
        return launch(db, "--size_mib", "17", "--max-workers", "2", flow=crash)

    finish([crash_run(), launch(db, "--n", "6", "--max-workers", "2")])  # leaves unreferenced foreach items
    stop = tmp_path / "stop"
    looper = python(GC_LOOP, str(db), str(stop), str(tmp_path))
    try:
        for _ in range(2):
            finish([crash_run(), launch(db, "--n", "6", "--max-workers", "2")])
    finally:
        stop.touch()
        out, err = looper.communicate(timeout=120)
    assert looper.returncode == 0, err
    report = json.loads(out)
    assert report["gcs"] >= 1 and report["problems"] == []
    store = Store(db)
    with store.read() as conn:
        statuses = conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
        keys = conn.execute("SELECT DISTINCT blob_key, encoding FROM artifacts").fetchall()
    assert statuses == [("succeeded", 6)]
    for key, encoding in keys:
        store.load_value(key, encoding)
    assert store.doctor().problems == []
    store.close()


REUSE_FLOW = '''
import random

from runstore import FlowSpec, Parameter, retry, step


class ReuseFlow(FlowSpec):
    seed = Parameter("seed", default=0)

    @retry(times=2)
    @step
    def start(self):
        self.blob = random.Random(self.seed).randbytes(%d)  # equal to an old, deleted run's value
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ReuseFlow()
'''
#: Bigger than one chunk kept in memory by a task (store/_blobs.py: _BLOB_IO_MIN): re-used by reference.
REUSED_SIZE = (1 << 20) + 4096

GC_FOREVER = textwrap.dedent(
    """
    import json, os, sys, time
    from runstore import Store

    store, stop = Store(sys.argv[1]), sys.argv[2]
    rounds = freed = 0
    while not os.path.exists(stop):
        report = store.gc()
        rounds, freed = rounds + 1, freed + report.blobs
        time.sleep(0.02)
    print(json.dumps({"rounds": rounds, "freed": freed}))
    """
)


def test_gc_loop_racing_runs_that_reuse_a_collected_value(tmp_path: Path) -> None:
    """Issue #13: `gc` in a loop while 20 runs each store a value equal to an old run's.

    Each run's task finds the value's chunk already stored (dedup) and pauses between
    encoding and commit (``task_persist``); right then the old run holding that value is
    deleted, so the gc loop's next round sees it unreferenced and old. The chunk is
    reserved for the live task: every run succeeds (or, had gc still taken it, fails
    the attempt cleanly and @retry saves it again) — never a run aborted, never a task
    left ``running``, and every stored value loads afterwards.
    """
    import random
    import time

    db, stop = tmp_path / "runstore.db", tmp_path / "stop"
    script = tmp_path / "reuse_flow.py"
    script.write_text(REUSE_FLOW % REUSED_SIZE)
    store = Store(db)
    for seed in range(20):  # the old runs, each holding the value run `seed` will store again
        old = store.create_run("OldFlow", user="tester")
        task = store.create_task(old.run_id, "start")
        store.start_attempt(task, 0)
        store.finish_attempt(task, 0, "succeeded",
                             artifacts={"blob": store.prepare_value(random.Random(seed).randbytes(REUSED_SIZE))})
        store.finish_run(old.run_id, "succeeded")
    looper = python(GC_FOREVER, str(db), str(stop))
    env = {**__import__("os").environ, "RUNSTORE_TEST_PAUSE_AT": "task_persist@start:0.6"}
    started = time.monotonic()
    try:
        for batch in range(4):
            procs = {}
            for seed in range(batch * 5, batch * 5 + 5):
                err = open(tmp_path / f"err-{seed}", "w+")
                mode = ["--max-workers", "1" if seed % 2 else "2"]  # inline and forked workers
                procs[seed] = (subprocess.Popen(
                    [sys.executable, str(script), "--db", str(db), "--quiet", "run", "--seed", str(seed), *mode],
                    stdout=subprocess.DEVNULL, stderr=err, env=env, text=True), err)
            paused: set[int] = set()
            while len(paused) < len(procs):  # delete each old run once its twin has encoded the value
                for seed, (proc, err) in procs.items():
                    if seed not in paused and "runstore-test-pause" in (tmp_path / f"err-{seed}").read_text():
                        store.delete_runs([f"OldFlow/{seed + 1}"])
                        paused.add(seed)
                    assert proc.poll() is None or seed in paused, (tmp_path / f"err-{seed}").read_text()
                time.sleep(0.01)
            for seed, (proc, err) in procs.items():
                assert proc.wait(60) == 0, (tmp_path / f"err-{seed}").read_text()
                err.close()
                text = (tmp_path / f"err-{seed}").read_text()
                assert "Traceback" not in text and "locked" not in text.lower(), text
    finally:
        stop.touch()
        out, err_text = looper.communicate(timeout=60)
    assert looper.returncode == 0, err_text
    assert json.loads(out)["rounds"] >= 4
    assert time.monotonic() - started < 60
    with store.read() as conn:
        runs = conn.execute("SELECT r.run_number, r.status FROM runs r JOIN flows f USING (flow_id)"
                            " WHERE f.name = 'ReuseFlow' ORDER BY 1").fetchall()
        stuck = conn.execute("SELECT count(*) FROM tasks WHERE status IN ('running', 'pending')").fetchone()[0]
        attempts = conn.execute("SELECT status, exception_type FROM attempts WHERE status <> 'succeeded'").fetchall()
        keys = conn.execute("SELECT DISTINCT blob_key, encoding FROM artifacts").fetchall()
    assert runs == [(n, "succeeded") for n in range(1, 21)]
    assert stuck == 0
    assert all(kind == "runstore.errors.ValueVanished" for _, kind in attempts), attempts  # retried, never stuck
    for key, encoding in keys:
        store.load_value(key, encoding)
    assert store.doctor().problems == []
    store.close()


def test_a_reused_value_gc_took_anyway_fails_the_attempt_cleanly_and_retry_saves_it(tmp_path: Path) -> None:
    """When gc does not see the run as live (here: its row edited to look crashed), nothing
    keeps the reserved chunk. The commit then fails the attempt — exception recorded,
    output kept — @retry saves the value again, and the scheduler goes on."""
    import os
    import random
    import time

    db, script = tmp_path / "runstore.db", tmp_path / "reuse_flow.py"
    script.write_text(REUSE_FLOW % REUSED_SIZE)
    store = Store(db)
    old = store.create_run("OldFlow", user="tester")
    task = store.create_task(old.run_id, "start")
    store.start_attempt(task, 0)
    store.finish_attempt(task, 0, "succeeded",
                         artifacts={"blob": store.prepare_value(random.Random(7).randbytes(REUSED_SIZE))})
    store.finish_run(old.run_id, "succeeded")
    err = tmp_path / "err"
    with open(err, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(script), "--db", str(db), "run", "--seed", "7", "--max-workers",
                                 "1"], stdout=subprocess.DEVNULL, stderr=fh, text=True,
                                env={**os.environ, "RUNSTORE_TEST_PAUSE_AT": "task_persist@start:1.5"})
        deadline = time.monotonic() + 60
        while "runstore-test-pause" not in err.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.01)
        store.delete_runs(["OldFlow/1"])
        with store.write() as conn:  # the run looks crashed to gc: no live run protects anything
            conn.execute("UPDATE runs SET heartbeat_at = 0, owner_host = 'elsewhere'")
        assert store.gc().chunks == 1  # the chunk the paused task re-uses
        assert proc.wait(60) == 0, err.read_text()
    run = Run("ReuseFlow/1", store=store)
    assert run.successful
    with store.read() as conn:
        attempts = conn.execute(
            "SELECT a.attempt, a.status, a.exception_type, a.stderr FROM attempts a JOIN tasks t USING (task_id)"
            " JOIN steps s USING (step_id) WHERE s.name = 'start' AND t.run_id ="
            " (SELECT run_id FROM runs JOIN flows USING (flow_id) WHERE name = 'ReuseFlow') ORDER BY 1").fetchall()
    assert [row[:3] for row in attempts] == [(0, "failed", "runstore.errors.ValueVanished"), (1, "succeeded", None)]
    assert "ValueVanished" in attempts[0][3]  # its traceback is in the attempt's stderr, as any failure's
    assert len(run["start"].task.data.blob) == REUSED_SIZE
    assert store.doctor().problems == []
    store.close()
