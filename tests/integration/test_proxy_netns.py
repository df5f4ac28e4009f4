"""``micro proxy`` from outside a remote environment: a network namespace (tests/netns.py).

Inside the namespace run NATS JetStream, a registry (mDNS on the namespace's loopback, or
etcd), a greeter and a counter service, and ``micro proxy`` bound to the namespace's veth
address. The host (the "laptop") reaches nothing but that address. The first tests prove
the isolation (so that what works through the proxy cannot have gone around it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Namespace, RemoteEnv, clean_env, ip, remote_env, stale

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["remote_env"]  # the fixture, imported for the tests below

MICRO = str(Path(sys.executable).with_name("micro"))
BOTH = pytest.mark.parametrize("remote_env", ["mdns", "etcd"], indirect=True)
MDNS = pytest.mark.parametrize("remote_env", ["mdns"], indirect=True)
ETCD = pytest.mark.parametrize("remote_env", ["etcd"], indirect=True)


def host_micro(*args: str, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess[str]:
    """``micro args...`` on the host (mDNS on the host's loopback only)."""
    environ = clean_env(MICRO_MDNS_INTERFACES="127.0.0.1", COLUMNS="250", **env)
    return subprocess.run(
        [MICRO, *args], env=environ, capture_output=True, text=True, timeout=timeout, check=False
    )


def inside_json(remote: RemoteEnv, *args: str) -> Any:
    done = remote.micro("-o", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def node_ports(remote: RemoteEnv, name: str) -> list[int]:
    found = inside_json(remote, "get", "service", name)
    versions = found if isinstance(found, list) else [found]
    return [int(n["address"].rpartition(":")[2]) for v in versions for n in v["nodes"]]


# -- the namespace helpers -------------------------------------------------------------


def test_a_namespace_goes_with_its_veth_pair_and_its_processes() -> None:
    ns = Namespace.create()
    try:
        proc = ns.popen(["sleep", "60"], env=clean_env())
        assert ns.name in ip("netns", "list")
        assert ns.host_address in ip("-4", "-o", "addr", "show", "dev", ns.link)
        done = ns.run(["ip", "-4", "-o", "addr"], env=clean_env())
        assert ns.address in done.stdout
        assert "127.0.0.1" in done.stdout
    finally:
        assert ns.close() == []
    assert proc.returncode is not None
    assert ns.name not in ip("netns", "list")
    assert ns.link not in ip("-o", "link")
    assert not ns.logs.exists()


def test_a_namespace_left_by_a_dead_test_process_is_removed_by_the_next() -> None:
    leftover = f"micro-{_dead_pid()}-1"
    ip("netns", "add", leftover)
    try:
        assert leftover in stale()
        Namespace.create().close()
        assert leftover not in ip("netns", "list")
    finally:
        if leftover in ip("netns", "list"):
            ip("netns", "del", leftover)


# -- isolation: without the proxy, the host sees nothing inside ----------------------------


@BOTH
def test_inside_the_services_are_registered_and_answer(remote_env: RemoteEnv) -> None:
    listed = remote_env.micro("list", "services")
    assert listed.returncode == 0, listed.stderr
    assert {remote_env.greeter, remote_env.counter} <= set(listed.stdout.split())
    hello = inside_json(
        remote_env, "call", remote_env.greeter, "Greeter.SayHello", '{"name":"John"}'
    )
    assert hello == {"msg": "Hello John"}


@MDNS
def test_the_host_does_not_see_the_services_inside(remote_env: RemoteEnv) -> None:
    listed = host_micro("list", "services")
    assert listed.returncode == 0, listed.stderr
    assert remote_env.greeter not in listed.stdout
    assert remote_env.counter not in listed.stdout
    called = host_micro("call", remote_env.greeter, "Greeter.SayHello", '{"name":"John"}')
    assert called.returncode != 0
    assert "Hello" not in called.stdout


@BOTH
def test_the_host_cannot_connect_to_anything_inside_but_the_veth_listener(
    remote_env: RemoteEnv,
) -> None:
    ports = node_ports(remote_env, remote_env.greeter) + node_ports(remote_env, remote_env.counter)
    assert len(ports) == 2
    for port in [*ports, 4222]:
        assert not remote_env.ns.reachable(port), port
    # the control: a listener on the veth address is reachable, so the veth works
    probe = remote_env.start(
        "-c",
        "import socket, time; s = socket.create_server((__import__('sys').argv[1], 0)); "
        "print(s.getsockname()[1], flush=True); time.sleep(60)",
        remote_env.address,
        label="listener",
    )
    try:
        port = _first_line_int(remote_env, probe)
        assert remote_env.ns.reachable(port)
    finally:
        remote_env.ns.kill(probe)


@ETCD
def test_the_host_cannot_reach_the_etcd_inside(remote_env: RemoteEnv) -> None:
    assert remote_env.etcd is not None
    assert remote_env.etcd.healthy()  # etcdctl, run inside the namespace
    assert not remote_env.ns.reachable(2379)
    listed = host_micro(
        "list",
        "services",
        MICRO_REGISTRY="etcd",
        MICRO_REGISTRY_ADDRESS=f"{remote_env.address}:2379",
        timeout=40,
    )
    assert listed.returncode != 0
    assert remote_env.greeter not in listed.stdout


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _first_line_int(remote: RemoteEnv, proc: subprocess.Popen[bytes], timeout: float = 10) -> int:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = remote.ns.log(proc).splitlines()
        if lines and lines[0].strip().isdigit():
            return int(lines[0])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no port printed: {remote.ns.log(proc)}")
