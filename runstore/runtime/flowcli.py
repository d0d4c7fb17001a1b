"""The command line of a flow file: ``python flow.py [--db PATH] [--quiet] COMMAND``.

Commands: run, resume, show, check, logs, dump, tag, deploy, trigger (resume lives
in :mod:`.resume`, deploy and trigger in :mod:`.deploycmd`).

Every flow gets the same commands; each flow parameter becomes a ``--<name>``
option of ``run``. A bad value is a usage error (exit 2) and nothing is stored; a
broken graph is one line naming the step and line (exit 2) before anything runs.

Example
-------
::

    $ python hello_flow.py run --tag first
    $ python hello_flow.py logs 1/start
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .._clickutil import OneLineErrors, echo_error
from ..errors import NotFound, ParameterError, RunstoreError

__all__ = ["main", "make_cli"]

MAX_WORKERS = 1024  # more processes than any laptop wants; a typo like 10**20 is a usage error
MAX_NUM_SPLITS = 10**9


class _ParamType(click.ParamType):
    """Click type that checks a value with ``Parameter.convert`` (usage error on a bad value).

    The raw text is passed on unconverted: ``resolve_parameters`` converts it, once. Handing
    on the converted value made ``--cfg null`` (JSON ``null`` is ``None``) look like "not
    given" and take the default (issue #12), and a separator split the text twice.
    """

    def __init__(self, param: Any) -> None:
        self.param = param
        self.name = param.type_name

    def convert(self, value: Any, option: Any, ctx: Any) -> Any:
        try:
            self.param.convert(value)
        except ParameterError as exc:
            self.fail(str(exc), option, ctx)
        return value


def _param_option(param: Any) -> click.Option:
    help_text = param.help or ""
    default = param.default
    if param.show_default and default is not None and not callable(default):
        help_text = f"{help_text} [default: {default}]".strip()
    if param.required:
        help_text = f"{help_text} [required]".strip()
    ptype: click.ParamType = click.Path(dir_okay=False) if param.IS_INCLUDE_FILE else _ParamType(param)
    # Required is checked by resolve_parameters (same message), so that `run --clone`
    # can take a required value from the cloned run.
    return click.Option([param.option, f"p__{param.attr_name}"], type=ptype, default=None,
                        required=False, help=help_text or None)


def _open_store(db: str | None) -> Any:
    from ..store import Store

    return Store(db) if db else Store()


def launch_options(func: Any) -> Any:
    """The options ``run`` and ``resume`` share: --tag, --max-workers, --max-num-splits,
    --namespace, --run-id-file."""
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
    ]):
        func = option(func)
    return func


def run_id_writer(run_id_file: str | None) -> Any:
    """The ``on_run_created`` callback of ``--run-id-file`` (None without the option)."""
    if not run_id_file:
        return None

    def created(record: Any) -> None:
        with open(run_id_file, "w") as fh:
            fh.write(str(record.run_number))

    return created


def make_cli(flow_class: Any) -> click.Group:
    """Build the click group for ``flow_class`` (checks the graph first)."""
    graph = flow_class._graph()
    params = flow_class._parameters()
    name = flow_class.__name__

    @click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]},
                 help=(flow_class.__doc__ or f"The {name} flow.").strip())
    @click.option("--db", type=click.Path(dir_okay=False), default=None, envvar="RUNSTORE_DB",
                  help="Store file (default: RUNSTORE_DB, else the nearest runstore.db, else ./runstore.db).")
    @click.option("--quiet", is_flag=True, help="Print nothing but errors.")
    @click.pass_context
    def cli(ctx: click.Context, db: str | None, quiet: bool) -> None:
        opened: list[Any] = []

        def store() -> Any:  # opened on first use; the `tag` commands find it here too
            if not opened:
                opened.append(_open_store(db))
            return opened[0]

        ctx.obj = {"db": db, "quiet": quiet, "store": store}

    @cli.command(context_settings={"show_default": True})
    @launch_options
    @click.option("--clone", default=None, metavar="RUN",
                  help="Take the parameter values of run RUN (those given here win).")
    @click.pass_context
    def run(ctx: click.Context, tags: tuple[str, ...], max_workers: int | None, max_num_splits: int,
            user_namespace: str | None, run_id_file: str | None, clone: str | None, **kwargs: Any) -> None:
        """Run the flow.

        \b
        Example:
            python flow.py run --tag first --max-workers 4
        """
        from ..tags import validate_tags
        from .runner import execute, resolve_parameters

        validate_tags(list(tags))
        given = {k[3:]: v for k, v in kwargs.items() if k.startswith("p__") and v is not None}
        try:
            if clone is None:
                values = resolve_parameters(flow_class, given)
            else:
                from .resume import clone_parameters

                values = clone_parameters(flow_class, ctx.obj["store"](), clone, given)
        except ParameterError as exc:
            raise click.UsageError(str(exc), ctx) from None
        store = ctx.obj["store"]()
        outcome = execute(flow_class, store, values, tags=list(tags), max_workers=max_workers,
                          max_num_splits=max_num_splits, namespace=user_namespace,
                          namespace_given=user_namespace is not None, quiet=ctx.obj["quiet"],
                          on_run_created=run_id_writer(run_id_file))
        exit_with(ctx, store, outcome)

    for param in params:
        run.params.append(_param_option(param))

    @cli.command()
    def show() -> None:
        """Describe the flow's steps and how they connect.

        \b
        Example:
            python flow.py show
        """
        if flow_class.__doc__:
            click.echo(flow_class.__doc__.strip() + "\n")
        click.echo(graph.describe(), nl=False)
        if params:
            click.echo("\nParameters:")
            for p in params:
                click.echo(f"    {p.option} ({p.type_name}, default {p.default!r}){': ' + p.help if p.help else ''}")

    @cli.command()
    @click.pass_context
    def check(ctx: click.Context) -> None:
        """Check the flow's graph (done before every command anyway).

        \b
        Example:
            python flow.py check
        """
        if not ctx.obj["quiet"]:
            click.echo(f"Validating {name}... the graph looks good ({len(graph.nodes)} steps).")

    @cli.command()
    @click.argument("pathspec")
    @click.option("--stderr", "which", flag_value="stderr", help="Show stderr instead of stdout.")
    @click.option("--stdout", "which", flag_value="stdout", default=True, help="Show stdout (default).")
    @click.pass_context
    def logs(ctx: click.Context, pathspec: str, which: str) -> None:
        """Print the captured output of RUN/STEP or RUN/STEP/TASK.

        \b
        Example:
            python flow.py logs 3/start
        """
        store = ctx.obj["store"]()
        tasks = _tasks_of(store, name, pathspec)
        for task in tasks:
            record = store.attempt_record(task["task_id"]) or {}
            text = record.get(which) or ""
            if len(tasks) > 1:
                click.echo(f"--- {name}/{pathspec.split('/')[0]}/{task['step']}/{task['task_id']} ---")
            click.echo(text, nl=False)

    @cli.command()
    @click.argument("pathspec")
    @click.option("--max-value-size", type=click.IntRange(min=0, max=2**62), default=1000, help="Show values up to this many bytes.")
    @click.option("--private", is_flag=True, help="Also show artifacts whose names start with '_'.")
    @click.pass_context
    def dump(ctx: click.Context, pathspec: str, max_value_size: int, private: bool) -> None:
        """Print the artifacts of RUN/STEP or RUN/STEP/TASK.

        \b
        Example:
            python flow.py dump 3/end
        """
        store = ctx.obj["store"]()
        for task in _tasks_of(store, name, pathspec):
            click.echo(f"{name}/{pathspec.split('/')[0]}/{task['step']}/{task['task_id']}:")
            for art, ref in store.task_artifact_refs(task["task_id"]).items():
                if art.startswith("_") and not private:
                    continue
                if ref.size > max_value_size:
                    shown = "< artifact too large >"
                else:
                    try:
                        shown = repr(store.load_value(ref.blob_key, ref.encoding))
                    except RunstoreError as exc:
                        shown = f"< {exc.headline}: {exc} >"
                click.echo(f"    {art} [size: {ref.size} type: {ref.type}] = {shown}")

    from .deploycmd import deploy_command, trigger_command
    from .resume import resume_command

    cli.add_command(resume_command(flow_class), "resume")
    cli.add_command(deploy_command(flow_class), "deploy")
    cli.add_command(trigger_command(flow_class), "trigger")

    try:  # the `tag` commands live with the client (runstore/tagcmd.py)
        from ..tagcmd import make_tag_command
    except ImportError:
        pass
    else:
        cli.add_command(make_tag_command(name), "tag")
    return cli


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


def _tasks_of(store: Any, flow_name: str, pathspec: str) -> list[dict[str, Any]]:
    from ..errors import InvalidPathspec

    parts = pathspec.strip("/").split("/")
    if parts and parts[0] == flow_name:
        parts = parts[1:]
    numbers = [parts[0]] + parts[2:3]
    # ASCII digits only ("²".isdigit() is true, int("²") fails); ids beyond SQLite's range cannot exist
    if len(parts) not in (2, 3) or not all(p.isascii() and p.isdigit() for p in numbers):
        raise InvalidPathspec(f"expected RUN/STEP or RUN/STEP/TASK (e.g. 3/start), not {pathspec!r}")
    found = store.run_ref(flow_name, int(parts[0])) if int(parts[0]) < 2**63 else None
    if found is None:
        raise NotFound(f"Run('{flow_name}/{parts[0]}') does not exist in {store.where}")
    task_id = int(parts[2]) if len(parts) == 3 else None
    tasks = store.run_tasks(found[0], parts[1], task_id) if task_id is None or task_id < 2**63 else []
    if not tasks:
        raise NotFound(f"{flow_name}/{pathspec} has no tasks in {store.where}")
    return tasks


def main(flow_class: Any, argv: list[str] | None = None) -> None:
    """Run the flow command line (called by ``MyFlow()`` at the bottom of a flow file)."""
    from ..errors import FlowDefinitionError

    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else flow_class.__name__
    try:
        cli = make_cli(flow_class)
    except FlowDefinitionError as exc:
        echo_error(exc)
        sys.exit(exc.exit_code)
    cli.main(args=argv, prog_name=prog, standalone_mode=True)
