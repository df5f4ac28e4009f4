"""``micro mcp``: every endpoint of a micro environment as an MCP tool for AI agents.

An MCP server on the official SDK (:class:`McpGateway`), over stdio (for an IDE or agent
runtime that spawns ``micro mcp``) or Streamable HTTP (``micro mcp --address :8090``, at
``/mcp``). Tools: one per endpoint (``greeter.Greeter.SayHello``), kept current by a
registry watch, plus ``services``, ``describe``, ``call``, ``health`` (and ``publish`` when
enabled). See ``docs/mcp.md``.

Modules: :mod:`.app` (the server and its HTTP app), :mod:`.tools` (the live tool list),
:mod:`.calls` (``tools/call``: checks, RPC, audit), :mod:`.builtins` (the environment's
tools), :mod:`.names` (tool names), :mod:`.policy` (allow/deny, read-only, scopes),
:mod:`.options`, :mod:`.cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micro.toolkit.mcp.options import McpOptions

__all__ = ["McpGateway", "McpOptions", "main"]

if TYPE_CHECKING:
    from micro.toolkit.mcp.app import McpGateway
    from micro.toolkit.mcp.cli import main

_LAZY = {"McpGateway": "micro.toolkit.mcp.app", "main": "micro.toolkit.mcp.cli"}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'micro.toolkit.mcp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
