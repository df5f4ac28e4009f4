"""``micro api`` and ``micro web`` on a laptop with ``--proxy-address``: the gateway and the
dashboard of the remote environment, whose registry, calls and events come through the
proxy (the services are registered where only the proxy can see them)."""

from __future__ import annotations

import httpx
import pytest

from micro.toolkit.api import cli as api_cli
from micro.toolkit.web import cli as web_cli
from tests.proxy.conftest import Remote

pytestmark = pytest.mark.integration


def _asgi(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://laptop")


async def test_the_gateway_serves_the_remote_services(remote: Remote, proxy: str) -> None:
    settings = api_cli.read_settings(
        ["--namespace", "", "--no-access-log"], environ={"MICRO_PROXY_ADDRESS": proxy}
    )
    options = api_cli.build_options(settings)
    assert options.registry is None  # the proxy's registry, not the default mdns
    gateway = api_cli._gateway(options, settings)
    try:
        async with _asgi(gateway) as http:
            await gateway.start()
            assert gateway.registry.name == "proxy"
            rsp = await http.post("/greeter/say-hello", json={"name": "John"})
            assert rsp.json() == {"msg": "Hello John"}
            assert "/greeter/say-hello" in (await http.get("/openapi.json")).json()["paths"]
    finally:
        await gateway.close()


async def test_the_dashboard_shows_and_calls_the_remote_services(
    remote: Remote, proxy: str
) -> None:
    settings = web_cli.read_settings(["--no-access-log"], environ={"MICRO_PROXY_ADDRESS": proxy})
    dashboard = web_cli._dashboard(web_cli.build_options(settings), settings)
    try:
        async with _asgi(dashboard) as http:
            await dashboard.start()
            listed = await http.get("/registry", headers={"Accept": "application/json"})
            names = {s["name"] for s in listed.json()["services"]}
            assert {"greeter", "failing", "headers"} <= names
            rsp = await http.post(
                "/rpc",
                json={
                    "service": "greeter",
                    "endpoint": "Greeter.SayHello",
                    "request": {"name": "Jo"},
                },
            )
            assert rsp.json() == {"msg": "Hello Jo"}
    finally:
        await dashboard.close()
