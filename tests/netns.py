"""A "remote environment" for tests: a network namespace the host reaches by one veth pair.

::

    host (root namespace)                     namespace micro-<pid>-<n>
      m<pid>-<n>  10.231.B.(4k+1)/30  ======  eth0  10.231.B.(4k+2)/30   (the only way in)
                                              lo    127.0.0.1: nats-server -js, etcd,
                                                    services (mDNS on lo), micro proxy...

Everything the environment runs listens on the namespace's own loopback, which the host
cannot reach; only what binds the namespace's veth address (``ns.address``, e.g.
``micro proxy``) is reachable from the host. mDNS inside stays on that loopback
(``MICRO_MDNS_INTERFACES=127.0.0.1``): a fresh namespace's ``lo`` carries multicast between
its own sockets as the host's does. The host's real interfaces and its loopback servers are
never touched: the only host-side change is the veth end, on a /30 of ``10.231.0.0/16``
that no host address or route overlaps.

:class:`Namespace` makes the namespace, runs processes inside (each in its own process
group, output to a log file) and removes it all again: :meth:`Namespace.close` kills every
process group it started, deletes the namespace (which deletes the veth pair) and reports
what it could not remove. :func:`stale` finds namespaces left by a test process that was
killed before it could clean up; :func:`remote_env` is the module-scoped pytest fixture
(parametrize it indirectly with ``"mdns"`` or ``"etcd"``) yielding a :class:`RemoteEnv`,
whose services run from ``tests/integration/netns_remote.py``.

Needs root (``ip netns``) and iproute2; without them the fixture fails and says so.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from micro.testing.etcd import EtcdServer

ROOT = Path(__file__).resolve().parents[1]
POOL = ipaddress.IPv4Network("10.231.0.0/16")
_counter = itertools.count(1)
_NAME = re.compile(r"^micro-(\d+)-(\d+)$")
_TCP_PROBE = """
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
"""


class NetnsError(RuntimeError):
    """An ``ip`` command failed, or something inside did not come up in time."""


def ip(*args: str) -> str:
    """Run ``ip args...``; returns its output, raises :class:`NetnsError` with its stderr."""
    try:
        done = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except FileNotFoundError as exc:
        raise NetnsError("iproute2's ip command is not installed") from exc
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address or a route in."""
    found = []
    for line in ip("-4", "-o", "addr").splitlines() + ip("-4", "route").splitlines():
        for word in line.split():
            if word[:1].isdigit():
                try:
                    found.append(ipaddress.IPv4Network(word, strict=False))
                except ValueError:
                    continue
    return found


