"""A local stand-in for Slack, written from Slack's published Web API and Socket Mode
documentation (no Slack is reachable from the tests): an aiohttp server on 127.0.0.1.

- ``POST /api/auth.test``: ``{"ok": true, "user_id": BOT_USER, ...}`` for the good bot
  token, ``{"ok": false, "error": "invalid_auth"}`` otherwise;
- ``POST /api/apps.connections.open``: for the good app token, ``{"ok": true, "url":
  "ws://127.0.0.1:<port>/link"}`` (the socket below);
- ``POST /api/chat.postMessage``: records the post (``posts``);
- ``GET /link``: the Socket Mode WebSocket: sends ``hello``, then each envelope given to
  :meth:`SlackStandIn.send_event` (``{"envelope_id", "type": "events_api", "payload":
  {"event": ...}, "accepts_response_payload": false}``) and records the client's acks.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-standin"
APP_TOKEN = "xapp-standin"
BOT_USER = "UBOT0001"


class SlackStandIn:
    """The server, run on a loop in a thread of its own so a test can drive a subprocess."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.acks: list[str] = []
        self.calls: list[str] = []
        self.auth_delay = 0.0
        """Seconds ``auth.test`` waits before answering (a Slack that does not answer)."""
        self.port = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._changed = threading.Condition()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/auth.test", self._auth_test)
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the Web API --------------------------------------------------------------------

    @staticmethod
    async def _form(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.json()
            return dict(body) if isinstance(body, dict) else {}
        return {k: str(v) for k, v in (await request.post()).items()}

    @staticmethod
    def _token(request: web.Request, form: dict[str, Any]) -> str:
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth else str(form.get("token", ""))

    def _note(self, name: str) -> None:
        with self._changed:
            self.calls.append(name)
            self._changed.notify_all()

    async def _auth_test(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        self._note("auth.test")
        await asyncio.sleep(self.auth_delay)
        if self._token(request, form) != BOT_TOKEN:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({
            "ok": True, "url": "https://standin.slack.com/", "team": "Stand-in",
            "user": "microbot", "team_id": "T0001", "user_id": BOT_USER, "bot_id": "B0001",
        })  # fmt: skip

    async def _connections_open(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        self._note("apps.connections.open")
        if self._token(request, form) != APP_TOKEN:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"})

    async def _post_message(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if self._token(request, form) != BOT_TOKEN:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        with self._changed:
            self.posts.append(form)
            self._changed.notify_all()
        ts = f"{len(self.posts)}.000100"
        return web.json_response({"ok": True, "channel": form.get("channel"), "ts": ts})

    # -- Socket Mode --------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({
            "type": "hello", "num_connections": 1,
            "debug_info": {"host": "standin", "approximate_connection_time": 3600},
            "connection_info": {"app_id": "A0001"},
        })  # fmt: skip
        self._note("hello")
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                body = json.loads(msg.data)
                if isinstance(body, dict) and "envelope_id" in body:
                    with self._changed:
                        self.acks.append(str(body["envelope_id"]))
                        self._changed.notify_all()
        finally:
            self._sockets.remove(ws)
        return ws

    def send_event(self, event: dict[str, Any]) -> str:
        """Send one ``events_api`` envelope carrying ``event``; its envelope ID."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "payload": {
                "token": "verification", "team_id": "T0001", "api_app_id": "A0001",
                "type": "event_callback", "event_id": "Ev" + envelope_id[:8],
                "event_time": 1700000000, "event": event,
            },
        }  # fmt: skip

        async def send() -> None:
            for ws in self._sockets:
                await ws.send_json(envelope)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)
        return envelope_id

    # -- waiting ------------------------------------------------------------------------

    def wait_for(self, check: Any, timeout: float = 15.0) -> Any:
        """Wait until ``check()`` is truthy (re-checked on every post, ack or call)."""
        with self._changed:
            found = self._changed.wait_for(check, timeout)
        assert found, f"not within {timeout}s; posts={self.posts} acks={self.acks}"
        return found
