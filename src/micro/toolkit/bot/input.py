"""What a chat input is: connect, a stream of text events, a reply to one, close.

A new input (XMPP, Slack...) is one module beside this one with an :class:`Input` subclass,
named in :data:`INPUTS`; ``micro bot --inputs <name>`` then runs it.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["INPUTS", "Event", "Input", "create_input"]

INPUTS = {
    "terminal": "micro.toolkit.bot.terminal:TerminalInput",
    "slack": "micro.toolkit.bot.slack:SlackInput",
    "xmpp": "micro.toolkit.bot.xmpp:XmppInput",
    "hipchat": "micro.toolkit.bot.xmpp:HipChatInput",
}
"""Input name -> ``module:Class``, imported only when that input is asked for."""


@dataclass(frozen=True)
class Event:
    """One incoming text message: its text, who sent it and where (a room, a DM...)."""

    text: str
    sender: str
    channel: str = ""
    meta: dict[str, str] = field(default_factory=dict)


class Input(abc.ABC):
    """A chat connection the bot reads commands from and answers on.

    Lifecycle: ``connect()``, then iterate ``events()`` until it ends (the input closed or
    its source ended), answering with ``send()``; ``close()`` last (never raises).
    """

    name: ClassVar[str] = "input"
    code_blocks: ClassVar[bool] = False
    """Whether replies put JSON and tables in Markdown code blocks (chat clients show them
    as such; a terminal does not)."""
    hint_unknown: ClassVar[bool] = False
    """Whether an unknown command gets a short hint (else no reply, as go-micro's bot)."""
    max_chars: ClassVar[int | None] = None
    """Longest message the chat takes well; a longer reply is sent in parts (``None``: any
    length)."""

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Input:
        """The input configured by the bot's settings (default: made with no arguments)."""
        return cls()

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect to the chat server (or open the local stream)."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[Event]:
        """The incoming text messages, until the input closes or its source ends."""

    @abc.abstractmethod
    async def send(self, event: Event, reply: str) -> None:
        """Answer ``event`` (in its channel, to its sender) with ``reply``."""

    async def close(self) -> None:
        """Disconnect; never raises."""

    def default_users(self) -> tuple[str, ...] | None:
        """Who is allowed when no allow-list is set; ``None``: everyone who can write here."""
        return None


def create_input(name: str, settings: Mapping[str, Any] | None = None) -> Input:
    """The input called ``name``, configured by ``settings`` (the bot's).

    Raises:
        ValueError: no input has that name (the message lists the known ones).
    """
    target = INPUTS.get(name)
    if target is None:
        raise ValueError(f"unknown input {name!r} (known: {', '.join(sorted(INPUTS))})")
    module, _, cls = target.partition(":")
    made: Input = getattr(importlib.import_module(module), cls).from_settings(settings or {})
    return made
