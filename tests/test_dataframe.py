"""Runs as a pandas DataFrame: the 'comparing runs' example in one call."""

from __future__ import annotations

import subprocess
import sys

import pytest

from storefill import add_run
from runstore import Store, to_dataframe
from runstore.client import Flow
from runstore.namespace import namespace, use_store


def test_to_dataframe_parameters_and_artifacts(memory_store: Store):
    pd = pytest.importorskip("pandas")
    for alpha, result in [(0.1, 0.91), (0.2, 0.95), (0.3, None)]:
        add_run(memory_store, alpha=alpha, result=result, tags=("sweep",) if result else ())
    add_run(memory_store, "Other")
    with use_store(memory_store):
        namespace(None)
        df = to_dataframe(Flow("F").runs(), artifacts=["result", "missing"])
        tagged = to_dataframe(Flow("F").runs("sweep"), artifacts=["result"])
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["pathspec", "run_number", "status", "successful", "created_at", "finished_at",
                                "duration_s", "user", "tags", "tags_text", "alpha", "result", "missing"]
    assert df["pathspec"].tolist() == ["F/3", "F/2", "F/1"]  # newest first, like the client
    assert df["alpha"].tolist() == [0.3, 0.2, 0.1]
    assert df["result"].tolist()[1:] == [0.95, 0.91] and pd.isna(df["result"].tolist()[0])
    assert df["missing"].isna().all() and df["successful"].all()
    assert str(df["created_at"].dtype).startswith("datetime64")
    assert tagged.sort_values("result", ascending=False)["pathspec"].tolist() == ["F/2", "F/1"]
    assert to_dataframe([]).empty


def test_pandas_is_not_imported_by_runstore():
    code = "import sys, runstore, runstore.dataframe, runstore.cli; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


EVIL = """
import pathlib, sys
sys.path.insert(0, {tests!r})
from storefill import add_run
from runstore import Store

class Payload:
    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path({marker!r}), "pwned"))

store = Store({db!r})
add_run(store, "F", alpha=0.1, result=0.9, tags=("sweep", "a"), user="mallory")
add_run(store, "F", alpha=0.2, model=Payload(), result=Payload(), tags=("sweep",), user="mallory")
store.close()
"""


def test_untrusted_pickles_fill_a_marker_and_warn_once(tmp_path, monkeypatch):
    """A colleague's store (another RUNSTORE_HOME): the frame fills, nothing is unpickled."""
    import os
    import warnings
    from pathlib import Path

    from runstore.dataframe import UNTRUSTED

    pd = pytest.importorskip("pandas")
    db, marker = tmp_path / "colleague.db", tmp_path / "PWNED"
    code = EVIL.format(tests=str(Path(__file__).parent), marker=str(marker), db=str(db))
    subprocess.run([sys.executable, "-c", code], check=True,
                   env=dict(os.environ, RUNSTORE_HOME=str(tmp_path / "colleague-home"), RUNSTORE_USER="mallory"))
    store = Store(db)
    namespace(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = to_dataframe(Flow("F", store=store).runs(), artifacts=["result"])
        steps = to_dataframe(Flow("F", store=store).runs(), artifacts={"start": ["model", "x"]})
    assert not marker.exists()
    assert df["result"].tolist() == [UNTRUSTED, 0.9]
    assert steps["start.model"].tolist()[0] == UNTRUSTED and pd.isna(steps["start.model"].tolist()[1])
    assert steps["start.x"].notna().all()
    untrusted = [w for w in caught if "untrusted store" in str(w.message)]
    assert len(untrusted) == 2  # once per call, not once per cell
    assert "F/2/end" in str(untrusted[0].message) and "runstore trust" in str(untrusted[0].message)
    # tags as text: a column pandas can group by
    assert df.groupby("tags_text").size().to_dict() == {"a sweep": 1, "sweep": 1}
    store.close()


def test_artifacts_from_any_step_foreach_as_list(memory_store):
    pytest.importorskip("pandas")
    from runstore import FlowSpec, Runner, step

    class Folds(FlowSpec):
        @step
        def start(self):
            self.folds = [3, 1, 2]
            self.next(self.train, foreach="folds")

        @step
        def train(self):
            self.fold_acc = self.input / 10
            self.next(self.join)

        @step
        def join(self, inputs):
            self.mean_acc = sum(i.fold_acc for i in inputs) / len(inputs)
            self.next(self.end)

        @step
        def end(self):
            pass

    Runner(Folds, store=memory_store).run()
    namespace(None)
    df = to_dataframe(Flow("Folds", store=memory_store).runs(),
                      artifacts={"train": ["fold_acc"], "join": ["mean_acc"], "nostep": ["x"]})
    assert df["train.fold_acc"].tolist() == [[0.3, 0.1, 0.2]]  # by foreach index
    assert df["join.mean_acc"].tolist() == [pytest.approx(0.2)]
    assert df["nostep.x"].isna().all()
