"""Reader-side trust for pickled artifacts (SPEC §3).

Each user has a random secret in their config directory (never in a store). When
this user writes a pickled blob, the store records ``HMAC(secret, blob_key)`` next to
it; when this user reads one, the MAC must be there. Whoever authored a file cannot
forge a MAC for someone else's secret, so a file can only make a reader unpickle
what the reader wrote or explicitly trusted (``runstore trust FILE``).

Trusting a file you cannot write (mode 444, another user's, a read-only mount) must
not need to write to it: those MACs go to the reader's home instead,
``RUNSTORE_HOME/trust/<store uuid>.macs``, one per line (same HMAC, same meaning).

Example
-------
>>> import os, tempfile
>>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
>>> len(trust_mac("ab" * 32))
64
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .util import config_dir

__all__ = ["trust_mac", "home_trust_path", "trust_in_home", "trusted_in_home"]


@lru_cache(maxsize=4)
def _secret(home: str) -> bytes:
    path = config_dir() / "secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    value = secrets.token_hex(32)
    tmp = path.with_name(f".secret.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    try:
        os.link(tmp, path)  # first writer wins; a racing process reads the winner's secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def trust_mac(blob_key: str) -> str:
    """This user's MAC of a blob key: proof that they wrote or trusted the blob.

    Example
    -------
    >>> trust_mac("00" * 32) == trust_mac("00" * 32)
    True
    """
    home = os.environ.get("RUNSTORE_HOME", "") + "|" + os.environ.get("HOME", "")
    return hmac.new(_secret(home), blob_key.encode("ascii"), hashlib.sha256).hexdigest()


def home_trust_path(store_uuid: str) -> Path:
    """Where this user's MACs for the store ``store_uuid`` live when the file cannot hold them.

    The UUID comes from a file someone else wrote, so it must be a real UUID before it
    becomes part of a path (``ValueError`` otherwise).

    Example
    -------
    >>> home_trust_path("12345678-1234-5678-1234-567812345678").name
    '12345678-1234-5678-1234-567812345678.macs'
    """
    checked = str(uuid.UUID(store_uuid))
    if checked != store_uuid.lower():
        raise ValueError(f"{store_uuid!r} is not a store UUID")
    return config_dir() / "trust" / f"{checked}.macs"


def trust_in_home(store_uuid: str, blob_keys: Iterable[str]) -> Path:
    """Record this user's trust of ``blob_keys`` of store ``store_uuid`` in their home.

    Example
    -------
    >>> uid = "12345678-1234-5678-1234-567812345678"
    >>> _ = trust_in_home(uid, ["ab" * 32])
    >>> trust_mac("ab" * 32) in trusted_in_home(uid)
    True
    """
    path = home_trust_path(store_uuid)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    known = trusted_in_home(store_uuid)
    new = [mac for mac in dict.fromkeys(trust_mac(key) for key in blob_keys) if mac not in known]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write("".join(f"{mac}\n" for mac in new))  # one append: concurrent writers interleave lines only
    return path


def trusted_in_home(store_uuid: str) -> frozenset[str]:
    """This user's MACs recorded in their home for store ``store_uuid`` (empty when none).

    Example
    -------
    >>> trusted_in_home("00000000-0000-0000-0000-000000000000")
    frozenset()
    """
    try:
        path = home_trust_path(store_uuid)
        st = path.stat()
    except (ValueError, OSError):
        return frozenset()
    return _read_macs(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _read_macs(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    try:
        return frozenset(line.strip() for line in Path(path).read_text().splitlines() if line.strip())
    except OSError:
        return frozenset()
