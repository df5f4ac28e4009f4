from __future__ import annotations

import pytest

from micro import plugins
from micro.registry.memory import MemoryRegistry


def test_unknown_backend_lists_known_names() -> None:
    with pytest.raises(plugins.PluginNotFound) as info:
        plugins.resolve("registry", "zookeepr")
    assert "unknown registry 'zookeepr'" in info.value.detail
    assert "memory" in info.value.detail
    assert "mdns" in info.value.detail


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(plugins.TABLE["registry"], "ghost", ("micro_no_such_mod:Ghost", "ghost"))
    with pytest.raises(plugins.PluginNotFound) as info:
        plugins.resolve("registry", "ghost")
    assert "pip install 'pymicro-toolkit[ghost]'" in info.value.detail


def test_create_reads_env_and_shares_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_REGISTRY", "memory")
    first = plugins.create("registry")
    assert isinstance(first, MemoryRegistry)
    assert plugins.create("registry", "memory") is first


def test_code_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_TRANSPORT", "nope")
    transport = plugins.create("transport", "memory")
    assert transport.name == "memory"


def test_registry_address_env_reaches_backends_that_take_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class WithAddress:
        def __init__(self, *, address: str = "default") -> None:
            self.address = address

    monkeypatch.setitem(plugins.TABLE["registry"], "fake", (f"{__name__}:WithAddress", ""))
    monkeypatch.setattr(plugins, "resolve", lambda kind, name: WithAddress)
    monkeypatch.setenv("MICRO_REGISTRY_ADDRESS", "10.0.0.1:2379")
    assert plugins.create("registry", "fake").address == "10.0.0.1:2379"
    assert plugins.create("registry", "fake", address="a:1").address == "a:1"
    monkeypatch.setattr(plugins, "resolve", lambda kind, name: MemoryRegistry)
    assert isinstance(plugins.create("registry", "memory-ish"), MemoryRegistry)
