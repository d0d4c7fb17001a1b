"""Every command line of runstore, as thin click layers over library calls.

==============  ===============================================================
``main``        the ``runstore`` command (console script ``runstore = runstore.cli:main``)
``flow``        ``python flow.py COMMAND``: run, show, check, dump; mounts the rest
``launch``      what ``run`` and ``resume`` share: options, exit
``resume``      ``python flow.py resume``
``deploy``      ``python flow.py deploy`` / ``trigger``
``tag``         ``python flow.py tag add|remove|replace|list``
``logs``        ONE ``logs`` for both command lines
``common``      opening the store ``runstore --db`` names
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

from .main import cli, main

__all__ = ["main", "cli"]
