"""``micro bot`` (and ``python -m micro.toolkit.bot``): settings, inputs, run."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from micro.settings import BOT_GROUPS, Settings, SettingsError
from micro.toolkit._app_cli import app_parser, read_app_settings

if TYPE_CHECKING:
    from micro.toolkit.bot.input import Input

__all__ = ["main"]

log = logging.getLogger("micro.bot")

EPILOG = """examples:
  micro bot --inputs terminal
  echo 'list services' | micro bot --inputs terminal
  MICRO_BOT_INPUTS=terminal micro bot --admins alice --disable register,deregister
"""


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, str] | None = None,
) -> int:
    """Run the bot until its inputs end; the exit code (2: bad settings or inputs)."""
    from micro.toolkit.bot.input import INPUTS, create_input

    parser = app_parser(
        "micro bot", BOT_GROUPS, description="A chat bot running micro's commands.",
        epilog=EPILOG,
    )  # fmt: skip
    try:
        settings = read_app_settings(parser, BOT_GROUPS, argv, environ, given)
    except SettingsError as exc:
        print(f"micro bot: {exc}", file=sys.stderr)
        return 2
    problem = _check(settings)
    if problem:
        print(f"micro bot: {problem}", file=sys.stderr)
        return 2
    names = list(settings["bot_inputs"])
    if not names:
        known = ", ".join(sorted(INPUTS))
        print(f"micro bot: no inputs; use --inputs (one of: {known})", file=sys.stderr)
        return 2
    inputs: list[Input] = []
    for name in names:
        try:
            inputs.append(create_input(name, settings))
        except ValueError as exc:
            print(f"micro bot: {exc}", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=str(settings["bot_log_level"]).upper(), format="%(asctime)s %(name)s %(message)s"
    )
    return _run(settings, inputs)


def _check(settings: Settings) -> str | None:
    """What is wrong with the bot's own settings, if anything."""
    from micro.toolkit.bot.commands import USAGE

    if not float(settings["bot_timeout"]) > 0:
        return "--timeout must be positive"
    if not str(settings["bot_namespace"]).strip("."):
        return "--namespace must not be empty"
    unknown = [w for w in settings["bot_disable"] if w not in USAGE or w == "help"]
    if unknown:  # a typo would leave the command on
        known = ", ".join(w for w in USAGE if w != "help" and " " not in w)
        return f"--disable: unknown command {unknown[0]!r} (one of: {known})"
    return None


def _run(settings: Settings, inputs: list[Input]) -> int:
    from micro.service import run_loop
    from micro.toolkit.bot.dispatch import Bot
    from micro.toolkit.cli.app import CliError
    from micro.toolkit.cli.runtime import Runtime

    async def serve() -> None:
        async with Runtime(settings) as rt:
            await _until_signalled(Bot(rt, inputs, settings).run())

    try:
        run_loop(serve())
    except CliError as exc:
        print(f"micro bot: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    return 0


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; SIGTERM or SIGINT cancels it, so the bot closes its inputs (an XMPP
    logout, Slack's socket closed) and the process exits 0."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    signalled = False

    def stop() -> None:
        nonlocal signalled
        signalled = True
        log.info("stopping on a signal")
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not signalled:
            raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
