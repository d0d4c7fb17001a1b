"""Attacks on honest namespaces, production authority, paths and terminal output (SPEC §13, 5-7).

Each hostile file is built as an attacker would: run runstore normally, then edit the
file with the ``sqlite3`` module. The CLI attacks run real processes with their own
homes (``RUNSTORE_HOME``), as two different people would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runstore import Flow, NamespaceMismatch, Run, Runstore, Store, TaggingError, namespace
from runstore.tags import RESERVED_PREFIXES

from storefill import add_run, fill_run

FLOW = Path(__file__).parent / "flows" / "resume_flow.py"
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\r\x9b\u202e"  # OSC title, BEL, clear screen, CR, CSI (C1), bidi
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


def as_user(name: str, tmp_path: Path, home: str | None = None) -> dict[str, str]:
    home_dir = tmp_path / f"home-{home or name}"
    return {"RUNSTORE_USER": name, "USER": name, "HOME": str(home_dir), "RUNSTORE_HOME": str(home_dir / ".runstore")}


def flow_cli(script: Path, db: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), "--db", str(db), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def runstore(db: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def project(tmp_path: Path) -> Path:
    """The test flow copied into its own directory (its code package is that directory)."""
    code = tmp_path / "project"
    code.mkdir(exist_ok=True)
    script = code / "resume_flow.py"
    shutil.copy(FLOW, script)
    return script


def dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def run_tags(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT r.run_number, t.tag, t.is_system FROM run_tags t JOIN runs r"
                            " ON r.run_id = t.run_id ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------- reserved prefixes: every path


@pytest.mark.parametrize("prefix", RESERVED_PREFIXES)
@pytest.mark.parametrize("edit", [
    lambda run, tag: run.add_tag(tag),
    lambda run, tag: run.add_tags(["ok", tag]),
    lambda run, tag: run.replace_tag("mine", tag),
    lambda run, tag: run.replace_tags(["mine"], [tag]),
], ids=["add_tag", "add_tags", "replace_tag", "replace_tags"])
def test_client_refuses_reserved_user_tags(memory_store, prefix, edit):
    fill_run(memory_store, user="anne", tags=["mine"])
    namespace(None)
    run = Run("PredictionFlow/1", store=memory_store)
    with pytest.raises(TaggingError, match="reserved for system tags") as info:
        edit(run, f"{prefix}someone")
    assert isinstance(info.value, ValueError)
    assert Run("PredictionFlow/1", store=memory_store).user_tags == {"mine"}  # nothing written


def test_store_refuses_reserved_user_tags_at_creation(memory_store):
    with pytest.raises(TaggingError, match="'user:will'"):
        memory_store.create_run("F", user="anne", user_tags=["user:will"])
    assert memory_store.find_flow("F") is None


def test_every_command_line_refuses_reserved_user_tags(tmp_path):
    script, db = project(tmp_path), tmp_path / "runstore.db"
    anne = as_user("anne", tmp_path)
    first = flow_cli(script, db, anne, "run")
    assert first.returncode == 0, first.stderr
    before = run_tags(db)

    at_run = flow_cli(script, db, anne, "run", "--tag", "production:ResumeFlow-1-abcdef")
    one_line_error(at_run, "production:", "reserved")
    for args in (["tag", "add", "--run-id", "1", "user:will"],
                 ["tag", "replace", "--run-id", "1", "--remove", "x", "--add", "production:ResumeFlow-0-aaaaaa"]):
        one_line_error(flow_cli(script, db, anne, *args), "reserved")
    for args in (["tag", "add", "ResumeFlow/1", "user:will"],
                 ["tag", "add", "ResumeFlow/1", "ok", "project:x"],
                 ["tag", "replace", "ResumeFlow/1", "x", "production:ResumeFlow-0-aaaaaa"]):
        one_line_error(runstore(db, *args, env=anne), "reserved")
    assert run_tags(db) == before  # no run 2, no tag added
    resumed = flow_cli(script, db, anne, "resume", "--origin-run-id", "1", "--tag", "user:will")
    one_line_error(resumed, "reserved")
    assert run_tags(db) == before


def test_merge_of_a_file_with_a_reserved_user_tag_is_refused_whole(tmp_path):
    victim_db, source_db = tmp_path / "victim.db", tmp_path / "colleague.db"
    victim = Store(victim_db)
    add_run(victim, "F", user="anne")
    victim.close()
    source = Store(source_db)
    add_run(source, "F", user="mallory")
    add_run(source, "G", user="mallory")
    source.close()
    conn = sqlite3.connect(source_db)  # the attacker plants a production tag as a user tag
    with conn:
        conn.execute("INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at)"
                     " SELECT run_id, 'production:G-0-abcdef', 0, flow_id, created_at FROM runs"
                     " WHERE flow_id = (SELECT flow_id FROM flows WHERE name = 'G')")
    conn.close()
    before = dump(victim_db)
    result = runstore(victim_db, "merge", str(source_db))
    one_line_error(result, "G/1", "production:G-0-abcdef")
    assert dump(victim_db) == before  # not even F/1 of the source came in


# ---------------------------------------------------------------- a reserved namespace: system tags only


def _hand_tagged(tmp_path: Path) -> Path:
    """anne's run 1, plus run 2 whose *user* tags claim production and will's namespace."""
    db = tmp_path / "runstore.db"
    store = Store(db)
    fill_run(store, "TrainFlow", user="anne", namespace="production:TrainFlow-0-abcdef")
    fill_run(store, "TrainFlow", user="anne")
    store.close()
    conn = sqlite3.connect(db)
    with conn:
        for tag in ("production:TrainFlow-0-abcdef", "user:will"):
            conn.execute("INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at)"
                         " SELECT run_id, ?, 0, flow_id, created_at FROM runs WHERE run_number = 2", (tag,))
    conn.close()
    return db


def test_hand_edited_user_tag_does_not_enter_a_reserved_namespace(tmp_path):
    db = _hand_tagged(tmp_path)
    store = Store(db, readonly=True)
    namespace("production:TrainFlow-0-abcdef")
    assert [r.id for r in Flow("TrainFlow", store=store)] == ["1"]
    assert Flow("TrainFlow", store=store).latest_run.id == "1"
    with pytest.raises(NamespaceMismatch):
        Run("TrainFlow/2", store=store)
    assert [r.id for r in Flow("TrainFlow", store=store).runs("production:TrainFlow-0-abcdef")] == ["1"]
    namespace("user:will")  # will's default view: nothing of anne's
    assert list(Runstore(store=store)) == []
    with pytest.raises(NamespaceMismatch):
        Run("TrainFlow/2", store=store)
    namespace(None)
    assert Run("TrainFlow/2", store=store).id == "2"  # the global namespace still shows it
    store.close()

    listed = runstore(db, "runs", "--namespace", "production:TrainFlow-0-abcdef", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["pathspec"] for r in json.loads(listed.stdout)] == ["TrainFlow/1"]
    will = runstore(db, "runs", "--json", env={"RUNSTORE_USER": "will"})
    assert json.loads(will.stdout or "[]") == []


# ---------------------------------------------------------------- production authority is the token


def _deployed(tmp_path: Path) -> tuple[Path, Path, dict[str, str], str, str]:
    script, db = project(tmp_path), tmp_path / "runstore.db"
    anne = as_user("anne", tmp_path)
    first = flow_cli(script, db, anne, "deploy")
    assert first.returncode == 0, first.stderr
    ns = re.search(r"^    (production:ResumeFlow-0-\w+)$", first.stdout, re.M).group(1)
    token = re.search(r"deploy --authorize (\S+)", first.stdout).group(1)
    return script, db, anne, ns, token


def test_the_public_namespace_id_in_the_environment_is_not_production(tmp_path):
    script, db, anne, ns, token = _deployed(tmp_path)
    will = as_user("will", tmp_path)
    for value in (ns[len("production:"):], ns, "guess"):
        hole = flow_cli(script, db, {**will, "RUNSTORE_PRODUCTION_TOKEN": value}, "run")
        one_line_error(hole, "RUNSTORE_PRODUCTION_TOKEN", "trigger")
    assert Store(db).sql("SELECT count(*) FROM runs").rows == [(0,)]
    # the public namespace variable only chooses what the client reads
    plain = flow_cli(script, db, {**will, "RUNSTORE_PRODUCTION_NAMESPACE": ns}, "run")
    assert plain.returncode == 0, plain.stderr
    run = Run("ResumeFlow/1", store=Store(db), _namespace_check=False)
    assert run.namespace == "user:will" and ns not in run.tags
    assert "production=False" in run["end"].task.stdout

    no_token = flow_cli(script, db, will, "trigger")  # will has no token on his machine
    one_line_error(no_token, "--authorize TOKEN", "anne")
    wrong = flow_cli(script, db, will, "trigger", "--authorize", ns)
    one_line_error(wrong, "not the production token")
    assert Store(db).sql("SELECT count(*) FROM runs").rows == [(1,)]
    with_token = flow_cli(script, db, will, "trigger", "--authorize", token)
    assert with_token.returncode == 0, with_token.stderr
    prod = Run("ResumeFlow/2", store=Store(db), _namespace_check=False)
    assert prod.namespace == ns and prod.invocation == "trigger"
    assert "production=True" in prod["end"].task.stdout
    assert token not in prod["end"].task.stdout + prod["end"].task.stderr


def test_a_user_name_is_no_authority(tmp_path):
    script, db, anne, ns, token = _deployed(tmp_path)
    before = Store(db).get_deployment("ResumeFlow")
    impostor = as_user("anne", tmp_path, home="impostor")  # USER=anne, another home
    one_line_error(flow_cli(script, db, impostor, "deploy"), "--authorize TOKEN")
    one_line_error(flow_cli(script, db, impostor, "deploy", "--generate-new-token"), "--authorize TOKEN")
    one_line_error(flow_cli(script, db, impostor, "trigger"), "--authorize TOKEN")
    after = Store(db).get_deployment("ResumeFlow")
    assert (after.namespace, after.token_hash, after.generation) == (before.namespace, before.token_hash, 0)
    assert not (Path(impostor["RUNSTORE_HOME"]) / "production").exists()
    # the real owner is not locked out
    again = flow_cli(script, db, anne, "deploy", "--generate-new-token")
    assert again.returncode == 0, again.stderr
    assert Store(db).get_deployment("ResumeFlow").generation == 1


def test_a_store_uuid_with_a_path_in_it_is_refused(tmp_path):
    script, db = project(tmp_path), tmp_path / "runstore.db"
    anne = as_user("anne", tmp_path)
    assert flow_cli(script, db, anne, "run").returncode == 0
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE store_info SET value = '../../../escaped' WHERE key = 'uuid'")
    conn.close()
    before = {p for p in tmp_path.rglob("*") if "project" not in p.parts}
    for args in (["deploy"], ["trigger"]):
        result = flow_cli(script, db, anne, *args)
        one_line_error(result)
        assert "escaped" in result.stderr or "not a UUID" in result.stderr or "store" in result.stderr
    created = {p for p in tmp_path.rglob("*") if "project" not in p.parts} - before
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM deployments").fetchone() == (0,)  # refused before writing
    conn.close()
    assert not any("escaped" in p.name for p in created)
    home = Path(anne["HOME"])  # at most the config directory itself, and the store's own files
    assert all(home in p.parents or p == home or p.name.startswith(db.name) for p in created), created
    assert not (Path(anne["RUNSTORE_HOME"]) / "production").exists()


# ---------------------------------------------------------------- terminal escapes


def _hostile_output_store(tmp_path: Path) -> tuple[Path, int]:
    db = tmp_path / "runstore.db"
    store = Store(db)
    record = fill_run(store, "TrainFlow", user="anne", tags=["best"], fail_at="end")
    store.close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE runs SET user_name = ?", (f"anne{HOSTILE}",))
        conn.execute("UPDATE run_tags SET tag = ? WHERE tag = 'best'", (f"best{HOSTILE}",))
        conn.execute("UPDATE run_tags SET tag = ? WHERE tag = 'user:anne'", (f"user:anne{HOSTILE}",))
        conn.execute("UPDATE attempts SET exception_message = ?, traceback = ?, stdout = ? WHERE status = 'failed'",
                     (f"broke{HOSTILE}", f"Traceback (most recent call last):\nValueError: broke{HOSTILE}\n",
                      f"log line{HOSTILE}\nnext\n"))
        task_id = conn.execute("SELECT task_id FROM attempts WHERE status = 'failed'").fetchone()[0]
    conn.close()
    return db, task_id


def _no_raw_controls(text: str) -> None:
    for char in RAW:
        assert char not in text, (char, text)


def test_control_characters_from_a_file_are_printed_escaped(tmp_path):
    db, task_id = _hostile_output_store(tmp_path)
    outputs = {
        "runs": runstore(db, "runs", "--all"),
        "show run": runstore(db, "show", "TrainFlow/1"),
        "show task": runstore(db, "show", f"TrainFlow/1/end/{task_id}"),
        "tag list": runstore(db, "tag", "list", "TrainFlow/1"),
        "logs": runstore(db, "logs", f"TrainFlow/1/end/{task_id}"),
        "sql": runstore(db, "sql", "SELECT user, user_tags FROM runs_view"),
    }
    for name, result in outputs.items():
        assert result.returncode == 0, (name, result.stderr)
        _no_raw_controls(result.stdout + result.stderr)
        assert "\\x1b]0;pwned\\x07" in result.stdout, (name, result.stdout)
    assert "\\u202e" in outputs["runs"].stdout and "\\x0d" in outputs["runs"].stdout
    assert "broke\\x1b" in outputs["show task"].stdout  # the exception (its traceback keeps its lines)
    assert "next\n" in outputs["logs"].stdout  # logs keep their newlines
    raw = subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), "logs", f"TrainFlow/1/end/{task_id}",
                          "--raw"], capture_output=True, timeout=120)
    assert f"log line{HOSTILE}\nnext\n".encode() == raw.stdout  # asked for explicitly: the exact bytes

    # --json stays exact
    listed = json.loads(runstore(db, "runs", "--all", "--json").stdout)
    assert listed[0]["user"] == f"anne{HOSTILE}" and listed[0]["tags"] == [f"best{HOSTILE}"]
    shown = json.loads(runstore(db, "show", f"TrainFlow/1/end/{task_id}", "--json").stdout)
    assert shown["exception"].endswith(f"broke{HOSTILE}\n")
    tags = json.loads(runstore(db, "tag", "list", "TrainFlow/1", "--json").stdout)
    assert tags["user"] == [f"best{HOSTILE}"]

    # an error message quoting the file's content is one escaped line
    failed = runstore(db, "tag", "remove", "TrainFlow/1", f"user:anne{HOSTILE}")  # a system tag
    one_line_error(failed, "system tag", "user:anne\\x1b]0;pwned")
    _no_raw_controls(failed.stderr)


def test_flow_cli_tag_list_escapes(tmp_path):
    script, db = project(tmp_path), tmp_path / "runstore.db"
    anne = as_user("anne", tmp_path)
    assert flow_cli(script, db, anne, "run", "--tag", "fine").returncode == 0
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE run_tags SET tag = ? WHERE tag = 'fine'", (f"fine{HOSTILE}",))
    conn.close()
    for args in (["tag", "list", "--run-id", "1"], ["tag", "list", "--group-by-tag"]):
        result = flow_cli(script, db, anne, *args)
        assert result.returncode == 0, result.stderr
        _no_raw_controls(result.stdout)
        assert "fine\\x1b]0;pwned" in result.stdout
    as_json = json.loads(flow_cli(script, db, anne, "tag", "list", "--run-id", "1", "--json").stdout)
    assert as_json[0]["user_tags"] == [f"fine{HOSTILE}"]
