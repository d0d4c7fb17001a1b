"""What ``python flow.py run`` and ``resume`` share: their options and how they end.

Example
-------
>>> import click
>>> @click.command()
... @launch_options
... def go(**options):
...     pass
>>> sorted(p.name for p in go.params)
['dask_address', 'executor', 'max_num_splits', 'max_workers', 'run_id_file', 'tags', 'user_namespace',
 'with_decorators']
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

__all__ = ["launch_options", "run_id_writer", "exit_with", "MAX_WORKERS", "MAX_NUM_SPLITS"]

MAX_WORKERS = 1024  # more processes than any laptop wants; a typo like 10**20 is a usage error
MAX_NUM_SPLITS = 10**9


def launch_options(func: Any) -> Any:
    """The options ``run`` and ``resume`` share: --tag, --max-workers, --max-num-splits,
    --namespace, --run-id-file, --executor, --dask-address, --with."""
    for option in reversed([
        click.option("--tag", "tags", multiple=True, help="A user tag for the run (repeatable)."),
        click.option("--max-workers", type=click.IntRange(min=1, max=MAX_WORKERS), default=None,
                     help="Tasks run at once [default: number of CPUs]."),
        click.option("--max-num-splits", type=click.IntRange(min=1, max=MAX_NUM_SPLITS), default=100,
                     help="Most children one foreach may create."),
        click.option("--namespace", "user_namespace", default=None,
                     help="Client namespace inside steps ('' = global)."),
        click.option("--run-id-file", type=click.Path(dir_okay=False), default=None,
                     help="Write the run number to this file when the run starts."),
        click.option("--executor", type=click.Choice(["local", "dask"], case_sensitive=False), default=None,
                     help="Where tasks run [default: RUNSTORE_EXECUTOR, else local] (docs/executors.md)."),
        click.option("--dask-address", default=None, metavar="ADDRESS",
                     help="Dask scheduler, e.g. tcp://HOST:8786 [default: RUNSTORE_DASK_ADDRESS, "
                          "else a local cluster for the run]."),
        click.option("--with", "with_decorators", multiple=True, metavar="DECORATOR[:k=v,...]",
                     callback=_check_with,
                     help="Add a decorator to every step without it, e.g. --with retry, "
                          "--with timeout:seconds=5 (repeatable)."),
    ]):
        func = option(func)
    return func


def _check_with(ctx: click.Context, param: Any, value: tuple[str, ...]) -> tuple[str, ...]:
    """Reject a bad ``--with`` spec as a usage error, before the store is opened."""
    from ..errors import FlowDefinitionError
    from ..runtime.scheduler import parse_with

    try:
        parse_with(value)
    except FlowDefinitionError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return value


def run_id_writer(run_id_file: str | None) -> Any:
    """The ``on_run_created`` callback of ``--run-id-file`` (None without the option)."""
    if not run_id_file:
        return None

    def created(record: Any) -> None:
        with open(run_id_file, "w") as fh:
            fh.write(str(record.run_number))

    return created


def exit_with(ctx: click.Context, store: Any, outcome: Any) -> None:
    """End a ``run``/``resume`` command: exit 0 when the run succeeded, else 1."""
    code = 0 if outcome.successful else 1
    if not outcome.successful and ctx.obj["quiet"]:
        for line in outcome.failed_steps:
            click.echo(line, err=True)
    if outcome.used_workers:
        # No user code ran in this process (it ran in the workers), and the run is
        # committed and checkpointed: skip interpreter teardown, which costs more
        # than the run itself for small flows.
        store.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    ctx.exit(code)
