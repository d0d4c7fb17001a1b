"""The Client API: read runs back as ``Flow``, ``Run``, ``Step``, ``Task``, ``DataArtifact``.

The objects behave like Metaflow's (``Flow('HelloFlow').latest_run.data.x``) with a
few deliberate fixes (SPEC §5): tag edits never change ``created_at``,
``namespace("")`` is the global namespace, a normal run's ``origin_pathspec`` is
``None`` and ``Code.flowspec`` is ``str``.

One generic base class, :class:`ClientObject`, drives every level through class
attributes (its name, pathspec shape, parent and child classes). Every object

* remembers the store it reads (``store=``, else the ``use_store`` one, else the
  discovered ``runstore.db``) and the namespace current when it was created;
* lists its children newest first (``iter(obj)``), gives one by id (``obj[id]``,
  namespace-checked) and tests existence (``id in obj``, not namespace-checked);
* never reads an artifact's payload until ``.data`` is asked for.

Times are timezone-aware ``datetime`` objects in UTC — the same instants the SQL
views show as ISO-8601 ``…Z`` text.

Example
-------
>>> from runstore import Store, Flow, use_store, namespace
>>> store = Store(":memory:")
>>> run = store.create_run("HelloFlow", user="anne")
>>> with use_store(store):
...     _ = namespace("user:anne")
...     print(Flow("HelloFlow").latest_run)
Run('HelloFlow/1')
"""

from __future__ import annotations

from ._base import ClientObject
from ._runs import Flow, Run, RunList, Runs, Runstore
from ._tasks import DataArtifact, Step, Task
from ._values import Code, Metadata, TaskData, TaskException

__all__ = [
    "ClientObject",
    "Runstore",
    "Flow",
    "Run",
    "Runs",
    "RunList",
    "Step",
    "Task",
    "DataArtifact",
    "TaskData",
    "Code",
    "TaskException",
    "Metadata",
]

# The levels, wired here so that no module imports its neighbours in a cycle.
Flow._CHILD, Run._PARENT = Run, Flow
Run._CHILD, Step._PARENT = Step, Run
Step._CHILD, Task._PARENT = Task, Step
Task._CHILD, DataArtifact._PARENT = DataArtifact, Task
Task._ATTEMPTS = DataArtifact._ATTEMPTS = True
