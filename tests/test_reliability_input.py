"""Hostile and bad input: every one gets a specific RunstoreError or one CLI line, and loses nothing.

Builds on tests/test_store_file.py (bad files opened through ``Store``: text, truncated,
zero-byte, another program's SQLite file, newer schema, unprivileged read-only file
and directory) and tests/test_runtime_cli.py (bad parameter values as usage errors,
a hypothesis round trip of valid ones). Here: hypothesis over client pathspecs, tags,
parameter strings and artifact values; a corrupted page in the middle of a real
store; bad files through the ``runstore`` and flow command lines; a full disk
(``RLIMIT_FSIZE``); SQL injection through tags, flow names, parameter values and
``runstore sql``. "Nothing lost" is checked by a digest of every table and every
stored value taken before and after.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import helpers

from runstore import (
    CodecError,
    DataArtifact,
    Flow,
    InvalidPathspec,
    NamespaceMismatch,
    NotAStoreError,
    NotFound,
    Run,
    RunstoreError,
    SchemaVersionError,
    Step,
    Store,
    StoreError,
    TaggingError,
    Task,
    namespace,
    use_store,
)
from runstore.schema import SCHEMA_VERSION

FLOWS = Path(__file__).parent / "flows"
BUSY = FLOWS / "busy_flow.py"
CRASH = FLOWS / "crash_flow.py"
HYPO = settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=150)

# ------------------------------------------------------------------ helpers


def run_flow(flow: Path, db: Path, *args: str, preexec_fn: Any = None) -> subprocess.CompletedProcess[str]:
    return helpers.run_flow(flow, db, *args, quiet=True, preexec_fn=preexec_fn)


def runstore_cli(db: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "runstore", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """A failed command said one line on stderr, no traceback; returns the line."""
    assert proc.returncode != 0 if code is None else proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(db: Path, *, tags: bool = True) -> dict[str, str]:
    """A digest of every table's rows and of every stored value (what 'nothing lost' means)."""
    out: dict[str, str] = {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        for table in tables:
            if table in ("run_tags", "flows") and not tags:
                continue  # tag edits are wanted changes; flows.last_run_number moves with new runs
            rows = (
                conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                if table != "store_info"
                else conn.execute("SELECT * FROM store_info ORDER BY key").fetchall()
            )
            out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    finally:
        conn.close()
    store = Store(db, readonly=True)
    with store.read() as c:
        keys = c.execute("SELECT DISTINCT blob_key, encoding FROM artifacts ORDER BY 1").fetchall()
    values = hashlib.sha256()
    for key, encoding in keys:
        values.update(store.open_blob(key).read())
        store.load_value(key, encoding)  # every value still decodes
    out["values"] = values.hexdigest()
    store.close()
    return out


def rows_of_runs(db: Path, numbers: list[int]) -> dict[str, Any]:
    """A snapshot restricted to some runs (for files where later runs are added)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT run_id FROM runs WHERE run_number IN ({','.join('?' * len(numbers))})"
                " AND flow_id = (SELECT flow_id FROM flows WHERE name = 'BusyFlow') ORDER BY run_id",
                numbers,
            )
        ]
        marks = ",".join("?" * len(ids))
        out = {
            "runs": conn.execute(
                f"SELECT * FROM runs WHERE run_id IN ({marks}) ORDER BY run_id", ids
            ).fetchall(),
            "tags": conn.execute(
                f"SELECT * FROM run_tags WHERE run_id IN ({marks}) ORDER BY 1, 2", ids
            ).fetchall(),
            "tasks": conn.execute(
                f"SELECT * FROM tasks WHERE run_id IN ({marks}) ORDER BY task_id", ids
            ).fetchall(),
            "artifacts": conn.execute(
                f"SELECT v.task_id, v.attempt, v.name, a.blob_key, a.encoding, a.type, a.size, b.json_value"
                f" FROM task_values v JOIN artifacts a ON a.artifact_id = v.artifact_id"
                f" JOIN blobs b ON b.blob_key = a.blob_key JOIN tasks t ON t.task_id = v.task_id"
                f" WHERE t.run_id IN ({marks})"
                " ORDER BY 1, 2, 3",
                ids,
            ).fetchall(),
        }
    finally:
        conn.close()
    store = Store(db, readonly=True)
    out["values"] = [store.load_value(a[3], a[4]) for a in out["artifacts"]]
    store.close()
    return out


def busy_store(path: Path, runs: int = 2) -> Path:
    for _ in range(runs):
        proc = run_flow(BUSY, path, "run", "--max-workers", "1", "--n", "3")
        assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with two real BusyFlow runs, shared read-only by the tests below (copy to write)."""
    return busy_store(tmp_path_factory.mktemp("seeded") / "runstore.db")


def copy_store(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


# ------------------------------------------------------------------ pathspecs


PIECES = [
    "BusyFlow",
    "Nope",
    "1",
    "2",
    "01",
    "0",
    "-1",
    "99999999999999999999",
    "²",
    "١",
    " 1",
    "start",
    "work",
    "_parameters",
    "total",
    "_graph_info",
    "",
    ".",
    "..",
    "*",
    "%",
    "'",
    "\x00",
    "x" * 300,
]
pathspecs = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=6).map("/".join),
    st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), min_size=1, max_size=6).map("/".join),
)
keys = st.one_of(
    st.sampled_from(PIECES),
    st.text(max_size=8),
    st.integers(-3, 2**70),
    st.none(),
    st.floats(),
    st.binary(max_size=3),
    st.tuples(st.integers()),
)


