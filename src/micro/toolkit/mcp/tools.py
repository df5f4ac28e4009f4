"""The tool list: one MCP tool per endpoint in the registry, kept current by a watch.

:class:`ToolIndex` extends the gateway's :class:`~micro.toolkit.api.catalog.Catalog` (the live
index of services fed by a registry watch) and derives from it, on each change, the
:class:`EndpointTool` entries: name, description, ``inputSchema`` and ``outputSchema`` from
the endpoint's JSON Schema metadata (``request_schema``/``response_schema``, see
:mod:`micro.codec.schema`). MCP wants an object at the root of both, so a schema that is a
``$ref`` is inlined, and one that is not an object is wrapped in ``{"request": ...}`` (the
arguments) or ``{"result": ...}`` (the structured content). Stream endpoints and subscribers
are not tools. When the tool set changes, ``on_change`` runs (the server's list-changed
notification).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from micro.registry import Endpoint, Registry, Service
from micro.toolkit.api.catalog import Catalog
from micro.toolkit.mcp.names import MAX_LENGTH, tool_name
from micro.toolkit.mcp.policy import Policy, is_safe

__all__ = ["EndpointTool", "ToolIndex", "object_schema"]

log = logging.getLogger("micro.mcp")

_EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def _parse(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return raw if isinstance(raw, dict) else None


def object_schema(schema: dict[str, Any] | None, key: str) -> tuple[dict[str, Any] | None, bool]:
    """``schema`` with a root ``$ref`` inlined (its definition dropped from ``$defs`` unless
    something still refers to it: every byte is sent to, and parsed by, the client for each
    listing), and whether it had to be wrapped in an object
    under ``key`` (MCP's schemas are objects at the root). None when there is no schema, or
    it says nothing (``{}``: any value)."""
    if not schema:
        return None, False
    defs = schema.get("$defs")
    ref = schema.get("$ref")
    root = schema
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict):
        target = defs.get(ref[len("#/$defs/") :])
        if isinstance(target, dict):
            root = dict(target)
            rest = {k: v for k, v in defs.items() if v is not target}
            if ref in json.dumps([target, rest]):  # still referenced (a recursive type)
                rest = defs
            if rest:
                root["$defs"] = rest
            defs = rest
    if root.get("type") == "object":
        return root, False
    inner = {k: v for k, v in root.items() if k != "$defs"}
    wrapped: dict[str, Any] = {"type": "object", "properties": {key: inner}, "required": [key]}
    if isinstance(defs, dict):
        wrapped["$defs"] = defs
    return wrapped, True


@dataclass(frozen=True)
class EndpointTool:
    """An endpoint as a tool: what to list, and how to call it.

    Attributes:
        wraps_request: the arguments carry the request under ``request``.
        wraps_result: the structured content carries the response under ``result``.
    """

    name: str
    service: str
    endpoint: str
    metadata: Mapping[str, str]
    tool: types.Tool
    wraps_request: bool = False
    wraps_result: bool = False
    has_output: bool = False
    input_schema: dict[str, Any] = field(default_factory=dict)


def _description(service: Service, ep: Endpoint) -> str:
    md = ep.metadata or {}
    text = md.get("description") or f"Call {ep.name} of the {service.name} service."
    about = (service.metadata or {}).get("description")
    where = f"micro endpoint {ep.name} of service {service.name}"
    if service.version:
        where += f" {service.version}"
    parts = [text, about, f"({where})"]
    return "\n\n".join(p for p in parts if p)


def endpoint_tool(service: Service, ep: Endpoint) -> EndpointTool:
    """The tool of ``ep`` of ``service`` (its name may exceed :data:`MAX_LENGTH`)."""
    md = dict(ep.metadata or {})
    name = tool_name(service.name, ep.name)
    request, wraps_request = object_schema(_parse(md.get("request_schema")), "request")
    output, wraps_result = object_schema(_parse(md.get("response_schema")), "result")
    safe = is_safe(md)
    annotations = types.ToolAnnotations(
        title=f"{service.name} {ep.name}",
        read_only_hint=True if safe else None,
        idempotent_hint=True if safe or md.get("idempotent") == "true" else None,
        open_world_hint=False,
    )
    input_schema = request or dict(_EMPTY_OBJECT)
    tool = types.Tool(
        name=name,
        description=_description(service, ep),
        input_schema=input_schema,
        output_schema=output,
        annotations=annotations,
    )
    return EndpointTool(
        name=name,
        service=service.name,
        endpoint=ep.name,
        metadata=md,
        tool=tool,
        wraps_request=wraps_request,
        wraps_result=wraps_result,
        has_output=output is not None,
        input_schema=input_schema,
    )


def is_tool(ep: Endpoint) -> bool:
    """Whether an endpoint can be a tool: unary RPC (no stream, no subscriber)."""
    md = ep.metadata or {}
    return md.get("stream") != "true" and md.get("subscriber") != "true"


class ToolIndex(Catalog):
    """The services in the registry (every namespace) and their endpoints as tools.

    ``tools`` maps a tool name to its :class:`EndpointTool`, filtered by ``policy`` (lists,
    read-only); ``on_change`` is awaited after a change of that map (not of nodes alone).
    """

    def __init__(
        self,
        registry: Registry,
        policy: Policy,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(registry, namespace="")
        self.policy = policy
        self.on_change = on_change
        self.tools: dict[str, EndpointTool] = {}
        self.listed: list[types.Tool] = []
        self._signature: tuple[tuple[str, str], ...] = ()

    async def refresh(self, name: str) -> None:
        """Fetch ``name`` again, rebuild the tools, and tell ``on_change`` if they changed."""
        before = self.version
        await super().refresh(name)
        if self.version == before:
            return
        self._rebuild()
        signature = tuple((t.name, t.tool.model_dump_json()) for t in self.tools.values())
        if signature != self._signature:
            self._signature = signature
            if self.on_change is not None:
                try:
                    await self.on_change()
                except Exception:  # a notification is advice: the index stays current
                    log.exception("tools list_changed notification failed")

    def _rebuild(self) -> None:
        tools: dict[str, EndpointTool] = {}
        for name in sorted(self.services):
            for svc in self.services[name]:
                for ep in svc.endpoints:
                    if not is_tool(ep):
                        continue
                    if not self.policy.offers_endpoint(name, ep.name, ep.metadata):
                        continue
                    entry = endpoint_tool(svc, ep)
                    if entry.name in tools:
                        continue  # the first version listed wins, as in the gateway
                    if len(entry.name) > MAX_LENGTH:
                        log.warning("%s %s: tool name over %d characters; use the call tool",
                                    name, ep.name, MAX_LENGTH)  # fmt: skip
                        continue
                    tools[entry.name] = entry
        self.tools = tools
        self.listed = [t.tool for t in tools.values()]
