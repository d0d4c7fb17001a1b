"""The Dask executor (SPEC §16) against a real LocalCluster: 2 worker processes, shared by the module.

Every run here goes through a real ``dask.distributed`` cluster; the store file is only
ever written by the scheduler (this process, or the ``python flow.py run`` child).
What each test pins:

- linear, branch, foreach 200 wide, nested foreach, retry/catch: the same rows as a
  local run of the same flow, artifact for artifact (blob keys), log for log, metadata;
- a 100 MiB value read by 10 foreach tasks is scattered once and fetched by each
  worker at most once (Dask's own transfer logs);
- a worker killed mid-task: the attempt fails as ``runstore.WorkerDied``, ``@retry``
  runs it again, the run succeeds;
- the scheduler killed -9: the run is ``crashed``, the cluster drops its tasks, and it
  resumes on either executor;
- an unreachable address or a worker with another runstore version: one line, no run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from runstore import ExecutorError, Run, Runner, Store, Task
from runstore.runtime import load_flow
from runstore.runtime.environment import flow_file_of
from runstore.runtime.scheduler import Scheduler

# Imported plainly, never importorskip: the test extra installs dask[distributed], and CI
# must fail rather than skip these tests when it is missing.
import distributed  # noqa: E402

FLOWS = Path(__file__).parent / "flows"
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One LocalCluster for the module: 2 worker processes, a killed worker's task is not re-run by Dask."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                           dashboard_address=":0", silence_logs=50)
    client = distributed.Client(cluster, set_as_default=False)
    cluster.test_client = client  # type: ignore[attr-defined]
    yield cluster
    client.close()
    cluster.close()


@pytest.fixture
def address(cluster: Any) -> str:
    cluster.test_client.wait_for_workers(2, timeout=30)
    return cluster.scheduler_address


def snapshot(store: Store, pathspec: str) -> list[tuple[Any, ...]]:
    """Everything a run recorded per task, in a comparable form (task ids and times left out)."""
    flow, number = pathspec.split("/")
    run_id = store.run_ref(flow, int(number))[0]
    rows = []
    with store.read() as conn:
        tasks = conn.execute(
            "SELECT t.task_id, s.name, t.status, t.attempt, t.foreach_path FROM tasks t"
            " JOIN steps s ON s.step_id = t.step_id WHERE t.run_id = ? ORDER BY s.name, t.foreach_path",
            (run_id,)).fetchall()
        for task_id, step, status, attempt, path in tasks:
            attempts = conn.execute(
                "SELECT attempt, status, exception_type, exception_message, traceback, stdout, stderr"
                " FROM attempts WHERE task_id = ? ORDER BY attempt", (task_id,)).fetchall()
            artifacts = conn.execute(
                "SELECT v.attempt, v.name, a.blob_key, a.encoding, a.type, a.size, b.json_value FROM task_values v"
                " JOIN artifacts a ON a.artifact_id = v.artifact_id JOIN blobs b ON b.blob_key = a.blob_key"
                " WHERE v.task_id = ? ORDER BY v.attempt, v.name", (task_id,)).fetchall()
            metadata = conn.execute(
                "SELECT attempt, name, value FROM metadata WHERE task_id = ? ORDER BY attempt, name",
                (task_id,)).fetchall()
            rows.append((step, status, attempt, path, attempts, artifacts, metadata))
    return rows


def run_both(flow_path: Path, tmp_path: Path, address: str, **params: Any) -> tuple[Any, Any, Store]:
    flow = load_flow(flow_path)
    store = Store(tmp_path / "runstore.db")
    local = Runner(flow, store=store).run(max_workers=2, max_num_splits=500, raise_on_failure=False, **params)
    remote = Runner(flow, store=store, executor="dask", dask_address=address).run(
        max_num_splits=500, raise_on_failure=False, **params)
    assert "executor:dask" in remote.system_tags and "executor:dask" not in local.system_tags
    return local, remote, store


@pytest.mark.parametrize("flow_path", [
    EXAMPLES / "hello_flow.py",  # linear
    EXAMPLES / "branch_flow.py",  # static branch and join
    FLOWS / "nested_flow.py",  # nested foreach, merge_artifacts
    FLOWS / "retry_catch_flow.py",  # an exception, @retry, @catch
    FLOWS / "failing_flow.py",  # a step that fails: the run fails
], ids=lambda p: p.stem)
def test_same_rows_as_a_local_run(flow_path: Path, tmp_path: Path, address: str) -> None:
    local, remote, store = run_both(flow_path, tmp_path, address)
    assert remote.successful == local.successful
    assert snapshot(store, remote.pathspec) == snapshot(store, local.pathspec)


def test_foreach_200_wide(tmp_path: Path, address: str) -> None:
    """200 children on the cluster; start and end pinned to this machine (@executor("local"))."""
    local, remote, store = run_both(FLOWS / "wide_flow.py", tmp_path, address, n=200)
    assert remote.successful and remote.data.total == sum(i * i for i in range(200))
    assert len(list(remote["square"])) == 200
    assert snapshot(store, remote.pathspec) == snapshot(store, local.pathspec)


PINNED = """
import os
from runstore import FlowSpec, executor, step

