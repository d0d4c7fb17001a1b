"""A flow's parameter values for a new run: given ones converted, the rest defaulted.

Where a value comes from, first found wins: the ``--name`` option (or the Runner's
keyword), the environment variable ``RUNSTORE_RUN_<NAME>``, then ``METAFLOW_RUN_<NAME>``
(so a Metaflow user's environment keeps working), then the default. ``<NAME>`` is the
parameter's name upper-cased with ``-`` turned into ``_`` (``--learning-rate`` reads
``RUNSTORE_RUN_LEARNING_RATE``); an empty variable counts as unset, as in click.

Example
-------
>>> from runstore import FlowSpec, Parameter, step
>>> class P(FlowSpec):
...     alpha = Parameter("alpha", default=0.5)
...     @step
...     def start(self):
...         self.next(self.end)
...     @step
...     def end(self):
...         pass
>>> resolve_parameters(P, {}, environ={}), resolve_parameters(P, {"alpha": "2"}, environ={})
({'alpha': 0.5}, {'alpha': 2.0})
>>> resolve_parameters(P, {}, environ={"METAFLOW_RUN_ALPHA": "3", "RUNSTORE_RUN_ALPHA": "4"})
{'alpha': 4.0}
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ..errors import ParameterError

__all__ = ["resolve_parameters", "environment_values", "ENV_PREFIXES"]

#: Environment variable prefixes a parameter value is read from, in order of precedence.
ENV_PREFIXES = ("RUNSTORE_RUN_", "METAFLOW_RUN_")


def env_names(param: Any) -> list[str]:
    """The environment variables that can give ``param`` a value, in order of precedence.

    Example
    -------
    >>> from runstore import Parameter
    >>> env_names(Parameter("learning-rate", default=0.1))
    ['RUNSTORE_RUN_LEARNING_RATE', 'METAFLOW_RUN_LEARNING_RATE']
    """
    key = param.name.replace("-", "_").upper()
    return [prefix + key for prefix in ENV_PREFIXES]


def environment_values(flow_class: Any, environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """``{attr_name: (variable, text)}`` for the parameters set through the environment."""
    environ = os.environ if environ is None else environ
    found = {}
    for param in flow_class._parameters():
        for var in env_names(param):
            text = environ.get(var)
            if text:
                found[param.attr_name] = (var, text)
                break
    return found


def resolve_parameters(flow_class: Any, given: dict[str, Any],
                       environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parameter values by attribute name: given ones, else from the environment, else defaults.

    Values are converted to each parameter's type once, here; files are read; a
    callable default is called with a :class:`~runstore.flowspec.ParameterContext`
    (and, without ``type=``, the type of what it returns is the type given values are
    converted to). Raises ``ParameterError`` (nothing stored yet) for a bad or missing value.
    """
    from ..flowspec import ParameterContext

    context = ParameterContext.for_flow(getattr(flow_class, "__name__", None))
    from_env = environment_values(flow_class, environ)
    values = {}
    for param in flow_class._parameters():
        raw = given.get(param.attr_name)
        source = f"'{param.option}'"
        if raw is None and param.attr_name in from_env:
            var, raw = from_env[param.attr_name]
            source = f"'{param.option}' (from {var})"
        if raw is None and param.required:
            raise ParameterError(f"Missing option '{param.option}'.")
        if param.IS_INCLUDE_FILE:
            values[param.attr_name] = param.read(raw if raw is not None else param.default)
            continue
        if raw is None:
            value = param.default_value(context)
        else:
            typed = param.typed_for(param.default_value(context)) if param.type_from_default else param
            try:
                value = typed.convert(raw)
            except ParameterError as exc:
                raise ParameterError(f"Invalid value for {source}: {exc}") from None
        values[param.attr_name] = value
    return values
