"""``python flow.py resume [STEP]``: the click layer over :func:`runstore.runtime.resume.resume`.

Example
-------
::

    $ python flow.py resume
    $ python flow.py resume train --origin-run-id 3
"""

from __future__ import annotations

from typing import Any

import click

from ..flowspec import FlowSpec
from ..runtime.resume import resume
from .launch import config_options, exit_with, launch_from, launch_options, run_id_writer

__all__ = ["resume_command"]


def resume_command(flow_class: type[FlowSpec]) -> click.Command:
    """The ``resume`` command of a flow's command line."""

    @click.command(context_settings={"show_default": True})
    @click.argument("step", required=False)
    @click.option("--origin-run-id", default=None,
                  help="Run to resume [default: your latest 'run' of this flow, successful or not].")
    @launch_options
    @click.pass_context
    def command(ctx: click.Context, step: str | None, origin_run_id: str | None, tags: tuple[str, ...],
                max_workers: int | None, max_num_splits: int, user_namespace: str | None,
                run_id_file: str | None, executor: str | None, dask_address: str | None,
                with_decorators: tuple[str, ...], **launch: Any) -> None:
        """Run the flow again, reusing the successful tasks of an earlier run.

        Without STEP, every task that succeeded before the first failure is cloned
        (rows only, no data copied) and the rest runs; with STEP, STEP and everything
        after it runs again. Parameters are those of the origin run, and so are
        configs unless given again (--config/--config-value).

        \b
        Example:
            python flow.py resume
            python flow.py resume train --origin-run-id 3
        """
        store = ctx.obj["store"]()
        outcome = resume(flow_class, store, step=step, origin_run_id=origin_run_id, tags=list(tags),
                         max_workers=max_workers, max_num_splits=max_num_splits, namespace=user_namespace,
                         namespace_given=user_namespace is not None, quiet=ctx.obj["quiet"],
                         on_run_created=run_id_writer(run_id_file), executor=executor,
                         dask_address=dask_address, with_decorators=with_decorators,
                         launch=launch_from(ctx, launch))
        exit_with(ctx, store, outcome)

    command.params.extend(config_options(flow_class))
    command.name = "resume"
    return command
