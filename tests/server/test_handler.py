"""Handler introspection: endpoint names, shapes, and clear errors for what cannot be served."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Annotated, Any

import pytest

from micro.registry.memory import MemoryRegistry
from micro.server import Stream
from micro.server.handler import NO_REQUEST, camel_case, introspect
from micro.server.rpc import RpcServer
from micro.transport.memory import MemoryTransport
from tests.server.handlers import HelloRequest, HelloResponse, Say


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("say_hello", "SayHello"),
        ("hello", "Hello"),
        ("sayHello", "SayHello"),
        ("get_http_url", "GetHttpUrl"),
        ("v2_list", "V2List"),
    ],
)
def test_camel_case(name: str, expected: str) -> None:
    assert camel_case(name) == expected


def test_say_endpoints_and_shapes() -> None:
    specs = {s.name: s for s in introspect(Say())}
    assert "Say._private" not in specs
    assert list(specs) == sorted(specs)
    hello = specs["Say.Hello"]
    assert (hello.kind, hello.request_type, hello.response_type) == (
        "unary",
        HelloRequest,
        HelloResponse,
    )
    assert hello.is_async
    assert not specs["Say.Blocking"].is_async
    assert specs["Say.Whoami"].request_type is NO_REQUEST
    assert specs["Say.Maybe"].optional
    assert specs["Say.Count"].kind == "server_stream"
    assert specs["Say.Count"].response_type is HelloResponse
    stream = specs["Say.Stream"]
    assert (stream.kind, stream.request_type, stream.response_type) == (
        "bidi",
        HelloRequest,
        HelloResponse,
    )


class Shapes:
    async def gen(self, req: HelloRequest) -> AsyncGenerator[HelloResponse, None]:
        yield HelloResponse(msg="x")

    async def returns_iterator(self, req: HelloRequest) -> AsyncIterator[HelloResponse]:
        return self.gen(req)

    async def bare_stream(self, stream: Stream) -> None:  # type: ignore[type-arg]
        pass

    async def annotated(self, req: Annotated[HelloRequest, "doc"]) -> None:
        pass

    async def unannotated(self, req):
        return req

    @staticmethod
    async def static(req: HelloRequest) -> str:
        return req.name

    async def with_defaults(self, req: HelloRequest, extra: int = 1, *, flag: bool = True) -> int:
        return extra

    @property
    def not_an_endpoint(self) -> int:
        return 1


def test_other_shapes() -> None:
    specs = {s.name: s for s in introspect(Shapes(), name="Shape")}
    assert set(specs) == {
        "Shape.Gen",
        "Shape.ReturnsIterator",
        "Shape.BareStream",
        "Shape.Annotated",
        "Shape.Unannotated",
        "Shape.Static",
        "Shape.WithDefaults",
    }
    assert specs["Shape.Gen"].kind == "server_stream"
    assert specs["Shape.Gen"].response_type is HelloResponse
    assert specs["Shape.ReturnsIterator"].kind == "server_stream"
    assert specs["Shape.ReturnsIterator"].awaits_iterator
    assert specs["Shape.BareStream"].kind == "bidi"
    assert specs["Shape.BareStream"].request_type is Any
    assert specs["Shape.Unannotated"].request_type is Any
    assert specs["Shape.Static"].request_type is HelloRequest


class TooMany:
    async def two(self, a: HelloRequest, b: HelloRequest) -> None:
        pass


class VarArgs:
    async def star(self, *args: Any) -> None:
        pass


class KeywordOnly:
    async def kw(self, req: HelloRequest, *, must: int) -> None:
        pass


class SyncGen:
    def gen(self, req: HelloRequest) -> Iterator[HelloResponse]:
        yield HelloResponse(msg="x")


class SyncStream:
    def chat(self, stream: Stream[HelloRequest, HelloResponse]) -> None:
        pass


class SyncIterator:
    def items(self, req: HelloRequest) -> AsyncIterator[HelloResponse]:
        raise NotImplementedError


class Unresolvable:
    async def call(self, req: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass


class NotDecodable:
    async def call(self, req: MemoryRegistry) -> None:
        pass


class Collide:
    async def say_hello(self) -> None:
        pass

    async def sayHello(self) -> None:
        pass


class Empty:
    pass


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (TooMany(), "TooMany.two: a handler method takes at most one argument"),
        (VarArgs(), "VarArgs.star: *args and **kwargs"),
        (KeywordOnly(), "KeywordOnly.kw: keyword-only parameter 'must'"),
        (SyncGen(), "SyncGen.gen: sync generators are not served"),
        (SyncStream(), "SyncStream.chat: a Stream handler must be a plain `async def`"),
        (SyncIterator(), "SyncIterator.items: a streaming method must be `async def`"),
        (Unresolvable(), "Unresolvable.call: cannot resolve its annotations"),
        (NotDecodable(), "NotDecodable.Call: cannot decode requests into 'MemoryRegistry'"),
        (Collide(), "endpoint Collide.SayHello is already defined"),
        (Empty(), "handler Empty has no public methods"),
    ],
)
def test_unsupported_signatures_fail_at_handle_time(handler: object, words: str) -> None:
    server = RpcServer(name="s", transport=MemoryTransport(), registry=MemoryRegistry())
    with pytest.raises(TypeError) as info:
        server.handle(handler)
    assert words in str(info.value)


def test_the_same_endpoint_cannot_be_served_twice() -> None:
    server = RpcServer(name="s", transport=MemoryTransport(), registry=MemoryRegistry())
    server.handle(Say())
    with pytest.raises(TypeError, match=r"endpoint Say\.AnonymousError is already served"):
        server.handle(Say())
    with pytest.raises(TypeError, match=r"Debug\.Health is already served"):
        server.handle(_Health(), name="Debug")


class _Health:
    async def health(self) -> None:
        pass
