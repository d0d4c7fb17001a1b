"""Steps, tasks and artifacts: attempt-aware reads of outcomes, logs, metadata and values."""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime
from typing import Any, Iterator

from ..errors import NotFound, RunstoreError
from ..store import effective_status
from ._base import ClientObject, Row, _filter_by_tags, _utc
from ._values import Code, Metadata, TaskData, TaskException

__all__ = ["Step", "Task", "DataArtifact"]


# ---------------------------------------------------------------- step


class Step(ClientObject):
    """One step of a run: its tasks (one, or one per foreach split).

    Example
    -------
    >>> from runstore import Store, Step, namespace
    >>> store = Store(":memory:")
    >>> run = store.create_run("HelloFlow", user="anne", user_tags=["crazy_test"])
    >>> task_id = store.create_task(run.run_id, "start")
    >>> store.start_attempt(task_id, 0)
    >>> store.finish_attempt(task_id, 0, "succeeded", artifacts={"x": store.put_value(42)},
    ...                      stdout="hi\\n", metadata={"user": "anne"})
    >>> _ = namespace(None)
    >>> step = Step("HelloFlow/1/start", store=store)
    >>> step.task.data.x, [t.id for t in step] == [str(task_id)]
    (42, True)
    """

    _EXPECTS = "Step('FlowName/RunID/StepName')"
    _DEPTH = 3

    def _lookup(self) -> Row | None:
        run = self._find_run()
        return None if run is None else self._store.find_step(run["run_id"], self._parts[2])

    @property
    def parent(self) -> ClientObject:
        """The step's :class:`Run` (no namespace check; typed by the base class, as
        ``_runs`` sits above this module)."""
        return self._PARENT("/".join(self._parts[:2]), _namespace_check=False, _context=self._context())

    def _child_rows(self) -> list[Row]:
        return self._store.list_tasks(self._row["step_id"])

    def _make_child(self, row: Row) -> "Task":
        return Task._from_row(self, [*self._parts, str(row["task_id"])], row)

    def __iter__(self) -> Iterator["Task"]:
        """Tasks newest first."""
        return super().__iter__()

    def tasks(self, *tags: str) -> Iterator["Task"]:
        """The tasks, if the run carries all ``tags``."""
        return iter(self) if _filter_by_tags(self, tags) else iter(())

    @property
    def task(self) -> "Task | None":
        """The newest task that started (for a foreach step: the last one created).

        A task that never started (a foreach split left behind by a failed run) is
        returned only when no task of the step started.
        """
        rows = self._store.list_tasks(self._row["step_id"], limit=1)
        if rows and rows[0]["status"] == "pending":
            rows = [r for r in self._store.list_tasks(self._row["step_id"]) if r["status"] != "pending"] or rows
        return self._make_child(rows[0]) if rows else None

    def __getitem__(self, task_id: Any) -> "Task":
        return Task(f"{self.pathspec}/{task_id}", _context=self._context())

    @property
    def finished_at(self) -> datetime | None:
        """When the step's last task finished; None while any task is unfinished."""
        return _utc(self._store.step_finished_at(self._row["step_id"]))

    def _neighbours(self, parents: bool) -> list["Step"]:
        run = self.parent
        try:
            graph = run["_parameters"].task["_graph_info"].data  # type: ignore[union-attr]
        except (NotFound, AttributeError):
            return []
        steps = graph.get("steps", {}) if isinstance(graph, dict) else {}
        if parents:
            names = [name for name, info in steps.items() if self.id in (info.get("next") or [])]
        else:
            names = list(steps.get(self.id, {}).get("next") or [])
        return [run[name] for name in names if name in run]

    @property
    def parent_steps(self) -> list["Step"]:
        """The steps that lead to this one in the flow's graph (that ran in this run).

        Example
        -------
        >>> # Step('HelloFlow/3/end').parent_steps -> [Step('HelloFlow/3/train')]
        """
        return self._neighbours(parents=True)

    @property
    def child_steps(self) -> list["Step"]:
        """The steps this one leads to in the flow's graph (that ran in this run)."""
        return self._neighbours(parents=False)

    @property
    def origin_pathspec(self) -> str | None:
        """``<origin run>/<step>`` for a resumed run; None otherwise."""
        origin = self.parent.origin_pathspec
        return None if origin is None else f"{origin}/{self.id}"


# ---------------------------------------------------------------- task


