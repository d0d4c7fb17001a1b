"""@project and Config (issue #12, SPEC §14): real flow files run through `python flow.py ...`
and through `Runner`, in tmp_path.

Each flow is written to its own directory; the store is a file next to it; the command runs
from another directory, so a `default="cfg.json"` is shown to be read next to the flow file.
"""

from __future__ import annotations

import json
import pickle
import re
import textwrap
from pathlib import Path

import pytest
from helpers import run_flow

from runstore import Config, ConfigValue, Flow, Run, Runner, Store, config_expr, namespace, project
from runstore.errors import FlowDefinitionError, ParameterError, TaggingError
from runstore.project import project_info
from runstore.runtime.production import token_path

# A foreach flow in a project: every task records what `current` says about the project.
PROJECT_FOREACH = '''
from runstore import FlowSpec, current, project, step

FIELDS = ("project_name", "branch_name", "project_flow_name", "is_user_branch", "is_production")


@project(name="fraud")
class ScoreFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.seen = {f: getattr(current, f) for f in FIELDS}
        self.next(self.score, foreach="items")

    @step
    def score(self):
        self.seen_child = {f: getattr(current, f) for f in FIELDS}
        self.next(self.join)

    @step
    def join(self, inputs):
        self.children = [i.seen_child for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ScoreFlow()
'''

# Configs everywhere Metaflow allows them: decorator arguments (config_expr and `cfg.key` in
# the class body), @project's name, a parser, a default value, self.cfg in steps.
CONFIG_FLOW = '''
import os

from runstore import Config, FlowSpec, config_expr, current, environment, project, resources, retry, step


def upper_parser(text):
    return {"word": text.strip().upper()}


@project(name=config_expr("cfg.project"))
class ConfFlow(FlowSpec):
    cfg = Config("cfg", default="cfg.json")
    extra = Config("extra", default_value={"mode": "fast", "nested": {"k": [1, {"deep": True}]}})
    word = Config("word", default_value="hello", parser=upper_parser)

    @retry(times=config_expr("cfg.retries"))
    @resources(cpu=cfg.cpu, memory=cfg["memory"])
    @environment(vars={"GREETING": config_expr("cfg.greeting")})
    @step
    def start(self):
        if current.retry_count < self.cfg.retries:
            raise RuntimeError("flaky attempt %d" % current.retry_count)
        self.attempts = current.retry_count + 1
        self.greeting = os.environ.get("GREETING")
        self.read = [self.cfg.model.layers, self.cfg["model"]["layers"], self.extra.nested.k[1].deep,
                     self.word.word, self.extra.mode]
        try:
            self.cfg = {"changed": True}
        except AttributeError as exc:
            self.assign_error = str(exc)
        try:
            self.cfg.model.layers = [1]
        except TypeError as exc:
            self.nested_error = str(exc)
        self.branch = current.branch_name
        self.is_prod = current.is_production
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("FAIL_END") == "1":
            raise RuntimeError("end fails on purpose")
        self.end_saw = self.cfg.to_dict()


if __name__ == "__main__":
    ConfFlow()
'''

CFG = {"project": "conf", "retries": 1, "cpu": 2, "memory": 1000, "greeting": "hi",
       "model": {"layers": [64, 32]}}


def write_flow(tmp_path: Path, source: str, name: str, files: dict[str, str] | None = None) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    script = code / name
    script.write_text(textwrap.dedent(source))
    for file, text in (files or {}).items():
        (code / file).write_text(text)
    return script


