"""``micro proxy``: one address through which a client outside the network reaches the
services, the registry and the broker inside it.

An ASGI application (:class:`ProxyApp`) built on the public core API only (the registry,
``micro.Client``, the broker) and the gateway's HTTP pieces (middleware, auth, body reads,
stream WebSockets, connection limits). It runs in the remote environment; the laptop side
(``micro --proxy-address``, ``MICRO_PROXY_ADDRESS``) speaks to it. Serve it with
``micro proxy`` (uvicorn, TLS optional) or any ASGI server::

    from micro.toolkit.proxy import ProxyApp, ProxyOptions
    app = ProxyApp(ProxyOptions(allow_services=("greeter",)))

Routes: ``/registry`` (:mod:`.registry`), ``/rpc`` (:mod:`.rpc`), ``/broker``
(:mod:`.broker`), ``/health``; :mod:`.cli` is ``micro proxy``. See ``docs/proxy.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micro.toolkit.proxy.options import ProxyOptions

__all__ = ["ProxyApp", "ProxyOptions", "main"]

if TYPE_CHECKING:
    from micro.toolkit.proxy.app import ProxyApp
    from micro.toolkit.proxy.cli import main

_LAZY = {"ProxyApp": "micro.toolkit.proxy.app", "main": "micro.toolkit.proxy.cli"}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'micro.toolkit.proxy' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