def _free_subnet() -> ipaddress.IPv4Network:
    """A random /30 of :data:`POOL` that nothing on the host overlaps."""
    used = [n for n in _used_networks() if n.overlaps(POOL)]
    blocks = list(POOL.subnets(new_prefix=30))
    for subnet in random.sample(blocks, 64):
        if not any(subnet.overlaps(n) for n in used):
            return subnet
    raise NetnsError(f"no free /30 in {POOL}: the host uses {used}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _link_exists(link: str) -> bool:
    try:
        ip("link", "show", "dev", link)
    except NetnsError:
        return False
    return True


def stale() -> list[str]:
    """Namespaces named by this module whose creating process no longer exists."""
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    return [n for n in names if (m := _NAME.match(n)) and not _alive(int(m.group(1)))]


@dataclass
class Namespace:
    """One namespace and its veth pair; ``address`` is the inside end, ``host_address``
    the host's. Make it with :meth:`create`; :meth:`close` removes everything."""

    name: str
    link: str  # the host end of the veth pair
    address: str
    host_address: str
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: dict[int, Path] = field(default_factory=dict)  # pid -> its output

    @classmethod
    def create(cls) -> Namespace:
        """A new namespace with ``lo`` up and a veth pair to the host, both ends up.

        Raises:
            NetnsError: ``ip`` failed (not root, no iproute2); nothing is left behind.
        """
        for name in stale():
            ip("netns", "del", name)
        n = next(_counter)
        subnet = _free_subnet()
        host, inside = (str(a) for a in itertools.islice(subnet.hosts(), 2))
        ns = cls(
            name=f"micro-{os.getpid()}-{n}",
            link=f"m{os.getpid()}-{n}",
            address=inside,
            host_address=host,
            logs=Path(tempfile.mkdtemp(prefix=f"micro-netns-{os.getpid()}-{n}-")),
        )
        try:
            ns._build(subnet.prefixlen)
        except BaseException:
            ns.close()
            raise
        return ns

    def _build(self, prefix: int) -> None:
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        ip("link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        ip("addr", "add", f"{self.host_address}/{prefix}", "dev", self.link)
        ip("link", "set", self.link, "up")
        ip("-n", self.name, "addr", "add", f"{self.address}/{prefix}", "dev", "eth0")
        ip("-n", self.name, "link", "set", "eth0", "up")

    @property
    def prefix(self) -> tuple[str, ...]:
        """The command prefix that runs a program inside."""
        return ("ip", "netns", "exec", self.name)

    def popen(
        self, args: Sequence[str], *, env: Mapping[str, str], label: str = ""
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` inside with exactly ``env``, in its own process group; its output
        goes to a log file (:meth:`log`). Killed by :meth:`close` if still running."""
        label = label or Path(args[0]).name
        log = self.logs / f"{len(self.procs):02d}-{label}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*self.prefix, *args],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._logs[proc.pid] = log
        self.procs.append(proc)
        return proc

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout: float = 30.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside to the end; returns it finished (text output)."""
        return subprocess.run(
            [*self.prefix, *args],
            env=dict(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log(self, proc: subprocess.Popen[bytes], lines: int = 30) -> str:
        """The last ``lines`` of what a process started by :meth:`popen` printed."""
        try:
            text = self._logs[proc.pid].read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        except (KeyError, OSError):
            return "(no log)"

    def wait_tcp(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        timeout: float = 15.0,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """Wait until ``host:port`` accepts a connection made from inside.

        Raises:
            NetnsError: ``proc`` exited first, or ``timeout`` passed (with ``proc``'s log).
        """
        deadline = time.monotonic() + timeout
        probe = [sys.executable, "-c", _TCP_PROBE, host, str(port), "1"]
        while True:
            if proc is not None and proc.poll() is not None:
                raise NetnsError(f"{proc.args!r} exited with {proc.returncode}:\n{self.log(proc)}")
            if self.run(probe, env=os.environ, timeout=10).returncode == 0:
                return
            if time.monotonic() > deadline:
                tail = self.log(proc) if proc is not None else ""
                raise NetnsError(f"nothing accepts {host}:{port} in {self.name}:\n{tail}")

    def reachable(self, port: int, host: str | None = None, timeout: float = 1.0) -> bool:
        """True when a connection from the host to ``host:port`` (default: the inside
        address) succeeds."""
        try:
            socket.create_connection((host or self.address, port), timeout=timeout).close()
        except OSError:
            return False
        return True

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal ``proc``'s process group and reap it (bounded: 10 s, then SIGKILL)."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def close(self) -> list[str]:
        """Kill every process group started here, delete the namespace and the veth pair
        and the logs; returns what could not be removed (empty when all went)."""
        for proc in self.procs:
            self.kill(proc)
        errors = []
        names = ip("netns", "list")
        if re.search(rf"^{re.escape(self.name)}\b", names, re.MULTILINE):
            try:
                ip("netns", "del", self.name)
            except NetnsError as exc:
                errors.append(str(exc))
        # the kernel tears a namespace down in the background: its veth pair goes soon after
        deadline = time.monotonic() + 5
        while _link_exists(self.link) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _link_exists(self.link):
            try:
                ip("link", "del", self.link)
            except NetnsError as exc:
                if _link_exists(self.link):
                    errors.append(str(exc))
        if re.search(rf"^{re.escape(self.name)}\b", ip("netns", "list"), re.MULTILINE):
            errors.append(f"namespace {self.name} left behind")
        shutil.rmtree(self.logs, ignore_errors=True)
        return errors


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any ``MICRO_*`` variable, plus ``extra``:
    what a process gets so that only the settings a test chose apply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


NATS_PORT = 4222  # inside the namespace, which is private: fixed ports cannot collide
ETCD_PORTS = (2379, 2380)
REMOTE = ROOT / "tests" / "integration" / "netns_remote.py"


@dataclass
class RemoteEnv:
    """The remote environment: a namespace with NATS JetStream, a registry (mDNS on the
    namespace's loopback, or etcd), a greeter and a counter service (names unique per run).

    ``env`` is what every process inside gets (registry, broker, server address);
    :meth:`start` runs more inside, :meth:`micro` runs the CLI inside.
    """

    ns: Namespace
    registry: str
    env: dict[str, str]
    greeter: str
    counter: str
    etcd: EtcdServer | None = None

    @property
    def address(self) -> str:
        """The namespace's veth address: the only one the host can reach."""
        return self.ns.address

    def start(self, *args: str, label: str = "", **extra: str) -> subprocess.Popen[bytes]:
        """Start ``python args...`` inside with :attr:`env` plus ``extra``."""
        return self.ns.popen([sys.executable, *args], env={**self.env, **extra}, label=label)

    def micro(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``micro args...`` inside (the CLI, with :attr:`env`)."""
        cli = [sys.executable, "-m", "micro.toolkit.cli", *args]
        return self.ns.run(cli, env={**self.env, "COLUMNS": "250"}, timeout=timeout)

    def wait_registered(self, *names: str, timeout: float = 20.0) -> None:
        """Wait until the registry inside lists every one of ``names``.

        Raises:
            NetnsError: one is still missing after ``timeout`` (with every process's log).
        """
        probe = [sys.executable, str(REMOTE), "registered", str(timeout), *names]
        done = self.ns.run(probe, env=self.env, timeout=timeout + 15)
        if done.returncode != 0:
            logs = "\n".join(f"--- {p.args!r}\n{self.ns.log(p)}" for p in self.ns.procs)
            raise NetnsError(f"{names} not registered in {self.ns.name}: {done.stderr}\n{logs}")

    def close(self) -> list[str]:
        """Stop etcd, then everything else (:meth:`Namespace.close`)."""
        if self.etcd is not None:
            self.etcd.close()
        return self.ns.close()

    @classmethod
    def create(cls, registry: str = "mdns") -> RemoteEnv:
        """Build and start it all; on any failure what was started is removed again."""
        ns = Namespace.create()
        tag = uuid.uuid4().hex[:6]
        env = clean_env(
            MICRO_MDNS_INTERFACES="127.0.0.1",
            MICRO_SERVER_ADDRESS="127.0.0.1:0",
            MICRO_REGISTRY=registry,
            MICRO_BROKER="nats",
            MICRO_BROKER_ADDRESS=f"127.0.0.1:{NATS_PORT}",
            MICRO_BROKER_JETSTREAM="true",
        )
        remote = cls(ns, registry, env, greeter=f"greeter-{tag}", counter=f"counter-{tag}")
        try:
            remote._start_servers()
        except BaseException:
            remote.close()
            raise
        return remote

    def _start_servers(self) -> None:
        store = self.ns.logs / "nats"
        nats = self.ns.popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(NATS_PORT), "-js", "-sd", str(store)],
            env=self.env,
            label="nats-server",
        )
        if self.registry == "etcd":
            client, peer = ETCD_PORTS
            self.etcd = EtcdServer(
                host="127.0.0.1", client_port=client, peer_port=peer, prefix=self.ns.prefix
            )
            self.etcd.start()
            self.env["MICRO_REGISTRY_ADDRESS"] = self.etcd.address
        self.ns.wait_tcp(NATS_PORT, proc=nats)
        self.start(str(REMOTE), "serve", "greeter", "--server_name", self.greeter)
        self.start(str(REMOTE), "serve", "counter", "--server_name", self.counter)
        self.wait_registered(self.greeter, self.counter)


@pytest.fixture(scope="module")
def remote_env(request: pytest.FixtureRequest) -> Iterator[RemoteEnv]:
    """A :class:`RemoteEnv` for the module; ``request.param`` (indirect parametrization)
    picks the registry inside: ``"mdns"`` (default) or ``"etcd"``."""
    registry = getattr(request, "param", "mdns")
    try:
        remote = RemoteEnv.create(registry)
    except NetnsError as exc:
        pytest.fail(f"cannot build the remote environment (needs root and iproute2): {exc}")
    try:
        yield remote
    finally:
        errors = remote.close()
        assert not errors, errors
