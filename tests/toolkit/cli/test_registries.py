"""The same commands on etcd, register/deregister, and publish to real subscribers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.servers import address
from tests.toolkit.cli.conftest import (
    GREETER,
    HERE,
    Spawn,
    base_env,
    micro,
    micro_json,
    unique,
    wait_registered,
)

pytestmark = pytest.mark.integration


def test_commands_on_etcd(etcd: str, spawn: Spawn) -> None:
    env = base_env(MICRO_REGISTRY="etcd", MICRO_REGISTRY_ADDRESS=etcd)
    name = unique("etcd-greeter")
    spawn(GREETER, name, env=env)
    wait_registered(name, env=env)
    flags = ("--registry", "etcd", "--registry-address", etcd)
    assert name in micro_json(*flags, "list", "services")  # flags, not env, pick etcd
    assert name not in micro_json("list", "services")  # the mdns default does not see it
    assert micro_json("call", name, "Greeter.SayHello", '{"name": "Etcd"}', env=env) == {
        "msg": "Hello Etcd"
    }
    [row] = micro_json("health", name, env=env)
    assert row["status"] == "ok"


def test_register_and_deregister_on_etcd(etcd: str) -> None:
    env = base_env(MICRO_REGISTRY="etcd", MICRO_REGISTRY_ADDRESS=etcd)
    name = unique("manual")
    record = {
        "name": name,
        "version": "1.2.3",
        "nodes": [{"id": f"{name}-1", "address": "127.0.0.1:9", "metadata": {"zone": "a"}}],
    }
    done = micro("register", "service", json.dumps(record), env=env)
    assert done.returncode == 0, done.stderr
    assert f"registered {name} 1.2.3" in done.stdout
    [svc] = micro_json("get", "service", name, env=env)
    assert svc["version"] == "1.2.3"
    assert svc["nodes"][0]["metadata"] == {"zone": "a"}
    out = micro_json("deregister", "service", "-", env=env, input=json.dumps(record))
    assert out["deregistered"] == [f"{name}-1"]
    gone = micro("get", "service", name, env=env)
    assert gone.returncode == 1
    assert gone.stderr.strip() == f"micro: service not found: {name}"


def _received(path: Path, count: int, timeout: float = 10) -> list[object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return [json.loads(line) for line in lines]
        time.sleep(0.1)
    raise AssertionError(f"{path} got no {count} events")


@pytest.mark.parametrize("broker", ["http", "nats"])
def test_publish_reaches_a_subscriber(broker: str, spawn: Spawn, tmp_path: Path) -> None:
    extra = {"MICRO_BROKER": broker}
    if broker == "nats":
        extra["MICRO_BROKER_ADDRESS"] = address("nats")
    env = base_env(**extra)
    name, topic, out = unique("sub"), unique("topic"), tmp_path / "events.jsonl"
    spawn(HERE / "subscriber_service.py", name, "--topic", topic, "--out", str(out), env=env)
    wait_registered(name)
    done = micro("-o", "json", "publish", topic, '{"id": 7}', "-m", "k=v", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"topic": topic, "published": True}
    assert _received(out, 1) == [{"id": 7}]
    bad = micro("publish", topic, "{oops", env=env)
    assert bad.returncode == 1
    assert "invalid JSON message (argument) at line 1, column 2" in bad.stderr
