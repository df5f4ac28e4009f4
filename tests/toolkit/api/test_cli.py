"""`micro api` options: flags, MICRO_API_* env vars, defaults and clear errors."""

from __future__ import annotations

import pytest

from micro.toolkit.api.cli import build_options, listen_address, main, read_settings
from micro.toolkit.api.options import ApiOptions, parse_size


def options(argv: list[str], env: dict[str, str] | None = None) -> ApiOptions:
    return build_options(read_settings(argv, environ=env or {}))


def test_defaults_are_go_micros() -> None:
    o = options([])
    assert (o.address, o.namespace, o.handler, o.resolver) == (
        ":8080",
        "go.micro.api",
        "meta",
        "micro",
    )
    assert not o.enable_rpc
    assert not o.cors_origins
    assert o.access_log


def test_env_then_flags() -> None:
    env = {
        "MICRO_API_ADDRESS": "127.0.0.1:9000",
        "MICRO_API_NAMESPACE": "",
        "MICRO_API_HANDLER": "api",
        "MICRO_API_ENABLE_RPC": "true",
        "MICRO_API_MAX_BODY": "1M",
    }
    o = options([], env)
    assert (o.address, o.namespace, o.handler, o.enable_rpc, o.max_body) == (
        "127.0.0.1:9000",
        "",
        "api",
        True,
        1024 * 1024,
    )
    o = options(["--handler", "rpc", "--namespace", "acme", "--enable_rpc"], env)
    assert (o.handler, o.namespace, o.enable_rpc) == ("rpc", "acme", True)


def test_cors_and_limits() -> None:
    o = options(
        [
            "--cors-allowed-origins",
            "https://a, https://b",
            "--cors-allow-credentials",
            "--rate-limit",
            "5",
            "--rate-burst",
            "10",
            "--timeout",
            "2.5",
            "--read-timeout",
            "3",
        ]
    )
    assert o.cors_origins == ("https://a", "https://b")
    assert o.cors_credentials
    assert (o.rate_limit, o.rate_burst, o.timeout, o.read_timeout) == (5.0, 10, 2.5, 3.0)


def test_connection_limits() -> None:
    o = options([])
    assert (o.header_timeout, o.idle_timeout, o.max_connections) == (30.0, 60.0, 1000)
    env = {"MICRO_API_HEADER_TIMEOUT": "5", "MICRO_API_IDLE_TIMEOUT": "7.5"}
    o = options(["--max-connections", "0"], env)
    assert (o.header_timeout, o.idle_timeout, o.max_connections) == (5.0, 7.5, 0)
    o = options(["--header-timeout", "2", "--idle-timeout", "3", "--max-connections", "9"], env)
    assert (o.header_timeout, o.idle_timeout, o.max_connections) == (2.0, 3.0, 9)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--header-timeout", "0"], "header_timeout must be > 0"),
        (["--idle-timeout", "-1"], "--idle-timeout: duration '-1' is negative"),
        (["--max-connections", "-1"], "--max-connections: '-1' is negative"),
        (["--max-connections", "many"], "--max-connections: 'many' is not a whole number"),
        (["--handler", "grpc"], "unknown handler 'grpc'"),
        (["--resolver", "dns"], "unknown resolver 'dns'"),
        (["--rate-limit", "fast"], "--rate-limit: 'fast' is not a number"),
        (["--max-body", "lots"], "is not a size"),
        (["--address", "nowhere"], "expected host:port"),
        (["--timeout", "0"], "timeout must be > 0"),
        (["--auth-tokens", " , "], "auth: no tokens given"),
        (["--auth-function", "checks"], "auth function 'checks': use module:function"),
        (["--auth-function", "no_such_module:check"], "No module named 'no_such_module'"),
        (["--auth-function", "json:nope"], "has no attribute 'nope'"),
        (["--auth-function", "json:__name__"], "auth function 'json:__name__' is not callable"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_listen_address_and_sizes() -> None:
    assert listen_address(":8080") == ("0.0.0.0", 8080)
    assert listen_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert listen_address("[::1]:80") == ("::1", 80)
    assert [parse_size(s) for s in ("10", "2K", "3mb", "1G")] == [10, 2048, 3 * 1024**2, 1024**3]


def test_the_core_never_imports_the_gateway() -> None:
    import subprocess
    import sys

    code = (
        "import sys, micro, micro.client.rpc, micro.server.rpc, micro.service;"
        "print(any(m.startswith('micro.toolkit') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=30)
    assert out.stdout.strip() == b"False"
