"""Ack mode against a real at-least-once broker (NATS JetStream): what the client did not
acknowledge (a nack, its socket closing, the proxy restarting) is delivered again."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.servers import address, nats_url
from tests.toolkit.proxy.conftest import ProxyStack, quiet_settings, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    name = f"proxy-ack-{uuid.uuid4().hex[:8]}"
    yield name
    nc = await nats.connect(nats_url())
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if name in set(info.config.subjects or ()):
                await js.delete_stream(info.config.name or "")
    finally:
        await nc.close()


def jetstream(stack: ProxyStack) -> Any:
    settings = quiet_settings(
        MICRO_BROKER="nats", MICRO_BROKER_ADDRESS=address("nats"), MICRO_BROKER_JETSTREAM="true"
    )
    return stack.app(settings=settings, broker=None)


async def next_frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    frame["Body"] = base64.b64decode(frame["Body"])
    return frame


async def test_nack_and_closing_redeliver(stack: ProxyStack, topic: str) -> None:
    app = jetstream(stack)
    proxy = await stack.served(app)
    url = f"ws://{proxy}/broker?topic={topic}&queue=q1&ack=client"
    async with httpx.AsyncClient(base_url=f"http://{proxy}", timeout=10) as http:
        async with connect(url) as ws:
            assert (await http.post(f"/broker?topic={topic}", content=b"m1")).status_code == 200
            first = await next_frame(ws)
            assert first["Body"] == b"m1"
            await ws.send(json.dumps({"Nack": first["Id"]}))
            again = await next_frame(ws)
            assert again["Body"] == b"m1"  # given back, delivered again
            await ws.send(json.dumps({"Ack": again["Id"]}))
            await http.post(f"/broker?topic={topic}", content=b"m2")
            assert (await next_frame(ws))["Body"] == b"m2"
        # closed without an answer: the next member of the queue group gets it
        async with connect(url) as ws:
            frame = await next_frame(ws)
            assert frame["Body"] == b"m2"
            await ws.send(json.dumps({"Ack": frame["Id"]}))
            with pytest.raises(TimeoutError):  # acknowledged: not delivered again
                await next_frame(ws, 1.5)


async def test_unacknowledged_survives_a_proxy_restart(stack: ProxyStack, topic: str) -> None:
    first_proxy = jetstream(stack)
    server = serve(first_proxy)
    proxy = await server.__aenter__()
    try:
        ws = await connect(f"ws://{proxy}/broker?topic={topic}&queue=q2&ack=client")
        async with httpx.AsyncClient() as http:
            await http.post(f"http://{proxy}/broker?topic={topic}", content=b"kept")
        assert (await next_frame(ws))["Body"] == b"kept"
    finally:  # the proxy stops while the frame waits for its answer
        await server.__aexit__(None, None, None)
    await first_proxy.close()
    assert ws.close_code == 1001
    second = await stack.served(jetstream(stack))
    async with connect(f"ws://{second}/broker?topic={topic}&queue=q2&ack=client") as ws:
        frame = await next_frame(ws)
        assert frame["Body"] == b"kept"
        await ws.send(json.dumps({"Ack": frame["Id"]}))
