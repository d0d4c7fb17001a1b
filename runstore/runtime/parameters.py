"""A flow's parameter values for a new run: given ones converted, the rest defaulted.

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
>>> resolve_parameters(P, {}), resolve_parameters(P, {"alpha": "2"})
({'alpha': 0.5}, {'alpha': 2.0})
"""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError

__all__ = ["resolve_parameters"]


def resolve_parameters(flow_class: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Parameter values by attribute name: given ones (converted), else defaults; files read.

    Raises ``ParameterError`` (nothing stored yet) for a bad or missing value.
    """
    values = {}
    for param in flow_class._parameters():
        raw = given.get(param.attr_name)
        if raw is None and param.required:
            raise ParameterError(f"Missing option '{param.option}'.")
        if param.IS_INCLUDE_FILE:
            values[param.attr_name] = param.read(raw if raw is not None else param.default)
            continue
        if raw is None:
            value = param.default_value()
        else:
            try:
                value = param.convert(raw)
            except ParameterError as exc:
                raise ParameterError(f"Invalid value for '{param.option}': {exc}") from None
        values[param.attr_name] = value
    return values
