"""``runstore ui``: a local web app over one store file (SPEC §15).

Starlette + Jinja2, served by uvicorn, every asset bundled in ``static/`` (works
offline). Installed with ``pip install 'runstore[ui]'``; nothing here is imported by
``import runstore`` or by the ``runstore`` command until ``ui`` runs.

Example
-------
>>> from runstore import Store
>>> from runstore.ui import create_app
>>> app = create_app(Store(":memory:"))   # serve it with uvicorn, or test it with TestClient
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import RunstoreError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..store import Store

__all__ = ["create_app", "serve", "LOOPBACK", "check_host"]

#: Hosts that only this machine can reach.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create_app(store: "Store", *, allow_tag_edits: bool = False,
               allowed_hosts: list[str] | None = None) -> "Starlette":
    """The ASGI app over ``store`` (see :func:`runstore.ui.app.create_app`).

    Example
    -------
    >>> from runstore import Store
    >>> create_app(Store(":memory:")).state.allow_tag_edits
    False
    """
    _require()
    from .app import create_app as make

    return make(store, allow_tag_edits=allow_tag_edits, allowed_hosts=allowed_hosts)


def check_host(host: str, explicit: bool) -> str | None:
    """A warning to print for a non-loopback ``host`` (None for loopback); refuse it unless ``explicit``.

    Example
    -------
    >>> check_host("127.0.0.1", explicit=False) is None
    True
    >>> check_host("0.0.0.0", explicit=True).startswith("Warning")
    True
    """
    if host in LOOPBACK:
        return None
    if not explicit:
        raise RunstoreError(f"refusing to serve on {host}: pass --host {host} explicitly to allow it")
    return (f"Warning: serving on {host}: anyone who can reach this machine on that address can read "
            f"every run in the store")


def serve(store: "Store", *, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False,
          allow_tag_edits: bool = False, explicit_host: bool = False, log_level: str = "warning") -> None:
    """Serve ``store`` with uvicorn until Ctrl-C (what ``runstore ui`` does).

    On a loopback host only ``Host: 127.0.0.1 / localhost`` requests are answered, so
    a web page on another site cannot read the store by DNS rebinding.

    Example
    -------
    >>> serve(Store(":memory:"), port=8765)   # doctest: +SKIP
    """
    _require()
    import uvicorn

    warning = check_host(host, explicit_host)
    if warning:
        print(warning, file=sys.stderr)
    allowed = None if warning else [*LOOPBACK, "[::1]"]
    app = create_app(store, allow_tag_edits=allow_tag_edits, allowed_hosts=allowed)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    print(f"runstore ui: {store.where} at {url}" + ("" if allow_tag_edits else " (read-only)"), file=sys.stderr)
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(0.8, webbrowser.open, args=(url,)).start()
    from ..util import ui_registration

    registration = ui_registration(store.where, url)  # notebook displays link here (client/_display.py)
    try:
        uvicorn.run(app, host=host, port=port, log_level=os.environ.get("RUNSTORE_UI_LOG", log_level))
    finally:
        registration.unlink(missing_ok=True)


def _require() -> None:
    missing = []
    for module in ("starlette", "uvicorn", "jinja2"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise RunstoreError(f"runstore ui needs {', '.join(missing)}: pip install 'runstore[ui]'")


def __getattr__(name: str) -> Any:  # pragma: no cover - convenience
    raise AttributeError(name)