class Task(ClientObject):
    """One task: its artifacts, logs, outcome, metadata; attempt-aware.

    Parameters
    ----------
    pathspec : str
        ``"FlowName/RunNumber/StepName/TaskId"``.
    attempt : int, optional
        Read this attempt (retries). Default: artifacts and outcome of the latest
        finished attempt, logs of the latest started one.

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
    >>> task = Task(f"HelloFlow/1/start/{task_id}", store=store)
    >>> task.data.x, task.stdout, task.successful, task.metadata_dict["user"]
    (42, 'hi\\n', True, 'anne')
    """

    _EXPECTS = "Task('FlowName/RunID/StepName/TaskID')"
    _DEPTH = 4

    def _lookup(self) -> Row | None:
        row = self._find_task()
        if row is not None and self._attempt is not None and \
                self._store.find_attempt(row["task_id"], self._attempt) is None:
            return None
        return row

    @property
    def parent(self) -> Step:
        """The task's :class:`Step` (no namespace check)."""
        return self._PARENT("/".join(self._parts[:3]), _namespace_check=False, _context=self._context())

    # ------------------------------------------------------------ attempts

    @property
    def _data_attempt(self) -> int:
        if self._attempt is not None:
            return self._attempt
        done = self._row.get("done_attempt")
        return self._row["attempt"] if done is None else done

    @property
    def current_attempt(self) -> int:
        """The attempt this object reads (explicit, else the latest finished one)."""
        return self._data_attempt

    def _outcome(self) -> Row | None:
        if self._attempt is not None:
            attempt = self._attempt
        else:
            fresh = self._store.find_task(self._row["run_id"], self._parts[2], self._row["task_id"])
            if fresh is None:
                return None
            attempt = fresh["done_attempt"]
            if attempt is None:
                return None
        return self._store.find_attempt(self._row["task_id"], attempt)

    @property
    def successful(self) -> bool:
        """True when the attempt (default: the latest finished one) succeeded."""
        outcome = self._outcome()
        return outcome is not None and outcome["status"] == "succeeded"

    @property
    def finished(self) -> bool:
        """True when the attempt succeeded, or failed and was handled by ``@catch``."""
        outcome = self._outcome()
        return outcome is not None and outcome["status"] in ("succeeded", "caught")

    @property
    def finished_at(self) -> datetime | None:
        """When the attempt finished, if :attr:`finished`; else None."""
        outcome = self._outcome()
        if outcome is None or outcome["status"] not in ("succeeded", "caught"):
            return None
        return _utc(outcome["finished_at"])

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``succeeded``, ``failed``, ``caught`` or ``interrupted`` (of this
        attempt); ``never-started`` for a task its run created but ended (failed) without starting.

        Example
        -------
        >>> # [t.status for t in Run('TrainFlow/3')['train_fold']]
        >>> # ['never-started', 'failed', 'succeeded']
        """
        if self._attempt is None:
            fresh = self._store.find_task(self._row["run_id"], self._parts[2], self._row["task_id"])
            status = fresh["status"] if fresh else self._row["status"]
            return "never-started" if status == "pending" and self._run_over() else status
        outcome = self._store.find_attempt(self._row["task_id"], self._attempt)
        return outcome["status"] if outcome else "pending"

    def _repr_details(self) -> list[str]:
        try:
            return [self.status]
        except (RunstoreError, LookupError):
            return []

    @property
    def never_started(self) -> bool:
        """True for a task its run created but ended without starting (no output, no exception)."""
        return self.status == "never-started"

    def _run_over(self) -> bool:
        row = self._store.find_run(self._parts[0], int(self._parts[1]))
        return row is not None and effective_status(row["status"], row["heartbeat_at"], row["created_at"],
                                                    row["owner_host"], row["owner_pid"]) != "running"

    @property
    def exception(self) -> TaskException | None:
        """The exception the attempt raised (``type``, ``message``, ``traceback``), or None.

        None too for an attempt ``@catch`` caught, as in Metaflow: the exception is then
        in the step's ``@catch(var=...)`` artifact (and in the store's attempt row).
        """
        outcome = self._outcome()
        if outcome is None or not outcome["exception_type"] or outcome["status"] == "caught":
            return None
        return TaskException(outcome["exception_type"], outcome["exception_message"] or "",
                             outcome["traceback"] or "")

    @property
    def index(self) -> int | None:
        """The index of this task in its innermost foreach; None outside foreach."""
        return self._row["foreach_index"]

    @property
    def foreach_path(self) -> str | None:
        """``step:index[,step:index…]`` from the outermost foreach in; None outside foreach."""
        return self._row["foreach_path"]

    @property
    def origin_pathspec(self) -> str | None:
        """The task this one was cloned from by ``resume``; None for executed tasks."""
        return self._row["origin_pathspec"]

    @property
    def runtime_name(self) -> str | None:
        """The run's runtime (``local``), from its ``runtime:`` system tag."""
        for tag in self.system_tags:
            if tag.startswith("runtime:"):
                return tag.split(":", 1)[1]
        return None

    # ------------------------------------------------------------ logs

    @property
    def _log_attempt(self) -> int:
        return self._attempt if self._attempt is not None else self._row["attempt"]

    @property
    def stdout(self) -> str:
        """Everything the attempt printed to stdout (default: the latest started attempt)."""
        return self._store.read_log(self._row["task_id"], self._log_attempt, "stdout")

    @property
    def stderr(self) -> str:
        """Everything the attempt printed to stderr (default: the latest started attempt)."""
        return self._store.read_log(self._row["task_id"], self._log_attempt, "stderr")

    def loglines(self, stream: str = "stdout") -> Iterator[tuple[datetime, str]]:
        """``(datetime, line)`` for each line of the attempt's ``stream`` ("stdout" or "stderr"), as in Metaflow.

        A line is dated by when the worker read it (in batches of at most 0.2 s); lines
        of attempts run inline or on a remote executor carry the attempt's start time.
        A running task yields what has been streamed so far.

        Example
        -------
        >>> from runstore import Store, Task, namespace
        >>> store = Store(":memory:")
        >>> _ = namespace(None)
        >>> tid = store.create_task(store.create_run("F", user="anne").run_id, "start")
        >>> store.start_attempt(tid, 0)
        >>> store.append_log(tid, 0, "stdout", "hello\\n", [(0, 0.0)])
        >>> [(when.year, line) for when, line in Task(f"F/1/start/{tid}", store=store).loglines()]
        [(1970, 'hello')]
        """
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
        for ts, line in self._store.list_log_lines(self._row["task_id"], self._log_attempt, stream):
            yield _utc(ts), line  # type: ignore[misc]

    @property
    def stdout_size(self) -> int:
        """Size of :attr:`stdout` in bytes (UTF-8)."""
        outcome = self._store.find_attempt(self._row["task_id"], self._log_attempt)
        return outcome["stdout_size"] if outcome else 0

    @property
    def stderr_size(self) -> int:
        """Size of :attr:`stderr` in bytes (UTF-8)."""
        outcome = self._store.find_attempt(self._row["task_id"], self._log_attempt)
        return outcome["stderr_size"] if outcome else 0

    # ------------------------------------------------------------ metadata

    @property
    def metadata(self) -> list[Metadata]:
        """Metadata of every attempt (or of the chosen attempt), oldest first.

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
        >>> [(m.name, m.value, m.attempt) for m in Task(f"HelloFlow/1/start/{task_id}", store=store).metadata]
        [('user', 'anne', 0)]
        """
        rows = self._store.list_metadata(self._row["task_id"], self._attempt)
        return [Metadata(r["name"], r["value"], _utc(r["created_at"]), r["type"], self.pathspec, r["attempt"])
                for r in rows]

    @property
    def metadata_dict(self) -> dict[str, str]:
        """``{name: value}`` keeping the newest value of each name."""
        return {m.name: m.value for m in self.metadata}

    # ------------------------------------------------------------ artifacts

    def _child_rows(self) -> list[Row]:
        return self._store.list_artifacts(self._row["task_id"], self._data_attempt)

    def _make_child(self, row: Row) -> "DataArtifact":
        return DataArtifact._from_row(self, [*self._parts, row["name"]], row, self._attempt)

    def __iter__(self) -> Iterator["DataArtifact"]:
        """Public artifacts (names not starting with ``_``)."""
        return super().__iter__()

    def __getitem__(self, name: str) -> "DataArtifact":
        row = self._store.find_artifact(self._row["task_id"], self._data_attempt, name) \
            if isinstance(name, str) else None
        if row is None:
            raise NotFound(f"DataArtifact('{self.pathspec}/{name}') does not exist")
        return self._make_child(row)

    def __contains__(self, name: Any) -> bool:
        return isinstance(name, str) and \
            self._store.find_artifact(self._row["task_id"], self._data_attempt, name) is not None

    @property
    def artifacts(self) -> Any:
        """A namedtuple of the public artifacts: ``task.artifacts.x.data``."""
        children = list(self)
        cls = namedtuple("Artifacts", [a.id for a in children], rename=True)  # type: ignore[misc]
        return cls(*children)

    @property
    def data(self) -> "TaskData":
        """The public artifacts' values, loaded on attribute access: ``task.data.x``."""
        return TaskData(self)

    @property
    def code(self) -> Code | None:
        """The run's code snapshot, or None."""
        return self.parent.parent.code

    # ------------------------------------------------------------ graph neighbours

    def _linked(self, parents: bool) -> list["Task"]:
        # Tasks are linked along graph edges when their foreach paths agree: the same
        # path, one frame more when entering a foreach (opened by the upstream step),
        # or one frame less when a join closes it.
        mine = _frames(self._row["foreach_path"])
        step = self.parent
        found: list[Task] = []
        for other_step in (step.parent_steps if parents else step.child_steps):
            upstream = other_step.id if parents else self._parts[2]
            for task in other_step:
                theirs = _frames(task._row["foreach_path"])
                up, down = (theirs, mine) if parents else (mine, theirs)
                if up == down or (down and down[:-1] == up and down[-1][0] == upstream) or \
                        (up and up[:-1] == down):
                    found.append(task)
        return found

    @property
    def parent_tasks(self) -> list["Task"]:
        """The tasks whose output this task consumed (its step's parents, matched by foreach path).

        Example
        -------
        >>> # Task('ForeachFlow/3/join/20').parent_tasks -> every 'square' task of that foreach
        """
        return self._linked(parents=True)

    @property
    def child_tasks(self) -> list["Task"]:
        """The tasks that consumed this task's output."""
        return self._linked(parents=False)

    @property
    def parent_task_pathspecs(self) -> list[str]:
        """Pathspecs of :attr:`parent_tasks`."""
        return [t.pathspec for t in self.parent_tasks]

    @property
    def child_task_pathspecs(self) -> list[str]:
        """Pathspecs of :attr:`child_tasks`."""
        return [t.pathspec for t in self.child_tasks]


