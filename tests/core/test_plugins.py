from __future__ import annotations

import pytest

from micro import plugins
from micro.registry.memory import MemoryRegistry
from micro.settings import load


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


def test_create_takes_the_name_from_settings_and_shares_memory() -> None:
    first = plugins.create("registry", settings=load(environ={"MICRO_REGISTRY": "memory"}))
    assert isinstance(first, MemoryRegistry)
    assert plugins.create("registry", "memory") is first


def test_create_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_TRANSPORT", "nope")
    monkeypatch.setenv("MICRO_REGISTRY", "nope")
    assert plugins.create("transport").name == "http"  # the default, not the env's "nope"
    assert plugins.create("transport", "memory").name == "memory"


class WithAddress:
    def __init__(self, *, address: str = "default", user: str = "") -> None:
        self.address, self.user = address, user


def test_settings_reach_the_keywords_a_backend_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "resolve", lambda kind, name: WithAddress)
    environ = {
        "MICRO_REGISTRY": "fake",
        "MICRO_REGISTRY_ADDRESS": "10.0.0.1:2379",
        "MICRO_REGISTRY_USERNAME": "ann",  # to `user`: the first keyword it takes
        "MICRO_REGISTRY_TLS_CA": "/ca.pem",  # not taken: left out, no TypeError
    }
    settings = load(environ=environ)
    made = plugins.create("registry", settings=settings)
    assert isinstance(made, WithAddress)
    assert (made.address, made.user) == ("10.0.0.1:2379", "ann")
    made = plugins.create("registry", settings=settings, address="a:1")
    assert isinstance(made, WithAddress)
    assert made.address == "a:1"
    monkeypatch.setattr(plugins, "resolve", lambda kind, name: MemoryRegistry)
    assert isinstance(plugins.create("registry", "memory-ish"), MemoryRegistry)
