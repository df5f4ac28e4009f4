"""The ``slack`` input: Slack over Socket Mode (no public URL needed), on slack-sdk.

It answers direct messages and channel messages that mention the bot (the mention is
stripped), in the thread they were asked in; every envelope is acknowledged; its own and
other bots' messages are ignored. Senders are Slack user IDs (``U...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

from micro.toolkit.bot.input import Event, Input
from micro.toolkit.cli.app import CliError

__all__ = ["SlackInput", "parse_event"]

log = logging.getLogger("micro.bot.slack")
CONNECT_TIMEOUT = 15.0
"""Longest wait for ``auth.test``, ``apps.connections.open`` and the WebSocket."""
SEEN = 256
"""Messages remembered, so one seen both as ``message`` and ``app_mention`` answers once."""
_UNESCAPE = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def parse_event(event: Mapping[str, Any], bot_user: str) -> Event | None:
    """The command in a Slack ``message`` or ``app_mention`` event, or ``None`` to ignore it.

    Kept: a person's direct message (channel type ``im``, or a channel ID starting with
    ``D``), and a person's message elsewhere that mentions ``<@bot_user>`` (stripped).
    Ignored: other event types, edits and other subtypes, bots' messages (its own too).
    """
    if event.get("type") not in ("message", "app_mention"):
        return None
    user = event.get("user")
    if not isinstance(user, str) or not user or user == bot_user:
        return None
    if event.get("subtype") or event.get("bot_id") or event.get("bot_profile"):
        return None
    text = event.get("text")
    channel = event.get("channel")
    if not isinstance(text, str) or not isinstance(channel, str) or not channel:
        return None
    direct = event.get("channel_type") == "im" or channel.startswith("D")
    mention = re.compile(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>")  # <@U1> or <@U1|name>
    if not direct and not mention.search(text):
        return None
    text = mention.sub(" ", text)
    for escaped, plain in _UNESCAPE:  # Slack escapes these three in message text
        text = text.replace(escaped, plain)
    text = " ".join(text.split())
    if not text:
        return None
    ts = str(event.get("ts") or "")
    thread = str(event.get("thread_ts") or ("" if direct else ts))
    return Event(text=text, sender=user, channel=channel, meta={"ts": ts, "thread_ts": thread})


def _api_error(exc: Any) -> str:
    """What a ``SlackApiError`` says: the API's ``error``, else the HTTP status."""
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"HTTP {status}" if status else str(exc)


class SlackInput(Input):
    """A Slack app in Socket Mode: the bot token for the Web API, the app token for the
    socket (``slack_token``, ``slack_app_token``, ``slack_api_url`` settings)."""

    name = "slack"
    code_blocks = True
    max_chars = 3900  # Slack advises under 4,000 characters a message (it cuts at 40,000)

    def __init__(self) -> None:
        self.token = ""
        self.app_token = ""
        self.api_url = "https://slack.com/api/"
        self.bot_user = ""
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._seen: deque[tuple[str, str]] = deque(maxlen=SEEN)
        self._web: Any = None
        self._socket: Any = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SlackInput:
        made = cls()
        made.token = str(settings.get("slack_token") or "")
        made.app_token = str(settings.get("slack_app_token") or "")
        made.api_url = str(settings.get("slack_api_url") or made.api_url)
        return made

    async def connect(self) -> None:
        """Check the bot token (``auth.test``), open the socket; one clear error if not.

        Raises:
            CliError: a token is missing or refused, or Slack does not answer in time.
        """
        import aiohttp
        from slack_sdk.errors import SlackApiError, SlackClientError
        from slack_sdk.socket_mode.aiohttp import SocketModeClient
        from slack_sdk.web.async_client import AsyncWebClient

        if not self.token:
            raise CliError("slack: no bot token; set --slack-token or MICRO_SLACK_TOKEN (xoxb-...)")
        if not self.app_token:
            raise CliError(
                "slack: no app-level token; set --slack-app-token or MICRO_SLACK_APP_TOKEN "
                "(xapp-..., with connections:write)"
            )
        url = self.api_url if self.api_url.endswith("/") else self.api_url + "/"
        self._web = web = AsyncWebClient(
            token=self.token, base_url=url, timeout=int(CONNECT_TIMEOUT)
        )
        step = "auth.test"
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                auth = await web.auth_test()
                self.bot_user = str(auth.get("user_id") or "")
                step = "apps.connections.open"
                opened = await web.apps_connections_open(app_token=self.app_token)
                step = "the Socket Mode connection"
                socket = SocketModeClient(self.app_token, web_client=web, logger=log)
                self._socket = socket
                socket.wss_uri = str(opened["url"])
                socket.socket_mode_request_listeners.append(self._on_request)
                await socket.connect()  # type: ignore[no-untyped-call]
        except SlackApiError as exc:
            raise CliError(f"slack: {step} failed: {_api_error(exc)}") from None
        except TimeoutError:
            raise CliError(f"slack: {step}: no answer within {CONNECT_TIMEOUT:g}s") from None
        except (OSError, ValueError, KeyError, SlackClientError, aiohttp.ClientError) as exc:
            raise CliError(f"slack: {step} failed: {exc}") from None
        if not self.bot_user:
            raise CliError("slack: auth.test did not say who the bot is (no user_id)")

    async def _on_request(self, client: Any, request: Any) -> None:
        """Ack every envelope, then queue the command in an ``events_api`` one, if any."""
        from slack_sdk.socket_mode.response import SocketModeResponse

        try:
            await client.send_socket_mode_response(
                SocketModeResponse(envelope_id=request.envelope_id)
            )
        except Exception:  # the envelope comes again; it must not stop the bot
            log.exception("cannot acknowledge envelope %s", request.envelope_id)
        if request.type != "events_api" or not isinstance(request.payload, dict):
            return
        event = request.payload.get("event")
        if not isinstance(event, dict):
            return
        parsed = parse_event(event, self.bot_user)
        if parsed is None:
            return
        key = (parsed.channel, parsed.meta["ts"])
        if parsed.meta["ts"] and key in self._seen:
            return
        self._seen.append(key)
        self._queue.put_nowait(parsed)

    async def events(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event

    async def send(self, event: Event, reply: str) -> None:
        if not reply.strip() or self._web is None:
            return
        thread = event.meta.get("thread_ts") or None
        await self._web.chat_postMessage(channel=event.channel, text=reply, thread_ts=thread)

    async def close(self) -> None:
        self._queue.put_nowait(None)
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
            self._socket = None
