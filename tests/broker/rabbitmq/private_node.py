"""A private RabbitMQ node on free loopback ports, for tests that restart the engine.

The shared node (``rabbit@<host>`` on 5672, system epmd on 4369) is never touched: the private
node has its own name, its own epmd port, cookie, data and log directories under a temp dir.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    """A free TCP port on 127.0.0.1, below 50000 (the CLI uses DIST+10000 and up)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 50000:
            return port
    raise RuntimeError("no free port below 50000")


class PrivateRabbit:
    """One private ``rabbitmq-server``; ``start()``, ``stop_app()``/``start_app()``, ``close()``."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="micro-rabbit-")
        base = Path(self.tmp.name)
        self.port = free_port()
        self.node = f"micro-test-{uuid.uuid4().hex[:8]}@localhost"
        self.epmd_port = free_port()
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text("")
        (base / "rabbitmq-env.conf").write_text("")
        self.env = {
            **os.environ,
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(base / "stdout.log", "wb")  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def spawn(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "rabbitmq-server")],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def start(self, timeout: float = 40.0) -> None:
        self.spawn()
        await self.wait_port(timeout)

    async def restart(self) -> None:
        """A full restart of the node: SIGTERM beam (clean shutdown), then start it again."""
        await asyncio.to_thread(self._stop_beam)
        await self.start()

    async def wait_port(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"private rabbitmq exited: {self.proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise TimeoutError(f"private rabbitmq not listening on {self.port} after {timeout}s")

    async def ctl(self, *args: str) -> str:
        """Run rabbitmqctl against THIS node only (``-n`` is always the private node)."""
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "rabbitmqctl"),
            "-n",
            self.node,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args} failed: {out.decode(errors='replace')}")
        return out.decode(errors="replace")

    async def stop_app(self) -> None:
        await self.ctl("stop_app")

    async def start_app(self) -> None:
        await self.ctl("start_app")
        await self.wait_port()

    def close(self) -> None:
        """SIGTERM beam (then SIGKILL), then this node's own epmd; remove the temp dir."""
        self._stop_beam()
        self._kill_private_epmd()
        self.log.close()
        self.tmp.cleanup()

    def _stop_beam(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def _kill_private_epmd(self) -> None:
        # Only the epmd listening on OUR port: `epmd -kill` with our ERL_EPMD_PORT.
        subprocess.run(
            ["epmd", "-port", str(self.epmd_port), "-kill"],
            env=self.env,
            capture_output=True,
            timeout=10,
            check=False,
        )
