"""The dashboard's terminal: ``POST /_/terminal {"line": "..."}`` -> ``{"output", "code"}``.

A line runs through ``micro cli``'s own parser and command coroutines (list, get, call,
stream, publish, health, stats, register, deregister, services), over the dashboard's
registry and client, so the output is the same, as plain text (no colour codes). Each
request captures its own output (:func:`micro.toolkit.cli.output.captured`), so several
browsers can use it at once. Commands that only make sense in a shell (``quit``, ``new``,
``run``, the toolkit apps...) are refused with one line; each command gets
``COMMAND_TIMEOUT`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from micro.errors import BadRequest, MicroError
from micro.settings import Settings, load
from micro.toolkit.cli.app import CLI_GROUPS, CliError, build_parser, given_flags
from micro.toolkit.cli.commands import execute
from micro.toolkit.cli.output import captured
from micro.toolkit.cli.runtime import Runtime, one_line, split_line
from micro.toolkit.web._context import WEB_ID, Dashboard, handler, json_object, send_json

__all__ = ["COMMAND_TIMEOUT", "HELP", "REFUSED", "Terminal", "routes"]

COMMAND_TIMEOUT = 60.0
"""Seconds a command may run."""
MAX_LINE = 64 * 1024
"""Longest line accepted (a call's JSON request included)."""
REFUSED = {
    "quit": "there is no shell to leave here",
    "exit": "there is no shell to leave here",
    "new": "it writes a project on the dashboard's machine",
    "run": "it starts a process on the dashboard's machine",
    "cli": "this page is the shell",
    "web": "it is a server of its own",
    "api": "it is a server of its own",
    "proxy": "it is a server of its own",
    "bot": "it is a server of its own",
}
HELP = """commands (each takes --help):
  list services | list nodes <service> | services
  get service <service>
  call <service> <endpoint> [json]        stream <service> <endpoint> [json]
  publish <topic> [json]                  health <service>   stats <service>
  register service <json>                 deregister service <json>
  help
options: -o json (JSON output), -t/--timeout, -m/--metadata K=V, -a/--address host:port
not here: quit, exit, new, run, cli, web, api, proxy, bot (run them in a shell)"""
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


class _SharedRuntime(Runtime):
    """A :class:`Runtime` over the dashboard's registry and client (it owns neither)."""

    def __init__(self, dash: Dashboard) -> None:
        super().__init__(dash.settings)
        self.registry = dash.registry
        self._client = dash.client

    async def __aexit__(self, *exc: object) -> None:
        return None


class Terminal:
    """Runs lines for one dashboard, over one runtime."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self.runtime = _SharedRuntime(dash)
        self.parser = build_parser()
        self.parser.prog = ""

    async def run(self, line: str) -> tuple[str, int]:
        """``(output, exit code)`` of one line."""
        with captured() as buffer:
            code = await self._run(line.strip())
        return _plain(buffer.getvalue()), code

    async def _run(self, line: str) -> int:
        if not line:
            return 0
        if line in ("help", "?"):
            print(HELP)
            return 0
        try:
            args = self._parse(line)
            if args is None:  # --help printed its text
                return 0
            if args.command is None:
                print(HELP)
                return 0
            async with asyncio.timeout(COMMAND_TIMEOUT):
                return await execute(self.runtime, args)
        except CliError as exc:
            print(f"error: {exc}")
            return exc.code
        except MicroError as exc:
            print(f"error: {exc.detail or exc}")
            return 1
        except TimeoutError:
            print(f"error: the command did not finish within {COMMAND_TIMEOUT:g}s")
            return 124
        except Exception as exc:  # the terminal survives a failing command
            print(f"error: {one_line(exc).replace(' (--debug shows the traceback)', '')}")
            return 1

    def _parse(self, line: str) -> argparse.Namespace | None:
        words = split_line(line)
        if words and words[0] == "micro":
            words = words[1:]
        if words and words[0] in REFUSED:
            raise CliError(
                f"'{words[0]}' does not run in the web terminal: {REFUSED[words[0]]}", code=2
            )
        try:
            args = self.parser.parse_args(words)
        except SystemExit:
            return None
        if args.command in REFUSED:  # an alias or abbreviation that argparse expanded
            raise CliError(f"'{args.command}' does not run in the web terminal", code=2)
        args.settings = self._settings(args)
        return args

    def _settings(self, args: argparse.Namespace) -> Settings:
        """The dashboard's settings, with the line's own options (``-o json``...) on top."""
        from micro.settings import SettingsError

        try:
            line = load(groups=CLI_GROUPS, flags=given_flags(args), environ={})
        except SettingsError as exc:
            raise CliError(str(exc), code=2) from None
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        base = self.dash.settings
        for name in line:
            if line.source(name) == "default" and name in base:
                values[name], sources[name] = base[name], base.source(name)
            else:
                values[name], sources[name] = line[name], line.source(name)
        return Settings(values, sources)


def _plain(text: str) -> str:
    """Output without colour codes or trailing blank space."""
    lines = [line.rstrip() for line in _ANSI.sub("", text).splitlines()]
    return "\n".join(lines).strip("\n")


def routes(dash: Dashboard) -> dict[str, ASGIApp]:
    """``POST /_/terminal``."""
    terminal: Terminal | None = None

    @handler("POST")
    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal terminal
        data = await json_object(dash, scope, receive)
        line = data.get("line")
        if not isinstance(line, str):
            raise BadRequest('missing line: {"line": "list services"}', id=WEB_ID)
        if len(line) > MAX_LINE or "\n" in line.strip():
            raise BadRequest(f"one line of at most {MAX_LINE} characters", id=WEB_ID)
        if terminal is None:
            terminal = Terminal(dash)
        output, code = await terminal.run(line)
        await send_json(send, {"output": output, "code": code})

    return {"/_/terminal": run}
