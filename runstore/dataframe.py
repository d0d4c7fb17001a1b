"""Runs as a pandas DataFrame: compare parameters and results of many runs in one call.

pandas is optional: it is imported only when :func:`to_dataframe` is called.

Example
-------
::

    from runstore import Flow, to_dataframe
    df = to_dataframe(Flow("TrainFlow").runs("sweep"), artifacts=["accuracy"])
    df.sort_values("accuracy", ascending=False).head()
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, Union

from .errors import NotFound, UntrustedArtifact

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from .client import Run

__all__ = ["to_dataframe", "run_record", "UNTRUSTED"]

#: The cell value of an artifact that is a pickle from a store you have not trusted
#: (``runstore trust FILE``): it is never unpickled, the rest of the frame is filled.
UNTRUSTED = "<untrusted pickle>"

#: Artifact names read from the end task, or ``{step: [names]}`` read from any step.
Artifacts = Union[Sequence[str], Mapping[str, Sequence[str]]]


def _load(artifact: Any, untrusted: list[str]) -> Any:
    try:
        return artifact.data
    except UntrustedArtifact as exc:
        untrusted.append(f"{artifact.pathspec}: {exc}")
        return UNTRUSTED


def _step_value(run: "Run", step: str, name: str, untrusted: list[str]) -> Any:
    """The artifact of a step's task; a list by foreach index when the step has several."""
    try:
        tasks = list(run[step])
    except (NotFound, KeyError):
        return None
    values = [(t.index or 0, _load(t[name], untrusted)) for t in tasks if name in t]
    if not values:
        return None
    if len(tasks) == 1:
        return values[0][1]
    return [v for _, v in sorted(values, key=lambda iv: iv[0])]


def run_record(run: "Run", artifacts: Artifacts = (), *, parameters: bool = True,
               _untrusted: list[str] | None = None) -> dict[str, Any]:
    """One run as a flat dict: identity, status, timings, parameters and chosen artifacts.

    Parameters come from the run's ``_parameters`` task; ``artifacts`` (a list of
    names) are read from the end task (``run.data``), or ``None`` when the run has
    no such value; ``{"train": ["fold_acc"]}`` reads from any step, into a column
    ``train.fold_acc`` (a list by foreach index when the step has several tasks).
    A parameter or artifact named like a fixed column is prefixed with ``param_``
    or ``artifact_``. A pickle from an untrusted store is never loaded: its cell
    holds :data:`UNTRUSTED`.

    Example
    -------
    ::

        run_record(Run("TrainFlow/12"), ["accuracy"])["accuracy"]   # -> 0.93
    """
    created, finished = run.created_at, run.finished_at
    record: dict[str, Any] = {
        "pathspec": run.pathspec,
        "run_number": int(run.id),
        "status": run.status,
        "successful": run.successful,
        "created_at": created,
        "finished_at": finished,
        "duration_s": (finished - created).total_seconds() if created and finished else None,
        "user": run.user,
        "tags": sorted(run.user_tags),
        "tags_text": " ".join(sorted(run.user_tags)),
    }
    untrusted: list[str] = [] if _untrusted is None else _untrusted
    fixed = set(record)
    if parameters:
        try:
            task = run["_parameters"].task
        except NotFound:
            task = None
        if task is not None:
            for artifact in task:
                if not artifact.id.startswith("_"):
                    key = f"param_{artifact.id}" if artifact.id in fixed else artifact.id
                    record[key] = _load(artifact, untrusted)
    if isinstance(artifacts, Mapping):
        for step_name, names in artifacts.items():
            for name in names:
                record[f"{step_name}.{name}"] = _step_value(run, step_name, name, untrusted)
        return record
    end = run.end_task if artifacts else None
    for name in artifacts:
        key = f"artifact_{name}" if name in record else name
        record[key] = _load(end[name], untrusted) if end is not None and name in end else None
    return record


def to_dataframe(runs: Iterable["Run"], artifacts: Artifacts = (), *,
                 parameters: bool = True) -> "pandas.DataFrame":
    """A pandas DataFrame with one row per run (see :func:`run_record` for the columns).

    Columns: ``pathspec, run_number, status, successful, created_at, finished_at,
    duration_s, user, tags`` (a list), ``tags_text`` (the same, space-separated, for
    ``groupby``), then one per parameter, then one per name in ``artifacts`` (read
    from each run's end task; ``{"train": ["fold_acc"]}`` reads step ``train``'s, in
    column ``train.fold_acc``). Rows keep the order of ``runs`` (the client's is
    newest first). An untrusted pickle (a colleague's store you have not trusted)
    fills its cell with :data:`UNTRUSTED` and warns once. Needs pandas
    (``pip install runstore[pandas]``).

    Example
    -------
    ::

        df = to_dataframe(Flow("TrainFlow").runs(), artifacts=["accuracy"])
        df[["run_number", "learning_rate", "accuracy"]].sort_values("accuracy").tail(3)
    """
    try:
        import pandas
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_dataframe needs pandas: pip install 'runstore[pandas]'") from None
    untrusted: list[str] = []
    records = [run_record(run, artifacts, parameters=parameters, _untrusted=untrusted) for run in runs]
    if untrusted:
        warnings.warn(f"{len(untrusted)} artifact value(s) are pickles from an untrusted store and were not "
                      f"loaded (cells hold {UNTRUSTED!r}); first: {untrusted[0]}", UserWarning, stacklevel=2)
    columns = list(dict.fromkeys(key for record in records for key in record)) or [
        "pathspec", "run_number", "status", "successful", "created_at", "finished_at", "duration_s", "user", "tags",
        "tags_text"]
    return pandas.DataFrame.from_records(records, columns=columns)
