"""Production deployments: isolated namespaces guarded by an unguessable token (SPEC §7).

``deploy`` registers a flow's code as its production deployment in the namespace
``production:<Flow>-<generation>-<random>``. The token that authorizes the next
deploy is random (``secrets``), the store keeps only its sha256, and the deployer's
copy is saved per user (mode 0600) so that ``--authorize TOKEN`` is needed once.

Unlike Metaflow, the token is not the namespace name: the namespace is visible in
every production run's tags, so it cannot double as a secret.

Example
-------
>>> import os, tempfile
>>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
>>> from runstore import Store
>>> store = Store(":memory:")
>>> result = deploy(store, "TrainFlow", user="anne")
>>> result.deployment.namespace.startswith("production:TrainFlow-0-")
True
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ProductionTokenError
from .store._deploy import Deployment
from .util import config_dir

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DeployResult", "deploy", "hash_token", "load_token", "save_token", "token_path"]

_ALPHABET = string.ascii_lowercase + string.digits


def hash_token(token: str) -> str:
    """The sha256 of a token: all the store ever keeps of it.

    Example
    -------
    >>> len(hash_token("secret"))
    64
    """
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def token_path(store_uuid: str, flow: str) -> Path:
    """Where this user keeps the production token of ``flow`` in one store.

    Example
    -------
    >>> token_path("1234", "TrainFlow").name
    '1234-TrainFlow.json'
    """
    return config_dir() / "production" / f"{store_uuid}-{flow}.json"


def save_token(store_uuid: str, flow: str, token: str) -> Path:
    """Save the token readable by this user only (0600), atomically.

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> oct(save_token("u", "F", "tok").stat().st_mode & 0o777)
    '0o600'
    """
    path = token_path(store_uuid, flow)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"flow": flow, "store": store_uuid, "production_token": token}, fh)
    os.replace(tmp, path)
    return path


def load_token(store_uuid: str, flow: str) -> str | None:
    """This user's saved token for ``flow``, or None.

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> load_token("u", "F") is None
    True
    """
    try:
        return json.loads(token_path(store_uuid, flow).read_text())["production_token"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class DeployResult:
    """What ``deploy`` did: the new deployment, the token to share, and how it came about.

    ``token`` is None only when the owner redeployed from a machine without their
    token (they can still deploy; ``--generate-new-token`` gives them a new one).
    """

    deployment: Deployment
    token: str | None
    first_time: bool
    new_namespace: bool


def _new_namespace(flow: str, generation: int) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"production:{flow}-{generation}-{suffix}"


def deploy(
    store: "Store",
    flow: str,
    *,
    user: str,
    code_id: int | None = None,
    script_name: str | None = None,
    authorize: str | None = None,
    generate_new_token: bool = False,
) -> DeployResult:
    """Make ``code_id`` the production deployment of ``flow``.

    The first deploy creates generation 0. A later deploy is allowed with the right
    token (``authorize``, else the one saved for this user) or by the previous
    deployer; anyone else gets :class:`ProductionTokenError` saying how to get and
    pass the token. ``generate_new_token`` moves production to a fresh namespace
    with a fresh token (also only when authorized).

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> first = deploy(store, "F", user="anne")
    >>> again = deploy(store, "F", user="anne")
    >>> again.deployment.namespace == first.deployment.namespace
    True
    """
    authorize = authorize.strip() if authorize else None
    while True:
        existing = store.get_deployment(flow)
        if existing is None:
            token = secrets.token_urlsafe(32)
            new = Deployment(flow, 0, _new_namespace(flow, 0), hash_token(token), user, code_id,
                             script_name, 0.0)
            first_time, new_namespace = True, True
        else:
            candidate = authorize or load_token(store.uuid, flow)
            holds_token = candidate is not None and hash_token(candidate) == existing.token_hash
            if not holds_token and existing.owner != user:
                raise ProductionTokenError(
                    f"{flow} is deployed to production by {existing.owner} "
                    f"({existing.namespace}); to deploy a new version you need the production token "
                    f"they used: ask {existing.owner} for it, then run: "
                    f"python {script_name or 'flow.py'} deploy --authorize TOKEN"
                )
            if authorize and not holds_token:
                raise ProductionTokenError(
                    f"the token given to --authorize is not the production token of {flow}; "
                    f"ask {existing.owner} for the right one"
                )
            first_time = False
            if generate_new_token:
                token = secrets.token_urlsafe(32)
                generation = existing.generation + 1
                new = Deployment(flow, generation, _new_namespace(flow, generation), hash_token(token),
                                 user, code_id, script_name, 0.0)
                new_namespace = True
            else:
                token = candidate if holds_token else None
                new = Deployment(flow, existing.generation, existing.namespace, existing.token_hash,
                                 user, code_id, script_name, 0.0)
                new_namespace = False
        if store.swap_deployment(new, existing.token_hash if existing else None):
            break  # else another deploy won the race: decide again against its result
    if token is not None:
        save_token(store.uuid, flow, token)
    return DeployResult(store.get_deployment(flow) or new, token, first_time, new_namespace)
