"""Production deployments: isolated namespaces guarded by an unguessable token (SPEC §7).

``deploy`` registers a flow's code as its production deployment in the namespace
``production:<Flow>-<generation>-<random>``. The token that authorizes the next
deploy is random (``secrets``), the store keeps only its sha256, and the deployer's
copy is saved per user (mode 0600) so that ``--authorize TOKEN`` is needed once.

Unlike Metaflow, the token is not the namespace name: the namespace is visible in
every production run's tags, so it cannot double as a secret. Authority is the token
alone, never a user name (SPEC §13, promise 6): redeploying, ``--generate-new-token``
and ``trigger`` all need it, and a run enters the production namespace only when
:func:`production_identity` has checked the token ``trigger`` hands it.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ProductionTokenError, RunstoreError
from ..store._deploy import Deployment
from ..util import check_flow_name, check_uuid, config_dir, printable

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["DeployResult", "extract_code", "deploy", "hash_token", "load_token", "save_token", "token_path",
           "production_identity", "TOKEN_ENV", "NAMESPACE_ENV"]

#: Set by ``trigger`` for the run it starts: the secret production token, checked
#: against the stored hash before the run is tagged (then removed from the environment).
TOKEN_ENV = "RUNSTORE_PRODUCTION_TOKEN"
#: Set by ``trigger`` too: the public production namespace, only the *client's*
#: default namespace inside the run (reading; it authorizes nothing).
NAMESPACE_ENV = "RUNSTORE_PRODUCTION_NAMESPACE"

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # string.ascii_lowercase + digits (no `string` import)


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

    Both parts come from a store file, so both are checked before they make a path:
    the store UUID must be a UUID (``NotAStoreError``), the flow a flow name
    (``InvalidPathspec``); ``../`` never leaves the config directory.

    Example
    -------
    >>> token_path("0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a", "TrainFlow").name
    '0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a-TrainFlow.json'

    A ``@project`` deployment is named by its project flow name
    (``<project>.<branch>.<Flow>``, whose branch may hold any user name): its file is
    named by the flow and a hash of the whole name.

    >>> token_path("0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a", "p.user.anne.TrainFlow").name
    '0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a-TrainFlow-c72c946627a0b6ce.json'
    """
    if isinstance(flow, str) and "." in flow:
        short = f"{check_flow_name(flow.rpartition('.')[2])}-{hashlib.sha256(flow.encode()).hexdigest()[:16]}"
    else:
        short = check_flow_name(flow)
    return config_dir() / "production" / f"{check_uuid(store_uuid)}-{short}.json"


def save_token(store_uuid: str, flow: str, token: str) -> Path:
    """Save the token readable by this user only (0600), atomically.

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> oct(save_token("0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a", "F", "tok").stat().st_mode & 0o777)
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
    >>> load_token("0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a", "F") is None
    True
    """
    path = token_path(store_uuid, flow)
    try:
        return json.loads(path.read_text())["production_token"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class DeployResult:
    """What ``deploy`` did: the new deployment, the token to share, and how it came about.

    ``token`` is the token that authorizes the next deploy (the new one after
    ``--generate-new-token``); it is saved for this user.
    """

    deployment: Deployment
    token: str
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

    The first deploy creates generation 0. A later deploy is allowed only with the
    right token (``authorize``, else the one saved for this user); a user name
    authorizes nothing (another home with ``USER=anne`` is not anne). Without it,
    :class:`ProductionTokenError` says how to get and pass the token.
    ``generate_new_token`` moves production to a fresh namespace with a fresh token
    (also only with the current token).

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
    token_path(store.uuid, flow)  # a store uuid or flow name unfit for a path: refused before any write
    while True:
        existing = store.get_deployment(flow)
        if existing is None and authorize:  # a token for nothing: probably the wrong store or flow
            raise ProductionTokenError(
                f"the token given to --authorize is not the production token of {flow}: {flow} is not "
                f"deployed in {store.where} yet (check --db); a first deploy needs no token"
            )
        if existing is None:
            token = secrets.token_urlsafe(32)
            new = Deployment(flow, 0, _new_namespace(flow, 0), hash_token(token), user, code_id,
                             script_name, 0.0)
            first_time, new_namespace = True, True
        else:
            candidate = authorize or load_token(store.uuid, flow)
            holds_token = candidate is not None and hash_token(candidate) == existing.token_hash
            owner = printable(existing.owner)
            if authorize and not holds_token:
                raise ProductionTokenError(
                    f"the token given to --authorize is not the production token of {flow}; "
                    f"ask {owner} for the right one"
                )
            if not holds_token:
                raise ProductionTokenError(
                    f"{flow} is deployed to production by {owner} "
                    f"({printable(existing.namespace)}); to deploy a new version you need its production "
                    f"token (the deployer's copy is not on this machine): ask {owner} for it, then run: "
                    f"python {script_name or 'flow.py'} deploy --authorize TOKEN"
                )
            first_time = False
            if generate_new_token:
                token = secrets.token_urlsafe(32)
                generation = existing.generation + 1
                new = Deployment(flow, generation, _new_namespace(flow, generation), hash_token(token),
                                 user, code_id, script_name, 0.0)
                new_namespace = True
            else:
                assert candidate is not None
                token = candidate
                new = Deployment(flow, existing.generation, existing.namespace, existing.token_hash,
                                 user, code_id, script_name, 0.0)
                new_namespace = False
        if store.swap_deployment(new, existing.token_hash if existing else None):
            break  # else another deploy won the race: decide again against its result
    save_token(store.uuid, flow, token)
    return DeployResult(store.get_deployment(flow) or new, token, first_time, new_namespace)


def production_identity(store: "Store", flow: str, token: str | None = None) -> str | None:
    """The production namespace a run of ``flow`` may enter with ``token``; None without one.

    ``token`` defaults to ``RUNSTORE_PRODUCTION_TOKEN`` (what ``trigger`` sets). It must
    be the deployment's current token, checked against the stored hash: the public
    namespace id, an old token or a guess raise :class:`ProductionTokenError`, so a
    plain ``python flow.py run`` can never tag its run ``production:…``.

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> result = deploy(store, "F", user="anne")
    >>> production_identity(store, "F", result.token) == result.deployment.namespace
    True
    >>> production_identity(store, "F", result.deployment.namespace)
    Traceback (most recent call last):
    ...
    runstore.errors.ProductionTokenError: RUNSTORE_PRODUCTION_TOKEN is not the production token of F; production runs are started with 'trigger'
    """
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    if not token:
        return None
    existing = store.get_deployment(flow)
    if existing is None or not secrets.compare_digest(hash_token(token), existing.token_hash):
        raise ProductionTokenError(
            f"{TOKEN_ENV} is not the production token of {flow}; production runs are started with 'trigger'"
        )
    return existing.namespace


def extract_code(tarball: bytes, into: str | os.PathLike[str]) -> Path:
    """Unpack a code package into ``into`` (refusing members that would land outside it).

    Example
    -------
    >>> import tempfile
    >>> from runstore.runtime.environment import code_package
    >>> src = Path(tempfile.mkdtemp()); _ = (src / "f.py").write_text("x = 1\\n")
    >>> out = extract_code(code_package(src / "f.py", "F"), tempfile.mkdtemp())
    >>> sorted(p.name for p in out.iterdir())
    ['.runstore', 'f.py']
    """
    import io
    import tarfile

    root = Path(into).resolve()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if not member.isfile() or (target != root and root not in target.parents):
                raise RunstoreError(f"the code package has an unexpected member {member.name!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
    return root
