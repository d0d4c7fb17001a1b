"""Stores for the UI tests and screenshots: real runs of tests/flows/ui_flow.py, plus
hand-made rows a sender could put in a file (hostile HTML, a foreign pickle, a live task).

Example
-------
>>> # store, info = demo_store(tmp_path / "runstore.db")
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from runstore import Runner, Store
from runstore.runtime import load_flow

HERE = Path(__file__).resolve().parent
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'


def demo_store(path: Path) -> dict[str, Any]:
    """Four real runs of TrainFlow by ``tester`` (tags, alphas, one failed fold) and one by ``will``.

    Returns pathspecs: ``good`` (TrainFlow/1, tag baseline), ``better`` (TrainFlow/2, tag exp,
    alpha 0.5), ``failed`` (TrainFlow/3, FAIL_FOLD=1), ``other_user`` (TrainFlow/4, user will).
    """
    store = Store(path)
    flow = load_flow(HERE / "flows" / "ui_flow.py")
    runner = Runner(flow, store=store)
    good = runner.run(alpha=0.1, tags=["baseline"], max_workers=2)
    better = runner.run(alpha=0.5, tags=["exp"], max_workers=2)
    os.environ["FAIL_FOLD"] = "1"
    try:
        failed = runner.run(alpha=0.3, tags=["exp"], max_workers=2, raise_on_failure=False)
    finally:
        del os.environ["FAIL_FOLD"]
    os.environ["RUNSTORE_USER"], saved = "will", os.environ.get("RUNSTORE_USER", "tester")
    try:
        other = runner.run(alpha=0.2, max_workers=2)
    finally:
        os.environ["RUNSTORE_USER"] = saved
    return {"store": store, "good": good.pathspec, "better": better.pathspec, "failed": failed.pathspec,
            "other_user": other.pathspec}


def add_live_task(store: Store, flow: str = "LiveFlow") -> dict[str, Any]:
    """A running run (owned by this process) whose ``start`` task has an unfinished attempt."""
    record = store.create_run(flow, user=os.environ.get("RUNSTORE_USER", "tester"))
    task_id = store.create_task(record.run_id, "start")
    store.start_attempt(task_id, 0)
    return {"run_id": record.run_id, "pathspec": record.pathspec, "task_id": task_id,
            "task": f"{record.pathspec}/start/{task_id}"}


def write_log(db: Path, task_id: int, attempt: int, stdout: str) -> None:
    """Replace an attempt's stdout in the file (as a streaming writer would), from another connection."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("UPDATE attempts SET stdout = ? WHERE task_id = ? AND attempt = ?", (stdout, task_id, attempt))
    finally:
        conn.close()


def foreign_store(path: Path, marker: Path) -> dict[str, Any]:
    """A store written by another user (another RUNSTORE_HOME): a pickled artifact whose
    unpickling would create ``marker``, and HTML in its tags, strings, logs and parameters."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(HERE)!r})
        from runstore import Store
        from storefill import fill_run

        class Boom:
            def __reduce__(self):
                return (os.system, ({f"touch {marker}"!r},))

        store = Store({str(path)!r})
        fill_run(store, "Foreign", user="mallory", params={{"alpha": {HOSTILE!r}}},
                 artifacts={{"start": {{"evil": Boom(), "html": {HOSTILE!r}}}}})
    """)
    env = {**os.environ, "RUNSTORE_HOME": str(path.parent / "mallory-home"), "RUNSTORE_USER": "mallory"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    # Tags and logs a runstore would refuse to write, put in by hand as a sender could.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        run_id, flow_id, created = conn.execute("SELECT run_id, flow_id, created_at FROM runs").fetchone()
        conn.execute("INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at, run_status)"
                     " VALUES (?, ?, 0, ?, ?, 'succeeded')", (run_id, HOSTILE, flow_id, created))
        conn.execute("UPDATE attempts SET stdout = ?", (HOSTILE + "\n",))
    finally:
        conn.close()
    return {"pathspec": "Foreign/1", "marker": marker}
