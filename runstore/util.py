"""Small helpers with no SQL and no state: identity, clock, config directory, hosts.

Example
-------
>>> import os
>>> os.environ["RUNSTORE_USER"] = "anne"
>>> resolve_username()
'anne'
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path

from .errors import UnknownUser

__all__ = ["resolve_username", "now", "config_dir", "hostname", "pid_alive"]


def resolve_username() -> str:
    """The user name runs are recorded under.

    Order: ``RUNSTORE_USER`` > ``USER`` > ``USERNAME`` > the login name. Unlike
    Metaflow, ``root`` is accepted (containers and CI often run as root).

    Example
    -------
    >>> import os
    >>> os.environ["RUNSTORE_USER"] = "will"
    >>> resolve_username()
    'will'
    """
    for var in ("RUNSTORE_USER", "USER", "USERNAME"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        value = getpass.getuser().strip()
    except Exception:  # getpass raises OSError/KeyError when there is no passwd entry
        value = ""
    if not value:
        raise UnknownUser(
            "could not determine your user name; set RUNSTORE_USER (or USER) and try again"
        )
    return value


def now() -> float:
    """Seconds since the epoch (UTC), the unit of every time column.

    Example
    -------
    >>> now() > 1.7e9
    True
    """
    return time.time()


def config_dir() -> Path:
    """Per-user runstore directory (trust secret, production tokens), made on demand.

    ``RUNSTORE_HOME`` overrides the default ``$XDG_CONFIG_HOME/runstore`` or
    ``~/.config/runstore``. Created with mode 0700.

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> config_dir().is_dir()
    True
    """
    explicit = os.environ.get("RUNSTORE_HOME")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        path = Path(base) / "runstore"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def hostname() -> str:
    """This machine's host name, recorded as a run's owner.

    Example
    -------
    >>> isinstance(hostname(), str)
    True
    """
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (zombies count as dead).

    Example
    -------
    >>> import os
    >>> pid_alive(os.getpid())
    True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0); /proc tells the truth on Linux
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True