def _frames(path: str | None) -> list[tuple[str, str]]:
    return [tuple(part.rsplit(":", 1)) for part in path.split(",")] if path else []  # type: ignore[misc]


# ---------------------------------------------------------------- artifacts


class DataArtifact(ClientObject):
    """One artifact: its value (loaded on demand) and what is known without loading it.

    Example
    -------
    >>> from runstore import Store, DataArtifact, namespace
    >>> store = Store(":memory:")
    >>> run = store.create_run("HelloFlow", user="anne", user_tags=["crazy_test"])
    >>> task_id = store.create_task(run.run_id, "start")
    >>> store.start_attempt(task_id, 0)
    >>> store.finish_attempt(task_id, 0, "succeeded", artifacts={"x": store.put_value(42)},
    ...                      stdout="hi\\n", metadata={"user": "anne"})
    >>> _ = namespace(None)
    >>> art = DataArtifact(f"HelloFlow/1/start/{task_id}/x", store=store)
    >>> art.data, art.encoding, art.type, len(art.sha)
    (42, 'json', 'int', 64)
    """

    _EXPECTS = "DataArtifact('FlowName/RunID/StepName/TaskID/ArtifactName')"
    _DEPTH = 5

    _loaded: bool = False
    _value: Any = None

    def _lookup(self) -> Row | None:
        task = self._find_task()
        if task is None:
            return None
        if self._attempt is not None:
            attempt = self._attempt
        else:
            attempt = task["attempt"] if task["done_attempt"] is None else task["done_attempt"]
        return self._store.find_artifact(task["task_id"], attempt, self._parts[4])

    @property
    def parent(self) -> Task:
        """The artifact's :class:`Task`, with the same attempt (no namespace check)."""
        return Task("/".join(self._parts[:4]), attempt=self._attempt, _namespace_check=False,
                    _context=self._context())

    @property
    def data(self) -> Any:
        """The value, decoded on first access (pickles only when trusted)."""
        if not self._loaded:
            self._value = self._store.load_value(self._row["blob_key"], self._row["encoding"])
            self._loaded = True
        return self._value

    @property
    def size(self) -> int:
        """Size of the encoded value in bytes."""
        return self._row["size"]

    @property
    def sha(self) -> str:
        """The blob key: sha256 of the encoded value (up to 16 MiB; a larger one's key is
        derived from its chunks' sha256s, ``t…``: docs/storage.md, "Blob layout")."""
        return self._row["blob_key"]

    @property
    def encoding(self) -> str:
        """How the value is stored: ``json``, ``bytes``, ``npy``, ``safepickle`` or ``pickle``."""
        return self._row["encoding"]

    @property
    def type(self) -> str:
        """The value's type name, e.g. ``float`` or ``numpy.ndarray``."""
        return self._row["type"]

    @property
    def attempt(self) -> int:
        """The task attempt that produced this artifact."""
        return self._row["attempt"]

    @property
    def finished_at(self) -> datetime | None:
        """Same as :attr:`created_at` (artifacts are written when their task ends)."""
        return self.created_at

    @property
    def origin_pathspec(self) -> str | None:
        """``<origin task>/<name>`` for a cloned task's artifact; None otherwise."""
        origin = self.parent.origin_pathspec
        return None if origin is None else f"{origin}/{self.id}"

    def __iter__(self) -> Iterator[Any]:
        return iter(())
