"""The client verbs of the `runstore` command: runs, show, logs, tag, diff."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import FLOWS, run_flow
from storefill import add_run

from runstore import Store
from runstore.cli import cli


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runstore.db"
    store = Store(path)
    add_run(store, alpha=0.1, tags=("exp",), result=0.91, stdout="first run\n")
    add_run(store, alpha=0.2, model=object(), result=0.95, source="print('v2')\n", stdout="second run\n")
    add_run(store, "G", user="bob", tags=("exp",))
    add_run(store, alpha=0.3, status="failed")
    store.close()
    return path


def run(db: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    assert result.exit_code == code, result.output
    return result.output


def test_runs_default_namespace_all_tags_limit(db: Path):
    lines = run(db, "runs").splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["F/3", "F/2", "F/1"]  # mine, newest first
    assert lines[2].split()[1] == "failed"
    assert [r["pathspec"] for r in json.loads(run(db, "runs", "--all", "--json"))] == ["F/3", "G/1", "F/2", "F/1"]
    assert [r["pathspec"] for r in json.loads(run(db, "runs", "--all", "--tag", "exp", "--json"))] == ["G/1", "F/1"]
    assert [r["pathspec"] for r in json.loads(run(db, "runs", "F", "--limit", "1", "--json"))] == ["F/3"]
    assert json.loads(run(db, "runs", "--namespace", "user:bob", "--json"))[0]["user"] == "bob"
    assert "either --namespace or --all" in run(db, "runs", "--all", "--namespace", "x", code=2)


def test_show_run_step_task(db: Path):
    out = run(db, "show", "F/2")
    assert "succeeded" in out and "alpha  0.2" in out and "result  float" in out
    info = json.loads(run(db, "show", "--json", "F/1"))
    assert info["parameters"] == {"alpha": "0.1"} and info["user_tags"] == ["exp"]
    assert [s["step"] for s in info["steps"]] == ["start", "end"]
    step = json.loads(run(db, "show", "--json", "F/2/start"))
    task_path = step["tasks"][0]["task"]
    task = json.loads(run(db, "show", "--json", task_path))
    model = next(a for a in task["artifacts"] if a["name"] == "model")
    assert model["encoding"] == "pickle" and model["value"].startswith("<object")
    assert task["metadata"]["script-name"] == "flow.py" and task["stdout_bytes"] == len("second run\n")


def test_logs(db: Path):
    task = json.loads(run(db, "show", "--json", "F/2/start"))["tasks"][0]["task"]
    assert run(db, "logs", "F/2").splitlines() == [f"[{task}]", "second run"]
    task = json.loads(run(db, "show", "--json", "F/1/start"))["tasks"][0]["task"]
    assert run(db, "logs", task) == "first run\n"
    assert run(db, "logs", "--stderr", task) == "warn\n"


def test_tags(db: Path):
    assert run(db, "tag", "add", "F/1", "best", "good").strip() == "F/1: best exp good"
    assert run(db, "tag", "replace", "F/1", "good", "great").strip() == "F/1: best exp great"
    assert run(db, "tag", "remove", "F/1", "best").strip() == "F/1: exp great"
    tags = json.loads(run(db, "tag", "list", "--json", "F/1"))
    assert tags["user"] == ["exp", "great"] and "user:tester" in tags["system"]
    out = run(db, "tag", "remove", "F/1", "user:tester", code=2)
    assert out.startswith("Error:") and out.count("\n") == 1
    assert json.loads(run(db, "runs", "--tag", "great", "--json"))[0]["pathspec"] == "F/1"


def test_diff(db: Path):
    out = run(db, "diff", "F/1", "F/2")
    assert "alpha  0.1  0.2" in out
    assert "environment: same" in out
    assert "-print('hello')" in out and "+print('v2')" in out


def test_diff_compares_scalar_artifacts(db: Path):
    """`diff` also compares results: scalar artifacts changed, added, removed (issue #19)."""
    out = run(db, "diff", "F/1", "F/2")
    section = out.split("artifacts:", 1)[1].split("environment:", 1)[0]
    assert [line.split() for line in section.splitlines()[3:]] == [["result", "0.91", "0.95", "changed"]]
    assert "model" not in out and "alpha" not in section  # no pickle loaded; parameters have their section
    removed = run(db, "diff", "F/2", "F/3").split("artifacts:", 1)[1]
    assert removed.splitlines()[3].split() == ["result", "0.95", "removed"]
    added = run(db, "diff", "F/3", "F/1").split("artifacts:", 1)[1]
    assert added.splitlines()[3].split() == ["result", "0.91", "added"]
    assert "artifacts: same" in run(db, "diff", "F/1", "F/1")


@pytest.mark.parametrize("args, code, message", [
    (["show", "F/99"], 1, "does not exist"),
    (["show", "Nope"], 1, "Nope"),  # `show F` lists F's runs now (issue #19)
    (["show", "/"], 2, "PATHSPEC is empty"),
    (["logs", "F/1/nostep"], 1, "does not exist"),
    (["diff", "F/1", "F/1/start"], 2, "is not a pathspec"),
    (["runs", "NoSuchFlow"], 1, "NoSuchFlow"),
    (["tag", "add", "F/1", ""], 2, ""),
])
def test_errors_are_one_line(db: Path, args: list[str], code: int, message: str):
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    assert result.exit_code == code, result.output
    assert result.output.startswith("Error") and message in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1


def test_show_prints_unicode_and_tables_align_wide_characters(tmp_path: Path):
    """Human output shows 'héllo ✓', not escapes; CJK and emoji keep columns aligned (issue #19)."""
    from runstore.util import display_width

    path = tmp_path / "unicode.db"
    store = Store(path)
    add_run(store, result="héllo ✓ 日本語 🎉", user="山田")
    store.close()
    out = run(path, "show", "F/1")
    assert '"héllo ✓ 日本語 🎉"' in out and "\\u" not in out
    info = json.loads(run(path, "show", "--json", "F/1"))  # --json: still valid, exact JSON
    assert next(a for a in info["artifacts"] if a["name"] == "result")["value"] == '"héllo ✓ 日本語 🎉"'
    assert info["user"] == "山田"
    # a table whose first column mixes widths: the second column starts at one terminal column
    query = "SELECT * FROM (VALUES ('日本語', 1), ('🎉🎉', 2), ('ab', 3), ('é', 4)) AS t"
    lines = run(path, "sql", query).splitlines()
    starts = {display_width(line[: len(line) - len(line.split()[-1])]) for line in lines[2:]}
    assert len(lines) == 6 and len(starts) == 1, lines
    assert display_width(lines[0]) == display_width(lines[1]) == max(display_width(x) for x in lines)
    # `runs`: a wide user name does not push the tags column out of line
    store = Store(path)
    add_run(store, user="bob", tags=("t1",))
    add_run(store, user="山田太郎", tags=("t2",))
    store.close()
    lines = run(path, "runs", "--all").splitlines()
    columns = {display_width(line[: line.index(" t")]) for line in lines[2:] if " t" in line}
    assert len(columns) == 1, lines


def test_show_a_flow_lists_its_runs(db: Path):
    """`runstore show Flow` (no run number) lists that flow's runs, every namespace (issue #19)."""
    lines = run(db, "show", "F").splitlines()
    assert lines[0].split()[:2] == ["pathspec", "status"]
    assert [line.split()[0] for line in lines[2:]] == ["F/3", "F/2", "F/1"]
    listed = json.loads(run(db, "show", "--json", "G"))
    assert [r["pathspec"] for r in listed] == ["G/1"] and listed[0]["user"] == "bob"  # not my namespace


def test_python_m_runstore_cmd_diff_is_runstore_diff(db: Path):
    """`python -m runstore.cmd.diff A B` (Metaflow's spelling) is `runstore diff A B` (issue #19)."""
    import os
    import subprocess
    import sys

    def python_m(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **(env or {})})

    expected = python_m("runstore", "--db", str(db), "diff", "F/1", "F/2")
    assert expected.returncode == 0 and "result  0.91  0.95  changed" in expected.stdout, expected.stderr
    alias = python_m("runstore.cmd.diff", "--db", str(db), "F/1", "F/2")
    assert (alias.returncode, alias.stdout) == (0, expected.stdout), alias.stderr
    by_env = python_m("runstore.cmd.diff", "F/1", "F/2", env={"RUNSTORE_DB": str(db)})
    assert by_env.stdout == expected.stdout
    missing = python_m("runstore.cmd.diff", "--db", str(db), "F/1", "F/99")
    assert missing.returncode == 1 and missing.stderr.startswith("Error:") and "Traceback" not in missing.stderr


