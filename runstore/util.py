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
import re
import time
import unicodedata
from typing import Any
from pathlib import Path

from .errors import InvalidPathspec, NotAStoreError, UnknownUser

__all__ = ["resolve_username", "now", "config_dir", "hostname", "new_uuid", "cleandoc", "pid_alive", "pause_point",
           "printable", "display_width", "fit_width", "check_uuid", "check_flow_name", "Terminated",
           "INTERRUPT_EXIT_CODES", "interrupt_exit_code", "terminate_on_sigterm", "signals_held", "short_repr"]


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


def cleandoc(doc: str) -> str:
    r"""A docstring with its indentation removed, as ``inspect.cleandoc`` (without importing ``inspect``).

    The graph cleans every step's docstring on each run's start-up; ``inspect`` would cost
    that start-up a few milliseconds of imports for this one function.

    Example
    -------
    >>> import inspect
    >>> text = "  Load the data.\n\n      Then clean it.\n        indented\n    "
    >>> cleandoc(text) == inspect.cleandoc(text)
    True
    >>> cleandoc(text)
    'Load the data.\n\nThen clean it.\n  indented'
    """
    lines = doc.expandtabs().split("\n")
    margin = min((len(line) - len(line.lstrip()) for line in lines[1:] if line.lstrip()), default=0)
    lines = [lines[0].lstrip()] + [line[margin:] for line in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def hostname() -> str:
    """This machine's host name, recorded as a run's owner.

    Example
    -------
    >>> isinstance(hostname(), str)
    True
    """
    if hasattr(os, "uname"):  # what socket.gethostname() returns on POSIX, without importing socket
        return os.uname().nodename
    import socket

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


# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide
# text (bidi embeddings/overrides/isolates, zero-width marks, the line/paragraph
# separators): everything a file could use to move the cursor, retitle the terminal,
# write the clipboard (OSC 52) or make one tag look like another.
# Lone surrogates (a JSON string may hold one) too: a terminal cannot encode them.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
_UNPRINTABLE_MULTILINE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = False) -> str:
    """``text`` made safe for a terminal: control and bidi characters shown escaped.

    Every string read from a store (user names, tags, exception messages, artifact
    previews, logs) goes through this before a human-readable line is printed, so a
    shared file cannot send escape sequences to your terminal (SPEC §13, promise 7).
    ``\\x1b`` becomes the four characters ``\\x1b``; a backslash is left alone.
    ``multiline`` keeps newline and tab (for tracebacks and logs). ``--json`` output
    never goes through this: it stays exact.

    Example
    -------
    >>> printable("user:\\x1b]0;pwned\\x07anne")
    'user:\\\\x1b]0;pwned\\\\x07anne'
    >>> printable("line 1\\nline 2\\r", multiline=True)
    'line 1\\nline 2\\\\x0d'
    >>> printable("abc\\u202edef")
    'abc\\\\u202edef'
    """
    text = text if isinstance(text, str) else str(text)
    return (_UNPRINTABLE_MULTILINE if multiline else _UNPRINTABLE).sub(_escape, text)


