"""The examples with MICRO_TRANSPORT=nats and MICRO_REGISTRY=nats (services whose only
dependency is NATS): the greeter called by ``micro call`` and its client, the streaming
example, and the pub/sub example (MICRO_BROKER=nats too)."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def running(env: dict[str, str], *path: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT.joinpath("examples", *path))],
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


@pytest.fixture
def greeter(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with running(env, "greeter", "server.py") as proc:
        yield proc


def until_it_works(env: dict[str, str], *path: str) -> subprocess.CompletedProcess[str]:
    """Run an example client until it succeeds (its service may not be registered yet)."""
    deadline = time.monotonic() + 20
    while True:
        done = subprocess.run(
            [sys.executable, str(ROOT.joinpath("examples", *path))],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.3)


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


def test_the_streaming_example_over_nats(env: dict[str, str]) -> None:
    with running(env, "streaming", "server.py"):
        done = until_it_works(env, "streaming", "client.py")
    assert done.returncode == 0, done.stderr
    assert "tick 3" in done.stdout
    assert "echo STREAMS" in done.stdout


def test_the_pubsub_example_over_nats(env: dict[str, str]) -> None:
    env = {**env, "MICRO_BROKER": "nats", "MICRO_BROKER_ADDRESS": nats_url()}
    env["EXAMPLE_TOPIC_PREFIX"] = f"microtest.{uuid.uuid4().hex[:10]}"
    with running(env, "pubsub", "subscriber.py"):
        # the mailer registers once subscribed (core NATS keeps nothing for late subscribers)
        deadline = time.monotonic() + 20
        while micro(env, "get", "service", "example.pubsub.mailer").returncode != 0:
            assert time.monotonic() < deadline, "the mailer never registered"
            time.sleep(0.3)
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "pubsub" / "publisher.py"), "3"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("welcomed") == 3
