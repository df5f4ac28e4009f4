"""Test-wide settings: keep mDNS and servers on loopback whatever the caller's env says; the
servers the tests need (NATS, Redis, RabbitMQ, mosquitto) come from tests/servers.py."""

from __future__ import annotations

import os

import pytest

from tests import servers

os.environ.setdefault("MICRO_MDNS_INTERFACES", "127.0.0.1")
os.environ.setdefault("MICRO_SERVER_ADDRESS", "127.0.0.1:0")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in servers.started:
        terminalreporter.write_line(line)


def pytest_unconfigure() -> None:
    servers.stop_all()