def flow_cli(script: Path, db: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return run_flow(script, db, *args, quiet=True, env=env, cwd=cwd or script.parent.parent)


def one_error_line(proc) -> str:
    """The one `Error: ...` line of a refused command (no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def run_count(db: Path, flow: str) -> int:
    """How many runs of ``flow`` the store holds (0 when the file was never made)."""
    if not db.exists():
        return 0
    store = Store(db)
    try:
        newest = store.find_run(flow)
        return 0 if newest is None else int(newest["run_number"])
    finally:
        store.close()


# ------------------------------------------------------------ @project


def test_project_branches_tags_and_current_through_the_flow_cli(tmp_path: Path) -> None:
    script = write_flow(tmp_path, PROJECT_FOREACH, "score_flow.py")
    db = tmp_path / "runstore.db"
    cases = [
        ((), "user.tester", True, False),
        (("run", "--branch", "feat1"), "test.feat1", False, False),
        (("run", "--production"), "prod", False, True),
        (("run", "--production", "--branch", "b2"), "prod.b2", False, True),
        (("--branch", "top", "run"), "test.top", False, False),  # Metaflow's form: before the command
    ]
    for args, branch, is_user, is_production in cases:
        proc = flow_cli(script, db, *(args or ("run",)), "--max-workers", "1")
        assert proc.returncode == 0, proc.stderr
        expected = {"project_name": "fraud", "branch_name": branch,
                    "project_flow_name": f"fraud.{branch}.ScoreFlow", "is_user_branch": is_user,
                    "is_production": is_production}
        namespace(None)
        run = Flow("ScoreFlow", store=Store(db)).latest_run
        assert run["start"].task.data.seen == expected
        assert run.data.children == [expected, expected]  # every foreach child sees the same
        assert {"project:fraud", f"project_branch:{branch}"} <= run.system_tags
        assert not {t for t in run.user_tags if t.startswith("project")}
        meta = run["_parameters"].task.metadata_dict
        assert (meta["project-name"], meta["project-branch"]) == ("fraud", branch)
    # the branch tags select runs, as a filter and as a namespace
    store = Store(db)
    namespace(None)
    assert [r.id for r in Flow("ScoreFlow", store=store).runs("project_branch:prod")] == ["3"]
    assert len(list(Flow("ScoreFlow", store=store).runs("project:fraud"))) == 5
    namespace("project_branch:test.feat1")
    assert [r.id for r in Flow("ScoreFlow", store=store)] == ["2"]


def test_project_tags_are_system_tags_only(tmp_path: Path) -> None:
    script = write_flow(tmp_path, PROJECT_FOREACH, "score_flow.py")
    db = tmp_path / "runstore.db"
    refused = flow_cli(script, db, "run", "--tag", "project_branch:prod")
    assert refused.returncode == 2 and "project_branch:prod" in refused.stderr, refused.stderr
    assert run_count(db, "ScoreFlow") == 0
    flow_class = Runner(script, store=db).flow_class
    run = Runner(flow_class, store=Store(db)).run(max_workers=1)
    with pytest.raises(TaggingError):
        run.add_tag("project_branch:prod")
    with pytest.raises(TaggingError):
        run.remove_tag("project:fraud")  # a system tag cannot be removed
    assert "project:fraud" in Run(run.pathspec, store=Store(db)).system_tags


def test_bad_project_and_branch_names_are_one_line_and_store_nothing(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    bad = write_flow(tmp_path, PROJECT_FOREACH.replace('name="fraud"', 'name="Fraud-Detection"'), "bad.py")
    assert "a project name has only lowercase letters" in one_error_line(flow_cli(bad, db, "run"))
    good = write_flow(tmp_path, PROJECT_FOREACH, "score_flow.py")
    for branch in ("Feat1", "a.b", "x" * 129):
        assert "a branch name has only lowercase letters" in one_error_line(
            flow_cli(good, db, "run", "--branch", branch))
    assert run_count(db, "ScoreFlow") == 0
    with pytest.raises(FlowDefinitionError, match="needs a name"):
        project(name=None)
    plain = write_flow(tmp_path, PROJECT_FOREACH.replace('@project(name="fraud")', ""), "plain.py")
    no_option = flow_cli(plain, db, "run", "--branch", "x")
    assert no_option.returncode == 2 and "No such option" in no_option.stderr
    with pytest.raises(ParameterError, match="--production is for flows with @project"):
        Runner(plain, store=db, production=True).run()


def test_project_info_follows_metaflow_branch_rules() -> None:
    assert project_info("p", "F", "anne") == project_info("p", "F", "anne", None, False)
    assert [project_info("p", "F", "anne", b, prod).branch_name
            for b, prod in [(None, False), ("x", False), (None, True), ("x", True)]] == \
        ["user.anne", "test.x", "prod", "prod.x"]
    info = project_info("p", "F", "anne", "x", True)
    assert (info.project_flow_name, info.is_user_branch, info.is_production) == ("p.prod.x.F", False, True)


def test_switch_flow_in_a_project_through_runner(tmp_path: Path) -> None:
    source = '''
    from runstore import FlowSpec, current, project, step

    @project(name="router")
    class RouteFlow(FlowSpec):
        @step
        def start(self):
            self.level = "high"
            self.next({"high": self.high, "low": self.low}, condition="level")

        @step
        def high(self):
            self.where = current.project_flow_name
            self.next(self.end)

        @step
        def low(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    '''
    script = write_flow(tmp_path, source, "route_flow.py")
    run = Runner(script, store=tmp_path / "runstore.db", branch="exp").run(max_workers=1)
    assert run["high"].task.data.where == "router.test.exp.RouteFlow"
    assert {"project:router", "project_branch:test.exp"} <= run.system_tags
    assert "low" not in [s.id for s in run]


# ------------------------------------------------------------ Config


def test_config_in_decorators_steps_and_the_stored_run(tmp_path: Path) -> None:
    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(CFG)})
    db = tmp_path / "runstore.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = flow_cli(script, db, "run", "--max-workers", "1", cwd=elsewhere)  # cfg.json: next to the flow
    assert proc.returncode == 0, proc.stderr
    run = Run("ConfFlow/1", store=Store(db))
    start = run["start"].task
    assert start.data.attempts == 2  # @retry(times=config_expr("cfg.retries")) with retries=1
    assert start.data.greeting == "hi"  # @environment(vars={...: config_expr(...)})
    assert json.loads(start.metadata_dict["resources"])["cpu"] == 2  # @resources(cpu=cfg.cpu)
    assert json.loads(start.metadata_dict["resources"])["memory"] == 1000
    assert start.data.read == [[64, 32], [64, 32], True, "HELLO", "fast"]
    assert "not modifiable: cfg" in start.data.assign_error
    assert "read-only" in start.data.nested_error
    assert {"project:conf", "project_branch:user.tester"} <= run.system_tags  # @project(name=config_expr)
    # stored with the run: an artifact of the parameters task (and of every task), and metadata
    assert run.data.cfg == CFG and run.data.end_saw == CFG
    assert run["_parameters"].task["cfg"].data == CFG
    assert run["_parameters"].task.data.word == {"word": "HELLO"}
    assert json.loads(run["_parameters"].task.metadata_dict["configs"])["cfg"] == CFG
    graph = run["_parameters"].task["_graph_info"].data
    decorators = {d["name"]: d["attributes"] for d in graph["steps"]["start"]["decorators"]}
    assert decorators["retry"]["times"] == 1 and decorators["environment"] == {"vars": {"GREETING": "hi"}}

    other = dict(CFG, retries=0, project="other", greeting="yo")
    (tmp_path / "other.json").write_text(json.dumps(other))
    by_file = flow_cli(script, db, "run", "--config", "cfg", str(tmp_path / "other.json"))
    assert by_file.returncode == 0, by_file.stderr
    by_value = flow_cli(script, db, "--config-value", "extra", '{"mode": "slow", "nested": {"k": [0, {"deep": 0}]}}',
                        "run", "--config-value", "cfg", json.dumps(dict(CFG, retries=0)))
    assert by_value.returncode == 0, by_value.stderr
    two, three = Run("ConfFlow/2", store=Store(db)), Run("ConfFlow/3", store=Store(db))
    assert two.data.cfg == other and two["start"].task.data.greeting == "yo"
    assert two["start"].task.data.attempts == 1 and "project:other" in two.system_tags
    assert three["start"].task.data.read[2:] == [0, "HELLO", "slow"]


def test_config_errors_are_one_line_and_store_nothing(tmp_path: Path) -> None:
    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(CFG)})
    db = tmp_path / "runstore.db"
    without_key = {k: v for k, v in CFG.items() if k != "retries"}
    cases = [
        (("run", "--config", "cfg", str(tmp_path / "missing.json")), "missing.json' of config 'cfg' cannot be read"),
        (("run", "--config-value", "cfg", "{not json"), "config 'cfg' is not valid JSON"),
        (("run", "--config-value", "cfg", "[1, 2]"), "must be a JSON object"),
        (("run", "--config-value", "nope", "{}"), "ConfFlow has no config 'nope' (its configs: cfg, extra, word)"),
        (("--config", "nope", "x.json", "run"), "has no config 'nope'"),
        (("run", "--config-value", "cfg", json.dumps(without_key)), "config_expr(\"cfg.retries\"): no key 'retries'"),
        (("run", "--config-value", "cfg", json.dumps(dict(CFG, retries=-1))), "@retry(times=...) takes a non-negative"),
        (("run", "--config-value", "cfg", json.dumps(dict(CFG, project="No!"))), "a project name has only"),
        (("run", "--config", "cfg", str(tmp_path / "x.json"), "--config-value", "cfg", "{}"), "both a file"),
    ]
    for args, message in cases:
        assert message in one_error_line(flow_cli(script, db, *args)), args
    (script.parent / "cfg.json").unlink()
    assert "the default file" in one_error_line(flow_cli(script, db, "run"))
    assert run_count(db, "ConfFlow") == 0


def test_resume_and_clone_reuse_the_run_config_unless_given(tmp_path: Path) -> None:
    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(CFG)})
    db = tmp_path / "runstore.db"
    given = dict(CFG, retries=0, greeting="given")
    failed = flow_cli(script, db, "run", "--config-value", "cfg", json.dumps(given), env={"FAIL_END": "1"})
    assert failed.returncode == 1
    assert flow_cli(script, db, "resume").returncode == 0  # run 2: the origin's config, not cfg.json
    again = dict(given, greeting="again")
    resumed = flow_cli(script, db, "resume", "start", "--origin-run-id", "1", "--config-value", "cfg", json.dumps(again))
    assert resumed.returncode == 0, resumed.stderr
    assert flow_cli(script, db, "run", "--clone", "1").returncode == 0  # run 4
    store = Store(db)
    two, three, four = (Run(f"ConfFlow/{n}", store=store) for n in (2, 3, 4))
    assert two.data.cfg == given and two.data.end_saw == given
    assert two["start"].task.origin_pathspec == "ConfFlow/1/start/2"  # cloned, not re-run
    assert three.data.cfg == again and three["start"].task.data.greeting == "again"
    assert json.loads(three["_parameters"].task.metadata_dict["configs"])["cfg"] == again
    assert four.data.cfg == given and four.origin_pathspec is None


def test_runner_with_configs_branch_and_resume(tmp_path: Path) -> None:
    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(CFG)})
    db = tmp_path / "runstore.db"
    value = dict(CFG, retries=0, project="runner")
    run = Runner(script, store=db, branch="api", config_value={"cfg": value}).run(max_workers=1)
    assert run.data.cfg == value and run["start"].task.data.branch == "test.api"
    assert {"project:runner", "project_branch:test.api"} <= run.system_tags
    (tmp_path / "file.json").write_text(json.dumps(dict(value, greeting="file")))
    by_file = Runner(script, store=db, config=[("cfg", str(tmp_path / "file.json"))]).run(max_workers=1)
    assert by_file["start"].task.data.greeting == "file"
    resumed = Runner(script, store=db).resume(origin_run_id=1, step="end")
    assert resumed.data.cfg == value  # the origin's config
    with pytest.raises(ParameterError, match="has no config 'nope'"):
        Runner(script, store=db, config_value={"nope": {}}).run()
    with pytest.raises(FlowDefinitionError, match="no key '(retries|greeting|cpu|memory)'"):
        Runner(script, store=db, config_value={"cfg": {"project": "x"}}).run()
    assert len(list(Flow("ConfFlow", store=Store(db)))) == 3


def test_deploy_and_trigger_per_branch_each_with_its_own_token(tmp_path: Path) -> None:
    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(dict(CFG, retries=0))})
    db = tmp_path / "runstore.db"
    prod = flow_cli(script, db, "deploy", "--production")
    assert prod.returncode == 0, prod.stderr
    test = run_flow(script, db, "deploy", "--branch", "b1", "--config-value", "cfg",
                    json.dumps(dict(CFG, retries=0, greeting="b1")))
    assert test.returncode == 0, test.stderr
    assert "conf.test.b1.ConfFlow" in test.stdout and "trigger --branch b1" in test.stdout
    token_prod = re.search(r"deploy --production --authorize (\S+)", prod.stdout).group(1)
    token_b1 = re.search(r"deploy --branch b1 --authorize (\S+)", test.stdout).group(1)
    assert token_prod != token_b1
    store = Store(db)
    assert token_path(store.uuid, "conf.prod.ConfFlow") != token_path(store.uuid, "conf.test.b1.ConfFlow")
    # the working copy changes after deploy: triggers run the deployed code with its configs
    (script.parent / "cfg.json").write_text(json.dumps(dict(CFG, greeting="changed")))
    assert flow_cli(script, db, "trigger", "--production").returncode == 0
    assert flow_cli(script, db, "trigger", "--branch", "b1").returncode == 0
    namespace(None)
    prod_run, b1_run = Run("ConfFlow/1", store=Store(db)), Run("ConfFlow/2", store=Store(db))
    assert prod_run["start"].task.data.greeting == "hi" and prod_run["start"].task.data.attempts == 1
    assert b1_run["start"].task.data.greeting == "b1"
    assert {"project_branch:prod"} <= prod_run.system_tags and "project_branch:test.b1" in b1_run.system_tags
    prod_ns = next(t for t in prod_run.system_tags if t.startswith("production:"))
    b1_ns = next(t for t in b1_run.system_tags if t.startswith("production:"))
    assert prod_ns != b1_ns and "conf.prod.ConfFlow" in prod_ns
    # current.is_production follows --production for a project, as in Metaflow
    assert prod_run["start"].task.data.is_prod is True and b1_run["start"].task.data.is_prod is False
    # one branch's token does not trigger another branch
    wrong = flow_cli(script, db, "trigger", "--branch", "b1", "--authorize", token_prod)
    assert wrong.returncode != 0 and "not the production token" in wrong.stderr
    missing = flow_cli(script, db, "trigger", "--branch", "b9")
    assert missing.returncode != 0 and "not deployed to production on branch test.b9" in missing.stderr
    assert len(list(Flow("ConfFlow", store=Store(db)))) == 2


# ------------------------------------------------------------ the pieces


def test_config_value_is_a_read_only_dict_with_attribute_access() -> None:
    cfg = ConfigValue({"a": {"b": [1, {"c": 2}]}, "n": 1})
    assert cfg.a.b[1].c == 2 and cfg["a"]["b"][0] == 1 and cfg == {"a": {"b": [1, {"c": 2}]}, "n": 1}
    assert isinstance(cfg.a, ConfigValue) and cfg.to_dict() == {"a": {"b": [1, {"c": 2}]}, "n": 1}
    for attempt in (lambda: setattr(cfg, "n", 2), lambda: cfg.__setitem__("n", 2), lambda: delattr(cfg, "n")):
        with pytest.raises(TypeError):
            attempt()
    with pytest.raises(AttributeError, match="no key 'missing'"):
        cfg.missing  # noqa: B018
    assert pickle.loads(pickle.dumps(cfg)) == cfg and json.dumps(cfg.to_dict())
    assert "a" in dir(cfg)


def test_config_definitions_and_expressions() -> None:
    with pytest.raises(FlowDefinitionError, match="not both"):
        Config("c", default="c.json", default_value={})
    with pytest.raises(FlowDefinitionError, match="parser"):
        Config("c", parser="loads")
    with pytest.raises(FlowDefinitionError, match="Config name"):
        Config("bad name")
    with pytest.raises(FlowDefinitionError, match="not a Python expression"):
        config_expr("cfg.")
    expr = Config("cfg").model["layers"]
    assert repr(expr) == "config_expr(\"cfg.model['layers']\")"
    assert expr.evaluate({"cfg": {"model": {"layers": [1]}}}) == [1]
    with pytest.raises(FlowDefinitionError, match="name 'other' is not defined"):
        config_expr("other.x").evaluate({"cfg": {}})
    assert Config("c", parser="json.loads").parse('{"a": 1}') == {"a": 1}
    with pytest.raises(ParameterError, match="cannot load the parser"):
        Config("c", parser="nonexistent_mod_xyz.loads").parse("{}")
    with pytest.raises(AttributeError):
        Config("c").name = "d"


def test_config_defaults_from_functions_required_configs_and_current_without_project(tmp_path: Path) -> None:
    source = '''
    import json

    from runstore import Config, FlowSpec, current, step


    def path_for(ctx):
        return ctx.flow_name.lower() + ".json"


    def value_for(ctx):
        return {"who": ctx.user_name, "name": ctx.parameter_name}


    class PlainFlow(FlowSpec):
        by_path = Config("by_path", default=path_for)
        by_value = Config("by_value", default_value=value_for)
        text = Config("text", default_value=\'{"from": "json text"}\')
        must = Config("must", required=True)
        maybe = Config("maybe")

        @step
        def start(self):
            self.got = [self.by_path.k, self.by_value.to_dict(), self.text["from"], self.must.m, self.maybe]
            self.project = [current.project_name, current.branch_name, current.project_flow_name,
                            current.is_user_branch, current.get("project_name", "none"), current.is_production]
            self.names = current.parameter_names
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        PlainFlow()
    '''
    script = write_flow(tmp_path, source, "plain_flow.py", {"plainflow.json": '{"k": "from file"}'})
    db = tmp_path / "runstore.db"
    with pytest.raises(ParameterError, match="missing configuration for 'must'"):
        Runner(script, store=db).run()
    refused = flow_cli(script, db, "run")
    assert "missing configuration for 'must'" in one_error_line(refused)
    assert run_count(db, "PlainFlow") == 0
    run = Runner(script, store=db, config_value=[("must", '{"m": 1}')]).run(max_workers=1)
    start = run["start"].task.data
    assert start.got == ["from file", {"who": "tester", "name": "by_value"}, "json text", 1, None]
    assert start.project == [None, None, None, None, "none", False]
    assert {"by_path", "by_value", "text", "must", "maybe"} <= set(start.names)
    assert not any(t.startswith("project") for t in run.system_tags)


def test_each_launch_resolves_its_own_decorator_values(tmp_path: Path) -> None:
    """Two launches of one class with different configs keep their own values (the class is untouched)."""
    from runstore.runtime.configs import LaunchOptions, prepare

    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(CFG)})
    flow_class = Runner(script, store=tmp_path / "runstore.db").flow_class
    first = prepare(flow_class, LaunchOptions(config_values={"cfg": json.dumps(dict(CFG, retries=3))}),
                    username="anne", base_dir=str(script.parent))
    second = prepare(flow_class, LaunchOptions(), username="bob", base_dir=str(script.parent))
    retries = [{d["name"]: d["attributes"] for d in p.decorators["start"]}["retry"]["times"] for p in (first, second)]
    assert retries == [3, 1]
    assert (first.project.branch_name, second.project.branch_name) == ("user.anne", "user.bob")
    assert {d["name"]: d["attributes"] for d in flow_class.start._runstore_decorators}["retry"] == {}


def test_configs_from_the_environment_as_metaflow(tmp_path: Path) -> None:
    """METAFLOW_FLOW_CONFIG_VALUE / RUNSTORE_FLOW_CONFIG (JSON objects of config names) are used
    only when no --config/--config-value is given; names of other flows' configs are skipped."""
    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(CFG)})
    db = tmp_path / "runstore.db"
    from_env = dict(CFG, retries=0, greeting="env")
    (tmp_path / "env.json").write_text(json.dumps(dict(from_env, greeting="env file")))
    env_value = {"METAFLOW_FLOW_CONFIG_VALUE": json.dumps({"cfg": from_env, "other_flows_cfg": {}})}
    assert flow_cli(script, db, "run", env=env_value).returncode == 0
    assert flow_cli(script, db, "run", env={"RUNSTORE_FLOW_CONFIG": json.dumps({"cfg": str(tmp_path / "env.json")})}
                    ).returncode == 0
    given = flow_cli(script, db, "run", "--config-value", "extra", '{"mode": "m", "nested": {"k": [0, {"deep": 1}]}}',
                     env=env_value)
    assert given.returncode == 0, given.stderr
    store = Store(db)
    greetings = [Run(f"ConfFlow/{n}", store=store)["start"].task.data.greeting for n in (1, 2, 3)]
    assert greetings == ["env", "env file", "hi"]  # the third: options given, the environment unused
    bad = flow_cli(script, db, "run", env={"METAFLOW_FLOW_CONFIG_VALUE": "{oops"})
    assert "METAFLOW_FLOW_CONFIG_VALUE is not valid JSON" in one_error_line(bad)


