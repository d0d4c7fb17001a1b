"""Production deployments at the library level: tokens, authorization, generations (SPEC §7).

The end-to-end CLI story (deploy / trigger with two HOME directories) is in
tests/test_production_cli.py.
"""

from __future__ import annotations

import stat

import pytest

from runstore import ProductionTokenError, Store
from runstore.runtime.production import deploy, hash_token, load_token, token_path


@pytest.fixture
def as_user(monkeypatch, tmp_path):
    """Switch the current user and their private config directory."""

    def switch(name: str) -> None:
        monkeypatch.setenv("RUNSTORE_USER", name)
        monkeypatch.setenv("RUNSTORE_HOME", str(tmp_path / f"home-{name}"))

    return switch


def test_first_deploy_creates_generation_zero_and_saves_token_privately(file_store, as_user):
    as_user("anne")
    result = deploy(file_store, "TrainFlow", user="anne")
    assert result.first_time and result.new_namespace
    assert result.deployment.generation == 0
    assert result.deployment.namespace.startswith("production:TrainFlow-0-")
    path = token_path(file_store.uuid, "TrainFlow")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(file_store.uuid, "TrainFlow") == result.token
    # the store never holds the token itself
    with file_store.read() as conn:
        dumped = "\n".join(conn.iterdump())
    assert result.token not in dumped
    assert hash_token(result.token) in dumped


def test_someone_else_needs_the_token_once(file_store, as_user):
    as_user("anne")
    first = deploy(file_store, "TrainFlow", user="anne")
    as_user("will")
    with pytest.raises(ProductionTokenError) as err:
        deploy(file_store, "TrainFlow", user="will")
    message = str(err.value)
    assert "anne" in message and "--authorize TOKEN" in message and "\n" not in message
    with pytest.raises(ProductionTokenError):
        deploy(file_store, "TrainFlow", user="will", authorize="not-the-token")
    second = deploy(file_store, "TrainFlow", user="will", authorize=first.token)
    assert second.deployment.namespace == first.deployment.namespace
    assert second.deployment.owner == "will"
    # remembered: no --authorize the next time
    third = deploy(file_store, "TrainFlow", user="will")
    assert third.deployment.namespace == first.deployment.namespace


def test_generate_new_token_moves_production_to_a_fresh_namespace(file_store, as_user):
    as_user("anne")
    first = deploy(file_store, "TrainFlow", user="anne")
    moved = deploy(file_store, "TrainFlow", user="anne", generate_new_token=True)
    assert moved.new_namespace and moved.deployment.generation == 1
    assert moved.deployment.namespace.startswith("production:TrainFlow-1-")
    assert moved.deployment.namespace != first.deployment.namespace
    assert moved.token != first.token
    # the old token no longer authorizes anyone
    as_user("will")
    with pytest.raises(ProductionTokenError):
        deploy(file_store, "TrainFlow", user="will", authorize=first.token)


def test_tokens_are_unguessable_and_namespaces_distinct():
    tokens, namespaces = set(), set()
    for i in range(20):
        store = Store(":memory:")
        result = deploy(store, "F", user="anne")
        tokens.add(result.token)
        namespaces.add(result.deployment.namespace)
        assert len(result.token) >= 40
    assert len(tokens) == 20 and len(namespaces) == 20
