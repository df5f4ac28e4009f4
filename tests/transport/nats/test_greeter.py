"""examples/greeter/server.py with MICRO_TRANSPORT=nats and MICRO_REGISTRY=nats (a service
whose only dependency is NATS), called by ``micro call`` and examples/greeter/client.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.servers import nats_url
from tests.toolkit.cli.conftest import MICRO, ROOT, base_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def env() -> dict[str, str]:
    return base_env(
        MICRO_TRANSPORT="nats",
        MICRO_TRANSPORT_ADDRESS=nats_url(),
        MICRO_REGISTRY="nats",
        MICRO_REGISTRY_ADDRESS=nats_url(),
        MICRO_REGISTRY_PREFIX=f"microtest.{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture
def greeter(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "greeter" / "server.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def micro(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MICRO, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_micro_call_reaches_the_greeter_over_nats(
    env: dict[str, str], greeter: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 20
    while True:  # until the greeter has registered
        done = micro(env, "call", "greeter", "Greeter.SayHello", '{"name": "Ann"}')
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"msg": "Hello Ann"}
    listed = micro(env, "get", "service", "greeter")
    assert listed.returncode == 0, listed.stderr
    assert "_INBOX." in listed.stdout
    assert "transport=nats" in listed.stdout
    client = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "greeter" / "client.py")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert client.returncode == 0, client.stderr
    assert "Hello" in client.stdout
