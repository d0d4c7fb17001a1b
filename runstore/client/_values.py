"""The plain values the client hands out: metadata records, exceptions, code, task data."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

from ..errors import NotFound

if TYPE_CHECKING:
    import tarfile
    import tempfile

    from ..store import Store
    from ._base import ClientObject

__all__ = ["Metadata", "TaskException", "Code", "TaskData"]

Row = dict[str, Any]


class Metadata(NamedTuple):
    """One metadata record of a task attempt (``task.metadata``).

    Example
    -------
    >>> Metadata("user", "anne", None, "user", "F/1/start/2", 0).value
    'anne'
    """

    name: str
    value: str
    created_at: datetime | None
    type: str
    task: str
    attempt: int


class TaskException:
    """The exception a task attempt raised: ``type``, ``message`` and ``traceback``.

    ``str()`` is the formatted traceback. ``exception`` and ``stacktrace`` are the
    Metaflow names of ``message`` and ``traceback``.

    Example
    -------
    >>> exc = TaskException("builtins.ValueError", "bad", "Traceback ...\\nValueError: bad\\n")
    >>> exc.type, exc.message
    ('builtins.ValueError', 'bad')
    """

    def __init__(self, type: str, message: str, traceback: str) -> None:
        self.type = type
        self.message = message
        self.traceback = traceback

    @property
    def exception(self) -> str:
        """The message (Metaflow's name for it)."""
        return self.message

    @property
    def stacktrace(self) -> str:
        """The traceback (Metaflow's name for it)."""
        return self.traceback

    def __str__(self) -> str:
        return self.traceback or f"{self.type}: {self.message}"

    def __repr__(self) -> str:
        return f"TaskException({self.type!r}, {self.message!r})"


class Code:
    """The code snapshot of a run: the flow's directory as a deterministic tar.gz.

    Example
    -------
    >>> import io, tarfile
    >>> from runstore import Store, Run, namespace
    >>> buf, script = io.BytesIO(), b"print('hi')\\n"
    >>> with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    ...     info = tarfile.TarInfo("hello.py")
    ...     info.size = len(script)
    ...     tar.addfile(info, io.BytesIO(script))
    >>> store = Store(":memory:")
    >>> code_id = store.add_code_package(buf.getvalue(), "hello.py")
    >>> _ = store.create_run("HelloFlow", user="anne", code_id=code_id)
    >>> _ = namespace(None)
    >>> code = Run("HelloFlow/1", store=store).code
    >>> code.script_name, code.flowspec
    ('hello.py', "print('hi')\\n")
    """

    def __init__(self, store: "Store", row: Row) -> None:
        self._store = store
        self._row = row
        self._bytes: bytes | None = None
        self._tar: "tarfile.TarFile | None" = None

    @property
    def script_name(self) -> str:
        """The flow script's file name, e.g. ``hello.py``."""
        return self._row["script_name"]

    @property
    def path(self) -> None:
        """Always ``None``: the archive lives inside the store, not at a path."""
        return None

    @property
    def sha(self) -> str:
        """The archive's blob key (sha256 of the tar.gz bytes)."""
        return self._row["blob_key"]

    def _data(self) -> bytes:
        if self._bytes is None:
            self._bytes = self._store.load_value(self._row["blob_key"], "bytes", check_chunks=True)
        return self._bytes

    @property
    def tarball(self) -> "tarfile.TarFile":
        """The archive as an open :class:`tarfile.TarFile`."""
        if self._tar is None:
            import tarfile

            self._tar = tarfile.open(fileobj=io.BytesIO(self._data()), mode="r:gz")
        return self._tar

    def _member_text(self, name: str) -> str | None:
        try:
            handle = self.tarball.extractfile(name)
        except KeyError:
            return None
        return None if handle is None else handle.read().decode("utf-8")

    @property
    def info(self) -> dict[str, Any]:
        """The archive's ``.runstore/INFO`` (``flow_name``, ``script``, ``runstore_version``)."""
        text = self._member_text(".runstore/INFO")
        return json.loads(text) if text else {}

    @property
    def flowspec(self) -> str:
        """The text of the flow script (``str``)."""
        name = self.info.get("script") or self.script_name
        text = self._member_text(name)
        if text is None:
            raise NotFound(f"the code package has no file {name!r}")
        return text

    def extract(self) -> "tempfile.TemporaryDirectory[str]":
        """Unpack the archive into a new temporary directory and return it."""
        import tempfile

        import tarfile

        tmp = tempfile.TemporaryDirectory(prefix="runstore-code-")
        if hasattr(tarfile, "data_filter"):  # refuse absolute paths and links out of the tree
            self.tarball.extractall(tmp.name, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            self.tarball.extractall(tmp.name)
        return tmp

    def __repr__(self) -> str:
        return f"<Code: {self.script_name}>"



class TaskData:
    """Attribute access to a task's public artifacts, each loaded when first read.

    Example
    -------
    >>> from runstore import Store, Task, namespace
    >>> store = Store(":memory:")
    >>> run = store.create_run("HelloFlow", user="anne", user_tags=["crazy_test"])
    >>> task_id = store.create_task(run.run_id, "start")
    >>> store.start_attempt(task_id, 0)
    >>> store.finish_attempt(task_id, 0, "succeeded", artifacts={"x": store.put_value(42)},
    ...                      stdout="hi\\n", metadata={"user": "anne"})
    >>> _ = namespace(None)
    >>> data = Task(f"HelloFlow/1/start/{task_id}", store=store).data
    >>> data.x, "x" in data, data
    (42, True, <TaskData: x>)
    """

    def __init__(self, task: "ClientObject") -> None:  # a Task (its module sits above this one)
        self._task = task
        self._artifacts = {a.id: a for a in task}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_task", "_artifacts"):
            raise AttributeError(name)
        try:
            return self._artifacts[name].data
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._artifacts

    def __dir__(self) -> list[str]:
        return list(self._artifacts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._artifacts)

    def __repr__(self) -> str:
        return f"<TaskData: {', '.join(self._artifacts)}>"
