"""A private mosquitto on a free loopback port, for tests that restart the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.broker.rabbitmq.private_node import free_port


class PrivateMosquitto:
    """``mosquitto -c <conf>`` with ``persistence`` on or off; ``restart()`` keeps the port."""

    def __init__(self, *, persistence: bool, extra: str = "") -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="micro-mosquitto-")
        self.dir = Path(self.tmp.name)
        # mosquitto started as root drops to the `mosquitto` user, which must write here
        self.dir.chmod(0o777)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"persistence {'true' if persistence else 'false'}\n"
            f"persistence_location {self.dir}/\n"
            f"log_dest file {self.dir}/mosquitto.log\n" + extra
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def start(self, timeout: float = 10.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise TimeoutError(f"private mosquitto not listening on {self.port}")

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file on a clean exit)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    async def restart(self) -> None:
        await asyncio.to_thread(self.stop)
        await self.start()

    def close(self) -> None:
        self.stop()
        self.tmp.cleanup()
