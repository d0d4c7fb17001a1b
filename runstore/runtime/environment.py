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
import re
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..version import get_version

__all__ = ["system_tags", "code_package", "code_root", "snapshot_files", "flow_module_of", "code_max_bytes",
           "IgnoreRules", "git_info", "environment_metadata", "MAX_CODE_BYTES", "CODE_MAX_ENV", "CODE_EXCLUDE_ENV"]

#: The default cap on the ``.py`` bytes of one code snapshot (``RUNSTORE_CODE_MAX_MB`` overrides it).
MAX_CODE_BYTES = 10 * 1024 * 1024


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


# ------------------------------------------------------------------ the code snapshot

#: Environment variable: the cap on the ``.py`` bytes of one code snapshot, in MiB.
CODE_MAX_ENV = "RUNSTORE_CODE_MAX_MB"
#: Environment variable: extra exclusions, comma-separated ``.gitignore``-style patterns.
CODE_EXCLUDE_ENV = "RUNSTORE_CODE_EXCLUDE"


def code_max_bytes() -> int:
    """The snapshot cap in bytes: ``RUNSTORE_CODE_MAX_MB`` MiB, else :data:`MAX_CODE_BYTES`.

    Example
    -------
    >>> import os
    >>> os.environ["RUNSTORE_CODE_MAX_MB"] = "20"
    >>> code_max_bytes() // (1 << 20)
    20
    >>> del os.environ["RUNSTORE_CODE_MAX_MB"]
    """
    from ..errors import CodeSnapshotError

    raw = os.environ.get(CODE_MAX_ENV, "").strip()
    if not raw:
        return MAX_CODE_BYTES
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value > 1 << 20:
        raise CodeSnapshotError(f"{CODE_MAX_ENV}={raw!r} is not a size in MiB (a positive number, e.g. 20)")
    return int(value * (1 << 20))


def _glob_regex(pattern: str) -> str:
    """The regex of one ``.gitignore`` glob (``*``, ``?``, ``[...]``, ``**``) over a ``/`` path."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i) and i + 2 == n and (i == 0 or pattern[i - 1] == "/"):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1:end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class IgnoreRules:
    """``.gitignore`` matching, the usual subset, without git: ordered rules, last match wins.

    Supported: blank lines and ``#`` comments, ``!`` re-includes, a trailing ``/`` (directories
    only), a leading or inner ``/`` (anchored to the file's directory, else the name matches
    at any depth), ``*``, ``?``, ``[a-z]``/``[!a]``, ``**/``, ``/**`` and ``/**/``, ``\\``
    escapes. As in git, a file under an excluded directory cannot be re-included (the
    walk never enters the directory).

    Example
    -------
    >>> rules = IgnoreRules()
    >>> rules.add(["*.log", "build/", "!keep.log", "/top.py", "docs/**/gen_*.py"], "")
    >>> [rules.ignored(p, is_dir=d) for p, d in [("a/x.log", False), ("keep.log", False), ("build", True),
    ...  ("build", False), ("top.py", False), ("a/top.py", False), ("docs/a/b/gen_x.py", False)]]
    [True, False, True, False, True, False, True]
    """

    def __init__(self) -> None:
        self.rules: list[tuple[str, re.Pattern[str], bool, bool]] = []

    def add(self, lines: list[str], base: str) -> None:
        """Add the patterns of one ignore file (``base``: its directory, relative, ``""`` for the top)."""
        for line in lines:
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip() or line.startswith("#"):
                continue
            stripped = line.rstrip(" ")  # trailing spaces are ignored unless escaped
            if stripped.endswith("\\") and len(stripped) < len(line):
                stripped += " "
            line = stripped
            negate = line.startswith("!")
            if negate:
                line = line[1:]
            elif line.startswith("\\!") or line.startswith("\\#"):
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            line = line.lstrip("/")
            regex = _glob_regex(line)
            if not anchored:
                regex = "(?:.*/)?" + regex
            prefix = re.escape(base + "/") if base else ""
            self.rules.append((base, re.compile(prefix + regex + r"\Z", re.S), negate, dir_only))

    def ignored(self, path: str, is_dir: bool, verdict: bool = False) -> bool:
        """Whether ``path`` (``/``-separated, relative to the top) is excluded (``verdict``: before these rules)."""
        for base, regex, negate, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if base and not path.startswith(base + "/"):
                continue
            if regex.match(path):
                verdict = not negate
        return verdict


def _read_ignore(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _is_environment(folder: Path) -> bool:
    """A virtualenv (``pyvenv.cfg``) or a conda environment (``conda-meta/``): never the flow's code."""
    return (folder / "pyvenv.cfg").is_file() or (folder / "conda-meta").is_dir()


