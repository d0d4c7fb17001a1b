"""Configs: ``Config``, ``ConfigValue`` and ``config_expr``, as in Metaflow (SPEC §14).

A config is a read-only dict fixed *before* the run starts (from a file, a JSON value
or a default), so that it can shape the flow itself: decorator arguments
(``@retry(times=config_expr("cfg.retries"))``, ``@resources(cpu=cfg.cpu)``) and
``@project(name=config_expr("cfg.project"))`` are resolved from it before any step
runs. Inside steps it is ``self.cfg`` — a :class:`ConfigValue` reading ``self.cfg.a.b``
or ``self.cfg["a"]`` — and it is stored with the run like a parameter.

This module only describes configs and evaluates expressions over given values;
reading files and applying the values to a flow is :mod:`runstore.runtime.configs`.

Example
-------
>>> cfg = ConfigValue({"model": {"layers": [64, 32]}, "retries": 2})
>>> cfg.model.layers, cfg["retries"]
([64, 32], 2)
>>> config_expr("cfg.retries").evaluate({"cfg": {"retries": 2}})
2
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from typing import Any, Callable, Iterator

from .errors import FlowDefinitionError, ParameterError

__all__ = ["Config", "ConfigValue", "ConfigExpr", "config_expr", "flow_configs", "is_lazy", "evaluate",
           "parse_config_text", "plain"]


class ConfigValue(Mapping):  # type: ignore[type-arg]
    """A read-only nested dict with attribute access: ``cfg.a.b`` is ``cfg["a"]["b"]``.

    Nested dicts (also inside lists) come back as ``ConfigValue`` too. It compares equal
    to the plain dict it holds; :meth:`to_dict` gives that dict back.

    Example
    -------
    >>> cfg = ConfigValue({"a": {"b": 1}})
    >>> cfg.a.b, cfg == {"a": {"b": 1}}
    (1, True)
    >>> cfg.a = 2
    Traceback (most recent call last):
    ...
    TypeError: a config is read-only (setting 'a')
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", {k: _wrap(v) for k, v in data.items()})

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"no key {name!r} in the config (keys: {', '.join(map(str, self._data)) or 'none'})"
                                 ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"a config is read-only (setting {name!r})")

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"a config is read-only (deleting {name!r})")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(f"a config is read-only (setting {key!r})")

    def __delitem__(self, key: Any) -> None:
        raise TypeError(f"a config is read-only (deleting {key!r})")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConfigValue):
            return self._data == other._data
        return isinstance(other, Mapping) and self._data == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.to_dict())

    def __dir__(self) -> list[str]:
        return sorted(set(dir(type(self))) | {k for k in self._data if isinstance(k, str) and k.isidentifier()})

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConfigValue, (self.to_dict(),))

    def to_dict(self) -> dict[str, Any]:
        """The plain nested dict (lists stay lists).

        >>> ConfigValue({"a": [{"b": 1}]}).to_dict()
        {'a': [{'b': 1}]}
        """
        return plain(self)


