"""The conditional switch (#12): only the chosen case runs, in every graph shape.

Real flow files in tests/flows/switch_*_flow.py, run through ``python flow.py`` and
``Runner``; the client tells which case ran (task metadata ``switch-case`` /
``switch-next-step``); resume clones the taken case; a loop is bounded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FLOWS, run_flow

from runstore import Run, Runner, Store

LINEAR = FLOWS / "switch_linear_flow.py"
BRANCH = FLOWS / "switch_branch_flow.py"
NESTED = FLOWS / "switch_nested_flow.py"
FOREACH = FLOWS / "switch_foreach_flow.py"
NESTED_FOREACH = FLOWS / "switch_nested_foreach_flow.py"
LOOP = FLOWS / "switch_loop_flow.py"


def run_of(db: Path, pathspec: str) -> Run:
    return Run(pathspec, store=Store(str(db)), _namespace_check=False)


def steps_run(run: Run) -> dict[str, int]:
    """``{step: number of tasks}`` of the steps that ran."""
    return {s.id: len(list(s.tasks())) for s in run.steps()}


def test_linear_switch_runs_only_the_chosen_case_and_says_which(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(LINEAR, db, "run", "--level", "low")
    assert proc.returncode == 0, proc.stderr
    run = run_of(db, "SwitchFlow/1")
    assert run.successful and run.data.result == "low"
    assert steps_run(run) == {"start": 1, "low": 1, "end": 1}
    meta = run["start"].task.metadata_dict
    assert (meta["switch-case"], meta["switch-next-step"]) == ("low", "low")
    assert "switch-next-step" not in run["low"].task.metadata_dict
    dump = run_flow(LINEAR, db, "dump", "1/start")
    assert "    (switch took case 'low' -> low)" in dump.stdout.splitlines(), dump.stdout


def test_linear_switch_through_runner(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "runstore.db"))
    run = Runner(str(LINEAR), store=store).run(level="high")
    assert run.data.result == "high" and steps_run(run) == {"start": 1, "high": 1, "end": 1}


def test_condition_value_that_is_no_case_fails_the_task_clearly(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(LINEAR, db, "run", "--level", "medium")
    assert proc.returncode != 0
    message = ("switch condition self.mode of step 'start' (line 13) is 'medium', which is not one of its "
               "cases: 'high', 'low'")
    assert f"Step start (task-id 2) failed: runstore.errors.FlowDefinitionError: {message}" in proc.stderr
    run = run_of(db, "SwitchFlow/1")
    assert not run.successful and steps_run(run) == {"start": 1}
    assert run["start"].task.exception.message == message  # type: ignore[union-attr]


def test_condition_attribute_never_set_fails_the_task_clearly(tmp_path: Path) -> None:
    flow = tmp_path / "unset_flow.py"
    flow.write_text(
        "from runstore import FlowSpec, step\n\n\nclass UnsetFlow(FlowSpec):\n    @step\n    def start(self):\n"
        "        self.next({'a': self.end}, condition='nowhere')\n\n    @step\n    def end(self):\n"
        "        pass\n\n\nif __name__ == '__main__':\n    UnsetFlow()\n")
    proc = run_flow(flow, tmp_path / "runstore.db", "run")
    assert proc.returncode != 0
    assert "switch condition self.nowhere of step 'start' (line 7) is not set" in proc.stderr


@pytest.mark.parametrize("pick, seen, ran", [
    ("x", ["a_x", "b"], {"start": 1, "a": 1, "a_x": 1, "b": 1, "join": 1, "end": 1}),
    ("y", ["a_y", "b"], {"start": 1, "a": 1, "a_y": 1, "b": 1, "join": 1, "end": 1}),
])
def test_switch_inside_a_branch_the_join_gets_whichever_case_ran(tmp_path: Path, pick: str, seen: list[str],
                                                                  ran: dict[str, int]) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(BRANCH, db, "run", "--pick", pick)
    assert proc.returncode == 0, proc.stderr
    run = run_of(db, "SwitchBranchFlow/1")
    assert run.data.seen == seen and steps_run(run) == ran


def test_nested_branches_inside_a_switch_case(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert run_flow(NESTED, db, "run").returncode == 0
    assert run_flow(NESTED, db, "run", "--way", "plain").returncode == 0
    fan, plain = run_of(db, "SwitchNestedFlow/1"), run_of(db, "SwitchNestedFlow/2")
    assert fan.data.total == 13 and set(steps_run(fan)) == {"start", "fan", "p", "p1", "p2", "pj", "q", "j", "end"}
    assert plain.data.total == -1 and steps_run(plain) == {"start": 1, "plain": 1, "end": 1}


def test_switch_in_every_foreach_child(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(FOREACH, db, "run")
    assert proc.returncode == 0, proc.stderr
    run = run_of(db, "SwitchForeachFlow/1")
    assert run.data.outs == [("odd", 1), ("even", 20), ("odd", 3), ("even", 40), ("odd", 5)]
    assert steps_run(run) == {"start": 1, "each": 5, "even": 2, "odd": 3, "join": 1, "end": 1}
    taken = sorted((t.index, t.metadata_dict["switch-next-step"]) for t in run["each"].tasks())
    assert taken == [(0, "odd"), (1, "even"), (2, "odd"), (3, "even"), (4, "odd")]


def test_switch_in_a_nested_foreach_through_runner(tmp_path: Path) -> None:
    run = Runner(str(NESTED_FOREACH), store=Store(str(tmp_path / "runstore.db"))).run()
    assert run.data.grid == [["r0:Z", "r0:1", "r0:2"], ["r1:Z", "r1:1", "r1:2"]]
    assert steps_run(run) == {"start": 1, "row": 2, "cell": 6, "zero": 2, "other": 4, "row_join": 2,
                              "all_join": 1, "end": 1}


def test_recursive_switch_loops_back_until_done(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(LOOP, db, "run", "--target", "3")
    assert proc.returncode == 0, proc.stderr
    run = run_of(db, "SwitchLoopFlow/1")
    assert run.data.history == [1, 2, 3]
    assert steps_run(run) == {"start": 1, "work": 3, "check": 3, "end": 1}
    assert [t.metadata_dict["switch-next-step"] for t in sorted(run["check"].tasks(), key=lambda t: int(t.id))] \
        == ["work", "work", "end"]


def test_recursive_switch_beyond_the_bound_fails_with_one_clear_line(tmp_path: Path) -> None:
    from runstore.runtime import load_flow
    from runstore.runtime.parameters import resolve_parameters
    from runstore.runtime.scheduler import Scheduler

    flow = load_flow(LOOP)
    store = Store(str(tmp_path / "runstore.db"))
    outcome = Scheduler(flow, store, resolve_parameters(flow, {"target": 50}), max_loops=4, quiet=True,
                        max_workers=1).run()
    assert outcome.status == "failed"
    assert outcome.failed_steps == [
        "Step work would run more than 4 times: a switch looped past the bound of 4 runs of one step"]
    run = run_of(tmp_path / "runstore.db", "SwitchLoopFlow/1")
    assert steps_run(run) == {"start": 1, "work": 4, "check": 4}


def test_default_loop_bound_through_the_command_line(tmp_path: Path) -> None:
    proc = run_flow(LOOP, tmp_path / "runstore.db", "run", "--target", "1000", "--max-workers", "1", timeout=300)
    assert proc.returncode != 0
    assert "Step work would run more than 100 times: a switch looped past the bound of 100 runs of one step" \
        in proc.stderr


def test_resume_clones_the_taken_case_and_reruns_the_failed_one(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    first = run_flow(LINEAR, db, "run", "--level", "low", env={"SWITCH_FAIL": "low"})
    assert first.returncode != 0 and "low failed on purpose" in first.stderr
    second = run_flow(LINEAR, db, "resume")
    assert second.returncode == 0, second.stderr
    origin, run = run_of(db, "SwitchFlow/1"), run_of(db, "SwitchFlow/2")
    assert run.successful and run.data.result == "low" and steps_run(run) == {"start": 1, "low": 1, "end": 1}
    start = run["start"].task.metadata_dict
    assert start["origin-task-id"] == origin["start"].task.id
    assert (start["switch-case"], start["switch-next-step"]) == ("low", "low")
    assert "origin-task-id" not in run["low"].task.metadata_dict


def test_resume_of_a_loop_clones_every_pass(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert run_flow(LOOP, db, "run", "--target", "3").returncode == 0
    proc = run_flow(LOOP, db, "resume", "end")
    assert proc.returncode == 0, proc.stderr
    origin, run = run_of(db, "SwitchLoopFlow/1"), run_of(db, "SwitchLoopFlow/2")
    assert run.data.history == [1, 2, 3] and steps_run(run) == {"start": 1, "work": 3, "check": 3, "end": 1}
    origins = [t.metadata_dict.get("origin-task-id") for t in sorted(run["work"].tasks(), key=lambda t: int(t.id))]
    assert origins == [t.id for t in sorted(origin["work"].tasks(), key=lambda t: int(t.id))]
    assert "origin-task-id" not in run["end"].task.metadata_dict


def test_show_and_check_understand_a_switch(tmp_path: Path) -> None:
    show = run_flow(LOOP, None, "show")
    assert show.returncode == 0
    assert "Step check\n    => switch on 'state': 'again': work, 'done': end\n" in show.stdout
    check = run_flow(LOOP, None, "check")
    assert check.returncode == 0 and "SwitchLoopFlow" in check.stdout + check.stderr


def test_dag_draws_switch_edges_with_their_cases(tmp_path: Path) -> None:
    from runstore.dag import dag_layout
    from runstore.ui.data import graph_of

    db = tmp_path / "runstore.db"
    assert run_flow(LOOP, db, "run", "--target", "1").returncode == 0
    store = Store(str(db))
    graph = graph_of(store, run_of(db, "SwitchLoopFlow/1")._row["run_id"])
    assert graph is not None and graph["steps"]["check"]["switch"] == {"again": "work", "done": "end"}
    layout = dag_layout(graph["steps"], graph["start"], {})
    assert [(e["switch"], e["case"], e["back"]) for e in layout["edges"]] == [
        (False, "", False), (False, "", False), (True, "again", True), (True, "done", False)]


def test_caught_switch_step_fails_the_run_instead_of_guessing_a_case(tmp_path: Path) -> None:
    flow = tmp_path / "caught_flow.py"
    flow.write_text(
        "from runstore import FlowSpec, catch, step\n\n\nclass CaughtFlow(FlowSpec):\n    @catch(var='err')\n"
        "    @step\n    def start(self):\n        self.next({'a': self.end}, condition='nowhere')\n\n"
        "    @step\n    def end(self):\n        pass\n\n\nif __name__ == '__main__':\n    CaughtFlow()\n")
    proc = run_flow(flow, tmp_path / "runstore.db", "run")
    assert proc.returncode != 0
    assert "Step start (task-id 2) chose no case of its switch" in proc.stderr
    run = run_of(tmp_path / "runstore.db", "CaughtFlow/1")
    assert run["start"].task.data.err is not None and steps_run(run) == {"start": 1}
