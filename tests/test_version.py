"""get_version() from git checkouts and installs; read_info_file()."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runstore
from runstore import RunstoreError, get_version, read_info_file
from runstore._version import __version__
from runstore.version import INFO_ENV, format_version, parse_describe

PACKAGE = Path(runstore.__file__).resolve().parent


@pytest.mark.parametrize(
    ("parts", "full", "public"),
    [
        (("0.1.0", 0, "abc1234", False), "0.1.0", "0.1.0"),
        (("0.1.0", 0, "abc1234", True), "0.1.0-dirty", "0.1.0"),
        (("0.1.0", 5, "abc1234", False), "0.1.0.post5-gitabc1234", "0.1.0.post5"),
        (("1.20.3", 12, "0123456789", True), "1.20.3.post12-git0123456-dirty", "1.20.3.post12"),
    ],
)
def test_format_version(parts: tuple, full: str, public: str) -> None:
    assert format_version(*parts) == full
    assert format_version(*parts, public=True) == public


def test_parse_describe() -> None:
    assert parse_describe("v0.1.0-0-g1234567") == ("0.1.0", 0, "1234567", False)
    assert parse_describe("v2.0.10-31-gdeadbee-dirty\n") == ("2.0.10", 31, "deadbee", True)
    for other in ("0.1.0-1-gabc", "vX-1-gabc", "release-1-gabc1234", ""):
        assert parse_describe(other) is None


def test_public_version_is_pep_440() -> None:
    import re

    assert re.fullmatch(r"\d+\.\d+\.\d+(\.post\d+)?", get_version(public=True))


GIT = shutil.which("git")


def _version_in(root: Path, public: bool = False, path: str | None = None) -> str:
    code = f"import runstore; print(runstore.get_version(public={public}))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    if path is not None:
        env["PATH"] = path
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_get_version_from_a_git_checkout(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    shutil.copytree(PACKAGE, root / "runstore", ignore=shutil.ignore_patterns("__pycache__"))
    assert _version_in(root) == __version__  # copied, but not a git checkout
    # as in a real checkout: bytecode the subprocesses write is not committed (otherwise
    # recompiling an edited module would make the tree dirty when run without
    # PYTHONDONTWRITEBYTECODE, as CI does)
    (root / ".gitignore").write_text("__pycache__/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "first")
    head = _git(root, "rev-parse", "--short=7", "HEAD")
    assert _version_in(root) == f"{__version__}.post1-git{head}"  # no tag yet
    with open(root / "runstore" / "util.py", "a", encoding="utf-8") as fh:
        fh.write("# an uncommitted change\n")
    assert _version_in(root) == f"{__version__}.post1-git{head}-dirty"
    assert _version_in(root, public=True) == f"{__version__}.post1"
    _git(root, "checkout", "-q", "--", ".")
    _git(root, "tag", "v7.8.9")
    assert _version_in(root) == "7.8.9"
    (root / "NOTES").write_text("x")
    _git(root, "add", "NOTES")
    _git(root, "commit", "-qm", "second")
    head = _git(root, "rev-parse", "--short=7", "HEAD")
    assert _version_in(root) == f"7.8.9.post1-git{head}"
    assert _version_in(root, public=True) == "7.8.9.post1"
    # the answer is cached under the checkout's fingerprint: same answer, no git needed
    assert _version_in(root, path="/nonexistent") == f"7.8.9.post1-git{head}"
    (root / ".git" / "runstore-version.json").unlink()
    assert _version_in(root, path="/nonexistent") == __version__  # git missing
    assert _version_in(root) == f"7.8.9.post1-git{head}"  # failures are not cached


def test_read_info_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INFO_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "flow.py")])
    assert read_info_file() is None
    (tmp_path / ".runstore").mkdir()
    (tmp_path / ".runstore" / "INFO").write_text(json.dumps({"flow_name": "HelloFlow", "version": "0.1.0"}))
    assert read_info_file() == {"flow_name": "HelloFlow", "version": "0.1.0"}
    task_info = tmp_path / "task-info.json"
    task_info.write_text(json.dumps({"run_id": "5"}))
    monkeypatch.setenv(INFO_ENV, str(task_info))
    assert read_info_file() == {"run_id": "5"}  # the running task's INFO wins
    task_info.write_text("{broken")
    with pytest.raises(RunstoreError, match="not valid JSON"):
        read_info_file()


def test_get_version_is_lazy() -> None:
    code = "import runstore.version as v; print(v._git_parts.cache_info().currsize)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"  # importing runstore never runs git
    assert get_version() == get_version()
    assert runstore.version._git_parts.cache_info().currsize == 1  # computed once, cached


def test_version_command_flag_and_runs_agree(tmp_path: Path) -> None:
    """`runstore version`, `runstore --version` and a run's runstore_version: one string (issue #19)."""
    db = tmp_path / "runstore.db"
    hello = Path(__file__).resolve().parent.parent / "examples" / "hello_flow.py"
    ran = subprocess.run([sys.executable, str(hello), "--db", str(db), "run"], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    from runstore import Run

    run = Run("HelloFlow/1", store=runstore.Store(db), _namespace_check=False)
    recorded = next(t for t in run.system_tags if t.startswith("runstore_version:")).split(":", 1)[1]
    assert run.end_task.metadata_dict["runstore_version"] == recorded
    command = subprocess.run([sys.executable, "-m", "runstore", "version"], capture_output=True, text=True)
    flag = subprocess.run([sys.executable, "-m", "runstore", "--version"], capture_output=True, text=True)
    assert command.stdout.strip() == recorded == get_version()
    assert flag.stdout.strip() == f"runstore, version {recorded}"
