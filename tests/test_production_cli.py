"""deploy / trigger end to end (SPEC §7), as two users with separate homes, through the flow CLI."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from helpers import run_flow

from runstore import Run, Store
from runstore.runtime.production import token_path

FLOW = Path(__file__).parent / "flows" / "resume_flow.py"


def as_user(name: str, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / f"home-{name}"
    return {"RUNSTORE_USER": name, "HOME": str(home), "RUNSTORE_HOME": str(home / ".runstore")}


def cli(script: Path, db: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_flow(script, db, *args, env=env)


def token_in(output: str) -> str:
    match = re.search(r"deploy --authorize (\S+)", output)
    assert match, output
    return match.group(1)


def test_deploy_authorize_trigger_and_new_token(tmp_path: Path) -> None:
    code = tmp_path / "project"
    code.mkdir()
    script = code / "resume_flow.py"
    shutil.copy(FLOW, script)
    db = tmp_path / "runstore.db"
    anne, will = as_user("anne", tmp_path), as_user("will", tmp_path)

    first = cli(script, db, anne, "deploy")
    assert first.returncode == 0, first.stderr
    namespace0 = re.search(r"^    (production:ResumeFlow-0-\w+)$", first.stdout, re.M).group(1)
    assert f'namespace("{namespace0}")' in first.stdout
    token = token_in(first.stdout)
    assert f"python resume_flow.py --db {db} deploy --authorize {token}" in first.stdout
    assert token not in namespace0  # the token is a secret, the namespace is not

    refused = cli(script, db, will, "deploy")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    assert "anne" in refused.stderr and "--authorize TOKEN" in refused.stderr
    wrong = cli(script, db, will, "deploy", "--authorize", "guess")
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr

    authorized = cli(script, db, will, "deploy", "--authorize", token)
    assert authorized.returncode == 0, authorized.stderr
    assert namespace0 in authorized.stdout
    store = Store(db)
    saved = Path(will["RUNSTORE_HOME"]) / token_path(store.uuid, "ResumeFlow").relative_to(
        Path(os.environ["RUNSTORE_HOME"]))
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    remembered = cli(script, db, will, "deploy")  # no --authorize the second time
    assert remembered.returncode == 0 and namespace0 in remembered.stdout

    # The working copy changes after the deploy: trigger runs the deployed code.
    script.write_text(script.read_text().replace('default="base"', 'default="edited"'))
    triggered = cli(script, db, will, "trigger", "--alpha", "2", "--tag", "nightly")
    assert triggered.returncode == 0, triggered.stderr
    run = Run("ResumeFlow/1", store=store, _namespace_check=False)
    assert run.successful and run.invocation == "trigger"
    assert run.namespace == namespace0 and namespace0 in run.system_tags
    assert not any(t.startswith("user:") for t in run.tags)
    assert run.user_tags == frozenset({"nightly"})
    assert run.data.label == "base" and run.data.alpha == 2
    assert "production=True" in run["end"].task.stdout
    info = run.data.info
    assert info["flow_name"] == "ResumeFlow" and info["script"] == "resume_flow.py"
    assert info["run_id"] == "1" and info["is_production"] is True
    assert run.code.flowspec == FLOW.read_text()  # the deployed snapshot

    # Resuming a production run lands in the resumer's own namespace.
    resumed = cli(script, db, will, "resume", "end", "--origin-run-id", "1")
    assert resumed.returncode == 0, resumed.stderr
    mine = Run("ResumeFlow/2", store=store, _namespace_check=False)
    assert mine.namespace == "user:will" and namespace0 not in mine.tags
    assert "production=False" in mine["end"].task.stdout

    # A new token moves production to a fresh namespace; the old token is void.
    moved = cli(script, db, anne, "deploy", "--generate-new-token")
    assert moved.returncode == 0, moved.stderr
    namespace1 = re.search(r"^    (production:ResumeFlow-1-\w+)$", moved.stdout, re.M).group(1)
    assert namespace1 != namespace0 and token_in(moved.stdout) != token
    stale = cli(script, db, will, "deploy")
    assert stale.returncode != 0 and "anne" in stale.stderr
    again = cli(script, db, anne, "trigger")
    assert again.returncode == 0, again.stderr
    latest = Run("ResumeFlow/3", store=store, _namespace_check=False)
    assert latest.namespace == namespace1 and latest.data.label == "edited"  # anne deployed the edited file


def test_trigger_without_deployment(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    out = cli(FLOW, db, as_user("anne", tmp_path), "trigger")
    assert out.returncode == 1 and out.stderr.startswith("Error: ResumeFlow is not deployed")


def test_a_wrong_authorize_token_is_called_wrong(tmp_path: Path) -> None:
    """`deploy/trigger --authorize WRONG` say the token given was wrong, in one line (issue #19)."""
    script = tmp_path / "resume_flow.py"
    shutil.copy(FLOW, script)
    db = tmp_path / "runstore.db"
    anne, will = as_user("anne", tmp_path), as_user("will", tmp_path)

    def refused(result: subprocess.CompletedProcess[str]) -> str:
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "the token given to --authorize is not the production token of ResumeFlow" in result.stderr
        return result.stderr

    # nothing deployed yet: the token cannot be right (wrong --db?), and nothing is deployed with it
    assert "not deployed" in refused(cli(script, db, anne, "deploy", "--authorize", "WRONG"))
    assert Store(db).get_deployment("ResumeFlow") is None
    assert cli(script, db, anne, "deploy").returncode == 0
    for who in (anne, will):  # anne holds the right token, will none: both are told theirs is wrong
        assert "anne" in refused(cli(script, db, who, "deploy", "--authorize", "WRONG"))
        assert "anne" in refused(cli(script, db, who, "trigger", "--authorize", "WRONG"))
    assert Store(db).sql("SELECT count(*) FROM runs").rows == [(0,)]
