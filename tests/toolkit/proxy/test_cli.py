"""``micro proxy``: its options, the loopback rule, and the real process."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from micro.toolkit.proxy.cli import build_options, read_settings
from tests.toolkit.api.test_process import PY, Proc, free_port

MICRO = [PY, "-m", "micro.toolkit.cli"]
MEMORY = {"MICRO_REGISTRY": "memory", "MICRO_BROKER": "memory"}


def test_defaults_env_and_flags() -> None:
    o = build_options(read_settings([], environ={}))
    assert (o.address, o.allow_unauthenticated, o.allow_services) == (":8081", False, ())
    env = {"MICRO_PROXY_ADDRESS": ":9000", "MICRO_TLS_CERT_FILE": "c.pem"}
    o = build_options(read_settings([], environ=env))
    assert (o.address, o.tls_cert_file) == (":9000", "c.pem")
    argv = [
        "--allow-services",
        "greeter,billing-*",
        "--allow-topics",
        "events.*",
        "--max-body",
        "1K",
    ]
    o = build_options(read_settings(argv, environ=env))
    assert o.allow_services == ("greeter", "billing-*")
    assert o.allow_topics == ("events.*",)
    assert o.max_body == 1024
    assert o.service_allowed("billing-eu")
    assert not o.service_allowed("payroll")
    assert o.topic_allowed("events.created")
    assert not o.topic_allowed("audit")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["proxy", "--address", "nowhere"], "micro proxy: --address 'nowhere'"),
        (["proxy", "--tls-key-file", "k.pem"], "micro proxy: --tls-key-file needs --tls-cert-file"),
        (
            ["proxy", "--tls-cert-file", "/nonexistent.pem"],
            "micro proxy: --tls-cert-file /nonexistent.pem: no such file",
        ),
        (["proxy", "--rate-limit", "lots"], "micro proxy: "),
        (
            ["--proxy-address", "h:1", "proxy"],
            "to choose where 'micro proxy' listens use --address",
        ),
        (
            ["proxy", "--proxy-address", "h:1"],
            "to choose where 'micro proxy' listens use --address",
        ),
        (["proxy", "--proxy_address=h:1"], "to choose where 'micro proxy' listens use --address"),
        (["--registry", "nope", "proxy"], "unknown registry 'nope'"),
    ],
)
@pytest.mark.integration
def test_bad_options_exit_2_in_one_line(argv: list[str], error: str) -> None:
    done = subprocess.run([*MICRO, *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert error in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.integration
def test_a_bad_certificate_exits_2_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    argv = ["proxy", "--tls-cert-file", str(bad), "--address", "0.0.0.0:1"]
    done = subprocess.run([*MICRO, *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("micro proxy: TLS: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.integration
def test_help_names_the_options() -> None:
    done = subprocess.run([*MICRO, "proxy", "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: micro proxy")
    for flag in ("--address", "--auth-tokens", "--allow-services", "--tls-client-ca-file"):
        assert flag in done.stdout
    assert "--proxy-address" not in done.stdout


def listening_on(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        addr, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


def start(tmp: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[Proc, int]:
    port = free_port()
    args = [PY, "-m", "micro.toolkit.proxy", "--address", f"0.0.0.0:{port}", *flags]
    proc = Proc(args, tmp / f"proxy-{port}.log", {**MEMORY, **(env or {})})
    deadline = time.monotonic() + 20
    while not listening_on(port):
        assert proc.proc.poll() is None, proc.text()
        assert time.monotonic() < deadline, proc.text()
        time.sleep(0.05)
    return proc, port


@pytest.mark.integration
@pytest.mark.slow
def test_no_auth_listens_on_loopback_only_and_says_so(tmp_path: Path) -> None:
    proc, port = start(tmp_path)
    try:
        assert listening_on(port) == {"127.0.0.1"}
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        lines = [line for line in proc.text().splitlines() if line.startswith("micro proxy:")]
        assert len(lines) == 1
        assert f"listening on 127.0.0.1:{port} only" in lines[0]
        assert "--auth-tokens" in lines[0]
        assert "--allow-unauthenticated" in lines[0]
    finally:
        proc.stop()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (["--allow-unauthenticated"], {}),
        ([], {"MICRO_PROXY_AUTH_TOKENS": "s3cret"}),
    ],
)
def test_auth_or_the_flag_listens_where_told(
    tmp_path: Path, flags: list[str], env: dict[str, str]
) -> None:
    proc, port = start(tmp_path, *flags, env=env)
    try:
        assert listening_on(port) == {"0.0.0.0"}
        assert "only, not" not in proc.text()
    finally:
        proc.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_with_open_websockets_exits_0_at_once(tmp_path: Path) -> None:
    proc, port = start(tmp_path)

    async def hold_and_stop() -> int | None:
        async with connect(f"ws://127.0.0.1:{port}/broker?topic=t") as sub:
            async with connect(f"ws://127.0.0.1:{port}/registry") as watch:
                await asyncio.sleep(0.2)
                proc.proc.send_signal(signal.SIGTERM)
                for ws in (sub, watch):
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), 5)
                return sub.close_code

    try:
        started = time.monotonic()
        assert asyncio.run(hold_and_stop()) in (1001, 1012)
        assert proc.proc.wait(5) == 0
        assert time.monotonic() - started < 5
    finally:
        proc.stop()
