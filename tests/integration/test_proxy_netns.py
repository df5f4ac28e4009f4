"""``micro proxy`` from outside a remote environment: a network namespace (tests/netns.py).

Inside the namespace run NATS JetStream, a registry (mDNS on the namespace's loopback, or
etcd), a greeter and a counter service, and ``micro proxy`` bound to the namespace's veth
address. The host (the "laptop") reaches nothing but that address.

- Isolation first, so that what works through the proxy cannot have gone around it: the
  host does not see the services, cannot connect to them, to NATS or to etcd.
- Through the proxy, with the real ``micro`` CLI (``--proxy-address``): list, get, call
  (also to one node's address), stream (server and bidirectional), register and
  deregister, health and stats of each node, publish; from Python: ``micro.Client(proxy=)``
  calls and streams, a ``ProxyRegistry`` watch, a ``micro.Service`` outside subscribed to
  what a publisher inside sends to NATS JetStream; errors cross unchanged.
- Security: TLS verified with a CA file, mutual TLS, tokens, the loopback rule without
  auth, the services allow-list.
- A proxy restart under an open subscription loses nothing (at-least-once).

The core (list, get, call, stream, register, watch) runs over mDNS and over etcd inside.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import operator
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import micro
from micro.broker import Event
from micro.broker.proxy import ProxyBroker
from micro.errors import Forbidden, MicroError, NotFound, Timeout, Unauthorized
from micro.registry import Node, Service
from micro.registry.proxy import ProxyRegistry
from tests.netns import REMOTE, Namespace, RemoteEnv, clean_env, ip, remote_env, stale

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["remote_env"]  # the fixture, imported for the tests below

MICRO = str(Path(sys.executable).with_name("micro"))
SUBSCRIBER = Path(__file__).resolve().parents[1] / "toolkit" / "cli" / "subscriber_service.py"
BOTH = pytest.mark.parametrize("remote_env", ["mdns", "etcd"], indirect=True)
MDNS = pytest.mark.parametrize("remote_env", ["mdns"], indirect=True)
ETCD = pytest.mark.parametrize("remote_env", ["etcd"], indirect=True)


def host_micro(
    *args: str, timeout: float = 30.0, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``micro args...`` on the host (mDNS on the host's loopback only)."""
    environ = clean_env(MICRO_MDNS_INTERFACES="127.0.0.1", COLUMNS="250", **env)
    return subprocess.run(
        [MICRO, *args],
        env=environ,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
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
    assert "Hello John" not in called.stdout


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = remote.ns.log(proc).splitlines()
        if lines and lines[0].strip().isdigit():
            return int(lines[0])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no port printed: {remote.ns.log(proc)}")


# -- through the proxy: the laptop reaches only the proxy's veth address ------------------

_ports = itertools.count(8101)  # inside the namespace, which is private


@dataclass
class Proxy:
    """``micro proxy`` inside ``remote``, listening on its veth address at ``port``."""

    remote: RemoteEnv
    flags: tuple[str, ...] = ("--allow-unauthenticated",)
    scheme: str = "http"
    port: int = field(default_factory=lambda: next(_ports))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.remote.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def start(self, *, on_veth: bool = True, timeout: float = 20.0) -> Proxy:
        """Start it and wait until it accepts: from the host, else (``on_veth`` False: it
        narrowed itself to loopback) from inside."""
        self.proc = self.remote.start(
            "-m", "micro.toolkit.proxy", "--address", self.address, *self.flags,
            label=f"proxy-{self.port}",
        )  # fmt: skip
        if not on_veth:
            self.remote.ns.wait_tcp(self.port, proc=self.proc, timeout=timeout)
            return self
        deadline = time.monotonic() + timeout
        while not self.remote.ns.reachable(self.port, timeout=0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"proxy not up:\n{self.log()}")
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.remote.ns.kill(self.proc, sig)

    def log(self) -> str:
        return self.remote.ns.log(self.proc) if self.proc is not None else ""


@pytest.fixture(scope="module")
def proxy(remote_env: RemoteEnv) -> Iterator[Proxy]:
    """The environment's proxy: no auth (a trusted network), on the veth address."""
    started = Proxy(remote_env).start()
    yield started
    started.stop()


def via(proxy: Proxy, *args: str, input: str | None = None) -> Any:
    """``micro --proxy-address <proxy> args...`` on the host."""
    return host_micro("--proxy-address", proxy.url, *args, input=input)


def via_json(proxy: Proxy, *args: str, input: str | None = None) -> Any:
    done = via(proxy, "-o", "json", *args, input=input)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("micro: ")
    return line


@BOTH
def test_the_cli_lists_gets_and_calls_through_the_proxy(
    remote_env: RemoteEnv, proxy: Proxy
) -> None:
    listed = via(proxy, "list", "services")
    assert listed.returncode == 0, listed.stderr
    assert {remote_env.greeter, remote_env.counter} <= set(listed.stdout.split())
    [service] = via_json(proxy, "get", "service", remote_env.greeter)
    assert "Greeter.SayHello" in {e["name"] for e in service["endpoints"]}
    [node] = service["nodes"]
    assert node["address"].startswith("127.0.0.1:")  # an address only inside can use
    hello = via_json(proxy, "call", remote_env.greeter, "Greeter.SayHello", '{"name":"John"}')
    assert hello == {"msg": "Hello John"}
    direct = via_json(
        proxy, "call", "-a", node["address"], remote_env.greeter, "Greeter.SayHello",
        '{"name":"node"}',
    )  # fmt: skip
    assert direct == {"msg": "Hello node"}


@MDNS
def test_the_demos_greeter_answers_the_readme_call_from_outside(
    remote_env: RemoteEnv, proxy: Proxy
) -> None:
    # the demo's own greeter (examples/greeter/server.py, registered as "greeter") inside the
    # namespace, and the README's call run on the host word for word but for --proxy-address
    demo = Path(__file__).resolve().parents[2] / "examples" / "greeter" / "server.py"
    started = remote_env.start(str(demo), label="demo-greeter")
    try:
        remote_env.wait_registered("greeter")
        done = via(proxy, "call", "greeter", "Greeter.SayHello", '{"name":"John"}')
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"msg": "Hello John"}
    finally:
        remote_env.ns.kill(started, signal.SIGTERM)


