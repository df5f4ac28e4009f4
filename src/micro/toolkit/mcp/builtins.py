"""The environment's own tools, as go-micro's ``micro mcp`` offers them: ``services``
(list), ``describe`` (one service: versions, nodes, endpoints with their schemas and tool
names), ``call`` (any endpoint by name), ``health`` (``Debug.Health`` of each node) and,
only when enabled, ``publish``. Each obeys the same allow-list, read-only mode and scopes
as the endpoint tools: ``call`` checks the endpoint it is asked to call.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import mcp_types as types

from micro.errors import BadRequest, Forbidden, MicroError, NotFound, ServiceNotFound
from micro.registry import Node
from micro.toolkit.mcp.names import tool_name
from micro.toolkit.mcp.options import MCP_ID
from micro.toolkit.mcp.tools import is_tool

if TYPE_CHECKING:
    from micro.toolkit.mcp.calls import Calls, _Audit

__all__ = ["TOOLS", "run"]

_SERVICE = {"type": "string", "minLength": 1, "description": "the service's registered name"}
_READ = types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _tool(name: str, description: str, props: dict[str, Any], required: list[str],
          annotations: types.ToolAnnotations | None = _READ) -> types.Tool:  # fmt: skip
    schema = {"type": "object", "properties": props, "required": required}
    return types.Tool(
        name=name, description=description, input_schema=schema, annotations=annotations
    )


TOOLS: dict[str, types.Tool] = {
    "services": _tool(
        "services",
        "List the services in the micro registry: name, versions, nodes and tool count.",
        {},
        [],
    ),
    "describe": _tool(
        "describe",
        "Describe one service: its versions, nodes and endpoints, each with its tool name, "
        "description and request/response JSON Schema.",
        {"service": _SERVICE},
        ["service"],
    ),
    "call": _tool(
        "call",
        "Call any endpoint of any service by name, e.g. service 'greeter', endpoint "
        '\'Greeter.SayHello\', request {"name": "John"}.',
        {
            "service": _SERVICE,
            "endpoint": {"type": "string", "minLength": 1, "description": "Handler.Method"},
            "request": {"description": "the request object (default {})"},
            "metadata": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "call metadata, sent as headers",
            },
        },
        ["service", "endpoint"],
        types.ToolAnnotations(open_world_hint=False),
    ),
    "health": _tool(
        "health",
        "Ask every node of a service for its health (Debug.Health).",
        {"service": _SERVICE},
        ["service"],
    ),
    "publish": _tool(
        "publish",
        "Publish an event (any JSON) to a topic through the environment's broker.",
        {
            "topic": {"type": "string", "minLength": 1},
            "message": {"description": "the event"},
        },
        ["topic", "message"],
        types.ToolAnnotations(open_world_hint=False, destructive_hint=False),
    ),
}


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"invalid arguments: {key}: a non-empty string is required", id=MCP_ID)
    return value.strip()


async def run(
    calls: Calls, name: str, args: dict[str, Any], token: str | None, audit: _Audit
) -> types.CallToolResult:
    """Run built-in tool ``name``."""
    if name == "services":
        return calls.ok({"services": _services(calls)}, audit)
    if name == "describe":
        service = _text(args, "service")
        audit.service = service
        return calls.ok(await _describe(calls, service, token), audit)
    if name == "call":
        return await _call(calls, args, token, audit)
    if name == "health":
        service = _text(args, "service")
        audit.service, audit.endpoint = service, "Debug.Health"
        return calls.ok(await _health(calls, service), audit)
    topic = _text(args, "topic")
    audit.endpoint = f"publish:{topic}"
    if "message" not in args:
        raise BadRequest("invalid arguments: message is required", id=MCP_ID)
    await calls.gw.client.publish(topic, args["message"], metadata={"Micro-Mcp-Tool": name})
    return calls.ok({"topic": topic, "published": True}, audit)


def _offered(calls: Calls, service: str, ep: Any, token: str | None) -> bool:
    policy = calls.policy
    return (
        is_tool(ep)
        and policy.offers_endpoint(service, ep.name, ep.metadata)
        and policy.in_scope(token, f"{service}.{ep.name}")
    )


def _services(calls: Calls) -> list[dict[str, Any]]:
    index = calls.gw.index
    counts: dict[str, int] = {}
    for entry in index.tools.values():
        counts[entry.service] = counts.get(entry.service, 0) + 1
    out = []
    for name in sorted(index.services):
        if calls.policy.allow and not counts.get(name):
            continue
        versions = index.services[name]
        out.append(
            {
                "name": name,
                "versions": sorted({v.version for v in versions}),
                "nodes": sum(len(v.nodes) for v in versions),
                "tools": counts.get(name, 0),
            }
        )
    return out


def _schema(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


async def _describe(calls: Calls, service: str, token: str | None) -> dict[str, Any]:
    try:
        found = await calls.gw.registry.get_service(service)
    except ServiceNotFound:
        found = []
    versions = []
    for svc in found:
        endpoints = []
        for ep in svc.endpoints:
            if not _offered(calls, service, ep, token):
                continue
            md = dict(ep.metadata or {})
            endpoints.append(
                {
                    "name": ep.name,
                    "tool": tool_name(service, ep.name),
                    "description": md.pop("description", ""),
                    "request_schema": _schema(md.pop("request_schema", None)),
                    "response_schema": _schema(md.pop("response_schema", None)),
                    "metadata": md,
                }
            )
        nodes = [{"id": n.id, "address": n.address, "metadata": n.metadata} for n in svc.nodes]
        versions.append(
            {
                "version": svc.version,
                "metadata": svc.metadata,
                "nodes": nodes,
                "endpoints": endpoints,
            }
        )
    if not versions or (calls.policy.allow and not any(v["endpoints"] for v in versions)):
        raise NotFound(f"service {service} not found", id=MCP_ID)
    return {"name": service, "versions": versions}


async def _call(
    calls: Calls, args: dict[str, Any], token: str | None, audit: _Audit
) -> types.CallToolResult:
    service, endpoint = _text(args, "service"), _text(args, "endpoint")
    audit.service, audit.endpoint = service, endpoint
    metadata = args.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BadRequest("invalid arguments: metadata: an object of strings is required", id=MCP_ID)
    ep = calls.gw.index.endpoint(service, endpoint)
    md = ep.metadata if ep is not None else None
    if ep is not None and not is_tool(ep):
        raise BadRequest(f"{service} {endpoint} is a stream or a subscriber, not callable here",
                         id=MCP_ID)  # fmt: skip
    if not calls.policy.offers_endpoint(service, endpoint, md):
        raise Forbidden(f"{service} {endpoint} is not offered here", id=MCP_ID)
    if not calls.policy.in_scope(token, f"{service}.{endpoint}"):
        raise Forbidden(f"{service} {endpoint} is not in this token's scope", id=MCP_ID)
    request = args.get("request")
    value = await calls.rpc(service, endpoint, {} if request is None else request, md, "call",
                            metadata)  # fmt: skip
    return calls.ok(value, audit, has_output=True)


async def _health(calls: Calls, service: str) -> dict[str, Any]:
    try:
        found = await calls.gw.registry.get_service(service)
    except ServiceNotFound:
        raise NotFound(f"service {service} not found", id=MCP_ID) from None
    nodes = [node for svc in found for node in svc.nodes]
    if not nodes:
        raise NotFound(f"service {service} has no nodes", id=MCP_ID)
    timeout = min(2.0, calls.options.timeout or 2.0)
    rows = await asyncio.gather(*(_probe(calls, service, n, timeout) for n in nodes))
    healthy = all(r.get("status") == "ok" for r in rows)
    return {"service": service, "healthy": healthy, "nodes": rows}


async def _probe(calls: Calls, service: str, node: Node, timeout: float) -> dict[str, Any]:
    row: dict[str, Any] = {"id": node.id, "address": node.address}
    try:
        rsp = await calls.gw.client.call(
            service, "Debug.Health", {}, address=node.address, timeout=timeout, retries=0,
            content_type="application/json",
        )  # fmt: skip
    except MicroError as exc:
        row["error"] = f"{exc.code} {exc.detail}"
        return row
    row["status"] = rsp.get("status", "") if isinstance(rsp, dict) else str(rsp)
    return row
