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

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .errors import NotFound

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from .client import Run

__all__ = ["to_dataframe", "run_record"]


def run_record(run: "Run", artifacts: Sequence[str] = (), *, parameters: bool = True) -> dict[str, Any]:
    """One run as a flat dict: identity, status, timings, parameters and chosen artifacts.

    Parameters come from the run's ``_parameters`` task; ``artifacts`` are read
    from the end task (``run.data``), or ``None`` when the run has no such value.
    A parameter or artifact named like a fixed column is prefixed with ``param_``
    or ``artifact_``.

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
    }
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
                    record[key] = artifact.data
    data = run.data if artifacts else None
    for name in artifacts:
        key = f"artifact_{name}" if name in record else name
        record[key] = getattr(data, name) if data is not None and name in data else None
    return record


def to_dataframe(runs: Iterable["Run"], artifacts: Sequence[str] = (), *,
                 parameters: bool = True) -> "pandas.DataFrame":
    """A pandas DataFrame with one row per run (see :func:`run_record` for the columns).

    Columns: ``pathspec, run_number, status, successful, created_at, finished_at,
    duration_s, user, tags``, then one per parameter, then one per name in
    ``artifacts`` (read from each run's end task). Rows keep the order of ``runs``
    (the client's is newest first). Needs pandas (``pip install runstore[pandas]``).

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
    records = [run_record(run, artifacts, parameters=parameters) for run in runs]
    columns = list(dict.fromkeys(key for record in records for key in record)) or [
        "pathspec", "run_number", "status", "successful", "created_at", "finished_at", "duration_s", "user", "tags"]
    return pandas.DataFrame.from_records(records, columns=columns)
