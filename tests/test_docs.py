"""The docs tell the truth: figures quoted from one source, examples that run as shown (issue #19)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

# A measured figure: a number with a unit of time, size or ratio ("143 ms", "1.68 s", "11.7×").
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s?(ms|s|×|x|KiB|MiB|bytes)(?![\w])")


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


QUOTING = [
    ("README.md", "## Performance"),
    ("docs/flows.md", "## Performance"),
    ("docs/sql.md", "To *filter* runs by a parameter"),
]


@pytest.mark.parametrize(("page", "heading"), QUOTING, ids=[p for p, _ in QUOTING])
def test_docs_quote_figures_from_benchmarks_results(page: str, heading: str) -> None:
    """Every figure a page gives appears, as written, in benchmarks/RESULTS.md."""
    results = {f"{n}{' ' if u not in '×x' else ''}{u}" for n, u in FIGURE.findall(RESULTS.read_text("utf-8"))}
    section = _section(ROOT / page, heading)
    assert "benchmarks/RESULTS.md" in section, f"{page} does not name its source"
    quoted = {f"{n}{' ' if u not in '×x' else ''}{u}" for n, u in FIGURE.findall(section)}
    assert quoted, f"no figures found in {page}"
    assert not quoted - results, f"{page} quotes figures RESULTS.md does not have: {sorted(quoted - results)}"


# ---------------------------------------------------------------- examples run as shown


def _blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), re.S)


def _shell(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", line)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_pytest_example_is_self_contained(tmp_path: Path, page: str) -> None:
    """The pytest example runs as a test file of its own: AddFlow defined where it is used."""
    (example,) = [b for b in _blocks(page, "python") if "def test_add(run_flow)" in b]
    (tmp_path / "test_example.py").write_text(example)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr


def test_readme_client_snippet_runs_after_the_hello_flow(tmp_path: Path) -> None:
    env = {**os.environ, "RUNSTORE_DB": str(tmp_path / "runstore.db")}
    hello = subprocess.run([sys.executable, str(ROOT / "examples" / "hello_flow.py"), "run", "--tag", "demo"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert hello.returncode == 0, hello.stderr
    (snippet,) = [b for b in _blocks("README.md", "python") if 'Flow("HelloFlow").latest_run' in b]
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["Run('HelloFlow/1') True", "Hello, runstore!"]


def test_first_flows_example_runs_as_shown(tmp_path: Path) -> None:
    """docs/flows.md's first flow, saved as train.py, with the commands shown after it (notes.txt too)."""
    text = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8")
    first = _blocks("docs/flows.md", "python")[0]
    assert "class TrainFlow" in first and "notes.txt" in first
    (tmp_path / "train.py").write_text(first)
    after = text[text.index(first) + len(first):]
    commands = [line[2:] for line in re.search(r"```console\n(.*?)```", after, re.S).group(1).splitlines()
                if line.startswith("$ ")]
    assert any("notes.txt" in c for c in commands), "the example does not say how notes.txt comes about"
    env = {**os.environ, "RUNSTORE_DB": str(tmp_path / "runstore.db")}
    for command in commands:
        proc = _shell(command, tmp_path, env)
        assert proc.returncode == 0, (command, proc.stdout + proc.stderr)
    from runstore import Run, Store

    run = Run("TrainFlow/1", store=Store(tmp_path / "runstore.db"), _namespace_check=False)
    assert run.successful and run.data.notes == "first try\n" and len(run.data.models) == 2
