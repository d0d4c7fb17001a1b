"""How client objects show themselves: an informative ``repr`` and a notebook ``_repr_html_``.

Plain functions over duck-typed client objects (this module imports no other client
module). Every value shown is escaped: a store may come from a colleague, and a tag, a
user name or a parameter is text its author chose. A parameter that is a pickle from an
untrusted store is never loaded (shown as ``<untrusted pickle>``).

Example
-------
>>> store_label(":memory:")
'in-memory store'
>>> cell("<b>")
'&lt;b&gt;'
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any, Iterable

from ..errors import RunstoreError
from ..util import short_repr

__all__ = ["store_label", "cell", "short", "run_summary", "object_html", "runs_html"]

#: Rows shown by a run list's rich display (the rest is counted, not loaded).
MAX_ROWS = 50
_STYLE = ("<style>.runstore-table td,.runstore-table th{text-align:left;padding:2px 8px;"
          "font-family:monospace}</style>")


def store_label(where: str) -> str:
    """Which store an object reads, for reprs: ``in-memory store`` or ``store <path>``.

    Example
    -------
    >>> store_label("/home/anne/proj/runstore.db")
    'store /home/anne/proj/runstore.db'
    """
    return "in-memory store" if where == ":memory:" else f"store {where}"


def cell(value: Any) -> str:
    """``value`` as escaped HTML text (None as empty).

    Example
    -------
    >>> cell("a & b")
    'a &amp; b'
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return html.escape(str(value), quote=True)


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters.

    Example
    -------
    >>> short("x" * 100, 10)
    "'xxxxxxxx…"
    """
    text = short_repr(value, limit)  # bounded: a stranger's value may be deep or shared (billion laughs)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe(get: Any, default: Any = None) -> Any:
    try:
        return get()
    except (RunstoreError, LookupError, ValueError, TypeError, OSError):
        return default


def _parameters(run: Any) -> dict[str, str]:
    from ..errors import UntrustedArtifact

    found: dict[str, str] = {}
    task = _safe(lambda: run["_parameters"].task)
    if task is None:
        return found
    for artifact in task:
        if artifact.id.startswith("_"):
            continue
        try:
            found[artifact.id] = short(artifact.data, 40)
        except UntrustedArtifact:
            found[artifact.id] = "<untrusted pickle>"
        except (RunstoreError, ValueError, TypeError, OSError):
            found[artifact.id] = "<unreadable>"
    return found


def run_summary(run: Any) -> dict[str, Any]:
    """What a run's displays show: status, user, times, tags, parameters.

    Example
    -------
    >>> # run_summary(Run("TrainFlow/5"))["status"] -> 'succeeded'
    """
    return {
        "status": _safe(lambda: run.status, "?"),
        "user": _safe(lambda: run.user),
        "created_at": _safe(lambda: run.created_at),
        "finished_at": _safe(lambda: run.finished_at),
        "tags": sorted(_safe(lambda: run.user_tags, frozenset())),
        "parameters": _parameters(run),
    }


def _table(header: list[str], rows: Iterable[list[str]], caption: str) -> str:
    head = "".join(f"<th>{cell(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f"{_STYLE}<table class=\"runstore-table\"><caption>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def ui_link(obj: Any) -> str:
    """``obj``'s pathspec, linked to its page in a running ``runstore ui`` of this store if there is one.

    Example
    -------
    >>> # ui_link(Run("TrainFlow/5")) -> '<a href="http://127.0.0.1:8765/run/TrainFlow/5">TrainFlow/5</a>'
    """
    from urllib.parse import quote

    from ..util import running_ui_url

    text = cell(obj.pathspec)
    try:
        url = running_ui_url(obj._store.where)
    except (OSError, RunstoreError):
        url = None
    parts = obj.pathspec.split("/")
    if url is None or len(parts) not in (2, 4):
        return text
    return f'<a href="{html.escape(url + "run/" + "/".join(quote(p, safe="") for p in parts))}">{text}</a>'


def _run_row(run: Any) -> list[str]:
    info = run_summary(run)
    params = ", ".join(f"{k}={v}" for k, v in info["parameters"].items())
    return [ui_link(run), cell(info["status"]), cell(info["user"]), cell(info["created_at"]),
            cell(info["finished_at"]), cell(" ".join(info["tags"])), cell(params)]


_RUN_HEADER = ["run", "status", "user", "started", "finished", "tags", "parameters"]


def runs_html(runs: Iterable[Any], where: str, title: str = "runs") -> str:
    """A table of runs (at most :data:`MAX_ROWS`, the rest counted) for a notebook.

    Example
    -------
    >>> "<table" in runs_html([], ":memory:")
    True
    """
    rows, more = [], 0
    for i, run in enumerate(runs):
        if i < MAX_ROWS:
            rows.append(_run_row(run))
        else:
            more += 1
    caption = f"{cell(title)}: {len(rows) + more} in {cell(store_label(where))}"
    if more:
        caption += f" (first {MAX_ROWS} shown)"
    return _table(_RUN_HEADER, rows, caption)


def object_html(obj: Any) -> str:
    """A client object's rich display: a Run's summary, a Step's or Task's outcome, a Flow's runs.

    Example
    -------
    >>> # Run("TrainFlow/5")._repr_html_()
    """
    kind = type(obj).__name__
    where = obj._store.where
    if kind == "Flow":
        return runs_html(obj._runs(first_page=MAX_ROWS + 1), where, title=f"Flow {obj.id}")
    if kind == "Run":
        return _table(_RUN_HEADER, [_run_row(obj)], f"Run in {cell(store_label(where))}")
    if kind == "Step":
        tasks = list(obj)
        rows = [[cell(t.pathspec), cell(_safe(lambda t=t: t.status, "?")), cell(t.index),
                 cell(_safe(lambda t=t: t.finished_at))] for t in tasks[:MAX_ROWS]]
        return _table(["task", "status", "foreach index", "finished"], rows,
                      f"Step {cell(obj.pathspec)}: {len(tasks)} task(s) in {cell(store_label(where))}")
    exception = _safe(lambda: obj.exception)
    names = _safe(lambda: [a.id for a in obj], [])
    rows = [["status", cell(_safe(lambda: obj.status, "?"))],
            ["finished", cell(_safe(lambda: obj.finished_at))],
            ["artifacts", cell(", ".join(n for n in names if not n.startswith("_")))],
            ["exception", cell(f"{exception.type}: {exception.message}" if exception else None)]]
    return _table(["", ""], rows, f"Task {ui_link(obj)} in {cell(store_label(where))}")
