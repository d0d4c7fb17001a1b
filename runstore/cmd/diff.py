"""``python -m runstore.cmd.diff RUN_A RUN_B``: ``runstore diff``, as Metaflow spells it.

Metaflow users know ``python -m metaflow.cmd.diff``; this is an alias of the
``runstore diff`` command (same options, output and exit codes). The store is
``--db PATH`` (given first), else ``RUNSTORE_DB``, else the nearest runstore.db.

Example
-------
::

    $ python -m runstore.cmd.diff --db results.db TrainFlow/11 TrainFlow/12
"""

from __future__ import annotations

import sys

from ..cli import main as _runstore

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run ``runstore [--db PATH] diff ARGS...``.

    Example
    -------
    >>> main(["--db", "results.db", "TrainFlow/11", "TrainFlow/12"])  # doctest: +SKIP
    """
    args = list(sys.argv[1:] if argv is None else argv)
    leading: list[str] = []  # the group's --db goes before the command name
    while args and (args[0] == "--db" or args[0].startswith("--db=")):
        leading += args[:2] if args[0] == "--db" else args[:1]
        args = args[2:] if args[0] == "--db" else args[1:]
    _runstore([*leading, "diff", *args])


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess test
    main()
