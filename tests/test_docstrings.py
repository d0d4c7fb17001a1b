"""Public names carry docstrings with an example, and every example in runstore/ is true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import runstore

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(runstore.__path__, prefix="runstore.")
    if name not in ("runstore.__main__", "runstore.cli.__main__")
)


@pytest.mark.parametrize("name", sorted(set(runstore.__all__) - {"__version__"}))
def test_public_name_has_docstring_with_example(name):
    obj = getattr(runstore, name)
    doc = getattr(obj, "__doc__", None) or ""
    assert ">>>" in doc or "Example" in doc, f"runstore.{name} needs a docstring with an example"


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name, monkeypatch):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"