@HYPO
@given(
    cls=st.sampled_from([Flow, Run, Step, Task, DataArtifact]),
    spec=st.one_of(pathspecs, st.none(), st.integers(), st.binary(max_size=5)),
    everywhere=st.booleans(),
)
@example(cls=Run, spec="BusyFlow/99999999999999999999", everywhere=True)  # beyond SQLite's integers
@example(cls=Task, spec="BusyFlow/1/start/99999999999999999999", everywhere=True)
@example(cls=Run, spec="BusyFlow/²", everywhere=True)  # "²".isdigit() is true, int("²") fails
def test_any_pathspec_gives_invalid_pathspec_or_not_found(
    seeded: Path, cls: type, spec: Any, everywhere: bool
) -> None:
    store = Store(seeded, readonly=True)
    with use_store(store):
        namespace(None if everywhere else "user:someone-else")
        try:
            cls(spec)
        except (InvalidPathspec, NotFound, NamespaceMismatch) as exc:
            assert "\n" not in str(exc)
        finally:
            store.close()


@HYPO
@given(
    path=st.lists(keys, min_size=1, max_size=4),
    attempt=st.one_of(st.none(), st.integers(-2, 2**70), st.floats(), st.text(max_size=3)),
)
@example(path=["1", "start", 2**70], attempt=None)
@example(path=[float("inf")], attempt=None)  # `inf in flow` used to raise OverflowError
@example(path=["1", "start"], attempt=2**70)
def test_indexing_and_membership_never_raise_anything_else(
    seeded: Path, path: list[Any], attempt: Any
) -> None:
    store = Store(seeded, readonly=True)
    try:
        with use_store(store):
            namespace(None)
            obj: Any = Flow("BusyFlow")
            for key in path:
                assert isinstance(key in obj, bool)
                obj = obj[key]
            if isinstance(obj, Task):
                Task(obj.pathspec, attempt=attempt)
    except (InvalidPathspec, NotFound, NamespaceMismatch) as exc:
        assert "\n" not in str(exc)
    finally:
        store.close()


@pytest.mark.parametrize(
    "pathspec",
    [
        "99999999999999999999/start",
        "²/start",
        "1/start/²",
        "1/start/99999999999999999999",
        "1//",
        "/",
        "x/y/z/w",
    ],
)
def test_flow_cli_logs_and_dump_refuse_bad_pathspecs_in_one_line(seeded: Path, pathspec: str) -> None:
    for command in ("logs", "dump"):
        line = one_line_error(run_flow(BUSY, seeded, command, pathspec))
        assert line.startswith("Error: "), line
        assert any(m in line for m in ("expected RUN/STEP", "does not exist", "has no tasks")), line


