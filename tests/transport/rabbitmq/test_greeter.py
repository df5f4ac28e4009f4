"""The greeter example, unchanged, on MICRO_TRANSPORT=rabbitmq, called with ``micro call``
(the registry is NATS here: the mDNS registry publishes host:port addresses only)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.servers import amqp_url, nats_url
from tests.toolkit.cli.conftest import ROOT, base_env, micro, wait_registered

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def env(exchange: str) -> dict[str, str]:
    return base_env(
        MICRO_TRANSPORT="rabbitmq",
        MICRO_TRANSPORT_ADDRESS=amqp_url(),
        MICRO_TRANSPORT_EXCHANGE=exchange,
        MICRO_REGISTRY="nats",
        MICRO_REGISTRY_ADDRESS=nats_url(),
        MICRO_REGISTRY_PREFIX=f"test.{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def greeter(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "greeter" / "server.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_micro_call_reaches_the_greeter_over_rabbitmq(
    greeter: subprocess.Popen[bytes], env: dict[str, str]
) -> None:
    [service] = wait_registered("greeter", env=env)
    [node] = service["nodes"]
    assert node["metadata"]["transport"] == "rabbitmq"
    assert ":" not in node["address"]  # a queue name
    done = micro("call", "greeter", "Greeter.SayHello", '{"name": "Rabbit"}', env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"msg": "Hello Rabbit"}
