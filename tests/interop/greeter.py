"""The Python greeter the go-micro v1.0 interop run served, as go.micro.srv.greeter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from micro import errors
from micro.server import Stream


class Request(msgspec.Struct):
    name: str = ""


class Response(msgspec.Struct):
    msg: str


class Say:
    """``Hello`` and ``Fail`` (unary), ``Stream`` (server stream), ``Bidi`` (bidirectional)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []  # what Stream was called with

    async def hello(self, req: Request) -> Response:
        return Response(msg=f"Hello {req.name}")

    async def fail(self, req: Request) -> Response:
        raise errors.BadRequest(f'bad name "{req.name}"')

    async def stream(self, req: Request) -> AsyncIterator[Response]:
        self.requests.append(req)
        for n in range(3):
            yield Response(msg=f"Hello {req.name} #{n}")

    async def bidi(self, stream: Stream[Request, Response]) -> None:
        async for req in stream:
            await stream.send(Response(msg=f"echo {req.name}"))
