"""The command line of a flow file: ``python flow.py [--db PATH] [--quiet] COMMAND``.

Commands: run, resume, show, check, logs, dump, tag, deploy, trigger (resume lives
in :mod:`.resume`, deploy and trigger in :mod:`.deploy`, logs in :mod:`.logs`, tag in :mod:`.tag`).

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

from ..errors import NotFound, ParameterError, RunstoreError
from ..util import parse_pathspec
from .common import find_object, tasks_of
from .deploy import deploy_command, trigger_command
from .errors import OneLineErrors, echo_error
from .launch import config_options, exit_with, launch_from, launch_options, run_id_writer
from .logs import logs_command
from .resume import resume_command
from .tag import make_tag_command

__all__ = ["main", "make_cli"]


class _ParamType(click.ParamType):
    """Click type that checks through ``Parameter.convert`` (usage error on a bad value).

    It hands on the text as given: ``resolve_parameters`` converts it once, and a value
    that converts to None (``--config null``) stays a given value rather than looking like
    an absent option.
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
    elif callable(default):
        help_text = f"{help_text} [default: computed when the run starts]".strip()
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


def make_cli(flow_class: Any) -> click.Group:
    """Build the click group for ``flow_class`` (checks the graph first)."""
    from ..project import check_flow_project

    graph = flow_class._graph()
    check_flow_project(flow_class)
    params = flow_class._parameters()
    name = flow_class.__name__

    @click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]},
                 help=(flow_class.__doc__ or f"The {name} flow.").strip())
    @click.option("--db", type=click.Path(dir_okay=False), default=None, envvar="RUNSTORE_DB",
                  help="Store file (default: RUNSTORE_DB, else the nearest runstore.db, else ./runstore.db).")
    @click.option("--quiet", is_flag=True, help="Print nothing but errors.")
    @click.pass_context
    def cli(ctx: click.Context, db: str | None, quiet: bool, **launch: Any) -> None:
        opened: list[Any] = []

        def store() -> Any:  # opened on first use; the `tag` commands find it here too
            if not opened:
                opened.append(_open_store(db))
            return opened[0]

        # --config/--config-value/--branch/--production before the command, as in Metaflow
        ctx.obj = {"db": db, "quiet": quiet, "store": store, "launch": launch}

    cli.params.extend(config_options(flow_class))

    @cli.command(context_settings={"show_default": True})
    @launch_options
    @click.option("--clone", default=None, metavar="RUN",
                  help="Take the parameter and config values of run RUN (those given here win).")
    @click.pass_context
    def run(ctx: click.Context, tags: tuple[str, ...], max_workers: int | None, max_num_splits: int,
            user_namespace: str | None, run_id_file: str | None, executor: str | None, dask_address: str | None,
            clone: str | None, with_decorators: tuple[str, ...], **kwargs: Any) -> None:
        """Run the flow.

        \b
        Example:
            python flow.py run --tag first --max-workers 4
            python flow.py run --executor dask --dask-address tcp://10.0.0.5:8786
            python flow.py run --with retry --with timeout:seconds=600
        """
        from ..runtime.runner import execute
        from ..runtime.parameters import resolve_parameters
        from ..tags import validate_user_tags

        validate_user_tags(list(tags))
        launch = launch_from(ctx, kwargs)
        given = {k[3:]: v for k, v in kwargs.items() if k.startswith("p__") and v is not None}
        try:
            if clone is None:
                values = resolve_parameters(flow_class, given)
            else:
                from ..runtime.resume import clone_launch, clone_parameters

                values = clone_parameters(flow_class, ctx.obj["store"](), clone, given)
                launch = clone_launch(launch, ctx.obj["store"](), flow_class, clone)
        except ParameterError as exc:
            raise click.UsageError(str(exc), ctx) from None
        store = ctx.obj["store"]()
        outcome = execute(flow_class, store, values, tags=list(tags), max_workers=max_workers,
                          max_num_splits=max_num_splits, namespace=user_namespace,
                          namespace_given=user_namespace is not None, quiet=ctx.obj["quiet"],
                          on_run_created=run_id_writer(run_id_file), executor=executor,
                          dask_address=dask_address, with_decorators=with_decorators, launch=launch)
        exit_with(ctx, store, outcome)

    for param in params:
        run.params.append(_param_option(param))
    run.params.extend(config_options(flow_class, {p.option for p in params}))

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
                default = "computed when the run starts" if callable(p.default) else repr(p.default)
                click.echo(f"    {p.option} ({p.type_name}, default {default}){': ' + p.help if p.help else ''}")
        _show_configs_and_project(flow_class)

    @cli.command()
    @click.pass_context
    def check(ctx: click.Context) -> None:
        """Check the flow's graph (done before every command anyway), and its configs.

        The configs (defaults, or --config/--config-value given before 'check') are
        read and the decorators and @project name written with them are evaluated, as
        'run' would.

        \b
        Example:
            python flow.py check
            python flow.py --config cfg prod.json check
        """
        from ..runtime.configs import prepare
        from ..runtime.environment import flow_file_of
        from ..util import resolve_username

        flow_file = flow_file_of(flow_class)
        prepare(flow_class, launch_from(ctx, {}), username=resolve_username(),
                base_dir=os.path.dirname(flow_file) if flow_file else None)
        if not ctx.obj["quiet"]:
            click.echo(f"Validating {name}... the graph looks good ({len(graph.nodes)} steps).")

    cli.add_command(logs_command(name), "logs")

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
        from ..util import short_repr

        store = ctx.obj["store"]()
        for task in _tasks_of(store, name, pathspec):
            click.echo(f"{task.pathspec}:")
            meta = {m["name"]: m["value"] for m in store.list_metadata(int(task.id))}
            if "switch-next-step" in meta:
                click.echo(f"    (switch took case {meta.get('switch-case', '?')!r} -> {meta['switch-next-step']})")
            for art, ref in store.list_artifact_refs(int(task.id)).items():
                if art.startswith("_") and not private:
                    continue
                # Sizes from the chunks, not the artifact row (SPEC §13.3).
                size: int | str = "?"
                try:
                    size = store.value_size(ref.blob_key)
                    if size > max_value_size:
                        shown = "< artifact too large >"
                    else:
                        value = store.load_value(ref.blob_key, ref.encoding, max_size=max_value_size)
                        # bounded however deep or shared a (stranger's) value is
                        shown = short_repr(value, 20_000) if ref.encoding == "safepickle" else repr(value)
                except RunstoreError as exc:
                    shown = f"< {exc.headline}: {exc} >"
                click.echo(f"    {art} [size: {size} type: {ref.type}] = {shown}")

    @cli.group(name="card")
    def card_group() -> None:
        """Look at the cards of this flow's tasks (see docs/cards.md)."""

    @card_group.command(name="view")
    @click.argument("target")
    @click.option("--id", "card_id", default=None, help="The card with this @card(id=...).")
    @click.option("--type", "card_type", default=None, help="The card of this type (default, blank).")
    @click.option("--no-browser", is_flag=True, help="Only write the file and print its path.")
    @click.pass_context
    def card_view(ctx: click.Context, target: str, card_id: str | None, card_type: str | None, no_browser: bool) -> None:
        """Open a card of STEP (latest run), RUN/STEP or RUN/STEP/TASK in the web browser.

        \b
        Example:
            python flow.py card view train --id report
        """
        from ..cards import _cli as cards_cli

        task = cards_cli.find_task_for_flow(ctx.obj["store"](), name, target)
        chosen, _ = cards_cli.choose_card(task, card_id, card_type)
        path = cards_cli.write_card(chosen, cards_cli.view_file(chosen))
        click.echo(path)
        if not no_browser:
            import webbrowser

            webbrowser.open("file://" + path)

    @card_group.command(name="get")
    @click.argument("target")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--id", "card_id", default=None, help="The card with this @card(id=...).")
    @click.option("--type", "card_type", default=None, help="The card of this type (default, blank).")
    @click.pass_context
    def card_get(ctx: click.Context, target: str, file: str, card_id: str | None, card_type: str | None) -> None:
        """Write a card of STEP (latest run), RUN/STEP or RUN/STEP/TASK to FILE (one HTML file).

        \b
        Example:
            python flow.py card get 3/train report.html --id report
        """
        from ..cards import _cli as cards_cli

        task = cards_cli.find_task_for_flow(ctx.obj["store"](), name, target)
        chosen, _ = cards_cli.choose_card(task, card_id, card_type)
        cards_cli.write_card(chosen, file)

    cli.add_command(resume_command(flow_class), "resume")
    cli.add_command(deploy_command(flow_class), "deploy")
    cli.add_command(trigger_command(flow_class), "trigger")

    cli.add_command(make_tag_command(name), "tag")
    return cli


def _show_configs_and_project(flow_class: Any) -> None:
    """``show``'s lines about the flow's configs and ``@project`` (nothing when it has neither)."""
    from ..config import flow_configs
    from ..project import PROJECT_ATTR

    configs = flow_configs(flow_class)
    if configs:
        click.echo("\nConfigs:")
        for c in configs:
            origin = f"file {c.default!r}" if c.default is not None else (
                "a default value" if c.default_value is not None else "no default")
            click.echo(f"    {c.name} ({origin}){': ' + c.help if c.help else ''}")
    project = getattr(flow_class, PROJECT_ATTR, None)
    if project is not None:
        click.echo(f"\nProject: {project['name']!r} (branches: --branch NAME, --production)")


def _tasks_of(store: Any, flow_name: str, pathspec: str) -> list[Any]:
    """The client tasks of RUN/STEP or RUN/STEP/TASK (``dump``)."""
    parts = parse_pathspec(pathspec, flow=flow_name, depths=(3, 4),
                           expected="RUN/STEP or RUN/STEP/TASK (e.g. 3/start)")
    tasks = tasks_of(find_object(store, parts))
    if not tasks:
        raise NotFound(f"{'/'.join(parts)} has no tasks in {store.where}")
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
