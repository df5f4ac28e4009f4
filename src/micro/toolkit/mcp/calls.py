"""``tools/list`` and ``tools/call``: each call checked, limited, made through
``micro.Client`` and written to the audit log.

A tool call never becomes a protocol error: an unknown tool, arguments that do not match
the schema, a refusal (lists, read-only, scopes, rate limit), a service error, a timeout or
a result over the size limit all come back as a tool result with ``isError`` and the error
``{id, code, detail, status}`` (text, and structured content under ``error``), so the agent
can read it and correct itself.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

import mcp_types as types
import msgspec
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from micro.errors import (
    BadRequest,
    Forbidden,
    InternalServerError,
    MicroError,
    NotFound,
    PayloadTooLarge,
)
from micro.toolkit.api.middleware import RateLimit, bearer_token
from micro.toolkit.mcp import builtins
from micro.toolkit.mcp.names import parse_tool_name
from micro.toolkit.mcp.options import MCP_ID, McpOptions
from micro.toolkit.mcp.policy import is_safe
from micro.toolkit.mcp.tools import EndpointTool

if TYPE_CHECKING:
    from jsonschema.protocols import Validator
    from starlette.types import Receive, Scope, Send

    from micro.toolkit.mcp.app import McpGateway

__all__ = ["MCP_ID", "Calls", "error_result"]

audit_log = logging.getLogger("micro.mcp.audit")
log = logging.getLogger("micro.mcp")
_encoder = msgspec.json.Encoder()


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The rate limiter's ASGI app, never called: only its token buckets are used here."""


def error_result(exc: MicroError) -> types.CallToolResult:
    """A tool error result carrying ``exc``."""
    err = exc.to_dict()
    text = f"error {exc.code} {exc.status}: {exc.detail}"
    if exc.id:
        text += f" (from {exc.id})"
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content={"error": err}, is_error=True
    )


class _Audit:
    """What the audit line of one call says."""

    __slots__ = ("endpoint", "outcome", "service", "size")

    def __init__(self) -> None:
        self.service = self.endpoint = "-"
        self.outcome = "ok"
        self.size = 0


