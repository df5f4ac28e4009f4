"""gRPC server reflection over generated descriptors, so ``grpcurl list/describe`` work.

grpcio-reflection's servicer reads a ``DescriptorPool``; here it gets a private pool holding
the files :mod:`micro.grpc._protogen` made (never the process-wide default pool, which
other generated code owns). grpcio-reflection ships only ``v1alpha``; ``v1`` has the very
same messages on the wire, so the same servicer is mounted under both names: grpcurl asks
``v1`` first and older tools ``v1alpha``. Requires ``grpcio-reflection`` (the ``grpc``
extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from micro.plugins import install_hint

if TYPE_CHECKING:
    import grpc  # type: ignore[import-untyped]
    from google.protobuf.descriptor_pb2 import FileDescriptorProto
    from google.protobuf.descriptor_pool import DescriptorPool

__all__ = ["REFLECTION_SERVICES", "reflection_handlers"]

REFLECTION_SERVICES = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)


def reflection_handlers(
    files: Iterable[FileDescriptorProto],
    service_names: Sequence[str] | None = None,
    *,
    pool: DescriptorPool | None = None,
) -> list[grpc.GenericRpcHandler]:
    """Generic handlers serving server reflection for ``files``' services, v1 and v1alpha.

    Args:
        files: the generated files (``ProtoFile.file``) whose services the server serves.
        service_names: the full service names ``list`` shows (default: every service in
            ``files``); the reflection services are always added.
        pool: a pool already holding ``files`` (default: a new one made from them).

    Returns:
        handlers for ``server.add_generic_rpc_handlers`` of a ``grpc.aio`` server.

    Raises:
        ImportError: grpcio-reflection is not installed (the message says what to install).
    """
    try:
        import grpc
        from grpc_reflection.v1alpha import (  # type: ignore[import-untyped]
            _async,
            reflection_pb2,
        )
    except ImportError as exc:
        hint = install_hint("grpc")
        raise ImportError(f"gRPC reflection needs grpcio-reflection: {hint}") from exc
    from micro.grpc._protogen import make_pool

    files = list(files)
    if service_names is None:
        service_names = [f"{f.package}.{s.name}" for f in files for s in f.service]
    names = [*service_names, *REFLECTION_SERVICES]
    servicer: Any = _async.ReflectionServicer(names, pool=pool or make_pool(files))
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return [
        grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
        for name in REFLECTION_SERVICES
    ]
