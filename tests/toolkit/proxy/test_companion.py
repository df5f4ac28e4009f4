"""Companion mode: a real HTTP app whose health is switched, over real registries."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Registry, Service
from micro.registry.etcd import EtcdRegistry
from micro.registry.mdns import MdnsRegistry
from micro.registry.memory import MemoryRegistry
from micro.settings import PROXY_GROUPS, load
from micro.testing import eventually
from micro.testing.etcd import EtcdServer, free_port
from micro.toolkit.proxy import companion as companion_module
from micro.toolkit.proxy.companion import Companion

INTERVAL = 0.2
GONE_WITHIN = 2 * INTERVAL + 0.2  # at most one interval to notice, one check, some slack


class App:
    """A small HTTP app on loopback whose ``/health`` answers ``status`` or hangs."""

    def __init__(self) -> None:
        self.status = 200
        self.hang = False
        self.checks = 0
        self.released = asyncio.Event()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/health"

    async def _health(self, request: web.Request) -> web.Response:
        self.checks += 1
        if self.hang:
            await self.released.wait()
        return web.Response(status=self.status, text="state")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.released = asyncio.Event()


@pytest.fixture
async def app() -> AsyncIterator[App]:
    server = App()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as reg:
        yield reg


async def node_ids(registry: Registry, name: str) -> list[str]:
    try:
        services = await registry.get_service(name)
    except ServiceNotFound:
        return []
    return [node.id for service in services for node in service.nodes]


def nodes_are(registry: Registry, name: str, wanted: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await node_ids(registry, name) == wanted

    return check


async def test_registers_while_healthy_and_leaves_while_not(
    app: App, registry: MemoryRegistry
) -> None:
    comp = Companion(registry, name="legacy", address=app.address, healthcheck_url=app.url,
                     interval=INTERVAL)  # fmt: skip
    await comp.start()
    try:
        # registered by the time start() returns
        [service] = await registry.get_service("legacy")
        [node] = service.nodes
        assert node.id.startswith("legacy-")
        uuid.UUID(node.id.removeprefix("legacy-"))
        assert node.address == app.address
        assert node.metadata == {"proxy": "companion", "registry": "memory",
                                 "transport": "http", "protocol": "http"}  # fmt: skip
        status = comp.status()
        assert status["healthy"]
        assert status["registered"]
        assert status["last_error"] is None
        assert status["name"] == "legacy"
        assert status["address"] == app.address
        assert status["last_check"] is not None

        app.status = 503
        await eventually(nodes_are(registry, "legacy", []), timeout=GONE_WITHIN)
        status = comp.status()
        assert not status["healthy"]
        assert not status["registered"]
        assert "503" in status["last_error"]

        app.status = 204
        await eventually(nodes_are(registry, "legacy", [node.id]), timeout=GONE_WITHIN)
        assert comp.status()["healthy"]
        assert comp.status()["last_error"] is None
    finally:
        await comp.close()
    assert await node_ids(registry, "legacy") == []
    assert not comp.status()["registered"]
    await comp.close()  # twice is fine


class RecordingRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.ttls: list[float | None] = []

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        self.ttls.append(ttl)
        await super().register(service, ttl=ttl)


@pytest.mark.parametrize("with_url", [True, False], ids=["healthcheck", "no-healthcheck"])
async def test_refreshes_a_short_ttl_while_healthy(app: App, with_url: bool) -> None:
    async with RecordingRegistry() as registry:
        url = app.url if with_url else None
        comp = Companion(registry, name="legacy", address=app.address, healthcheck_url=url,
                         interval=INTERVAL)  # fmt: skip
        await comp.start()
        try:
            await asyncio.sleep(6 * INTERVAL)  # twice the TTL
            assert len(await node_ids(registry, "legacy")) == 1
            assert len(registry.ttls) >= 4
            assert all(ttl is not None and 0 < ttl <= 5 * INTERVAL for ttl in registry.ttls)
            assert (app.checks >= 4) is with_url
        finally:
            await comp.close()
        assert await node_ids(registry, "legacy") == []


async def test_an_app_that_stops_listening_is_unhealthy_until_back(
    app: App, registry: MemoryRegistry
) -> None:
    comp = Companion(registry, name="legacy", address=app.address, healthcheck_url=app.url,
                     interval=INTERVAL)  # fmt: skip
    await comp.start()
    try:
        await app.stop()
        await eventually(nodes_are(registry, "legacy", []), timeout=GONE_WITHIN)
        assert "cannot reach" in comp.status()["last_error"]
        await app.start()
        await eventually(nodes_are(registry, "legacy", [comp.node_id]), timeout=GONE_WITHIN)
    finally:
        await comp.close()


async def test_a_hanging_health_url_does_not_hang_the_companion(
    app: App, registry: MemoryRegistry
) -> None:
    app.hang = True
    comp = Companion(registry, name="legacy", address=app.address, healthcheck_url=app.url,
                     interval=0.5)  # fmt: skip
    began = time.monotonic()
    await comp.start()
    assert time.monotonic() - began < 1.5
    try:
        status = comp.status()
        assert not status["healthy"]
        assert not status["registered"]
        assert "did not answer within 0.5s" in status["last_error"]
        assert await node_ids(registry, "legacy") == []
        app.hang = False
        app.released.set()
        await eventually(lambda: comp.status()["registered"], timeout=2.0)
        app.released.clear()
        app.hang = True  # hangs while registered: deregistered within interval + timeout
        await eventually(nodes_are(registry, "legacy", []), timeout=1.5)
    finally:
        began = time.monotonic()
        await comp.close()
        assert time.monotonic() - began < 0.5
    assert await node_ids(registry, "legacy") == []


async def test_each_change_is_logged_once(
    app: App, registry: MemoryRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="micro.proxy.companion")
    comp = Companion(registry, name="legacy", address="10.9.8.7:80", healthcheck_url=app.url,
                     interval=0.1)  # fmt: skip
    await comp.start()
    try:
        app.status = 500
        await eventually(lambda: app.checks >= 6, timeout=2.0)
        app.status = 200
        await eventually(lambda: app.checks >= 12, timeout=2.0)
    finally:
        await comp.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unhealthy" in m and "HTTP 500" in m for m in messages) == 1, messages
    assert sum("healthy again" in m for m in messages) == 1, messages
    assert sum("registered as" in m for m in messages) == 2, messages
    assert sum("deregistered" in m for m in messages) == 1, messages
    assert not any("only this machine" in m for m in messages)


async def test_warns_about_an_address_only_this_machine_reaches(
    registry: MemoryRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    comp = Companion(registry, name="legacy", address="localhost:8080", interval=INTERVAL)
    await comp.start()
    await comp.close()
    assert "only this machine can reach" in caplog.text


class FlakyRegistry(MemoryRegistry):
    """Refuses the first ``failures`` registrations, and every deregistration."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.deregister_calls = 0

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise RegistryError("store unreachable")
        await super().register(service, ttl=ttl)

    async def deregister(self, service: Service) -> None:
        self.deregister_calls += 1
        raise RegistryError("store unreachable")