def test_parameter_defaults_from_configs(tmp_path: Path) -> None:
    source = '''
    from runstore import Config, FlowSpec, Parameter, config_expr, step


    class ParamConfFlow(FlowSpec):
        cfg = Config("cfg", default_value={"lr": 0.25, "name": "base"})
        lr = Parameter("lr", type=float, default=config_expr("cfg.lr"))
        label = Parameter("label", default=config_expr("cfg.name"))

        @step
        def start(self):
            self.seen = (self.lr, self.label)
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        ParamConfFlow()
    '''
    script = write_flow(tmp_path, source, "param_conf_flow.py")
    db = tmp_path / "runstore.db"
    assert flow_cli(script, db, "run").returncode == 0
    assert flow_cli(script, db, "run", "--config-value", "cfg", '{"lr": 2, "name": "other"}').returncode == 0
    assert flow_cli(script, db, "run", "--lr", "0.5", "--config-value", "cfg", '{"lr": 2, "name": "x"}').returncode == 0
    bad = flow_cli(script, db, "run", "--config-value", "cfg", '{"lr": "fast", "name": "x"}')
    assert "the default of --lr" in one_error_line(bad) and run_count(db, "ParamConfFlow") == 3
    store = Store(db)
    assert [Run(f"ParamConfFlow/{n}", store=store).data.seen for n in (1, 2, 3)] == \
        [(0.25, "base"), (2.0, "other"), (0.5, "x")]
    assert Run("ParamConfFlow/2", store=store)["_parameters"].task.data.lr == 2.0


