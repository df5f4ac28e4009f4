"""The registry contract over nats, consul and kubernetes (etcd has its own file).

- nats: the shared NATS (tests/servers.py), a unique subject prefix per test;
- consul: the stand-in agent (tests/registry/consul/agent.py) on a free loopback port;
- kubernetes: the fake API server (tests/registry/kubernetes/fake_api.py), one pod per
  registry. Two checks do not apply: one pod carries one version of a service (so
  ``versions_are_grouped`` needs a pod per version, tested in the backend's own tests), and
  pods have no TTL: Kubernetes deletes a dead pod, and the watch reports it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from micro.registry import Registry
from micro.registry.consul import ConsulRegistry
from micro.registry.kubernetes import KubernetesRegistry
from micro.registry.nats import NatsRegistry
from micro.testing.registry import CHECKS
from tests.registry.consul.agent import ConsulAgent
from tests.registry.kubernetes.fake_api import FakeKubernetes
from tests.servers import address

pytestmark = pytest.mark.integration

NOT_APPLICABLE = {"kubernetes": {"versions_are_grouped", "ttl_expiry_removes_the_node"}}


@asynccontextmanager
async def _nats() -> AsyncIterator[Callable[[], Registry]]:
    prefix = f"test.{uuid.uuid4().hex[:12]}"
    yield lambda: NatsRegistry(address=address("nats"), prefix=prefix)


@asynccontextmanager
async def _consul() -> AsyncIterator[Callable[[], Registry]]:
    async with ConsulAgent() as agent:
        yield lambda: ConsulRegistry(address=agent.address, watch_wait=5)


@asynccontextmanager
async def _kubernetes() -> AsyncIterator[Callable[[], Registry]]:
    async with FakeKubernetes() as api:
        pods = (f"pod-{n}" for n in itertools.count())

        def make() -> Registry:
            pod = next(pods)
            api.add_pod(pod)
            return KubernetesRegistry(address=api.url, pod_name=pod, namespace="default")

        yield make


BACKENDS = {"nats": _nats, "consul": _consul, "kubernetes": _kubernetes}
CASES = [
    pytest.param(backend, check, id=f"{backend}-{check}")
    for backend in BACKENDS
    for check in CHECKS
    if check not in NOT_APPLICABLE.get(backend, set())
]


@pytest.mark.parametrize(("backend", "check"), CASES)
async def test_contract(backend: str, check: str) -> None:
    async with BACKENDS[backend]() as make:
        await CHECKS[check](make, 5.0)


async def test_kubernetes_without_a_ttl_fails_the_ttl_check_loudly() -> None:
    """The exclusion above is real: the contract does catch a backend without TTLs."""
    async with _kubernetes() as make:
        with pytest.raises(AssertionError, match="no watch result"):
            await CHECKS["ttl_expiry_removes_the_node"](make, 1.0)
