"""Which runstore is running: ``get_version()``, and the INFO file of a code package.

``get_version()`` describes the code itself: the release (``__version__``) when
runstore is installed normally, and ``X.Y.Z[.postN-gitHASH][-dirty]`` when it runs
from a git checkout, so two runs made from different commits are told apart. Git is
asked once, lazily (never at ``import runstore``), and the answer is cached.

Example
-------
>>> format_version("0.1.0", 0, "abc1234", False)
'0.1.0'
>>> format_version("0.1.0", 5, "abc1234", True)
'0.1.0.post5-gitabc1234-dirty'
>>> format_version("0.1.0", 5, "abc1234", True, public=True)
'0.1.0.post5'
"""

from __future__ import annotations

import json
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import RunstoreError

__all__ = ["get_version", "read_info_file", "format_version", "parse_describe", "INFO_ENV"]

#: Environment variable the runtime sets to the INFO file of a running task.
INFO_ENV = "RUNSTORE_INFO_FILE"

_PACKAGE_DIR = Path(__file__).resolve().parent
_DESCRIBE = re.compile(r"^v(?P<base>\d+\.\d+\.\d+)-(?P<distance>\d+)-g(?P<hash>[0-9a-f]+)(?P<dirty>-dirty)?$")


def format_version(base: str, distance: int, commit: str | None, dirty: bool, *, public: bool = False) -> str:
    """Compose a version string from its parts.

    ``distance`` is the number of commits since ``base`` was released; ``commit``
    the short hash of the running commit. ``public=True`` gives the PEP 440 form
    (no hash, no dirty marker).

    Example
    -------
    >>> format_version("1.2.3", 2, "0123abc", False)
    '1.2.3.post2-git0123abc'
    >>> format_version("1.2.3", 0, "0123abc", True)
    '1.2.3-dirty'
    """
    version = base
    if distance:
        version += f".post{distance}"
        if not public and commit:
            version += f"-git{commit[:7]}"
    if dirty and not public:
        version += "-dirty"
    return version


def parse_describe(text: str) -> tuple[str, int, str, bool] | None:
    """Parse ``git describe --tags --long --dirty`` output (``v0.1.0-5-gabc1234-dirty``).

    Returns ``(base, distance, hash, dirty)``, or None for anything else.

    Example
    -------
    >>> parse_describe("v0.1.0-5-gabc1234-dirty")
    ('0.1.0', 5, 'abc1234', True)
    >>> parse_describe("nightly-3-gabc1234") is None
    True
    """
    match = _DESCRIBE.match(text.strip())
    if match is None:
        return None
    return match["base"], int(match["distance"]), match["hash"], bool(match["dirty"])


def _git(*args: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", *args], cwd=_PACKAGE_DIR, capture_output=True, text=True, timeout=5,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):  # git missing, or hanging
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def _git_parts() -> tuple[str, int, str, bool] | None:
    # Only when runstore itself is tracked by the repository: a venv inside some
    # other project's checkout must not report that project's commits.
    if _git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    described = _git("describe", "--tags", "--long", "--dirty", "--abbrev=7", "--match", "v[0-9]*")
    parts = parse_describe(described) if described else None
    if parts is None:  # no release tag yet: the package version plus the commit count
        count, commit = _git("rev-list", "--count", "HEAD"), _git("rev-parse", "--short=7", "HEAD")
        if not count or not commit:
            return None
        status = _git("status", "--porcelain", "--untracked-files=no")
        parts = (__version__, int(count), commit, bool(status))
    return parts


def get_version(public: bool = False) -> str:
    """The version of the running runstore.

    Parameters
    ----------
    public : bool
        Return the PEP 440 form (``0.1.0.post5``) instead of the full one
        (``0.1.0.post5-gitabc1234-dirty``).

    Returns
    -------
    str
        ``__version__`` for an installed release; from a git checkout the describe
        of the last ``vX.Y.Z`` tag (or the package version plus the commit count
        when there is no tag yet), with ``-dirty`` for uncommitted changes.

    Example
    -------
    >>> from runstore import get_version
    >>> get_version(public=True).startswith("0.")
    True
    """
    parts = _git_parts()
    return __version__ if parts is None else format_version(*parts, public=public)


def read_info_file() -> dict[str, Any] | None:
    """The INFO dict of the running task or code package, or None outside one.

    Looked up in order: the file named by ``RUNSTORE_INFO_FILE`` (set by the
    runtime inside a running task), then ``.runstore/INFO`` in the directory of the
    running script (a code package unpacked with its INFO).

    Raises
    ------
    RunstoreError
        When the INFO file exists but is not a JSON object.

    Example
    -------
    >>> import os
    >>> os.environ.pop("RUNSTORE_INFO_FILE", None) and None
    >>> read_info_file() is None or isinstance(read_info_file(), dict)
    True
    """
    candidates = []
    env = os.environ.get(INFO_ENV)
    if env:
        candidates.append(Path(env))
    if sys.argv and sys.argv[0]:
        candidates.append(Path(sys.argv[0]).resolve().parent / ".runstore" / "INFO")
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError as exc:
            raise RunstoreError(f"cannot read INFO file {path}: {exc.strerror or exc}") from exc
        try:
            info = json.loads(text)
        except ValueError as exc:
            raise RunstoreError(f"INFO file {path} is not valid JSON: {exc}") from exc
        if not isinstance(info, dict):
            raise RunstoreError(f"INFO file {path} does not hold a JSON object")
        return info
    return None
