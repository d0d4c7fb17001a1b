"""The local runtime: scheduler, worker processes, task execution and the flow CLI.

Example
-------
>>> from runstore.runtime import Runner
>>> Runner.__name__
'Runner'
"""

from __future__ import annotations

from .runner import ExecutingRun, NBRunner, Runner, execute, load_flow

__all__ = ["Runner", "NBRunner", "ExecutingRun", "execute", "load_flow"]