def test_show_lists_configs_and_project_and_check_evaluates_them(tmp_path: Path) -> None:
    script = write_flow(tmp_path, CONFIG_FLOW, "conf_flow.py", {"cfg.json": json.dumps(CFG)})
    db = tmp_path / "runstore.db"
    shown = run_flow(script, db, "show")
    assert shown.returncode == 0, shown.stderr
    assert "cfg (file 'cfg.json')" in shown.stdout and "extra (a default value)" in shown.stdout
    assert 'Project: config_expr("cfg.project")' in shown.stdout
    assert run_flow(script, db, "check").returncode == 0
    refused = run_flow(script, db, "--config-value", "cfg", '{"project": "p"}', "check")
    assert "no key" in one_error_line(refused)
    assert not db.exists()  # neither opened the store


# ------------------------------------------------------------ @card and @executor from configs

CARD_EXECUTOR_FLOW = '''
import time

from runstore import Config, FlowSpec, card, config_expr, current, executor, step
from runstore.cards import Markdown


class Slow:
    def render(self):
        time.sleep(3)
        return "<p>slow part done</p>"


class CardConfFlow(FlowSpec):
    cfg = Config("cfg", default_value={"card_type": "blank", "card_id": "report", "t": 30, "where": "local"})

    @executor(config_expr("cfg.where"))
    @card(type=config_expr("cfg.card_type"), id=config_expr("cfg.card_id"))
    @card(timeout=cfg.t, id="slow", type="blank")
    @step
    def start(self):
        self.secret_artifact = "only-in-default-cards"
        current.card[self.cfg.card_id].append(Markdown("# configured card"))
        current.card["slow"].append(Slow())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardConfFlow()
'''

