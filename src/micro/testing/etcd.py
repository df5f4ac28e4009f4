"""Private etcd servers for tests: one node or a 3-member cluster, on free loopback ports.

    from micro.testing.etcd import EtcdServer, EtcdCluster

    with EtcdServer() as etcd:                  # started, healthy
        registry = EtcdRegistry(address=etcd.address)
        etcd.stop(); etcd.start()               # a restart keeps the data dir
        etcd.start(wipe=True)                   # ... or comes back empty

    with EtcdCluster(3) as cluster:
        cluster.address                         # "127.0.0.1:C1,127.0.0.1:C2,127.0.0.1:C3"
        cluster.members[1].kill()               # the others keep serving

Each server lives in its own temporary directory (data and log) that is removed when it is
closed. ``host`` may be another address (one of a network namespace) and ``prefix`` a command
prefix such as ``("ip", "netns", "exec", "ns1")``; health is then checked with ``etcdctl``
through the same prefix. The ``etcd`` and ``etcdctl`` binaries come from Debian's
``etcd-server`` and ``etcd-client``. The methods block (a start takes well under a second);
async tests call them directly or through ``asyncio.to_thread``.
"""

from __future__ import annotations

import abc
import hashlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["EtcdCluster", "EtcdServer", "free_port"]

_READY_WITHIN = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: apt-get install etcd-server etcd-client")
    return path


class _Managed(abc.ABC):
    """``with``: ``start()`` on enter (``close()`` again if that fails), ``close()`` on exit."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EtcdServer(_Managed):
    """One etcd member (a single-node cluster unless ``cluster`` names the others).

    Args:
        name: the member name.
        host: the address it listens on (client and peer).
        client_port, peer_port: fixed ports (default: free ones on ``host``; pass them when
            ``host`` is not an address of this namespace).
        cluster: ``name=http://host:peer`` of every member, for a cluster.
        prefix: a command prefix to run it under (a network namespace).
        heartbeat, election: raft timings in ms. A lone member never holds an election
            after its start, so it uses short ones: etcd's shortest lease is 1.5 election
            timeouts, and tests want 1 s leases.
        tls: ``(cert file, key file, CA file)`` to serve clients over TLS (``https``); with
            a CA file, clients must present a certificate it signed.
        extra: more etcd flags.
    """

    def __init__(
        self,
        *,
        name: str = "e1",
        host: str = "127.0.0.1",
        client_port: int | None = None,
        peer_port: int | None = None,
        cluster: str | None = None,
        prefix: Sequence[str] = (),
        heartbeat: int | None = None,
        election: int | None = None,
        tls: tuple[str, str, str | None] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.host = host
        self.client_port = client_port or free_port(host)
        self.peer_port = peer_port or free_port(host)
        self.cluster = cluster or f"{name}={self.peer_url}"
        self.prefix = tuple(prefix)
        self.extra = tuple(extra)
        self.tls = tls
        alone = cluster is None
        self.heartbeat = heartbeat or (50 if alone else 100)
        self.election = election or (500 if alone else 1000)
        self.dir = Path(tempfile.mkdtemp(prefix=f"micro-etcd-{name}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._log = self.dir / "etcd.log"

    @property
    def address(self) -> str:
        """``host:port`` of the client endpoint."""
        return f"{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def token(self) -> str:
        """The cluster token: the same for every member of one cluster."""
        return "micro-test-" + hashlib.sha256(self.cluster.encode()).hexdigest()[:16]

    @property
    def client_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def _tls_flags(self) -> list[str]:
        if self.tls is None:
            return []
        cert, key, ca = self.tls
        flags = ["--cert-file", cert, "--key-file", key]
        return [*flags, "--client-cert-auth", "--trusted-ca-file", ca] if ca else flags

    def command(self) -> list[str]:
        client = self.client_url
        return [
            *self.prefix,
            _binary("etcd"),
            "--name", self.name,
            "--data-dir", str(self.dir / "data"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token,
            "--listen-metrics-urls", "",
            "--heartbeat-interval", str(self.heartbeat),
            "--election-timeout", str(self.election),
            *self._tls_flags(),
            *self.extra,
        ]  # fmt: skip

    def spawn(self, *, wipe: bool = False) -> None:
        """Start the process without waiting for it to be healthy (cluster members)."""
        if self.running:
            return
        if wipe:
            shutil.rmtree(self.dir / "data", ignore_errors=True)
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def start(self, *, wipe: bool = False) -> None:
        """Start (again, keeping the data unless ``wipe``) and wait until it is healthy.

        Raises:
            RuntimeError: it exited or stayed unhealthy; the message holds its log's tail.
        """
        self.spawn(wipe=wipe)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = _READY_WITHIN) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"etcd {self.name} exited: {self.log_tail()}")
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd {self.name} not healthy: {self.log_tail()}")
            time.sleep(0.1)

    def healthy(self) -> bool:
        """``etcdctl endpoint health`` succeeds (a leader exists and this member answers)."""
        command = [
            *self.prefix,
            _binary("etcdctl"),
            f"--endpoints={self.client_url}",
            *self._etcdctl_tls(),
            "--dial-timeout=1s",
            "--command-timeout=2s",
            "endpoint",
            "health",
        ]
        done = subprocess.run(command, capture_output=True, timeout=10, check=False)
        return done.returncode == 0

    def _etcdctl_tls(self) -> list[str]:
        if self.tls is None:
            return []
        cert, key, ca = self.tls
        return ["--insecure-skip-tls-verify"] + ([f"--cert={cert}", f"--key={key}"] if ca else [])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop it and remove its directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class EtcdCluster(_Managed):
    """``size`` members on loopback, each with its own ports and directory."""

    def __init__(self, size: int = 3, *, host: str = "127.0.0.1") -> None:
        peers = [(f"m{i + 1}", free_port(host)) for i in range(size)]
        cluster = ",".join(f"{name}=http://{host}:{port}" for name, port in peers)
        self.members = [
            EtcdServer(name=name, host=host, peer_port=port, cluster=cluster)
            for name, port in peers
        ]

    @property
    def address(self) -> str:
        """Every member's client endpoint, comma-separated."""
        return ",".join(m.address for m in self.members)

    def start(self) -> None:
        for member in self.members:
            member.spawn()
        for member in self.members:
            member.wait_healthy()

    def close(self) -> None:
        for member in self.members:
            member.close()
