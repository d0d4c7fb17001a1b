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
from .frames import to_dataframe
from .store import Store

__all__ = [
    "__version__",
    "Store",
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
    "RunFailed",
]