@BOTH
def test_the_cli_streams_through_the_proxy(remote_env: RemoteEnv, proxy: Proxy) -> None:
    counted = via_json(proxy, "stream", remote_env.counter, "Counter.Count", '{"to":3,"delay":0}')
    assert counted == [{"n": 1}, {"n": 2}, {"n": 3}]
    lines = '{"text": "a"}\n{"text": "bc"}\n'
    echoed = via_json(proxy, "stream", remote_env.counter, "Counter.Echo", "-", input=lines)
    assert echoed == [{"text": "A"}, {"text": "BC"}]


@BOTH
def test_the_cli_registers_and_deregisters_inside_through_the_proxy(
    remote_env: RemoteEnv, proxy: Proxy
) -> None:
    name = f"ghost-{uuid.uuid4().hex[:6]}"
    record = json.dumps(
        {"name": name, "version": "1.0.0", "nodes": [{"id": f"{name}-1", "address": "10.0.0.1:9"}]}
    )
    done = via(proxy, "register", "service", record)
    assert done.returncode == 0, done.stderr
    remote_env.wait_registered(name, timeout=10)
    [found] = inside_json(remote_env, "get", "service", name)
    assert [n["address"] for n in found["nodes"]] == ["10.0.0.1:9"]
    done = via(proxy, "deregister", "service", record)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 10
    while remote_env.micro("get", "service", name).returncode == 0:
        assert time.monotonic() < deadline, f"{name} still registered inside"
        time.sleep(0.2)


@BOTH
async def test_a_watch_from_outside_sees_services_come_and_go_inside(
    remote_env: RemoteEnv, proxy: Proxy
) -> None:
    name = f"watched-{uuid.uuid4().hex[:6]}"
    seen: list[tuple[str, str]] = []

    async def watch(registry: ProxyRegistry) -> None:
        async for result in registry.watch():
            seen.append((result.action, result.service.name))

    async with ProxyRegistry(proxy_address=proxy.address) as registry:
        watching = asyncio.create_task(watch(registry))
        try:
            await prime(registry, seen)
            service = remote_env.start(
                str(REMOTE), "serve", "greeter", "--server_name", name, label="watched"
            )
            await wait_for(lambda: ("create", name) in seen, 20, lambda: str(seen))
            await asyncio.to_thread(remote_env.ns.kill, service, signal.SIGTERM)
            await wait_for(lambda: ("delete", name) in seen, 20, lambda: str(seen))
            assert not watching.done()
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)


