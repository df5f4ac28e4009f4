"""go-api's messages (package ``go.api``) as msgspec Structs, for services behind the gateway.

A service served through the ``api`` handler takes a :class:`Request` and returns a
:class:`Response`; a subscriber of an ``event`` topic receives an :class:`Event`::

    from micro.toolkit.api.proto import Request, Response

    class Shop:
        async def list(self, req: Request) -> Response:
            return Response(status_code=200, body='{"items": []}')

JSON field names are go-api's (``statusCode``), so Go services and clients agree.
"""

from __future__ import annotations

import msgspec

__all__ = ["Event", "Pair", "Request", "Response"]


class Pair(msgspec.Struct):
    """A header, query or form key with its values."""

    key: str
    values: list[str] = []


class Request(msgspec.Struct):
    """The whole HTTP request (``body`` is empty for forms, whose fields are in ``post``)."""

    method: str = ""
    path: str = ""
    header: dict[str, Pair] = {}
    get: dict[str, Pair] = {}
    post: dict[str, Pair] = {}
    body: str = ""
    url: str = ""


class Response(msgspec.Struct):
    """What the service answers: status (default 200), headers, body."""

    status_code: int = msgspec.field(default=200, name="statusCode")
    header: dict[str, Pair] = {}
    body: str = ""


class Event(msgspec.Struct):
    """An HTTP request published by the ``event`` handler."""

    name: str = ""
    id: str = ""
    timestamp: int = 0
    header: dict[str, Pair] = {}
    data: str = ""
