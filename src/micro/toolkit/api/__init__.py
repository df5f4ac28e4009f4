"""``micro api``: the HTTP API gateway in front of the services in the registry.

An ASGI application (:class:`Gateway`) built on the public core API only: ``micro.Client``
for calls and streams, ``micro.registry`` for discovery and the OpenAPI document. Serve it
with ``micro api`` (uvicorn) or any ASGI server::

    from micro.toolkit.api import ApiOptions, Gateway
    app = Gateway(ApiOptions(namespace="", enable_rpc=True))

    curl http://127.0.0.1:8080/greeter/say-hello -d '{"name": "John"}'

Modules: :mod:`.resolver` (go-micro's path rules and the host/path/grpc resolvers),
:mod:`.handlers` (rpc, api, event), :mod:`.proxy` (http, web), :mod:`.stream` (WebSocket to
RPC streams), :mod:`.catalog` (live registry index), :mod:`.openapi`, :mod:`.middleware`
(access log, rate limit, auth), :mod:`.auth` (token checks), :mod:`.proto` (go-api messages),
:mod:`.cli` (``micro api``), :mod:`.connections` (its HTTP connections: timeouts, limits).
See ``docs/api.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micro.toolkit.api.options import ApiOptions

__all__ = ["ApiOptions", "AuthCheck", "Gateway", "main"]

if TYPE_CHECKING:
    from micro.toolkit.api.app import Gateway
    from micro.toolkit.api.cli import main
    from micro.toolkit.api.middleware import AuthCheck

_LAZY = {
    "Gateway": "micro.toolkit.api.app",
    "main": "micro.toolkit.api.cli",
    "AuthCheck": "micro.toolkit.api.middleware",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'micro.toolkit.api' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