@pytest.mark.parametrize("origin", ["99999999999999999999", "²", "-1", "BusyFlow/x", "0"])
def test_resume_refuses_bad_origin_run_ids_in_one_line(seeded: Path, tmp_path: Path, origin: str) -> None:
    db = copy_store(seeded, tmp_path / "runstore.db")
    line = one_line_error(run_flow(BUSY, db, "resume", "--origin-run-id", origin))
    assert line.startswith("Error: "), line
    assert rows_of_runs(db, [1, 2]) == rows_of_runs(seeded, [1, 2])
    assert Store(db).run_ref("BusyFlow") == Store(seeded, readonly=True).run_ref("BusyFlow")  # no run created


# ------------------------------------------------------------------ tags


@pytest.fixture(scope="module")
def tag_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield busy_store(tmp_path_factory.mktemp("tags") / "runstore.db", runs=1)


@HYPO
@given(
    tag=st.one_of(
        st.text(),
        st.text(st.characters(), min_size=1, max_size=8),
        st.binary(max_size=6),
        st.integers(),
        st.none(),
        st.text(min_size=495, max_size=505),
        st.lists(st.text(), max_size=2),
    )
)
@example(tag="\ud800")  # not encodable as UTF-8
@example(tag="x\x00y")
@example(tag=b"\xff")
@example(tag="'); DELETE FROM runs; --")
@example(tag="user:tester")  # a system tag: adding is a no-op, removing is refused
def test_any_tag_is_refused_with_tagging_error_or_stored_exactly(tag_store: Path, tag: Any) -> None:
    store = Store(tag_store)
    try:
        with use_store(store):
            namespace(None)
            run = Run("BusyFlow/1")
            before = set(run.tags)
            try:
                run.add_tag(tag)
            except TaggingError as exc:
                assert "\n" not in str(exc)
                assert set(Run("BusyFlow/1").tags) == before
                return
            items = tag if isinstance(tag, list) else [tag]  # add_tag takes an iterable of tags too
            texts = {t.decode() if isinstance(t, bytes) else t for t in items}
            assert set(Run("BusyFlow/1").tags) == before | texts
            with store.read() as conn:
                for text in texts:
                    assert (
                        conn.execute("SELECT count(*) FROM run_tags WHERE tag = ?", (text,)).fetchone()[0]
                        == 1
                    )
            for text in texts - before:
                run.remove_tag(text)
            for text in texts & run.system_tags:
                with pytest.raises(TaggingError):
                    run.remove_tag(text)
            assert set(Run("BusyFlow/1").tags) == before
    finally:
        store.close()


# ------------------------------------------------------------------ parameter values through the CLI


def _bool(text: str) -> bool:
    table = {
        "true": True,
        "t": True,
        "yes": True,
        "y": True,
        "1": True,
        "on": True,
        "false": False,
        "f": False,
        "no": False,
        "n": False,
        "0": False,
        "off": False,
    }
    return table[text.strip().lower()]


NATURAL = {"label": str, "rate": float, "n": int, "on": _bool, "config": json.loads}
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
numbers = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),
    st.text("0123456789.-+eE_ xinfaINF", max_size=12),
    st.sampled_from(["true", "no", "nan", "-inf", "1_000", "０", "١٢", "²", "9" * 5000, " 7 "]),
)
jsons = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
).map(json.dumps)


def _param_kinds_flow() -> type:
    from runstore.runtime.runner import load_flow

    return load_flow(FLOWS / "param_kinds_flow.py")


