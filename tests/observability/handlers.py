"""The handler the observability tests serve: ``Echo.Echo``, a 400 for a negative ``n``."""

from __future__ import annotations

import msgspec

from micro import errors


class Ping(msgspec.Struct):
    n: int


class Echo:
    async def echo(self, req: Ping) -> Ping:
        if req.n < 0:
            raise errors.BadRequest("negative", id="echo")
        return req
