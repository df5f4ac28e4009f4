"""micro: asyncio microservices, wire-compatible with go-micro v1.

Public API (imported lazily, so ``import micro`` stays cheap)::

    micro.Service   a named service: handlers, registry, transport, run()
    micro.Client    calls services: call(), stream()
    micro.errors    the error tree (MicroError, BadRequest, NotFound, ...)
    micro.metadata  per-request metadata in a context variable
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micro import errors, metadata

__all__ = ["Client", "Service", "errors", "metadata"]
__version__ = "0.1.0.dev0"

if TYPE_CHECKING:
    from micro.client.rpc import RpcClient as Client
    from micro.service import Service

_LAZY = {"Service": "micro.service", "Client": "micro.client.rpc"}
_ATTR = {"Service": "Service", "Client": "RpcClient"}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'micro' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), _ATTR[name])
    globals()[name] = value
    return value
