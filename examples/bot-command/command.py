"""A ``micro bot`` command service: ``go.micro.bot.roll`` answers ``roll [sides]``.

python examples/bot-command/command.py          # registers over mDNS, serves until Ctrl-C
micro bot --inputs terminal                     # then type: help, roll, roll 20

The bot finds every service named ``go.micro.bot.<word>`` (``--namespace`` changes the
prefix), asks it ``Command.Help`` and, for a message starting with ``<word>``, calls
``Command.Exec`` with the message's words. These are go-micro's message shapes, so a Go bot
can use this service too: ``result`` is bytes (base64 in JSON), ``error`` a text that the bot
shows as ``error executing cmd: <error>``.
"""

from __future__ import annotations

import logging
import random

from msgspec import Struct

import micro


class HelpRequest(Struct):
    pass


class HelpResponse(Struct):
    usage: str = ""
    description: str = ""


class ExecRequest(Struct):
    args: list[str] = []


class ExecResponse(Struct):
    result: bytes = b""
    error: str = ""


class Command:
    async def help(self, req: HelpRequest) -> HelpResponse:
        """How to use the command, for the bot's help."""
        return HelpResponse(usage="roll [sides]", description="Rolls a die (6 sides unless told)")

    async def exec(self, req: ExecRequest) -> ExecResponse:
        """Run the command: ``args`` are the message's words, ``roll`` first."""
        text = req.args[1] if len(req.args) > 1 else "6"
        if not text.isdigit() or int(text) < 1:
            return ExecResponse(error=f"sides must be a positive number, got {text!r}")
        return ExecResponse(result=f"rolled {random.randint(1, int(text))}".encode())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = micro.Service("go.micro.bot.roll", version="1.0.0")
    service.handle(Command())
    service.run()


if __name__ == "__main__":
    main()
