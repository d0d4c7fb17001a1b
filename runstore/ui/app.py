"""The Starlette application: routes, security headers, error pages.

Pages are rendered server-side with Jinja2 (autoescape on for every template), read
through :mod:`runstore.ui.data` and the client, and never write to the store except
the tag form when the app was made with ``allow_tag_edits=True``. Every response
carries a strict Content-Security-Policy (scripts only from ``/static``, no inline
script or style, no ``eval``: charts use Vega's expression interpreter).

Example
-------
>>> from starlette.testclient import TestClient
>>> from runstore import Store
>>> client = TestClient(create_app(Store(":memory:")))
>>> client.get("/").status_code
200
"""

from __future__ import annotations

import difflib
import hmac
import json
import math
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidPathspec, NotFound, RunstoreError
from ..schema import RUN_STATUSES
from ..util import parse_id
from . import data
from ..dag import dag_layout, timeline_layout
from ..preview import preview

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["create_app", "CSP", "STATIC_DIR", "TEMPLATE_DIR"]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

#: The Content-Security-Policy of every response: nothing inline, nothing from elsewhere;
#: frames only from this app (the task page's sandboxed cards, served under :data:`CARD_CSP`).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'")

_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]

#: The policy of a card document (``/card/...``): HTML written by whoever ran the task.
#: ``sandbox allow-scripts`` gives it an opaque origin even when opened directly (the task
#: page also frames it with ``sandbox="allow-scripts"``, never allow-same-origin), so its
#: script (charts) runs but cannot reach the UI's pages, cookies or API; it may fetch
#: nothing, load nothing but inline code and data: images, and be framed only by the UI.
CARD_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
            "font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'; "
            "frame-ancestors 'self'; sandbox allow-scripts")
_CARD_HEADERS = [
    (b"content-security-policy", CARD_CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"SAMEORIGIN"),
]

_STATUSES = RUN_STATUSES
_TASKS_PER_STEP = 200
_CODE_MAX = 32 << 20
_SQL_ROWS = 1000


