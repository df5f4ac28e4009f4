"""The key prefix as a setting: the `micro` command, a service and `micro api` next to
go-plugins' etcdv3 layout (`/micro-registry/`), with no code."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from micro.registry.etcd import GO_PLUGINS_PREFIX
from micro.testing import eventually
from micro.testing.etcd import EtcdServer, free_port
from tests.registry.etcd.conftest import etcdctl, raw_kvs
from tests.registry.etcd.go_samples import BROKER_KEY, BROKER_VALUE, GREETER_KEY, GREETER_VALUE
from tests.toolkit.cli.conftest import GREETER, MICRO, base_env, micro

pytestmark = pytest.mark.integration

GO_SERVICES = ["go.micro.srv.greeter", "topic:go.micro.topic.greeting"]


@pytest.fixture
async def go_plugins(etcd: EtcdServer) -> AsyncIterator[str]:
    """The private etcd holding the keys a go-plugins v1.0 greeter wrote; its address."""
    await etcdctl(etcd.address, "put", GREETER_KEY, GREETER_VALUE)
    await etcdctl(etcd.address, "put", BROKER_KEY, BROKER_VALUE)
    try:
        yield etcd.address
    finally:
        await etcdctl(etcd.address, "del", "--prefix", GO_PLUGINS_PREFIX)


async def _micro_json(*args: str, env: dict[str, str] | None = None) -> Any:
    done = await asyncio.to_thread(micro, "-o", "json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_micro_lists_go_plugins_services_given_the_prefix_flag(go_plugins: str) -> None:
    etcd = ("--registry", "etcd", "--registry-address", go_plugins)
    assert set(GO_SERVICES).isdisjoint(await _micro_json(*etcd, "list", "services"))
    prefixed = (*etcd, "--registry-prefix", GO_PLUGINS_PREFIX)
    assert set(GO_SERVICES) <= set(await _micro_json(*prefixed, "list", "services"))


async def test_micro_reads_a_go_plugins_node_given_the_prefix_env_var(go_plugins: str) -> None:
    env = base_env(
        MICRO_REGISTRY="etcd",
        MICRO_REGISTRY_ADDRESS=go_plugins,
        MICRO_REGISTRY_PREFIX=GO_PLUGINS_PREFIX,
    )
    [greeter] = await _micro_json("get", "service", "go.micro.srv.greeter", env=env)
    [node] = greeter["nodes"]
    assert node["address"] == "127.0.0.1:50061"  # go-plugins' separate port, joined
    assert {e["name"] for e in greeter["endpoints"]} >= {"Say.Hello", "Say.Stream"}


@contextmanager
def _process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@asynccontextmanager
async def _gateway(url: str, *flags: str) -> AsyncIterator[httpx.AsyncClient]:
    """`micro api` with ``flags``, healthy, and a client for it."""
    port = int(url.rsplit(":", 1)[1])
    args = (MICRO, "api", *flags, "--address", f"127.0.0.1:{port}")
    with _process(*args, env=base_env()) as proc:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:

            async def healthy() -> bool:
                assert proc.poll() is None, f"micro api exited {proc.returncode}"
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, timeout=20, interval=0.1)
            yield http


async def test_a_service_the_cli_and_the_gateway_share_the_go_plugins_prefix(
    go_plugins: str,
) -> None:
    ns = f"px{uuid.uuid4().hex[:6]}"
    name = f"{ns}.greeter"
    env = base_env(
        MICRO_REGISTRY="etcd",
        MICRO_REGISTRY_ADDRESS=go_plugins,
        MICRO_REGISTRY_PREFIX=GO_PLUGINS_PREFIX,
    )
    with _process(sys.executable, str(GREETER), "--server_name", name, env=env):

        async def registered() -> None:
            keys = [kv["key"] for kv in await raw_kvs(go_plugins, f"{GO_PLUGINS_PREFIX}{name}/")]
            assert len(keys) == 1

        await eventually(registered, timeout=20, interval=0.1)
        assert await _micro_json("call", name, "Greeter.SayHello", '{"name": "P"}', env=env) == {
            "msg": "Hello P"
        }
        flags: tuple[str, ...] = ("--registry", "etcd", "--registry-address", go_plugins)
        flags += ("--registry-prefix", GO_PLUGINS_PREFIX, "--namespace", ns)
        async with _gateway(f"http://127.0.0.1:{free_port()}", *flags) as http:
            answer = await http.post("/greeter/say-hello", json={"name": "Gw"})
            assert (answer.status_code, answer.json()) == (200, {"msg": "Hello Gw"})
