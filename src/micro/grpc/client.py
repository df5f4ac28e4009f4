"""gRPC calls for :class:`micro.Client`: one pooled ``grpc.aio`` channel per address.

The client keeps its selector, retries, wrappers and deadline; for a node that speaks gRPC
(``protocol=grpc`` in its metadata, or every node with ``protocol="grpc"``) the attempt goes
through a :class:`GrpcCaller` instead of the transport. The method path is
``/<package>.<Handler>/<Method>``, the package being the node's ``grpc_package`` (else the
service name). A protobuf request or response class makes the call protobuf
(``application/grpc``); anything else is msgspec JSON (``application/grpc+json``), and the
``micro-content-type`` metadata tells a protobuf endpoint to read and answer JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Self

import grpc  # type: ignore[import-untyped]

from micro.client import CallOptions, Request
from micro.codec import Codec
from micro.errors import ConnectError, ConnectionClosed, MicroError, Timeout
from micro.grpc import _metadata
from micro.grpc._status import ERROR_KEY, from_status
from micro.grpc._wire import CONTENT_KEY, pick_codec
from micro.grpc.server import package_name
from micro.registry import Node

__all__ = ["GrpcCaller", "GrpcStream"]

_CLIENT_ID = "go.micro.client"
_LIMIT = 1024
_CHANNELS = 256  # addresses kept open; the least recently opened is closed beyond
_CLOSE_GRACE = 5.0  # seconds the calls on a channel closed that way get to finish


def method_path(node: Node, service: str, endpoint: str) -> str:
    """``/<package>.<Handler>/<Method>`` for ``endpoint`` on ``node``.

    An endpoint already written as a path (``/pkg.Svc/Method``) is taken as it is, so any
    gRPC server can be called by address.
    """
    if endpoint.startswith("/"):
        return endpoint
    package = (node.metadata or {}).get("grpc_package") or package_name(service)
    handler, _, method = endpoint.rpartition(".")
    return f"/{package}.{handler}/{method}"


class GrpcCaller:
    """Makes gRPC attempts for a client; channels are opened per address and kept.

    Args:
        options: ``grpc.aio.insecure_channel`` options.
    """

    def __init__(self, *, options: tuple[tuple[str, Any], ...] = ()) -> None:
        self._options = options
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._unary: dict[tuple[str, str], Any] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def channel(self, address: str) -> grpc.aio.Channel:
        """The pooled channel to ``address`` (opened on first use)."""
        found = self._channels.get(address)
        if found is None:
            if len(self._channels) >= _CHANNELS:  # nodes come and go: keep the newest
                self._retire(next(iter(self._channels)))
            found = grpc.aio.insecure_channel(address, options=self._options)
            self._channels[address] = found
        return found

    def _retire(self, address: str) -> None:
        channel = self._channels.pop(address)
        self._unary = {k: v for k, v in self._unary.items() if k[0] != address}
        task = asyncio.ensure_future(channel.close(_CLOSE_GRACE))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def call(
        self, node: Node, req: Request, opts: CallOptions, header: Mapping[str, str]
    ) -> Any:
        """One unary attempt on ``node``; the response decoded, or the server's MicroError."""
        codec, proto = pick_codec(req.content_type, req.body, req.response_type)
        body = codec.encode(req.body)
        key = (node.address, method_path(node, req.service, req.endpoint))
        method = self._unary.get(key)
        if method is None:
            method = self.channel(node.address).unary_unary(key[1])
            if len(self._unary) >= _LIMIT:
                self._unary.clear()
            self._unary[key] = method
        timeout = max(opts.deadline - asyncio.get_running_loop().time(), 0.0)
        try:
            data = await method(body, timeout=timeout, metadata=_outgoing(header, proto))
        except grpc.aio.AioRpcError as exc:
            raise await _error(exc, node) from None
        return codec.decode(data, req.response_type)

    def stream(self, node: Node, req: Request, header: Mapping[str, str]) -> GrpcStream:
        """A stream call on ``node``, opened by :meth:`GrpcStream.start`."""
        return GrpcStream(self, node, req, header)

    async def close(self) -> None:
        """Close every channel; never raises."""
        channels, self._channels = self._channels, {}
        self._unary.clear()
        for task in list(self._closing):
            task.cancel()
        for channel in channels.values():
            try:
                await channel.close()
            except Exception:  # close never raises
                pass


class GrpcStream:
    """One gRPC stream call (always ``stream_stream`` on the wire: it serves server,
    client and bidirectional streaming methods alike)."""

    def __init__(
        self, caller: GrpcCaller, node: Node, req: Request, header: Mapping[str, str]
    ) -> None:
        self.node = node
        self._req = req
        self._codec: Codec
        self._codec, proto = pick_codec(req.content_type, req.body, req.response_type)
        path = method_path(node, req.service, req.endpoint)
        self._method = caller.channel(node.address).stream_stream(path)
        self._metadata = _outgoing(header, proto)
        self._call: Any = None

    async def start(self, deadline: float | None) -> Self:
        """Open the call (with the stream's deadline, if any) and send its request."""
        timeout = None
        if deadline is not None:
            timeout = max(deadline - asyncio.get_running_loop().time(), 0.0)
        self._call = self._method(timeout=timeout, metadata=self._metadata)
        if self._req.body is not None:
            await self.send(self._req.body)
        return self

    async def send(self, obj: Any) -> None:
        data = self._codec.encode(obj)
        try:
            await self._call.write(data)
        except grpc.aio.AioRpcError as exc:
            raise await _error(exc, self.node) from None
        except asyncio.InvalidStateError:
            raise ConnectionClosed("stream: send after its end", id=_CLIENT_ID) from None

    async def recv(self, type: Any) -> Any:
        """The next message; StopAsyncIteration at the end; the server's MicroError."""
        try:
            data = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise await _error(exc, self.node) from None
        if data is grpc.aio.EOF:
            code = await self._call.code()
            if code != grpc.StatusCode.OK:
                details = await self._call.details()
                trailers = await self._call.trailing_metadata()
                raise from_status(code, details, trailers, id=self._req.service)
            raise StopAsyncIteration
        return self._codec.decode(data, type)

    async def close_send(self) -> None:
        try:
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the call is over: nothing more to end

    async def close(self) -> None:
        if self._call is not None and not self._call.done():
            self._call.cancel()


def _outgoing(header: Mapping[str, str], proto: bool) -> tuple[tuple[str, str], ...]:
    pairs = _metadata.outgoing(header)
    if not proto:
        pairs += ((CONTENT_KEY, "application/json"),)
    return pairs


async def _error(exc: grpc.aio.AioRpcError, node: Node) -> MicroError:
    """The MicroError of a failed call: the server's own, or one from its status."""
    code = exc.code()
    trailers = exc.trailing_metadata()
    ours = any(key == ERROR_KEY for key, _ in trailers or ())
    if not ours:
        if code == grpc.StatusCode.UNAVAILABLE:
            detail = f"connection error: {node.address}: {exc.details()}"
            return ConnectError(detail, id="go.micro.client.transport")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Timeout(f"call timeout: {exc.details()}", id=_CLIENT_ID)
    return from_status(code, exc.details() or "", trailers, id=node.id)
