"""Every ``tag`` command: the flow CLI's ``tag add|remove|replace|list`` (``python flow.py tag …``,
Metaflow's options) and ``runstore tag add|remove|replace|list RUN …`` (:data:`runstore_tag_group`).

The flow's command line (:mod:`runstore.cli.flow`) mounts the group returned by :func:`make_tag_command` under its
flow command. The commands read and edit runs through the Client API; the store is the
one passed to :func:`make_tag_command`, else one found on the click context
(``ctx.obj`` being a ``Store``, having a ``store`` attribute, or a dict with a
``"store"`` key or a ``"db"`` path — the flow CLI's ``--db``), else :func:`runstore.namespace.get_store` (``use_store`` / discovery).

Example
-------
>>> from click.testing import CliRunner
>>> from runstore import Store
>>> store = Store(":memory:")
>>> _ = store.create_run("HelloFlow", user="anne")
>>> result = CliRunner().invoke(make_tag_command("HelloFlow", store), ["add", "--run-id", "1",
...                             "--namespace", "user:anne", "best"])
>>> result.exit_code, "best" in result.output
(0, True)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Iterable

import click

from ..errors import InvalidPathspec, NamespaceMismatch, NotFound, TaggingError
from ..namespace import identity, resolve_store
from ..util import printable
from .common import client_object, echo_json, open_store
from .errors import OneLineErrors

if TYPE_CHECKING:
    from ..client import Run
    from ..store import Store

__all__ = ["make_tag_command", "runstore_tag_group"]


def _store_from(store: "Store | Callable[[], Store] | None") -> "Store":
    from ..store import Store

    if isinstance(store, Store):
        return store
    if store is not None:
        return store()
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, Store):
        return obj
    if isinstance(obj, dict):
        if obj.get("store") is not None:
            return _store_from(obj["store"])
        if obj.get("db"):  # the flow CLI's --db option
            return resolve_store(obj["db"])
    elif obj is not None and getattr(obj, "store", None) is not None:
        return _store_from(obj.store)
    return resolve_store(None)


def _namespace_option(value: str | None) -> str | None:
    if value is None:
        return identity()
    return value or None  # "" = global, as namespace("")


def _resolve_run(store: "Store", flow_name: str, run_id: str | None, ns: str | None) -> "Run":
    from ..client import Flow, Run

    if store.find_flow(flow_name) is None:
        raise NotFound(f"No run found for {flow_name}. Please run the flow before tagging.")
    if run_id is None:
        try:
            latest = Flow(flow_name, _context=(store, ns)).latest_run
        except NamespaceMismatch:
            latest = None
        if latest is None:
            raise NotFound(f"No run found for {flow_name} in namespace {ns}. "
                                "You can switch the namespace using --namespace")
        raise TaggingError(f"Please specify a run-id using --run-id. {flow_name}'s latest run in "
                               f"namespace {ns} has id {latest.id}.")
    if "/" in run_id:
        raise InvalidPathspec(f"Run-id {run_id} is not a valid run-id")
    try:
        return Run(f"{flow_name}/{run_id}", _context=(store, ns))
    except NotFound:
        raise NotFound(f"No run {flow_name}/{run_id} found for flow {flow_name}") from None
    except NamespaceMismatch:
        raise NamespaceMismatch(f"Run {flow_name}/{run_id} for flow {flow_name} does not belong to namespace "
                            f"{ns}; pass --namespace to choose another one") from None


def _describe(run: "Run", hide_system: bool = False) -> str:
    lines = [run.pathspec, f"  user tags:   {', '.join(sorted(run.user_tags)) or '-'}"]
    if not hide_system:
        lines.append(f"  system tags: {', '.join(sorted(run.system_tags))}")
    return "\n".join(printable(line) for line in lines)  # tags from a shared file: escaped (SPEC §13)


def _edit(store: Any, flow_name: str, run_id: str | None, ns: str | None,
          remove: Iterable[str], add: Iterable[str]) -> None:
    run = _resolve_run(_store_from(store), flow_name, run_id, _namespace_option(ns))
    run.replace_tags(list(remove), list(add))
    click.echo("Operation successful. New tags:")
    click.echo(_describe(run))


def make_tag_command(flow_name: str, store: "Store | Callable[[], Store] | None" = None) -> click.Group:
    """The ``tag`` command group of the flow CLI for ``flow_name``.

    Parameters
    ----------
    flow_name : str
        The flow whose runs the commands tag.
    store : Store or callable returning one, optional
        Where the runs are; default: found on the click context, else ``get_store()``.

    Example
    -------
    >>> group = make_tag_command("HelloFlow")
    >>> sorted(group.commands)
    ['add', 'list', 'remove', 'replace']
    """
    run_id_option = click.option("--run-id", default=None, help="The run number to tag.")
    namespace_option = click.option(
        "--namespace", "ns", default=None,
        help="Namespace the run must be in (default: your identity; '' for all namespaces).")

    @click.group("tag", cls=OneLineErrors, help=f"Add, remove, replace or list the user tags of {flow_name}'s runs.")
    def tag() -> None:
        pass

    @tag.command("add")
    @run_id_option
    @namespace_option
    @click.argument("tags", nargs=-1, required=True)
    def add(run_id: str | None, ns: str | None, tags: tuple[str, ...]) -> None:
        """Add user tags to a run.

        Example: python flow.py tag add --run-id 3 best candidate
        """
        _edit(store, flow_name, run_id, ns, [], tags)

    @tag.command("remove")
    @run_id_option
    @namespace_option
    @click.argument("tags", nargs=-1, required=True)
    def remove(run_id: str | None, ns: str | None, tags: tuple[str, ...]) -> None:
        """Remove user tags from a run (system tags cannot be removed).

        Example: python flow.py tag remove --run-id 3 candidate
        """
        _edit(store, flow_name, run_id, ns, tags, [])

    @tag.command("replace")
    @run_id_option
    @namespace_option
    @click.option("--add", "to_add", multiple=True, help="A tag to add (repeatable).")
    @click.option("--remove", "to_remove", multiple=True, help="A tag to remove (repeatable).")
    def replace(run_id: str | None, ns: str | None, to_add: tuple[str, ...], to_remove: tuple[str, ...]) -> None:
        """Remove some user tags and add others in one step.

        Example: python flow.py tag replace --run-id 3 --remove candidate --add best
        """
        if not to_add and not to_remove:
            raise TaggingError("Specify at least one tag to add (--add) and one tag to remove (--remove)")
        if not to_remove:
            raise TaggingError("Specify at least one tag to remove; else please use tag add.")
        if not to_add:
            raise TaggingError("Specify at least one tag to add, else please use tag remove.")
        _edit(store, flow_name, run_id, ns, to_remove, to_add)

    @tag.command("list")
    @click.argument("run_arg", required=False, metavar="[RUN_ID]")
    @run_id_option
    @click.option("--all", "all_runs", is_flag=True, help="Runs of every namespace (the default).")
    @click.option("--my-runs", is_flag=True, help="Only runs in your namespace.")
    @click.option("--hide-system-tags", is_flag=True, help="Show user tags only.")
    @click.option("--group-by-tag", is_flag=True, help="One line per tag, with its runs.")
    @click.option("--limit", default=20, show_default=True, help="Newest runs to list.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def list_(run_arg: str | None, run_id: str | None, all_runs: bool, my_runs: bool, hide_system_tags: bool,
              group_by_tag: bool, limit: int, as_json: bool) -> None:
        """List the tags of one run, or of the newest runs.

        Example: python flow.py tag list --my-runs --group-by-tag
        """
        if all_runs and my_runs:
            raise TaggingError("Option --all cannot be used together with --my-runs.")
        the_store = _store_from(store)
        ns = identity() if my_runs else None
        wanted = run_id or run_arg
        if wanted is not None:
            runs = [_resolve_run(the_store, flow_name, wanted, ns)]
        else:
            from ..client import Flow

            try:
                flow = Flow(flow_name, _context=(the_store, ns))
            except (NotFound, NamespaceMismatch):
                raise NotFound(f"No run found for {flow_name}"
                                    + (f" in namespace {ns}" if ns else "")) from None
            runs = [run for _, run in zip(range(limit), flow)]
        rows = [(run.pathspec, sorted(run.system_tags), sorted(run.user_tags)) for run in runs]
        if hide_system_tags:
            rows = [(path, [], user) for path, _, user in rows]
        if group_by_tag:
            groups: dict[tuple[str, str], list[str]] = {}
            for path, system, user in rows:
                for kind, tags in (("system", system), ("user", user)):
                    for t in tags:
                        groups.setdefault((kind, t), []).append(path)
            if as_json:
                click.echo(json.dumps([{"kind": k, "tag": t, "runs": r} for (k, t), r in sorted(groups.items())]))
            else:
                for (kind, t), paths in sorted(groups.items()):
                    click.echo(printable(f"{kind}:{t} ; {','.join(paths)}"))
            return
        if as_json:
            click.echo(json.dumps([{"run": p, "system_tags": s, "user_tags": u} for p, s, u in rows]))
            return
        for run in runs:
            click.echo(_describe(run, hide_system_tags))
    return tag


# ---------------------------------------------------------------- runstore tag RUN ...


@click.group("tag")
def runstore_tag_group() -> None:
    """Add, remove, replace or list the user tags of a run.

    System tags (user:, runtime:, python_version:, date: ...) cannot change.

    \b
    Example:
        runstore tag add TrainFlow/12 best
        runstore tag list TrainFlow/12
    """


def _tag_run(ctx: click.Context, run: str) -> Any:
    return client_object("run", run, open_store(ctx))


@runstore_tag_group.command(name="add")
@click.argument("run")
@click.argument("tags", nargs=-1, required=True)
@click.pass_context
def tag_add(ctx: click.Context, run: str, tags: tuple[str, ...]) -> None:
    """Add user TAGS to RUN.

    \b
    Example:
        runstore tag add TrainFlow/12 best reviewed
    """
    obj = _tag_run(ctx, run)
    obj.add_tags(tags)
    click.echo(printable(f"{obj.pathspec}: {' '.join(sorted(obj.user_tags))}"))


@runstore_tag_group.command(name="remove")
@click.argument("run")
@click.argument("tags", nargs=-1, required=True)
@click.pass_context
def tag_remove(ctx: click.Context, run: str, tags: tuple[str, ...]) -> None:
    """Remove user TAGS from RUN (absent tags are ignored).

    \b
    Example:
        runstore tag remove TrainFlow/12 reviewed
    """
    obj = _tag_run(ctx, run)
    obj.remove_tags(tags)
    click.echo(printable(f"{obj.pathspec}: {' '.join(sorted(obj.user_tags))}"))


@runstore_tag_group.command(name="replace")
@click.argument("run")
@click.argument("old")
@click.argument("new")
@click.pass_context
def tag_replace(ctx: click.Context, run: str, old: str, new: str) -> None:
    """Replace the user tag OLD of RUN by NEW, in one step.

    \b
    Example:
        runstore tag replace TrainFlow/12 candidate champion
    """
    obj = _tag_run(ctx, run)
    obj.replace_tag(old, new)
    click.echo(printable(f"{obj.pathspec}: {' '.join(sorted(obj.user_tags))}"))


@runstore_tag_group.command(name="list")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="User and system tags as JSON.")
@click.pass_context
def tag_list(ctx: click.Context, run: str, as_json: bool) -> None:
    """List the tags of RUN: user tags, then system tags.

    \b
    Example:
        runstore tag list TrainFlow/12
    """
    obj = client_object("run", run, open_store(ctx, readonly=True))
    tags = {"user": sorted(obj.user_tags), "system": sorted(obj.system_tags)}
    if as_json:
        echo_json(tags)
        return
    click.echo(printable(f"user tags:   {' '.join(tags['user'])}"))
    click.echo(printable(f"system tags: {' '.join(tags['system'])}"))
