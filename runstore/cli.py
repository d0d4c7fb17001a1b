"""The ``runstore`` command: a thin click layer over the library.

Every command opens the store (``--db`` > ``RUNSTORE_DB`` > discovery), calls one
library method and prints the result. Errors are one line on stderr and exit
non-zero, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from . import __version__
from .errors import RunstoreError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["main", "cli"]


class _Group(click.Group):
    """Turns every RunstoreError into one line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunstoreError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="runstore")
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


@cli.command()
def version() -> None:
    """Print runstore's version.

    \b
    Example:
        runstore version
    """
    click.echo(__version__)


# ---------------------------------------------------------------- helpers


def _open_store(ctx: click.Context, *, readonly: bool = False) -> "Store":
    """The store named by --db / RUNSTORE_DB / discovery; never creates one."""
    from .errors import StoreError
    from .store import Store, discover_path

    path, found = discover_path((ctx.find_root().obj or {}).get("db"))
    if str(path) == ":memory:":
        raise StoreError("--db :memory: makes a new empty store; name a file")
    if not found or not path.exists():
        raise StoreError(f"no store at {path}; pass --db PATH or set RUNSTORE_DB")
    return Store(path, readonly=readonly, create=False)


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A stderr counter for long operations (only on a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total}", err=True, nl=done >= total)

    return show


def _cell(value: Any, width: int | None = 60) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    text = "" if value is None else str(value)
    if width is None:
        return text
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def _echo_table(columns: list[str], rows: list[Sequence[Any]]) -> None:
    """Print rows as an aligned text table (the default human output)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _jsonable(value: Any) -> Any:
    return f"<{len(value)} bytes>" if isinstance(value, (bytes, bytearray, memoryview)) else value


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_jsonable))


# ---------------------------------------------------------------- admin commands


@cli.command()
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Rows as a JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV with a header line.")
@click.pass_context
def sql(ctx: click.Context, query: str, as_json: bool, as_csv: bool) -> None:
    """Run one read-only SQL QUERY against the store (views: runs_view, ...).

    The connection cannot write (read-only file, query_only, no ATTACH) and
    nothing is unpickled: binary values show as <N bytes>.

    \b
    Example:
        runstore sql "SELECT pathspec, status, duration_s FROM runs_view ORDER BY run_id DESC LIMIT 5"
        runstore sql --csv "SELECT * FROM runs_view" > runs.csv
    """
    store = _open_store(ctx, readonly=True)
    result = store.sql(query)
    if as_json:
        _echo_json(result.as_dicts())
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_cell(v, None) for v in row] for row in result.rows])
        click.echo(buffer.getvalue(), nl=False)
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
    store = _open_store(ctx, readonly=True)
    click.echo(f"backed up {store.where} to {store.backup(out)}")


@cli.command()
@click.argument("pathspecs", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, pathspecs: tuple[str, ...], yes: bool) -> None:
    """Delete runs (Flow/N) or every run of a flow (Flow), with all they own.

    Blobs stay until `runstore gc` (other runs may share them).

    \b
    Example:
        runstore delete TrainFlow/3 TrainFlow/4
        runstore delete --yes ScratchFlow
    """
    store = _open_store(ctx)
    if not yes:
        click.confirm(f"Delete {', '.join(pathspecs)} from {store.where}?", abort=True, err=True)
    deleted = store.delete_runs(pathspecs)
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
    store = _open_store(ctx)
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
    report = _open_store(ctx, readonly=True).export_runs(runs, out, progress=_progress("exporting"))
    if as_json:
        _echo_json(asdict(report))
    else:
        click.echo(f"{report.summary()} into {report.target}")


@cli.command()
@click.argument("other", type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="The report (with the renumbering) as JSON.")
@click.pass_context
def merge(ctx: click.Context, other: str, as_json: bool) -> None:
    """Import every run of the store OTHER into this one (idempotent).

    Runs keep their UUIDs and remember where they came from; a run number already
    taken here gets the flow's next number (the mapping is printed). Merging the
    same file again changes nothing.

    \b
    Example:
        runstore --db mine.db merge colleague.db
    """
    report = _open_store(ctx).merge_from(other, progress=_progress("merging"))
    if as_json:
        _echo_json(asdict(report))
        return
    click.echo(report.summary())
    for old, new in report.renumbered.items():
        click.echo(f"  {old} -> {new}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def trust(file: str) -> None:
    """Trust every pickled value in the store FILE, so that loading them works.

    Loading a pickle can run any code its author chose: only trust files from
    people you trust. Trust is recorded with your personal secret and cannot be
    forged by the file's author.

    \b
    Example:
        runstore trust ~/Downloads/colleague-runs.db
    """
    from .store import Store

    count = Store(file, create=False).trust_all()
    click.echo(f"trusted {count} pickled value(s) in {Path(file).resolve()}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the store's integrity and consistency; exit 1 when something is wrong.

    Checks SQLite integrity and foreign keys, missing chunks and blobs, and
    reports runs left running by a process that is gone, WAL size and reclaimable
    space. Never changes or unpickles anything.

    \b
    Example:
        runstore doctor
    """
    store = _open_store(ctx, readonly=True)
    report = store.doctor()
    if as_json:
        _echo_json({"ok": report.ok, **asdict(report)})
    else:
        click.echo(f"store: {store.where}")
        click.echo("  " + ", ".join(f"{k}={v}" for k, v in report.facts.items()))
        for line in report.problems:
            click.echo(f"PROBLEM: {line}")
        for line in report.warnings:
            click.echo(f"warning: {line}")
        click.echo("ok" if report.ok else f"{len(report.problems)} problem(s) found")
    ctx.exit(0 if report.ok else 1)


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
