"""Tool names: ``service.Handler.Method`` in MCP's tool-name alphabet, reversibly.

MCP allows ``[A-Za-z0-9._-]`` in a tool name. Most micro names already fit, so the common
case reads as written (``greeter.Greeter.SayHello``). Any other character, and ``_`` itself
(the escape), is written ``_`` + two hex digits per UTF-8 byte (``_5f`` for ``_``). The
service keeps its dots; the endpoint's first dot separates handler and method and any
further dot is escaped, so the last two dots of a name always split it::

    tool_name("go.micro.srv.greeter", "Greeter.SayHello") == "go.micro.srv.greeter.Greeter.SayHello"
    parse_tool_name("go.micro.srv.greeter.Greeter.SayHello") == ("go.micro.srv.greeter",
                                                                  "Greeter.SayHello")

An endpoint without a dot (or with an empty handler or method part) gets an empty handler part
and keeps all of its dots escaped (``svc..Ping``). The environment's own
tools (``services``, ``describe``, ``call``, ``health``, ``publish``) have no dot, so they never
meet an endpoint's name.
"""

from __future__ import annotations

import re

__all__ = ["MAX_LENGTH", "TOOL_NAME", "parse_tool_name", "tool_name"]

MAX_LENGTH = 128
"""MCP's longest tool name; longer endpoints are reachable through the ``call`` tool."""

TOOL_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
"""MCP's tool-name rule (SEP-986)."""

_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPE = re.compile(r"_([0-9a-f]{2})")


def _escape(text: str, *, dots: bool) -> str:
    out: list[str] = []
    for char in text:
        if char in _PLAIN or (dots and char == "."):
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


def _unescape(text: str) -> str:
    if "_" not in text:
        return text
    if _ESCAPE.sub("", text).count("_"):
        raise ValueError("a lone '_'")
    raw = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(text):
        raw += text[pos : match.start()].encode()
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += text[pos:].encode()
    return raw.decode()


def tool_name(service: str, endpoint: str) -> str:
    """The tool name of ``endpoint`` of ``service`` (may exceed :data:`MAX_LENGTH`)."""
    handler, dot, method = endpoint.partition(".")
    if not (dot and handler and method):
        handler, method = "", endpoint
    return ".".join(
        (_escape(service, dots=True), _escape(handler, dots=False), _escape(method, dots=False))
    )


def parse_tool_name(name: str) -> tuple[str, str]:
    """``(service, endpoint)`` of a name :func:`tool_name` made.

    Raises:
        ValueError: ``name`` is not one (the message says why).
    """
    parts = name.rsplit(".", 2)
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise ValueError(f"{name!r} is not service.Handler.Method")
    try:
        service, handler, method = (_unescape(p) for p in parts)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name!r} is not a tool name: {exc}") from None
    return service, f"{handler}.{method}" if handler else method
