"""Running one attempt on a remote machine: no store file there, only what was sent.

The worker side of a remote executor (engine-neutral: :mod:`.dask` submits
:func:`run_remote`). A task gets the run's code package, its
:class:`~runstore.runtime.task.TaskSpec`, the artifact references of its inputs and
the encoded bytes of the values it may read. :class:`RemoteTaskStore` stands in for the
store inside :func:`~runstore.runtime.task.run_task` — the *same* function a local
worker runs — serving those values (each hashed against its key before it is
decoded) and collecting what the task writes: the encoded, hashed chunks of new
values, the attempt's logs, exception and metadata. The answer goes back to the
scheduler, which checks every hash again and commits (``Store.prepare_encoded``,
``Store.finish_attempt``): the scheduler stays the only writer of the file.

Example
-------
>>> store = RemoteTaskStore(refs={}, blobs={}, untrusted={})
>>> ref = store.prepare_value({"a": 1})
>>> store.load_value(ref.blob_key, ref.encoding)
{'a': 1}
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from ...codecs import encode_value, get_codec, key_matches
from ...errors import ExecutorError, NotFound, UntrustedArtifact
from ...store import StoredValue

__all__ = ["RemoteTaskStore", "run_remote", "environment", "check_environment", "flow_from_code", "Answer"]


def environment() -> tuple[str, str]:
    """``(Python X.Y, runstore release)`` of this process: what scheduler and workers must share.

    Example
    -------
    >>> python, release = environment()
    >>> python.count(".")
    1
    """
    release = sys.modules["runstore._version"].__version__  # read now: a test patches it on workers
    return "%d.%d" % sys.version_info[:2], release


def check_environment(expected: tuple[str, str], where: str) -> None:
    """Raise ``ExecutorError`` (one line) when this process's :func:`environment` differs."""
    mine = environment()
    if tuple(expected) != mine:
        raise ExecutorError(
            f"{where} runs Python {mine[0]} with runstore {mine[1]}, but the scheduler runs Python "
            f"{expected[0]} with runstore {expected[1]}; workers need the same environment (docs/executors.md)")


class RemoteTaskStore:
    """What :func:`~runstore.runtime.task.run_task` needs of a store, on a machine without one.

    ``refs``: artifact references of the input tasks by task id; ``blobs``: the encoded
    bytes of the values the task may read, by blob key; ``untrusted``: blob keys of
    pickles the scheduler's user has not trusted (loading one raises as it would locally).
    """

    remote = True
    in_memory = False

    def __init__(self, refs: Mapping[int, Mapping[str, StoredValue]], blobs: Mapping[str, bytes],
                 untrusted: Mapping[str, str]) -> None:
        self.refs = refs
        self.blobs = dict(blobs)
        self.untrusted = untrusted
        self.new: dict[str, tuple[StoredValue, list[tuple[str, bytes]]]] = {}
        self.started: dict[str, Any] = {}
        self.finished: dict[str, Any] | None = None

    # ---------------------------------------------------------- reads

    def list_artifact_refs(self, task_id: int, attempt: int | None = None) -> dict[str, StoredValue]:
        if task_id not in self.refs:
            raise NotFound(f"task {task_id} was not sent to this worker")
        return dict(self.refs[task_id])

    def load_value(self, blob_key: str, encoding: str, **_: Any) -> Any:
        if blob_key in self.untrusted:
            raise UntrustedArtifact(self.untrusted[blob_key])
        data = self.blobs.get(blob_key)
        if data is None and blob_key in self.new:
            data = b"".join(chunk for _, chunk in self.new[blob_key][1])
        if data is None:
            raise NotFound(f"value {blob_key[:16]}… was not sent to this worker")
        # Hash what you decode (SPEC §13.1), here too: bytes that do not match are refused.
        if not key_matches(blob_key, data):
            raise UntrustedArtifact(f"value {blob_key[:16]}… was altered on its way to this worker")
        return get_codec(encoding).decode(io.BytesIO(data), len(data))

    # ---------------------------------------------------------- writes (collected, sent back)

    def prepare_value(self, value: Any) -> StoredValue:
        chunks: list[tuple[str, bytes]] = []
        blob, codec, kind, json_value = encode_value(value, lambda key, data: chunks.append((key, bytes(data))))
        stored = StoredValue(blob.key, codec, blob.size, kind, json_value)
        if blob.key not in self.blobs:  # the scheduler has the values it sent: no bytes back
            self.new[blob.key] = (stored, chunks)
        return stored

    def put_values(self, values: Any) -> list[StoredValue]:
        return [self.prepare_value(v) for v in values]

    def start_attempt(self, task_id: int, attempt: int, pid: int | None = None) -> None:
        self.started = {"pid": pid if pid is not None else os.getpid(), "at": time.time()}

    def finish_attempt(self, task_id: int, attempt: int, status: str, *, artifacts: Mapping[str, Any] = {},
                       stdout: str = "", stderr: str = "", exception: tuple[str, str, str] | None = None,
                       metadata: Mapping[str, Any] = {}) -> None:
        self.finished = {"status": status, "artifacts": dict(artifacts), "stdout": stdout, "stderr": stderr,
                         "exception": exception, "metadata": dict(metadata)}


