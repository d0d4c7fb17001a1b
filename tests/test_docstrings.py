"""Public names carry docstrings with an example, and every example in runstore/ is true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re

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


# the drawing in runstore/errors.py is the real tree


def test_error_tree_drawing_matches_the_classes() -> None:
    import runstore.errors as errors

    drawn: dict[str, tuple[str | None, str | None]] = {}  # name -> (drawn parent, builtin in parens)
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^\s*(?:[│ ]*[├└]── )?([A-Z]\w+)(?: \((\w+)\))?", line)
        if not match or match.group(1) not in errors.__all__:
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        drawn[match.group(1)] = (stack[-1][1] if stack else None, match.group(2))
        stack.append((depth, match.group(1)))
    assert set(drawn) == set(errors.__all__)  # every class drawn, nothing extra
    for name, (parent, extra) in drawn.items():
        cls = getattr(errors, name)
        bases = [b.__name__ for b in cls.__bases__]
        if parent is None:
            assert (name, bases) == ("RunstoreError", [extra]), (name, bases)
            continue
        assert bases[0] == parent, (name, bases, parent)
        expected = [parent] + ([extra] if extra and extra != parent and extra != "RunstoreError" else [])
        assert bases == expected, (name, bases, expected)
