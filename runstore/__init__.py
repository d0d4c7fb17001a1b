"""runstore: every run of a Python workflow in one SQLite file, with a Metaflow-style client.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> store.create_run("HelloFlow", user="anne").pathspec
'HelloFlow/1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .errors import (
    CodecError,
    ExecutorError,
    FlowDefinitionError,
    InvalidPathspec,
    MergeArtifactsError,
    NamespaceMismatch,
    NotAStoreError,
    NotFound,
    OutputExistsError,
    ParameterError,
    ProductionTokenError,
    ResumeError,
    RunFailed,
    RunstoreError,
    SchemaVersionError,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreReadOnlyError,
    TaggingError,
    TimeoutException,
    UnknownUser,
    UnsafeValue,
    UntrustedArtifact,
    ValueVanished,
)
from .current import current
from .config import Config, ConfigValue, config_expr
from .flowspec import (FlowSpec, IncludeFile, JSONType, Parameter, catch, environment, executor, resources, retry,
                       step, timeout)
from .project import project
from .namespace import default_namespace, get_metadata, get_namespace, namespace, namespace_scope, use_store

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from .cards import card
    from .client import DataArtifact, Flow, Run, Runstore, Step, Task
    from .dataframe import to_dataframe
    from .runtime import NBRunner, Runner
    from .store import Store
    from .version import get_version, read_info_file

# Loaded on first use, so that `python flow.py run` (which needs the flow classes and
# the store) does not also pay for the client, the runtime entry points or pandas glue.
_LAZY = {
    "Store": ".store",
    "Runstore": ".client",
    "Flow": ".client",
    "Run": ".client",
    "Step": ".client",
    "Task": ".client",
    "DataArtifact": ".client",
    "Runner": ".runtime",
    "NBRunner": ".runtime",
    "to_dataframe": ".dataframe",
    "get_version": ".version",
    "read_info_file": ".version",
    "card": ".cards",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runstore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "Store",
    # client
    "Runstore",
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "namespace",
    "get_namespace",
    "namespace_scope",
    "default_namespace",
    "get_metadata",
    "use_store",
    # flows
    "FlowSpec",
    "step",
    "Parameter",
    "JSONType",
    "IncludeFile",
    "retry",
    "catch",
    "timeout",
    "resources",
    "environment",
    "card",
    "executor",
    "project",
    "Config",
    "ConfigValue",
    "config_expr",
    "current",
    "Runner",
    "NBRunner",
    "get_version",
    "read_info_file",
    "to_dataframe",
    # errors
    "RunstoreError",
    "StoreError",
    "NotAStoreError",
    "SchemaVersionError",
    "StoreReadOnlyError",
    "StoreBusyError",
    "StoreFullError",
    "ValueVanished",
    "OutputExistsError",
    "NotFound",
    "InvalidPathspec",
    "NamespaceMismatch",
    "TaggingError",
    "UnknownUser",
    "CodecError",
    "UntrustedArtifact",
    "UnsafeValue",
    "FlowDefinitionError",
    "ParameterError",
    "MergeArtifactsError",
    "ProductionTokenError",
    "ResumeError",
    "ExecutorError",
    "TimeoutException",
    "RunFailed",
]
