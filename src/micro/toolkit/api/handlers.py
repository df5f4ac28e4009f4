"""The HTTP handlers ``rpc``, ``api`` and ``event`` (``http``/``web`` are in :mod:`.proxy`).

- ``rpc``: a JSON body (POST) or the query string (GET) is the request of an RPC call; the
  response is the endpoint's JSON. The body is checked, then passed through unchanged.
- ``api``: the whole HTTP request as go-api's ``Request`` message; the service answers with
  a ``Response`` (status, headers, body) that becomes the HTTP response.
- ``event``: the request as go-api's ``Event``, published to the resolved topic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from micro.errors import BadRequest, MethodNotAllowed, MicroError
from micro.metadata import HOP_HEADERS, canonical
from micro.toolkit.api._errors import API_ID
from micro.toolkit.api._http import RawResponse, json_body, media_type, query_object
from micro.toolkit.api.proto import Pair
from micro.toolkit.api.resolver import Route

if TYPE_CHECKING:
    from micro.toolkit.api.app import Gateway

__all__ = ["Reply", "api_handler", "call_metadata", "event_handler", "rpc_handler"]

Reply = Callable[[Scope, Receive, Send], Awaitable[None]]
"""What a handler answers: a finished response as an ASGI app (a Starlette ``Response``,
or the leaner :class:`~micro.toolkit.api._http.RawResponse`)."""

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_DROP = HOP_HEADERS | {"Authorization", "Cookie"}


def call_metadata(scope: Scope) -> dict[str, str]:
    """The HTTP headers as call metadata (per-hop headers and credentials left out).

    Values are decoded as UTF-8 (the header check let only UTF-8 through), so a service sees
    the characters the client sent, whatever its transport.
    """
    out: dict[str, str] = {}
    names = _META_NAMES
    for key, value in scope["headers"]:
        name = names.get(key, "")
        if name == "":
            name = _meta_name(key)
        if name is not None:
            text = value.decode()
            out[name] = f"{out[name]},{text}" if name in out else text
    client = scope.get("client")
    if client:
        prior = out.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{prior}, {client[0]}" if prior else str(client[0])
    return out


# raw header name -> its metadata key, or None when it is not forwarded (a per-request
# canonical() and set test cost more than the rest of call_metadata). Names are the client's
# to choose: only short ones are kept, so the table stays under 1024 x 64 bytes.
_META_NAMES: dict[bytes, str | None] = {}
_META_NAME_MAX = 64


def _meta_name(key: bytes) -> str | None:
    name = canonical(key.decode("latin-1"))
    found = None if name in _DROP else name
    if len(_META_NAMES) < 1024 and len(key) <= _META_NAME_MAX:
        _META_NAMES[key] = found
    return found


def call_timeout(scope: Scope) -> float | None:
    """The ``Timeout`` request header in seconds (go-micro's /rpc), None when absent."""
    for key, value in scope["headers"]:
        if key == b"timeout":
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not 0 < seconds < 3600:
                raise BadRequest(f"invalid Timeout header {value.decode('latin-1')!r}", id=API_ID)
            return seconds
    return None


async def rpc_handler(gw: Gateway, scope: Scope, receive: Receive, route: Route) -> Reply:
    """JSON body or query string in, the endpoint's JSON out (both passed through as bytes)."""
    method = scope["method"]
    if method == "GET":
        endpoint = gw.catalog.endpoint(route.service, route.endpoint)
        request: Any = query_object(scope["query_string"].decode("latin-1"), endpoint)
    elif method == "POST":
        body = await gw.read_body(scope, receive)
        parsed = json_body(scope, body)  # checks the body (400/415 from here, not the service)
        # a form (or an empty body) became an object; JSON goes through as the client sent it
        form = isinstance(parsed, dict) and body.lstrip()[:1] not in (b"{", b"[")
        request = parsed if form else msgspec.Raw(body)
    else:
        raise MethodNotAllowed(f"{method} not allowed: use GET or POST", id=API_ID)
    rsp = await gw.client.call(
        route.service,
        route.endpoint,
        request,
        response_type=msgspec.Raw,
        metadata=call_metadata(scope),
        timeout=call_timeout(scope) or gw.options.timeout,
        content_type=_JSON,
    )
    return RawResponse(bytes(rsp))


def _pairs(items: Iterable[tuple[str, str]]) -> dict[str, Pair]:
    out: dict[str, Pair] = {}
    for key, value in items:
        if key in out:
            out[key].values.append(value)
        else:
            out[key] = Pair(key=key, values=[value])
    return out


def _request_headers(scope: Scope) -> list[tuple[str, str]]:
    items = [(canonical(k.decode("latin-1")), v.decode()) for k, v in scope["headers"]]
    if scope.get("client"):
        items.append(("X-Forwarded-For", str(scope["client"][0])))
    return items


def _url(scope: Scope) -> str:
    query = scope["query_string"].decode("latin-1")
    path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    return f"{path}?{query}" if query else path


async def api_handler(gw: Gateway, scope: Scope, receive: Receive, route: Route) -> Response:
    """The HTTP request as ``go.api.Request``; the service's ``Response`` is the answer."""
    from urllib.parse import parse_qsl

    body = await gw.read_body(scope, receive)
    form = media_type(scope) == _FORM
    query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    request = {
        "method": scope["method"],
        "path": scope["path"],
        "header": _pairs(_request_headers(scope)),
        "get": _pairs(query),
        "post": _pairs(parse_qsl(body.decode("latin-1"), keep_blank_values=True)) if form else {},
        "body": "" if form else body.decode("utf-8", errors="replace"),
        "url": _url(scope),
    }
    rsp = await gw.client.call(
        route.service,
        route.endpoint,
        request,
        metadata=call_metadata(scope),
        timeout=call_timeout(scope) or gw.options.timeout,
        content_type=_JSON,
    )
    return _api_response(route, rsp)


def _api_response(route: Route, rsp: Any) -> Response:
    if not isinstance(rsp, dict):
        raise MicroError(f"{route.service} answered a non-object Response", id=API_ID, code=502)
    status = rsp.get("statusCode", rsp.get("status_code")) or 200
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise MicroError(f"{route.service} answered status {status!r}", id=API_ID, code=502)
    headers: list[tuple[str, str]] = []
    for key, pair in (rsp.get("header") or {}).items():
        values = pair.get("values", []) if isinstance(pair, dict) else []
        headers.extend((str(key), str(v)) for v in values)
    body = rsp.get("body") or ""
    response = Response(str(body).encode(), status_code=status)
    for key, value in headers:
        if key.lower() not in ("content-length", "transfer-encoding", "connection"):
            response.headers.append(key, value)
    if "content-type" not in response.headers:
        response.headers["content-type"] = _JSON
    return response


async def event_handler(gw: Gateway, scope: Scope, receive: Receive, route: Route) -> Response:
    """Publish the request as ``go.api.Event`` to the topic ``route.service``."""
    from urllib.parse import parse_qsl

    publish = getattr(gw.client, "publish", None)
    if publish is None:
        raise MicroError("the gateway's client cannot publish events", id=API_ID, code=501)
    if scope["method"] == "GET":
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        data = msgspec.json.encode(query).decode()
    else:
        data = (await gw.read_body(scope, receive)).decode("utf-8", errors="replace")
    event_id = str(uuid.uuid4())
    event = {
        "name": route.endpoint,
        "id": event_id,
        "timestamp": int(time.time()),
        "header": _pairs(_request_headers(scope)),
        "data": data,
    }
    await publish(route.service, event, content_type=_JSON, metadata=call_metadata(scope))
    return JSONResponse({"id": event_id, "topic": route.service, "name": route.endpoint})
