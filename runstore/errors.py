"""Every exception runstore raises, under one root.

Each class also inherits the builtin exception a user would naturally catch, so
``except KeyError`` still works for a missing run and ``except ValueError`` for a
bad tag. Every error knows the exit code the command line uses for it (1 for
runtime errors, 2 for usage errors) and renders as one line.

::

    RunstoreError (Exception)
    ├── StoreError                        the store file cannot be used as asked
    │   ├── NotAStoreError                not SQLite, truncated, corrupted
    │   ├── SchemaVersionError            written by a newer runstore
    │   ├── StoreReadOnlyError (PermissionError)   read-only file or directory
    │   ├── StoreBusyError (TimeoutError) another process held the lock too long
    │   ├── StoreFullError (OSError)      disk or file-size limit reached
    │   ├── ValueVanished                 a concurrent gc took a chunk a value being saved re-used
    │   └── OutputExistsError (FileExistsError)  the new file to write exists already
    ├── NotFound (KeyError)               no such flow / run / step / task / artifact
    ├── InvalidPathspec (ValueError)      "HelloFlow/5/start" has the wrong shape
    ├── NamespaceMismatch (LookupError)   object exists but is outside the namespace
    ├── TaggingError (ValueError)         empty, too long, too many, system tag
    ├── UnknownUser (RunstoreError)       no user name could be determined
    ├── CodecError (TypeError)            a value cannot be encoded / decoded
    ├── UntrustedArtifact (PermissionError)  untrusted pickle, or a value altered after writing
    │   └── UnsafeValue                   a safepickle value asks for what the safe loader refuses
    ├── FlowDefinitionError (ValueError)  the flow graph or a decorator is invalid
    ├── CodeSnapshotError (ValueError)    the code snapshot is over its cap, or a bad setting
    ├── ParameterError (ValueError)       a bad parameter value
    ├── MergeArtifactsError (ValueError)  merge_artifacts found a conflict
    ├── ProductionTokenError (PermissionError)  deploy without the right token
    ├── ResumeError (ValueError)          resume of a step not in the graph, bad run id
    ├── ExecutorError (ConnectionError)   unknown executor, unreachable cluster, other environment
    ├── TimeoutException (TimeoutError)   a step ran longer than its @timeout
    └── RunFailed (RunstoreError)         a flow run ended in failure (Runner)

Example
-------
>>> from runstore.errors import NotFound, RunstoreError
>>> try:
...     raise NotFound("Run('HelloFlow/9') does not exist")
... except KeyError as exc:
...     print(exc)
Run('HelloFlow/9') does not exist
"""

from __future__ import annotations

__all__ = [
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
    "CodeSnapshotError",
    "ParameterError",
    "MergeArtifactsError",
    "ProductionTokenError",
    "ResumeError",
    "ExecutorError",
    "TimeoutException",
    "RunFailed",
]


class RunstoreError(Exception):
    """Root of every runstore exception.

    ``str(exc)`` is always one line meant for a person; ``headline`` names the
    kind of problem and ``exit_code`` is what the command line exits with.

    Example
    -------
    >>> try:
    ...     raise RunstoreError("something went wrong")
    ... except RunstoreError as exc:
    ...     exc.exit_code
    1
    """

    headline = "runstore error"
    exit_code = 1

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(message, *args)
        self.message = " ".join(str(message).split()) if "\n" in str(message) else str(message)

    def __str__(self) -> str:
        return self.message


class StoreError(RunstoreError):
    """The store file cannot be opened or written as asked.

    Example
    -------
    >>> issubclass(NotAStoreError, StoreError)
    True
    """

    headline = "Store error"


class NotAStoreError(StoreError):
    """The file is not a SQLite database, or it is truncated or corrupted.

    Example
    -------
    >>> str(NotAStoreError("notes.txt is not a runstore database"))
    'notes.txt is not a runstore database'
    """

    headline = "Not a runstore file"


class SchemaVersionError(StoreError):
    """The file was written by a newer runstore than this one.

    Example
    -------
    >>> SchemaVersionError("file has schema 9, this runstore reads up to 2").exit_code
    1
    """

    headline = "Schema version"


class StoreReadOnlyError(StoreError, PermissionError):
    """A write was asked of a store that can only be read.

    Example
    -------
    >>> issubclass(StoreReadOnlyError, PermissionError)
    True
    """

    headline = "Store is read-only"


class StoreBusyError(StoreError, TimeoutError):
    """Another process held the write lock for longer than the busy timeout.

    Example
    -------
    >>> issubclass(StoreBusyError, TimeoutError)
    True
    """

    headline = "Store is busy"


class StoreFullError(StoreError, OSError):
    """The disk (or the file-size limit) is full; nothing was half written.

    Example
    -------
    >>> issubclass(StoreFullError, OSError)
    True
    """

    headline = "Store is full"


class ValueVanished(StoreError):
    """A stored chunk that a value being saved re-uses was collected by a concurrent ``gc``.

    A live run's re-used chunks are reserved (gc keeps them, store/_gc.py), so this
    only happens when gc did not see the run as live; the task's attempt then fails
    with this exception recorded and ``@retry`` writes the value again.

    Example
    -------
    >>> issubclass(ValueVanished, StoreError)
    True
    """


class OutputExistsError(StoreError, FileExistsError):
    """The new file a command writes (``runstore flatten OUT``) exists already; it is left as it was.

    Example
    -------
    >>> issubclass(OutputExistsError, FileExistsError)
    True
    """


