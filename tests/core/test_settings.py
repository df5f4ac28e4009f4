"""micro.settings: one table read once by every entry point; backends never read env."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from micro import plugins
from micro.settings import (
    BACKEND_GROUPS,
    PROXY_GROUPS,
    SERVICE_GROUPS,
    SETTINGS,
    SettingsError,
    load,
    markdown,
    parse_flags,
)
from micro.transport.http import HttpTransport

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "micro"


def test_docs_page_is_the_table() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page.endswith(markdown()), "regenerate: python -m micro.settings"


def test_names_flags_and_env_vars_are_unique() -> None:
    # flags and env vars are unique among the groups one command reads: `micro api --address`
    # and `micro web --address` are two settings, never on one command line; so are
    # MICRO_PROXY_ADDRESS read by `micro proxy` (where it listens) and by every other command
    # (the proxy to go through), as in go-micro
    commands = {
        "service": {*SERVICE_GROUPS, "cli"},
        **{app: {*SERVICE_GROUPS, "cli", app} for app in ("api", "web", "bot", "mcp")},
        "proxy": set(PROXY_GROUPS),
    }
    for command, groups in commands.items():
        members = [s for s in SETTINGS if s.group in groups]
        flags = Counter(f for s in members for f in s.flags)
        assert [f for f, n in flags.items() if n > 1] == [], command
        envs = Counter(e for s in members for e in s.env)
        assert [e for e, n in envs.items() if n > 1] == [], command
    envs = Counter(e for s in SETTINGS for e in s.env)
    assert [e for e, n in envs.items() if n > 1] == ["MICRO_PROXY_ADDRESS"]
    assert "remote" not in PROXY_GROUPS
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


def test_code_beats_flags_beats_env_beats_defaults() -> None:
    environ = {"MICRO_REGISTRY": "etcd", "MICRO_CLIENT_RETRIES": "4", "MICRO_BROKER": "nats"}
    flags = parse_flags(["--registry", "nats", "--client_retries", "2"])
    s = load(flags=flags, environ=environ, code={"registry": "consul"})
    assert (s["registry"], s.source("registry")) == ("consul", "code")
    assert (s["client_retries"], s.source("client_retries")) == (2, "--client-retries")
    assert (s["broker"], s.source("broker")) == ("nats", "MICRO_BROKER")
    assert (s["transport"], s.source("transport")) == ("http", "default")


def test_values_are_typed() -> None:
    environ = {
        "MICRO_REGISTER_TTL": "1m30s",
        "MICRO_MDNS_INTERFACES": "127.0.0.1, 127.0.0.2",
        "MICRO_BROKER_JETSTREAM": "yes",
        "MICRO_API_MAX_BODY": "512K",
    }
    s = load(environ=environ)
    assert s["register_ttl"] == 90.0
    assert s["mdns_interfaces"] == ("127.0.0.1", "127.0.0.2")
    assert s["broker_jetstream"] is True
    assert s["api_max_body"] == 512 * 1024


@pytest.mark.parametrize(
    ("environ", "argv", "where"),
    [
        ({"MICRO_REGISTER_TTL": "soon"}, [], "MICRO_REGISTER_TTL"),
        ({}, ["--register_ttl=-5s"], "--register-ttl"),
        ({"MICRO_CLIENT_POOL_SIZE": "many"}, [], "MICRO_CLIENT_POOL_SIZE"),
        ({"MICRO_BROKER_JETSTREAM": "maybe"}, [], "MICRO_BROKER_JETSTREAM"),
    ],
)
def test_a_bad_value_names_where_it_came_from(
    environ: dict[str, str], argv: list[str], where: str
) -> None:
    with pytest.raises(SettingsError, match=f"^{where}: "):
        load(environ=environ, flags=parse_flags(argv))


def test_an_empty_env_var_is_unset_unless_empty_means_something() -> None:
    s = load(environ={"MICRO_REGISTRY": "", "MICRO_API_NAMESPACE": ""})
    assert s["registry"] == "mdns"
    assert s["api_namespace"] == ""  # "" reaches bare service names


def test_jetstream_is_chosen_without_code() -> None:
    settings = load(
        groups=BACKEND_GROUPS,
        environ={"MICRO_BROKER": "nats", "MICRO_BROKER_JETSTREAM": "true"},
    )
    broker = plugins.create_broker(settings=settings)
    assert broker.name == "nats"
    assert "durable" in broker.capabilities  # JetStream's, not core NATS's


_ALLOWED_ENV_READERS = {
    "settings.py": "the table itself",
    "toolkit/cli/reload.py": "passes PYTHONPATH and the given options to the child it runs",
    "registry/kubernetes.py": "KUBERNETES_SERVICE_HOST: the in-cluster convention",
    "observability/_env.py": "OTEL_*: OpenTelemetry's own variables",
}


def _reads_environment(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def test_nothing_but_the_entry_points_reads_the_environment() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel in _ALLOWED_ENV_READERS or rel.startswith("testing/"):
            continue
        for line in _reads_environment(ast.parse(path.read_text())):
            offenders.append(f"{rel}:{line}")
    assert offenders == []


SERVICE = """
import micro
service = micro.Service("exits")
service.run()
"""


def run_service(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "exits.py"
    script.write_text(SERVICE)
    environ = {"PATH": "/usr/bin:/bin", "MICRO_MDNS_INTERFACES": "127.0.0.1", **env}
    environ.setdefault("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
    return subprocess.run(
        [sys.executable, str(script), *args], env=environ, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--registry", "zookeeper"], {}, "unknown registry 'zookeeper'"),
        ([], {"MICRO_REGISTER_TTL": "soon"}, "MICRO_REGISTER_TTL: "),
        (["--transport", "memory", "--server-address", "nowhere"], {}, "nowhere"),
    ],
)
def test_a_configuration_error_is_one_line_and_status_2(
    tmp_path: Path, args: list[str], env: dict[str, str], words: str
) -> None:
    done = run_service(tmp_path, *args, **env)
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "error:" in line]
    assert line.startswith("exits.py: error: ")
    assert words in line
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_one_line_and_status_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_service(tmp_path, MICRO_SERVER_ADDRESS=f"127.0.0.1:{port}")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("exits.py: error: ")
    assert str(port) in done.stderr.strip().splitlines()[-1]


def test_the_service_transports_limits_are_settings() -> None:
    environ = {"MICRO_TRANSPORT_IDLE_TIMEOUT": "5s", "MICRO_TRANSPORT_MAX_CONNECTIONS": "50"}
    transport = plugins.create("transport", settings=load(environ=environ))
    assert isinstance(transport, HttpTransport)
    assert (transport.idle_timeout, transport.max_connections) == (5.0, 50)
