"""The ``micro`` command tree: argparse parser, global options, dispatch and error lines.

Only the standard library is imported here, so ``micro --help`` stays fast; every command
imports what it needs when it runs. Global options work before or after the command
(``micro -o json list services`` and ``micro list services -o json`` are the same), and each
one also reads its ``MICRO_*`` environment variable; flags beat env, env beats defaults.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from micro.settings import BACKEND_GROUPS, BY_NAME, SETTINGS, Settings, add_arguments, load

__all__ = ["CLI_GROUPS", "CliError", "build_parser", "cli_settings", "main", "run_args"]

CLI_GROUPS = (*BACKEND_GROUPS, "cli")
"""The settings the ``micro`` command takes as global options (see :mod:`micro.settings`)."""
TOOLKIT = {
    "api": "the API gateway (HTTP -> RPC)",
    "web": "the web dashboard",
    "proxy": "the proxy / sidecar",
    "bot": "the chat bot",
    "mcp": "the MCP server: every endpoint as a tool for AI agents",
}
_VALUE_FLAGS = {
    flag for s in SETTINGS if s.group in CLI_GROUPS and s.kind != "bool" for flag in s.flags
}

EXAMPLES = """\
examples:
  micro list services
  micro get service greeter
  micro call greeter Greeter.SayHello '{"name": "John"}'
  micro stream counter Counter.Count '{"to": 3}'
  micro publish user.created '{"id": 1}'
  micro health greeter
  micro proto greeter > greeter.proto
  micro --registry etcd --registry-address 127.0.0.1:2379 list services
  micro new helloworld && cd helloworld && micro run

Every global option also reads its MICRO_* environment variable (shown in brackets);
docs/configuration.md lists them all.
"""


class CliError(Exception):
    """A failure reported as one line on stderr, with an exit code (1 unless given)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and "did you mean" suggestions for unknown choices."""

    def error(self, message: str) -> NoReturn:
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            bad, choices = match.group(1), re.findall(r"'([^']*)'", match.group(2))
            what = "command" if message.startswith("argument command") else "choice"
            text = f"unknown {what} '{bad}'"
            close = difflib.get_close_matches(bad, choices, n=1, cutoff=0.5)
            text += f"; did you mean '{close[0]}'?" if close else f" (one of: {', '.join(choices)})"
            message = text
        raise CliError(f"{message} (see '{self.prog} --help')", code=2)


def _common() -> argparse.ArgumentParser:
    """The global options, shared by the main parser and every command."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    add_arguments(common, CLI_GROUPS)
    return common


def _sub(
    sub: Any, common: argparse.ArgumentParser, name: str, text: str, example: str, **kw: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=text,
        description=text[:1].upper() + text[1:] + ".",
        epilog="example" + ("s" if "\n" in example else "") + ":\n  " + example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        **kw,
    )
    return parser


def _call_options(cmd: argparse.ArgumentParser, stream: bool) -> None:
    cmd.add_argument("service", help="service name, e.g. greeter")
    cmd.add_argument("endpoint", help="Handler.Method, e.g. Greeter.SayHello")
    what = "JSON request(s) for a stream" if stream else "JSON request"
    cmd.add_argument(
        "request", nargs="?", default="{}", help=f"{what}, @file.json, or - for stdin ({{}})"
    )
    cmd.add_argument("-a", "--address", help="call this host:port instead of selecting a node")
    cmd.add_argument(
        "-t", "--timeout", help="seconds or a duration like 500ms (--client-request-timeout)"
    )
    cmd.add_argument("-r", "--retries", type=int, help="retries after the first attempt")
    cmd.add_argument(
        "-m", "--metadata", action="append", default=[], metavar="K=V", help="repeatable"
    )


