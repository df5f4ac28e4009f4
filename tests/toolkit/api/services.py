"""Handlers the gateway tests serve (in-process and as processes)."""

from __future__ import annotations

import asyncio
from typing import Any

from msgspec import Struct

from micro import metadata
from micro.errors import Forbidden, Unauthorized
from micro.toolkit.api.proto import Pair, Request, Response


class AddRequest(Struct):
    a: int
    b: int = 0
    scale: float = 1.0
    negate: bool = False


class Sum(Struct):
    total: float


class Calc:
    calls = 0

    async def add(self, req: AddRequest) -> Sum:
        """Add two integers."""
        Calc.calls += 1
        total = (req.a + req.b) * req.scale
        return Sum(total=-total if req.negate else total)


class Failing:
    async def forbid(self, req: dict[str, Any]) -> dict[str, Any]:
        raise Forbidden("no entry", id="failing")

    async def crash(self, req: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("boom")

    async def slow(self, req: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(float(req.get("seconds", 2)))
        return {"slept": True}


class Shop:
    async def items(self, req: Request) -> Response:
        """go-api style: echo what the gateway put in the Request."""
        body = {
            "method": req.method,
            "path": req.path,
            "get": {k: p.values for k, p in req.get.items()},
            "post": {k: p.values for k, p in req.post.items()},
            "body": req.body,
            "agent": req.header.get("User-Agent", Pair(key="")).values,
            "url": req.url,
        }
        import json

        return Response(
            status_code=201,
            header={"X-Shop": Pair(key="X-Shop", values=["open"])},
            body=json.dumps(body),
        )


class Auth:
    async def verify(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("token") == "good":
            return {"valid": True}
        if req.get("token") == "refused":
            raise Unauthorized("token refused", id="auth")
        return {"valid": False}


class Headers:
    async def echo(self, req: dict[str, Any]) -> dict[str, str]:
        """Answer the call's metadata (the HTTP headers the gateway passed on)."""
        return dict(metadata.get())
