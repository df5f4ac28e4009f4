"""A private etcd for the etcd registry tests, and raw access to it through etcdctl."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from micro.registry.etcd import EtcdRegistry
from micro.testing.etcd import EtcdServer


@pytest.fixture(scope="package")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other."""
    return f"/t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
async def registry(etcd: EtcdServer, prefix: str) -> AsyncIterator[EtcdRegistry]:
    async with EtcdRegistry(address=etcd.address, prefix=prefix) as reg:
        yield reg


async def etcdctl(address: str, *args: str) -> str:
    """Run etcdctl against ``address``; its stdout (fails the test on a non-zero exit)."""
    exe = shutil.which("etcdctl")
    assert exe is not None, "etcdctl missing: apt-get install etcd-client"
    proc = await asyncio.create_subprocess_exec(
        exe,
        f"--endpoints=http://{address}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, f"etcdctl {args}: {err.decode()}"
    return out.decode()


async def raw_kvs(address: str, prefix: str) -> list[dict[str, Any]]:
    """Every key under ``prefix`` as etcdctl sees it: key, value (decoded), lease."""
    reply = json.loads(await etcdctl(address, "get", "--prefix", prefix, "-w", "json"))
    return [
        {
            "key": base64.b64decode(kv["key"]).decode(),
            "value": base64.b64decode(kv.get("value", "")),
            "lease": int(kv.get("lease", 0)),
            "version": int(kv.get("version", 0)),
        }
        for kv in reply.get("kvs", [])
    ]