def display_width(text: str) -> int:
    """The number of terminal columns ``text`` takes: 2 per wide character, 0 per combining one.

    Wide (``W``) and fullwidth (``F``) characters of Unicode's East Asian Width — CJK,
    most emoji — take two columns; combining marks and other zero-width characters
    none. Tables padded with this stay aligned (``str.ljust`` counts characters).

    Example
    -------
    >>> display_width("abc"), display_width("日本語"), display_width("é"), display_width("e\u0301")
    (3, 6, 1, 1)
    >>> display_width("ok 🎉")
    5
    """
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def fit_width(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` columns (ending in ``…`` when cut), padded to exactly ``width``.

    Example
    -------
    >>> fit_width("日本語のテキスト", 7)
    '日本語…'
    >>> fit_width("ab", 4) + "|"
    'ab  |'
    """
    if display_width(text) > width:
        kept, used = [], 0
        for char in text:
            size = display_width(char)
            if used + size > width - 1:
                break
            kept.append(char)
            used += size
        text = "".join(kept) + "…"
    return text + " " * (width - display_width(text))


def ui_registration(where: str, url: str) -> Path:
    """Record that this process serves the store at ``where`` on ``url`` (``runstore ui``).

    The file lives in the user's own config directory (``ui/<pid>.json``), never in a
    store; :func:`running_ui_url` reads it so notebook displays can link to the UI.
    The caller removes it when it stops serving.

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> path = ui_registration("/tmp/a.db", "http://127.0.0.1:8765/")
    >>> running_ui_url("/tmp/a.db")
    'http://127.0.0.1:8765/'
    >>> path.unlink(); running_ui_url("/tmp/a.db") is None
    True
    """
    import json

    folder = config_dir() / "ui"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{os.getpid()}.json"
    path.write_text(json.dumps({"pid": os.getpid(), "url": url, "db": where}))
    return path


def running_ui_url(where: str) -> str | None:
    """The URL of a live ``runstore ui`` of this user serving the store at ``where``, else None.

    Registrations of processes that are gone are ignored; only ``http://`` URLs on
    which runstore itself registered are returned. See :func:`ui_registration`.

    Example
    -------
    >>> import os, tempfile
    >>> os.environ["RUNSTORE_HOME"] = tempfile.mkdtemp()
    >>> running_ui_url("/tmp/a.db") is None
    True
    """
    import json

    folder = config_dir() / "ui"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
            pid, url, db = int(entry["pid"]), str(entry["url"]), str(entry["db"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if db == where and url.startswith("http://") and pid_alive(pid):
            return url
    return None


#: The canonical text of a UUID (what ``str(uuid.UUID(x))`` gives): lowercase hex, hyphenated.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def new_uuid() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` without importing ``uuid``.

    ``uuid`` imports ``platform`` (and compiles its regular expressions): a cost every
    run's start-up would pay for one call.

    Example
    -------
    >>> import uuid
    >>> value = new_uuid()
    >>> str(uuid.UUID(value)) == value and uuid.UUID(value).version
    4
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_uuid(value: object, what: str = "store uuid") -> str:
    """``value`` if it is a canonical UUID string, else :class:`NotAStoreError`.

    Anything read from a file that ends up in a path (the store UUID names the
    production token file) is checked first, so ``../../x`` cannot leave the
    config directory.

    Example
    -------
    >>> check_uuid("0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a")
    '0b6c8a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a'
    >>> check_uuid("../../x")
    Traceback (most recent call last):
    ...
    runstore.errors.NotAStoreError: the store uuid '../../x' is not a UUID; the file was altered
    """
    ok = isinstance(value, str) and _UUID.match(value) is not None
    if not ok:
        raise NotAStoreError(f"the {what} {printable(repr(value))} is not a UUID; the file was altered")
    return value  # type: ignore[return-value]


_FLOW_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_flow_name(name: object) -> str:
    """``name`` if it is a flow name (a Python identifier, ASCII), else :class:`InvalidPathspec`.

    Flow names are class names; one is checked before it is used in a file path.

    Example
    -------
    >>> check_flow_name("TrainFlow")
    'TrainFlow'
    >>> check_flow_name("../x")
    Traceback (most recent call last):
    ...
    runstore.errors.InvalidPathspec: '../x' is not a valid flow name (letters, digits, _; not starting with a digit)
    """
    if not isinstance(name, str) or not _FLOW_NAME.match(name):
        raise InvalidPathspec(
            f"{printable(repr(name))} is not a valid flow name (letters, digits, _; not starting with a digit)"
        )
    return name


#: Largest id SQLite can store: a run number, task id or attempt beyond it cannot exist (and
#: must not reach SQLite, which would overflow).
MAX_ID = 2**63 - 1


def parse_id(text: object, *, canonical: bool = True) -> int | None:
    """A run number or task id spelled in ASCII digits, or None.

    ``canonical`` (the client's rule) also refuses other spellings of a number (``"05"``).
    ``"²".isdigit()`` is true but ``int("²")`` fails: ASCII digits only. An id beyond
    :data:`MAX_ID` is None too: it cannot exist.

    Example
    -------
    >>> parse_id("5"), parse_id("05"), parse_id("05", canonical=False), parse_id("x"), parse_id(str(2**63))
    (5, None, 5, None, None)
    """
    text = str(text).strip() if isinstance(text, int) and not isinstance(text, bool) else text
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    if number > MAX_ID or (canonical and str(number) != text):
        return None
    return number


def parse_pathspec(text: str, *, flow: str | None = None, depths: tuple[int, ...] = (1, 2, 3, 4),
                   expected: str | None = None) -> tuple[str, ...]:
    """Split ``Flow/Run/Step/Task`` into its components, checking its shape.

    With ``flow``, the flow component may be left out (``"3/start"`` in a flow's command
    line) and the run and task components must be ASCII digits (an id too large to exist
    passes: looking it up finds nothing). ``depths`` are the accepted component counts,
    flow included. A wrong shape is :class:`~runstore.errors.InvalidPathspec` naming
    ``expected``.

    Example
    -------
    >>> parse_pathspec("HelloFlow/5/start/")
    ('HelloFlow', '5', 'start')
    >>> parse_pathspec("HelloFlow", depths=(2, 3, 4))
    Traceback (most recent call last):
    ...
    runstore.errors.InvalidPathspec: 'HelloFlow' is not a pathspec like Flow/N, Flow/N/step or Flow/N/step/task_id
    >>> parse_pathspec("3/start", flow="HelloFlow", depths=(3, 4))
    ('HelloFlow', '3', 'start')
    >>> parse_pathspec("x/start", flow="HelloFlow", depths=(3, 4), expected="RUN/STEP")
    Traceback (most recent call last):
    ...
    runstore.errors.InvalidPathspec: expected RUN/STEP, not 'x/start'
    """
    parts = text.strip("/").split("/") if isinstance(text, str) else []
    if flow is not None and parts and parts[0] != flow:
        parts = [flow, *parts]
    numbers = parts[1:2] + parts[3:4]
    ok = len(parts) in depths and all(parts)
    if ok and flow is not None:
        ok = all(p.isascii() and p.isdigit() for p in numbers)
    if not ok:
        if expected:
            raise InvalidPathspec(f"expected {expected}, not {printable(repr(text))}")
        shapes = [("Flow", "Flow/N", "Flow/N/step", "Flow/N/step/task_id")[d - 1] for d in depths]
        shown = " or ".join(filter(None, [", ".join(shapes[:-1]), shapes[-1]]))
        raise InvalidPathspec(f"{printable(repr(text))} is not a pathspec like {shown}")
    return tuple(parts)


# ---------------------------------------------------------------- interrupts

#: The exit code of a command stopped by Ctrl-C (SIGINT) and by SIGTERM (128 + the signal).
INTERRUPT_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
_received: list[str] = []  # the interrupt signals this process received, in order


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM while a run executes (:func:`terminate_on_sigterm`).

    A ``KeyboardInterrupt``, so everything that stops a run for Ctrl-C stops it for
    SIGTERM too (never retried, never caught by ``@catch``); the command line exits 143.

    Example
    -------
    >>> isinstance(Terminated(), KeyboardInterrupt), Terminated().exit_code
    (True, 143)
    """

    exit_code = INTERRUPT_EXIT_CODES["SIGTERM"]

    def __init__(self, message: str = "the run was stopped by SIGTERM") -> None:
        super().__init__(message)


def interrupt_exit_code(exc: BaseException | None = None) -> int:
    """143 when a SIGTERM stopped this process (``exc`` a :class:`Terminated`, or one was received), else 130.

    A SIGTERM that lands inside a long SQL statement comes back from SQLite as a plain
    ``KeyboardInterrupt``; the record of the signal keeps its exit code right.

    Example
    -------
    >>> interrupt_exit_code(KeyboardInterrupt()), interrupt_exit_code(Terminated())
    (130, 143)
    """
    if isinstance(exc, Terminated):
        return INTERRUPT_EXIT_CODES["SIGTERM"]
    if (exc is None or isinstance(exc, KeyboardInterrupt)) and "SIGTERM" in _received:
        return INTERRUPT_EXIT_CODES["SIGTERM"]
    return INTERRUPT_EXIT_CODES["SIGINT"]


class terminate_on_sigterm:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: a no-op).

    Python's default SIGTERM kills the process on the spot, leaving the run ``running``
    until its heartbeat goes stale (``crashed``); raised as an exception instead, the
    run is recorded as ``interrupted`` like a Ctrl-C.

    Example
    -------
    >>> with terminate_on_sigterm():
    ...     pass
    """

    def __init__(self) -> None:
        self.previous: object = None
        self.installed = False

    def __enter__(self) -> "terminate_on_sigterm":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            def stop(signum: int, frame: object) -> None:
                _received.append("SIGTERM")
                raise Terminated()

            self.previous = signal.signal(signal.SIGTERM, stop)
            self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)  # type: ignore[arg-type]
            self.installed = False


