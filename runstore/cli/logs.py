"""``runstore logs PATHSPEC`` and ``python flow.py logs RUN/STEP[/TASK]``: one command, two mounts.

Both read the latest attempt's captured output through the client (``Task.stdout`` /
``Task.stderr``) and print it the same way: one task's log as stored; for several tasks
(a step or a run), each non-empty log headed by ``[Flow/N/step/task_id]``, in the order
the tasks ran. Control characters other than newline and tab are shown escaped (a shared
file could otherwise send escape sequences to a terminal, SPEC §13); ``--raw`` prints the
log exactly as stored. The flow's command line takes the pathspec without the flow name.
``--follow`` tails a running task (workers stream their output into the store in
batches, runtime/logtap.py): new lines are printed as they are stored, until the run
is no longer running; with several tasks each line is prefixed ``[pathspec]``.

Example
-------
>>> sorted({p.name for p in logs_command().params})
['follow', 'pathspec', 'raw', 'which']
>>> logs_command("HelloFlow").name
'logs'
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from ..util import parse_pathspec, printable
from .common import find_object, open_store, tasks_of

if TYPE_CHECKING:
    from ..client import ClientObject

__all__ = ["logs_command", "echo_logs", "follow_logs"]

#: Seconds between two reads of the store while following.
FOLLOW_INTERVAL = 0.25


def echo_logs(obj: "ClientObject", which: str, raw: bool = False) -> None:
    """Print the ``which`` ("stdout"/"stderr") log of a Task, or of every task of a Step or Run."""
    def shown(text: str) -> str:
        return text if raw else printable(text, multiline=True)

    tasks = tasks_of(obj)
    if len(tasks) == 1:
        click.echo(shown(getattr(tasks[0], which)), nl=False, color=raw or None)  # raw: click strips nothing
        return
    for task in tasks:
        text = getattr(task, which)
        if text:
            click.echo(printable(f"[{task.pathspec}]"))
            click.echo(shown(text), nl=not text.endswith("\n"), color=raw or None)


def follow_logs(store: Any, parts: tuple[str, ...], which: str, raw: bool, interval: float = FOLLOW_INTERVAL) -> None:
    """Print the ``which`` log of what ``parts`` names as it grows, until its run stops running.

    Each read re-opens the object (new tasks and retries show up); a new attempt of a
    task is announced on stderr and printed from its start.
    """
    from .. import client

    def shown(text: str) -> str:
        return text if raw else printable(text, multiline=True)

    printed: dict[str, tuple[int, int]] = {}  # pathspec -> (attempt, characters printed)
    while True:
        obj = find_object(store, parts)
        run = obj if isinstance(obj, client.Run) else obj.parent if isinstance(obj, client.Step) else obj.parent.parent
        done = run.status != "running"  # read before the logs: nothing stored after it is missed
        many = not isinstance(obj, client.Task)
        for task in tasks_of(obj):
            attempt = task._log_attempt
            text = store.read_log(int(task.id), attempt, which)
            last_attempt, offset = printed.get(task.pathspec, (attempt, 0))
            if last_attempt != attempt:
                click.echo(printable(f"[{task.pathspec}] attempt {attempt}:"), err=True)
                offset = 0
            new = text[offset:]
            if not done:  # whole lines only while the task may still add to the last one
                new = new[: new.rfind("\n") + 1]
            printed[task.pathspec] = (attempt, offset + len(new))
            if new:
                if many:
                    prefix = printable(f"[{task.pathspec}] ")
                    new = "".join(prefix + line for line in new.splitlines(keepends=True))
                click.echo(shown(new), nl=False, color=raw or None)
        if done:
            return
        time.sleep(interval)


def logs_command(flow_name: str | None = None) -> click.Command:
    """The ``logs`` command: of ``runstore`` (no ``flow_name``) or of a flow's command line."""
    if flow_name is None:
        doc = """Print the stdout (or --stderr) of a task, or of every task of a step or run.

        With several tasks each log is headed by its pathspec, in the order the tasks
        ran. The latest attempt's log is shown. Control characters other than
        newline and tab are shown escaped (a shared file could otherwise send escape
        sequences to your terminal); --raw prints the bytes as stored.

        \b
        With --follow, keep printing new lines while the run is running (a
        running task's output is streamed into the store in batches).

        \b
        Example:
            runstore logs TrainFlow/12/train
            runstore logs TrainFlow/12 --stderr
            runstore logs --follow TrainFlow/12/train/3
        """
    else:
        doc = """Print the captured output of RUN/STEP or RUN/STEP/TASK.

        With several tasks each log is headed by its pathspec. Control characters
        other than newline and tab are shown escaped; --raw prints the bytes as stored.
        With --follow, keep printing new lines while the run is running.

        \b
        Example:
            python flow.py logs 3/start
            python flow.py logs --follow 3/train/7
        """

    @click.command("logs", help=doc)
    @click.argument("pathspec")
    @click.option("--stderr", "which", flag_value="stderr", help="Show stderr instead of stdout.")
    @click.option("--stdout", "which", flag_value="stdout", default=True, hidden=flow_name is None,
                  help="Show stdout (default).")
    @click.option("--raw", is_flag=True, help="Print the log exactly as stored, terminal escapes included.")
    @click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run stops running.")
    @click.pass_context
    def logs(ctx: click.Context, pathspec: str, which: str, raw: bool, follow: bool) -> None:
        if flow_name is None:
            store = open_store(ctx, readonly=True)
            parts = parse_pathspec(pathspec, depths=(2, 3, 4))
        else:
            store = ctx.obj["store"]()
            parts = parse_pathspec(pathspec, flow=flow_name, depths=(3, 4),
                                   expected="RUN/STEP or RUN/STEP/TASK (e.g. 3/start)")
        if follow:
            follow_logs(store, parts, which, raw)
        else:
            echo_logs(find_object(store, parts), which, raw)

    return logs