async def prime(registry: ProxyRegistry, seen: list[tuple[str, str]]) -> None:
    """Return once the watch filling ``seen`` is in place: it reported a probe registered
    after it opened (a new probe each try: a watch that opened late misses the first)."""
    for attempt in range(10):
        name = f"probe-{uuid.uuid4().hex[:6]}"
        probe = Service(name=name, nodes=[Node(id=f"{name}-1", address="10.0.0.1:9")])
        await registry.register(probe, ttl=30)
        try:
            await wait_for(partial(operator.contains, seen, ("create", name)), 0.5 * (attempt + 1))
            return
        except AssertionError:
            continue
        finally:
            await registry.deregister(probe)
    raise AssertionError(f"the watch reported none of 10 probes: {seen}")


@MDNS
def test_the_cli_health_and_stats_reach_each_node_through_the_proxy(
    remote_env: RemoteEnv, proxy: Proxy
) -> None:
    [row] = via_json(proxy, "health", remote_env.greeter)
    assert row["status"] == "ok"
    assert row["node"].startswith(remote_env.greeter)
    [stats] = via_json(proxy, "stats", remote_env.greeter)
    assert stats["stats"]["uptime"] >= 0
    assert stats["stats"]["memory"] > 1_000_000


@MDNS
def test_the_cli_publishes_to_the_broker_inside(
    remote_env: RemoteEnv, proxy: Proxy, tmp_path: Path
) -> None:
    topic, out = f"cli-{uuid.uuid4().hex[:6]}", tmp_path / "received.jsonl"
    name = f"sub-{uuid.uuid4().hex[:6]}"
    remote_env.start(
        str(SUBSCRIBER), "--topic", topic, "--out", str(out), "--server_name", name, label="sub"
    )
    remote_env.wait_registered(name)
    done = via(proxy, "publish", topic, '{"id": 7}')
    assert done.returncode == 0, done.stderr
    assert wait_lines(out, 1) == [{"id": 7}]


@MDNS
async def test_a_python_client_calls_and_streams_through_the_proxy(
    remote_env: RemoteEnv, proxy: Proxy
) -> None:
    async with micro.Client(proxy=proxy.address) as client:
        hello = await client.call(remote_env.greeter, "Greeter.SayHello", {"name": "John"})
        assert hello == {"msg": "Hello John"}
        async with client.stream(remote_env.counter, "Counter.Count", {"to": 3}) as stream:
            assert [tick["n"] async for tick in stream] == [1, 2, 3]
        async with client.stream(remote_env.counter, "Counter.Echo") as stream:
            for text in ("hello", "streams"):
                await stream.send({"text": text})
                assert await stream.recv() == {"text": text.upper()}
            await stream.close_send()


@MDNS
async def test_errors_cross_the_proxy_unchanged(remote_env: RemoteEnv, proxy: Proxy) -> None:
    async with micro.Client(proxy=proxy.address, retries=0) as client:
        with pytest.raises(NotFound) as missing:
            await client.call(f"nowhere-{uuid.uuid4().hex[:6]}", "X.Y", {})
        assert missing.value.code == 404
        request = {"code": 403, "detail": "not for you", "id": "faults.inside"}
        with pytest.raises(Forbidden) as refused:
            await client.call(remote_env.greeter, "Faults.Fail", request)
        assert refused.value.to_dict() == {
            "id": "faults.inside",
            "code": 403,
            "detail": "not for you",
            "status": "Forbidden",
        }
        odd = {"code": 499, "detail": "an odd code", "id": "faults.inside"}
        with pytest.raises(MicroError) as unusual:
            await client.call(remote_env.greeter, "Faults.Fail", odd)
        assert (unusual.value.code, unusual.value.detail) == (499, "an odd code")
        started = time.monotonic()
        with pytest.raises(Timeout):
            await client.call(remote_env.greeter, "Faults.Sleep", {"seconds": 10}, timeout=1.0)
        assert time.monotonic() - started < 5
    cli = one_line_error(via(proxy, "call", remote_env.greeter, "Faults.Fail", json.dumps(request)))
    assert "not for you" in cli
    assert "403" in cli