def snapshot_files(root: str | os.PathLike[str]) -> list[tuple[str, Path, int]]:
    """The ``.py`` files a code snapshot of ``root`` holds: ``(relative name, path, size)``, sorted.

    Every ``.py`` file under ``root`` is in, whatever its directory is called, except:
    files and directories ``.gitignore`` excludes (the ``.gitignore`` files of ``root``, of
    its subdirectories, and of its parents up to the git work tree's top), the patterns of
    ``RUNSTORE_CODE_EXCLUDE`` (comma-separated, ``.gitignore`` syntax, relative to
    ``root``), and by rule: ``__pycache__``, hidden directories (a name starting with ``.``
    is never an importable package), and Python environments (a directory holding
    ``pyvenv.cfg`` or ``conda-meta/``).

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("flow.py", "env/__init__.py", "env/make.py", "scratch/tmp.py"):
    ...     (d / name).parent.mkdir(parents=True, exist_ok=True); _ = (d / name).write_text("x = 1\\n")
    >>> _ = (d / ".gitignore").write_text("scratch/\\n")
    >>> [name for name, _, _ in snapshot_files(d)]
    ['env/__init__.py', 'env/make.py', 'flow.py']
    """
    top = Path(root).resolve()
    # Paths are matched relative to the git work tree's top (or ``top`` outside git), so the
    # .gitignore files above ``top`` apply as git applies them.
    git_top = _git_dir(top) or top
    above = top.relative_to(git_top).as_posix()
    above = "" if above == "." else above
    rules = IgnoreRules()
    if above:
        base = Path()
        for part in ("", *above.split("/")[:-1]):
            base = base / part
            rules.add(_read_ignore(git_top / base / ".gitignore"), "" if base == Path() else base.as_posix())
    extra = IgnoreRules()
    extra.add([p.strip() for p in os.environ.get(CODE_EXCLUDE_ENV, "").split(",") if p.strip()], above)
    found: list[tuple[str, Path, int]] = []
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        rel = here.relative_to(top).as_posix()
        rel = "" if rel == "." else rel
        from_git = "/".join(p for p in (above, rel) if p)
        rules.add(_read_ignore(here / ".gitignore"), from_git)
        kept = []
        for d in sorted(dirs):
            path = f"{from_git}/{d}" if from_git else d
            if d.startswith(".") or d == "__pycache__" or _is_environment(here / d) \
                    or extra.ignored(path, True, rules.ignored(path, True)):
                continue
            kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            path = f"{from_git}/{name}" if from_git else name
            if not name.endswith(".py") or extra.ignored(path, False, rules.ignored(path, False)):
                continue
            try:
                size = (here / name).stat().st_size
            except OSError:
                continue
            found.append((f"{rel}/{name}" if rel else name, here / name, size))
    return sorted(found)


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} MiB"  # pragma: no cover


