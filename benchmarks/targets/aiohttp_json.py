"""``aiohttp``: an aiohttp.web ``POST /greeter`` JSON endpoint and a keep-alive ClientSession."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.harness import REQUEST, Client, Target


async def greeter(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"msg": f"Hello {body['name']}"})


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    app = web.Application()
    app.router.add_post("/greeter", greeter)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"{host}:{port}", runner.cleanup


class AiohttpTarget(Target):
    name = "aiohttp"
    title = "aiohttp.web JSON endpoint + ClientSession"
    server_module = __name__
    import_probes = {"aiohttp": "import aiohttp.web"}

    async def make_client(self, address: str) -> Client:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        url = f"http://{address}/greeter"

        async def call() -> Any:
            async with session.post(url, json=REQUEST) as response:
                response.raise_for_status()
                return await response.json()

        return Client(call=call, close=session.close)


TARGET = AiohttpTarget()
