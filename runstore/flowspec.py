"""Authoring flows: ``FlowSpec``, ``@step``, ``Parameter``, ``JSONType``, ``IncludeFile``,
``@retry``, ``@catch``, ``@timeout``, ``@resources`` and ``@environment``.

A flow is a class whose ``@step`` methods end with ``self.next(...)``. Every
attribute set on ``self`` in a step is an artifact, stored when the task ends and
visible to the steps after it. This module never touches the store: the runtime
hands each task a loader for the artifacts it inherits.

Example
-------
>>> from runstore import FlowSpec, step, Parameter
>>> class HelloFlow(FlowSpec):
...     alpha = Parameter("alpha", default=0.5)
...     @step
...     def start(self):
...         self.x = self.alpha * 2
...         self.next(self.end)
...     @step
...     def end(self):
...         print(self.x)
>>> HelloFlow.alpha.type is float
True
"""

from __future__ import annotations

import json
import os
import sys
import types
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from .config import is_lazy
from .errors import FlowDefinitionError, MergeArtifactsError, ParameterError, RunstoreError
from .graph import STEP_MARK

__all__ = [
    "FlowSpec", "step", "Parameter", "JSONType", "IncludeFile", "retry", "catch",
    "timeout", "resources", "environment", "executor", "DECORATORS", "CaughtException", "RESERVED_PARAMETER_NAMES",
    "ParameterContext", "RESERVED_ATTRIBUTE_NAMES",
]

#: Parameter names that would collide with the flow command's own options.
RESERVED_PARAMETER_NAMES = frozenset({
    "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file", "max-num-splits",
    "max-workers", "max-log-size", "user-namespace", "run-id", "task-id", "runner-attribute-file",
    "db", "quiet", "help", "executor", "dask-address",
})

#: Most attempts a task gets (first try plus retries), as in Metaflow.
MAX_ATTEMPTS = 6


# ---------------------------------------------------------------- decorators


