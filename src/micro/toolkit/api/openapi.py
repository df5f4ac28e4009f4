"""The OpenAPI 3.1 document of the gateway, generated from the registry's endpoint schemas.

Every unary endpoint of every service in the namespace gets ``POST <path>``, where the path
is the one the resolver maps back to that endpoint (``Greeter.SayHello`` of
``go.micro.api.greeter`` -> ``/greeter/say-hello``); only paths that round-trip through the
resolver are listed. Request and response bodies come from the endpoint metadata
``request_schema``/``response_schema`` (JSON Schema); their ``$defs`` move to
``components/schemas`` under the service's prefix. Streaming endpoints, reachable over
WebSocket only, are listed under ``x-micro-streams``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from micro.errors import NotFound
from micro.registry import Endpoint
from micro.toolkit.api.catalog import Catalog
from micro.toolkit.api.resolver import Resolver, in_namespace, kebab

__all__ = ["build_document", "endpoint_path"]

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "code": {"type": "integer"},
        "detail": {"type": "string"},
        "status": {"type": "string"},
    },
}
_ERROR_RESPONSE = {
    "description": "an error {id, code, detail, status}; code is the HTTP status",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MicroError"}}},
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _candidates(short: str, endpoint: str) -> list[str]:
    handler, _, method = endpoint.partition(".")
    base = "/" + short.replace(".", "/")
    out = []
    for h, m in ((kebab(handler), kebab(method)), (handler, method)):
        if not method:
            out.append(f"{base}")
            continue
        if "." not in short and kebab(handler) == kebab(short):
            out.append(f"{base}/{m}")
        out.append(f"{base}/{h}/{m}")
    return out


def endpoint_path(resolver: Resolver, service: str, endpoint: str) -> str | None:
    """The path the resolver sends to ``endpoint`` of ``service``, or None if there is none."""
    short = in_namespace(resolver.namespace, service)
    if short is None:
        return None
    for path in _candidates(short, endpoint):
        try:
            route = resolver.resolve("rpc", path)
        except NotFound:
            continue
        if route.service == service and route.endpoint == endpoint:
            return path
    return None


def _rewrite(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                out[key] = "#/components/schemas/" + prefix + value[len("#/$defs/") :]
            elif key != "$defs":
                out[key] = _rewrite(value, prefix)
        return out
    if isinstance(node, list):
        return [_rewrite(v, prefix) for v in node]
    return node


def _schema(text: str | None, prefix: str, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema in ``text`` with its ``$defs`` moved into ``components``."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    for name, sub in (raw.get("$defs") or {}).items():
        components[prefix + name] = _rewrite(sub, prefix)
    return dict(_rewrite(raw, prefix))


def _operation(service: str, ep: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    prefix = _UNSAFE.sub("_", service) + "."
    md = ep.metadata or {}
    request = _schema(md.get("request_schema"), prefix, components)
    response = _schema(md.get("response_schema"), prefix, components)
    return {
        "operationId": f"{service}.{ep.name}",
        "summary": md.get("description") or f"{service} {ep.name}",
        "tags": [service],
        "requestBody": {
            "required": bool(request),
            "content": {"application/json": {"schema": request or {"type": "object"}}},
        },
        "responses": {
            "200": {
                "description": "the endpoint's response",
                "content": {"application/json": {"schema": response or {}}},
            },
            "default": _ERROR_RESPONSE,
        },
    }


def _builtin_paths(enable_rpc: bool) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "operationId": "gateway.health",
                "summary": "the gateway's own health",
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        }
    }
    if enable_rpc:
        paths["/rpc"] = {
            "post": {
                "operationId": "gateway.rpc",
                "summary": "call any endpoint: {service, endpoint, request, address}",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/RpcRequest"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "the endpoint's response",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "default": _ERROR_RESPONSE,
                },
            }
        }
    return paths


_RPC_REQUEST = {
    "type": "object",
    "properties": {
        "service": {"type": "string", "minLength": 1},
        "endpoint": {"type": "string", "minLength": 1},
        "method": {"type": "string", "minLength": 1},
        "request": {},
        "address": {"type": "string"},
    },
    "required": ["service"],
    "anyOf": [{"required": ["endpoint"]}, {"required": ["method"]}],
}


def build_document(
    catalog: Catalog, resolver: Resolver, *, enable_rpc: bool = False, version: str = ""
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for what ``catalog`` holds now."""
    components: dict[str, Any] = {"MicroError": _ERROR_SCHEMA}
    if enable_rpc:
        components["RpcRequest"] = _RPC_REQUEST
    paths = _builtin_paths(enable_rpc)
    streams: list[dict[str, str]] = []
    for service in sorted(catalog.services):
        seen: set[str] = set()
        for svc in catalog.services[service]:
            for ep in svc.endpoints:
                if ep.name in seen:
                    continue
                seen.add(ep.name)
                path = endpoint_path(resolver, service, ep.name)
                if path is None or path in paths:
                    continue
                if (ep.metadata or {}).get("stream") == "true":
                    streams.append({"path": path, "service": service, "endpoint": ep.name})
                    continue
                paths[path] = {"post": _operation(service, ep, components)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "micro api",
            "version": version or "0",
            "description": f"Services of namespace {catalog.namespace!r}, from the registry.",
        },
        "paths": paths,
        "components": {"schemas": components},
        "x-micro-streams": streams,
    }
