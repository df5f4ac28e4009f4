"""The ``xmpp`` input (and ``hipchat``, the same over HipChat's XMPP conventions).

The bot logs in as one account, answers direct chats, and joins the multi-user chat rooms it
is given, where it answers only messages addressed to its nick (``nick: cmd`` or
``nick cmd``). A lost connection is connected again (slixmpp retries with a growing pause);
the first connection must succeed within :data:`CONNECT_TIMEOUT` or the bot stops with one
line.

The sender the allow-list checks is the bare JID (``alice@example.org``); in a room, the
occupant's real bare JID when the room shows it to the bot, else ``room@server/nick``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from micro.toolkit.bot.input import Event, Input
from micro.toolkit.cli.app import CliError

__all__ = ["CONNECT_TIMEOUT", "HipChatInput", "XmppInput"]

log = logging.getLogger("micro.bot.xmpp")
CONNECT_TIMEOUT = 15.0
"""Seconds the first connection and login may take."""
TLS_MODES = ("starttls", "direct", "none")


class XmppInput(Input):
    """Direct chats and multi-user chat rooms of one XMPP account."""

    name = "xmpp"
    code_blocks = True
    max_chars = 8000  # well under the stanza limits servers set (Prosody: 256 KiB)
    prefix: ClassVar[str] = "xmpp"
    default_server: ClassVar[str] = ""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        p = self.prefix
        self.jid = str(settings.get(f"{p}_username") or "")
        self.password = str(settings.get(f"{p}_password") or "")
        self.server = str(settings.get(f"{p}_server") or self.default_server)
        self.rooms = tuple(settings.get(f"{p}_rooms") or ())
        self.nick = str(settings.get(f"{p}_nick") or self.jid.partition("@")[0])
        self.tls = str(settings.get("xmpp_tls") or "starttls").lower()
        self.ca_file = str(settings.get("xmpp_ca_file") or "")
        self.insecure = bool(settings.get("xmpp_insecure_skip_verify"))
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._client: Any = None
        self._closing = False
        self._session = False
        self._pause = 1.0
        self._settle: Any = lambda problem: None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Input:
        return cls(settings)

    # -- connecting ---------------------------------------------------------------------

    def _address(self) -> tuple[str, int]:
        host = self.server or self.jid.partition("@")[2].partition("/")[0]
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit() and not name.endswith(":"):
            return name.strip("[]"), int(port)
        return host, 5223 if self.tls == "direct" else 5222

    def _check(self) -> None:
        p = self.prefix.replace("_", "-")
        if "@" not in self.jid:
            raise CliError(f"{self.name}: --{p}-username must be the bot's JID (user@server)")
        if not self.password:
            raise CliError(f"{self.name}: --{p}-password is required")
        if self.tls not in TLS_MODES:
            raise CliError(f"{self.name}: --xmpp-tls must be one of {', '.join(TLS_MODES)}")

    async def connect(self) -> None:
        from slixmpp import ClientXMPP

        self._check()
        if not log.isEnabledFor(logging.DEBUG):  # its failures end up in our one line
            logging.getLogger("slixmpp").setLevel(logging.CRITICAL)
        client = self._client = ClientXMPP(self.jid, self.password)
        for plugin in ("xep_0030", "xep_0045", "xep_0199"):
            client.register_plugin(plugin)
        client.enable_direct_tls = self.tls == "direct"
        client.enable_starttls = self.tls == "starttls"
        client.enable_plaintext = self.tls == "none"
        client.plugin["feature_mechanisms"].unencrypted_plain = self.tls == "none"
        if self.ca_file:
            try:
                client.ssl_context.load_verify_locations(self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise CliError(
                    f"{self.name}: cannot read the CA file {self.ca_file}: {exc}"
                ) from None
        if self.insecure:
            client.ssl_context.check_hostname = False
            client.ssl_context.verify_mode = ssl.CERT_NONE
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[str | None] = loop.create_future()

        def settle(problem: str | None) -> None:
            if not ready.done():
                ready.set_result(problem)

        self._settle = settle

        async def session_start(_: Any) -> None:
            self._session, self._pause = True, 1.0
            client.send_presence()
            with contextlib.suppress(Exception):
                await client.get_roster(timeout=5)
            problem = await self._join_rooms()
            settle(problem)

        client.add_event_handler("session_start", session_start)
        client.add_event_handler("failed_all_auth", lambda _: settle(self._auth_failed()))
        client.add_event_handler("connection_failed", lambda e: self._failed(settle, e))
        client.add_event_handler("ssl_invalid_chain", self._untrusted)
        client.add_event_handler("message", self._on_message)
        client.add_event_handler("groupchat_message", self._on_groupchat)
        client.add_event_handler("disconnected", self._on_disconnected)
        host, port = self._address()
        client.connect(host, port)
        try:
            problem = await asyncio.wait_for(ready, CONNECT_TIMEOUT)
        except TimeoutError:
            problem = f"no session within {CONNECT_TIMEOUT:g}s (is --xmpp-tls right?)"
        if problem is not None:
            await self.close()
            raise CliError(f"{self.name}: cannot connect to {host}:{port} as {self.jid}: {problem}")
        log.info("connected to %s:%d as %s", host, port, self.jid)

    def _auth_failed(self) -> str:
        transport = self._client.transport if self._client is not None else None
        if self.tls != "none" and transport and transport.get_extra_info("ssl_object") is None:
            return "the server offers no TLS (--xmpp-tls none allows plaintext)"
        return "authentication failed"

    def _failed(self, settle: Any, error: Any) -> None:
        if self._client is not None and not self._client.authenticated:
            settle(str(error) or "connection failed")

    async def _join_rooms(self) -> str | None:
        from slixmpp import JID

        muc = self._client.plugin["xep_0045"]
        for room in self.rooms:
            try:
                await muc.join_muc_wait(JID(room), self.nick, maxstanzas=0, timeout=10)
            except Exception as exc:  # slixmpp raises its own types (timeouts, errors)
                return f"cannot join {room}: {exc!r}"
        return None

    def _untrusted(self, error: Any) -> None:
        problem = (
            f"the server's certificate is not trusted ({error}); "
            "--xmpp-ca-file or --xmpp-insecure-skip-verify"
        )
        if not self._session:
            self._settle(problem)
        else:
            log.error("%s: %s", self.name, problem)
        if self._client is not None:
            self._client.abort()

    def _on_disconnected(self, _: Any) -> None:
        if self._closing or self._client is None:
            return
        if not self._session:  # not logged in yet: the first connection fails
            # a moment later, so that a more precise reason (TLS, login) is the one said
            asyncio.get_running_loop().call_later(
                0.5, self._settle, "the server closed the connection before the login"
            )
            return
        log.warning("%s: connection lost, connecting again in %gs", self.name, self._pause)
        asyncio.get_running_loop().call_later(self._pause, self._reconnect)
        self._pause = min(self._pause * 2, 60.0)

    def _reconnect(self) -> None:
        if not self._closing and self._client is not None:
            self._client.connect(*self._address())

    # -- messages -----------------------------------------------------------------------

    def _on_message(self, msg: Any) -> None:
        if msg["type"] not in ("chat", "normal"):
            return
        text = str(msg["body"]).strip()
        if not text:
            return
        sender = msg["from"]
        self._queue.put_nowait(
            Event(text=text, sender=str(sender.bare), channel=str(sender.bare),
                  meta={"type": "chat", "to": str(sender)})
        )  # fmt: skip

    def _on_groupchat(self, msg: Any) -> None:
        nick = str(msg["mucnick"])
        room = str(msg["from"].bare)
        if not nick or nick == self.nick or msg["delay"]["stamp"]:
            return  # its own echo, the room's subject or history
        text = self.addressed(str(msg["body"]))
        if not text:
            return
        real = self._client.plugin["xep_0045"].get_jid_property(room, nick, "jid")
        sender = str(real.bare) if real else f"{room}/{nick}"
        self._queue.put_nowait(
            Event(text=text, sender=sender, channel=room, meta={"type": "groupchat", "to": room})
        )

    def addressed(self, body: str) -> str:
        """The command in a room message addressed to the bot's nick, else ``""``."""
        match = re.match(rf"\s*@?{re.escape(self.nick)}(?:[:,]|\s)\s*(.*)", body, re.I | re.S)
        return match.group(1).strip() if match else ""

    async def events(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event

    async def send(self, event: Event, reply: str) -> None:
        assert self._client is not None, "connect() first"
        from slixmpp import JID

        to = JID(event.meta.get("to", event.channel))
        mtype = event.meta.get("type", "chat")
        self._client.send_message(mto=to, mbody=reply, mtype=mtype)

    async def close(self) -> None:
        self._closing = True
        self._queue.put_nowait(None)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(wait=1.0), 3.0)
            with contextlib.suppress(Exception):
                client.abort()


class HipChatInput(XmppInput):
    """HipChat's XMPP: ``--hipchat-username`` (the JID), ``--hipchat-password``,
    ``--hipchat-server`` (chat.hipchat.com), the mention name as the nick."""

    name = "hipchat"
    prefix = "hipchat"
    default_server = "chat.hipchat.com"
