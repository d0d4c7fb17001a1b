"""runstore: every run of a Python workflow in one SQLite file, with a Metaflow-style client.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> store.create_run("HelloFlow", user="anne").pathspec
'HelloFlow/1'
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    CodecError,
    FlowDefinitionError,
    InvalidPathspec,
    MergeArtifactsError,
    NamespaceMismatch,
    NotAStoreError,
    NotFound,
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
    UnknownUser,
    UntrustedArtifact,
)
from .client import DataArtifact, Flow, Run, Runstore, Step, Task
from .current import current
from .flowspec import FlowSpec, IncludeFile, JSONType, Parameter, catch, retry, step
from .namespace import default_namespace, get_metadata, get_namespace, namespace, use_store
from .frames import to_dataframe
from .store import Store
from .version import get_version, read_info_file


def __getattr__(name: str) -> object:
    # Runner pulls in the runtime (scheduler, workers); load it on first use only.
    if name == "Runner":
        from .runtime import Runner

        return Runner
    raise AttributeError(f"module 'runstore' has no attribute {name!r}")


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
    "current",
    "Runner",
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
    "NotFound",
    "InvalidPathspec",
    "NamespaceMismatch",
    "TaggingError",
    "UnknownUser",
    "CodecError",
    "UntrustedArtifact",
    "FlowDefinitionError",
    "ParameterError",
    "MergeArtifactsError",
    "ProductionTokenError",
    "ResumeError",
    "RunFailed",
]
