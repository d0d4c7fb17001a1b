"""The Ctrl-C tests hold when the suite runs with SIGINT ignored (`pytest &`, nohup, some CI).

A background job starts with SIGINT ignored and its children inherit that, so a test
that sends SIGINT to a child must reset it to the default in that child (issue #19).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# Every test that sends SIGINT to a child it started.
CTRL_C_TESTS = [
    "test_cli_admin.py::test_ctrl_c_stops_a_runaway_query",
    "test_runtime_cli.py::test_ctrl_c_interrupts_the_run_and_stops_workers",
    "test_interrupts.py::test_a_signal_interrupts_the_run_in_every_mode",
    "test_interrupts.py::test_resume_reruns_an_interrupted_run_from_the_interrupted_step",
    "test_security_open.py::test_ctrl_c_stops_an_endless_sql_query_with_130",
    "test_security_open.py::test_ctrl_c_stops_a_long_statement_inside_the_library",
    "test_ui_server.py::test_python_m_runstore_ui_serves_and_stops_on_ctrl_c",
    "test_ui_server.py::test_another_host_prints_a_warning",
    "test_executor_dask.py::test_ctrl_c_cancels_the_remote_tasks",
]


def test_every_test_sending_sigint_is_listed() -> None:
    senders = {path.name for path in TESTS.glob("test_*.py")
               if "SIGINT)" in path.read_text(encoding="utf-8") and path.name != Path(__file__).name}
    assert senders == {name.split("::")[0] for name in CTRL_C_TESTS}


@pytest.mark.stress
def test_ctrl_c_tests_pass_with_sigint_ignored(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "", "--basetemp", str(tmp_path / "t"),
         *[str(TESTS / name) for name in CTRL_C_TESTS]],
        cwd=TESTS.parent, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `pytest &` starts
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # every listed test ran and passed (a parametrized one counts once per case)
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed(, \d+ warnings?)? in .*", summary), summary  # nothing failed or skipped
    assert int(summary.split()[0]) >= len(CTRL_C_TESTS), summary