def _registry_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    lst = _sub(
        sub, common, "list", "list services, or the nodes of one service",
        "micro list services\n  micro list nodes greeter", aliases=["ls"],
    )  # fmt: skip
    lst.add_argument("what", choices=["services", "nodes"])
    lst.add_argument("service", nargs="?", help="the service (for 'list nodes')")
    lst.set_defaults(command="list")
    svcs = _sub(sub, common, "services", "list services (= micro list services)", "micro services")
    svcs.set_defaults(command="list", what="services", service=None)
    get = _sub(sub, common, "get", "describe a service: versions, nodes, endpoints",
               "micro get service greeter")  # fmt: skip
    get.add_argument("what", choices=["service"])
    get.add_argument("service")
    proto = _sub(
        sub, common, "proto",
        "print a running service's endpoints as a .proto file (proto3, for protoc or buf)",
        "micro proto greeter > greeter.proto\n"
        "  micro proto go.micro.srv.greeter --package greeter.v1",
    )  # fmt: skip
    proto.add_argument("service", help="service name, e.g. greeter")
    proto.add_argument(
        "--package", help="protobuf package (default: the service name, as gRPC routes it)"
    )
    for name, text in (("register", "add"), ("deregister", "remove")):
        cmd = _sub(
            sub, common, name, f"{text} a service's nodes in the registry (go-micro JSON)",
            f"micro {name} service "
            """'{"name":"x","nodes":[{"id":"x-1","address":"127.0.0.1:9"}]}'""",
        )  # fmt: skip
        cmd.add_argument("what", choices=["service"])
        cmd.add_argument("definition", help="service JSON, @file.json or - for stdin")
        if name == "register":
            cmd.add_argument("--ttl", type=float, help="seconds the nodes live (default: forever)")


def _rpc_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    call = _sub(
        sub, common, "call", "call an endpoint and print its response",
        """micro call greeter Greeter.SayHello '{"name": "John"}'\n"""
        "  micro call greeter Greeter.SayHello @request.json -m user=alice --timeout 2s",
    )  # fmt: skip
    _call_options(call, stream=False)
    stream = _sub(
        sub, common, "stream", "open a stream, send the request(s), print each response",
        """micro stream counter Counter.Count '{"to": 3}'\n"""
        """  printf '{"text":"a"}\\n{"text":"b"}' | micro stream counter Counter.Echo -""",
    )  # fmt: skip
    _call_options(stream, stream=True)
    publish = _sub(sub, common, "publish", "publish a message to a topic",
                   """micro publish user.created '{"id": 1}'""")  # fmt: skip
    publish.add_argument("topic")
    publish.add_argument("message", nargs="?", default="{}", help="JSON, @file.json or -")
    publish.add_argument("-m", "--metadata", action="append", default=[], metavar="K=V")
    for name, text in (("health", "Debug.Health"), ("stats", "Debug.Stats")):
        cmd = _sub(sub, common, name, f"{text} of every node of a service",
                   f"micro {name} greeter")  # fmt: skip
        cmd.add_argument("service")
        cmd.add_argument("-t", "--timeout", default="2", help="seconds per node (default 2)")


def _tool_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    run = _sub(
        sub, common, "run",
        "run a service, restarting it when its files change, with the dashboard and API",
        "micro run\n  micro run service.py -- --server_name greeter\n"
        "  micro run --address 127.0.0.1:9000 helloworld",
    )  # fmt: skip
    run.add_argument(
        "target", nargs="?", default=".",
        help="a .py file, a package or project directory, or a module (default: here)",
    )  # fmt: skip
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the service")
    run.add_argument("--no-reload", action="store_true", help="run once, do not watch files")
    run.add_argument("--watch", action="append", default=[], help="directory to watch")
    run.add_argument(
        "--address", help="host:port of the dashboard and /api gateway (default 127.0.0.1:8083)"
    )
    run.add_argument(
        "--no-dashboard", action="store_true", help="serve no dashboard or gateway beside it"
    )
    new = _sub(sub, common, "new", "create a ready-to-run service project",
               "micro new helloworld\n  micro new billing --dir services/")  # fmt: skip
    new.add_argument("name", help="service name: lowercase letters, digits and dashes")
    new.add_argument("--dir", default=".", help="parent directory (default: here)")
    new.add_argument("--namespace", default="", help="prefix of the registered name")
    _sub(sub, common, "cli", "interactive shell with history and completion", "micro cli")
    for name, text in TOOLKIT.items():
        tool = _sub(sub, common, name, text, f"micro {name} --help")
        tool.add_argument("args", nargs=argparse.REMAINDER)