@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=60)
@given(name=st.sampled_from(sorted(NATURAL)), raw=st.one_of(texts, numbers, jsons), tag=texts)
@example(name="label", raw="'); DROP TABLE runs; --", tag="'); DROP TABLE run_tags; --")
@example(name="n", raw="9" * 5000, tag="t")  # longer than int() accepts
@example(name="config", raw="null", tag="t")  # JSON null is a value, not "not given" (issue #12)
def test_parameter_values_are_a_usage_error_or_round_trip_exactly(name: str, raw: str, tag: str) -> None:
    from click.testing import CliRunner

    from runstore.cli.flow import make_cli

    db = Path(tempfile.mkdtemp()) / "hostile.db"
    try:
        result = CliRunner().invoke(
            make_cli(_param_kinds_flow()),
            ["--db", str(db), "--quiet", "run", "--max-workers", "1", f"--{name}", raw, "--tag", tag],
        )
        if result.exit_code == 2:
            assert "Traceback" not in result.output
            assert not db.exists() or Store(db).run_ref("ParamKindsFlow") is None  # nothing stored
            return
        assert result.exit_code == 0, (result.output, result.exception)
        store = Store(db)
        params = store.run_tasks(store.run_ref("ParamKindsFlow")[0], "_parameters")[0]["task_id"]
        ref = store.task_artifact_refs(params)[name]
        got = store.load_value(ref.blob_key, ref.encoding)
        want = NATURAL[name](raw)
        assert type(got) is type(want) and (
            got == want or (isinstance(want, float) and math.isnan(want) and math.isnan(got))
        ), (raw, got, want)
        with store.read() as conn:
            assert [r[0] for r in conn.execute("SELECT tag FROM run_tags WHERE is_system = 0")] == [tag]
        store.close()
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)


# ------------------------------------------------------------------ artifact values


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63),
    st.floats(),
    st.text(st.characters()),
    st.binary(max_size=20),
    st.complex_numbers(allow_nan=False),
)
values = st.recursive(
    scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=4),
        st.tuples(c, c),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), c, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def value_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(tmp_path_factory.mktemp("values") / "runstore.db")
    yield store
    store.close()


@HYPO
@given(value=values)
@example(value=-0.0)
@example(value="\udcff")  # a lone surrogate: not JSON-safe UTF-8, must not be mangled
@example(value={"a": float("nan")})
@example(value={1: "int key"})  # JSON would turn the key into "1"
@example(value=[(1, 2)])  # JSON would turn the tuple into a list
def test_any_storable_artifact_value_round_trips_exactly(value_store: Store, value: Any) -> None:
    # Every value drawn here can be pickled, so refusing one (CodecError) is a failure too;
    # the values that must be refused are tested below.
    ref = value_store.put_value(value)
    assert same(value, value_store.load_value(ref.blob_key, ref.encoding))


def _generator() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize("value", [_generator(), threading.Lock()], ids=["generator", "lock"])
def test_unpicklable_values_raise_codec_error_and_store_nothing(value_store: Store, value: Any) -> None:
    with value_store.read() as conn:
        before = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    with pytest.raises(CodecError) as info:
        value_store.put_value(value)
    assert isinstance(info.value, TypeError) and "\n" not in str(info.value)
    with value_store.read() as conn:
        assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == before


def test_recursive_containers_round_trip(value_store: Store) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    ref = value_store.put_value(loop)
    back = value_store.load_value(ref.blob_key, ref.encoding)
    assert back[0] == 1 and back[1] is back


# ------------------------------------------------------------------ corrupted, empty, newer files


def _walk_everything(db: Path) -> None:
    """Open the file and read every run, task and value through the client, then check it."""
    store = Store(db)
    try:
        with use_store(store):
            namespace(None)
            for run in Flow("BusyFlow"):
                for step in run:
                    for task in step:
                        for artifact in task:
                            artifact.data  # noqa: B018
        problems = store.integrity_problems()
    finally:
        store.close()
    if problems:
        raise NotAStoreError("integrity problems: " + "; ".join(problems))


