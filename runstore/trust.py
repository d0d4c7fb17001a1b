"""Reader-side trust for pickled artifacts (SPEC §3).

Each user has a random secret in their config directory (never in a store). When
this user writes a pickled blob, the store records ``HMAC(secret, blob_key)`` next to
it; when this user reads one, the MAC must be there. Whoever authored a file cannot
forge a MAC for someone else's secret, so a file can only make a reader unpickle
what the reader wrote or explicitly trusted (``runstore trust FILE``).

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
from functools import lru_cache

from .util import config_dir

__all__ = ["trust_mac"]


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
