"""Every command line of runstore, as thin click layers over library calls.

==============  ===============================================================
``root``        the ``runstore`` command (console script ``runstore = runstore.cli:main``)
``flow``        ``python flow.py COMMAND``: run, show, check, dump; mounts the rest
``launch``      what ``run`` and ``resume`` share: options, exit
``resume``      ``python flow.py resume``
``deploy``      ``python flow.py deploy`` / ``trigger``
``tag``         every ``tag`` command (``python flow.py tag …``, ``runstore tag …``)
``logs``        ONE ``logs`` for both command lines
``common``      opening the store, finding what a pathspec names, JSON output
``errors``      ONE error layer: ``Error: <message>`` and the exit code
==============  ===============================================================

Nothing here is imported by ``import runstore`` or by the library (``tests/test_layering.py``).

Example
-------
>>> from click.testing import CliRunner
>>> from runstore.cli import cli
>>> CliRunner().invoke(cli, ["version"]).exit_code
0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``runstore`` console script: :func:`runstore.cli.root.main`.

    :mod:`.root` is loaded here, not when the package is, so that ``python flow.py``
    (which enters through :mod:`.flow`) does not pay for the ``runstore`` command.

    Example
    -------
    >>> main(["version"])  # doctest: +SKIP
    0.1.0
    """
    from .root import main as root_main

    root_main(argv)


def __getattr__(name: str) -> "click.Group | Any":
    """``runstore.cli.cli`` is the ``runstore`` click group (loaded on first use)."""
    if name == "cli":
        from .root import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main", "cli"]
