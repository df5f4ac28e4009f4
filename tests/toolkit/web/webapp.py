"""A small real web app for the reverse proxy's tests: pages, a POST echo, a stream and a
WebSocket echo, served by uvicorn on a free loopback port and registered as
``<namespace>.<name>`` (``go.micro.web.<name>`` by default).

Routes (as the app sees them, the ``/<name>`` prefix already stripped by the proxy):

- ``GET /``: an HTML page linking to ``about`` (relative) and naming its base path.
- ``GET /about``: another page.
- ``GET|POST|PUT|DELETE /echo...``: JSON ``{"method", "path", "query", "body", "headers"}``
  (the body as text; the headers the proxy sets or filters).
- ``GET /stream?n=3``: ``n`` lines, one every 50 ms (a streamed body).
- ``GET /big?kb=N``: N KiB of ``x`` (a large streamed answer).
- WebSocket ``/ws``: echoes text as ``echo:<text>`` and bytes as they came.

Run it alone (for a browser test or by hand) over the configured registry::

    python tests/toolkit/web/webapp.py --name hello [--namespace go.micro.web]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from micro.registry import Node, Registry, Service

HEADERS = (
    "x-micro-web-base-path",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "cookie",
    "authorization",
    "host",
    "content-type",
)


async def index(request: Request) -> HTMLResponse:
    base = request.headers.get("x-micro-web-base-path", "")
    return HTMLResponse(
        "<!doctype html><html><head><title>webapp</title></head><body>"
        f'<h1 data-testid="webapp-title">webapp at {base}</h1>'
        '<a href="about" data-testid="webapp-about">about</a>'
        "</body></html>"
    )


async def about(request: Request) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html><body><h1 data-testid="webapp-about-title">about</h1>'
    )


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode("utf-8", "replace"),
            "headers": {k: request.headers.get(k) for k in HEADERS},
        },
        headers={"X-Webapp": "1"},
    )


async def stream(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("n", "3"))

    async def lines() -> AsyncIterator[bytes]:
        for i in range(count):
            yield f"line {i}\n".encode()
            await asyncio.sleep(0.05)

    return StreamingResponse(lines(), media_type="text/plain")


async def big(request: Request) -> StreamingResponse:
    kib = int(request.query_params.get("kb", "1"))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(kib):
            yield b"x" * 1024

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def ws_echo(ws: WebSocket) -> None:
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await ws.send_text("echo:" + message["text"])
            elif message.get("bytes") is not None:
                await ws.send_bytes(message["bytes"])


def app() -> Starlette:
    methods = ["GET", "POST", "PUT", "DELETE"]
    return Starlette(
        routes=[
            Route("/", index),
            Route("/about", about),
            Route("/echo", echo, methods=methods),
            Route("/echo/{rest:path}", echo, methods=methods),
            Route("/stream", stream),
            Route("/big", big),
            WebSocketRoute("/ws", ws_echo),
        ]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(
    registry: Registry,
    name: str,
    namespace: str = "go.micro.web",
    *,
    metadata: dict[str, str] | None = None,
    ttl: float | None = None,
) -> AsyncIterator[Service]:
    """Serve the app on 127.0.0.1 and register it as ``<namespace>.<name>`` while open."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    service = Service(
        f"{namespace}.{name}",
        metadata=dict(metadata or {}),
        nodes=[Node(id=f"{name}-{port}", address=f"127.0.0.1:{port}")],
    )
    await registry.register(service, ttl=ttl)
    try:
        yield service
    finally:
        with contextlib.suppress(Exception):
            await registry.deregister(service)
        server.should_exit = True
        await task


async def _main(name: str, namespace: str) -> None:
    from micro import plugins
    from micro.settings import BACKEND_GROUPS, load

    registry = plugins.create("registry", settings=load(groups=BACKEND_GROUPS))
    async with registry, serve(registry, name, namespace) as service:
        print(f"serving {service.name} at {service.nodes[0].address}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--name", default="hello")
    parser.add_argument("--namespace", default="go.micro.web")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.name, args.namespace))