def build_parser() -> Parser:
    """The whole command tree (cheap: nothing beyond argparse is imported)."""
    common = _common()
    parser = Parser(
        prog="micro",
        description="Observe and drive micro services: list, inspect, call, publish, run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    _registry_commands(sub, common)
    _rpc_commands(sub, common)
    _tool_commands(sub, common)
    return parser


def given_flags(args: argparse.Namespace) -> dict[str, str]:
    """The global options given on the command line: ``setting name -> text``."""
    return {k: v for k, v in vars(args).items() if k in BY_NAME and isinstance(v, str)}


def cli_settings(args: argparse.Namespace) -> Settings:
    """The settings of the command: global options, else ``MICRO_*`` env, else defaults.

    Raises:
        CliError: a value does not parse (exit status 2, naming the option or variable).
    """
    from micro.settings import SettingsError

    try:
        return load(groups=CLI_GROUPS, flags=given_flags(args))
    except SettingsError as exc:
        raise CliError(str(exc), code=2) from None


def _is_debug(args: argparse.Namespace) -> bool:
    try:
        return bool(cli_settings(args)["debug"])
    except CliError:
        return False


def _command_index(argv: Sequence[str]) -> int:
    """Index of the first positional (the command), skipping global options and values."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            return i
        i += 2 if arg in _VALUE_FLAGS else 1
    return len(argv)


def _toolkit(argv: Sequence[str]) -> int | None:
    """Dispatch ``micro api|web|proxy|bot|mcp ...`` to its app, or None for other commands."""
    i = _command_index(argv)
    if i >= len(argv) or argv[i] not in TOOLKIT or "-h" in argv[:i] or "--help" in argv[:i]:
        return None
    args = _common().parse_args(argv[:i])
    cli_settings(args)  # fail on a bad value before the app starts
    name, rest = argv[i], list(argv[i + 1 :])
    given = given_flags(args)
    try:
        if name == "api":
            from micro.toolkit.api.cli import main as app_main
        elif name == "web":
            from micro.toolkit.web.cli import main as app_main
        elif name == "bot":
            from micro.toolkit.bot.cli import main as app_main
        elif name == "mcp":
            from micro.toolkit.mcp.cli import main as app_main
        else:
            from micro.toolkit.proxy.cli import WRONG_ADDRESS_FLAG
            from micro.toolkit.proxy.cli import main as app_main

            if "proxy_address" in given:  # the laptop's setting: here it would be ignored
                raise CliError(WRONG_ADDRESS_FLAG, code=2)
    except ImportError as exc:
        raise CliError(f"'micro {name}' is not available: {exc}") from None
    return int(app_main(rest, given=given) or 0)


def run_args(args: argparse.Namespace) -> int:
    """Run one parsed command (no error handling: see :func:`main`)."""
    from micro.toolkit.cli import commands

    args.settings = cli_settings(args)
    return commands.dispatch(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``micro`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    try:
        code = _toolkit(argv)
        if code is not None:
            return code
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.version:
            import micro

            print(f"micro {micro.__version__} (Python {sys.version.split()[0]})")
            return 0
        if args.command is None:
            parser.print_help()
            return 2
        return run_args(args)
    except CliError as exc:
        print(f"micro: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args is None or _is_debug(args):
            raise
        from micro.toolkit.cli.runtime import one_line

        print(f"micro: {one_line(exc)}", file=sys.stderr)
        return 1
