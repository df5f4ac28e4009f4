"""Test-wide settings: keep mDNS and servers on loopback whatever the caller's env says; the
servers the tests need (NATS, Redis, RabbitMQ, mosquitto) come from tests/servers.py.

``greeter_pb2``: a protobuf module generated at test time from a greeter.proto (never
committed), for the codec and server tests.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests import servers

os.environ.setdefault("MICRO_MDNS_INTERFACES", "127.0.0.1")
os.environ.setdefault("MICRO_SERVER_ADDRESS", "127.0.0.1:0")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in servers.started:
        terminalreporter.write_line(line)


def pytest_unconfigure() -> None:
    servers.stop_all()


GREETER_PROTO = """
syntax = "proto3";
package micro.codectest;

message Request {
  string name = 1;
}

message Response {
  string msg = 1;
}

message Order {
  enum Status { UNKNOWN = 0; PAID = 1; }
  int64 order_id = 1;
  repeated Request lines = 2;
  map<string, string> labels = 3;
  bytes blob = 4;
  Status status = 5;
  Order parent = 6;
  repeated string tags = 7;
}
"""


@pytest.fixture(scope="session")
def greeter_pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("proto")
    (out / "codectest_greeter.proto").write_text(GREETER_PROTO)
    args = ["protoc", f"-I{out}", f"--python_out={out}", "codectest_greeter.proto"]
    assert protoc.main(args) == 0, "protoc failed"
    path: Path = out / "codectest_greeter_pb2.py"
    spec = importlib.util.spec_from_file_location("codectest_greeter_pb2", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
