"""Run the real ``micro`` executable against real service processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
MICRO = str(Path(sys.executable).with_name("micro"))
GREETER = ROOT / "tests" / "integration" / "greeter_service.py"
SLOW = ROOT / "tests" / "integration" / "slow_service.py"
COUNTER = HERE / "counter_service.py"
FAILING = HERE / "failing_service.py"


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    env.update(
        MICRO_MDNS_INTERFACES="127.0.0.1",
        MICRO_SERVER_ADDRESS="127.0.0.1:0",
        COLUMNS="250",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def micro(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``micro args...`` and return the finished process (text output)."""
    return subprocess.run(
        [MICRO, *args],
        env=env or base_env(),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def micro_json(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Any:
    done = micro("-o", "json", *args, env=env, input=input)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_registered(name: str, env: dict[str, str] | None = None, timeout: float = 15) -> Any:
    """Poll ``micro get service`` until ``name`` is there; returns its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        done = micro("-o", "json", "get", "service", name, env=env)
        if done.returncode == 0:
            return json.loads(done.stdout)
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not registered: {done.stderr}")
        time.sleep(0.2)


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start service scripts as processes; all are killed when the test ends."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        script: Path, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, str(script), "--server_name", name, *args],
            env=env or base_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private etcd on free loopback ports; yields its client address."""
    binary = shutil.which("etcd")
    assert binary, "etcd is not installed (Debian package etcd-server)"
    data = tmp_path_factory.mktemp("etcd")
    client, peer = free_port(), free_port()
    proc = subprocess.Popen(
        [
            binary, "--name", "e1", "--data-dir", str(data / "data"),
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"e1=http://127.0.0.1:{peer}",
            "--listen-metrics-urls", "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", client), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("etcd did not start") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{client}"
    finally:
        proc.kill()
        proc.wait()