def step(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a method of a ``FlowSpec`` as a step.

    Example
    -------
    >>> @step
    ... def start(self):
    ...     self.next(self.end)
    >>> start._runstore_step
    True
    """
    setattr(func, STEP_MARK, True)
    if not hasattr(func, "_runstore_decorators"):
        func._runstore_decorators = []  # type: ignore[attr-defined]
    return func


def _add_decorator(func: Callable[..., Any], name: str, attributes: dict[str, Any]) -> Callable[..., Any]:
    decorators = getattr(func, "_runstore_decorators", None)
    if decorators is None:
        decorators = func._runstore_decorators = []  # type: ignore[attr-defined]
    if any(d["name"] == name for d in decorators):
        raise _definition_error(f"step {func.__name__!r} has @{name} twice")
    decorators.append({"name": name, "attributes": attributes, "statically_defined": True})
    return func


#: Where a step keeps the arguments of its decorators that wait for config values:
#: ``{index of the record in _runstore_decorators: (factory, args, kwargs)}``.
DEFERRED_ATTR = "_runstore_deferred"


def _config_aware(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Let a step decorator take config expressions (``@retry(times=config_expr("cfg.n"))``,
    ``@executor(config_expr("cfg.where"))``, ``@card(type=cfg.card_type)``).

    With an expression among its arguments the decorator is recorded now (empty
    attributes), with its arguments kept aside; ``runtime.configs.resolve_decorators``
    checks and fills them in once the run's config values are known, before anything runs.
    """
    import functools

    @functools.wraps(factory)
    def decorator(*args: Any, **kwargs: Any) -> Any:
        if not is_lazy(args) and not is_lazy(kwargs):
            return factory(*args, **kwargs)
        func = None
        if args and callable(args[0]) and not is_lazy(args[0]):  # retry(f, times=...): the step first
            func, args = args[0], args[1:]
        name = factory.__name__

        def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
            if name == "card":  # several cards per step: their ids are checked once resolved
                if not hasattr(f, "_runstore_decorators"):
                    f._runstore_decorators = []  # type: ignore[attr-defined]
                f._runstore_decorators.append(  # type: ignore[attr-defined]
                    {"name": name, "attributes": {}, "statically_defined": True})
            else:
                _add_decorator(f, name, {})
            index = len(f._runstore_decorators) - 1  # type: ignore[attr-defined]
            setattr(f, DEFERRED_ATTR, {**getattr(f, DEFERRED_ATTR, {}), index: (factory, args, kwargs)})
            return f

        return wrap(func) if func is not None else wrap

    return decorator


def deferred_decorators(func: Callable[..., Any]) -> dict[int, tuple[Callable[..., Any], tuple[Any, ...],
                                                                     dict[str, Any]]]:
    """The decorators of a step waiting for config values, by index in its decorator records.

    >>> from runstore import config_expr
    >>> @retry(times=config_expr("cfg.n"))
    ... @step
    ... def start(self):
    ...     self.next(self.end)
    >>> [(i, factory.__name__) for i, (factory, _, _) in deferred_decorators(start).items()]
    [(0, 'retry')]
    """
    return dict(getattr(func, DEFERRED_ATTR, None) or {})


@_config_aware
def retry(func: Callable[..., Any] | None = None, *, times: int = 3,
          minutes_between_retries: float = 0) -> Any:
    """Run a failing step again, as attempt 1, 2 ... of the same task (up to ``times`` retries).

    Retries are immediate in the local runtime (``minutes_between_retries`` is kept
    for compatibility and recorded only).

    Example
    -------
    >>> @retry(times=2)
    ... @step
    ... def train(self):
    ...     self.next(self.end)
    >>> train._runstore_decorators[-1]["attributes"]["times"]
    2
    """
    if not isinstance(times, int) or times < 0:
        raise _definition_error(f"@retry(times=...) takes a non-negative integer, not {times!r}")
    if times + 1 > MAX_ATTEMPTS - 1:
        raise _definition_error(f"The maximum number of retries is @retry(times={MAX_ATTEMPTS - 2}).")

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        return _add_decorator(f, "retry", {"times": times, "minutes_between_retries": minutes_between_retries})

    return wrap(func) if func is not None else wrap


#: Executors a step can be pinned to with :func:`executor`.
PINNABLE_EXECUTORS = ("local",)


@_config_aware
def executor(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Pin a step to an executor, whatever the run's executor is (``"local"``: this machine).

    A step that reads or writes files on the laptop (a ``start`` loading a local CSV, an
    ``end`` writing a report) keeps running here when the run sends the other steps to a
    Dask cluster (``--executor dask``, docs/executors.md).

    Example
    -------
    >>> @executor("local")
    ... @step
    ... def start(self):
    ...     self.next(self.end)
    >>> start._runstore_decorators[-1]["attributes"]["name"]
    'local'

    The name can come from a config: ``@executor(config_expr("cfg.where"))``.
    """
    if name not in PINNABLE_EXECUTORS:
        raise _definition_error(f"@executor(...) takes one of {', '.join(map(repr, PINNABLE_EXECUTORS))},"
                                  f" not {name!r}")

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        return _add_decorator(f, "executor", {"name": name})

    return wrap


@_config_aware
def catch(func: Callable[..., Any] | None = None, *, var: str | None = None,
          print_exception: bool = True) -> Any:
    """Let the flow go on when a step fails (after its retries): the error goes in ``var``.

    The task is recorded as ``caught``; ``self.<var>`` holds a :class:`CaughtException`
    (``None`` when the step succeeded).

    Example
    -------
    >>> @catch(var="error")
    ... @step
    ... def risky(self):
    ...     self.next(self.end)
    >>> risky._runstore_decorators[-1]["attributes"]["var"]
    'error'
    """
    if var is not None and (not isinstance(var, str) or not var.isidentifier() or var.startswith("_")):
        raise _definition_error(f"@catch(var=...) must be a public attribute name, not {var!r}")

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        return _add_decorator(f, "catch", {"var": var, "print_exception": print_exception})

    return wrap(func) if func is not None else wrap


@_config_aware
def timeout(func: Callable[..., Any] | None = None, *, seconds: float = 0, minutes: float = 0,
            hours: float = 0) -> Any:
    """Stop an attempt that runs longer than ``hours + minutes + seconds``; it counts as a failure.

    The step gets a :class:`~runstore.errors.TimeoutException` (in the worker process or,
    inline, in the main thread, through ``SIGALRM``); a step that ignores it, or runs on
    Dask, is stopped from outside a few seconds later (docs/flows.md). ``@retry`` runs it
    again and ``@catch`` catches it, as any failure.

    Example
    -------
    >>> @timeout(minutes=1, seconds=30)
    ... @step
    ... def train(self):
    ...     self.next(self.end)
    >>> train._runstore_decorators[-1]["attributes"]
    {'seconds': 30, 'minutes': 1, 'hours': 0}
    """
    for unit, value in (("seconds", seconds), ("minutes", minutes), ("hours", hours)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise _definition_error(f"@timeout({unit}=...) takes a non-negative number, not {value!r}")
    if seconds + 60 * minutes + 3600 * hours <= 0:
        raise _definition_error("@timeout needs a positive duration, e.g. @timeout(seconds=30)")

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        return _add_decorator(f, "timeout", {"seconds": seconds, "minutes": minutes, "hours": hours})

    return wrap(func) if func is not None else wrap


def timeout_seconds(attributes: dict[str, Any]) -> float:
    """The duration of a ``@timeout``'s attributes, in seconds.

    >>> timeout_seconds({"seconds": 5, "minutes": 1, "hours": 0})
    65.0
    """
    return float(attributes.get("seconds", 0)) + 60.0 * float(attributes.get("minutes", 0)) \
        + 3600.0 * float(attributes.get("hours", 0))


@_config_aware
def resources(func: Callable[..., Any] | None = None, *, cpu: int | float = 1, memory: int = 4096,
              gpu: int = 0, disk: int | None = None, shared_memory: int | None = None) -> Any:
    """What a step needs (CPUs, memory in MB, GPUs): recorded in each task's metadata.

    The local runtime does not reserve or limit anything; the values are kept
    (``Task.metadata_dict["resources"]``, JSON) for whoever reads the run, as Metaflow's
    ``@resources`` does when no remote compute decorator is used.

    Example
    -------
    >>> @resources(cpu=4, memory=16000)
    ... @step
    ... def train(self):
    ...     self.next(self.end)
    >>> train._runstore_decorators[-1]["attributes"]["cpu"]
    4
    """
    attributes = {"cpu": cpu, "memory": memory, "gpu": gpu, "disk": disk, "shared_memory": shared_memory}
    for name, value in attributes.items():
        if value is None and name in ("disk", "shared_memory"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise _definition_error(f"@resources({name}=...) takes a non-negative number, not {value!r}")

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        return _add_decorator(f, "resources", {k: v for k, v in attributes.items() if v is not None})

    return wrap(func) if func is not None else wrap


@_config_aware
def environment(func: Callable[..., Any] | None = None, *, vars: dict[str, str] | None = None) -> Any:
    """Set environment variables while the step runs (and only then).

    Example
    -------
    >>> @environment(vars={"OMP_NUM_THREADS": "1"})
    ... @step
    ... def train(self):
    ...     self.next(self.end)
    >>> train._runstore_decorators[-1]["attributes"]
    {'vars': {'OMP_NUM_THREADS': '1'}}
    """
    vars = {} if vars is None else vars
    if not isinstance(vars, dict) or not all(
            isinstance(k, str) and k and "=" not in k and "\0" not in k for k in vars):
        raise _definition_error(f"@environment(vars=...) takes a dict of variable names to strings, not {vars!r}")
    for key, value in vars.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or "\0" in str(value):
            raise _definition_error(f"@environment(vars=...): the value of {key!r} must be a string, not {value!r}")

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        return _add_decorator(f, "environment", {"vars": {k: str(v) for k, v in vars.items()}})

    return wrap(func) if func is not None else wrap


#: The step decorators ``--with NAME[:k=v,...]`` can add, by name.
DECORATORS: dict[str, Callable[..., Any]] = {
    "retry": retry, "catch": catch, "timeout": timeout, "resources": resources, "environment": environment,
}


# ---------------------------------------------------------------- parameters


class _JSONType:
    """Parameter type that parses JSON from the command line.

    Example
    -------
    >>> JSONType.convert('{"k": [1, 2]}')
    {'k': [1, 2]}
    """

    name = "JSON"
    __name__ = "JSONType"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ParameterError(f"{value} is not a valid JSON object") from None

    def __repr__(self) -> str:
        return "JSONType"


#: Use as ``Parameter("cfg", type=JSONType, default='{"k": 1}')``.
JSONType = _JSONType()

_TYPES: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool", JSONType: "JSONType"}


class Parameter:
    """A value given to a run (``--name value`` on the command line), read-only in steps.

    Parameters
    ----------
    name : str
        The command-line name (``--name``). The artifact and attribute name is the
        class attribute the parameter is assigned to, as in Metaflow:
        ``model_version = Parameter("model-version")`` gives ``--model-version`` and
        ``self.model_version``.
    default : optional
        Used when the option is not given; its type gives the parameter's type.
    type : str, int, float, bool or JSONType, optional
    help : str, optional
    required : bool
        Fail (usage error, nothing stored) when the option is missing.
    separator : str, optional
        Split a string value into a list on this separator (str parameters only).

    Example
    -------
    >>> p = Parameter("learning-rate", default=0.1)
    >>> p.type, p.convert("0.01")
    (<class 'float'>, 0.01)
    """

    IS_INCLUDE_FILE = False

    def __init__(self, name: str, default: Any = None, type: Any = None, help: str | None = None,
                 required: bool | None = None, show_default: bool | None = None,
                 separator: str | None = None, **kwargs: Any) -> None:
        if not isinstance(name, str) or not name or name.startswith("-"):
            raise _definition_error(f"Parameter name must be a non-empty string, not {name!r}")
        if name.lower() in RESERVED_PARAMETER_NAMES or name.replace("_", "-").lower() in RESERVED_PARAMETER_NAMES:
            raise _one_line_if_main(_caller_module(), FlowDefinitionError(
                f"Parameter name {name!r} is a reserved word (an option of 'run'); choose another name"))
        self.name = name
        self.default = default
        type_given = type
        if type is None:
            type = _infer_type(default)
        if type not in _TYPES:
            raise _definition_error(
                f"Parameter {name!r}: type must be str, int, float, bool or JSONType, not {type!r}")
        self.type = type
        #: A callable default without ``type=``: the type of the value it returns is the type.
        self.type_from_default = callable(default) and type_given is None
        self.help = help
        self.required = bool(required)
        self.show_default = True if show_default is None else show_default
        self.separator = separator
        if separator is not None and type is not str:
            raise _definition_error(f"Parameter {name!r}: separator= only works with str parameters")
        self.attr_name: str = name.replace("-", "_")
        self.kwargs = kwargs

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr_name = attr

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__.get("_runstore")
        if state is None:
            return self.default
        return state.parameter(self.attr_name)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"Flow level attributes and Parameters are not modifiable: {self.attr_name}")

    @property
    def type_name(self) -> str:
        """The parameter's type as the command line shows it.

        Example
        -------
        >>> Parameter("learning-rate", default=0.1).type_name
        'float'
        """
        return _TYPES[self.type]

    @property
    def option(self) -> str:
        """The command-line option, e.g. ``--model-version``."""
        return f"--{self.name}"

    def convert(self, value: Any) -> Any:
        """Turn a command-line (or Runner) value into the parameter's type.

        Raises
        ------
        ParameterError
            When the value does not fit the type.
        """
        if value is None:
            return None
        if self.separator is not None and isinstance(value, (list, tuple)):
            return [str(v) for v in value]  # already split (the command line converts once, the run again)
        try:
            if self.type is JSONType:
                value = JSONType.convert(value)
            elif self.type is bool:
                value = _to_bool(value)
            elif self.type in (int, float):
                if isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
                    raise ValueError
                value = self.type(value)
                if self.type is int and isinstance(value, float):
                    raise ValueError
            else:
                value = value if isinstance(value, str) else str(value)
        except ParameterError:
            raise
        except (TypeError, ValueError):
            raise ParameterError(f"{value!r} is not a valid {self.type_name}") from None
        if self.separator is not None and isinstance(value, str):
            value = value.split(self.separator)
        return value

    def default_value(self, context: "ParameterContext | None" = None) -> Any:
        """The value used when no option is given (converted like a command-line value).

        A callable default is called here, with ``context`` (a :class:`ParameterContext`)
        when it takes an argument, as Metaflow's deploy-time defaults; a function of no
        argument is called with none.

        Raises
        ------
        ParameterError
            The default function raised, or returned a value that does not fit the type.

        Example
        -------
        >>> Parameter("when", default=lambda ctx: ctx.parameter_name.upper()).default_value()
        'WHEN'
        """
        default = self.default
        if callable(default):
            default = self._call_default(context)
            if self.type_from_default:
                if self.separator is not None and isinstance(default, str):
                    return default.split(self.separator)
                return default
            try:
                return self.convert(default)
            except ParameterError as exc:
                raise ParameterError(f"Parameter {self.name!r}: its default function returned {default!r}: "
                                     f"{exc}") from None
        if isinstance(default, str) and self.type is not str:
            return self.convert(default)
        if self.separator is not None and isinstance(default, str):
            return default.split(self.separator)
        return default

    def _call_default(self, context: "ParameterContext | None") -> Any:
        ctx = (context or ParameterContext.for_flow(None))._replace(parameter_name=self.name)
        func = self.default
        try:
            wants = _positional_arity(func)
        except (TypeError, ValueError):  # a builtin without a signature: Metaflow's way, ctx first
            wants = 1
        try:
            return func() if wants == 0 else func(ctx) if wants == 1 else func(ctx, False)
        except Exception as exc:  # noqa: BLE001 - any error of the user's function
            raise ParameterError(f"Parameter {self.name!r}: its default function raised "
                                 f"{type(exc).__name__}: {exc}") from None

    def typed_for(self, value: Any) -> "Parameter":
        """This parameter, or a copy typed like ``value`` when its type comes from a callable default."""
        if not self.type_from_default or value is None:
            return self
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.type = _infer_type(value)
        copy.type_from_default = False
        if copy.type is not str:
            copy.separator = None
        return copy

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, default={self.default!r}, type={self.type_name})"


class ParameterContext(NamedTuple):
    """What a callable ``Parameter`` default receives, as Metaflow's ``ParameterContext``.

    Example
    -------
    >>> ctx = ParameterContext("TrainFlow", "anne", "alpha", print, "runstore", None)
    >>> ctx.flow_name, ctx.parameter_name
    ('TrainFlow', 'alpha')
    """

    flow_name: str | None
    user_name: str | None
    parameter_name: str | None
    logger: Callable[..., Any]
    ds_type: str
    configs: Any

    @classmethod
    def for_flow(cls, flow_name: str | None) -> "ParameterContext":
        """The context of a run of ``flow_name`` started by whoever runs this process."""
        from .util import resolve_username

        try:
            user: str | None = resolve_username()
        except RunstoreError:
            user = None
        return cls(flow_name, user, None, _log_to_stderr, "runstore", None)


def _log_to_stderr(*args: Any, **kwargs: Any) -> None:
    print(*args, file=sys.stderr)


def _positional_arity(func: Callable[..., Any]) -> int:
    """How many positional arguments ``func`` accepts (2 for ``*args``)."""
    import inspect  # only for a callable default, not on every run's path

    count = 0
    for param in inspect.signature(func).parameters.values():
        if param.kind == param.VAR_POSITIONAL:
            return 2
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _infer_type(default: Any) -> Any:
    if callable(default) or default is None:
        return str
    if isinstance(default, bool):
        return bool
    for kind in (int, float, str):
        if isinstance(default, kind):
            return kind
    if isinstance(default, (dict, list)):
        return JSONType
    return str


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("0", "false", "f", "no", "n", "off"):
        return False
    raise ValueError(value)


class IncludeFile(Parameter):
    """A file read when the run starts; its content is the artifact (str, or bytes).

    Parameters
    ----------
    name : str
        Command-line name (``--name PATH``).
    default : str, optional
        Path used when the option is not given.
    is_text : bool
        Give back ``str`` decoded with ``encoding`` (else ``bytes``).

    Example
    -------
    >>> f = IncludeFile("data", default="data.csv")
    >>> f.is_text, f.type
    (True, <class 'str'>)
    """

    IS_INCLUDE_FILE = True

    def __init__(self, name: str, default: str | None = None, is_text: bool = True,
                 encoding: str = "utf-8", required: bool | None = None, help: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, default=default, type=str, help=help, required=required, **kwargs)
        self.is_text = is_text
        self.encoding = encoding

    def read(self, path: str | None) -> str | bytes | None:
        """Read the file at ``path`` (``ParameterError`` when it cannot be read)."""
        if path is None:
            return None
        try:
            with open(os.path.expanduser(path), "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ParameterError(f"cannot read {path!r}: {exc.strerror or exc}") from None
        if not self.is_text:
            return data
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError:
            raise ParameterError(f"{path!r} is not {self.encoding} text (use is_text=False)") from None


# ---------------------------------------------------------------- task state


class ForeachFrame:
    """One level of foreach: the split step, its variable, this child's index and the count."""

    __slots__ = ("step", "var", "index", "num_splits", "value_ref")

    def __init__(self, step: str, var: str, index: int, num_splits: int, value_ref: Any = None) -> None:
        self.step = step
        self.var = var
        self.index = index
        self.num_splits = num_splits
        self.value_ref = value_ref

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.step, self.var, self.index, self.num_splits, self.value_ref)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.step, self.var, self.index, self.num_splits, self.value_ref = state

    def as_json(self) -> dict[str, Any]:
        ref = self.value_ref
        return {"step": self.step, "var": self.var, "index": self.index, "num_splits": self.num_splits,
                "blob_key": getattr(ref, "blob_key", None), "encoding": getattr(ref, "encoding", None)}


class TaskState:
    """What a flow instance needs while it runs as a task (set by the runtime)."""

    def __init__(self, step_name: str, load: Callable[[Any], Any], inherited: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None, foreach: list[ForeachFrame] | None = None,
                 is_join: bool = False, readonly: bool = False) -> None:
        self.step_name = step_name
        self.load = load
        self.inherited = inherited if inherited is not None else {}
        self.params = params if params is not None else {}
        self.param_values: dict[str, Any] = {}
        self.foreach = foreach if foreach is not None else []
        self.is_join = is_join
        self.readonly = readonly
        self.transition: tuple[tuple[str, ...], str | None] | None = None
        #: A switch's ``({case: step}, condition attribute)`` as called.
        self.switch: tuple[dict[str, str], str] | None = None
        self.input_value: Any = None
        self.input_loaded = False

    def parameter(self, name: str) -> Any:
        if name not in self.param_values:
            if name not in self.params:
                raise AttributeError(name)
            self.param_values[name] = self.load(self.params[name])
        return self.param_values[name]


_INTERNAL = "_runstore"

#: Why each public member of ``FlowSpec`` cannot be an artifact, parameter or constant name.
_RESERVED_WHY = {
    "next": "self.next() says which step runs next",
    "input": "self.input is the element of a foreach",
    "index": "self.index is the position in a foreach",
    "foreach_stack": "self.foreach_stack() lists the enclosing foreaches",
    "merge_artifacts": "self.merge_artifacts() merges the inputs of a join",
    "name": "self.name is the flow's name",
    "script_name": "self.script_name is the flow file's name",
}
#: Attribute names a flow cannot use for a parameter, constant, step or artifact.
RESERVED_ATTRIBUTE_NAMES = frozenset(_RESERVED_WHY)


def _check_reserved_attributes(cls: type) -> None:
    """One clear error when a subclass defines a member of ``FlowSpec``'s own (at class creation)."""
    for klass in cls.__mro__:
        if klass is FlowSpec or klass is object:
            continue
        for attr, value in vars(klass).items():
            if attr not in RESERVED_ATTRIBUTE_NAMES:
                continue
            kind = ("the parameter" if isinstance(value, Parameter) else
                    "the step" if getattr(value, STEP_MARK, False) else "the class attribute")
            raise _one_line_if_main(cls, FlowDefinitionError(
                f"{cls.__name__}: {kind} {attr!r} has a name reserved by FlowSpec "
                f"({_RESERVED_WHY[attr]}); choose another name"))


def _definition_error(message: str) -> FlowDefinitionError:
    """A ``FlowDefinitionError`` of a decorator or ``Parameter`` written in the flow file (see below)."""
    return _one_line_if_main(_caller_module(), FlowDefinitionError(message))  # type: ignore[return-value]


def _caller_module() -> str:
    """The module of the first frame outside this one (where a ``Parameter`` is written)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_globals.get("__name__", "") if frame is not None else ""


def _one_line_if_main(cls_or_module: Any, exc: BaseException) -> BaseException:
    """Return ``exc``; when it is about to stop a flow script (``python flow.py``), it prints as one line.

    A definition error raised while the flow file's module body runs cannot be caught
    by the flow's command line (it does not exist yet): a one-shot ``sys.excepthook``
    prints it as ``Error: ...`` instead of a traceback. Imports, notebooks and
    ``Runner`` see the exception as usual.
    """
    module = cls_or_module if isinstance(cls_or_module, str) else getattr(cls_or_module, "__module__", None)
    if module != "__main__" or hasattr(sys, "ps1") or "IPython" in sys.modules:
        return exc
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if value is exc and not os.environ.get("RUNSTORE_DEBUG"):
            from .util import printable

            sys.stderr.write(f"Error: {printable(str(value))}\n")
            return
        previous(kind, value, tb)

    sys.excepthook = hook
    return exc


class FlowSpec:
    """Base class of every flow.

    Running the file (``if __name__ == "__main__": MyFlow()``) starts the flow's
    command line (``python flow.py run``); inside a task, ``self`` carries the
    artifacts.

    Example
    -------
    >>> class Flow1(FlowSpec):
    ...     @step
    ...     def start(self):
    ...         self.next(self.end)
    ...     @step
    ...     def end(self):
    ...         pass
    >>> [step.name for step in Flow1._graph()]
    ['start', 'end']
    """

    def __init__(self, use_cli: bool = True) -> None:
        if use_cli:
            # The one upward import (named in tests/test_layering.py): a flow file's
            # `MyFlow()` under __main__ starts the flow's command line.
            from .cli.flow import main

            main(type(self))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_reserved_attributes(cls)

    # ------------------------------------------------------------ names

    @property
    def name(self) -> str:
        """The flow's name (its class name), as Metaflow's ``self.name``; read-only.

        Example
        -------
        >>> class NamedFlow(FlowSpec):
        ...     pass
        >>> NamedFlow(use_cli=False).name
        'NamedFlow'
        """
        return type(self).__name__

    @property
    def script_name(self) -> str:
        """The base name of the file the flow is defined in, as Metaflow's ``self.script_name``.

        A flow defined in a notebook cell gives ``notebook_cell.py``, the name its code
        snapshot is stored under.

        Example
        -------
        >>> class ScriptFlow(FlowSpec):
        ...     @step
        ...     def start(self):
        ...         self.next(self.end)
        ...     @step
        ...     def end(self):
        ...         pass
        >>> ScriptFlow(use_cli=False).script_name.endswith(".py")
        True
        """
        code = getattr(getattr(type(self), "start", None), "__code__", None)
        path = code.co_filename if code is not None else ""
        if not path or path.startswith("<"):
            return "notebook_cell.py"  # runtime/environment.py CELL_SCRIPT (a layer above this one)
        return os.path.basename(path[:-1] if path.endswith(".pyc") else path)

    # ------------------------------------------------------------ class helpers

    @classmethod
    def _graph(cls) -> Any:
        graph = cls.__dict__.get("_runstore_graph")
        if graph is None:
            from .graph import FlowGraph

            graph = FlowGraph(cls)
            for node in graph:  # an artifact named like a FlowSpec member (static check, with the line)
                for attr, line in sorted(node.assigned.items(), key=lambda kv: kv[1]):
                    if attr in RESERVED_ATTRIBUTE_NAMES:
                        raise FlowDefinitionError(
                            f"{node.file}, step {node.name!r} (line {line}): self.{attr} is reserved by "
                            f"FlowSpec ({_RESERVED_WHY[attr]}) and cannot be an artifact; choose another name")
            cls._runstore_graph = graph  # type: ignore[attr-defined]
        return graph

    @classmethod
    def _constants(cls) -> dict[str, Any]:
        """Class-level constants by name: read-only in steps and stored as artifacts of every task.

        As Metaflow: every public class attribute that is not a parameter, a method,
        a property or a class. Modules are left out too (they cannot be stored).

        Example
        -------
        >>> class ConstFlow(FlowSpec):
        ...     LIMIT = 3
        ...     alpha = Parameter("alpha", default=1)
        >>> ConstFlow._constants()
        {'LIMIT': 3}
        """
        cached = cls.__dict__.get("_runstore_constants")
        if cached is not None:
            return cached
        found = {}
        for attr in dir(cls):
            if attr.startswith("_") or attr in RESERVED_ATTRIBUTE_NAMES:
                continue
            # as inspect.getattr_static, for a class attribute (inspect stays off the run path)
            value = next((vars(klass)[attr] for klass in cls.__mro__ if attr in vars(klass)), None)
            if isinstance(value, (staticmethod, classmethod)):
                continue
            value = getattr(cls, attr)
            if isinstance(value, (Parameter, property, type, types.FunctionType, types.MethodType,
                                  types.BuiltinFunctionType, types.ModuleType)) \
                    or getattr(value, STEP_MARK, False) or getattr(value, "IS_CONFIG_PARAMETER", False):
                continue
            found[attr] = value
        cls._runstore_constants = found  # type: ignore[attr-defined]
        return found

    @classmethod
    def _parameters(cls) -> list[Parameter]:
        """The flow's parameters in name order (checked for clashes)."""
        found: dict[str, Parameter] = {}
        for attr in dir(cls):
            value = getattr(cls, attr, None)
            if isinstance(value, Parameter):
                value.attr_name = attr
                found[attr] = value
        seen: dict[str, str] = {}
        for attr, param in found.items():
            key = param.name.replace("_", "-").lower()
            if key in seen:
                raise FlowDefinitionError(
                    f"Parameter {param.name!r} is specified twice (as {seen[key]} and {attr}); "
                    "parameter names are case-insensitive")
            seen[key] = attr
        return [found[a] for a in sorted(found)]

    @classmethod
    def _new_task(cls, state: TaskState) -> "FlowSpec":
        obj = cls.__new__(cls)
        obj.__dict__[_INTERNAL] = state
        return obj

    # ------------------------------------------------------------ artifacts

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__.get(_INTERNAL)
        if state is None or name.startswith("__"):
            raise AttributeError(name)
        if name in state.inherited:
            value = state.load(state.inherited[name])
            self.__dict__[name] = value
            return value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        state = self.__dict__.get(_INTERNAL)
        if state is not None and state.readonly:
            raise AttributeError(f"inputs of a join are read-only (setting {name!r})")
        if name.startswith(_INTERNAL) or name in RESERVED_ATTRIBUTE_NAMES:
            why = f" ({_RESERVED_WHY[name]})" if name in _RESERVED_WHY else ""
            raise AttributeError(f"{name!r} is reserved by FlowSpec{why} and cannot be set")
        if state is not None and name in type(self)._constants():
            raise AttributeError(f"Flow level attributes and Parameters are not modifiable: {name} "
                                 "is a class-level constant of the flow")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        state = self.__dict__.get(_INTERNAL)
        found = False
        if name in self.__dict__ and not name.startswith(_INTERNAL):
            del self.__dict__[name]
            found = True
        if state is not None and name in state.inherited:
            del state.inherited[name]
            found = True
        if not found:
            raise AttributeError(name)

    def __contains__(self, name: str) -> bool:
        state = self.__dict__.get(_INTERNAL)
        return (name in self.__dict__ and not name.startswith(_INTERNAL)) or bool(
            state and (name in state.inherited or name in state.params))

    def _artifact_names(self) -> list[str]:
        state = self.__dict__.get(_INTERNAL)
        names = [n for n in self.__dict__ if not n.startswith(_INTERNAL)]
        if state is not None:
            names += [n for n in state.inherited if n not in self.__dict__]
        return names

    # ------------------------------------------------------------ transitions

    def next(self, *steps: Any, foreach: str | None = None, condition: str | None = None) -> None:
        """Say which step(s) run after this one (the last statement of a step).

        ``self.next(self.a)`` continues linearly, ``self.next(self.a, self.b)``
        branches, ``self.next(self.a, foreach='items')`` runs ``a`` once per element
        of ``self.items``, ``self.next({'high': self.a, 'low': self.b}, condition='level')``
        runs only the step whose case equals ``self.level`` (a switch).
        """
        state = self.__dict__.get(_INTERNAL)
        names = []
        switch = None
        if condition is not None or any(isinstance(target, dict) for target in steps):
            if condition is None or len(steps) != 1 or not isinstance(steps[0], dict):
                raise FlowDefinitionError("a switch is written self.next({'case': self.step, ...}, "
                                          "condition='attr')")
            cases = {}
            for case, target in steps[0].items():
                name = getattr(target, "__name__", None)
                if name is None or not getattr(target, STEP_MARK, False):
                    raise FlowDefinitionError(f"self.next() takes steps (self.<step>), not {target!r}")
                cases[case] = name
            switch = (cases, condition)
            steps = tuple(getattr(self, n) for n in dict.fromkeys(cases.values()))
        for target in steps:
            name = getattr(target, "__name__", None)
            if name is None or not getattr(target, STEP_MARK, False):
                raise FlowDefinitionError(f"self.next() takes steps (self.<step>), not {target!r}")
            names.append(name)
        if state is not None:
            if state.transition is not None:
                raise FlowDefinitionError(f"step {state.step_name!r} called self.next() twice")
            state.transition = (tuple(names), foreach)
            state.switch = switch

    # ------------------------------------------------------------ foreach

    @property
    def input(self) -> Any:
        """Inside a foreach child: the element of the foreach list this task handles."""
        state = self.__dict__.get(_INTERNAL)
        if state is None or not state.foreach:
            return None
        if not state.input_loaded:
            state.input_value = state.load(state.foreach[-1].value_ref)
            state.input_loaded = True
        return state.input_value

    @property
    def index(self) -> int | None:
        """Inside a foreach child: its position in the foreach list (0-based)."""
        state = self.__dict__.get(_INTERNAL)
        if state is None or not state.foreach:
            return None
        return state.foreach[-1].index

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """``(index, num_splits, value)`` for every enclosing foreach, outermost first."""
        state = self.__dict__.get(_INTERNAL)
        if state is None:
            return []
        return [(f.index, f.num_splits, state.load(f.value_ref)) for f in state.foreach]

    # ------------------------------------------------------------ joins

    def merge_artifacts(self, inputs: "Inputs", exclude: Sequence[str] = (),
                        include: Sequence[str] = ()) -> None:
        """Copy into this join the artifacts the branches agree on (by reference, no copy).

        Artifacts already set on ``self`` are left alone. An artifact with different
        values on different branches raises :class:`MergeArtifactsError` listing them.
        ``include=`` names that are already on ``self`` (parameters, artifacts set in
        the join) are skipped, as in Metaflow; any other name no input has is an error.

        Example
        -------
        >>> # in a join step:  self.merge_artifacts(inputs, exclude=["scratch"])
        """
        state = self.__dict__.get(_INTERNAL)
        step_name = state.step_name if state else "?"
        if state is None or not state.is_join:
            raise MergeArtifactsError(
                f"merge_artifacts can only be called in a join and step {step_name} is not a join")
        if include and exclude:
            raise MergeArtifactsError("merge_artifacts takes include= or exclude=, not both")
        candidates: dict[str, list[Any]] = {}
        for inp in inputs:
            inp_state = inp.__dict__[_INTERNAL]
            for name, ref in inp_state.inherited.items():
                if name.startswith("_") or name in state.params:
                    continue
                candidates.setdefault(name, []).append(ref)
        if include:
            missing = [n for n in include if n not in candidates and n not in self.__dict__
                       and n not in state.params and n not in state.inherited]
            if missing:
                raise MergeArtifactsError(
                    f"Step {step_name}: include= names artifacts no input has: {', '.join(missing)}")
        conflicts = []
        merged = {}  # set on self only when nothing is in conflict (all or nothing)
        for name, refs in sorted(candidates.items()):
            if (include and name not in include) or name in exclude or name in self.__dict__:
                continue
            if len({r.blob_key for r in refs}) > 1:
                conflicts.append(name)
                continue
            merged[name] = refs[0]
        if conflicts:
            raise MergeArtifactsError(
                f"Step {step_name} cannot merge the following artifacts due to them having conflicting "
                f"values: [{', '.join(conflicts)}]. Set them explicitly (self.<name> = ...) before "
                "calling merge_artifacts, or exclude them.")
        state.inherited.update(merged)


class Inputs:
    """The ``inputs`` of a join: iterable, indexable, and an attribute per branch step.

    Example
    -------
    >>> # def join(self, inputs):  inputs[0].x, inputs.train_a.x, [i.x for i in inputs]
    """

    def __init__(self, flows: Sequence[FlowSpec], steps: Sequence[str]) -> None:
        self._flows = list(flows)
        self._by_step: dict[str, FlowSpec] = {}
        for flow, name in zip(flows, steps):
            self._by_step.setdefault(name, flow)

    def __iter__(self) -> Iterator[FlowSpec]:
        return iter(self._flows)

    def __len__(self) -> int:
        return len(self._flows)

    def __getitem__(self, index: int) -> FlowSpec:
        return self._flows[index]

    def __getattr__(self, name: str) -> FlowSpec:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.__dict__["_by_step"][name]
        except KeyError:
            raise AttributeError(f"no input from step {name!r}") from None


def __getattr__(name: str) -> Any:
    """``CaughtException`` lives in :mod:`runstore.codecs` (the safe loader names it there);
    it is looked up on first use so that ``import runstore`` does not load the codecs."""
    if name == "CaughtException":
        from .codecs import CaughtException

        return CaughtException
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
