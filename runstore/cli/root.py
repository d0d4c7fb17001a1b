"""The ``runstore`` command: a thin click layer over the library.

Every command opens the store (``--db`` > ``RUNSTORE_DB`` > discovery), calls one
library method and prints the result. Errors are one line on stderr and exit
non-zero, never a traceback.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click

from ..errors import CodecError, UntrustedArtifact
from ..schema import RUN_STATUSES
from ..util import display_width, fit_width, printable
from .common import jsonable, client_object, echo_json, global_namespace, open_store
from .errors import OneLineErrors
from .logs import logs_command
from .tag import runstore_tag_group

__all__ = ["main", "cli"]


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _, on: _print_version(ctx, on), help="Show the version and exit.")
@click.option("--db", envvar="RUNSTORE_DB", type=click.Path(dir_okay=False), default=None,
              help="Store file (default: RUNSTORE_DB, else the nearest runstore.db).")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Keep every run of your Python workflows in one SQLite file.

    \b
    Example:
        runstore --db results.db version
    """
    ctx.obj = {"db": db}


def _print_version(ctx: click.Context, on: bool) -> None:
    """``--version``: the same string as ``runstore version`` and the runs' ``runstore_version``."""
    if on and not ctx.resilient_parsing:
        from ..version import get_version

        click.echo(f"runstore, version {get_version()}")
        ctx.exit()


@cli.command()
def version() -> None:
    """Print runstore's version.

    \b
    Example:
        runstore version
    """
    from ..version import get_version

    click.echo(get_version())  # what runs record as runstore_version (tests/test_version.py)


# ---------------------------------------------------------------- helpers


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A stderr counter for long operations (only on a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total}", err=True, nl=done >= total)

    return show


