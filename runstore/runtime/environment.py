"""What a run records about where it ran: code snapshot, git state, system tags, metadata.

The code snapshot is a deterministic ``tar.gz`` of the ``.py`` files under the flow
file's directory (sorted, mtime 0, owner 0, gzip mtime 0) plus ``.runstore/INFO``; the
same code gives the same bytes, so the store keeps it once.

Example
-------
>>> tags = system_tags()
>>> sorted(t.split(":")[0] for t in tags)
['date', 'python_version', 'runstore_version', 'runtime']
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..version import get_version

__all__ = ["system_tags", "code_package", "git_info", "environment_metadata", "MAX_CODE_BYTES"]

#: Upper bound on the source files put in one code snapshot.
MAX_CODE_BYTES = 10 * 1024 * 1024
_SKIP_DIRS = {"__pycache__", "site-packages", "node_modules", "venv", "env", "build", "dist"}


def python_version() -> str:
    """``X.Y.Z`` of the running interpreter (without importing ``platform``: start-up cost)."""
    return "%d.%d.%d" % sys.version_info[:3]


def platform_name() -> str:
    """``Linux-6.1.0-x86_64``-style description of this machine."""
    u = os.uname()
    return f"{u.sysname}-{u.release}-{u.machine}"


def system_tags() -> list[str]:
    """The immutable tags of a local run (the namespace tag is added by the store).

    Example
    -------
    >>> any(t.startswith("runtime:local") for t in system_tags())
    True
    """
    return [
        "runtime:local",
        f"python_version:{python_version()}",
        f"runstore_version:{get_version()}",
        "date:" + time.strftime("%Y%m%d", time.gmtime()),
    ]


def _source_files(root: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                         and not (Path(folder) / d / "pyvenv.cfg").exists())
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = Path(folder) / name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if total + size > MAX_CODE_BYTES:
                return found
            total += size
            found.append((path.relative_to(root).as_posix(), path))
    return found


def _ustar_header(name: str, size: int) -> bytes | None:
    """A POSIX ustar header for a regular file (mode 0644, owner 0, mtime 0), or None if the name is too long."""
    raw = name.encode("utf-8")
    prefix = b""
    if len(raw) > 100:
        cut = raw.rfind(b"/", 0, 156)
        if cut <= 0 or len(raw) - cut - 1 > 100:
            return None
        prefix, raw = raw[:cut], raw[cut + 1:]
    header = bytearray(512)
    header[0:len(raw)] = raw
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"00000000000\0"
    header[148:156] = b" " * 8
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    header[345:345 + len(prefix)] = prefix
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def code_package(flow_file: str | os.PathLike[str], flow_name: str, extra: dict[str, bytes] | None = None) -> bytes:
    """The deterministic ``tar.gz`` snapshot of the flow's directory.

    Written by hand (ustar headers + zlib's gzip framing, mtime 0) rather than with
    ``tarfile``/``gzip``, whose imports cost more than the rest of a small run.

    Example
    -------
    >>> import tempfile, pathlib, tarfile, io
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "f.py").write_text("x = 1\\n")
    6
    >>> data = code_package(d / "f.py", "F")
    >>> data == code_package(d / "f.py", "F")
    True
    >>> tarfile.open(fileobj=io.BytesIO(data)).getnames()
    ['f.py', '.runstore/INFO']
    """
    script = Path(flow_file).resolve()
    members = [(rel, path.read_bytes()) for rel, path in _source_files(script.parent)]
    # ``extra``: members runstore adds itself, e.g. a deployment's configs (.runstore/CONFIG)
    return _pack(members + sorted((extra or {}).items()), script.name, flow_name)


#: The script name of a flow defined in a notebook cell (or by ``exec`` with a source).
CELL_SCRIPT = "notebook_cell.py"


def cell_source(flow_class: type) -> bytes | None:
    """The source a flow defined in a notebook cell came from (``None`` when it has none).

    IPython (and ipykernel) register each cell's text with :mod:`linecache` under the
    cell's pseudo file name, which is how tracebacks show it; that text is the code
    snapshot of a run of a flow defined there (as Metaflow's ``NBRunner`` keeps it).

    Example
    -------
    >>> import linecache
    >>> linecache.cache["<cell-1>"] = (5, None, ["x = 1"], "<cell-1>")
    >>> class Fake:
    ...     pass
    >>> Fake.start = type("S", (), {"__code__": type("C", (), {"co_filename": "<cell-1>"})()})()
    >>> cell_source(Fake)
    b'x = 1'
    """
    import linecache

    start = getattr(flow_class, "start", None)
    code = getattr(start, "__code__", None)
    filename = getattr(code, "co_filename", None)
    if not filename:
        return None
    lines = linecache.getlines(filename)
    return "".join(lines).encode() if lines else None


def cell_code_package(source: bytes, flow_name: str) -> bytes:
    """The code package of a flow defined in a notebook cell: the cell as ``notebook_cell.py``.

    Example
    -------
    >>> import tarfile, io
    >>> data = cell_code_package(b"x = 1", "F")
    >>> tarfile.open(fileobj=io.BytesIO(data)).getnames()
    ['notebook_cell.py', '.runstore/INFO']
    """
    return _pack([(CELL_SCRIPT, source)], CELL_SCRIPT, flow_name)


def _pack(members: list[tuple[str, bytes]], script: str, flow_name: str) -> bytes:
    import zlib

    info = json.dumps({"flow_name": flow_name, "script": script, "runstore_version": get_version()},
                      sort_keys=True).encode()
    members = [*members, (".runstore/INFO", info)]
    parts: list[bytes] = []
    for name, data in members:
        header = _ustar_header(name, len(data))
        if header is None:
            return _code_package_tarfile(members)
        parts += [header, data, b"\0" * (-len(data) % 512)]
    parts.append(b"\0" * 1024)
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip framing, mtime 0
    return gz.compress(b"".join(parts)) + gz.flush()


def _code_package_tarfile(members: list[tuple[str, bytes]]) -> bytes:
    """Fallback for very long member names: the same archive through ``tarfile``."""
    import gzip
    import tarfile

    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                entry = tarfile.TarInfo(name)
                entry.size = len(data)
                entry.mtime = 0
                entry.mode = 0o644
                entry.uid = entry.gid = 0
                entry.uname = entry.gname = ""
                tar.addfile(entry, io.BytesIO(data))
    return buf.getvalue()


def _git_dir(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


@lru_cache(maxsize=8)
def git_info(flow_dir: str) -> dict[str, Any] | None:
    """``{"commit", "branch", "dirty", "repo"}`` of the git work tree holding ``flow_dir``.

    ``None`` when the directory is not in a git work tree or git is unavailable.
    """
    top = _git_dir(Path(flow_dir).resolve())
    if top is None:
        return None
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", str(top), "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = branch = None
    dirty = False
    for line in out.stdout.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split(" ", 2)[2]
            commit = None if commit == "(initial)" else commit
        elif line.startswith("# branch.head "):
            branch = line.split(" ", 2)[2]
            branch = None if branch == "(detached)" else branch
        elif line and not line.startswith("#"):
            dirty = True
    info: dict[str, Any] = {"commit": commit, "branch": branch, "dirty": dirty, "repo": str(top)}
    return info


def environment_metadata(flow_file: str | None) -> dict[str, str]:
    """Metadata every attempt records (besides ``attempt`` and foreach paths)."""
    from ..util import resolve_username

    meta = {
        "user": resolve_username(),
        "runtime": "local",
        "python_version": python_version(),
        "platform": platform_name(),
        "runstore_version": get_version(),
        "script-name": os.path.basename(flow_file) if flow_file else "",
    }
    if flow_file:
        git = git_info(str(Path(flow_file).resolve().parent))
        if git is not None:
            meta["git-info"] = json.dumps(git, sort_keys=True)
    return meta


def flow_file_of(flow_class: type) -> str | None:
    """The file a flow class is defined in (``None`` for classes made at runtime).

    Taken from the start step's code object: right even when the module is
    ``__main__`` of another tool (``python -m cProfile flow.py run``).
    """
    start = getattr(flow_class, "start", None)
    code = getattr(start, "__code__", None)
    path = code.co_filename if code is not None else None
    if not path or path.startswith("<") or not os.path.isfile(path):
        return None
    return os.path.abspath(path)