def _check_cap(files: list[tuple[str, Path, int]], root: Path) -> None:
    from ..errors import CodeSnapshotError

    cap = code_max_bytes()
    total = sum(size for _, _, size in files)
    if total <= cap:
        return
    largest = sorted(files, key=lambda f: (-f[2], f[0]))[:3]
    names = ", ".join(f"{name} ({_human(size)})" for name, _, size in largest)
    need = -(-total // (1 << 20))
    raise CodeSnapshotError(
        f"the code snapshot of {root} would hold {_human(total)} of .py files ({len(files)} files), over the "
        f"{_human(cap)} cap; largest: {names}. Exclude files with .gitignore or {CODE_EXCLUDE_ENV}, "
        f"or raise the cap with {CODE_MAX_ENV}={need}")


def flow_module_of(flow_class: type) -> str | None:
    """The module name the flow class was imported as: ``pkg.flow`` for ``python -m pkg.flow``.

    ``None`` for a flow run as a script (``python flow.py``) or loaded from a file by runstore.

    Example
    -------
    >>> class F:
    ...     pass
    >>> F.__module__ = "mypkg.flow"
    >>> flow_module_of(F)
    'mypkg.flow'
    """
    module = getattr(flow_class, "__module__", None) or ""
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = getattr(spec, "name", None) or ""
    if not module or module.startswith("_runstore_flow_") or module == "__main__":
        return None
    return module


def code_root(flow_file: str | os.PathLike[str], module: str | None = None) -> tuple[Path, str | None]:
    """The directory a snapshot is taken of, and the module to run (``None``: run the script).

    A flow imported as ``pkg.sub.flow`` from ``.../pkg/sub/flow.py`` is snapshotted from the
    directory holding ``pkg`` (its ``sys.path`` entry), so the package layout is kept and
    ``python -m pkg.sub.flow`` runs from the unpacked archive; otherwise the flow file's
    directory.

    Example
    -------
    >>> code_root("/src/proj/pkg/flow.py", "pkg.flow")
    (PosixPath('/src/proj'), 'pkg.flow')
    >>> code_root("/src/proj/pkg/flow.py", "flow")
    (PosixPath('/src/proj/pkg'), None)
    """
    script = Path(os.path.abspath(flow_file))
    parts = (module or "").split(".")
    if len(parts) > 1 and script.suffix == ".py" and all(p.isidentifier() for p in parts):
        expected = Path(*parts[:-1], parts[-1] + ".py")  # `python -m pkg`: pkg.__main__ -> pkg/__main__.py
        if script.parts[-len(parts):] == expected.parts:
            return script.parents[len(parts) - 1], module
    return script.parent, None


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


def code_package(flow_file: str | os.PathLike[str], flow_name: str, module: str | None = None,
                 extra: dict[str, bytes] | None = None) -> bytes:
    """The deterministic ``tar.gz`` snapshot of the flow's tree (see :func:`snapshot_files`).

    ``module`` is the name the flow was imported as (:func:`flow_module_of`): for
    ``pkg.flow`` the archive keeps the package layout from the directory holding ``pkg``
    and its ``.runstore/INFO`` names the module, so ``trigger`` runs ``python -m pkg.flow``.
    Over the cap (``RUNSTORE_CODE_MAX_MB``, default 10 MiB of ``.py``):
    :class:`~runstore.errors.CodeSnapshotError`, naming the largest files; never a
    truncated snapshot. ``extra``: members runstore adds itself (a deployment's configs,
    ``.runstore/CONFIG``).

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
    root, module = code_root(script, module)
    files = snapshot_files(root)
    _check_cap(files, root)
    rel = script.relative_to(root).as_posix()
    members = [(name, path.read_bytes()) for name, path, _ in files]
    return _pack(members + sorted((extra or {}).items()), rel, flow_name, module)


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


def _pack(members: list[tuple[str, bytes]], script: str, flow_name: str, module: str | None = None) -> bytes:
    import zlib

    fields = {"flow_name": flow_name, "script": script, "runstore_version": get_version()}
    if module is not None:
        fields["module"] = module
    info = json.dumps(fields, sort_keys=True).encode()
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