@MDNS
async def test_a_service_outside_receives_what_is_published_inside(
    remote_env: RemoteEnv, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICRO_PROXY_ADDRESS", proxy.address)
    topic, name = f"events-{uuid.uuid4().hex[:6]}", f"outside-{uuid.uuid4().hex[:6]}"
    service = micro.Service(name, handle_signals=False)
    got: list[int] = []

    @service.subscribe(topic, queue="outside")
    async def record(event: dict[str, int]) -> None:
        got.append(event["n"])

    async with service:
        await asyncio.to_thread(remote_env.wait_registered, name)  # registered inside
        publisher = remote_env.start(str(REMOTE), "publish", topic, "5", "0", label="pub")
        await wait_for(lambda: set(got) >= set(range(5)), 20, lambda: remote_env.ns.log(publisher))
    assert sorted(set(got)) == [0, 1, 2, 3, 4]


@MDNS
async def test_a_subscription_outside_loses_nothing_across_a_proxy_restart(
    remote_env: RemoteEnv,
) -> None:
    restarting = Proxy(remote_env).start()
    topic, count = f"restart-{uuid.uuid4().hex[:6]}", 40
    got: list[int] = []

    async def record(event: Event) -> None:
        got.append(json.loads(event.message.body)["n"])

    broker = ProxyBroker(proxy_address=restarting.address)
    await broker.connect()
    try:
        await broker.subscribe(topic, record, queue="laptop")
        publisher = remote_env.start(str(REMOTE), "publish", topic, str(count), "0.1", label="pub")
        await wait_for(lambda: len(got) >= 5, 15, restarting.log)
        await asyncio.to_thread(restarting.stop)  # SIGTERM: the socket closes under us
        before = len(got)
        await asyncio.to_thread(restarting.start)  # the same address
        await wait_for(
            lambda: set(got) >= set(range(count)), 30, lambda: remote_env.ns.log(publisher)
        )
        assert before < count  # the restart happened while messages were still coming
    finally:
        await broker.disconnect()
        restarting.stop()
    assert sorted(set(got)) == list(range(count))  # duplicates allowed, none lost


@MDNS
def test_tls_the_laptop_verifies_the_proxy_with_its_ca(remote_env: RemoteEnv, certs: Certs) -> None:
    flags = ("--allow-unauthenticated", "--tls-cert-file", certs.server_cert,
             "--tls-key-file", certs.server_key)  # fmt: skip
    tls = Proxy(remote_env, flags, scheme="https").start()
    try:
        call = ("call", remote_env.greeter, "Greeter.SayHello", '{"name":"John"}')
        ok = via(tls, "--proxy-tls-ca", certs.ca, "-o", "json", *call)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"msg": "Hello John"}
        bare = host_micro("--proxy-address", tls.address, "--proxy-tls-ca", certs.ca, *call)
        assert bare.returncode == 0, bare.stderr  # a CA file implies https
        untrusted = one_line_error(via(tls, *call))  # the system CAs do not know ours
        assert untrusted.startswith(f"micro: cannot reach the proxy at {tls.url}")
        assert "Hello John" not in untrusted
    finally:
        tls.stop()


@MDNS
def test_mutual_tls_refuses_a_laptop_without_a_client_certificate(
    remote_env: RemoteEnv, certs: Certs
) -> None:
    # mutual TLS guards the proxy: no token and no --allow-unauthenticated, yet it listens on
    # the veth address the laptop reaches
    flags = ("--tls-cert-file", certs.server_cert,
             "--tls-key-file", certs.server_key, "--tls-client-ca-file", certs.ca)  # fmt: skip
    mtls = Proxy(remote_env, flags, scheme="https").start()
    try:
        call = ("call", remote_env.greeter, "Greeter.SayHello", '{"name":"John"}')
        client_cert = ("--proxy-tls-cert", certs.client_cert, "--proxy-tls-key", certs.client_key)
        ok = via(mtls, "--proxy-tls-ca", certs.ca, *client_cert, "-o", "json", *call)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"msg": "Hello John"}
        refused = one_line_error(via(mtls, "--proxy-tls-ca", certs.ca, *call))
        assert "Hello John" not in refused
        assert f"proxy at {mtls.url}" in refused
        assert "--proxy-tls-cert" in refused  # it says what is missing
    finally:
        mtls.stop()


