"""A second Store(path) in one process must not drop the first one's SQLite locks.

Closing any descriptor of a file releases every POSIX lock the process holds on it;
if opening a Store re-read the file header with open()/close(), another process could
then believe it held the last connection, delete the WAL, and the first Store's later
commits would be lost (found by the production CLI test).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runstore import Store


def _other_process_writes(db: Path) -> None:
    code = "import sys; from runstore import Store; s = Store(sys.argv[1]); s.create_run('F', user='y'); s.close()"
    subprocess.run([sys.executable, "-c", code, str(db)], check=True)


def test_second_store_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    first = Store(db)
    first.create_run("F", user="x")
    second = Store(db)  # checks the header of a file this process has open
    _other_process_writes(db)
    assert (tmp_path / "runstore.db-wal").exists()  # the live connection's WAL survived
    for _ in range(5):
        first.create_run("F", user="x")
    second.close()
    first.close()
    fresh = Store(db)
    with fresh.read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 7
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
