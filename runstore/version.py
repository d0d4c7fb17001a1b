"""Which runstore is running: ``get_version()``, and the INFO file of a code package.

``get_version()`` describes the code itself: the release (``__version__``) when
runstore is installed normally, and ``X.Y.Z[.postN-gitHASH][-dirty]`` when it runs
from a git checkout, so two runs made from different commits are told apart
(``-dirty``: runstore's own files have uncommitted changes). Git is asked lazily
(never at ``import runstore``); the answer is cached in memory and on disk
(``runstore-version.json`` in the checkout's git directory) under a fingerprint of its state
(HEAD, index, refs, runstore's file times), so a flow run pays a few ``stat`` calls,
not several git processes.

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


def _git_top() -> Path | None:
    for folder in (_PACKAGE_DIR, *_PACKAGE_DIR.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _git_dirs(top: Path) -> tuple[Path, Path]:
    """``(git dir, common dir)`` of the work tree at ``top`` (linked worktrees included)."""
    dot = top / ".git"
    gitdir = dot
    if dot.is_file():
        text = dot.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text[len("gitdir:"):].strip())
            gitdir = gitdir if gitdir.is_absolute() else (top / gitdir).resolve()
    common = gitdir
    try:
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except OSError:
        pass
    return gitdir, common


def _fingerprint(top: Path) -> str:
    """Changes whenever the answer of git may: commits, checkouts, tags, edits of runstore's files.

    A few ``stat`` calls (about a millisecond), instead of several git processes
    (a few hundred milliseconds) on every ``python flow.py run``.
    """
    import zlib

    gitdir, common = _git_dirs(top)
    stamps = []
    for path in (gitdir / "HEAD", gitdir / "index", gitdir / "logs" / "HEAD", common / "packed-refs",
                 common / "refs" / "tags", common / "refs" / "heads"):
        try:
            st = path.stat()
            stamps.append(f"{path}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            stamps.append(f"{path}:-")
    for folder, dirs, files in os.walk(_PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                try:
                    st = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                stamps.append(f"{folder}/{name}:{st.st_mtime_ns}:{st.st_size}")
    stamps.sort()
    text = "\n".join(stamps).encode()
    return f"{len(stamps)}-{zlib.crc32(text):08x}-{zlib.adler32(text):08x}"


def _ask_git() -> tuple[str, int, str, bool] | bool:
    """The version parts; False when runstore is not tracked by the repository (a
    venv inside some other project's checkout must not report that project's
    commits); True when git could not answer (missing, broken): not cached."""
    if _git("ls-files", "--error-unmatch", "__init__.py") is None:
        return _git("--version") is None
    # "dirty" = uncommitted changes to runstore's own files (this directory).
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    dirty = bool(status)
    described = _git("describe", "--tags", "--long", "--abbrev=7", "--match", "v[0-9]*")
    parts = parse_describe(described) if described else None
    if parts is not None:
        return parts[0], parts[1], parts[2], dirty
    # no release tag yet: the package version plus the commit count
    count, commit = _git("rev-list", "--count", "HEAD"), _git("rev-parse", "--short=7", "HEAD")
    if not count or not commit:
        return True
    return __version__, int(count), commit, dirty


@lru_cache(maxsize=1)
def _git_parts() -> tuple[str, int, str, bool] | None:
    top = _git_top()
    if top is None:  # an installed release: no git process at all
        return None
    key = _fingerprint(top)
    cache = _git_dirs(top)[0] / "runstore-version.json"  # the checkout's own state, never committed
    try:
        cached = json.loads(cache.read_text(encoding="utf-8")).get(str(_PACKAGE_DIR))
    except (OSError, ValueError, AttributeError):
        cached = None
    if isinstance(cached, dict) and cached.get("key") == key:
        parts = cached.get("parts")
        return (parts[0], int(parts[1]), parts[2], bool(parts[3])) if parts else None
    answer = _ask_git()
    if answer is True:
        return None
    parts = answer or None
    try:  # best effort: a read-only home only costs the git calls next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".version.{os.getpid()}.json")
        tmp.write_text(json.dumps({str(_PACKAGE_DIR): {"key": key, "parts": list(parts) if parts else None}}),
                       encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass
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

    Read from, in order: the file named by ``RUNSTORE_INFO_FILE`` (``trigger`` sets
    it to the deployed package's INFO), then ``.runstore/INFO`` in the directory of
    the running script (a code package unpacked with its INFO). Inside a running
    task, the task's own facts are added: ``flow_name``, ``runstore_version``,
    ``run_id``, ``step_name``, ``task_id``, ``origin_run_id``, ``namespace`` and
    ``is_production``.

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
    info = _info_from_files()
    from .current import current

    if current.is_running_flow:  # what the running task knows, over the package's INFO
        info = dict(info or {})
        info.setdefault("flow_name", current.flow_name)
        info.setdefault("runstore_version", get_version())
        info.update(run_id=current.run_id, step_name=current.step_name, task_id=current.task_id,
                    origin_run_id=current.origin_run_id, namespace=current.namespace,
                    is_production=current.is_production)
    return info


def _info_from_files() -> dict[str, Any] | None:
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
