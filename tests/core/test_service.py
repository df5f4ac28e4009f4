"""micro.Service: configuration precedence, lifecycle and hooks, on memory backends."""

from __future__ import annotations

import asyncio

import pytest
from msgspec import Struct

import micro
from micro import plugins
from micro.registry.memory import MemoryRegistry
from micro.settings import SettingsError, parse_flags
from micro.transport.memory import MemoryTransport


class Ping(Struct):
    n: int


class Pinger:
    async def ping(self, req: Ping) -> dict[str, int]:
        return {"n": req.n + 1}


def test_code_beats_flags_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_REGISTER_TTL", "7")
    monkeypatch.setenv("MICRO_SERVER_VERSION", "from-env")
    service = micro.Service("svc", register_ttl=3)
    service._flags = parse_flags(["--register_ttl", "5", "--server-version", "from-flag"])
    assert service.settings["register_ttl"] == 3
    assert service.settings["server_version"] == "from-flag"
    assert service.settings.source("server_version") == "--server-version"
    assert micro.Service("svc").settings["server_version"] == "from-env"
    assert micro.Service("svc").settings["register_interval"] == 30
    assert micro.Service("svc", register_ttl="1m30s").settings["register_ttl"] == 90


def test_name_comes_from_flags_when_code_gives_none() -> None:
    service = micro.Service()
    service._flags = parse_flags(["--server_name", "flagged"])
    assert service.name == "flagged"
    with pytest.raises(ValueError, match="needs a name"):
        _ = micro.Service().name


def test_flags_help_names_env_vars(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_flags(["--help"])
    out = capsys.readouterr().out
    assert "MICRO_REGISTRY" in out
    assert "--server_address" in out
    assert "--server-address" in out


def test_a_bad_env_duration_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_REGISTER_TTL", "soon")
    with pytest.raises(SettingsError, match=r"^MICRO_REGISTER_TTL: .*'soon'"):
        _ = micro.Service("svc").settings


async def test_unknown_backend_fails_at_start_with_known_names() -> None:
    service = micro.Service("svc", registry="zookeeper", transport="memory")
    with pytest.raises(plugins.PluginNotFound, match=r"known: .*mdns"):
        await service.start()


async def test_serves_calls_and_runs_hooks_in_order() -> None:
    registry, transport = MemoryRegistry(), MemoryTransport()
    service = micro.Service("pinger", registry=registry, transport=transport, address="127.0.0.1:0")
    service.handle(Pinger())
    seen: list[str] = []
    for when in ("before_start", "after_start", "before_stop", "after_stop"):

        async def record(when: str = when) -> None:
            seen.append(when)

        service.hook(when)(record)
    async with service:
        nodes = (await registry.get_service("pinger"))[0].nodes
        assert nodes[0].metadata["registry"] == "memory"
        assert await service.client.call("pinger", "Pinger.Ping", {"n": 1}) == {"n": 2}
    assert seen == ["before_start", "after_start", "before_stop", "after_stop"]
    with pytest.raises(micro.errors.ServiceNotFound):
        await registry.get_service("pinger")


async def test_serve_stops_on_event_and_deregisters() -> None:
    registry = MemoryRegistry()
    service = micro.Service(
        "stopper", registry=registry, transport=MemoryTransport(), handle_signals=False
    )
    service.handle(Pinger())
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(stop))
    for _ in range(100):
        try:
            await registry.get_service("stopper")
            break
        except micro.errors.ServiceNotFound:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    with pytest.raises(micro.errors.ServiceNotFound):
        await registry.get_service("stopper")


@pytest.mark.parametrize(
    ("server", "broker"),
    [(":0", "127.0.0.1:0"), ("127.0.0.1:0", "127.0.0.1:0"), ("0.0.0.0:8080", "0.0.0.0:0")],
)
def test_the_http_broker_listens_on_the_servers_host(server: str, broker: str) -> None:
    service = micro.Service("svc", address=server, registry=MemoryRegistry(), broker="http")
    assert service.broker._address == broker  # type: ignore[attr-defined]
