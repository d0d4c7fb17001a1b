"""Code snapshots are complete or say why not (issue #13): whatever the directories are called,
the package layout kept for ``python -m pkg.flow``, ``.gitignore`` and ``RUNSTORE_CODE_EXCLUDE``
honoured, and a tree over the cap refused with one line — never truncated."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import run_flow

from runstore import Run, Store
from runstore.errors import CodeSnapshotError, RunstoreError
from runstore.runtime.environment import IgnoreRules, code_package, snapshot_files

FLOW = '''
from {imp} import {name}
from runstore import FlowSpec, step


class {cls}(FlowSpec):
    @step
    def start(self):
        self.made = {name}()
        print("made", self.made)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    {cls}()
'''


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def as_user(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    return {"RUNSTORE_USER": "anne", "HOME": str(home), "RUNSTORE_HOME": str(home / ".runstore")}


def names_in(run: Run) -> list[str]:
    return sorted(run.code.tarball.getnames())


def test_packages_named_env_build_dist_venv_are_kept_and_deploy_trigger_works(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project, {
        "flow.py": FLOW.format(imp="env", name="make", cls="EnvFlow"),
        "env/__init__.py": "from build.parts import part\nfrom dist import dist_part\n"
                           "from venv import venv_part\n\ndef make():\n    return part() + dist_part() + venv_part()\n",
        "build/__init__.py": "", "build/parts.py": "def part():\n    return 'b'\n",
        "dist/__init__.py": "def dist_part():\n    return 'd'\n",
        "venv/__init__.py": "def venv_part():\n    return 'v'\n",
        "node_modules/tool.py": "x = 1\n",
        "realenv/pyvenv.cfg": "home = /usr/bin\n", "realenv/lib/site.py": "x = 1\n",
        "condaenv/conda-meta/history": "", "condaenv/lib/thing.py": "x = 1\n",
        ".hidden/mod.py": "x = 1\n",
        "env/__pycache__/junk.py": "x = 1\n",
    })
    db, user = tmp_path / "runstore.db", as_user(tmp_path)
    ran = run_flow(project / "flow.py", db, "run", env=user)
    assert ran.returncode == 0, ran.stderr
    store = Store(db)
    run = Run("EnvFlow/1", store=store, _namespace_check=False)
    assert run.data.made == "bdv"
    assert names_in(run) == [".runstore/INFO", "build/__init__.py", "build/parts.py", "dist/__init__.py",
                             "env/__init__.py", "flow.py", "node_modules/tool.py", "venv/__init__.py"]

    deployed = run_flow(project / "flow.py", db, "deploy", env=user)
    assert deployed.returncode == 0, deployed.stderr
    # The working copy changes: trigger runs the deployed tree alone, unpacked elsewhere
    # (a snapshot without env/ would fail there with ModuleNotFoundError).
    (project / "build" / "parts.py").write_text("def part():\n    return 'edited'\n")
    triggered = run_flow(project / "flow.py", db, "trigger", env=user, cwd=tmp_path)
    assert triggered.returncode == 0, triggered.stderr
    assert "ModuleNotFoundError" not in triggered.stderr
    production = Run("EnvFlow/2", store=store, _namespace_check=False)
    assert production.successful and production.invocation == "trigger" and production.data.made == "bdv"


def test_python_m_package_flow_keeps_its_layout_and_triggers_as_a_module(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project, {
        "mypkg/__init__.py": "",
        "mypkg/helpers.py": "def make():\n    return 'pkg'\n",
        "mypkg/flow.py": FLOW.format(imp=".helpers", name="make", cls="PkgFlow"),
        "otherpkg/__init__.py": "VALUE = 1\n",
    })
    db, user = tmp_path / "runstore.db", as_user(tmp_path)

    def module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mypkg.flow", "--db", str(db), *args], capture_output=True,
                              text=True, cwd=cwd, env={**os.environ, **user}, timeout=120)

    ran = module("run", cwd=project)
    assert ran.returncode == 0, ran.stderr
    store = Store(db)
    run = Run("PkgFlow/1", store=store, _namespace_check=False)
    assert run.data.made == "pkg"
    assert names_in(run) == [".runstore/INFO", "mypkg/__init__.py", "mypkg/flow.py", "mypkg/helpers.py",
                             "otherpkg/__init__.py"]
    assert run.code.info["module"] == "mypkg.flow" and run.code.info["script"] == "mypkg/flow.py"
    assert "self.made = make()" in run.code.flowspec

    deployed = module("deploy", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    assert f"python -m mypkg.flow --db {db} trigger" in deployed.stdout
    # The working copy changes after the deploy; trigger is run from the project directory,
    # where `mypkg` of the working copy would shadow the deployed one if sys.path were wrong.
    (project / "mypkg" / "helpers.py").write_text("def make():\n    return 'edited'\n")
    triggered = module("trigger", cwd=project)
    assert triggered.returncode == 0, triggered.stderr
    production = Run("PkgFlow/2", store=store, _namespace_check=False)
    assert production.successful and production.invocation == "trigger"
    assert production.data.made == "pkg"  # the deployed code, not the edited working copy
    assert production.code.info["module"] == "mypkg.flow"


def test_gitignored_files_and_configured_excludes_are_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, {
        ".gitignore": "*.gen.py\n/flows/scratch/\n",
        "flows/.gitignore": "# local\nlocal_*.py\n!local_keep.py\ndata/**/cache.py\n",
        "flows/flow.py": "x = 1\n",
        "flows/model.gen.py": "x = 1\n",
        "flows/local_notes.py": "x = 1\n", "flows/local_keep.py": "x = 1\n",
        "flows/scratch/try.py": "x = 1\n",
        "flows/data/a/b/cache.py": "x = 1\n", "flows/data/a/b/keep.py": "x = 1\n",
        "flows/pkg/.gitignore": "secret.py\n", "flows/pkg/secret.py": "x = 1\n", "flows/pkg/ok.py": "x = 1\n",
        "flows/notebooks/exp.py": "x = 1\n", "flows/big/blob.py": "x = 1\n",
    })
    monkeypatch.setenv("RUNSTORE_CODE_EXCLUDE", "notebooks/, big/blob.py")
    names = [name for name, _, _ in snapshot_files(repo / "flows")]
    assert names == ["data/a/b/keep.py", "flow.py", "local_keep.py", "pkg/ok.py"]
    members = tarfile_names(code_package(repo / "flows" / "flow.py", "F"))
    assert members == [*names, ".runstore/INFO"]


def tarfile_names(data: bytes) -> list[str]:
    import io
    import tarfile

    return tarfile.open(fileobj=io.BytesIO(data)).getnames()


@pytest.mark.parametrize("pattern, path, is_dir, expected", [
    ("*.log", "a/b/x.log", False, True),
    ("/top.py", "top.py", False, True),
    ("/top.py", "a/top.py", False, False),
    ("build/", "build", False, False),
    ("build/", "a/build", True, True),
    ("a/*.py", "a/x.py", False, True),
    ("a/*.py", "a/b/x.py", False, False),
    ("**/gen", "x/y/gen", True, True),
    ("a/**", "a/b/c.py", False, True),
    ("a/**/z.py", "a/z.py", False, True),
    ("a/**/z.py", "a/b/c/z.py", False, True),
    ("x?.py", "xy.py", False, True),
    ("x[0-9].py", "x5.py", False, True),
    ("x[!0-9].py", "x5.py", False, False),
    ("\\#hash.py", "#hash.py", False, True),
    ("# comment", "# comment", False, False),
])
def test_ignore_rules_follow_gitignore(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    rules = IgnoreRules()
    rules.add([pattern], "")
    assert rules.ignored(path, is_dir) is expected


def test_negation_and_base_of_a_nested_ignore_file() -> None:
    rules = IgnoreRules()
    rules.add(["*.py", "!keep.py"], "")
    rules.add(["keep.py"], "sub")
    assert [rules.ignored(p, False) for p in ("a.py", "keep.py", "sub/keep.py", "other/keep.py")] == \
        [True, False, True, False]


def big_tree(root: Path, files: int, each: int) -> None:
    line = "VALUE = 'x' * 80  # padding so the tree is large\n"
    body = line * (each // len(line) + 1)
    for i in range(files):
        path = root / f"pkg{i % 4}" / f"mod_{i:02d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body[:each])


def test_a_tree_over_the_cap_fails_the_launch_with_one_line(tmp_path: Path) -> None:
    project = tmp_path / "project"
    big_tree(project, 11, 1 << 20)
    (project / "pkg0" / "huge.py").write_text("x = 1\n" * 400_000)  # 2.3 MiB, the largest
    write(project, {"flow.py": FLOW.format(imp="os", name="getpid", cls="BigFlow")})
    db = tmp_path / "runstore.db"
    proc = run_flow(project / "flow.py", db, "run", env=as_user(tmp_path))
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("Error:") and "over the 10.0 MiB cap" in err
    assert re.search(r"largest: pkg0/huge\.py \(2\.3 MiB\), pkg\d/mod_\d\d\.py \(1\.0 MiB\)", err), err
    assert "RUNSTORE_CODE_MAX_MB=14" in err and ".gitignore" in err and "RUNSTORE_CODE_EXCLUDE" in err
    assert not db.exists() or Store(db).sql("SELECT count(*) FROM runs").rows == [(0,)]  # no run


def test_an_18_mb_tree_with_the_cap_raised_keeps_every_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    big_tree(project, 60, 300_000)  # 61 files, 18 MB, as in the issue
    write(project, {"flow.py": FLOW.format(imp="os", name="getpid", cls="BigFlow")})
    db = tmp_path / "runstore.db"
    proc = run_flow(project / "flow.py", db, "run", env={**as_user(tmp_path), "RUNSTORE_CODE_MAX_MB": "20"})
    assert proc.returncode == 0, proc.stderr
    run = Run("BigFlow/1", store=Store(db), _namespace_check=False)
    names = names_in(run)
    assert len(names) == 62 and "flow.py" in names and "pkg3/mod_59.py" in names
    assert run.code.tarball.getmember("pkg3/mod_59.py").size == 300_000


def test_a_bad_cap_setting_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f.py").write_text("x = 1\n")
    for bad in ("lots", "-1", "nan", "0"):
        monkeypatch.setenv("RUNSTORE_CODE_MAX_MB", bad)
        with pytest.raises(CodeSnapshotError, match="RUNSTORE_CODE_MAX_MB=.* is not a size in MiB") as caught:
            code_package(tmp_path / "f.py", "F")
        assert isinstance(caught.value, (RunstoreError, ValueError))
