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


@pytest.mark.parametrize("args, code, message", [
    (["show", "F/99"], 1, "does not exist"),
    (["show", "F"], 2, "is not a pathspec"),
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


def test_diff_of_really_different_runs_and_show_of_a_resumed_run(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    fail = tmp_path / "fail"
    assert run_flow(FLOWS / "resume_flow.py", db, "--quiet", "run", "--max-workers", "1", "--alpha", "1").returncode == 0
    other = run_flow(FLOWS / "resume_flow.py", db, "--quiet", "run", "--max-workers", "1", "--alpha", "2",
                     "--label", "other", env={"RUNSTORE_USER": "bob"})
    assert other.returncode == 0, other.stderr
    out = run(db, "diff", "ResumeFlow/1", "ResumeFlow/2")
    params, env = out.split("environment:")[0], out.split("environment:")[1].split("code:")[0]
    assert re.search(r"^alpha\s+1\s+2$", params, re.M) and re.search(r'^label\s+"base"\s+"other"$', params, re.M)
    assert "learning" not in params  # only what differs
    assert re.search(r"^user\s+tester\s+bob$", env, re.M), env
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
