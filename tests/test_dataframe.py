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
                                "duration_s", "user", "tags", "alpha", "result", "missing"]
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
