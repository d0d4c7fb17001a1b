"""Shared fixtures: every test runs in its own directory with its own identity.

Stores: ``memory_store`` (empty, in memory), ``file_store`` (empty, in a file), ``client_store``
(in memory, the client's store, namespace ``user:anne``), ``runs_db`` (a file holding three runs
of flow F). Store contents are built with ``storefill``; subprocess helpers are in ``helpers``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from storefill import add_run

from runstore import Store
from runstore.namespace import namespace, reset_namespace, use_store


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never write into the current directory or the real home; fixed user name."""
    work = tmp_path_factory.mktemp("cwd")
    home = tmp_path_factory.mktemp("home")
    monkeypatch.chdir(work)
    monkeypatch.setenv("RUNSTORE_HOME", str(home / ".runstore"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RUNSTORE_USER", "tester")
    monkeypatch.delenv("RUNSTORE_DB", raising=False)
    monkeypatch.delenv("RUNSTORE_PRODUCTION_TOKEN", raising=False)
    monkeypatch.delenv("RUNSTORE_PRODUCTION_NAMESPACE", raising=False)
    reset_namespace()  # every test starts in its identity namespace
    yield
    reset_namespace()


@pytest.fixture
def memory_store() -> Iterator[Store]:
    """A fresh in-memory store."""
    store = Store(":memory:")
    yield store
    store.close()


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store in a file under tmp_path."""
    store = Store(tmp_path / "runstore.db")
    yield store
    store.close()


@pytest.fixture
def client_store(memory_store: Store) -> Iterator[Store]:
    """``memory_store`` as the client's store (``Flow(...)`` reads it), in namespace ``user:anne``."""
    with use_store(memory_store):
        namespace("user:anne")
        yield memory_store


@pytest.fixture
def runs_db(tmp_path: Path) -> Path:
    """A store file with three runs of flow ``F`` (F/1..F/3, alpha 0.0/0.1/0.2, tag ``exp``, a
    2000-byte random ``model``), closed again: for command-line tests."""
    path = tmp_path / "runstore.db"
    store = Store(path)
    for i in range(3):
        add_run(store, alpha=i / 10, model=os.urandom(2000), tags=("exp",))
    store.close()
    return path


@pytest.fixture
def src_dir() -> Path:
    """The repository root (for running examples and scripts)."""
    return Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
