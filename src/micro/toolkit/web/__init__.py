"""``micro web``: the web dashboard, and the reverse proxy to the web services.

An ASGI application (:class:`Dashboard`) built on the public core API only
(``micro.Client``, ``micro.registry``, the broker), like ``micro api``. Pages: services
(live), a service (nodes with their health and stats, endpoints, subscribers), call, publish
with a topic tail, and a terminal running ``micro cli``'s commands. ``/[name]/...`` is
proxied to a node of ``go.micro.web.[name]``. Serve it with ``micro web`` or any ASGI
server::

    from micro.toolkit.web import Dashboard, WebOptions
    app = Dashboard(WebOptions(namespace="go.micro.web"))

Modules: :mod:`.app` (the application and its route table), :mod:`.proxy` (the reverse
proxy), :mod:`.security` (same-origin check, auth and login, security headers),
:mod:`.pages` (assets and server-rendered pages), :mod:`.cli` (``micro web``), and the
pages' data: :mod:`.live`, :mod:`.nodes`, :mod:`.calls`, :mod:`.terminal`. See
``docs/web.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micro.toolkit.web.options import WebOptions

__all__ = ["Dashboard", "WebOptions", "main"]

if TYPE_CHECKING:
    from micro.toolkit.web.app import Dashboard
    from micro.toolkit.web.cli import main

_LAZY = {"Dashboard": "micro.toolkit.web.app", "main": "micro.toolkit.web.cli"}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'micro.toolkit.web' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