class NotFound(RunstoreError, KeyError):
    """The flow, run, step, task or artifact does not exist.

    Also a :class:`KeyError`, so ``flow['99']`` behaves like a mapping.

    Example
    -------
    >>> str(NotFound("Run('HelloFlow/9') does not exist"))
    "Run('HelloFlow/9') does not exist"
    """

    headline = "Object not found"

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return self.message


class InvalidPathspec(RunstoreError, ValueError):
    """A pathspec has the wrong number of components or an invalid component.

    Example
    -------
    >>> str(InvalidPathspec("Expects Run('FlowName/RunID')"))
    "Expects Run('FlowName/RunID')"
    """

    headline = "Invalid pathspec"
    exit_code = 2


class NamespaceMismatch(RunstoreError, LookupError):
    """The object exists but lies outside the current namespace.

    Example
    -------
    >>> exc = NamespaceMismatch("Object not in namespace 'user:anne'")
    >>> isinstance(exc, LookupError)
    True
    """

    headline = "Object not in the current namespace"


class TaggingError(RunstoreError, ValueError):
    """A tag is empty, too long, not a string, or would change a system tag.

    Example
    -------
    >>> str(TaggingError("Tags must not be empty string"))
    'Tags must not be empty string'
    """

    headline = "Tagging error"
    exit_code = 2


class UnknownUser(RunstoreError):
    """No user name could be found in RUNSTORE_USER, USER, USERNAME or the login.

    Example
    -------
    >>> UnknownUser("set RUNSTORE_USER").headline
    'Unknown user'
    """

    headline = "Unknown user"


class CodecError(RunstoreError, TypeError):
    """A value could not be encoded, or stored bytes could not be decoded.

    Example
    -------
    >>> issubclass(CodecError, TypeError)
    True
    """

    headline = "Encoding error"


class UntrustedArtifact(RunstoreError, PermissionError):
    """A pickled artifact comes from a store this user has not trusted, or a stored
    value's bytes do not hash to its key (the file was altered after it was written).

    Example
    -------
    >>> issubclass(UntrustedArtifact, PermissionError)
    True
    """

    headline = "Untrusted artifact"


class UnsafeValue(UntrustedArtifact):
    """A stored ``safepickle`` value asks for something the safe loader refuses: a
    global outside its allow-list, an opcode runstore never writes, or more memory
    than its size allows. Nothing of it was run (see docs/security.md).

    Example
    -------
    >>> issubclass(UnsafeValue, UntrustedArtifact) and issubclass(UnsafeValue, PermissionError)
    True
    """

    headline = "Unsafe value"


class FlowDefinitionError(RunstoreError, ValueError):
    """The flow's graph, a ``self.next`` call or a decorator is invalid.

    Example
    -------
    >>> str(FlowDefinitionError("line 12: step 'a' goes to unknown step 'b'"))
    "line 12: step 'a' goes to unknown step 'b'"
    """

    headline = "Invalid flow"
    exit_code = 2


class CodeSnapshotError(RunstoreError, ValueError):
    """The flow's code snapshot cannot be taken whole: over ``RUNSTORE_CODE_MAX_MB``, or a bad setting.

    Raised before the run is created; the message names the largest files and the setting
    that raises the cap (docs/flows.md, "The code snapshot").

    Example
    -------
    >>> issubclass(CodeSnapshotError, ValueError)
    True
    """

    headline = "Code snapshot refused"


class ParameterError(RunstoreError, ValueError):
    """A parameter value is missing, of the wrong type, or assigned in a step.

    Example
    -------
    >>> ParameterError("--alpha: 'x' is not a valid float").exit_code
    2
    """

    headline = "Invalid parameter"
    exit_code = 2


class MergeArtifactsError(RunstoreError, ValueError):
    """``merge_artifacts`` met artifacts that differ between branches or are missing.

    Example
    -------
    >>> issubclass(MergeArtifactsError, ValueError)
    True
    """

    headline = "Unhandled artifacts in merge"


class ProductionTokenError(RunstoreError, PermissionError):
    """A production deployment was attempted without the right token.

    Example
    -------
    >>> ProductionTokenError("pass --authorize TOKEN").headline
    'Incorrect production token'
    """

    headline = "Incorrect production token"


class ResumeError(RunstoreError, ValueError):
    """A resume cannot start: the step is not in the flow's graph, or the run id is malformed.

    Example
    -------
    >>> ResumeError("invalid step name 'bogus'").exit_code
    2
    """

    headline = "Cannot resume"
    exit_code = 2


class ExecutorError(RunstoreError, ConnectionError):
    """Tasks cannot be sent where asked: unknown executor, unreachable Dask scheduler,
    or workers running another Python or runstore version (checked before any run is created).

    Example
    -------
    >>> ExecutorError("cannot reach the Dask scheduler at tcp://10.0.0.5:8786").exit_code
    1
    """

    headline = "Executor unavailable"


class TimeoutException(RunstoreError, TimeoutError):
    """A step ran longer than its ``@timeout``: raised inside the step, recorded as its exception.

    Named as Metaflow names it; ``@retry`` and ``@catch`` treat it as any failure.

    Example
    -------
    >>> str(TimeoutException("Step start timed out after 5 seconds"))
    'Step start timed out after 5 seconds'
    """

    headline = "Step timed out"


class RunFailed(RunstoreError):
    """A run launched from Python ended in failure; ``run`` holds the failed run.

    Example
    -------
    >>> RunFailed("HelloFlow/3 failed in step 'train'").exit_code
    1
    """

    headline = "Run failed"

    def __init__(self, message: str = "", run: object = None) -> None:
        super().__init__(message)
        self.run = run
