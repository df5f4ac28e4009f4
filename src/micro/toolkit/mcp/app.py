"""``McpGateway``: the MCP server of a micro environment, over stdio or Streamable HTTP.

It is built on the official MCP SDK's low-level ``Server``: ``tools/list`` answers from the
:class:`~micro.toolkit.mcp.tools.ToolIndex` (a registry watch), ``tools/call`` runs the
RPC through ``micro.Client`` (:mod:`.calls`). When the tool set changes, clients hear it in
both protocol eras: handshake-era connections get ``notifications/tools/list_changed`` on
their standalone channel, 2026-era ones on their ``subscriptions/listen`` streams.

Over HTTP the SDK's session manager sits behind the gateway's middleware (the same auth
hook as ``micro api``, the access log), at ``/mcp``; ``/health`` answers without a token.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

import micro
from micro.client import Client
from micro.registry import Registry
from micro.selector import Selector
from micro.settings import MCP_GROUPS, Settings
from micro.toolkit._app import ToolkitApp
from micro.toolkit.api.middleware import AccessLog, Auth, AuthCheck, HeaderCheck
from micro.toolkit.mcp.calls import Calls
from micro.toolkit.mcp.options import McpOptions
from micro.toolkit.mcp.tools import ToolIndex

__all__ = ["McpGateway"]

log = logging.getLogger("micro.mcp")
access_log = logging.getLogger("micro.mcp.access")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Server(Server[Any]):
    """The SDK's server, advertising ``tools.listChanged`` on every connection (the HTTP
    session manager asks for the default initialization options)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class McpGateway(ToolkitApp[McpOptions]):
    """The micro environment as MCP tools.

    Use it as an ASGI app (Streamable HTTP at ``/mcp``; the ASGI lifespan must run, it
    starts the SDK's session manager), or over stdio with :meth:`serve_stdio`.

    Args:
        options: what to offer and the limits (default :class:`McpOptions`).
        settings: the backends' settings (default: read from the environment now).
        registry, selector, client: backends to use (built from ``settings`` if None).
    """

    def __init__(
        self,
        options: McpOptions | None = None,
        *,
        settings: Settings | None = None,
        registry: Registry | None = None,
        selector: Selector | None = None,
        client: Client | None = None,
        auth: AuthCheck | None = None,
    ) -> None:
        options = options or McpOptions()
        super().__init__(options, settings, MCP_GROUPS, registry, selector)
        self.client = self._client(client)
        self.policy = options.policy()
        self.index = ToolIndex(self.registry, self.policy, on_change=self.tools_changed)
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self._legacy: dict[int, ServerSession] = {}
        self._auth: AuthCheck | None = None
        self.calls = Calls(self, options)
        self.server = _Server(
            "micro",
            version=micro.__version__,
            title="micro",
            description="The services of a micro environment as tools.",
            instructions="Each endpoint of each service in the registry is a tool named "
            "service.Handler.Method; 'services', 'describe', 'call' and 'health' explore "
            "and drive the whole environment.",
            on_list_tools=self.calls.list_tools,
            on_call_tool=self.calls.call_tool,
            on_subscriptions_listen=self.listen,
            get_tool_input_schema=self.calls.input_schema,
        )
        self.server.middleware += [self._track_sessions, self.calls.cached_list]
        self.sessions: StreamableHTTPSessionManager | None = None
        self._exits: contextlib.AsyncExitStack | None = None
        self._app = self._route
        if options.address is not None:
            host = options.address.rpartition(":")[0].strip("[]")
            self.sessions = StreamableHTTPSessionManager(
                app=self.server,
                security_settings=_security(host),
                max_request_body_size=max(1, options.max_body),
            )
            self._app = self._stack()
        if auth is not None:
            self.set_auth(auth)

    # -- HTTP -----------------------------------------------------------------------------

    def set_auth(self, check: AuthCheck | None) -> None:
        """Require an accepted bearer token on ``/mcp`` (None: no auth); ``auth_scopes`` then
        narrow what each token sees and calls."""
        self._auth = check
        self._app = self._stack()

    @property
    def auth_on(self) -> bool:
        return self._auth is not None

    def _stack(self) -> ASGIApp:
        app: ASGIApp = self._route
        if self._auth is not None:
            app = Auth(app, check=self._auth, exempt=frozenset(self.options.auth_exempt))
        app = HeaderCheck(app)
        if self.options.access_log:
            app = AccessLog(app, logger=access_log)
        return app

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == "/health":
            await _json(send, 200, {"status": "ok", "tools": len(self.index.tools)})
        elif scope["type"] == "http" and path in ("/mcp", "/mcp/") and self.sessions is not None:
            await self.sessions.handle_request(scope, receive, send)
        else:
            await _json(send, 404, {"detail": "not found: the MCP endpoint is /mcp"})

    def end_streams(self) -> None:
        """End the open ``subscriptions/listen`` streams (shutdown begins)."""
        self.listen.close()

    # -- lifecycle ------------------------------------------------------------------------

    async def _start_parts(self) -> None:
        await self.index.start()
        if self.sessions is not None and self._exits is None:
            self._exits = contextlib.AsyncExitStack()
            await self._exits.enter_async_context(self.sessions.run())

    async def _close_parts(self) -> None:
        self.listen.close()
        exits, self._exits = self._exits, None
        if exits is not None:
            with contextlib.suppress(Exception):
                await exits.aclose()
        await self.index.close()

    async def serve_stdio(self) -> None:
        """Serve one client over stdin/stdout until it closes them (or the task is
        cancelled); starts and closes the gateway around it."""
        from mcp.server.stdio import stdio_server

        from micro.toolkit.mcp._stdio import pipes

        await self.start()
        try:
            async with pipes() as lines:
                stdin, stdout = lines if lines is not None else (None, None)
                async with stdio_server(stdin, stdout) as (read, write):
                    options = self.server.create_initialization_options()
                    await self.server.run(read, write, options)
        finally:
            await self.close()

    # -- list_changed ---------------------------------------------------------------------

    async def tools_changed(self) -> None:
        """Tell every client that the tool list changed (both protocol eras)."""
        await self.bus.publish(ToolsListChanged())
        for session in list(self._legacy.values()):
            with contextlib.suppress(Exception):  # best effort, as the SDK's own notify
                await session.send_tool_list_changed()

    async def _track_sessions(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Keep each handshake-era connection's session (from ``notifications/initialized``
        until the connection's teardown), so that list changes reach it."""
        result = await call_next(ctx)
        if (
            ctx.method == "notifications/initialized"
            and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        ):
            session = ctx.session
            key = id(session)
            self._legacy[key] = session
            # The SDK gives low-level handlers no public handle on the connection; its
            # exit stack is the documented place for per-connection teardown.
            connection = getattr(session, "_connection", None)
            stack = getattr(connection, "exit_stack", None)
            if stack is not None:
                stack.callback(self._legacy.pop, key, None)
        return result


def _security(host: str) -> TransportSecuritySettings | None:
    """DNS-rebinding protection when listening on loopback only, as the SDK's own app."""
    if host not in _LOOPBACK:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
