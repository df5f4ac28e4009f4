"""Per-endpoint pieces built once at ``handle()`` time: the registry record and the inner call."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import msgspec
import msgspec.inspect as mi

from micro.codec._types import is_proto_class, is_pydantic_model
from micro.codec.schema import json_schema, value_tree
from micro.registry import Endpoint
from micro.server import HandlerFunc, Request
from micro.server.handler import NO_REQUEST, EndpointSpec

__all__ = ["endpoint_record", "inner_call"]

_json = msgspec.json.Encoder()


def endpoint_record(spec: EndpointSpec, extra: dict[str, str] | Any) -> Endpoint:
    """The registry's :class:`Endpoint` for ``spec``: Value trees plus JSON Schema metadata.

    Raises:
        TypeError: the request type is not one a codec can decode into.
    """
    metadata = {"stream": "true" if spec.stream else "false"}
    request = response = None
    if spec.request_type is not NO_REQUEST:
        _check_decodable(spec)
        request = value_tree(spec.request_type)
        metadata["request_schema"] = _json.encode(json_schema(spec.request_type)).decode()
    if spec.response_type not in (None, type(None)):
        response = value_tree(spec.response_type)
        metadata["response_schema"] = _json.encode(json_schema(spec.response_type)).decode()
    summary = _summary(spec.func)
    if summary:
        metadata["description"] = summary
    metadata.update(extra)
    return Endpoint(name=spec.name, request=request, response=response, metadata=metadata)


def _summary(func: Any) -> str:
    """The first line of the method's docstring, at most 200 characters: what the CLI,
    OpenAPI and MCP show; short, as every byte rides in each registration (mDNS TXT)."""
    doc = inspect.getdoc(func) or ""
    line = doc.strip().split("\n", 1)[0].strip()
    return line if len(line) <= 200 else line[:199] + "\u2026"


def _check_decodable(spec: EndpointSpec) -> None:
    tp = spec.request_type
    try:
        info = mi.type_info(tp)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{spec.name}: cannot decode requests into {tp!r}: {exc}") from None
    if isinstance(info, mi.CustomType) and not (is_pydantic_model(tp) or is_proto_class(tp)):
        raise TypeError(
            f"{spec.name}: cannot decode requests into {getattr(tp, '__qualname__', tp)!r}; "
            "use a msgspec Struct, dataclass, TypedDict, dict or pydantic model"
        )


def inner_call(spec: EndpointSpec) -> HandlerFunc:
    """The innermost ``HandlerFunc`` of ``spec``: calls the method (and runs its stream)."""
    if spec.kind == "server_stream":
        return _server_stream_call(spec)
    func = spec.func
    takes_request = spec.request_type is not NO_REQUEST
    if spec.kind == "bidi" or (spec.is_async and takes_request):

        async def call(request: Request) -> Any:
            return await func(request.body)

    elif spec.is_async:

        async def call(request: Request) -> Any:
            return await func()

    elif takes_request:

        async def call(request: Request) -> Any:
            return await asyncio.to_thread(func, request.body)

    else:

        async def call(request: Request) -> Any:
            return await asyncio.to_thread(func)

    return call


def _server_stream_call(spec: EndpointSpec) -> HandlerFunc:
    func = spec.func
    takes_request = spec.request_type is not NO_REQUEST
    awaits = spec.awaits_iterator

    async def call(request: Request) -> None:
        stream = request.io
        if stream is None:
            raise RuntimeError(f"{spec.name} is a stream; its request carries no stream")
        items = func(request.body) if takes_request else func()
        if awaits:
            items = await items
        try:
            async for item in items:
                await stream.send(item)
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    return call
