"""``micro proto``: a running greeter's .proto over mDNS, compiled with protoc."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from micro.grpc._protogen import from_specs
from micro.server.handler import introspect
from tests.grpc.proto import rich_service
from tests.toolkit.cli.conftest import GREETER, base_env, micro, unique, wait_registered

pytestmark = pytest.mark.integration

RICH = Path(rich_service.__file__)


def serve(script: Path, prefix: str) -> Iterator[str]:
    """One real service process (its name is unique: mDNS is shared); yields its name."""
    name = unique(prefix)
    proc = subprocess.Popen(
        [sys.executable, str(script), "--server_name", name],
        env=base_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_registered(name)
        yield name
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def greeter() -> Iterator[str]:
    yield from serve(GREETER, "greeter")


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    yield from serve(RICH, "shop")


def compile_proto(source: str, name: str, tmp_path: Path) -> Any:
    """protoc the text to Python and import the module it writes."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path}",
            f"--python_out={tmp_path}",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    module_path = tmp_path / (name.removesuffix(".proto") + "_pb2.py")
    spec = importlib.util.spec_from_file_location(f"gen_{tmp_path.name}", module_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_proto_of_a_running_service_compiles_with_the_registry_fields(
    greeter: str, tmp_path: Path
) -> None:
    done = micro("proto", greeter)
    assert done.returncode == 0, done.stderr
    package = greeter.replace("-", "_")
    assert f"package {package};" in done.stdout
    assert "rpc SayHello(HelloRequest) returns (HelloResponse);" in done.stdout

    module = compile_proto(done.stdout, package + ".proto", tmp_path)
    service = module.DESCRIPTOR.services_by_name["Greeter"]
    assert [m.name for m in service.methods] == ["SayHello"]

    listed = micro("-o", "json", "get", "service", greeter)
    [svc] = json.loads(listed.stdout)
    [endpoint] = [e for e in svc["endpoints"] if e["name"] == "Greeter.SayHello"]
    for side, message in (("request", "HelloRequest"), ("response", "HelloResponse")):
        registry_fields = [v["name"] for v in endpoint[side]["values"]]
        descriptor = module.DESCRIPTOR.message_types_by_name[message]
        assert [f.json_name for f in descriptor.fields] == registry_fields
        assert [f.number for f in descriptor.fields] == list(range(1, len(registry_fields) + 1))


def test_package_option_and_json_output(greeter: str, tmp_path: Path) -> None:
    done = micro("-o", "json", "proto", greeter, "--package", "greeter.v1")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["name"] == "greeter/v1.proto"
    assert made["services"] == ["greeter.v1.Greeter"]
    module = compile_proto(made["source"], made["name"], tmp_path)
    assert module.DESCRIPTOR.package == "greeter.v1"


def test_unknown_service_is_one_clear_line() -> None:
    name = unique("nosuch")
    done = micro("proto", name)
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines == [f"micro: service not found: {name}"]


def test_help_describes_the_command() -> None:
    done = micro("proto", "--help")
    assert done.returncode == 0
    assert "--package" in done.stdout
    assert "micro proto greeter" in done.stdout


def test_rich_types_over_the_registry_match_the_in_process_file(shop: str, tmp_path: Path) -> None:
    done = micro("proto", shop, "--package", "shop")
    assert done.returncode == 0, done.stderr
    local = from_specs("shop", introspect(rich_service.Shop())).source()
    # the registry says only that a stream streams: both of its sides are written streaming
    assert done.stdout == local.replace("rpc Track(Order)", "rpc Track(stream Order)")
    module = compile_proto(done.stdout, "shop.proto", tmp_path)
    order = module.DESCRIPTOR.message_types_by_name["Order"]
    assert [f.json_name for f in order.fields] == list(rich_service.Order.__struct_fields__)
    assert order.fields_by_name["customer_name"].json_name == "customerName"
    assert order.fields_by_name["items"].message_type.name == "Item"
    assert order.fields_by_name["prices"].message_type.GetOptions().map_entry
    assert order.fields_by_name["color"].enum_type.name == "Color"
    methods = module.DESCRIPTOR.services_by_name["Shop"].methods_by_name
    assert methods["Chat"].client_streaming
    assert methods["Chat"].server_streaming
    assert methods["Ping"].input_type.full_name == "google.protobuf.Empty"
