"""`runstore sql` streams its rows (issue #18): constant memory in every format, and a reader
that leaves early (`| head`) ends the command at once. Real subprocesses, real files."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runstore import Store, StoreError

ROWS = 200_000
#: 200,000 rows of ~1 KB: ~200 MB if buffered, far above the child's limit below.
BIG = (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS}) "
       "SELECT x, printf('%01000d', x) AS pad FROM c")
SMALL = f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS}) SELECT x FROM c"
LIMIT = 180 << 20  # address space of the child: enough for Python + runstore, not for the rows


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "runstore", "--db", str(db), "sql", *args]


@pytest.mark.parametrize("fmt", ["--csv", "--jsonl", "--json"])
def test_sql_streams_200000_rows_in_bounded_memory(runs_db: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        proc = subprocess.run(_cli(runs_db, fmt, BIG), stdout=sink, stderr=subprocess.PIPE,
                              preexec_fn=_limit, timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    with out.open() as text:
        if fmt == "--json":
            rows = json.load(text)
            assert len(rows) == ROWS and rows[-1] == {"x": ROWS, "pad": f"{ROWS:01000d}"}
        else:
            lines = sum(1 for _ in text)
            assert lines == ROWS + (fmt == "--csv")


def test_the_same_rows_buffered_do_not_fit_the_limit(runs_db: Path) -> None:
    """The limit above is a real bound: Store.sql (a list of all rows) runs out under it."""
    code = f"from runstore import Store; print(len(Store({str(runs_db)!r}, readonly=True).sql({BIG!r}).rows))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, preexec_fn=_limit, timeout=240)
    assert proc.returncode != 0 and b"MemoryError" in proc.stderr


def test_table_output_streams_too(runs_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        proc = subprocess.run(_cli(runs_db, SMALL), stdout=sink, stderr=subprocess.PIPE,
                              preexec_fn=_limit, timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    lines = out.read_text().splitlines()
    # widths come from the first 1,000 rows; wider later cells are printed whole, never cut
    assert lines[:3] == ["x", "----", "1"] and lines[-1] == str(ROWS) and len(lines) == ROWS + 2


@pytest.mark.parametrize("fmt", [[], ["--csv"], ["--jsonl"], ["--json"]])
def test_a_reader_that_leaves_ends_the_command_at_once(runs_db: Path, fmt: list[str]) -> None:
    """`runstore sql ... | head -2`: no waiting for the whole result, no traceback."""
    query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"  # endless
    start = time.monotonic()
    proc = subprocess.Popen(_cli(runs_db, *fmt, query), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = [proc.stdout.readline(), proc.stdout.readline()]
    proc.stdout.close()  # the reader leaves
    _, err = proc.communicate(timeout=60)
    assert all(first) and time.monotonic() - start < 60
    assert proc.returncode == 141 and b"Traceback" not in err


def test_store_sql_stream_is_lazy_and_reports_errors_as_one_line(memory_store: Store) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    with memory_store.sql_stream(endless) as stream:
        assert stream.columns == ["x"]
        assert [next(stream.rows) for _ in range(3)] == [(1,), (2,), (3,)]
    with pytest.raises(StoreError, match="only reading queries"):
        with memory_store.sql_stream("DELETE FROM runs"):
            pass
    # the in-memory store's connection is writable again afterwards
    memory_store.create_run("AfterFlow", user="anne")
    with pytest.raises(StoreError, match="SQL error"):
        with memory_store.sql_stream("SELECT x FROM c(1)") as stream:
            list(stream.rows)
