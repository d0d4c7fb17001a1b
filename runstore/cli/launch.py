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

__all__ = ["launch_options", "run_id_writer", "exit_with", "MAX_WORKERS", "MAX_NUM_SPLITS", "config_options",
           "launch_from", "LAUNCH_KEYS"]

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


#: The keyword names of the options :func:`config_options` adds.
LAUNCH_KEYS = ("launch_config", "launch_config_value", "launch_branch", "launch_production")


def config_options(flow_class: Any, taken: Any = ()) -> list[click.Option]:
    """``--config NAME FILE``, ``--config-value NAME JSON`` and, for a ``@project`` flow,
    ``--branch NAME``/``--production``: on the flow's command line itself (as in Metaflow,
    ``python flow.py --branch b run``) and on ``run``/``resume``/``deploy``/``trigger``.

    An option a flow parameter already uses on that command (``Parameter("config")``)
    is left out there; the same option before the command still works.
    """
    from ..project import PROJECT_ATTR

    options = []
    if "--config" not in taken:
        options.append(click.Option(["--config", "launch_config"], nargs=2, multiple=True, metavar="NAME FILE",
                                    help="Read config NAME from FILE (JSON unless the Config has a parser; repeatable)."))
    if "--config-value" not in taken:
        options.append(click.Option(["--config-value", "launch_config_value"], nargs=2, multiple=True,
                                    metavar="NAME JSON", help="Give config NAME as JSON text (repeatable)."))
    if getattr(flow_class, PROJECT_ATTR, None) is not None:
        if "--branch" not in taken:
            options.append(click.Option(["--branch", "launch_branch"], default=None, metavar="NAME",
                                        help="Run on the @project branch test.NAME (prod.NAME with --production)."))
        if "--production" not in taken:
            options.append(click.Option(["--production", "launch_production"], is_flag=True, default=None,
                                        help="Run on the @project production branch (prod)."))
    return options


def launch_from(ctx: click.Context, options: dict[str, Any]) -> Any:
    """The ``LaunchOptions`` of a command: its own config/branch options over the flow command's.

    Pops the :data:`LAUNCH_KEYS` from ``options`` (a command's keyword arguments).
    """
    from ..runtime.configs import LaunchOptions

    outer = (ctx.obj or {}).get("launch", {})
    own = {key: options.pop(key, None) for key in LAUNCH_KEYS}
    files = dict(outer.get("launch_config") or ())
    files.update(dict(own["launch_config"] or ()))
    values = dict(outer.get("launch_config_value") or ())
    values.update(dict(own["launch_config_value"] or ()))
    branch = own["launch_branch"] if own["launch_branch"] is not None else outer.get("launch_branch")
    production = bool(own["launch_production"] or outer.get("launch_production"))
    return LaunchOptions(files, values, branch, production)


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
