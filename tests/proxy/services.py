"""Handlers the remote environment of the proxy tests serves."""

from __future__ import annotations

import asyncio
from typing import Any

from micro import metadata
from micro.errors import BadRequest, Conflict, Forbidden, NotFound


class Failing:
    async def missing(self, req: dict[str, Any]) -> dict[str, Any]:
        raise NotFound(f"no user {req.get('id')}", id="users")

    async def forbid(self, req: dict[str, Any]) -> dict[str, Any]:
        raise Forbidden("no entry", id="failing")

    async def conflict(self, req: dict[str, Any]) -> dict[str, Any]:
        raise Conflict("already there", id="failing")

    async def invalid(self, req: dict[str, Any]) -> dict[str, Any]:
        raise BadRequest("name: expected a string", id="failing")

    async def crash(self, req: dict[str, Any]) -> dict[str, Any]:
        Failing.crashes += 1
        raise ValueError("boom")

    async def slow(self, req: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(float(req.get("seconds", 2)))
        return {"slept": True}

    crashes = 0


class Headers:
    async def echo(self, req: dict[str, Any]) -> dict[str, str]:
        """Answer the call's metadata."""
        return dict(metadata.get())
