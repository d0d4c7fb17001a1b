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

__all__ = ["resolve_username", "now", "config_dir", "hostname", "pid_alive", "pause_point"]


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


#: Crash tests only: ``RUNSTORE_TEST_PAUSE_AT=<point>[@<step>]:<seconds>`` makes the
#: runtime stop at a named point so a test can ``kill -9`` it there (see pause_point).
TEST_PAUSE_VAR = "RUNSTORE_TEST_PAUSE_AT"


def pause_point(point: str, step: str | None = None) -> None:
    """Pause here when ``RUNSTORE_TEST_PAUSE_AT`` names this point (crash tests only).

    The runtime calls this at ``task_start`` (attempt recorded, user code not yet
    run), ``task_persist`` (artifacts encoded and their large chunks written, the
    attempt's commit not yet done) and ``run_finish`` (every task done, the run's
    final status not yet written). When the variable is unset this is one dict
    lookup. When it matches (``<point>`` or ``<point>@<step>``), the process writes
    ``runstore-test-pause <point> pid=<pid>`` to its stderr file descriptor and
    sleeps ``<seconds>``, so a test can poll its stderr and kill that pid at
    exactly that point (tests/test_reliability_crash.py).

    Example
    -------
    >>> pause_point("task_persist", "start")  # no-op unless the variable is set
    """
    spec = os.environ.get(TEST_PAUSE_VAR)
    if not spec:
        return
    target, _, seconds = spec.rpartition(":")
    if target not in (point, f"{point}@{step}"):
        return
    os.write(2, f"runstore-test-pause {point} pid={os.getpid()}\n".encode())
    time.sleep(float(seconds or 0))