CARD_CFG = {"card_type": "blank", "card_id": "report", "t": 30, "where": "local"}


def test_card_arguments_from_configs_give_the_configured_card(tmp_path: Path) -> None:
    """@card(type=config_expr(...), id=config_expr(...)) and @card(timeout=cfg.t): each run renders
    the card its config asks for (the type, the id, the render timeout), and stores those values."""
    from runstore.cards import get_cards

    script = write_flow(tmp_path, CARD_EXECUTOR_FLOW, "card_conf_flow.py")
    db = tmp_path / "runstore.db"
    first = flow_cli(script, db, "run")  # the default_value: blank card "report", 30 s to render
    assert first.returncode == 0, first.stderr
    second = flow_cli(script, db, "run", "--config-value", "cfg",
                      json.dumps(dict(CARD_CFG, card_type="default", card_id="summary", t=0.5)))
    assert second.returncode == 0, second.stderr
    one, two = (Run(f"CardConfFlow/{n}", store=Store(db))["start"].task for n in (1, 2))

    (report,) = get_cards(one, id="report")
    assert report.type == "blank" and report.status == "done"
    assert "configured card" in report.get() and "only-in-default-cards" not in report.get()
    (slow,) = get_cards(one, id="slow")
    assert slow.status == "done" and "slow part done" in slow.get()  # timeout=30: rendered
    assert not get_cards(one, id="summary")

    (summary,) = get_cards(two, id="summary")
    assert summary.type == "default" and "configured card" in summary.get()
    assert "only-in-default-cards" in summary.get()  # a default card lists the artifacts
    assert not get_cards(two, id="report")
    (slow,) = get_cards(two, id="slow")  # timeout=0.5 from the config: the 3 s component is cut off
    assert slow.status == "error" and "timeout=0.5" in (slow.error or "")

    graph = Run("CardConfFlow/2", store=Store(db))["_parameters"].task["_graph_info"].data
    cards = [d["attributes"] for d in graph["steps"]["start"]["decorators"] if d["name"] == "card"]
    assert sorted((c["id"], c["type"], c["timeout"]) for c in cards) == [
        ("slow", "blank", 0.5), ("summary", "default", 45)]