class _SecurityHeaders:
    """ASGI middleware adding :data:`CSP` and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                card = scope["path"].startswith("/card/")  # a card gets its own policy, never both
                message["headers"] = list(message.get("headers", [])) + (_CARD_HEADERS if card else _HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["cell"] = _cell
    env.filters["enc"] = lambda params: urlencode(params, doseq=True)
    return env


def _when(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _cell(value: Any, width: int = 80) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    text = "" if value is None else (json.dumps(value) if isinstance(value, (dict, list, bool)) else str(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def create_app(store: "Store", *, allow_tag_edits: bool = False,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The web app over ``store`` (what ``runstore ui`` serves; tests use it directly).

    Parameters
    ----------
    store : Store
        The store to show. Read-only use unless ``allow_tag_edits``.
    allow_tag_edits : bool
        Show the tag form on run pages and accept its POSTs (with a per-app token).
    allowed_hosts : list of str, optional
        Accepted ``Host`` headers (default: any; ``serve`` passes the loopback names,
        which stops DNS-rebinding pages from reading the store).

    Example
    -------
    >>> from runstore import Store
    >>> app = create_app(Store(":memory:"), allow_tag_edits=True)
    >>> app.state.allow_tag_edits
    True
    """
    env = _environment()
    token = secrets.token_urlsafe(24)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(request=request, allow_tag_edits=allow_tag_edits, store_where=store.where)
        return HTMLResponse(env.get_template(name).render(**context), status_code=status_code)

    def client(kind: str, pathspec: str) -> Any:
        from .. import client as c
        from ..namespace import namespace_scope

        with namespace_scope(None):  # the UI shows every namespace: the user named the object
            return getattr(c, kind)(pathspec, store=store)

    # ------------------------------------------------------------ runs

    def runs_page(request: Request) -> HTMLResponse:
        from ..namespace import identity

        qp = request.query_params
        me = identity()
        ns_param = qp.get("ns_tag", "").strip() or qp.get("ns", me)
        tags = [t for t in qp.get("tags", "").replace(",", " ").split() if t]
        if qp.get("user"):
            tags.append(f"user:{qp['user']}")
        status = qp.get("status") or None
        if status is not None and status not in _STATUSES:
            raise HTTPException(400, f"unknown status {status!r}")
        flow = qp.get("flow") or None
        sort = qp.get("sort", "")
        kind, _, name = sort.partition(":")
        if sort and (kind not in ("param", "result") or not name):
            raise HTTPException(400, f"bad sort {sort!r}: param:NAME or result:NAME")
        by = data.SortBy(kind, name, qp.get("desc") == "1", _parse_sort_cursor(qp.get("after"))) if sort else None
        cursor = None if by else _parse_cursor(qp.get("after"))
        q = data.RunsQuery(flow=flow, namespace=None if ns_param in ("", "_all") else ns_param, tags=tags,
                           status=status, oldest_first=qp.get("order") == "oldest", cursor=cursor)
        page = data.list_runs_sorted(store, q, by) if by else data.list_runs(store, q)
        results = _results(page.rows)
        param_names = sorted({k for r in page.rows for k in r["parameters"]})
        result_names = sorted({k for r in results.values() for k in r})
        if qp.get("chosen"):
            cols = [c for c in qp.getlist("col") if c in param_names]
            res = [c for c in qp.getlist("res") if c in result_names]
        else:
            cols, res = param_names[:8], result_names[:8]
        if by and by.kind == "param" and name not in cols:
            cols.append(name)  # the sort column is always shown, even when no run here has it
        if by and by.kind == "result" and name not in res:
            res.append(name)
        rows = page.rows
        base = [(k, v) for k, v in qp.multi_items() if k not in ("after", "ns", "ns_tag")] + [("ns", ns_param)]
        next_link = None
        if page.next_cursor is not None:
            after = (json.dumps(list(page.next_cursor)) if by
                     else f"{page.next_cursor[0]!r}:{page.next_cursor[1]}")
            next_link = "/?" + urlencode(base + [("after", after)])
        return render(request, "runs.html", rows=rows, results=results, cols=cols, res=res,
                      param_names=param_names, result_names=result_names, flows=data.flow_names(store),
                      flow=flow, ns=ns_param, me=me, tags=" ".join(t for t in tags if not t.startswith("user:")),
                      user=qp.get("user", ""), status=status, order=qp.get("order", "newest"),
                      statuses=_STATUSES, next_link=next_link, first_link="/?" + urlencode(base),
                      paged=cursor is not None, sort=sort, desc=qp.get("desc") == "1",
                      sort_base=urlencode([(k, v) for k, v in qp.multi_items()
                                           if k not in ("sort", "desc", "after", "ns", "ns_tag")] + [("ns", ns_param)]))

    def _results(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """End-step scalars minus the parameters (which every task carries)."""
        found = data.results_of(store, [r["run_id"] for r in rows])
        return {r["run_id"]: {k: v for k, v in found[r["run_id"]].items() if k not in r["parameters"]}
                for r in rows}

    # ------------------------------------------------------------ one run

    def run_page(request: Request) -> HTMLResponse:
        flow, number = _run_parts(request)
        row = data.run_row(store, flow, number)
        run = client("Run", f"{flow}/{number}")
        tasks = [t for t in data.run_tasks(store, row["run_id"]) if t["step"] != "_parameters"]
        summary = data.step_summary(tasks)
        graph = data.graph_of(store, row["run_id"])
        dag = dag_layout(graph["steps"], graph["start"], summary) if graph else None
        attempts = {t["task_id"]: _attempts(t) for t in tasks if t["attempt"] > 0}
        timeline = timeline_layout(tasks, attempts, now=time.time())
        by_step: dict[str, list[dict[str, Any]]] = {}
        for t in tasks:
            by_step.setdefault(t["step"], []).append(t)
        show_all = request.query_params.get("all") == "1"
        failures = [t for t in tasks if t["status"] in ("failed", "caught", "interrupted")]
        env_meta = _environment_of(tasks)
        return render(request, "run.html", run=row, status=run.status, by_step=by_step, summary=summary,
                      dag=dag, timeline=timeline, failures=failures[:20], show_all=show_all,
                      per_step=_TASKS_PER_STEP, env=env_meta, token=token,
                      code=run.code, runs_for_diff=_neighbours(flow, row))

    def _attempts(task: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for n in range(task["attempt"] + 1):
            a = store.find_attempt(task["task_id"], n)
            if a is not None:
                out.append(a)
        return out

    def _environment_of(tasks: list[dict[str, Any]]) -> dict[str, str]:
        if not tasks:
            return {}
        last = tasks[-1]
        keys = ("user", "runtime", "python_version", "platform", "runstore_version", "script-name", "git-info")
        meta = {m["name"]: m["value"] for m in store.list_metadata(last["task_id"])}
        return {k: meta[k] for k in keys if k in meta}

    def _neighbours(flow: str, row: dict[str, Any]) -> list[str]:
        page = data.list_runs(store, data.RunsQuery(flow=flow, limit=10))
        return [r["pathspec"] for r in page.rows if r["run_id"] != row["run_id"]]

    async def tags_edit(request: Request) -> Response:
        if not allow_tag_edits:
            raise HTTPException(403, "read-only: start `runstore ui --allow-tag-edits` to edit tags")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if not hmac.compare_digest(form.get("token", [""])[0], token):
            raise HTTPException(403, "the form is stale or from another page; reload the run page")
        flow, number = _run_parts(request)
        from starlette.concurrency import run_in_threadpool

        def edit() -> None:
            run = client("Run", f"{flow}/{number}")
            add = [t for t in form.get("add", [""])[0].split() if t]
            remove = [t for t in form.get("remove", []) if t]
            if remove:
                run.remove_tags(remove)
            if add:
                run.add_tags(add)

        await run_in_threadpool(edit)
        return RedirectResponse(f"/run/{flow}/{number}#tags", status_code=303)

    # ------------------------------------------------------------ one task

    def task_page(request: Request) -> HTMLResponse:
        flow, number = _run_parts(request)
        step, task_id = request.path_params["step"], request.path_params["task_id"]
        spec = f"{flow}/{number}/{step}/{task_id}"
        task = client("Task", spec)
        row = data.run_row(store, flow, number)
        tid = int(task_id)
        current = task.current_attempt
        chosen = _attempt_param(request, current)
        outcome = store.find_attempt(tid, chosen)
        from .. import client as c

        if chosen != current:
            task = c.Task(spec, store=store, attempt=chosen)
        artifacts = [(a, preview(store, a)) for a in sorted(task, key=lambda a: a.id)]
        logs = {s: store.read_log(tid, chosen, s) for s in ("stdout", "stderr")}
        live = outcome is not None and outcome["finished_at"] is None
        return render(request, "task.html", run=row, task=task, spec=spec, step=step, task_id=tid,
                      attempts=list(range(current + 1)), chosen=chosen, outcome=outcome,
                      artifacts=artifacts, logs=logs, live=live, cards=store.task_cards(tid),
                      metadata=store.list_metadata(tid, chosen))

    # ------------------------------------------------------------ cards (docs/cards.md)

    def _card_row(request: Request) -> Any:
        flow, number = _run_parts(request)
        step, task_id = request.path_params["step"], request.path_params["task_id"]
        client("Task", f"{flow}/{number}/{step}/{task_id}")  # the task exists, in this store
        seq = request.path_params["seq"]
        found = [c for c in store.task_cards(int(task_id)) if str(c.seq) == seq]
        if not found or found[0].blob_key is None:
            raise HTTPException(404, f"card {seq!r} of task {task_id} does not exist")
        return found[0]

    def card_page(request: Request) -> HTMLResponse:
        from ..cards._page import standalone

        row = _card_row(request)
        return HTMLResponse(standalone(store.card_html(row.blob_key)))

    def cards_api(request: Request) -> JSONResponse:
        flow, number = _run_parts(request)
        step, task_id = request.path_params["step"], request.path_params["task_id"]
        task = client("Task", f"{flow}/{number}/{step}/{task_id}")
        outcome = store.find_attempt(int(task_id), task.current_attempt)
        done = outcome is None or outcome["finished_at"] is not None
        return JSONResponse({"done": done, "cards": [
            {"seq": c.seq, "hash": c.blob_key, "status": c.status} for c in store.task_cards(int(task_id))]})

    def log_api(request: Request) -> JSONResponse:
        flow, number = _run_parts(request)
        step, task_id = request.path_params["step"], request.path_params["task_id"]
        task = client("Task", f"{flow}/{number}/{step}/{task_id}")
        chosen = _attempt_param(request, task.current_attempt)
        stream = request.query_params.get("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise HTTPException(400, "stream is stdout or stderr")
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            raise HTTPException(400, "offset is a number") from None
        tid = int(task_id)
        text = store.read_log(tid, chosen, stream)
        outcome = store.find_attempt(tid, chosen)
        # A task of a run whose scheduler died never finishes its attempt: stop following it.
        done = (outcome is None or outcome["finished_at"] is not None
                or client("Run", f"{flow}/{number}").status == "crashed")
        return JSONResponse({"text": text[offset:] if offset <= len(text) else text, "offset": len(text),
                             "reset": offset > len(text), "done": done,
                             "status": (outcome or {}).get("status")})

    # ------------------------------------------------------------ code

    def code_page(request: Request) -> HTMLResponse:
        flow, number = _run_parts(request)
        run = client("Run", f"{flow}/{number}")
        files = _code_files(run)
        against = request.query_params.get("against")
        diffs = None
        if against:
            other_flow, other_number = data.run_pathspec(against)
            other = client("Run", f"{other_flow}/{other_number}")
            theirs = _code_files(other)
            diffs = []
            for name in sorted({*files, *theirs}):
                lines = list(difflib.unified_diff(
                    theirs.get(name, "").splitlines(keepends=True), files.get(name, "").splitlines(keepends=True),
                    fromfile=f"{other.pathspec}/{name}", tofile=f"{run.pathspec}/{name}"))
                if lines:
                    diffs.append((name, [line.rstrip("\n") for line in lines]))
        return render(request, "code.html", run=run, files=files, against=against, diffs=diffs,
                      runs_for_diff=_neighbours(flow, {"run_id": None}))

    def _code_files(run: Any) -> dict[str, str]:
        code = run.code
        if code is None:
            return {}
        out: dict[str, str] = {}
        total = 0
        for member in code.tarball.getmembers():
            if not member.isfile() or member.name.startswith(".runstore/"):
                continue
            total += member.size
            if total > _CODE_MAX:
                out[member.name] = "(not shown: the code package is larger than 32 MiB)"
                break
            handle = code.tarball.extractfile(member)
            out[member.name] = handle.read().decode("utf-8", "replace") if handle else ""
        return out

    # ------------------------------------------------------------ compare

    def compare_page(request: Request) -> HTMLResponse:
        specs = [s for s in request.query_params.getlist("run") if s.strip()]
        specs = list(dict.fromkeys(specs))[: data.MAX_COMPARE]
        rows = []
        for spec in specs:
            flow, number = data.run_pathspec(spec)
            rows.append(data.run_row(store, flow, number))
        results = _results(rows)
        codes = {}
        for r in rows:
            code = client("Run", r["pathspec"]).code
            codes[r["run_id"]] = code.sha if code is not None else None

        def section(values: list[dict[str, Any]]) -> list[tuple[str, list[Any], bool]]:
            names = sorted({k for v in values for k in v})
            out = []
            for name in names:
                cells = [v.get(name) for v in values]
                out.append((name, cells, len({json.dumps(c, sort_keys=True) for c in cells}) > 1))
            return out

        params = section([r["parameters"] for r in rows])
        scal = section([results[r["run_id"]] for r in rows])
        all_tags = sorted({t for r in rows for t in r["user_tags"] + r["system_tags"]})
        tag_rows = [(t, [t in r["user_tags"] + r["system_tags"] for r in rows],
                     len({t in r["user_tags"] + r["system_tags"] for r in rows}) > 1) for t in all_tags]
        plot = [{"run": r["pathspec"], "number": r["run_number"], "started": r["created_at"],
                 **{f"p:{k}": v for k, v in r["parameters"].items() if isinstance(v, (int, float, str))},
                 **{f"r:{k}": v for k, v in results[r["run_id"]].items()}} for r in rows]
        numeric = sorted({k for r in rows for k, v in results[r["run_id"]].items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return render(request, "compare.html", rows=rows, params=params, results=scal, tags=tag_rows,
                      codes=codes, code_differs=len(set(codes.values())) > 1, plot=plot,
                      numeric=numeric, param_names=[p[0] for p in params])

    # ------------------------------------------------------------ SQL

    def sql_page(request: Request) -> HTMLResponse:
        query = request.query_params.get("q", "").strip()
        columns: list[str] = []
        rows: list[tuple[Any, ...]] = []
        error = None
        truncated = False
        if query:
            try:
                columns, rows = _bounded_sql(store, query)
                truncated = len(rows) > _SQL_ROWS
                rows = rows[:_SQL_ROWS]
            except RunstoreError as exc:
                error = str(exc)
        return render(request, "sql.html", query=query, columns=columns, rows=rows, error=error,
                      truncated=truncated, views=data.view_columns(store), about=data.VIEWS,
                      limit=_SQL_ROWS)

    # ------------------------------------------------------------ errors

    def not_found(request: Request, exc: Exception) -> HTMLResponse:
        status = getattr(exc, "status_code", 404)
        detail = getattr(exc, "detail", None) or str(exc) or "not found"
        return render(request, "error.html", status_code=status, status=status, message=detail)

    def runstore_error(request: Request, exc: Exception) -> HTMLResponse:
        status = 404 if isinstance(exc, (NotFound, InvalidPathspec)) else 400 if isinstance(exc, ValueError) else 500
        return render(request, "error.html", status_code=status, status=status, message=str(exc))

    routes = [
        Route("/", runs_page),
        Route("/run/{flow}/{number}", run_page),
        Route("/run/{flow}/{number}/tags", tags_edit, methods=["POST"]),
        Route("/run/{flow}/{number}/code", code_page),
        Route("/run/{flow}/{number}/{step}/{task_id}", task_page),
        Route("/api/log/{flow}/{number}/{step}/{task_id}", log_api),
        Route("/card/{flow}/{number}/{step}/{task_id}/{seq}", card_page),
        Route("/api/cards/{flow}/{number}/{step}/{task_id}", cards_api),
        Route("/compare", compare_page),
        Route("/sql", sql_page),
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    handlers: dict[Any, Callable[..., Any]] = {HTTPException: not_found, RunstoreError: runstore_error}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.store = store
    app.state.allow_tag_edits = allow_tag_edits
    return app


def _run_parts(request: Request) -> tuple[str, int]:
    flow, number = request.path_params["flow"], request.path_params["number"]
    name, n = data.run_pathspec(f"{flow}/{number}")
    task_id = request.path_params.get("task_id")
    if task_id is not None and parse_id(task_id, canonical=False) is None:
        raise InvalidPathspec(f"{task_id!r} is not a task id")
    return name, n


def _attempt_param(request: Request, current: int) -> int:
    text = request.query_params.get("attempt")
    if text is None:
        return current
    attempt = parse_id(text, canonical=False)
    if attempt is None or attempt > current:
        raise HTTPException(404, f"attempt {text!r} does not exist")
    return attempt


def _parse_cursor(text: str | None) -> tuple[float, int] | None:
    if not text:
        return None
    ts, _, run_id = text.partition(":")
    try:
        return float(ts), int(run_id)
    except ValueError:
        raise HTTPException(400, f"bad page cursor {text!r}") from None


def _parse_sort_cursor(text: str | None) -> tuple[Any, float, int] | None:
    """``(value, created_ts, run_id)`` from the JSON ``[value, ts, run_id]`` of a sorted page's next link."""
    if not text:
        return None
    try:
        value, ts, run_id = json.loads(text)
    except (ValueError, TypeError):
        raise HTTPException(400, f"bad page cursor {text!r}") from None
    def number(x: Any) -> bool:
        return (type(x) is int and abs(x) < 2**63) or (type(x) is float and math.isfinite(x))

    ok = (value is None or isinstance(value, str) or number(value)) and number(ts) and type(run_id) is int \
        and number(run_id)
    if not ok:
        raise HTTPException(400, f"bad page cursor {text!r}")
    return value, float(ts), run_id


def _bounded_sql(store: "Store", query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a read-only query, fetching at most ``_SQL_ROWS + 1`` rows when it is a SELECT."""
    body = query.strip().rstrip(";").strip()
    first = body.split(None, 1)[0].lower() if body else ""
    if first in ("select", "with", "values") and ";" not in body:
        try:
            result = store.sql(f"SELECT * FROM ({body}\n) LIMIT {_SQL_ROWS + 1}")
            return result.columns, result.rows
        except RunstoreError:
            pass  # let the original statement report its own error
    result = store.sql(query)
    return result.columns, result.rows