class signals_held:
    """While inside (main thread only), SIGINT and SIGTERM are noted, not raised: the interrupt's record gets written.

    A second Ctrl-C while a run's end is being recorded would leave it ``running``.
    Only signals Python handles are held (an ignored or default one is left alone); one
    noted here is not raised again on the way out — this is used on a path that is
    already stopping for an interrupt — but a SIGTERM still makes the exit code 143.

    Example
    -------
    >>> with signals_held():
    ...     pass
    """

    def __init__(self) -> None:
        self.saved: dict[int, object] = {}

    def _note(self, signum: int, frame: object) -> None:
        import signal

        if signum == signal.SIGTERM:
            _received.append("SIGTERM")

    def __enter__(self) -> "signals_held":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                current = signal.getsignal(sig)
                if callable(current):
                    self.saved[sig] = current
                    signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        saved, self.saved = self.saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


# ---------------------------------------------------------------- bounded repr

_REPR_DEPTH = 40


class _Full(Exception):
    """short_repr's budget is spent."""


def short_repr(value: Any, limit: int = 5000) -> str:
    """``repr(value)`` cut at about ``limit`` characters, in bounded time however the value is built.

    Lists, tuples, sets, frozensets and dicts are written item by item while the
    budget lasts, so a value sharing one list a billion times over ("billion
    laughs") or nested a million deep costs at most ``limit`` characters of work;
    deeper than 40 levels shows ``[…]``. Anything else is its own ``repr``, cut (a
    repr that fails, such as an int beyond Python's digit limit, shows ``<int>``).
    Equal to ``repr(value)`` when that is short.

    Example
    -------
    >>> short_repr({"a": (1, 2), "b": {3}})
    "{'a': (1, 2), 'b': {3}}"
    >>> laughs = []
    >>> for _ in range(200):
    ...     laughs = [laughs, laughs]
    >>> len(short_repr(laughs, 100)) <= 101
    True
    """
    out: list[str] = []
    room = [limit]

    def emit(text: str) -> None:
        if len(text) >= room[0]:
            out.append(text[: room[0]] + "…")
            raise _Full
        room[0] -= len(text)
        out.append(text)

    def items(values: Any, depth: int, pairs: bool = False) -> None:
        for i, item in enumerate(values):
            if i:
                emit(", ")
            if pairs:
                walk(item[0], depth)
                emit(": ")
                walk(item[1], depth)
            else:
                walk(item, depth)

    def walk(item: Any, depth: int) -> None:
        kind = type(item)
        if kind in (list, tuple, dict, set, frozenset) and depth >= _REPR_DEPTH:
            emit({list: "[…]", tuple: "(…)", dict: "{…}", set: "{…}", frozenset: "frozenset({…})"}[kind])
        elif kind is list:
            emit("[")
            items(item, depth + 1)
            emit("]")
        elif kind is tuple:
            emit("(")
            items(item, depth + 1)
            emit(",)" if len(item) == 1 else ")")
        elif kind is dict:
            emit("{")
            items(item.items(), depth + 1, pairs=True)
            emit("}")
        elif (kind is set or kind is frozenset) and item:
            emit("{" if kind is set else "frozenset({")
            items(item, depth + 1)
            emit("}" if kind is set else "})")
        else:
            try:
                text = repr(item)
            except Exception:  # e.g. an int beyond sys.get_int_max_str_digits()
                text = f"<{type(item).__name__}>"
            emit(text)

    try:
        walk(value, 0)
    except _Full:
        pass
    return "".join(out)
