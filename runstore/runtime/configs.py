"""Before a run starts: its config values, the decorators that wait for them, its project branch.

``run``/``resume``/``deploy`` (the command line and ``Runner``) describe what was asked
in a :class:`LaunchOptions` — ``--config NAME FILE``, ``--config-value NAME JSON``,
``--branch``, ``--production`` — and the scheduler calls :func:`prepare` before the run
is created, so a missing file, bad JSON, an unknown config name, a ``config_expr``
naming a missing key or a bad branch name is one line and nothing is stored.

:func:`prepare` reads each config (given file or value > the run it resumes or clones
> ``default`` file next to the flow file > ``default_value``), fills in the step
decorators written with config expressions (:func:`resolve_decorators`), evaluates
``@project(name=...)`` and works out the branch (:mod:`runstore.project`).

Example
-------
>>> from runstore import FlowSpec, Config, config_expr, retry, step
>>> class F(FlowSpec):
...     cfg = Config("cfg", default_value={"retries": 2})
...     @retry(times=config_expr("cfg.retries"))
...     @step
...     def start(self):
...         self.next(self.end)
...     @step
...     def end(self):
...         pass
>>> prepared = prepare(F, LaunchOptions(config_values={"cfg": '{"retries": 4}'}), username="anne")
>>> prepared.configs, prepared.decorators["start"][0]["attributes"]["times"]
({'cfg': {'retries': 4}}, 4)
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import Config, ConfigValue, config_expr, evaluate, flow_configs, is_lazy, plain
from ..errors import FlowDefinitionError, ParameterError
from ..project import PROJECT_ATTR, ProjectInfo, check_branch_name, project_info

__all__ = ["LaunchOptions", "Prepared", "prepare", "load_configs", "resolve_decorators", "stored_configs",
           "project_of", "config_pairs", "evaluate_parameters"]


@dataclass
class LaunchOptions:
    """What was asked of a launch: config files and values by config name, the project branch.

    ``base``: config values (by attribute name) of the run being resumed or cloned,
    used for every config not given here.
    """

    config_files: dict[str, str] = field(default_factory=dict)
    config_values: dict[str, Any] = field(default_factory=dict)
    branch: str | None = None
    production: bool = False
    base: dict[str, Any] | None = None


@dataclass
class Prepared:
    """A launch, ready: config values by attribute name, each step's decorator records (those
    written with config expressions filled in) and the project branch (None without ``@project``)."""

    configs: dict[str, Any]
    project: ProjectInfo | None
    decorators: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def config_pairs(value: Any, option: str) -> dict[str, Any]:
    """``{"cfg": v}``, ``[("cfg", v)]`` or None as a dict (``Runner(config_value=...)``).

    >>> config_pairs([("cfg", "a.json")], "config")
    {'cfg': 'a.json'}
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        try:
            items = [tuple(pair) for pair in value]
        except TypeError:
            items = [()]
    if not all(len(pair) == 2 and isinstance(pair[0], str) for pair in items):
        raise ParameterError(f"{option}= takes a dict or (name, value) pairs, not {value!r}")
    return dict(items)  # type: ignore[arg-type]


def _context(flow_class: type, name: str, username: str) -> Any:
    return types.SimpleNamespace(flow_name=flow_class.__name__, user_name=username, parameter_name=name,
                                 configs=None)


def _read(config: Config, path: str, what: str) -> Any:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ParameterError(f"{what} {path!r} of config {config.name!r} cannot be read: "
                             f"{exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{what} {path!r} of config {config.name!r} is not UTF-8 text") from None
    return config.parse(text)


def _given(config: Config, value: Any) -> Any:
    if isinstance(value, Mapping):
        return config.parse(_json_text(config, value)) if config.parser is None else plain(value)
    if not isinstance(value, str):
        raise ParameterError(f"--config-value {config.name}: give a JSON object, not {value!r}")
    return config.parse(value)


def _json_text(config: Config, value: Mapping[str, Any]) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"the value of config {config.name!r} is not JSON data: {exc}") from None


#: Environment variables giving configs when no --config/--config-value is given, as Metaflow's
#: ``METAFLOW_FLOW_CONFIG_VALUE='{"cfg": {...}}'`` and ``METAFLOW_FLOW_CONFIG='{"cfg": "file.json"}'``.
VALUE_ENVS = ("RUNSTORE_FLOW_CONFIG_VALUE", "METAFLOW_FLOW_CONFIG_VALUE")
FILE_ENVS = ("RUNSTORE_FLOW_CONFIG", "METAFLOW_FLOW_CONFIG")


