"""KubernetesRegistry over kubernetes-asyncio against the fake API server on loopback."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Node, Result, Service
from micro.registry.kubernetes import KubernetesRegistry
from micro.testing import eventually
from tests.registry.kubernetes.fake_api import FakeKubernetes

pytestmark = pytest.mark.integration

Make = Callable[[], KubernetesRegistry]


@pytest.fixture
async def api() -> AsyncIterator[FakeKubernetes]:
    async with FakeKubernetes() as api:
        yield api


@pytest.fixture
def make(api: FakeKubernetes) -> Make:
    """Each registry is a process in its own pod."""
    counter = itertools.count()

    def make() -> KubernetesRegistry:
        pod = f"pod-{next(counter)}"
        api.add_pod(pod)
        return KubernetesRegistry(address=api.url, pod_name=pod, namespace="default")

    return make


def _svc(name: str = "greeter", node: str = "n1", **md: str) -> Service:
    return Service(name, "1.0.0", {}, [], [Node(node, "10.244.1.17:8080", md)])


async def _collect(watch: AsyncIterator[Result], into: list[Result]) -> None:
    async for result in watch:
        into.append(result)


async def test_versions_need_one_pod_each(make: Make) -> None:
    async with make() as v1, make() as v2, make() as reader:
        await v1.register(Service("multi", "1.0", nodes=[Node("a", "10.0.0.1:1")]))
        await v2.register(Service("multi", "2.0", nodes=[Node("b", "10.0.0.2:1")]))
        found = {s.version: [n.id for n in s.nodes] for s in await reader.get_service("multi")}
        assert found == {"1.0": ["a"], "2.0": ["b"]}


async def test_register_patches_its_own_pod_the_go_micro_way(
    make: Make, api: FakeKubernetes
) -> None:
    async with make() as registry:
        await registry.register(_svc("go.micro.srv.greeter"), ttl=30)
        await registry.register(_svc("go.micro.srv.greeter"), ttl=30)  # unchanged: no patch
    meta = api.pods[("default", "pod-0")]["metadata"]
    assert meta["labels"]["micro.mu/type"] == "service"
    assert meta["labels"]["micro.mu/selector-go.micro.srv.greeter"] == "service"
    assert meta["labels"]["app"] == "greeter"  # the pod's own labels are kept
    assert "micro.mu/service-go.micro.srv.greeter" in meta["annotations"]
    patches = [r for r in api.requests if r[0] == "PATCH"]
    assert patches == [("PATCH", "application/merge-patch+json")]


async def test_deleted_and_stopped_pods_are_reported_gone(make: Make, api: FakeKubernetes) -> None:
    async with make() as one, make() as two, make() as watcher:
        seen: list[Result] = []
        task = asyncio.create_task(_collect(watcher.watch("greeter"), seen))
        await asyncio.sleep(0.1)
        await one.register(_svc(node="n1"))
        await two.register(_svc(node="n2"))
        await eventually(lambda: len(seen) == 2)
        api.delete_pod("pod-0")
        api.set_pod("pod-1", {"status": {"phase": "Failed"}})
        await eventually(lambda: len(seen) == 4)
        task.cancel()
        got = [(r.action, r.service.nodes[0].id) for r in seen]
        assert got == [("create", "n1"), ("create", "n2"), ("delete", "n1"), ("delete", "n2")]
        with pytest.raises(ServiceNotFound):
            await watcher.get_service("greeter")


async def test_corrupt_entries_never_break_lookups_or_watches(
    make: Make, api: FakeKubernetes, caplog: pytest.LogCaptureFixture
) -> None:
    async with make() as good, make() as watcher:
        seen: list[Result] = []
        task = asyncio.create_task(_collect(watcher.watch(), seen))
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="micro.registry.kubernetes"):
            api.add_pod("foreign", metadata={
                "labels": {"micro.mu/type": "service", "micro.mu/selector-greeter": "service"},
                "annotations": {"micro.mu/service-greeter": "{not json"},
            })  # fmt: skip
            api.send_raw(b"this is not json")
            api.send_raw(b'{"type": "MODIFIED"}')
            await good.register(_svc(node="good"))
            await eventually(lambda: len(seen) == 1)
            found = await watcher.get_service("greeter")
            assert [n.id for s in found for n in s.nodes] == ["good"]
            assert [s.name for s in await watcher.list_services()] == ["greeter"]
        assert "skipped annotation" in caplog.text
        assert caplog.text.count("malformed watch event") == 2
        assert not task.done()
        task.cancel()


async def test_too_old_resource_version_relists(make: Make, api: FakeKubernetes) -> None:
    async with make() as registry, make() as watcher:
        seen: list[Result] = []
        task = asyncio.create_task(_collect(watcher.watch("greeter"), seen))
        await asyncio.sleep(0.1)
        api.events.clear()  # history compacted: resuming from our version gets 410 Gone
        api.send_raw(b'{"type": "ERROR", "object": {"kind": "Status", "code": 410}}')
        await registry.register(_svc(node="late"))
        await eventually(lambda: [r.service.nodes[0].id for r in seen] == ["late"])
        task.cancel()


async def test_errors_are_registry_errors(api: FakeKubernetes) -> None:
    async with KubernetesRegistry(address=api.url, pod_name="missing") as registry:
        with pytest.raises(RegistryError, match="404"):
            await registry.register(_svc())
    async with KubernetesRegistry(address=api.url, pod_name=None) as registry:
        registry.pod_name = ""  # as on a host without a name
        with pytest.raises(RegistryError, match="POD_NAME"):
            await registry.register(_svc())
    from tests.registry.nats.conftest import free_port

    async with KubernetesRegistry(address=f"127.0.0.1:{free_port()}") as registry:
        with pytest.raises(RegistryError):
            await registry.get_service("greeter")


def test_settings_from_the_downward_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from micro import plugins
    from micro.settings import load

    monkeypatch.setenv("POD_NAME", "greeter-abc")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    settings = load(code={"registry": "kubernetes", "registry_address": "10.96.0.1:443"})
    registry = plugins.create("registry", settings=settings)
    assert isinstance(registry, KubernetesRegistry)
    assert (registry.pod_name, registry.namespace) == ("greeter-abc", "shop")
    assert registry.address == "http://10.96.0.1:443"
    assert KubernetesRegistry(address="https://k8s:6443").address == "https://k8s:6443"
