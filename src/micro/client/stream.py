"""Client streams: one dedicated connection per stream, messages per ``docs/protocol.md``.

Every message carries ``Micro-Stream``. A request given to the stream goes in the opening
message and again as the first stream message: go-micro v1 servers never hand the opening
body to a handler, and a server stream reads its request as that first message.
``close_send`` sends ``Micro-Error: EOS``, except to go-micro nodes older than v1.7, which
have no such message and would read it as a request. The stream ends for the receiver on
``EOS`` from the server, and fails on any other ``Micro-Error``. A connection that ends
before ``EOS`` fails it too (``ConnectionClosed``, "cut off before its end"), except an
orderly close between messages from a go-micro v1.0 node, whose server ends streams that way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from micro import metadata as md
from micro.client import CallOptions, Request, Stream
from micro.client.options import timeout_header
from micro.client.pool import check_transport
from micro.errors import ConnectionClosed, MicroError, Timeout
from micro.registry import Node
from micro.selector import Filter
from micro.transport import Message, Socket

if TYPE_CHECKING:
    from micro.client.rpc import RpcClient
    from micro.grpc.client import GrpcStream

__all__ = ["RpcStream"]

EOS = "EOS"
_EOS_SEND_TIMEOUT = 1.0


class RpcStream(Stream):
    """A stream opened by :meth:`RpcClient.stream`; open it with ``async with`` or ``await``."""

    def __init__(
        self,
        client: RpcClient,
        request: Request,
        *,
        timeout: float | None,
        retries: int,
        address: tuple[str, ...],
        filters: tuple[Filter, ...],
        metadata: Mapping[str, str] | None,
    ) -> None:
        self.service = request.service
        self.endpoint = request.endpoint
        self.request = request
        self.node: Node | None = None
        self.header: dict[str, str] = {}  # of the last message received
        self._client = client
        self._timeout = timeout
        self._retries = retries
        self._address = address
        self._filters = filters
        self._metadata = metadata
        self._deadline: float | None = None
        self._socket: Socket | None = None
        self._grpc: GrpcStream | None = None  # the stream, when the node speaks gRPC
        self._id = ""
        self._eos = True  # the node reads our EOS (see _reads_eos)
        self._send_done = False
        self._recv_done = False
        self._closed = False

    def __repr__(self) -> str:
        return f"RpcStream({self.service!r}, {self.endpoint!r}, id={self._id!r})"

    @property
    def id(self) -> str:
        """The stream id sent in ``Micro-Stream`` ("" until opened)."""
        return self._id

    async def open(self) -> Self:
        if self._socket is not None or self._grpc is not None:
            return self
        if self._closed:
            raise ConnectionClosed("stream is closed", id="go.micro.client")
        client = self._client
        limit = client.timeout if self._timeout is None else self._timeout
        start_deadline = asyncio.get_running_loop().time() + limit
        if self._timeout is not None:
            self._deadline = start_deadline
        opts = CallOptions(
            limit,
            start_deadline,
            self._retries,
            self._address,
            self._filters,
            self._metadata,
            client.dial_timeout,
        )
        try:
            async with asyncio.timeout_at(start_deadline):
                self._socket = await client._run(self.request, opts, self._connect)
        except TimeoutError as exc:
            if isinstance(exc, MicroError):
                raise
            detail = (
                f"stream timeout: could not open {self.service} {self.endpoint} within {limit:g}s"
            )
            raise Timeout(detail, id="go.micro.client") from None
        client._streams.add(self)
        return self

    async def _connect(self, node: Node, req: Request, opts: CallOptions) -> Socket | None:
        """One attempt to open the stream on ``node``: dial and send the opening message.

        None when the node speaks gRPC: the stream is then a gRPC call (``_grpc``)."""
        client = self._client
        if client.speaks_grpc(node):
            header = client.grpc_header(opts.metadata)
            self._grpc = await client.grpc.stream(node, req, header).start(self._deadline)
            self.node = node
            return None
        check_transport(node, client.transport.name)
        loop = asyncio.get_running_loop()
        remaining = max(opts.deadline - loop.time(), 0.0)
        sock = await client._pool.dial(node.address, timeout=min(opts.dial_timeout, remaining))
        try:
            self._id = client.next_id()
            header = md.outgoing(opts.metadata)
            header.update(self._header())
            if self._deadline is not None:
                header["Timeout"] = timeout_header(self._deadline - loop.time())
            body = b"" if req.body is None else client.codec(req.content_type).encode(req.body)
            await sock.send(Message(header, body))
            if req.body is not None:
                await sock.send(Message(self._header(), body))  # what a server stream reads
        except BaseException:
            await _close(sock)
            raise
        self.node = node
        self._eos = _reads_eos(node)
        return sock

    def _header(self) -> dict[str, str]:
        req = self.request
        header = dict(self._client.base_headers(req.service, req.endpoint, req.content_type))
        header["Micro-Id"] = self._id
        header["Micro-Stream"] = self._id
        return header

    def _sock(self) -> Socket:
        if self._socket is None:
            if self._closed:
                raise ConnectionClosed("stream is closed", id="go.micro.client")
            raise RuntimeError("stream is not open: use 'async with' or 'await' first")
        return self._socket

    async def send(self, obj: Any) -> None:
        if self._send_done:
            raise ConnectionClosed("stream: send after close_send()", id="go.micro.client")
        if self._grpc is not None:
            await self._bounded(self._grpc.send(obj))
            return
        sock = self._sock()
        body = self._client.codec(self.request.content_type).encode(obj)
        await self._bounded(sock.send(Message(self._header(), body)))

    async def recv(self, type: Any = Any) -> Any:
        if self._recv_done:
            raise StopAsyncIteration
        if self._grpc is not None:
            wanted = self.request.response_type if type is Any else type
            try:
                return await self._bounded(self._grpc.recv(wanted))
            except (StopAsyncIteration, MicroError):
                self._recv_done = True
                raise
        sock = self._sock()
        try:
            message: Message = await self._bounded(sock.recv())
        except ConnectionClosed as exc:
            self._recv_done = True
            if _ends_by_closing(self.node) and not getattr(sock, "cut_off", False):
                raise StopAsyncIteration from None
            detail = f"stream {self.service} {self.endpoint} cut off before its end: {exc.detail}"
            raise ConnectionClosed(detail, id="go.micro.client") from None
        self.header = message.header
        error = message.header.get("Micro-Error") or message.header.get("X-Micro-Error")
        if error == EOS:
            self._recv_done = True
            raise StopAsyncIteration
        if error:
            self._recv_done = True
        wanted = self.request.response_type if type is Any else type
        return self._client.decode(message, self.request.content_type, wanted)

    async def _bounded(self, awaitable: Any) -> Any:
        if self._deadline is None:
            return await awaitable
        try:
            async with asyncio.timeout_at(self._deadline):
                return await awaitable
        except TimeoutError as exc:
            if isinstance(exc, MicroError):
                raise
            detail = f"stream timeout: {self.service} {self.endpoint} ran past {self._timeout:g}s"
            raise Timeout(detail, id="go.micro.client") from None

    async def close_send(self) -> None:
        if self._grpc is not None:
            self._send_done = True
            await self._grpc.close_send()
            return
        sock = self._sock()
        if self._send_done:
            return
        self._send_done = True
        if self._eos:
            header = self._header()
            header["Micro-Error"] = EOS
            await self._bounded(sock.send(Message(header, b"")))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._streams.discard(self)
        if self._grpc is not None:
            await self._grpc.close()
        sock, self._socket = self._socket, None
        if sock is None:
            return
        try:
            if not self._send_done and self._eos and not sock.closed:
                self._send_done = True
                header = self._header()
                header["Micro-Error"] = EOS
                async with asyncio.timeout(_EOS_SEND_TIMEOUT):
                    await sock.send(Message(header, b""))
        except (MicroError, OSError, TimeoutError):
            pass  # the peer is gone or stuck; closing is all that is left to do
        finally:
            await _close(sock)


def _reads_eos(node: Node) -> bool:
    """Whether ``node`` understands a client's ``EOS``: go-micro before v1.7 (registered as
    ``server: rpc``) decodes it as a request. v1.7 and v1.8 do too, but register ``mucp``,
    as later go-micro and micro do, so they cannot be told apart."""
    return (node.metadata or {}).get("server") != "rpc"


def _ends_by_closing(node: Node | None) -> bool:
    """Whether the server may end a stream by closing the connection, without EOS.

    go-micro v1.0 to v1.2 servers do; their nodes say ``server=rpc`` (micro's and later
    go-micro's say ``mucp`` and always send EOS). A close cut in the middle of a message, or
    a reset (the socket's ``cut_off``), is never an end.
    """
    return node is not None and node.metadata.get("server") == "rpc"


async def _close(sock: Socket) -> None:
    try:
        await sock.close()
    except Exception:  # close() must not raise
        pass