def _from_environment(known: set[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Config files and values from the environment (names the flow does not have are skipped:
    the variables may be meant for another flow)."""
    import json

    found: list[dict[str, Any]] = []
    for names in (FILE_ENVS, VALUE_ENVS):
        variable = next((n for n in names if os.environ.get(n)), None)
        if variable is None:
            found.append({})
            continue
        try:
            given = json.loads(os.environ[variable])
        except ValueError as exc:
            raise ParameterError(f"{variable} is not valid JSON: {exc}") from None
        if not isinstance(given, dict):
            raise ParameterError(f"{variable} must be a JSON object of config names, e.g. '{{\"cfg\": ...}}'")
        given = {k: v for k, v in given.items() if k.lower().replace("-", "_") in known}
        if names is FILE_ENVS and not all(isinstance(v, str) for v in given.values()):
            raise ParameterError(f"{variable} maps config names to file paths (strings)")
        found.append({k: v if isinstance(v, (str, dict)) else json.dumps(v) for k, v in given.items()})
    return found[0], found[1]


def load_configs(flow_class: type, options: LaunchOptions, *, username: str,
                 base_dir: str | None = None) -> dict[str, Any]:
    """The config values of a launch, by attribute name (see the module for the order).

    ``base_dir``: where a ``default`` file is looked for (the flow file's directory;
    default the working directory).

    Raises
    ------
    ParameterError
        An unknown config name, a file and a value for one config, a file that cannot
        be read, text that is not a JSON object (or that the parser refuses), a
        required config without a value.
    """
    configs = {c.expr_name: c for c in flow_configs(flow_class)}
    known = ", ".join(c.name for c in configs.values()) or "none"
    given_files, given_values = options.config_files, options.config_values
    if not given_files and not given_values:  # the environment, as click's envvar: only without options
        given_files, given_values = _from_environment(set(configs))
    files = {k.lower().replace("-", "_"): v for k, v in given_files.items()}
    values = {k.lower().replace("-", "_"): v for k, v in given_values.items()}
    for option, given in (("--config", options.config_files), ("--config-value", options.config_values)):
        for name in given:
            if name.lower().replace("-", "_") not in configs:
                raise ParameterError(f"{option} {name}: {flow_class.__name__} has no config {name!r} "
                                     f"(its configs: {known})")
    both = sorted(set(files) & set(values))
    if both:
        raise ParameterError(f"config {both[0]!r} is given both a file (--config) and a value (--config-value)")
    base_dir = base_dir or os.getcwd()  # the flow file's directory (the scheduler passes it)
    base = options.base or {}
    result: dict[str, Any] = {}
    for key, config in configs.items():
        ctx = _context(flow_class, config.name, username)
        if key in files:
            value = _read(config, files[key], "the file")
        elif key in values:
            value = _given(config, values[key])
        elif config.attr_name in base:
            value = base[config.attr_name]
        elif config.default is not None:
            path = config.default(ctx) if callable(config.default) else config.default
            if not isinstance(path, str):
                raise ParameterError(f"the default of config {config.name!r} must give a file path, not {path!r}")
            value = _read(config, os.path.join(base_dir, os.path.expanduser(path)), "the default file")
        elif config.default_value is not None:
            default = config.default_value(ctx) if callable(config.default_value) else config.default_value
            value = _given(config, default)
        else:
            if config.required:
                raise ParameterError(f"missing configuration for {config.name!r}: pass --config {config.name} FILE "
                                     f"or --config-value {config.name} JSON")
            value = None
        result[config.attr_name] = value
    return result


def _by_expr_name(flow_class: type, configs: Mapping[str, Any]) -> dict[str, Any]:
    return {c.expr_name: configs.get(c.attr_name) for c in flow_configs(flow_class)}


def resolve_decorators(flow_class: type, configs: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each step's decorator records, those written with config expressions filled in and
    checked as if written plainly.

    ``configs`` is by attribute name. The records are copies: the class is left as it is,
    so two launches of one flow class with different configs (threads, ``Runner``) do not
    see each other's values.
    """
    from ..flowspec import deferred_decorators

    names = _by_expr_name(flow_class, configs)
    result: dict[str, list[dict[str, Any]]] = {}
    for node in flow_class._graph():  # type: ignore[attr-defined]
        records = result[node.name] = [dict(record) for record in node.decorators]
        for index, (factory, args, kwargs) in sorted(deferred_decorators(node.func).items()):
            deco = factory.__name__

            def probe(self: Any) -> None:
                pass

            probe.__name__ = node.name
            # the step's other decorators, as resolved so far: @card checks its id against them
            probe._runstore_decorators = [  # type: ignore[attr-defined]
                dict(r) for i, r in enumerate(records) if i != index and r["attributes"]]
            try:
                factory(*evaluate(list(args), names), **evaluate(kwargs, names))(probe)
            except (FlowDefinitionError, TypeError) as exc:
                raise FlowDefinitionError(f"step {node.name!r}, @{deco}: {exc}") from None
            resolved = probe._runstore_decorators[-1]["attributes"]  # type: ignore[attr-defined]
            records[index] = dict(records[index], attributes=resolved)
    return result


def project_of(flow_class: type, configs: Mapping[str, Any], *, username: str, branch: str | None = None,
               production: bool = False) -> ProjectInfo | None:
    """The project branch of a launch, or None for a flow without ``@project``.

    ``--branch``/``--production`` on a flow without ``@project`` is a :class:`ParameterError`.
    """
    spec = flow_class.__dict__.get(PROJECT_ATTR) or getattr(flow_class, PROJECT_ATTR, None)
    if spec is None:
        if branch is not None or production:
            option = "--branch" if branch is not None else "--production"
            raise ParameterError(f"{option} is for flows with @project; {flow_class.__name__} has none")
        return None
    if branch is not None:
        check_branch_name(branch)
    name = spec["name"]
    if is_lazy(name):
        name = evaluate(name, _by_expr_name(flow_class, configs))
    return project_info(name, flow_class.__name__, username, branch=branch, production=production)


def prepare(flow_class: type, options: LaunchOptions | None = None, *, username: str,
            base_dir: str | None = None) -> Prepared:
    """Read the configs, resolve the decorators and the project branch of a launch (nothing stored)."""
    options = options or LaunchOptions()
    configs = load_configs(flow_class, options, username=username, base_dir=base_dir)
    decorators = resolve_decorators(flow_class, configs)
    project = project_of(flow_class, configs, username=username, branch=options.branch,
                         production=options.production)
    return Prepared(configs, project, decorators)


def evaluate_parameters(flow_class: type, params: Mapping[str, Any], configs: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with defaults written as config expressions evaluated and converted.

    ``Parameter("lr", type=float, default=config_expr("cfg.lr"))``: the run's configs
    give the default (a value given on the command line is used as it is).

    >>> from runstore import FlowSpec, Parameter
    >>> class F(FlowSpec):
    ...     cfg = Config("cfg")
    ...     lr = Parameter("lr", type=float, default=config_expr("cfg.lr"))
    >>> evaluate_parameters(F, {"lr": F.lr.default}, {"cfg": {"lr": "0.5"}})
    {'lr': 0.5}
    """
    by_attr = {p.attr_name: p for p in flow_class._parameters()}  # type: ignore[attr-defined]
    names = None
    result = dict(params)
    for attr, value in params.items():
        if attr in by_attr and is_lazy(value):
            names = names if names is not None else _by_expr_name(flow_class, configs)
            param = by_attr[attr]
            try:
                result[attr] = param.convert(evaluate(value, names))
            except ParameterError as exc:
                raise ParameterError(f"the default of {param.option} ({value!r}): {exc}") from None
    return result


def stored_configs(store: Any, flow_class: type, run_id: int) -> dict[str, Any]:
    """The config values a run stored (by attribute name), for ``resume`` and ``run --clone``.

    Read from the run's ``_parameters`` task, where they are artifacts like parameters.
    """
    names = {c.attr_name for c in flow_configs(flow_class)}
    if not names:
        return {}
    task = next((t for t in store.list_run_tasks(run_id) if t["step"] == "_parameters"), None)
    if task is None:
        return {}
    refs = store.list_artifact_refs(task["task_id"])
    found = {}
    for name in names & set(refs):
        value = store.load_value(refs[name].blob_key, refs[name].encoding)
        found[name] = value.to_dict() if isinstance(value, ConfigValue) else value
    return found
