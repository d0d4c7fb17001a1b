"""``python flow.py deploy`` and ``python flow.py trigger``: production runs (SPEC §7).

``deploy`` stores the flow's code snapshot as its production deployment, through
:func:`runstore.runtime.production.deploy` (tokens, authorization, generations), and says
which namespace production runs land in and which command to share with people
who may deploy next.

``trigger`` runs the *deployed* code, not the working copy: the deployment's code
package is unpacked into a temporary directory and its flow file is run against the
same store, with ``RUNSTORE_PRODUCTION_TOKEN`` set to the deployment's secret token
(``--authorize TOKEN``, else this user's saved copy). The run checks it against the
stored hash before tagging itself with the production namespace (its only namespace
tag; ``current.is_production`` is true); without the token there is no production
run (SPEC §13). Parameters after ``trigger`` go to the deployed flow's ``run`` command.

Example
-------
::

    $ python train.py deploy
    $ python train.py trigger --alpha 0.5
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..errors import NotFound, RunstoreError
from .launch import config_options, launch_from

__all__ = ["deploy_command", "trigger_command"]

#: The member of a deployment's code package holding its configs and project branch options.
DEPLOYED_CONFIG = ".runstore/CONFIG"


def _deployment_key(flow_class: type, prepared: Any) -> str:
    """What a deployment is stored under: the flow name, or for ``@project`` the project flow name.

    The ``deployments`` table has one row per flow name; a ``@project`` flow has one
    deployment per branch, so its rows are named ``<project>.<branch>.<Flow>`` (docs/resume.md).
    """
    return prepared.project.project_flow_name if prepared.project is not None else flow_class.__name__


def _branch_args(launch: Any) -> list[str]:
    return (["--branch", launch.branch] if launch.branch is not None else []) + \
        (["--production"] if launch.production else [])


#: ``python -c`` program running a module from a directory as ``python -m`` runs it, but with
#: that directory (not the current one) as ``sys.path[0]``: argv = [-c, ROOT, MODULE, args...].
_RUN_MODULE = ("import runpy, sys; root, module = sys.argv[1:3]; sys.path[0] = root; "
               "sys.argv = [sys.argv[0], *sys.argv[3:]]; runpy.run_module(module, run_name='__main__', alter_sys=True)")


def _package_info(root: object) -> dict[str, object]:
    """The unpacked package's ``.runstore/INFO`` (``{}`` when absent or unreadable)."""
    import json
    from pathlib import Path

    try:
        info = json.loads((Path(str(root)) / ".runstore" / "INFO").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _flow_file(flow_class: type) -> str:
    from ..runtime.environment import flow_file_of

    path = flow_file_of(flow_class)
    if path is None:
        raise RunstoreError(f"{flow_class.__name__} has no flow file to deploy (it was not defined in a file)")
    return path


def deploy_command(flow_class: type) -> click.Command:
    """The ``deploy`` command of a flow's command line."""
    name = flow_class.__name__

    @click.command()
    @click.option("--authorize", default=None, metavar="TOKEN",
                  help="The production token of the current deployment (needed once, if someone else deployed).")
    @click.option("--generate-new-token", is_flag=True,
                  help="Move production to a fresh namespace with a new token (needs the current token).")
    @click.pass_context
    def deploy(ctx: click.Context, authorize: str | None, generate_new_token: bool, **options: Any) -> None:
        """Make this code the flow's production deployment.

        Production runs ('trigger') land in their own namespace,
        production:<Flow>-<generation>-<id>. Deploying again needs the production
        token: it is saved for whoever deployed or authorized on this machine;
        anyone else (even under the same user name) passes it once with
        --authorize TOKEN.

        A @project flow has one deployment per branch (--branch NAME,
        --production), each with its own namespace and token. Configs
        (--config, --config-value, defaults) are read now and kept with
        the deployment.

        \b
        Example:
            python flow.py deploy
            python flow.py deploy --authorize TOKEN
        """
        from ..config import flow_configs
        from ..runtime.configs import prepare
        from ..runtime.environment import code_package, code_root, flow_module_of
        from ..runtime.production import deploy as deploy_flow
        from ..util import printable, resolve_username

        flow_file = _flow_file(flow_class)
        script = os.path.basename(flow_file)
        launch = launch_from(ctx, options)
        user = resolve_username()
        # Configs are fixed at deploy time (as in Metaflow): read now, shipped in the package.
        prepared = prepare(flow_class, launch, username=user, base_dir=os.path.dirname(flow_file))
        key = _deployment_key(flow_class, prepared)
        store = ctx.obj["store"]()
        if store.in_memory:
            raise RunstoreError("an in-memory store cannot hold a deployment; use a store file (--db PATH)")
        configs = {c.name: prepared.configs.get(c.attr_name) for c in flow_configs(flow_class)}
        extra = {DEPLOYED_CONFIG: json.dumps({"configs": configs}, sort_keys=True, default=str).encode()} \
            if configs else None
        module = flow_module_of(flow_class)
        code_id = store.add_code_package(code_package(flow_file, name, module, extra), script)
        module = code_root(flow_file, module)[1]
        command = f"python -m {module}" if module else f"python {script}"
        result = deploy_flow(store, key, user=user, code_id=code_id, script_name=script,
                             authorize=authorize, generate_new_token=generate_new_token)
        dep = result.deployment
        db = f" --db {ctx.obj['db']}" if ctx.obj["db"] else ""
        branch = "".join(f" {a}" for a in _branch_args(launch))
        if prepared.project is not None:
            click.echo(f"Project {prepared.project.project_name}, branch {printable(prepared.project.branch_name)}: "
                       f"this branch has its own deployment ({printable(key)}).")
        if result.first_time:
            click.echo(f"This is the first deployment of {name} to production in {store.where}.")
        elif result.new_namespace:
            click.echo(f"Production moved to a fresh namespace (generation {dep.generation}); "
                       "the previous token no longer authorizes deploys.")
        click.echo(f"Deployed {name} ({script}, generation {dep.generation}) by {printable(dep.owner)}.")
        click.echo("The namespace of this production flow is")
        click.echo(f"    {dep.namespace}")
        click.echo("To analyze results of this production flow add this line to your notebooks:")
        click.echo(f"    namespace(\"{dep.namespace}\")")
        click.echo("To let someone else deploy new versions of this flow, share this command with them"
                   " (the token is a secret; it is saved for you in your runstore config):")
        click.echo(f"    {command}{db} deploy{branch} --authorize {result.token}")
        click.echo("To run the deployed code in production:")
        click.echo(f"    {command}{db} trigger{branch}")

    deploy.params.extend(config_options(flow_class))
    return deploy


def trigger_command(flow_class: type) -> click.Command:
    """The ``trigger`` command of a flow's command line."""
    name = flow_class.__name__

    @click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                     "help_option_names": ["-h", "--help"]})
    @click.option("--authorize", default=None, metavar="TOKEN",
                  help="The production token (needed once on a machine where it is not saved).")
    @click.pass_context
    def trigger(ctx: click.Context, authorize: str | None, **options: Any) -> None:
        """Run the deployed code in the production namespace.

        Needs the production token: the one saved when you deployed or
        authorized, or --authorize TOKEN. Everything else after 'trigger'
        (parameters, --tag, --max-workers) goes to the deployed flow's 'run'
        command. The run carries the production namespace tag and no user tag;
        inside it current.is_production is True.

        For a @project flow, --branch NAME / --production pick the branch's
        deployment (the run is on that branch and uses the configs read at
        deploy time; current.is_production follows --production, as in
        Metaflow).

        \b
        Example:
            python flow.py trigger --alpha 0.5
        """
        from ..errors import ProductionTokenError
        from ..runtime.production import NAMESPACE_ENV, TOKEN_ENV, extract_code, load_token, production_identity
        from ..project import PROJECT_ATTR
        from ..runtime.configs import LaunchOptions, prepare
        from ..runtime.environment import flow_file_of
        from ..util import printable, resolve_username
        from ..version import INFO_ENV

        launch = launch_from(ctx, options)
        key, where, again = name, "", "".join(f" {a}" for a in _branch_args(launch))
        if getattr(flow_class, PROJECT_ATTR, None) is not None:
            # the branch's deployment (configs matter only for a @project(name=config_expr(...)))
            flow_file = flow_file_of(flow_class)
            prepared = prepare(flow_class, LaunchOptions(branch=launch.branch, production=launch.production),
                               username=resolve_username(), base_dir=os.path.dirname(flow_file) if flow_file else None)
            key = _deployment_key(flow_class, prepared)
            where = f" on branch {printable(prepared.project.branch_name)}"
        store = ctx.obj["store"]()
        if store.in_memory or store.path is None:
            raise RunstoreError("an in-memory store cannot hold a deployment; use a store file (--db PATH)")
        dep = store.get_deployment(key)
        if dep is None:
            raise NotFound(f"{name} is not deployed to production{where} in {store.where}; run 'deploy{again}' first")
        token = authorize.strip() if authorize else load_token(store.uuid, key)
        if not token:
            raise ProductionTokenError(
                f"triggering {name}{where} needs its production token, which is not saved on this machine: "
                f"ask {printable(dep.owner)} for it, then run: python {dep.script_name or 'flow.py'} "
                f"trigger{again} --authorize TOKEN"
            )
        try:  # refuse here, before unpacking anything
            production_identity(store, key, token)
        except ProductionTokenError:
            if not authorize:
                raise
            raise ProductionTokenError(f"the token given to --authorize is not the production token of {name}; "
                                       f"ask {printable(dep.owner)} for the right one") from None
        package = store.find_code_package(dep.code_id) if dep.code_id is not None else None
        if package is None:
            raise NotFound(f"the code of {name}'s production deployment is missing from {store.where}")
        # Code about to run: decoded only from bytes that hash to the package's key,
        # every chunk checked too (SPEC §13.1). Pinned by
        # tests/test_security_blobs.py::test_planted_code_package_is_refused_by_trigger.
        tarball = store.load_value(package["blob_key"], "bytes", check_chunks=True)
        import shutil
        import subprocess
        import tempfile

        workdir = tempfile.mkdtemp(prefix=f"runstore-{name}-")
        try:
            root = extract_code(tarball, workdir)
            info = _package_info(root)
            script = (root / str(info.get("script") or dep.script_name or package["script_name"])).resolve()
            if root.resolve() not in script.parents:
                raise RunstoreError(f"the code package of {name}'s deployment names a script outside it")
            env = dict(os.environ)
            env[TOKEN_ENV] = token
            env[NAMESPACE_ENV] = dep.namespace
            env["RUNSTORE_INVOCATION"] = "trigger"
            env[INFO_ENV] = str(root / ".runstore" / "INFO")
            if not ctx.obj["quiet"]:
                click.echo(f"Triggering {name} (generation {dep.generation}, deployed by {printable(dep.owner)}) "
                           f"in {printable(dep.namespace)}.", err=True)
            module = info.get("module")
            if isinstance(module, str) and module.replace(".", "").replace("_", "").isalnum():
                # Run as it was run: `python -m pkg.flow`, with the unpacked tree (not the
                # working copy in the current directory) first on sys.path.
                argv = [sys.executable, "-c", _RUN_MODULE, str(root), module, "--db", str(store.path)]
            else:
                argv = [sys.executable, str(script), "--db", str(store.path)]
            if ctx.obj["quiet"]:
                argv.append("--quiet")
            argv += _branch_args(launch)
            deployed = root / DEPLOYED_CONFIG
            if deployed.is_file():  # the configs read at deploy time
                for config, value in json.loads(deployed.read_text())["configs"].items():
                    if value is not None:
                        argv += ["--config-value", config, json.dumps(value)]
            store.close()
            code = subprocess.call([*argv, "run", *ctx.args], env=env, cwd=os.getcwd())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        ctx.exit(code)

    trigger.params.extend(config_options(flow_class, {"--config", "--config-value"}))
    return trigger