class PinnedFlow(FlowSpec):
    @executor("local")
    @step
    def start(self):
        self.start_pid = os.getpid()
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.pids = sorted({i.pid for i in inputs})
        self.merge_artifacts(inputs, include=["start_pid"])
        self.next(self.end)

    @executor("local")
    @step
    def end(self):
        self.end_pid = os.getpid()

if __name__ == "__main__":
    PinnedFlow()
"""


def test_steps_pinned_local_run_here_the_others_on_workers(tmp_path: Path, cluster: Any, address: str) -> None:
    (tmp_path / "pinned_flow.py").write_text(PINNED)
    store = Store(tmp_path / "runstore.db")
    run = Runner(tmp_path / "pinned_flow.py", store=store, executor="dask", dask_address=address).run()
    workers = set(cluster.test_client.run(os.getpid).values())
    assert run.data.start_pid == run.data.end_pid == os.getpid()
    assert set(run["join"].task.data.pids) <= workers


def test_a_step_pinned_through_a_config_runs_here(tmp_path: Path, cluster: Any, address: str) -> None:
    """@executor(config_expr("cfg.where")): the value the run resolves is the pinning that runs."""
    source = PINNED.replace("import FlowSpec,", "import Config, FlowSpec, config_expr,") \
        .replace("class PinnedFlow(FlowSpec):\n", "class PinnedFlow(FlowSpec):\n"
                 "    cfg = Config(\"cfg\", default_value={\"where\": \"local\"})\n\n") \
        .replace('@executor("local")', '@executor(config_expr("cfg.where"))')
    assert source.count("config_expr(") == 2
    (tmp_path / "pinned_flow.py").write_text(source)
    store = Store(tmp_path / "runstore.db")
    run = Runner(tmp_path / "pinned_flow.py", store=store, executor="dask", dask_address=address,
                 config_value={"cfg": {"where": "local"}}).run()
    workers = set(cluster.test_client.run(os.getpid).values())
    assert run.data.start_pid == run.data.end_pid == os.getpid()
    assert set(run["join"].task.data.pids) <= workers


def test_a_100_mib_value_for_10_tasks_is_sent_once(tmp_path: Path, cluster: Any, address: str) -> None:
    store = Store(tmp_path / "runstore.db")
    flow = load_flow(FLOWS / "big_value_flow.py")
    scheduler = Scheduler(flow, store, {"size_mib": 100, "width": 10}, quiet=True, executor="dask",
                          dask_address=address, flow_file=flow_file_of(flow))
    outcome = scheduler.run()
    assert outcome.successful
    dask = scheduler.executors["dask"]
    big = 100 << 20
    # scattered: the code package, then the array once (10 readers, one scatter)
    assert dask.stats["scattered"] == 2, dask.stats
    assert big < dask.stats["scattered_bytes"] < big + (4 << 20)
    value_key = dask.sent_keys[1]

    def fetched(dask_worker: Any) -> int:
        return sum(1 for t in dask_worker.transfer_incoming_log if value_key in t["keys"])

    per_worker = cluster.test_client.run(fetched)
    # Peer transfers inside the cluster, not sends from the laptop: ten per-task sends would show
    # as ~10 fetches; a loaded worker may drop and re-fetch a replica once, so the bound is one
    # fetch per worker in all (seen: {w1: 0, w2: 2} under a load average of 13).
    assert sum(per_worker.values()) <= len(per_worker), per_worker
    run = Run(outcome.pathspec, store=store)
    assert len(run["join"].task.data.checksums) == 10


def test_a_worker_killed_mid_task_fails_the_attempt_and_retry_succeeds(tmp_path: Path, address: str) -> None:
    store = Store(tmp_path / "runstore.db")
    pid_file = tmp_path / "pid"
    flow = load_flow(FLOWS / "killable_flow.py")
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["run"] = Runner(flow, store=store, executor="dask", dask_address=address).run(
                pid_file=str(pid_file), wait=60.0)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline and thread.is_alive(), result
        time.sleep(0.05)
    worker_pid = int(pid_file.read_text())
    assert worker_pid != os.getpid()
    os.kill(worker_pid, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive(), "the run hung after its worker was killed"
    assert "error" not in result, result
    run = result["run"]
    assert run.successful and run.data.y == 42
    with store.read() as conn:
        attempts = conn.execute(
            "SELECT a.attempt, a.status, a.exception_type FROM attempts a JOIN tasks t USING (task_id)"
            " JOIN steps s ON s.step_id = t.step_id WHERE s.name = 'slow' AND t.run_id ="
            " (SELECT max(run_id) FROM runs) ORDER BY a.attempt").fetchall()
    assert attempts == [(0, "failed", "runstore.WorkerDied"), (1, "succeeded", None)]


def _flow_cmd(flow_file: Path, db: Path, *args: str) -> list[str]:
    return [sys.executable, str(flow_file), "--db", str(db), *args]


def _dask_keys(cluster: Any) -> list[str]:
    return cluster.test_client.run_on_scheduler(
        lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks if str(k).startswith("runstore-")])


@pytest.mark.parametrize("crash_on, resume_on", [("dask", "local"), ("local", "dask")])
def test_scheduler_kill_9_is_crashed_and_resumes_on_either_executor(
        crash_on: str, resume_on: str, tmp_path: Path, cluster: Any, address: str) -> None:
    db, pid_file = tmp_path / "runstore.db", tmp_path / "pid"
    flow_file = FLOWS / "killable_flow.py"
    executor = ["--executor", "dask", "--dask-address", address] if crash_on == "dask" else ["--max-workers", "2"]
    proc = subprocess.Popen(_flow_cmd(flow_file, db, "--quiet", "run", "--pid-file", str(pid_file),
                                      *executor), stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if crash_on == "local":
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned local worker still sleeping in the step
    store = Store(db)
    crashed = Run("KillableFlow/1", store=store)
    assert crashed.status == "crashed"
    if crash_on == "dask":  # the cluster forgot the run's tasks when its client vanished
        deadline = time.monotonic() + 30
        while _dask_keys(cluster):
            assert time.monotonic() < deadline, _dask_keys(cluster)
            time.sleep(0.1)
    resume = ["--executor", "dask", "--dask-address", address] if resume_on == "dask" else ["--max-workers", "2"]
    done = subprocess.run(_flow_cmd(flow_file, db, "--quiet", "resume", *resume), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    resumed = Run("KillableFlow/2", store=Store(db))
    assert resumed.successful and resumed.data.y == 42
    assert resumed.origin_pathspec == "KillableFlow/1"


def test_an_unreachable_address_is_one_line_and_no_run(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "runstore.db"
    start = time.monotonic()
    done = subprocess.run(_flow_cmd(EXAMPLES / "hello_flow.py", db, "run", "--executor", "dask",
                                    "--dask-address", f"tcp://127.0.0.1:{port}"),
                          env=dict(os.environ, RUNSTORE_DASK_CONNECT_TIMEOUT="2"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - start < 20  # the 2 s connect timeout, then one line: never a hang
    if db.exists():
        with Store(db).read() as conn:
            assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_a_worker_with_another_runstore_version_is_refused_before_the_run(tmp_path: Path, cluster: Any,
                                                                          address: str) -> None:
    client = cluster.test_client

    def set_version(version: str) -> str:
        import runstore._version as v

        old, v.__version__ = v.__version__, version
        return old

    olds = client.run(set_version, "0.0.1")
    try:
        store = Store(tmp_path / "runstore.db")
        with pytest.raises(ExecutorError) as info:
            Runner(load_flow(EXAMPLES / "hello_flow.py"), store=store, executor="dask",
                   dask_address=address).run()
        message = str(info.value)
        assert "\n" not in message and "runstore 0.0.1" in message and "same environment" in message
        with store.read() as conn:
            assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    finally:
        client.run(set_version, next(iter(olds.values())))


def test_env_vars_choose_the_executor(tmp_path: Path, address: str) -> None:
    db = tmp_path / "runstore.db"
    env = dict(os.environ, RUNSTORE_EXECUTOR="dask", RUNSTORE_DASK_ADDRESS=address)
    done = subprocess.run(_flow_cmd(EXAMPLES / "hello_flow.py", db, "--quiet", "run"), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run = Run("HelloFlow/1", store=Store(db))
    assert run.successful and "executor:dask" in run.system_tags


def test_unknown_executor_is_refused() -> None:
    with pytest.raises(ExecutorError, match="unknown executor 'spark'"):
        Runner(load_flow(EXAMPLES / "hello_flow.py"), store=Store(":memory:"), executor="spark")


def test_an_in_memory_store_works_with_dask(address: str) -> None:
    """The scheduler is the only writer: even a store no other process can open works."""
    store = Store(":memory:")
    run = Runner(load_flow(FLOWS / "wide_flow.py"), store=store, executor="dask",
                 dask_address=address).run(n=5)
    assert run.data.total == sum(i * i for i in range(5))


def test_ctrl_c_cancels_the_remote_tasks(tmp_path: Path, cluster: Any, address: str) -> None:
    db, pid_file = tmp_path / "runstore.db", tmp_path / "pid"
    proc = subprocess.Popen(
        _flow_cmd(FLOWS / "killable_flow.py", db, "--quiet", "run", "--pid-file", str(pid_file),
                  "--executor", "dask", "--dask-address", address),
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    assert proc.returncode != 0
    run = Run("KillableFlow/1", store=Store(db))
    assert proc.returncode == 130
    assert run.status == "interrupted"  # issue #13: was "failed"
    with Store(db).read() as conn:
        assert conn.execute("SELECT status, exception_type FROM attempts WHERE attempt = 0 AND task_id ="
                            " (SELECT max(task_id) FROM tasks)").fetchone() == ("interrupted",
                                                                                "builtins.KeyboardInterrupt")
    deadline = time.monotonic() + 30
    while _dask_keys(cluster):
        assert time.monotonic() < deadline, _dask_keys(cluster)
        time.sleep(0.1)


def test_scheduler_kill_9_takes_its_own_local_cluster_down(tmp_path: Path) -> None:
    """Without an address the run's LocalCluster lives in the scheduler: its workers go with it."""
    db, pid_file = tmp_path / "runstore.db", tmp_path / "pid"
    proc = subprocess.Popen(_flow_cmd(FLOWS / "killable_flow.py", db, "--quiet", "run", "--pid-file", str(pid_file),
                                      "--executor", "dask", "--max-workers", "1"),
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not pid_file.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30
        while _alive(worker):
            assert time.monotonic() < deadline, "the Dask worker outlived its scheduler"
            time.sleep(0.1)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert Run("KillableFlow/1", store=Store(db)).status == "crashed"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_dask_is_imported_only_when_a_run_asks_for_it(tmp_path: Path) -> None:
    code = ("import sys, runstore, runstore.runtime.scheduler, runstore.runtime.executors;"
            "from runstore import Runner, Store;"
            "from runstore.runtime import load_flow;"
            f"Runner(load_flow({str(EXAMPLES / 'hello_flow.py')!r}), store=Store(':memory:')).run();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


EVIL_FLOW = """
import os, pathlib
from runstore import FlowSpec, step

class Payload:
    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path({marker!r}), "pwned"))

class EvilFlow(FlowSpec):
    @step
    def start(self):
        self.model = Payload()
        self.next(self.use)

    @step
    def use(self):
        if not os.path.exists({gate!r}):
            raise RuntimeError("not yet")
        self.kind = type(self.model).__name__
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    EvilFlow()
"""


def test_someone_elses_pickle_is_never_sent_to_a_worker(tmp_path: Path, address: str) -> None:
    """Attack: another user's run holds a pickle that writes a file when loaded; we resume it on Dask."""
    db, marker, gate = tmp_path / "shared.db", tmp_path / "PWNED", tmp_path / "gate"
    flow_file = tmp_path / "evil_flow.py"
    flow_file.write_text(EVIL_FLOW.format(marker=str(marker), gate=str(gate)))
    attacker = dict(os.environ, RUNSTORE_HOME=str(tmp_path / "attacker-home"), RUNSTORE_USER="mallory")
    subprocess.run(_flow_cmd(flow_file, db, "--quiet", "run", "--max-workers", "1"), env=attacker,
                   capture_output=True, timeout=120)
    assert not marker.exists()
    gate.write_text("open")
    store = Store(db)
    run = Runner(flow_file, store=store, executor="dask", dask_address=address).resume(
        origin_run_id=1, raise_on_failure=False)
    assert not run.successful
    with store.read() as conn:
        exc = conn.execute("SELECT a.exception_type, a.exception_message FROM attempts a JOIN tasks t USING"
                           " (task_id) JOIN steps s ON s.step_id = t.step_id WHERE s.name = 'use'"
                           " AND t.run_id = (SELECT max(run_id) FROM runs)").fetchone()
    assert exc[0] == "runstore.errors.UntrustedArtifact" and "runstore trust" in exc[1]
    assert not marker.exists()  # neither here nor on a worker


def test_executor_decorator_takes_only_known_names() -> None:
    from runstore import FlowDefinitionError, executor

    with pytest.raises(FlowDefinitionError, match="@executor"):
        executor("gpu-farm")


def test_dask_address_with_the_local_executor_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(_flow_cmd(EXAMPLES / "hello_flow.py", tmp_path / "runstore.db", "run", "--executor",
                                    "local", "--dask-address", "tcp://127.0.0.1:1"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["Error: --dask-address needs --executor dask"]


# ---------------------------------------------------------------- @timeout on Dask (issue #12)

TIMEOUT_KIND = "runstore.errors.TimeoutException"


def test_timeout_on_dask_is_raised_in_the_task_thread_and_retried(tmp_path: Path, address: str) -> None:
    """The remote task thread gets the TimeoutException itself (between its short sleeps)."""
    db = tmp_path / "runstore.db"
    start = time.monotonic()
    proc = subprocess.run(_flow_cmd(FLOWS / "timeout_flow.py", db, "--quiet", "run", "--chunked", "true",
                                    "--executor", "dask", "--dask-address", address),
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 60  # the step asked for 120 s
    store = Store(db)
    task = Run("TimeoutFlow/1", store=store)["slow"].task
    assert task.status == "succeeded" and task.data.attempt == 1
    first = Task(task.pathspec, attempt=0, store=store).exception
    assert first.type == TIMEOUT_KIND and "timed out after 3 seconds" in first.message


def test_timeout_on_dask_is_caught_through_runner(tmp_path: Path, address: str) -> None:
    store = Store(tmp_path / "runstore.db")
    start = time.monotonic()
    run = Runner(load_flow(FLOWS / "timeout_flow.py"), store=store, quiet=True, executor="dask",
                 dask_address=address).run(always=True, chunked=True)
    assert time.monotonic() - start < 60
    task = run["slow"].task
    assert task.status == "caught" and task.data.err.type == TIMEOUT_KIND
    assert run["start"].task.data.seen == "from-environment"  # @environment on the remote worker too
    assert run["end"].task.data.leaked is None


def test_a_dask_task_stuck_past_its_timeout_is_cancelled_and_caught(tmp_path: Path, address: str) -> None:
    """A 20 s C-level sleep never returns to Python in time: the scheduler cancels the future."""
    db = tmp_path / "runstore.db"
    start = time.monotonic()
    proc = subprocess.run(_flow_cmd(FLOWS / "timeout_flow.py", db, "--quiet", "run", "--always", "true",
                                    "--nap", "20", "--executor", "dask", "--dask-address", address),
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 38  # two full sleeps would be 40 s
    store = Store(db)
    task = Run("TimeoutFlow/1", store=store)["slow"].task
    for attempt in (0, 1):
        exc = Task(task.pathspec, attempt=attempt, store=store).exception
        assert exc.type == TIMEOUT_KIND and "Dask task was cancelled" in exc.message
    assert task.status == "caught" and task.data.err.type == TIMEOUT_KIND