class Calls:
    """The tool handlers of one :class:`~micro.toolkit.mcp.app.McpGateway`."""

    def __init__(self, gateway: McpGateway, options: McpOptions) -> None:
        self.gw = gateway
        self.options = options
        self.policy = gateway.policy
        self._limit: RateLimit | None = None
        if options.rate_limit > 0:
            burst = options.rate_burst or max(1, int(options.rate_limit))
            self._limit = RateLimit(_no_app, rate=options.rate_limit, burst=burst)
        self._validators: dict[str, tuple[dict[str, Any], Validator]] = {}
        self._listings: dict[tuple[str, int, str | None], Any] = {}
        self._builtins = [
            tool for name, tool in builtins.TOOLS.items() if self._offers_builtin(name)
        ]

    def _offers_builtin(self, name: str) -> bool:
        if name == "publish":
            return self.policy.offers_publish()
        return self.policy.offers(name)

    # -- tools/list -----------------------------------------------------------------------

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """Every tool the caller may use: the endpoints', then the environment's."""
        token = self._who(ctx)[1]
        if token is None or not self.policy.scopes:
            return types.ListToolsResult(tools=[*self.gw.index.listed, *self._builtins])
        tools = [
            e.tool
            for e in self.gw.index.tools.values()
            if self.policy.in_scope(token, f"{e.service}.{e.endpoint}")
        ]
        tools += [t for t in self._builtins if self.policy.in_scope(token, t.name)]
        return types.ListToolsResult(tools=tools)

    async def cached_list(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Server middleware: ``tools/list`` answered from the wire form the SDK made for the
        same tool set, protocol version and token. The SDK validates and dumps every tool of
        a listing through pydantic (about 0.15 ms a tool); the list changes only with the
        registry, so that work is done once per change instead of once per request."""
        if ctx.method != "tools/list" or (ctx.params or {}).get("cursor"):
            return await call_next(ctx)
        token = self._who(ctx)[1] if self.policy.scopes else None
        key = (ctx.protocol_version, self.gw.index.version, token)
        listing = self._listings.get(key)
        if listing is None:
            listing = await call_next(ctx)
            if not isinstance(listing, dict):
                return listing
            if len(self._listings) >= 64 or any(k[1] != key[1] for k in self._listings):
                self._listings.clear()
            self._listings[key] = listing
        return dict(listing)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema by name (the SDK's header validation asks)."""
        entry = self.gw.index.tools.get(name)
        if entry is not None:
            return entry.input_schema
        tool = builtins.TOOLS.get(name)
        return tool.input_schema if tool is not None else None

    # -- tools/call -----------------------------------------------------------------------

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """Run one tool call; every failure is a tool error result, never an exception."""
        started = time.perf_counter()
        client, token = self._who(ctx)
        audit = _Audit()
        try:
            result = await self._call(params.name, params.arguments or {}, client, token, audit)
        except MicroError as exc:
            result = error_result(exc)
        except Exception as exc:  # a bug here must not end the connection
            log.exception("tool %s failed", params.name)
            result = error_result(InternalServerError(f"{type(exc).__name__}: {exc}", id=MCP_ID))
        if result.is_error and isinstance(result.structured_content, dict):
            audit.outcome = str(result.structured_content["error"]["code"])
        if self.options.audit_log and audit_log.isEnabledFor(logging.INFO):
            audit_log.info(
                "%s tool=%s service=%s endpoint=%s result=%s %dB %.2fms",
                client,
                params.name,
                audit.service,
                audit.endpoint,
                audit.outcome,
                audit.size,
                (time.perf_counter() - started) * 1000,
            )
        return result

    async def _call(
        self, name: str, args: dict[str, Any], client: str, token: str | None, audit: _Audit
    ) -> types.CallToolResult:
        if self._limit is not None and self._limit.allow(client, time.monotonic()):
            raise MicroError(f"rate limit of {self._limit.rate:g} calls/s exceeded", id=MCP_ID,
                             code=429)  # fmt: skip
        builtin = builtins.TOOLS.get(name)
        if builtin is not None:
            if not self._offers_builtin(name) or not self.policy.in_scope(token, name):
                raise Forbidden(f"tool {name} is not offered here", id=MCP_ID)
            return await builtins.run(self, name, args, token, audit)
        entry = self._endpoint_tool(name, token)
        audit.service, audit.endpoint = entry.service, entry.endpoint
        self._validate(entry, args)
        request = args.get("request") if entry.wraps_request else args
        value = await self.rpc(entry.service, entry.endpoint, request, entry.metadata, name)
        return self.ok(value, audit, wraps=entry.wraps_result, has_output=entry.has_output)

    def _endpoint_tool(self, name: str, token: str | None) -> EndpointTool:
        entry = self.gw.index.tools.get(name)
        if entry is None:
            try:
                service, endpoint = parse_tool_name(name)
            except ValueError:
                raise NotFound(f"no tool {name!r}; tools/list shows the tools", id=MCP_ID) from None
            if self.gw.index.endpoint(service, endpoint) is not None:
                raise Forbidden(f"tool {name} is not offered here", id=MCP_ID)
            raise NotFound(
                f"no tool {name!r}: {service} has no endpoint {endpoint} in the registry now",
                id=MCP_ID,
            )
        if not self.policy.in_scope(token, f"{entry.service}.{entry.endpoint}"):
            raise Forbidden(f"tool {name} is not in this token's scope", id=MCP_ID)
        return entry

    def _validate(self, entry: EndpointTool, args: dict[str, Any]) -> None:
        """Check ``args`` against the tool's input schema (400 naming the first problem)."""
        cached = self._validators.get(entry.name)
        if cached is None or cached[0] is not entry.input_schema:
            from jsonschema import Draft202012Validator

            cached = (entry.input_schema, Draft202012Validator(entry.input_schema))
            self._validators[entry.name] = cached
        try:
            error = next(iter(cached[1].iter_errors(args)), None)
        except Exception as exc:  # a schema the validator cannot use: the service decides
            log.debug("%s: schema not usable (%s)", entry.name, exc)
            return
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "arguments"
            raise BadRequest(f"invalid arguments: {where}: {error.message}", id=MCP_ID)

    async def rpc(
        self,
        service: str,
        endpoint: str,
        request: Any,
        metadata: Any,
        tool: str,
        extra: dict[str, str] | None = None,
    ) -> Any:
        """Call the endpoint; retried (the client's policy) only when its metadata says it
        is safe or idempotent, since an agent's call may change things."""
        again = is_safe(metadata) or (metadata or {}).get("idempotent") == "true"
        return await self.gw.client.call(
            service,
            endpoint,
            request,
            timeout=self.options.timeout,
            retries=None if again else 0,
            metadata={**(extra or {}), "Micro-Mcp-Tool": tool},
        )

    def ok(
        self, value: Any, audit: _Audit, *, wraps: bool = False, has_output: bool = False
    ) -> types.CallToolResult:
        """The result of a call: the response as JSON text and as structured content."""
        try:
            text = _encoder.encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InternalServerError(f"response not JSON: {exc}", id=MCP_ID) from None
        audit.size = len(text)
        if len(text) > self.options.max_result:
            raise PayloadTooLarge(
                f"result of {len(text)} bytes is over the limit of {self.options.max_result}",
                id=MCP_ID,
            )
        structured: Any = None
        if wraps:
            structured = {"result": value}
        elif has_output or isinstance(value, dict):
            structured = value
        return types.CallToolResult(
            content=[types.TextContent(text=text.decode())], structured_content=structured
        )

    # -- who is calling -------------------------------------------------------------------

    def _who(self, ctx: ServerRequestContext[Any, Any]) -> tuple[str, str | None]:
        """``(client, token)``: who the audit line and the rate limit name (a token's hash,
        else the address; ``stdio`` for the one stdio peer), and the bearer token when auth
        is on."""
        request = ctx.request
        scope = getattr(request, "scope", None)
        if not isinstance(scope, dict):
            return "stdio", None
        token = bearer_token(scope) if self.gw.auth_on else ""
        if token:
            return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12], token
        peer = scope.get("client") or ("-", 0)
        return str(peer[0]), None
