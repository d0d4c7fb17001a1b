"""The ``runstore`` command: a thin click layer over the library.

Every command opens the store (``--db`` > ``RUNSTORE_DB`` > discovery), calls one
library method and prints the result. Errors are one line on stderr and exit
non-zero, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__
from .errors import RunstoreError

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
