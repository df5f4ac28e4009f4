"""The command tree: help, start-up cost, suggestions, one-line errors (no services needed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from micro.toolkit.cli.app import CliError, build_parser
from micro.toolkit.cli.runtime import parse_metadata, read_json, read_json_docs, split_line
from tests.toolkit.cli.conftest import MICRO, base_env, free_port, micro

HEAVY = ("rich", "prompt_toolkit", "watchfiles", "micro.client", "micro.registry", "asyncio")


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("argv", [["--help"], ["list", "services", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    cmd = [sys.executable, "-X", "importtime", "-m", "micro.toolkit.cli", *argv]
    done = subprocess.run(cmd, env=base_env(), capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert not [m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY], imported
    assert "example" in done.stdout


@pytest.mark.integration
@pytest.mark.parametrize("argv", [["--help"], ["list", "services", "--help"]])
def test_help_starts_fast(argv: list[str]) -> None:
    best = min(_timed([MICRO, *argv]) for _ in range(3))
    assert best < 0.6, f"micro {' '.join(argv)} took {best:.3f}s"  # target 0.3 s, 2x slack


def _timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=base_env(), capture_output=True, check=True)
    return time.perf_counter() - started


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text
    assert f"micro {command}" in text or command in ("ls", "services")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["lst"], "unknown command 'lst'; did you mean 'list'?"),
        (["cal", "x", "y"], "did you mean 'call'?"),
        (["list", "servces"], "unknown choice 'servces'; did you mean 'services'?"),
        (["get", "services", "x"], "did you mean 'service'?"),
    ],
)
def test_unknown_names_suggest_the_closest(argv: list[str], expected: str) -> None:
    with pytest.raises(CliError, match="did you mean") as err:
        build_parser().parse_args(argv)
    assert expected in str(err.value)
    assert err.value.code == 2


@pytest.mark.integration
def test_unknown_command_exits_2_with_one_line() -> None:
    done = micro("helth", "greeter")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "did you mean 'health'?" in done.stderr


@pytest.mark.integration
def test_version() -> None:
    import micro as pkg

    done = micro("--version")
    assert done.returncode == 0
    assert pkg.__version__ in done.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--registry", "nope", "list", "services"], "unknown registry 'nope'; known:"),
        (["--transport", "nope", "call", "x", "X.Y"], "unknown transport 'nope'"),
        (["call", "x", "X.Y", "--timeout", "soon"], "timeout: invalid duration 'soon'"),
        (["call", "x", "X.Y", "-m", "novalue"], "metadata must be key=value"),
        (["call", "x", "X.Y", "@/nonexistent.json"], "cannot read /nonexistent.json"),
        (["register", "service", '{"name": "x"}'], "invalid service: x has no nodes"),
        (["register", "service", "[1]"], "invalid service: expected an object"),
        (["list", "nodes"], "list nodes needs a service name"),
        (["web", "--namespace", ""], "micro web: namespace must not be empty"),
        (["--proxy-address", "h:1", "proxy"], "listens use --address"),
        (["bot"], "micro bot: no inputs; use --inputs (one of: hipchat, slack, terminal, xmpp)"),
        (
            ["bot", "--inputs", "irc"],
            "micro bot: unknown input 'irc' (known: hipchat, slack, terminal, xmpp)",
        ),
        (["bot", "--inputs", "terminal", "--timeout", "soon"], "invalid duration 'soon'"),
        (["bot", "--inputs", "terminal", "--timeout", "0"], "micro bot: --timeout must be"),
        (["bot", "--inputs", "terminal", "--namespace", ""], "--namespace must not be empty"),
        (["bot", "--inputs", "terminal", "--disable", "cal"], "unknown command 'cal'"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], error: str) -> None:
    done = micro(*argv)
    assert done.returncode != 0
    assert done.stdout == ""
    assert error in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.integration
def test_debug_shows_the_traceback() -> None:
    done = micro("--debug", "--registry", "nope", "list", "services")
    assert done.returncode != 0
    assert "Traceback" in done.stderr


@pytest.mark.integration
def test_unreachable_registry_names_registry_and_address() -> None:
    # an address that is on no interface here: mDNS cannot bind, nothing is sent
    env = base_env(MICRO_MDNS_INTERFACES="192.0.2.77")
    done = micro("list", "services", env=env)
    assert done.returncode == 1
    assert "cannot reach registry mdns on 192.0.2.77" in done.stderr


@pytest.mark.integration
def test_unreachable_etcd_names_its_address() -> None:
    port = free_port()
    done = micro(
        "--registry", "etcd", "--registry-address", f"127.0.0.1:{port}", "list", "services"
    )
    assert done.returncode == 1
    assert f"cannot reach registry etcd at 127.0.0.1:{port}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.integration
def test_output_env_var_and_bad_value() -> None:
    done = micro("list", "services", env=base_env(MICRO_OUTPUT="yaml"))
    assert done.returncode == 1
    assert "unknown output 'yaml'" in done.stderr


@pytest.mark.integration
def test_api_dispatches_to_the_gateway_cli() -> None:
    done = micro("api", "--help")
    if importlib.util.find_spec("micro.toolkit.api.cli") is None:
        assert done.returncode == 1
        assert "'micro api' is not available" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert "usage" in done.stdout.lower()


def test_read_json_reports_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"\(argument\) at line 1, column 10: Expecting value"):
        read_json('{"name": bob}')
    path = tmp_path / "req.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(CliError, match=r"req\.json\) at line 4, column 1"):
        read_json(f"@{path}")


def test_read_json_docs_reads_a_sequence() -> None:
    assert read_json_docs('{"a": 1}\n{"a": 2} [3]') == [{"a": 1}, {"a": 2}, [3]]
    assert read_json_docs("  \n") == []
    with pytest.raises(CliError, match="line 2, column 6"):
        read_json_docs('{"a": 1}\n{"a" 2}')


_JSON = '{"a": 1}'


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('call g S.H {"name": "J  S"}', ["call", "g", "S.H", '{"name": "J  S"}']),
        ("call -t 5 g S.H [1] -m k=v", ["call", "-t", "5", "g", "S.H", "[1]", "-m", "k=v"]),
        (f"stream c C {_JSON}  [2] -o json", ["stream", "c", "C", f"{_JSON}  [2]", "-o", "json"]),
        (f"micro publish t {_JSON}", ["micro", "publish", "t", _JSON]),
        ("call g S.H {a: 1} -t 5", ["call", "g", "S.H", "{a: 1} -t 5"]),  # bad: all of it
        (f"call g S.H {_JSON}x", ["call", "g", "S.H", f"{_JSON}x"]),
        (f"call g S.H '{_JSON}' @x.json", ["call", "g", "S.H", _JSON, "@x.json"]),
        (f"get service {_JSON}", ["get", "service", "{a:", "1}"]),  # only call, stream, publish
        ('call g S.H "" -', ["call", "g", "S.H", "", "-"]),
        ("  ", []),
    ],
)  # fmt: skip
def test_split_line_takes_unquoted_json_as_typed(line: str, words: list[str]) -> None:
    assert split_line(line) == words


def test_split_line_reports_an_unclosed_quote() -> None:
    with pytest.raises(CliError, match="cannot parse the line") as caught:
        split_line("call g S.H '{")
    assert caught.value.code == 2


def test_parse_metadata() -> None:
    assert parse_metadata(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(CliError):
        parse_metadata(["=1"])


def test_json_output_is_one_document_for_structs() -> None:
    from msgspec import Struct

    from micro.toolkit.cli.output import dump_json

    class Point(Struct):
        x: int

    assert json.loads(dump_json({"p": Point(1), "b": b"hi", "raw": b"\xff"})) == {
        "p": {"x": 1},
        "b": "hi",
        "raw": "ff",
    }
