"""Across hosts: services and clients in separate network namespaces find and call each other.

The test builds its own small network, entirely outside the machine's root namespace::

    ns A: bridge br0 10.231.N.1/24 (client, etcd) --- veth --- ns B: eth0 10.231.N.2 (service)
                                                   \\-- veth --- ns C: eth0 10.231.N.3 (service)

N is random per run; the namespaces carry a unique suffix and are deleted in the fixture's
finalizer even when the test fails. Nothing connects them to the host's interfaces, so mDNS
multicast stays on br0. ``ip netns`` needs root (CAP_SYS_ADMIN); without it the test fails
and says so, it does not skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from micro.testing.etcd import EtcdServer
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Net:
    """Three namespaces a, b, c on one subnet; ``hosts[x]`` is namespace x's address."""

    names: dict[str, str]
    hosts: dict[str, str]
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    def exec_prefix(self, ns: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.names[ns])

    async def run(self, ns: str, script: str, *args: str, **env: str) -> asyncio.subprocess.Process:
        """Start ``script`` inside namespace ``ns`` with extra env vars; killed at teardown."""
        environ = {**os.environ, **env}
        proc = await asyncio.create_subprocess_exec(
            *self.exec_prefix(ns), sys.executable, str(ROOT / script), *args,
            env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.procs.append(proc)
        return proc


def _build(suffix: str, subnet: int) -> Net:
    names = {x: f"micro-{x}-{suffix}" for x in "abc"}
    hosts = {x: f"10.231.{subnet}.{i}" for i, x in enumerate("abc", 1)}
    net = Net(names, hosts)
    for name in names.values():
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
    a = names["a"]
    _ip("-n", a, "link", "add", "br0", "type", "bridge")
    _ip("-n", a, "addr", "add", f"{hosts['a']}/24", "dev", "br0")
    _ip("-n", a, "link", "set", "br0", "up")
    for x in "bc":
        _ip(
            "-n",
            a,
            "link",
            "add",
            f"to-{x}",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            names[x],
        )
        _ip("-n", a, "link", "set", f"to-{x}", "master", "br0", "up")
        _ip("-n", names[x], "addr", "add", f"{hosts[x]}/24", "dev", "eth0")
        _ip("-n", names[x], "link", "set", "eth0", "up")
    return net


def _teardown(names: list[str]) -> list[str]:
    """Delete every namespace of ours that exists; returns the errors (and any left over)."""
    errors = []
    existing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for name in names:
        if name in existing.stdout:
            try:
                _ip("netns", "del", name)
            except RuntimeError as exc:
                errors.append(str(exc))
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    errors.extend(f"{name} left behind" for name in names if name in left.stdout)
    return errors


@pytest.fixture
def netns_works() -> None:
    """Fail at once, with the reason, if this machine cannot make network namespaces."""
    probe = f"micro-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, FileNotFoundError) as exc:
        pytest.fail(f"network namespaces are not available (need root and iproute2): {exc}")
    _ip("netns", "del", probe)


@pytest.fixture
async def net(netns_works: None) -> AsyncIterator[Net]:
    suffix = uuid.uuid4().hex[:6]
    names = [f"micro-{x}-{suffix}" for x in "abc"]
    built: Net | None = None
    try:
        built = _build(suffix, random.randint(1, 254))
        yield built
    finally:
        for proc in built.procs if built else []:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        errors = await asyncio.to_thread(_teardown, names)
        assert not errors, errors


async def _client(net: Net, name: str, **env: str) -> dict[str, object]:
    proc = await net.run("a", "tests/integration/netns_client.py", name, "2", **env)
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()[-2000:]
    result: dict[str, object] = json.loads(out)
    return result


def _check(result: dict[str, object], net: Net) -> None:
    nodes = result["nodes"]
    assert isinstance(nodes, list)
    assert sorted(n.rsplit(":", 1)[0] for n in nodes) == [net.hosts["b"], net.hosts["c"]]
    assert result["replies"] == {n: f"Hello {n}" for n in nodes}
    assert result["selected"] == "Hello selector"


async def test_discovery_and_calls_across_namespaces_over_mdns(net: Net) -> None:
    name = f"netns-mdns-{uuid.uuid4().hex[:6]}"
    for x in "bc":
        await net.run(
            x, "tests/integration/greeter_service.py", "--server_name", name,
            MICRO_REGISTRY="mdns", MICRO_MDNS_INTERFACES=net.hosts[x],
            MICRO_SERVER_ADDRESS=f"{net.hosts[x]}:0",
        )  # fmt: skip
    result = await _client(net, name, MICRO_REGISTRY="mdns", MICRO_MDNS_INTERFACES=net.hosts["a"])
    _check(result, net)


async def test_discovery_and_calls_across_namespaces_over_etcd(net: Net) -> None:
    etcd = EtcdServer(
        host=net.hosts["a"], client_port=2379, peer_port=2380, prefix=net.exec_prefix("a")
    )
    try:
        await asyncio.to_thread(etcd.start)
        name = f"netns-etcd-{uuid.uuid4().hex[:6]}"
        registry = {"MICRO_REGISTRY": "etcd", "MICRO_REGISTRY_ADDRESS": etcd.address}
        for x in "bc":
            await net.run(
                x, "tests/integration/greeter_service.py", "--server_name", name,
                MICRO_SERVER_ADDRESS=f"{net.hosts[x]}:0", **registry,
            )  # fmt: skip
        _check(await _client(net, name, **registry), net)
    finally:
        await asyncio.to_thread(etcd.close)