def test_a_corrupted_page_in_the_middle_of_the_file(seeded: Path, tmp_path: Path) -> None:
    size = seeded.stat().st_size
    pages = size // 4096
    assert pages > 20
    for fraction in (0.2, 0.35, 0.5, 0.65, 0.8):
        page = int(pages * fraction)
        db = copy_store(seeded, tmp_path / f"page{page}.db")
        with open(db, "r+b") as fh:
            fh.seek(page * 4096)
            fh.write(bytes(range(256)) * 16)  # garbage over one whole page
        before = digest(db)
        with pytest.raises(StoreError) as info:
            _walk_everything(db)
        assert "\n" not in str(info.value) and not isinstance(info.value, sqlite3.Error)
        line = one_line_error(runstore_cli(db, "doctor"), 1)
        assert "damaged" in line or "problem" in line.lower(), line
        runs = runstore_cli(db, "runs", "--all")
        if runs.returncode != 0:  # listing reads only some pages: it may not meet the damage
            assert "damaged" in one_line_error(runs)
        assert digest(db) == before  # reading a damaged file never changes it


def test_zero_byte_file_through_the_command_lines(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    db.touch()
    for proc in (runstore_cli(db, "runs"), runstore_cli(db, "doctor"), run_flow(BUSY, db, "run")):
        assert "empty file" in one_line_error(proc, 1)
    assert db.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["runstore.db"]


def test_file_from_a_newer_runstore(seeded: Path, tmp_path: Path) -> None:
    db = copy_store(seeded, tmp_path / "runstore.db")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = digest(db)
    with pytest.raises(SchemaVersionError):
        Flow("BusyFlow", store=db)
    for proc in (runstore_cli(db, "runs"), runstore_cli(db, "sql", "SELECT 1"), run_flow(BUSY, db, "run")):
        line = one_line_error(proc, 1)
        assert f"version {SCHEMA_VERSION + 1}" in line and f"version {SCHEMA_VERSION}" in line, line
    assert digest(db) == before


# ------------------------------------------------------------------ read-only file through the CLIs


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory an unprivileged process can reach (as in tests/test_store_file.py)."""
    path = Path(tempfile.mkdtemp(prefix="runstore-ro-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def unprivileged() -> tuple[str, ...]:
    """A command prefix that drops the power to bypass file permissions (even as root)."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return ("setpriv", "--inh-caps=-all", "--bounding-set=-all")


def test_read_only_file_reads_work_and_writes_fail_in_one_line(seeded: Path, open_dir: Path) -> None:
    db = copy_store(seeded, open_dir / "runstore.db")
    db.chmod(0o444)
    before = snapshot(db)
    prefix = unprivileged()
    for args in (
        ["runs", "--all"],
        ["show", "BusyFlow/1"],
        ["sql", "SELECT count(*) FROM runs"],
        ["doctor"],
        ["tag", "list", "BusyFlow/1"],
    ):
        proc = runstore_cli(db, *args, prefix=prefix)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
    for args in (["tag", "add", "BusyFlow/1", "x"], ["delete", "BusyFlow/1", "--yes"], ["gc"]):
        assert "not writable" in one_line_error(runstore_cli(db, *args, prefix=prefix), 1)
    flow = subprocess.run(
        [*prefix, sys.executable, str(BUSY), "--db", str(db), "run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = one_line_error(flow, 1)
    assert line.startswith("Error: ") and "is not writable" in line, line
    assert snapshot(db) == before


# ------------------------------------------------------------------ full disk (RLIMIT_FSIZE)


def _limit_file_size(limit: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes get EFBIG

    return apply


@pytest.mark.stress
def test_full_disk_while_writing_a_large_artifact(tmp_path: Path) -> None:
    db = busy_store(tmp_path / "runstore.db", runs=1)
    before = rows_of_runs(db, [1])
    # 1. room for the run's small rows but not for a 20 MiB artifact: the step fails with
    #    StoreFullError (not a CodecError), the run fails, the flow goes no further.
    proc = run_flow(
        CRASH,
        db,
        "run",
        "--max-workers",
        "2",
        "--size_mib",
        "20",
        preexec_fn=_limit_file_size(db.stat().st_size + (4 << 20)),
    )
    line = one_line_error(proc, 1)
    assert "Step big" in line and "StoreFullError" in line and "file-size limit" in line, line
    # 2. no room at all: the run cannot even start; one line, exit 1.
    proc = run_flow(BUSY, db, "run", preexec_fn=_limit_file_size(db.stat().st_size))
    line = one_line_error(proc, 1)
    assert line.startswith("Error: ") and ("disk is full" in line or "file-size limit" in line), line
    # Afterwards the store opens, is sound, earlier runs are intact, every listed value loads.
    _walk_everything(db)
    assert rows_of_runs(db, [1]) == before
    store = Store(db)
    with use_store(store):
        namespace(None)
        assert not Flow("CrashFlow")["1"].successful
        assert Flow("CrashFlow")["1"]["big"].task.exception.type == "runstore.errors.StoreFullError"
    store.close()
    assert run_flow(BUSY, db, "run", "--n", "2").returncode == 0  # with room again, runs work


# ------------------------------------------------------------------ SQL injection


INJECTIONS = [
    "'; DROP TABLE runs; --",
    '" OR 1=1 --',
    "x') ; DELETE FROM artifacts; --",
    "%' OR '1'='1",
    "Robert'); DROP TABLE run_tags;--",
    "1; ATTACH DATABASE 'evil.db' AS evil",
]


def test_sql_injection_through_tags_flow_names_and_parameters(seeded: Path, tmp_path: Path) -> None:
    db = copy_store(seeded, tmp_path / "runstore.db")
    before = snapshot(db, tags=False)
    store = Store(db)
    with use_store(store):
        namespace(None)
        run = Run("BusyFlow/1")
        for text in INJECTIONS:
            run.add_tag(text)  # stored exactly, as data
            with pytest.raises(NotFound):
                Flow(text)
            assert list(Flow("BusyFlow").runs(text)) == [Run("BusyFlow/1")]
        assert set(INJECTIONS) <= set(Run("BusyFlow/1").user_tags)
    store.close()
    for text in INJECTIONS:
        assert "does not exist" in one_line_error(runstore_cli(db, "runs", text), 1)  # an unknown flow
        tagged = runstore_cli(db, "runs", "--all", "--tag", text, "--json")
        assert [r["pathspec"] for r in json.loads(tagged.stdout)] == ["BusyFlow/1"], tagged.stderr
        assert runstore_cli(db, "tag", "add", "BusyFlow/2", text).returncode == 0
    hostile = run_flow(BUSY, db, "run", "--max-workers", "1", "--tag", INJECTIONS[1], "--n", "1")
    assert hostile.returncode == 0, hostile.stderr
    assert Run("BusyFlow/3", store=db).user_tags == frozenset([INJECTIONS[1]])
    # earlier runs: rows and values untouched (their tags changed only by the edits above)
    for part in ("runs", "tasks", "artifacts", "values"):
        assert rows_of_runs(db, [1, 2])[part] == rows_of_runs(seeded, [1, 2])[part]
    assert snapshot(db, tags=False).keys() == before.keys()
    assert Store(db).integrity_problems() == []


SQL_ATTACKS = [
    "DELETE FROM runs",
    "UPDATE flows SET name = 'x'",
    "INSERT INTO flows(name, created_at) VALUES ('x', 0)",
    "DROP VIEW runs_view",
    "SELECT 1; DELETE FROM runs",
    "ATTACH DATABASE '{dir}/evil.db' AS evil",
    "VACUUM INTO '{dir}/copy.db'",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "SELECT load_extension('{dir}/evil.so')",
    "SELECT fts3_tokenizer('simple')",
    "CREATE TEMP TABLE t(x)",
    "BEGIN EXCLUSIVE",
    "SAVEPOINT s",
    "ANALYZE",
    "REINDEX",
    "DETACH DATABASE main",
    # issue #19 opened table-valued functions and reporting pragmas; these stay refused
    "UPDATE sqlite_master SET sql = 'x'",  # the schema-table columns a vtable declares
    "SELECT value FROM json_each('[1]'); UPDATE sqlite_master SET sql = 'x'",
    "PRAGMA user_version = 7",  # a write through a pragma
    "PRAGMA main.application_id = 7",
    "SELECT * FROM pragma_query_only(0)",  # setting pragmas, as a function
    "SELECT * FROM pragma_journal_mode('delete')",
    "PRAGMA journal_mode = MEMORY",
    "PRAGMA writable_schema",
    "SELECT * FROM pragma_optimize",
    "CREATE VIRTUAL TABLE temp.v USING json_each",
    "CREATE VIRTUAL TABLE v USING json_tree",
    "INSERT INTO json_each VALUES (1)",
    "SELECT j.value FROM json_each('[1]') j; ATTACH DATABASE '{dir}/evil.db' AS evil",
]


def test_sql_command_stays_read_only(seeded: Path, tmp_path: Path) -> None:
    db = copy_store(seeded, tmp_path / "runstore.db")
    before = snapshot(db)
    for attack in SQL_ATTACKS:
        query = attack.format(dir=tmp_path)
        line = one_line_error(runstore_cli(db, "sql", query), 1)
        assert line.startswith("Error: SQL error:"), (query, line)
        with pytest.raises(StoreError):
            Store(db).sql(query)
    assert snapshot(db) == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("runstore.db")) == []
    ok = runstore_cli(db, "sql", "SELECT count(*) AS n FROM runs WHERE 1=1 OR '' = ''", "--json")
    assert json.loads(ok.stdout) == [{"n": 2}]


def test_sql_allows_table_valued_functions_and_reporting_pragmas(seeded: Path, tmp_path: Path) -> None:
    """Issue #19: json_each (docs/sql.md recommends it for tags), json_tree and the
    pragmas that only report work in ``runstore sql`` and ``Store.sql``; the file is unchanged."""
    db = copy_store(seeded, tmp_path / "runstore.db")
    before = snapshot(db)
    store = Store(db, readonly=True)
    tags = store.sql("SELECT DISTINCT t.value FROM runs_view r, json_each(r.tags) t"
                     " WHERE t.value LIKE 'runstore_version:%'").rows
    assert len(tags) == 1
    assert store.sql("""SELECT fullkey FROM json_tree('{"a": [1]}') WHERE atom = 1""").rows == [("$.a[0]",)]
    tables = {row[0] for row in store.sql("SELECT name FROM pragma_table_list").rows}
    assert {"runs", "runs_view", "deleted_runs"} <= tables
    assert store.sql("SELECT name FROM pragma_table_list('runs')").rows == [("runs",)]
    columns = [row[0] for row in store.sql("SELECT name FROM pragma_table_info('runs')").rows]
    assert columns[:3] == ["run_id", "flow_id", "run_number"]
    assert store.sql("PRAGMA journal_mode").rows == [("wal",)]
    assert store.sql("PRAGMA table_info(flows)").rows[1][1] == "name"
    store.close()
    out = runstore_cli(db, "sql", "SELECT count(*) AS n FROM runs_view r, json_each(r.tags) t"
                       " WHERE t.value = 'date:' || substr(r.created_at, 1, 4) || substr(r.created_at, 6, 2)"
                       " || substr(r.created_at, 9, 2)", "--json")
    assert json.loads(out.stdout) == [{"n": 2}]
    out = runstore_cli(db, "sql", "PRAGMA journal_mode", "--json")
    assert json.loads(out.stdout) == [{"journal_mode": "wal"}]
    assert snapshot(db) == before


def test_every_error_here_is_a_runstore_error() -> None:
    """The bad-input classes used above sit under one root, with the builtin a user would catch."""
    assert issubclass(InvalidPathspec, (RunstoreError, ValueError))
    assert issubclass(NotFound, (RunstoreError, KeyError))
    assert issubclass(TaggingError, (RunstoreError, ValueError))
    assert issubclass(CodecError, (RunstoreError, TypeError))
