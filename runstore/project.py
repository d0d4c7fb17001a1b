"""``@project(name=...)``: flows of one project, run on branches, as in Metaflow (SPEC §14).

A project flow runs on a *branch*: ``user.<username>`` by default, ``test.<branch>``
with ``--branch BRANCH``, ``prod`` with ``--production``, ``prod.<branch>`` with both.
The run gets the system tags ``project:<name>`` and ``project_branch:<branch>``,
``current`` gets ``project_name``, ``branch_name``, ``project_flow_name``
(``<project>.<branch>.<Flow>``), ``is_user_branch`` and ``is_production``, and each
branch has its own production deployment (``deploy``/``trigger`` with the same
``--branch``/``--production``).

Example
-------
>>> info = project_info("myproj", "TrainFlow", "anne")
>>> info.branch_name, info.project_flow_name, info.tags
('user.anne', 'myproj.user.anne.TrainFlow', ['project:myproj', 'project_branch:user.anne'])
>>> project_info("myproj", "TrainFlow", "anne", branch="b2", production=True).branch_name
'prod.b2'
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .errors import FlowDefinitionError, ParameterError

__all__ = ["project", "project_info", "ProjectInfo", "PROJECT_ATTR", "check_project_name", "check_branch_name",
           "check_flow_project"]

#: The class attribute ``@project`` sets: ``{"name": <str or config expression>}``.
PROJECT_ATTR = "_runstore_project"

_VALID = re.compile(r"[a-z0-9_]+\Z")
#: Longest project or branch name, as in Metaflow.
MAX_NAME = 128


def check_project_name(name: Any) -> str:
    """``name`` if it is a valid project name (lowercase letters, digits, ``_``; ≤ 128), else an error.

    >>> check_project_name("Bad-Name")
    Traceback (most recent call last):
    ...
    runstore.errors.FlowDefinitionError: @project(name='Bad-Name'): a project name has only lowercase letters, digits and _ (at most 128)
    """
    if not isinstance(name, str) or not _VALID.match(name) or len(name) > MAX_NAME:
        raise FlowDefinitionError(f"@project(name={name!r}): a project name has only lowercase letters, digits "
                                  f"and _ (at most {MAX_NAME})")
    return name


def check_branch_name(branch: Any) -> str:
    """``branch`` if it is a valid ``--branch`` (as a project name), else a :class:`ParameterError`.

    >>> check_branch_name("feat/x")
    Traceback (most recent call last):
    ...
    runstore.errors.ParameterError: --branch 'feat/x': a branch name has only lowercase letters, digits and _ (at most 128)
    """
    if not isinstance(branch, str) or not _VALID.match(branch) or len(branch) > MAX_NAME:
        raise ParameterError(f"--branch {branch!r}: a branch name has only lowercase letters, digits and _ "
                             f"(at most {MAX_NAME})")
    return branch


def check_flow_project(flow_class: type) -> None:
    """Check a flow's ``@project(name=...)`` when it is a plain string (config expressions are
    checked once evaluated, before the run starts).

    >>> class F:
    ...     _runstore_project = {"name": "Bad"}
    >>> check_flow_project(F)
    Traceback (most recent call last):
    ...
    runstore.errors.FlowDefinitionError: @project(name='Bad'): a project name has only lowercase letters, digits and _ (at most 128)
    """
    spec = getattr(flow_class, PROJECT_ATTR, None)
    if spec is not None and isinstance(spec["name"], str):
        check_project_name(spec["name"])


def project(cls: type | None = None, *, name: Any = None) -> Any:
    """Make the flow part of project ``name`` (a string or a :func:`~runstore.config_expr`).

    Example
    -------
    >>> from runstore import FlowSpec, step
    >>> @project(name="fraud")
    ... class ScoreFlow(FlowSpec):
    ...     @step
    ...     def start(self):
    ...         self.next(self.end)
    ...     @step
    ...     def end(self):
    ...         pass
    >>> ScoreFlow._runstore_project
    {'name': 'fraud'}
    """
    if name is None:
        raise FlowDefinitionError("@project needs a name: @project(name=\"myproject\")")
    # The name is checked when the flow's command line starts (check_flow_project) or a run
    # is prepared, so a bad one is one line rather than a traceback from the class body.

    def wrap(flow_class: type) -> type:
        if not isinstance(flow_class, type):
            raise FlowDefinitionError("@project decorates a flow class")
        setattr(flow_class, PROJECT_ATTR, {"name": name})
        return flow_class

    return wrap(cls) if cls is not None else wrap


class ProjectInfo(NamedTuple):  # a NamedTuple, not a dataclass: `import runstore` stays light
    """Where a run of a project flow belongs: project, branch, and what ``current`` shows.

    Example
    -------
    >>> project_info("p", "F", "anne", branch="x").as_current()["project_flow_name"]
    'p.test.x.F'
    """

    project_name: str
    branch_name: str
    project_flow_name: str
    is_user_branch: bool
    is_production: bool

    @property
    def tags(self) -> list[str]:
        """The run's system tags ``project:<name>`` and ``project_branch:<branch>``."""
        return [f"project:{self.project_name}", f"project_branch:{self.branch_name}"]

    def as_current(self) -> dict[str, Any]:
        """The ``current`` fields of a project run."""
        return {"project_name": self.project_name, "branch_name": self.branch_name,
                "project_flow_name": self.project_flow_name, "is_user_branch": self.is_user_branch,
                "is_production": self.is_production}


def project_info(name: str, flow_name: str, username: str, branch: str | None = None,
                 production: bool = False) -> ProjectInfo:
    """The branch a run of ``flow_name`` in project ``name`` is on (Metaflow's rules; see the module)."""
    check_project_name(name)
    if branch is not None:
        check_branch_name(branch)
        branch_name = f"prod.{branch}" if production else f"test.{branch}"
    elif production:
        branch_name = "prod"
    else:
        branch_name = f"user.{username}"
    return ProjectInfo(name, branch_name, f"{name}.{branch_name}.{flow_name}",
                       is_user_branch=branch is None and not production, is_production=bool(production))
