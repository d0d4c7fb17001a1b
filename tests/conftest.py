"""Shared fixtures: every test runs in its own directory with its own identity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from runstore import Store
from runstore.namespace import reset_namespace


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
def src_dir() -> Path:
    """The repository root (for running examples and scripts)."""
    return Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