def test_diff_of_really_different_runs_and_show_of_a_resumed_run(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    fail = tmp_path / "fail"
    assert run_flow(FLOWS / "resume_flow.py", db, "--quiet", "run", "--max-workers", "1", "--alpha", "1").returncode == 0
    other = run_flow(FLOWS / "resume_flow.py", db, "--quiet", "run", "--max-workers", "1", "--alpha", "2",
                     "--label", "other", env={"RUNSTORE_USER": "bob"})
    assert other.returncode == 0, other.stderr
    out = run(db, "diff", "ResumeFlow/1", "ResumeFlow/2")
    params, env = out.split("environment:")[0], out.split("environment:")[1].split("code:")[0]
    # each difference is marked (changed/added/removed) since diff compares artifacts too (#19)
    assert re.search(r"^alpha\s+1\s+2\s+changed$", params, re.M)
    assert re.search(r'^label\s+"base"\s+"other"\s+changed$', params, re.M)
    assert "learning" not in params  # only what differs
    assert re.search(r"^user\s+tester\s+bob\s+changed$", env, re.M), env
    assert "code: same" in out

    fail.touch()
    failed = run_flow(FLOWS / "resume_flow.py", db, "--quiet", "run", "--max-workers", "1",
                      env={"RESUME_FAIL_FILE": str(fail)})
    assert failed.returncode == 1
    fail.unlink()
    resumed = run_flow(FLOWS / "resume_flow.py", db, "--quiet", "resume", "--max-workers", "1", "--origin-run-id", "3")
    assert resumed.returncode == 0, resumed.stderr
    shown = run(db, "show", "ResumeFlow/4")
    assert re.search(r"^origin\s+ResumeFlow/3$", shown, re.M), shown
    assert re.search(r"^status\s+succeeded$", shown, re.M)
    assert json.loads(run(db, "show", "--json", "ResumeFlow/4"))["origin"] == "ResumeFlow/3"
    assert json.loads(run(db, "show", "--json", "ResumeFlow/3"))["origin"] is None