def test_executor_from_a_config_and_bad_card_or_executor_values_are_one_line(tmp_path: Path) -> None:
    """@executor(config_expr("cfg.where")) runs with "local"; a value @executor or @card refuses is
    one line naming the step and the decorator, and nothing is stored."""
    script = write_flow(tmp_path, CARD_EXECUTOR_FLOW, "card_conf_flow.py")
    db = tmp_path / "runstore.db"
    cases = [
        (dict(CARD_CFG, where="mars"),
         "step 'start', @executor: @executor(...) takes one of 'local', not 'mars'"),
        (dict(CARD_CFG, card_type="fancy"),
         "step 'start', @card: @card(type=...) must be one of default, blank"),
        (dict(CARD_CFG, card_id="no spaces"), "@card(id=...) takes letters, digits and underscores"),
        (dict(CARD_CFG, card_id="slow"), "has two @card with id 'slow'"),
        (dict(CARD_CFG, t=0), "@card(timeout=...) takes a positive number of seconds, not 0"),
        ({k: v for k, v in CARD_CFG.items() if k != "where"}, "config_expr(\"cfg.where\"): no key 'where'"),
    ]
    for cfg, message in cases:
        refused = flow_cli(script, db, "run", "--config-value", "cfg", json.dumps(cfg))
        assert message in one_error_line(refused), cfg
    assert run_count(db, "CardConfFlow") == 0

    ran = flow_cli(script, db, "run", "--config-value", "cfg", json.dumps(CARD_CFG))
    assert ran.returncode == 0, ran.stderr
    graph = Run("CardConfFlow/1", store=Store(db))["_parameters"].task["_graph_info"].data
    assert {"name": "local"} in [d["attributes"] for d in graph["steps"]["start"]["decorators"]
                                 if d["name"] == "executor"]


def test_card_and_executor_config_values_leave_the_class_untouched(tmp_path: Path) -> None:
    """Two launches of one class resolve their own @card/@executor values; the class keeps the
    placeholders (so a thread or a Runner launching it again sees no earlier run's values)."""
    from runstore.runtime.configs import LaunchOptions, prepare

    script = write_flow(tmp_path, CARD_EXECUTOR_FLOW, "card_conf_flow.py")
    flow_class = Runner(script, store=tmp_path / "runstore.db").flow_class
    values = {"cfg": json.dumps(dict(CARD_CFG, card_id="a", t=2))}
    given = prepare(flow_class, LaunchOptions(config_values=values), username="anne")
    default = prepare(flow_class, LaunchOptions(), username="bob")
    ids = [sorted(d["attributes"]["id"] for d in p.decorators["start"] if d["name"] == "card")
           for p in (given, default)]
    assert ids == [["a", "slow"], ["report", "slow"]]
    assert [d["attributes"] for d in flow_class.start._runstore_decorators] == [{}, {}, {}]