def _wrap(value: Any) -> Any:
    if isinstance(value, ConfigValue):
        return value
    if isinstance(value, Mapping):
        return ConfigValue(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """``value`` with every mapping (``ConfigValue`` included) turned into a plain dict.

    >>> plain(ConfigValue({"a": (1, {"b": 2})}))
    {'a': (1, {'b': 2})}
    """
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


class ConfigExpr:
    """An expression over the flow's configs, evaluated once their values are known.

    Made by :func:`config_expr`, or by reading a key of a ``Config`` in the class body
    (``cfg.a.b``, ``cfg["a"]``); attribute and item access on it extend the expression.

    Example
    -------
    >>> expr = config_expr("cfg").train["lr"]
    >>> expr
    config_expr("cfg.train['lr']")
    >>> expr.evaluate({"cfg": {"train": {"lr": 0.1}}})
    0.1
    """

    __slots__ = ("_expr", "_globals")

    def __init__(self, expr: str, scope: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_expr", expr)
        object.__setattr__(self, "_globals", scope)

    def __getattr__(self, name: str) -> "ConfigExpr":
        if name.startswith("_"):  # dunders, and runstore's own markers looked up on anything
            raise AttributeError(name)
        return ConfigExpr(f"{self._expr}.{name}", self._globals)

    def __getitem__(self, key: Any) -> "ConfigExpr":
        return ConfigExpr(f"{self._expr}[{key!r}]", self._globals)

    def __repr__(self) -> str:
        return f'config_expr("{self._expr}")'

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConfigExpr, (self._expr,))

    @property
    def expression(self) -> str:
        """The expression's text, e.g. ``"cfg.retries"``."""
        return self._expr

    def evaluate(self, configs: Mapping[str, Any]) -> Any:
        """The expression's value with each config bound to its name (as a ``ConfigValue``).

        A missing key or config is a one-line :class:`~runstore.errors.FlowDefinitionError`.

        >>> config_expr("cfg.missing").evaluate({"cfg": {"a": 1}})
        Traceback (most recent call last):
        ...
        runstore.errors.FlowDefinitionError: config_expr("cfg.missing"): no key 'missing' in the config (keys: a)
        """
        names = {name: ConfigValue(value) if isinstance(value, Mapping) else value
                 for name, value in configs.items()}
        try:
            # The flow author's own expression, from their own flow file (as Metaflow's eval).
            return eval(self._expr, dict(self._globals or {}), names)  # noqa: S307
        except NameError as exc:
            known = ", ".join(sorted(configs)) or "none"
            raise FlowDefinitionError(f"config_expr(\"{self._expr}\"): {exc} (configs: {known})") from None
        except KeyError as exc:
            raise FlowDefinitionError(f"config_expr(\"{self._expr}\"): no key {exc.args[0]!r} in the config") from None
        except Exception as exc:  # AttributeError (a missing key), TypeError, IndexError, SyntaxError ...
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FlowDefinitionError(f"config_expr(\"{self._expr}\"): {message}") from None


def config_expr(expr: str) -> ConfigExpr:
    """An expression over configs for places where ``self`` does not exist yet: decorators.

    The names in ``expr`` are config names (``Config("cfg")`` is ``cfg``) and the
    globals of the module that called ``config_expr``; it is evaluated when the run's
    config values are known, before any step runs.

    Example
    -------
    >>> from runstore import FlowSpec, Config, step, retry
    >>> class F(FlowSpec):
    ...     cfg = Config("cfg", default_value={"retries": 2})
    ...     @retry(times=config_expr("cfg.retries"))
    ...     @step
    ...     def start(self):
    ...         self.next(self.end)
    ...     @step
    ...     def end(self):
    ...         pass
    """
    if not isinstance(expr, str) or not expr.strip():
        raise FlowDefinitionError(f"config_expr() takes an expression over configs, e.g. \"cfg.a\", not {expr!r}")
    try:
        compile(expr, "<config_expr>", "eval")
    except SyntaxError as exc:
        raise FlowDefinitionError(f"config_expr({expr!r}) is not a Python expression: {exc.msg}") from None
    caller = sys._getframe(1).f_globals
    return ConfigExpr(expr, caller)


def is_lazy(value: Any) -> bool:
    """Whether ``value`` (or something inside a dict/list/tuple of it) is a config expression.

    >>> is_lazy({"vars": {"A": config_expr("cfg.a")}}), is_lazy({"vars": {"A": "1"}})
    (True, False)
    """
    if isinstance(value, (ConfigExpr, Config)):
        return True
    if isinstance(value, dict):
        return any(is_lazy(k) or is_lazy(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(is_lazy(v) for v in value)
    return False


def evaluate(value: Any, configs: Mapping[str, Any]) -> Any:
    """``value`` with every config expression in it replaced by its value (plain dicts).

    >>> evaluate({"vars": {"A": config_expr("cfg.a")}}, {"cfg": {"a": "1"}})
    {'vars': {'A': '1'}}
    """
    if isinstance(value, Config):
        value = ConfigExpr(value.expr_name)
    if isinstance(value, ConfigExpr):
        return plain(value.evaluate(configs))
    if isinstance(value, dict):
        return {evaluate(k, configs): evaluate(v, configs) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, configs) for v in value]
    if isinstance(value, tuple):
        return tuple(evaluate(v, configs) for v in value)
    return value


class Config:
    """A config of the flow: a read-only dict known before the run starts.

    Parameters
    ----------
    name : str
        The config's name: ``--config NAME FILE`` / ``--config-value NAME JSON`` on the
        command line, and its name in :func:`config_expr` expressions.
    default : str or callable, optional
        A file to read when no value is given, relative to the flow file's directory
        (a callable gets a context with ``flow_name``, ``user_name``,
        ``parameter_name`` and returns the path).
    default_value : dict, str or callable, optional
        The value when no file or value is given (a JSON string is parsed with
        ``parser``; a callable gets the context). Not together with ``default``.
    parser : callable or str, optional
        Turns the file's text into a dict (default ``json.loads``); a dotted name such
        as ``"tomllib.loads"`` is imported when needed.
    required : bool
        Fail when neither a value nor a default is there (ignored with a default).
    help : str, optional

    Example
    -------
    >>> cfg = Config("cfg", default="cfg.json")
    >>> cfg.name, cfg.default
    ('cfg', 'cfg.json')
    >>> cfg.model.layers   # in the class body: an expression for decorators
    config_expr("cfg.model.layers")
    """

    IS_CONFIG = True

    def __init__(self, name: str, default: str | Callable[..., str] | None = None,
                 default_value: Any = None, help: str | None = None, required: bool | None = None,
                 parser: str | Callable[[str], Any] | None = None, **kwargs: Any) -> None:
        if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
            raise FlowDefinitionError(f"Config name must be a name like 'cfg' (letters, digits, _ or -), not {name!r}")
        if default is not None and default_value is not None:
            raise FlowDefinitionError(f"Config {name!r}: give default (a file) or default_value, not both")
        if default is not None and not (isinstance(default, str) or callable(default)):
            raise FlowDefinitionError(f"Config {name!r}: default is a file path (or a function returning one), "
                                      f"not {default!r}")
        if default_value is not None and not (isinstance(default_value, (str, Mapping)) or callable(default_value)):
            raise FlowDefinitionError(f"Config {name!r}: default_value is a dict, a JSON string or a function, "
                                      f"not {default_value!r}")
        if parser is not None and not (callable(parser) or (isinstance(parser, str) and "." in parser)):
            raise FlowDefinitionError(f"Config {name!r}: parser is a function or a dotted name like "
                                      f"'tomllib.loads', not {parser!r}")
        d = self.__dict__
        d["name"] = name
        d["default"] = default
        d["default_value"] = default_value
        d["help"] = help
        d["required"] = bool(required)
        d["parser"] = parser
        d["kwargs"] = kwargs
        d["attr_name"] = name.replace("-", "_")

    @property
    def expr_name(self) -> str:
        """The name expressions use for this config (``name`` lower-cased, ``-`` as ``_``)."""
        return self.name.lower().replace("-", "_")

    def __set_name__(self, owner: type, attr: str) -> None:
        self.__dict__["attr_name"] = attr

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__.get("_runstore")
        if state is None:
            raise AttributeError(f"the config {self.name!r} has a value only while the flow runs")
        value = state.parameter(self.attr_name)
        return ConfigValue(value) if isinstance(value, Mapping) else value

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"Flow level attributes, Parameters and Configs are not modifiable: {self.attr_name}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a Config is read-only (setting {name!r})")

    # In the class body a config has no value yet: reading a key makes an expression.
    def __getattr__(self, name: str) -> ConfigExpr:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(ConfigExpr(self.expr_name), name)

    def __getitem__(self, key: Any) -> ConfigExpr:
        return ConfigExpr(self.expr_name)[key]

    def __repr__(self) -> str:
        return f"Config({self.name!r})"

    def parse(self, text: str) -> Any:
        """Parse a file's or option's text with ``parser`` (JSON by default).

        >>> Config("c").parse('{"a": 1}')
        {'a': 1}
        >>> Config("c").parse("{oops")
        Traceback (most recent call last):
        ...
        runstore.errors.ParameterError: config 'c' is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)
        """
        return parse_config_text(self.name, text, self.parser)


def parse_config_text(name: str, text: str, parser: str | Callable[[str], Any] | None = None) -> Any:
    """The dict a config's text stands for (``ParameterError``, one line, when it is not one)."""
    if parser is None:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ParameterError(f"config {name!r} is not valid JSON: {exc}") from None
    else:
        func = _parser(name, parser)
        try:
            value = func(text)
        except Exception as exc:  # the user's parser: any failure is a bad value
            label = parser if isinstance(parser, str) else getattr(parser, "__name__", repr(parser))
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ParameterError(f"config {name!r}: the parser {label} failed: {first}") from None
    if not isinstance(value, Mapping):
        raise ParameterError(f"config {name!r} must be a JSON object (a dict), not {type(value).__name__}")
    return plain(value)


def _parser(name: str, parser: str | Callable[[str], Any]) -> Callable[[str], Any]:
    if callable(parser):
        return parser
    module, _, attr = parser.rpartition(".")
    try:
        func = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ParameterError(f"config {name!r}: cannot load the parser {parser!r}: {exc}") from None
    if not callable(func):
        raise ParameterError(f"config {name!r}: the parser {parser!r} is not a function")
    return func  # type: ignore[no-any-return]


def flow_configs(flow_class: type) -> list[Config]:
    """The ``Config`` attributes of a flow class, in name order (a name used twice is an error).

    >>> class F:
    ...     b = Config("b")
    ...     a = Config("a")
    >>> [c.name for c in flow_configs(F)]
    ['a', 'b']
    """
    found: dict[str, Config] = {}
    for attr in dir(flow_class):
        value = getattr(flow_class, attr, None)
        if isinstance(value, Config):
            value.__dict__["attr_name"] = attr
            if value.expr_name in found:
                raise FlowDefinitionError(f"Config {value.name!r} is specified twice (configs names are "
                                          "case-insensitive)")
            found[value.expr_name] = value
    return sorted(found.values(), key=lambda c: c.attr_name)
