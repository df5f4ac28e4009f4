"""The registry contract over EtcdRegistry, against a private etcd on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from micro.registry.etcd import EtcdRegistry
from micro.testing.etcd import EtcdServer
from micro.testing.registry import CHECKS, check_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.mark.parametrize("check", list(CHECKS))
async def test_contract(etcd: EtcdServer, check: str) -> None:
    await CHECKS[check](lambda: EtcdRegistry(address=etcd.address), 5.0)


@pytest.mark.slow
async def test_whole_suite(etcd: EtcdServer) -> None:
    await check_registry(lambda: EtcdRegistry(address=etcd.address, prefix="/suite/"))
