"""Standard gRPC for micro services: :class:`GrpcServer` and gRPC calls from the client.

``Service("greeter", server="grpc")`` (or ``MICRO_SERVER=grpc``) serves every endpoint
``Handler.Method`` as the gRPC method ``/<package>.<Handler>/<Method>`` with grpcio's asyncio
server; ``server="mucp,grpc"`` serves both protocols on two ports and registers both nodes.
The node says ``protocol=grpc`` in its metadata, and the default :class:`micro.Client` picks
gRPC for such nodes (``micro.Client(protocol="grpc")`` always speaks it, also to plain gRPC
servers by address). See ``docs/grpc.md`` for error mapping, metadata and deadlines.

Requires grpcio (``pip install 'pymicro-toolkit[grpc]'``), imported only when gRPC is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["GrpcCaller", "GrpcServer", "package_name"]

if TYPE_CHECKING:
    from micro.grpc.client import GrpcCaller
    from micro.grpc.server import GrpcServer, package_name

_LAZY = {
    "GrpcServer": "micro.grpc.server",
    "package_name": "micro.grpc.server",
    "GrpcCaller": "micro.grpc.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'micro.grpc' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
