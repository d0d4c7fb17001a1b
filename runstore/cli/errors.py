"""What both command lines (``runstore`` and ``python flow.py``) share: how errors look.

One wording everywhere: a :class:`~runstore.errors.RunstoreError` is one line
``Error: <message>`` on stderr and the exit code it carries (2 for usage errors, else
1), its control characters escaped (a message can quote a tag or user name read
from a shared file; SPEC §13). Click's own usage errors keep click's format. A closed pipe (``... | head``) ends
the command quietly; Ctrl-C is ``Error: interrupted`` (exit 130), SIGTERM during a run
``Error: terminated (SIGTERM)`` (exit 143); any other exception
is one line too, unless ``RUNSTORE_DEBUG=1`` asks for the traceback.

Example
-------
>>> import click
>>> from click.testing import CliRunner
>>> from runstore.errors import NotFound
>>> @click.group(cls=OneLineErrors)
... def tool():
...     pass
>>> @tool.command()
... def find():
...     raise NotFound("no run F/9")
>>> result = CliRunner().invoke(tool, ["find"])
>>> result.exit_code, result.output
(1, 'Error: no run F/9\\n')
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import RunstoreError
from ..util import interrupt_exit_code, printable

__all__ = ["OneLineErrors", "echo_error"]


def echo_error(exc: RunstoreError) -> None:
    """Print ``exc`` as the one ``Error: <message>`` line on stderr.

    Example
    -------
    >>> from runstore.errors import StoreError
    >>> echo_error(StoreError("no store at x.db"))  # doctest: +SKIP
    Error: no store at x.db
    """
    click.echo(f"Error: {printable(str(exc))}", err=True)


class OneLineErrors(click.Group):
    """A click group whose commands never end in a traceback (see the module docstring).

    Example
    -------
    >>> import click
    >>> @click.group(cls=OneLineErrors)
    ... def tool():
    ...     pass
    >>> isinstance(tool, OneLineErrors)
    True
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunstoreError as exc:
            echo_error(exc)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:  # `runstore runs | head`: the reader left; stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM during a run (util.Terminated): 143
            code = interrupt_exit_code(exc)
            click.echo("Error: interrupted" if code == 130 else "Error: terminated (SIGTERM)", err=True)
            ctx.exit(code)
        except Exception as exc:  # never a traceback: one line, unless RUNSTORE_DEBUG asks for it
            if os.environ.get("RUNSTORE_DEBUG"):
                raise
            click.echo(f"Error: {type(exc).__name__}: {printable(str(exc))} (set RUNSTORE_DEBUG=1 for details)",
                       err=True)
            ctx.exit(1)
