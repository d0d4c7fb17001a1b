"""``python flow.py tag add|remove|replace|list`` as built by make_tag_command."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from storefill import fill_run

from runstore import Run, Store, namespace, use_store
from runstore.cli.tag import make_tag_command


@pytest.fixture
def store(memory_store, monkeypatch):
    monkeypatch.setenv("RUNSTORE_USER", "anne")
    fill_run(memory_store, user="anne", tags=["t1"])   # 1
    fill_run(memory_store, user="will")                # 2
    fill_run(memory_store, user="anne")                # 3
    return memory_store


def invoke(store, *args: str):
    return CliRunner().invoke(make_tag_command("PredictionFlow", store), list(args))


def tags_of(store, number: int) -> set[str]:
    namespace(None)
    return set(Run(f"PredictionFlow/{number}", store=store).user_tags)


def test_add_remove_replace(store):
    result = invoke(store, "add", "--run-id", "1", "best", "candidate")
    assert result.exit_code == 0, result.output
    assert "Operation successful. New tags:" in result.output and "best" in result.output
    assert tags_of(store, 1) == {"t1", "best", "candidate"}
    assert invoke(store, "remove", "--run-id", "1", "candidate").exit_code == 0
    assert invoke(store, "replace", "--run-id", "1", "--remove", "best", "--add", "winner").exit_code == 0
    assert tags_of(store, 1) == {"t1", "winner"}


def test_errors_are_one_line_with_metaflow_wording(store):
    cases = [
        (["add", "x"], 2, "Please specify a run-id using --run-id. PredictionFlow's latest run in namespace "
                          "user:anne has id 3."),
        (["add", "--run-id", "1/start", "x"], 2, "Run-id 1/start is not a valid run-id"),
        (["add", "--run-id", "99", "x"], 1, "No run PredictionFlow/99 found for flow PredictionFlow"),
        (["add", "--run-id", "2", "x"], 1, "Run PredictionFlow/2 for flow PredictionFlow does not belong to "
                                           "namespace user:anne"),
        (["remove", "--run-id", "1", "runtime:local"], 2,
         "Cannot remove a tag that is an existing system tag (['runtime:local'])"),
        (["add", "--run-id", "1", ""], 2, "Tags must not be empty string"),
        (["replace", "--run-id", "1", "--add", "z"], 2,
         "Specify at least one tag to remove; else please use tag add."),
        (["replace", "--run-id", "1", "--remove", "z"], 2,
         "Specify at least one tag to add, else please use tag remove."),
        (["replace", "--run-id", "1"], 2,
         "Specify at least one tag to add (--add) and one tag to remove (--remove)"),
        (["list", "--all", "--my-runs"], 2, "Option --all cannot be used together with --my-runs."),
    ]
    for args, code, message in cases:
        result = invoke(store, *args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert tags_of(store, 1) == {"t1"} and tags_of(store, 2) == set()


def test_other_namespaces_with_namespace_option(store):
    assert invoke(store, "add", "--run-id", "2", "--namespace", "user:will", "seen").exit_code == 0
    assert invoke(store, "add", "--run-id", "2", "--namespace", "", "seen2").exit_code == 0
    assert tags_of(store, 2) == {"seen", "seen2"}


def test_no_runs(store, memory_store):
    result = CliRunner().invoke(make_tag_command("NeverRan", memory_store), ["add", "x"])
    assert result.exit_code == 1 and "No run found for NeverRan. Please run the flow before tagging." in result.output
    fill_run(memory_store, "WillsFlow", user="will")
    result = CliRunner().invoke(make_tag_command("WillsFlow", memory_store), ["add", "x"])
    assert result.exit_code == 1 and "No run found for WillsFlow in namespace user:anne" in result.output


def test_list(store):
    result = invoke(store, "list")
    assert result.exit_code == 0
    assert [line for line in result.output.splitlines() if not line.startswith(" ")] == [
        "PredictionFlow/3", "PredictionFlow/2", "PredictionFlow/1"]
    mine = json.loads(invoke(store, "list", "--my-runs", "--json").output)
    assert [r["run"] for r in mine] == ["PredictionFlow/3", "PredictionFlow/1"]
    assert mine[1]["user_tags"] == ["t1"] and "user:anne" in mine[1]["system_tags"]
    one = invoke(store, "list", "1", "--hide-system-tags")
    assert "t1" in one.output and "system tags" not in one.output
    grouped = invoke(store, "list", "--group-by-tag").output.splitlines()
    assert "user:t1 ; PredictionFlow/1" in grouped
    assert "system:user:will ; PredictionFlow/2" in grouped


def test_store_found_on_the_click_context(store):
    @click.group()
    @click.pass_context
    def flow_cli(ctx: click.Context) -> None:
        ctx.obj = {"store": store}

    flow_cli.add_command(make_tag_command("PredictionFlow"))
    result = CliRunner().invoke(flow_cli, ["tag", "add", "--run-id", "3", "ctx"])
    assert result.exit_code == 0, result.output
    assert tags_of(store, 3) == {"ctx"}


def test_store_from_use_store(store):
    with use_store(store):
        result = CliRunner().invoke(make_tag_command("PredictionFlow"), ["add", "--run-id", "3", "used"])
    assert result.exit_code == 0, result.output
    assert tags_of(store, 3) == {"used"}


def test_every_command_has_help_with_an_example():
    group = make_tag_command("PredictionFlow")
    for name, command in group.commands.items():
        result = CliRunner().invoke(group, [name, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, name


def test_file_store_from_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNSTORE_USER", "anne")
    file_store = Store(tmp_path / "runstore.db")
    fill_run(file_store, user="anne")
    monkeypatch.setenv("RUNSTORE_DB", str(tmp_path / "runstore.db"))
    result = CliRunner().invoke(make_tag_command("PredictionFlow"), ["add", "--run-id", "1", "disk"])
    assert result.exit_code == 0, result.output
    assert tags_of(file_store, 1) == {"disk"}


def test_db_path_on_the_click_context(tmp_path, monkeypatch):
    """The flow CLI keeps --db in ctx.obj['db']; the tag commands use that file."""
    monkeypatch.setenv("RUNSTORE_USER", "anne")
    file_store = Store(tmp_path / "other.db")
    fill_run(file_store, user="anne")

    @click.group()
    @click.option("--db", default=None)
    @click.pass_context
    def flow_cli(ctx: click.Context, db: str | None) -> None:
        ctx.obj = {"db": db, "quiet": False}

    flow_cli.add_command(make_tag_command("PredictionFlow"))
    result = CliRunner().invoke(flow_cli, ["--db", str(tmp_path / "other.db"), "tag", "add", "--run-id", "1", "x"])
    assert result.exit_code == 0, result.output
    assert tags_of(file_store, 1) == {"x"}
    assert not (tmp_path / "runstore.db").exists()
