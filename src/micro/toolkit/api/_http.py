"""HTTP helpers: bounded body reads, JSON/form request bodies, query strings to objects, and
:class:`RawResponse`, the lean response of the hot path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Generator
from typing import Any, cast
from urllib.parse import parse_qsl

import msgspec
from starlette.types import Message, Receive, Scope, Send

from micro.client.deadline import TaskDeadline
from micro.errors import BadRequest, MicroError, PayloadTooLarge, RequestTimeout
from micro.registry import Endpoint
from micro.toolkit.api._errors import API_ID

__all__ = [
    "RawResponse",
    "decode_json",
    "header",
    "json_body",
    "lifespan",
    "query_object",
    "read_body",
]

_JSON_TYPES = ("application/json", "text/plain", "")
_FORM = "application/x-www-form-urlencoded"


def header(scope: Scope, name: bytes) -> str:
    """One request header (``name`` lower-case), "" when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class RawResponse:
    """A complete response sent as two ASGI messages, with no header processing.

    The hot path's answer (the service's JSON bytes, untouched); Starlette's ``Response``
    builds and checks a header list per request, which costs more than this whole send.
    """

    __slots__ = ("body", "content_type", "status_code")

    def __init__(
        self, body: bytes, status_code: int = 200, content_type: bytes = b"application/json"
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.content_type = content_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": [
                    (b"content-type", self.content_type),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def read_body(scope: Scope, receive: Receive, *, limit: int, timeout: float) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes or a client too slow.

    A body that came with the request head (most do) is read with no timer: the first
    ``receive()`` is stepped once by hand, and only when it has to wait, or more of the
    body is to come, does the ``timeout`` start (a timer per request costs a few percent
    of a gateway call).

    Raises:
        PayloadTooLarge: the body (or its declared Content-Length) exceeds ``limit``.
        RequestTimeout: the body did not arrive within ``timeout`` seconds.
        BadRequest: the client disconnected or declared an invalid Content-Length.
    """
    declared = header(scope, b"content-length")
    if declared:
        if not declared.isdigit():
            raise BadRequest(f"invalid Content-Length {declared!r}", id=API_ID)
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes exceeds {limit}", id=API_ID)
    body = _Body(limit)
    steps = receive().__await__()
    try:
        waiting = steps.send(None)
    except StopIteration as done:  # the message was there already
        if not body.take(done.value):
            return body.chunks[0]
        pending: Awaitable[Message] = receive()
    else:
        pending = _Resumed(steps, waiting)
    loop = asyncio.get_running_loop()
    deadline = TaskDeadline(loop.time() + timeout, loop)
    try:
        while body.take(await pending):
            pending = receive()
    except asyncio.CancelledError:
        if deadline.expired():
            detail = f"request body not received within {timeout:g}s"
            raise RequestTimeout(detail, id=API_ID) from None
        raise
    finally:
        deadline.cancel()
    return body.chunks[0] if len(body.chunks) == 1 else b"".join(body.chunks)


class _Body:
    """A request body as its messages arrive, within ``limit`` bytes."""

    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit

    def take(self, message: Message) -> bool:
        """Add ``message``'s part; whether more is to come."""
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected", id=API_ID)
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(f"body exceeds {self.limit} bytes", id=API_ID)
        self.chunks.append(chunk)
        return bool(message.get("more_body", False))


class _Resumed:
    """The rest of an awaitable whose first step ran already and yielded ``waiting``: what
    awaiting it would have done from there (``yield from``, cancellation included)."""

    __slots__ = ("steps", "waiting")

    def __init__(self, steps: Generator[Any, Any, Message], waiting: Any) -> None:
        self.steps = steps
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, Message]:
        steps, waiting = self.steps, self.waiting
        while True:
            try:
                sent = yield waiting
            except BaseException as exc:  # cancelled: into the awaitable, as yield from
                try:
                    waiting = steps.throw(exc)
                except StopIteration as done:
                    return cast(Message, done.value)
                continue
            try:
                waiting = steps.send(sent)
            except StopIteration as done:
                return cast(Message, done.value)


def media_type(scope: Scope) -> str:
    return header(scope, b"content-type").split(";", 1)[0].strip().lower()


def json_body(scope: Scope, body: bytes) -> Any:
    """The request as a JSON-ready value: a JSON body, or a form as an object.

    A form-typed body that holds JSON is read as JSON (``curl -d '{...}'`` sends JSON as a
    form); an empty body is ``{}``.

    Raises:
        BadRequest: invalid JSON, or a content type that is neither JSON nor a form (415).
    """
    kind = media_type(scope)
    stripped = body.strip()
    if kind == _FORM and not stripped.startswith((b"{", b"[")):
        return _pairs_object(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    if kind not in _JSON_TYPES and not kind.endswith("+json") and kind != _FORM:
        raise MicroError(
            f"unsupported content type {kind!r}: send application/json or a form",
            id=API_ID,
            code=415,
        )
    if not stripped:
        return {}
    return decode_json(body, "JSON body")


def decode_json(data: bytes | str, what: str, *, error_id: str = API_ID) -> Any:
    """``data`` decoded as JSON.

    Raises:
        BadRequest: ``data`` is not JSON, or nests deeper than the decoder's recursion
            limit (about a thousand levels); the detail names ``what``.
    """
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid {what}: {exc}", id=error_id) from None
    except RecursionError:
        raise BadRequest(f"invalid {what}: nested too deeply", id=error_id) from None


def _pairs_object(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            have = out[key]
            out[key] = [*have, value] if isinstance(have, list) else [have, value]
        else:
            out[key] = value
    return out


def query_object(query: str, endpoint: Endpoint | None) -> dict[str, Any]:
    """A query string as a request object, typed by the endpoint's schema when known.

    ``?name=John&n=3`` -> ``{"name": "John", "n": 3}`` when the schema says ``n`` is an
    integer; without a schema every value stays a string. Repeated keys make lists.
    """
    obj = _pairs_object(parse_qsl(query, keep_blank_values=True))
    props = _properties(endpoint)
    for key, value in obj.items():
        prop = props.get(key)
        if prop is not None:
            obj[key] = _coerce(value, prop)
    return obj


def _properties(endpoint: Endpoint | None) -> dict[str, Any]:
    if endpoint is None:
        return {}
    text = (endpoint.metadata or {}).get("request_schema")
    if not text:
        return {}
    try:
        schema = json.loads(text)
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            schema = schema["$defs"][ref[len("#/$defs/") :]]
        props = schema.get("properties", {})
    except (ValueError, KeyError, AttributeError):
        return {}
    return props if isinstance(props, dict) else {}


def _coerce(value: Any, prop: Any) -> Any:
    kind = prop.get("type") if isinstance(prop, dict) else None
    if kind == "array":
        items = prop.get("items", {})
        values = value if isinstance(value, list) else [value]
        return [_coerce(v, items) for v in values]
    if isinstance(value, list) or not isinstance(value, str):
        return value
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean" and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if kind == "object" or (kind is None and value[:1] in ("{", "[")):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # the service answers for a value it cannot read
            return value
    return value


async def lifespan(
    receive: Receive,
    send: Send,
    start: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
) -> None:
    """Answer an ASGI lifespan scope: ``start`` on startup (its error fails the startup, with
    its message), ``close`` on shutdown. The gateway's and the dashboard's."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await start()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close()
            await send({"type": "lifespan.shutdown.complete"})
            return