class Answer:
    """What a remote attempt sends back: the task result, the attempt record and new values."""

    def __init__(self, result: Any, finished: dict[str, Any], new: dict[str, Any], started: dict[str, Any]) -> None:
        self.result = result
        self.finished = finished
        self.new = new
        self.started = started


# ------------------------------------------------------------------ the code package

_FLOWS: dict[tuple[str, str], type] = {}
_FLOWS_LOCK = threading.Lock()


def _code_dir(code_key: str) -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"runstore-code-{os.getuid()}" / code_key[:32]


def _extract(tarball: bytes, target: Path) -> None:
    import tarfile
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if target.is_dir():
        return
    staging = Path(tempfile.mkdtemp(dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(staging, filter="data")
        else:  # pragma: no cover - Python < 3.10.12: refuse anything but plain relative files
            for member in tar.getmembers():
                if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
                    raise ExecutorError(f"the code package holds an unexpected member {member.name!r}")
            tar.extractall(staging)
    try:
        os.rename(staging, target)
    except OSError:  # another thread or process of this worker extracted it first
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


def _load_flow_file(path: Path, shown_as: str, flow_name: str, module_name: str | None = None) -> type:
    """Import the flow file from the package, its code named ``shown_as`` (the scheduler's
    path): tracebacks in the stored logs read as they do from a local run."""
    import inspect
    import linecache
    import types

    from ...errors import FlowDefinitionError
    from ...flowspec import FlowSpec

    source = path.read_text(encoding="utf-8")
    name = f"_runstore_flow_{path.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    if module_name and "." in module_name:  # run as `python -m pkg.flow`: its relative imports resolve
        module.__package__ = module_name.rpartition(".")[0]
    sys.modules[name] = module
    # Entries without an mtime are kept by linecache.checkcache: the source lines stay
    # available for tracebacks even where ``shown_as`` does not exist.
    linecache.cache[shown_as] = (len(source), None, source.splitlines(True), shown_as)
    exec(compile(source, shown_as, "exec"), module.__dict__)  # noqa: S102 - the run's own code
    found = [obj for obj in vars(module).values() if inspect.isclass(obj) and issubclass(obj, FlowSpec)
             and obj.__module__ == name and obj.__name__ == flow_name]
    if len(found) != 1:
        raise FlowDefinitionError(f"the code package has no flow {flow_name!r} in {path.name}")
    return found[0]


def flow_from_code(code_key: str, kind: str, data: bytes, flow_name: str, flow_file: str | None = None) -> type:
    """The flow class from a code package (``kind="package"``: the run's code snapshot) or a
    cloudpickled class (``"pickle"``), checked against ``code_key`` and cached per process."""
    cached = _FLOWS.get((code_key, flow_name))
    if cached is not None:
        return cached
    with _FLOWS_LOCK:
        cached = _FLOWS.get((code_key, flow_name))
        if cached is not None:
            return cached
        if hashlib.sha256(data).hexdigest() != code_key:
            raise ExecutorError("the code package was altered on its way to this worker")
        import cloudpickle

        if kind == "pickle":
            flow_class = cloudpickle.loads(data)
        else:
            import json

            folder = _code_dir(code_key)
            _extract(data, folder)
            info = json.loads((folder / ".runstore" / "INFO").read_text())
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))  # the flow's sibling modules import as they do locally
            flow_class = _load_flow_file(folder / info["script"], flow_file or str(folder / info["script"]),
                                         flow_name, info.get("module"))
            # Classes defined in the flow file pickle by value, as they do from a local
            # `python flow.py run` (where the module is __main__).
            cloudpickle.register_pickle_by_value(sys.modules[flow_class.__module__])
        _FLOWS[(code_key, flow_name)] = flow_class
        return flow_class


def run_remote(payload: dict[str, Any], code: bytes, *large: bytes) -> Answer:
    """Run one attempt from ``payload`` (see :class:`~.dask.DaskExecutor`) and answer.

    ``code`` is the code package (or pickled flow class), ``large`` the bytes of the
    values sent separately, in the order of ``payload["large_keys"]``.
    """
    from ..task import run_task

    check_environment(payload["environment"], "this Dask worker")
    flow_class = flow_from_code(payload["code_key"], payload["code_kind"], code, payload["flow_name"],
                                payload.get("flow_file"))
    blobs = dict(payload["blobs"])
    blobs.update(zip(payload["large_keys"], large))
    store = RemoteTaskStore(payload["refs"], blobs, payload["untrusted"])
    result = run_task(payload["spec"], store, flow_class)
    assert store.finished is not None
    return Answer(result, store.finished, store.new, store.started)