@MDNS
async def test_with_auth_a_token_is_required(remote_env: RemoteEnv) -> None:
    guarded = Proxy(remote_env, ("--auth-tokens", "s3cret")).start()  # auth: veth allowed
    try:
        call = ("call", remote_env.greeter, "Greeter.SayHello", '{"name":"John"}')
        ok = await asyncio.to_thread(via, guarded, "--proxy-token", "s3cret", "-o", "json", *call)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"msg": "Hello John"}
        for token in ("wrong", None):
            given = ("--proxy-token", token) if token else ()
            refused = one_line_error(await asyncio.to_thread(via, guarded, *given, *call))
            assert "401" in refused or "Unauthorized" in refused
            assert "Hello John" not in refused
        async with micro.Client(proxy=guarded.address, retries=0) as client:
            with pytest.raises(Unauthorized):
                await client.call(remote_env.greeter, "Greeter.SayHello", {"name": "x"})
        assert await asyncio.to_thread(http_status, f"{guarded.url}/health") == 200  # no token
    finally:
        guarded.stop()


@MDNS
def test_without_auth_the_proxy_keeps_to_the_loopback_inside(remote_env: RemoteEnv) -> None:
    local = Proxy(remote_env, flags=()).start(on_veth=False)
    try:
        assert not remote_env.ns.reachable(local.port)
        inside = remote_env.micro(
            "--proxy-address", f"127.0.0.1:{local.port}", "-o", "json",
            "call", remote_env.greeter, "Greeter.SayHello", '{"name":"John"}',
        )  # fmt: skip
        assert inside.returncode == 0, inside.stderr
        assert json.loads(inside.stdout) == {"msg": "Hello John"}
        unreachable = one_line_error(via(local, "list", "services"))
        assert unreachable.startswith(f"micro: cannot reach the proxy at {local.url}")
    finally:
        local.stop()


@MDNS
def test_the_allow_list_hides_and_refuses_other_services(remote_env: RemoteEnv) -> None:
    flags = ("--allow-unauthenticated", "--allow-services", "greeter-*")
    narrow = Proxy(remote_env, flags).start()
    try:
        listed = via(narrow, "list", "services")
        assert listed.returncode == 0, listed.stderr
        assert remote_env.greeter in listed.stdout.split()
        assert remote_env.counter not in listed.stdout.split()
        hello = via_json(narrow, "call", remote_env.greeter, "Greeter.SayHello", '{"name":"J"}')
        assert hello == {"msg": "Hello J"}
        refused = one_line_error(
            via(narrow, "stream", remote_env.counter, "Counter.Count", '{"to":1}')
        )
        assert "403" in refused
        assert f"{remote_env.counter}' is not allowed through this proxy" in refused
        assert via(narrow, "get", "service", remote_env.counter).returncode != 0
    finally:
        narrow.stop()


# -- helpers -------------------------------------------------------------------------------


@dataclass
class Certs:
    """Files (paths as text): a CA, the proxy's certificate for its veth IP, a client's."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


@pytest.fixture(scope="module")
def certs(remote_env: RemoteEnv, tmp_path_factory: pytest.TempPathFactory) -> Certs:
    import trustme

    where = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert(remote_env.address)
    client = ca.issue_cert("laptop@example.com")
    files = Certs(*(str(where / n) for n in ("ca.pem", "s.pem", "s.key", "c.pem", "c.key")))
    ca.cert_pem.write_to_path(files.ca)
    for issued, cert, key in ((server, files.server_cert, files.server_key),
                              (client, files.client_cert, files.client_key)):  # fmt: skip
        issued.private_key_pem.write_to_path(key)
        with open(cert, "wb") as out:
            for pem in issued.cert_chain_pems:
                out.write(pem.bytes())
    return files


def http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(answer.status)


def wait_lines(path: Path, count: int, timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path} after {timeout} s")


async def wait_for(
    done: Callable[[], bool], timeout: float, explain: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout} s:\n{explain()}")
        await asyncio.sleep(0.05)