async def test_a_failing_registry_is_retried_and_never_raises(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="micro.proxy.companion")
    async with FlakyRegistry(failures=3) as registry:
        comp = Companion(registry, name="legacy", address=app.address, healthcheck_url=app.url,
                         interval=INTERVAL)  # fmt: skip
        await comp.start()  # does not raise
        status = comp.status()
        assert status["healthy"]
        assert not status["registered"]
        assert "store unreachable" in status["last_error"]
        await eventually(lambda: comp.status()["registered"], timeout=5 * INTERVAL)
        assert comp.status()["last_error"] is None
        await comp.close()  # deregister raises: logged, not raised
        assert registry.deregister_calls == 1
    assert caplog.text.count("registry failed") == 1
    assert "answers again" in caplog.text
    assert "deregistering" in caplog.text


async def test_close_gives_up_on_a_registry_that_hangs(
    registry: MemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(companion_module, "_DEREGISTER_WITHIN", 0.2)

    async def hang(service: Service) -> None:
        await asyncio.Event().wait()

    comp = Companion(registry, name="legacy", address="10.9.8.7:80", interval=INTERVAL)
    await comp.start()
    monkeypatch.setattr(registry, "deregister", hang)
    began = time.monotonic()
    await comp.close()
    assert time.monotonic() - began < 1.0


async def test_start_after_close_is_refused(registry: MemoryRegistry) -> None:
    comp = Companion(registry, name="legacy", address="10.9.8.7:80")
    await comp.close()
    with pytest.raises(RuntimeError, match="closed"):
        await comp.start()


# -- settings ---------------------------------------------------------------------------


def settings(*argv: str) -> dict[str, object]:
    return dict(load(groups=PROXY_GROUPS, argv=list(argv), environ={}))


async def test_no_app_settings_means_no_companion(registry: MemoryRegistry) -> None:
    assert Companion.from_settings(settings(), registry) is None


async def test_settings_make_a_companion(registry: MemoryRegistry) -> None:
    comp = Companion.from_settings(
        settings("--server-name", "legacy", "--server-address", "10.0.0.5:9090",
                 "--healthcheck-url", "http://10.0.0.5:9090/health",
                 "--healthcheck-interval", "200ms"),
        registry,
    )  # fmt: skip
    assert comp is not None
    assert (comp.name, comp.address) == ("legacy", "10.0.0.5:9090")
    assert comp.healthcheck_url == "http://10.0.0.5:9090/health"
    assert comp.interval == 0.2
    assert comp.timeout == 0.2
    assert Companion(registry, name="x", address="h:1", interval=60).timeout == 5.0


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["--server-name", "legacy"], "--server-address"),
        (["--server-address", "10.0.0.5:9090"], "--server-name"),
        (["--healthcheck-url", "http://10.0.0.5/health"], "--server-name"),
        (["--server-name", "x", "--server-address", "10.0.0.5"], "no port"),
        (["--server-name", "x", "--server-address", "http://10.0.0.5:80"], "not a URL"),
        (["--server-name", "x", "--server-address", ":9090"], "no host"),
        (["--server-name", "x", "--server-address", "h:70000"], "out of range"),
        (["--server-name", " ", "--server-address", "h:1"], "--server-name"),
        (["--server-name", "x", "--server-address", "h:1", "--healthcheck-url", "ftp://h/x"],
         "http:// or https://"),
        (["--server-name", "x", "--server-address", "h:1", "--healthcheck-url", "http://"],
         "no host"),
        (["--server-name", "x", "--server-address", "h:1", "--healthcheck-url", "h:1/health"],
         "--healthcheck-url"),
        (["--server-name", "x", "--server-address", "h:1", "--healthcheck-url", "http://h:x/"],
         "--healthcheck-url"),
        (["--server-name", "x", "--server-address", "h:1", "--healthcheck-interval", "0"],
         "above 0"),
    ],
)  # fmt: skip
async def test_bad_settings_say_what_to_fix(
    registry: MemoryRegistry, argv: list[str], wanted: str
) -> None:
    with pytest.raises(ValueError, match="companion mode") as caught:
        Companion.from_settings(settings(*argv), registry)
    assert wanted in str(caught.value)


