"""Helpers for tests that run services as real processes over mDNS and HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from micro.errors import ServiceNotFound
from micro.registry import Service
from micro.registry.mdns import MdnsRegistry

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


class ServiceProcess:
    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def registry() -> AsyncIterator[MdnsRegistry]:
    async with MdnsRegistry() as reg:
        yield reg


SpawnFn = Callable[..., Coroutine[Any, Any, ServiceProcess]]


@pytest.fixture
async def spawn() -> AsyncIterator[SpawnFn]:
    """Start a service script as a process; every one is killed at the end of the test."""
    procs: list[ServiceProcess] = []

    async def start(script: str, name: str, *args: str, **env: str) -> ServiceProcess:
        environ = {**os.environ, **env}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / script), "--server_name", name, *args, env=environ
        )
        sp = ServiceProcess(proc, name)
        procs.append(sp)
        return sp

    yield start
    for sp in procs:
        await sp.stop()


async def wait_registered(registry: MdnsRegistry, name: str, timeout: float = 10.0) -> Service:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await registry.get_service(name))[0]
        except ServiceNotFound:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def wait_gone(registry: MdnsRegistry, name: str, timeout: float) -> float:
    """Seconds until ``name`` has no node left; fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            await registry.get_service(name)
        except ServiceNotFound:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} still registered after {timeout} s")
