"""Bad command-line input: a usage error or one line ``Error: ...`` from both command lines
(runstore and python flow.py), never a traceback; out-of-range integers, empty SQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import FLOWS, invoke_cli
from runstore import Store
from runstore.cli import cli


@pytest.mark.parametrize("limit", ["0", "-1", "99999999999999999999", str(10**9 + 1)])
def test_runs_limit_out_of_range_is_a_usage_error(runs_db: Path, limit: str):
    result = invoke_cli("runs", "--limit", limit, db=runs_db)
    assert result.exit_code == 2, result.output
    assert "--limit" in result.output and "Traceback" not in result.output


def test_runs_limit_at_the_bound_works(runs_db: Path):
    result = invoke_cli("runs", "--all", "--limit", str(10**9), db=runs_db)
    assert result.exit_code == 0, result.output
    assert "F/1" in result.output


@pytest.mark.parametrize("query", ["", "   ", "\n\t", ";", "-- only a comment", "/* block */", "/* open"])
def test_sql_empty_query_is_a_usage_error(runs_db: Path, query: str):
    result = invoke_cli("sql", "--", query, db=runs_db)
    assert result.exit_code == 2, result.output
    assert "QUERY is empty" in result.output


def test_sql_query_with_comments_still_runs(runs_db: Path):
    result = invoke_cli("sql", "--json", "SELECT '--' AS a /* c */ -- trailing", db=runs_db)
    assert result.exit_code == 0, result.output
    assert '"a": "--"' in result.output


def test_sql_json_and_csv_are_exclusive(runs_db: Path):
    result = invoke_cli("sql", "--json", "--csv", "SELECT 1", db=runs_db)
    assert result.exit_code == 2
    assert "use one of --json, --jsonl or --csv" in result.output






def test_export_cli_without_runs_is_a_usage_error(runs_db: Path, tmp_path: Path):
    result = invoke_cli("export", "-o", str(tmp_path / "out.db"), db=runs_db)
    assert result.exit_code == 2
    assert not (tmp_path / "out.db").exists()






@pytest.mark.parametrize("option", ["--max-workers", "--max-num-splits"])
@pytest.mark.parametrize("number", ["0", "-3", "99999999999999999999"])
def test_flow_cli_integer_options_out_of_range_are_usage_errors(tmp_path: Path, option: str, number: str):
    from runstore.cli.flow import make_cli
    from runstore.runtime.runner import load_flow

    db = tmp_path / "flow.db"
    cli_group = make_cli(load_flow(FLOWS / "param_kinds_flow.py"))
    for command in ("run", "resume"):
        result = CliRunner().invoke(cli_group, ["--db", str(db), command, option, number])
        assert result.exit_code == 2, (command, result.output)
        assert option in result.output and "Traceback" not in result.output
    assert not db.exists() or Store(db).run_ref("ParamKindsFlow") is None  # nothing ran


def test_flow_cli_dump_negative_max_value_size_is_a_usage_error(tmp_path: Path):
    from runstore.cli.flow import make_cli
    from runstore.runtime.runner import load_flow

    result = CliRunner().invoke(make_cli(load_flow(FLOWS / "param_kinds_flow.py")),
                                ["--db", str(tmp_path / "f.db"), "dump", "--max-value-size", "-1", "1/start"])
    assert result.exit_code == 2 and "--max-value-size" in result.output


# ------------------------------------------------------------ one error wording for both CLIs


def test_both_command_lines_share_one_error_group():
    from runstore.cli.errors import OneLineErrors
    from runstore.cli.flow import make_cli
    from runstore.runtime.runner import load_flow

    assert type(cli) is OneLineErrors
    assert type(make_cli(load_flow(FLOWS / "param_kinds_flow.py"))) is OneLineErrors


def test_flow_cli_words_errors_like_runstore(tmp_path: Path):
    from runstore.cli.flow import make_cli
    from runstore.runtime.runner import load_flow

    db = tmp_path / "f.db"
    flow_cli = make_cli(load_flow(FLOWS / "param_kinds_flow.py"))
    missing = CliRunner().invoke(flow_cli, ["--db", str(db), "logs", "9/start"])
    assert (missing.exit_code, missing.output.splitlines()) == (
        1, [f"Error: Run('ParamKindsFlow/9') does not exist in {Store(db).where}"])
    bad = CliRunner().invoke(flow_cli, ["--db", str(db), "dump", "x/y/z/w"])
    assert bad.exit_code == 2 and bad.output.startswith("Error: expected RUN/STEP") and bad.output.count("\n") == 1
    shown = invoke_cli("show", "F/9", db=db)
    assert shown.exit_code == 1 and shown.output.startswith("Error: ") and shown.output.count("\n") == 1


def _failing_group():
    import click

    from runstore.cli.errors import OneLineErrors

    @click.group(cls=OneLineErrors)
    def tool() -> None:
        pass

    @tool.command()
    def boom() -> None:
        raise RuntimeError("kaput")

    return tool


def test_unexpected_exception_is_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RUNSTORE_DEBUG", raising=False)
    result = CliRunner().invoke(_failing_group(), ["boom"])
    assert result.exit_code == 1
    assert result.output == "Error: RuntimeError: kaput (set RUNSTORE_DEBUG=1 for details)\n"
    monkeypatch.setenv("RUNSTORE_DEBUG", "1")
    result = CliRunner().invoke(_failing_group(), ["boom"])
    assert isinstance(result.exception, RuntimeError) and result.output == ""


def test_closed_pipe_ends_quietly(runs_db: Path):
    import subprocess
    import sys

    query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300000) SELECT x FROM c"
    proc = subprocess.Popen([sys.executable, "-m", "runstore.cli", "--db", str(runs_db), "sql", query],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().split() == [b"x"]  # the reader takes one line and leaves
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == b""