def _cell(value: Any, width: int | None = 60) -> str:
    """One table cell for people: control characters escaped (SPEC §13), cut to ``width``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    text = "" if value is None else str(value)
    if width is not None and len(text) > 4 * width:
        # Cut before escaping and measuring, which cost Python work per character: a 1 KB cell
        # in 200,000 rows took minutes. 4x leaves room for zero-width characters; "…" marks it.
        text = text[: 4 * width] + "…"
    text = printable(text.replace("\n", "\\n"))
    if width is None or display_width(text) <= width:
        return text
    return fit_width(text, width)  # columns, not characters: CJK and emoji take two


#: ``runstore sql`` sizes table columns from this many first rows, then streams the rest.
TABLE_WIDTH_ROWS = 1000


def _echo_table(columns: list[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows as an aligned text table (the default human output), streaming.

    Column widths come from the header and the first :data:`TABLE_WIDTH_ROWS` rows;
    a later cell wider than its column is printed whole and pushes the rest of its row
    right (never cut: a number must not lose digits).
    """
    out = sys.stdout
    rows = iter(rows)
    head = [[_cell(v) for v in row] for row in itertools.islice(rows, TABLE_WIDTH_ROWS)]
    widths = [max([display_width(c)] + [display_width(r[i]) for r in head]) for i, c in enumerate(columns)]
    out.write("  ".join(fit_width(c, w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in itertools.chain(head, ([_cell(v) for v in row] for row in rows)):
        out.write("  ".join(v if display_width(v) >= w else fit_width(v, w)
                            for v, w in zip(row, widths)).rstrip() + "\n")
    out.flush()


def _echo_json_rows(columns: list[str], rows: Iterable[Sequence[Any]], lines: bool) -> None:
    """Rows as one JSON list of objects (``echo_json``'s layout) or as JSON lines, streaming."""
    out = sys.stdout
    if lines:
        for row in rows:
            out.write(json.dumps(dict(zip(columns, row)), default=jsonable) + "\n")
        out.flush()
        return
    first = True
    for row in rows:
        text = json.dumps(dict(zip(columns, row)), indent=2, default=jsonable).replace("\n", "\n  ")
        out.write(("[\n  " if first else ",\n  ") + text)
        first = False
    out.write("[]\n" if first else "\n]\n")
    out.flush()


# ---------------------------------------------------------------- admin commands


def _strip_sql_comments(query: str) -> str:
    """``query`` without its ``-- ...`` and ``/* ... */`` comments (only used to spot an empty one)."""
    return re.sub(r"--[^\n]*|/\*.*?(\*/|\Z)", " ", query, flags=re.S)


@cli.command()
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Rows as a JSON list of objects.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Rows as JSON lines, one object per row.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV with a header line.")
@click.pass_context
def sql(ctx: click.Context, query: str, as_json: bool, as_jsonl: bool, as_csv: bool) -> None:
    """Run one read-only SQL QUERY against the store (views: runs_view, ...).

    The connection cannot write (read-only file, query_only, no ATTACH) and
    nothing is unpickled: binary values show as <N bytes>. Rows are printed
    as they are read, in constant memory (a table sizes its columns from the
    first 1000 rows), so `| head` returns at once.

    \b
    Example:
        runstore sql "SELECT pathspec, status, duration_s FROM runs_view ORDER BY run_id DESC LIMIT 5"
        runstore sql --csv "SELECT * FROM runs_view" > runs.csv
    """
    if as_json + as_jsonl + as_csv > 1:
        raise click.UsageError("use one of --json, --jsonl or --csv, not several")
    if not _strip_sql_comments(query).strip(" \t\r\n\f;"):
        raise click.UsageError("QUERY is empty; give one SQL statement, e.g. \"SELECT * FROM runs_view\"")
    store = open_store(ctx, readonly=True)
    with store.sql_stream(query) as result:
        if as_json or as_jsonl:
            _echo_json_rows(result.columns, result.rows, lines=as_jsonl)
        elif as_csv:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(result.columns)
            writer.writerows([_cell(v, None) for v in row] for row in result.rows)
            sys.stdout.flush()
        else:
            _echo_table(result.columns, result.rows)


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.pass_context
def backup(ctx: click.Context, out: str) -> None:
    """Write a consistent copy of the whole store to OUT (a new file).

    Safe while runs are writing (SQLite's online backup API).

    \b
    Example:
        runstore backup ~/backups/project-2026-11-23.db
    """
    store = open_store(ctx, readonly=True)
    click.echo(f"backed up {store.where} to {store.backup(out)}")


@cli.command()
@click.argument("pathspecs", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Also delete runs that still look running (a stuck run).")
@click.pass_context
def delete(ctx: click.Context, pathspecs: tuple[str, ...], yes: bool, force: bool) -> None:
    """Delete runs (Flow/N) or every run of a flow (Flow), with all they own.

    Blobs stay until `runstore gc` (other runs may share them). A run that is
    still going is refused unless --force (for a run stuck as running).

    \b
    Example:
        runstore delete TrainFlow/3 TrainFlow/4
        runstore delete --yes ScratchFlow
        runstore delete --yes --force TrainFlow/9
    """
    store = open_store(ctx)
    if not yes:
        click.confirm(f"Delete {', '.join(pathspecs)} from {store.where}?", abort=True, err=True)
    deleted = store.delete_runs(pathspecs, force=force)
    click.echo(f"deleted {len(deleted)} run(s): {', '.join(deleted)}")
    click.echo("run `runstore gc` to reclaim the space of values no other run uses")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be freed.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def gc(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Drop stored values no run or code package uses, and shrink the file.

    Values written by a run that is still going are kept (only data older than
    the oldest live run's start is collected).

    \b
    Example:
        runstore delete --yes TrainFlow/3 && runstore gc
        runstore gc --dry-run
    """
    store = open_store(ctx)
    report = store.gc(dry_run=dry_run, progress=_progress("collecting"))
    click.echo(json.dumps(asdict(report), indent=2) if as_json else report.summary())


@cli.command(name="export")
@click.argument("runs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="The new store file to write.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def export_cmd(ctx: click.Context, runs: tuple[str, ...], out: str, as_json: bool) -> None:
    """Write the chosen RUNS (Flow/N, or Flow for all its runs) to a new store file.

    The new file is self-contained: the runs keep their numbers and task ids, with
    their artifacts, logs, metadata, tags and code, and only the values they use.

    \b
    Example:
        runstore export TrainFlow/12 TrainFlow/15 -o best-runs.db
    """
    report = open_store(ctx, readonly=True).export_runs(runs, out, progress=_progress("exporting"))
    if as_json:
        echo_json(asdict(report))
    else:
        click.echo(f"{report.summary()} into {report.target}")


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("flows", nargs=-1)
@click.option("--namespace", "ns", default=None, help="Namespace to export (default: yours, user:<name>).")
@click.option("--all", "all_namespaces", is_flag=True, help="Runs of every namespace.")
@click.option("--replace", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def flatten(ctx: click.Context, out: str, flows: tuple[str, ...], ns: str | None, all_namespaces: bool,
            replace: bool, as_json: bool) -> None:
    """Write runs to OUT, a plain SQLite file (runs, tasks, artifacts) for Datasette or pandas.

    One row per run with a column per parameter (param_NAME) and per scalar
    artifact of the end step (artifact_NAME); tables tasks and artifacts; no
    runstore needed to read it. Without FLOW, every flow. Nothing is unpickled.

    \b
    Example:
        runstore flatten runs-flat.db TrainFlow --all
        datasette runs-flat.db
    """
    from ..flat import flatten as flatten_store
    from ..namespace import identity

    if ns is not None and all_namespaces:
        raise click.UsageError("use either --namespace or --all")
    store = open_store(ctx, readonly=True)
    chosen = None if all_namespaces else ns if ns is not None else identity()
    report = flatten_store(store, out, flows=flows, namespace=chosen, replace=replace)
    if as_json:
        echo_json(asdict(report))
        return
    click.echo(printable(report.summary()))
    for name, column in report.renamed.items():
        click.echo(printable(f"  {name} -> column {column}"))


@cli.command()
@click.argument("other", type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="The report (with the renumbering) as JSON.")
@click.option("--include-deleted", is_flag=True,
              help="Also copy runs that were deleted here before (by default they stay deleted).")
@click.pass_context
def merge(ctx: click.Context, other: str, as_json: bool, include_deleted: bool) -> None:
    """Import every run of the store OTHER into this one (idempotent).

    Runs keep their UUIDs and remember where they came from; a run number already
    taken here gets the flow's next number (the mapping is printed). Merging the
    same file again changes nothing. A run you deleted here is not brought back
    (it is listed as deleted) unless --include-deleted.

    \b
    Example:
        runstore --db mine.db merge colleague.db
    """
    report = open_store(ctx).merge_from(other, include_deleted=include_deleted,
                                        progress=_progress("merging"))
    if as_json:
        echo_json(asdict(report))
        return
    click.echo(printable(report.summary()))
    for old, new in report.renumbered.items():
        click.echo(printable(f"  {old} -> {new}"))
    if report.deleted:
        click.echo(printable(f"  not copied (deleted here before; --include-deleted to copy): "
                             f"{', '.join(report.deleted)}"))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def trust(file: str) -> None:
    """Trust every pickled value in the store FILE, so that loading them works.

    Loading a pickle can run any code its author chose: only trust files from
    people you trust. Trust is recorded with your personal secret and cannot be
    forged by the file's author. For a file you cannot write it is kept in your
    runstore home, under the store's UUID.

    \b
    Example:
        runstore trust ~/Downloads/colleague-runs.db
    """
    from ..store import Store

    # A file you cannot write is trusted in your home instead (runstore/trust.py).
    store = Store(file, create=False, readonly=not os.access(file, os.W_OK))
    try:
        count = store.trust_all()
    finally:
        store.close()
    click.echo(f"trusted {count} pickled value(s) in {Path(file).resolve()}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--deep", is_flag=True,
              help="Also re-hash every chunk and blob against its key (reads the whole file).")
@click.option("--reindex", is_flag=True, help="First rebuild every index (the fix for damaged indexes).")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, deep: bool, reindex: bool) -> None:
    """Check the store's integrity and consistency; exit 1 when something is wrong.

    Checks that every table, view, index and trigger is one runstore made, SQLite
    integrity (damaged indexes with their fix) and foreign keys, missing chunks and
    blobs, and reports runs left running by a process that is gone, WAL size and
    reclaimable space. With --deep, every stored chunk and value is re-hashed, and
    each one altered or damaged is named with the runs and artifacts that use it.
    Never changes, migrates or unpickles anything (except --reindex); an altered,
    damaged or older file is opened read-only to report on it.

    \b
    Example:
        runstore doctor
        runstore doctor --deep
        runstore doctor --reindex
    """
    if reindex:
        open_store(ctx).reindex()
    store = open_store(ctx, diagnose=True)
    report = store.doctor(deep=deep)
    if as_json:
        echo_json({"ok": report.ok, **asdict(report)})
    else:
        click.echo(f"store: {store.where}")
        click.echo("  " + ", ".join(f"{k}={v}" for k, v in report.facts.items()))
        for line in report.problems:
            click.echo(f"PROBLEM: {printable(line)}")
        for line in report.warnings:
            click.echo(f"warning: {printable(line)}")
        click.echo("ok" if report.ok else f"{len(report.problems)} problem(s) found")
    ctx.exit(0 if report.ok else 1)


# ---------------------------------------------------------------- looking at runs


def _when(value: Any) -> str:
    """ISO-8601 UTC, like the SQL views (client datetimes are UTC)."""
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(run_or_task: Any) -> float | None:
    created, finished = run_or_task.created_at, run_or_task.finished_at
    return None if created is None or finished is None else (finished - created).total_seconds()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


_PREVIEW_BYTES = 4096


def _preview(artifact: Any, limit: int = 60, size: int | None = None) -> str:
    """A short value for people: only small JSON values are decoded (never a pickle).

    "Small" is the size the chunks verify (``Store.value_size``), never the size the
    artifact row claims, and the load itself refuses anything larger (SPEC §13.3).
    """
    store = artifact.store
    if size is None:
        size = store.value_size(artifact.sha)
    if artifact.encoding == "json" and size <= _PREVIEW_BYTES:
        # ensure_ascii=False: "héllo ✓", not "h\u00e9llo \u2713" (the caller escapes what is unsafe)
        text = json.dumps(store.load_value(artifact.sha, "json", max_size=_PREVIEW_BYTES), ensure_ascii=False)
        return text if display_width(text) <= limit else fit_width(text, limit)
    if artifact.encoding == "safepickle" and size <= _PREVIEW_BYTES:  # safe to load: no trust needed
        from ..util import short_repr

        try:
            text = short_repr(store.load_value(artifact.sha, "safepickle", max_size=_PREVIEW_BYTES), 4 * limit)
        except (UntrustedArtifact, CodecError) as exc:  # a refused (hostile) value: say so, show the rest
            return f"<{artifact.type}, {size} B, refused: {exc.headline.lower()}>"
        return text if display_width(text) <= limit else fit_width(text, limit)
    return f"<{artifact.type}, {size} B>"


def _artifact_rows(task: Any) -> list[dict[str, Any]]:
    rows = []
    for a in sorted(task, key=lambda a: a.id):
        size = a.store.value_size(a.sha)
        rows.append({"name": a.id, "type": a.type, "encoding": a.encoding, "size": size,
                     "value": _preview(a, size=size)})
    return rows


def _parameters(run: Any) -> dict[str, str]:
    if "_parameters" not in run:
        return {}
    task = run["_parameters"].task
    return {} if task is None else {a.id: _preview(a) for a in sorted(task, key=lambda a: a.id)
                                     if not a.id.startswith("_")}


@cli.command()
@click.argument("flow", required=False)
@click.option("--tag", "tags", multiple=True, help="Only runs carrying this tag (repeatable: all of them).")
@click.option("--namespace", "ns", default=None, help="Namespace to list (default: yours, user:<name>).")
@click.option("--all", "all_namespaces", is_flag=True, help="Runs of every namespace.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1, max=10**9),
              help="At most N runs.")
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None,
              help="Only runs with this status.")
@click.option("--json", "as_json", is_flag=True, help="Runs as a JSON list.")
@click.pass_context
def runs(ctx: click.Context, flow: str | None, tags: tuple[str, ...], ns: str | None, all_namespaces: bool,
         limit: int, status: str | None, as_json: bool) -> None:
    """List runs, newest first: pathspec, status, start, duration, user, tags.

    Without FLOW, the runs of every flow. Status 'crashed' means the run's
    process is gone; 'interrupted' that Ctrl-C or SIGTERM stopped it. Nothing
    is unpickled.

    \b
    Example:
        runstore runs TrainFlow --tag baseline --limit 5
        runstore runs --all --json --status interrupted
    """
    from .. import client
    from ..namespace import default_namespace, get_namespace, namespace

    if ns is not None and all_namespaces:
        raise click.UsageError("use either --namespace or --all")
    store = open_store(ctx, readonly=True)
    namespace(None) if all_namespaces else namespace(ns) if ns is not None else default_namespace()
    flows = [client.Flow(flow, store=store)] if flow else client.Runstore(store=store).flows
    found = [run for f in flows for run in itertools.islice(
        (r for r in f.runs(*tags) if status is None or r.status == status), limit)]
    found = sorted(found, key=lambda r: r.created_at, reverse=True)[:limit]
    rows = [{"pathspec": r.pathspec, "flow": r.parent.id, "run_number": r.run_number, "uuid": r.uuid,
             "status": r.status, "created_at": _when(r.created_at), "finished_at": _when(r.finished_at),
             "duration_s": None if _seconds(r) is None else round(_seconds(r), 3), "user": r.user,
             "tags": sorted(r.user_tags)} for r in found]
    if as_json:
        echo_json(rows)
    elif rows:
        _echo_table(["pathspec", "status", "started", "duration", "user", "tags"],
                    [[r["pathspec"], r["status"], r["created_at"],
                      _duration(r["duration_s"]), r["user"],
                      " ".join(r["tags"])] for r in rows])
    else:
        current = get_namespace()
        where = "" if current is None else f" in namespace {current} (--all shows every namespace)"
        click.echo(printable(f"no runs{where}"), err=True)


@cli.command(name="card")
@click.argument("pathspec")
@click.option("--id", "card_id", default=None, help="The card with this @card(id=...) (default: the first).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the card to this file (default: standard output).")
@click.option("--list", "list_only", is_flag=True, help="List the task's cards instead.")
@click.pass_context
def card_cmd(ctx: click.Context, pathspec: str, card_id: str | None, out: str | None, list_only: bool) -> None:
    """Get a card of a task (Flow/N/step/ID, or Flow/N/step for its first task) as one HTML file.

    The file is self-contained (charts included) and works offline. Cards are
    HTML written by whoever ran the task: open a foreign one in `runstore ui`,
    which shows it sandboxed.

    \b
    Example:
        runstore card TrainFlow/12/train --id report -o report.html
        runstore card TrainFlow/12/train/1043 --list
    """
    from ..cards import _cli as cards_cli

    global_namespace()
    task = cards_cli.find_task(open_store(ctx, readonly=True), pathspec)
    if list_only:
        for line in cards_cli.describe_cards(list(cards_cli.get_cards(task))):
            click.echo(line)
        return
    chosen, others = cards_cli.choose_card(task, card_id)
    if out is None:
        click.echo(chosen.get(), nl=False)
    else:
        cards_cli.write_card(chosen, out)
    if others and card_id is None:
        click.echo(f"({len(others)} more card(s): {', '.join(cards_cli.describe_cards(others))}; choose with --id)",
                   err=True)


@cli.command()
@click.argument("pathspec")
@click.option("--json", "as_json", is_flag=True, help="Everything shown, as JSON.")
@click.pass_context
def show(ctx: click.Context, pathspec: str, as_json: bool) -> None:
    """Show a flow's runs (Flow), a run (Flow/N), step (Flow/N/step) or task (Flow/N/step/ID).

    Status, timings, parameters, tags, origin, and artifacts with type, encoding
    and size. Only small JSON values are displayed; nothing is unpickled. For a
    flow: its latest 20 runs of every namespace, as `runstore runs Flow --all`.

    \b
    Example:
        runstore show TrainFlow
        runstore show TrainFlow/12
        runstore show TrainFlow/12/train/1043 --json
    """
    from .. import client

    if not pathspec.strip("/"):
        from ..errors import InvalidPathspec

        raise InvalidPathspec("PATHSPEC is empty; give Flow, Flow/N, Flow/N/step or Flow/N/step/ID")
    if "/" not in pathspec.strip("/"):  # a flow: the user named it, so every namespace
        ctx.invoke(runs, flow=pathspec.strip("/"), tags=(), ns=None, all_namespaces=True, limit=20, as_json=as_json)
        return
    obj = client_object("any", pathspec, open_store(ctx, readonly=True))
    seconds = _seconds(obj)
    info: dict[str, Any] = {"pathspec": obj.pathspec, "status": getattr(obj, "status", None),
                            "created_at": _when(obj.created_at), "finished_at": _when(obj.finished_at),
                            "duration_s": None if seconds is None else round(seconds, 3)}
    if isinstance(obj, client.Run):
        source = obj.store.sql("SELECT source_store || ' run ' || source_run_number FROM runs WHERE uuid = ?",
                                (obj.uuid,)).rows
        info.update(uuid=obj.uuid, user=obj.user, namespace=obj.namespace, origin=obj.origin_pathspec,
                    merged_from=source[0][0] if source else None,
                    user_tags=sorted(obj.user_tags), system_tags=sorted(obj.system_tags),
                    parameters=_parameters(obj),
                    steps=[{"step": s.id, "tasks": len(list(s)), "status": ",".join(sorted({t.status for t in s}))}
                           for s in reversed(list(obj))])
        end = obj.end_task
        info["artifacts"] = _artifact_rows(end) if end is not None else []
    elif isinstance(obj, client.Step):
        info["tasks"] = [{"task": t.pathspec, "status": t.status, "attempt": t.current_attempt,
                          "index": t.index, "started": _when(t.created_at)} for t in reversed(list(obj))]
    else:
        exc = obj.exception
        info.update(attempt=obj.current_attempt, index=obj.index, foreach_path=obj.foreach_path,
                    origin=obj.origin_pathspec, exception=None if exc is None else str(exc),
                    metadata=obj.metadata_dict, artifacts=_artifact_rows(obj),
                    stdout_bytes=obj.stdout_size, stderr_bytes=obj.stderr_size)
    if as_json:
        echo_json(info)
        return
    tables: dict[str, list[dict[str, Any]]] = {}
    for key in ("parameters", "steps", "tasks", "artifacts", "metadata"):
        values = info.pop(key, None)
        tables[key] = [{"name": k, "value": v} for k, v in values.items()] if isinstance(values, dict) else values
    for key, value in info.items():
        if value not in (None, "", []):
            text = " ".join(value) if isinstance(value, list) else value
            click.echo(f"{key:<13} {printable(text, multiline=key == 'exception')}")  # a traceback keeps its lines
    for title, rows in tables.items():
        if rows:
            click.echo(f"\n{title}:")
            _echo_table(list(rows[0]), [list(r.values()) for r in rows])


cli.add_command(logs_command(), "logs")
cli.add_command(runstore_tag_group, "tag")


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.pass_context
def diff(ctx: click.Context, run_a: str, run_b: str) -> None:
    """Compare two runs: parameters, results (scalar artifacts), environment, and code.

    Results are the end task's small JSON scalars (numbers, strings, booleans),
    marked changed, added or removed; nothing is unpickled. The code is shown as
    a unified diff.

    \b
    Example:
        runstore diff TrainFlow/11 TrainFlow/12
    """
    store = open_store(ctx, readonly=True)
    a, b = client_object("run", run_a, store), client_object("run", run_b, store)
    params_a, params_b = _parameters(a), _parameters(b)
    sections = [("parameters", params_a, params_b),
                ("artifacts", _scalars(a, skip=params_a), _scalars(b, skip=params_b)),
                ("environment", _environment(a), _environment(b))]
    for title, left, right in sections:
        changed = [(k, left.get(k, ""), right.get(k, ""),
                    "added" if k not in left else "removed" if k not in right else "changed")
                   for k in sorted({*left, *right}) if left.get(k) != right.get(k)]
        click.echo(f"{title}: " + ("same" if not changed else ""))
        if changed:
            _echo_table(["name", a.pathspec, b.pathspec, "change"], changed)
    code_a, code_b = a.code, b.code
    text_a = code_a.flowspec if code_a is not None else ""
    text_b = code_b.flowspec if code_b is not None else ""
    lines = list(difflib.unified_diff(
        (text_a or "").splitlines(keepends=True), (text_b or "").splitlines(keepends=True),
        fromfile=f"{a.pathspec}/{code_a.script_name if code_a else 'code'}",
        tofile=f"{b.pathspec}/{code_b.script_name if code_b else 'code'}"))
    click.echo("code: " + ("same" if not lines else ""))
    for line in lines:
        click.echo(printable(line, multiline=True), nl=not line.endswith("\n"))


@cli.command()
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback must be given explicitly and prints a warning.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option("--allow-tag-edits", is_flag=True, help="Let the run page add and remove user tags.")
@click.pass_context
def ui(ctx: click.Context, port: int, host: str, open_browser: bool, allow_tag_edits: bool) -> None:
    """Browse the store in a local web app (needs: pip install 'runstore[ui]').

    \b
    Example:
        runstore --db results.db ui --port 8765 --open
    """
    from ..ui import serve

    explicit = ctx.get_parameter_source("host") is click.core.ParameterSource.COMMANDLINE
    serve(open_store(ctx, readonly=not allow_tag_edits), host=host, port=port, open_browser=open_browser,
          allow_tag_edits=allow_tag_edits, explicit_host=explicit)


def _last_task(run: Any) -> Any:
    """The end task, else the newest step's task (a failed run), else None."""
    task = run.end_task
    if task is None:
        steps = [s for s in run]
        task = steps[-1].task if steps else None
    return task


def _scalars(run: Any, skip: dict[str, str]) -> dict[str, str]:
    """The run's results for `diff`: public small JSON scalars of its last task (never a pickle)."""
    task = _last_task(run)
    found: dict[str, str] = {}
    for artifact in [] if task is None else sorted(task, key=lambda a: a.id):
        if artifact.id in skip or artifact.encoding != "json":
            continue
        if artifact.store.value_size(artifact.sha) > _PREVIEW_BYTES:
            continue
        value = artifact.store.load_value(artifact.sha, "json", max_size=_PREVIEW_BYTES)
        if value is None or isinstance(value, (bool, int, float, str)):
            found[artifact.id] = json.dumps(value, ensure_ascii=False)
    return found


def _environment(run: Any) -> dict[str, str]:
    task = _last_task(run)
    if task is None:
        return {}
    meta = task.metadata_dict
    keys = ("python_version", "runstore_version", "platform", "user", "runtime", "git-info")
    return {k: meta[k] for k in keys if k in meta}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``runstore`` console script.

    Example
    -------
    >>> main(["version"])  # doctest: +SKIP
    0.1.0
    """
    cli.main(args=argv, prog_name="runstore", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