# -- real registries --------------------------------------------------------------------


@pytest.mark.integration
async def test_over_mdns_on_loopback(app: App) -> None:
    interval = 0.5  # a TTL of 1.5 s: gone sooner means deregistered, not expired
    async with MdnsRegistry() as registry, MdnsRegistry() as observer:
        comp = Companion(registry, name=f"legacy-{uuid.uuid4().hex[:6]}", address=app.address,
                         healthcheck_url=app.url, interval=interval)  # fmt: skip
        await comp.start()
        try:
            await eventually(nodes_are(observer, comp.name, [comp.node_id]), timeout=3)
            app.status = 503
            await eventually(nodes_are(observer, comp.name, []), timeout=2 * interval + 0.3)
            app.status = 200
            await eventually(nodes_are(observer, comp.name, [comp.node_id]), timeout=3)
        finally:
            await comp.close()
        # deregistered: the last refresh was under 0.5 s ago, so the TTL has 1 s to go
        await eventually(nodes_are(observer, comp.name, []), timeout=0.5)


CRASHING = """
import asyncio, sys
from micro.registry.etcd import EtcdRegistry
from micro.toolkit.proxy.companion import Companion

async def main():
    async with EtcdRegistry(address=sys.argv[1]) as registry:
        comp = Companion(registry, name=sys.argv[2], address="10.9.8.7:80", interval=0.3)
        await comp.start()
        print(comp.node_id, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.integration
@pytest.mark.slow
async def test_a_killed_proxy_s_registration_expires_in_etcd() -> None:
    with EtcdServer() as etcd:
        async with EtcdRegistry(address=etcd.address) as observer:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CRASHING, etcd.address, "legacy",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                assert proc.stdout is not None
                node_id = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()
                assert await node_ids(observer, "legacy") == [node_id]
                await asyncio.sleep(2.0)  # past the 1 s lease: the refreshes keep it
                assert await node_ids(observer, "legacy") == [node_id]
                proc.send_signal(signal.SIGKILL)
                began = time.monotonic()
                await eventually(nodes_are(observer, "legacy", []), timeout=4)
                assert time.monotonic() - began < 3
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()


# -- the micro proxy process ------------------------------------------------------------


def proxy_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    env.update(MICRO_MDNS_INTERFACES="127.0.0.1", MICRO_SERVER_ADDRESS="127.0.0.1:0")
    return env


async def health(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as rsp:
        return rsp.status, await rsp.json()


@pytest.mark.integration
@pytest.mark.slow
async def test_micro_proxy_in_companion_mode(app: App) -> None:
    name, port = f"legacy-{uuid.uuid4().hex[:6]}", free_port()
    url = f"http://127.0.0.1:{port}/health"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "micro.toolkit.proxy", "--address", f"127.0.0.1:{port}",
        "--server-name", name, "--server-address", app.address,
        "--healthcheck-url", app.url, "--healthcheck-interval", "1s", "--no-access-log",
        env=proxy_env(), stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with MdnsRegistry() as observer:
            status, body = await eventually(lambda: health(url), timeout=20, retry_on=OSError)
            assert status == 200
            assert body["app"]["name"] == name
            assert body["app"]["healthy"]
            await eventually(lambda: len_nodes(observer, name, 1), timeout=5)

            app.status = 503
            await eventually(nodes_are(observer, name, []), timeout=2.5)  # TTL: 3 s
            status, body = await health(url)
            assert status == 503
            assert body["status"] == "unhealthy"

            app.status = 200
            await eventually(lambda: len_nodes(observer, name, 1), timeout=2.5)
            assert (await health(url))[0] == 200

            proc.send_signal(signal.SIGTERM)  # the last refresh was under 1 s ago: TTL >2 s
            await eventually(nodes_are(observer, name, []), timeout=1.5)  # deregistered
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def len_nodes(registry: Registry, name: str, count: int) -> bool:
    return len(await node_ids(registry, name)) == count


@pytest.mark.integration
def test_micro_proxy_refuses_half_a_companion() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "micro.toolkit.proxy", "--server-name", "legacy"],
        env=proxy_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("micro proxy: companion mode: --server-name")
    assert "--server-address" in line
